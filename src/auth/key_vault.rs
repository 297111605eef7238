//! Private signing keys at rest. With `LATCHKEY_KEY_ENCRYPTION_KEY` set, each is stored
//! sealed with XChaCha20-Poly1305 (a random 192-bit nonce per key, so no nonce is ever
//! reused by chance), its `kid` bound as associated data so that a sealed key cannot be
//! moved to another row. A database backup then holds no key that can sign a token.
//!
//! A sealed key is told from a plain one by its prefix: a plain key is PKCS#8 DER, which
//! starts with a SEQUENCE tag (`0x30`), never with [`SEALED_PREFIX`]. So one column holds
//! either form, and keys stored before encryption was turned on stay readable until
//! `latchkey keys encrypt` seals them.

use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use secrecy::{ExposeSecret, SecretBox};
use zeroize::Zeroizing;

use crate::error::Error;

const SEALED_PREFIX: &[u8] = b"latchkey-sealed-v1:";
const NONCE_LEN: usize = 24;

/// The key that seals the signing keys, if one is configured.
#[derive(Clone, Default)]
pub struct KeyVault {
    cipher: Option<std::sync::Arc<XChaCha20Poly1305>>,
}

impl KeyVault {
    pub fn new(encryption_key: Option<&SecretBox<[u8; 32]>>) -> Self {
        Self {
            cipher: encryption_key
                .map(|key| std::sync::Arc::new(XChaCha20Poly1305::new(key.expose_secret().into()))),
        }
    }

    /// Whether new keys are sealed.
    pub fn seals(&self) -> bool {
        self.cipher.is_some()
    }

    /// The form to store `private_der` of key `kid` in: sealed with a vault key, plain
    /// without.
    pub fn seal(&self, kid: &str, private_der: &[u8]) -> Result<Vec<u8>, Error> {
        let Some(cipher) = &self.cipher else {
            return Ok(private_der.to_vec());
        };
        let mut nonce = [0u8; NONCE_LEN];
        getrandom::fill(&mut nonce).map_err(Error::internal)?;
        let payload = Payload {
            msg: private_der,
            aad: kid.as_bytes(),
        };
        let sealed = cipher
            .encrypt(&XNonce::from(nonce), payload)
            .map_err(|_| Error::internal(anyhow::anyhow!("sealing stored key {kid}")))?;
        Ok([SEALED_PREFIX, &nonce, &sealed].concat())
    }

    /// The private key of `kid` from its stored form. A sealed key needs the vault key that
    /// sealed it: without one, or with another, this is an error naming the variable.
    pub fn open(&self, kid: &str, stored: &[u8]) -> Result<Zeroizing<Vec<u8>>, Error> {
        let Some(sealed) = stored.strip_prefix(SEALED_PREFIX) else {
            return Ok(Zeroizing::new(stored.to_vec()));
        };
        let cipher = self.cipher.as_ref().ok_or_else(|| {
            Error::internal(anyhow::anyhow!(
                "stored key {kid} is stored encrypted: set LATCHKEY_KEY_ENCRYPTION_KEY"
            ))
        })?;
        let truncated = || Error::internal(anyhow::anyhow!("stored key {kid} is truncated"));
        let (nonce, ciphertext) = sealed.split_at_checked(NONCE_LEN).ok_or_else(truncated)?;
        let nonce: [u8; NONCE_LEN] = nonce.try_into().map_err(|_| truncated())?;
        let payload = Payload {
            msg: ciphertext,
            aad: kid.as_bytes(),
        };
        cipher
            .decrypt(&XNonce::from(nonce), payload)
            .map(Zeroizing::new)
            .map_err(|_| {
                Error::internal(anyhow::anyhow!(
                    "stored key {kid} cannot be decrypted: LATCHKEY_KEY_ENCRYPTION_KEY is not \
                     the key it was encrypted with"
                ))
            })
    }

    /// Whether a stored private key is sealed.
    pub fn is_sealed(stored: &[u8]) -> bool {
        stored.starts_with(SEALED_PREFIX)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vault(byte: u8) -> KeyVault {
        KeyVault::new(Some(&SecretBox::new(Box::new([byte; 32]))))
    }

    #[test]
    fn seals_and_opens_a_key_bound_to_its_kid() {
        let der = b"\x30\x2e private key bytes".to_vec();
        let sealed = vault(1).seal("kid-a", &der).unwrap();
        assert!(KeyVault::is_sealed(&sealed));
        assert!(!sealed.windows(der.len()).any(|window| window == der));
        assert_eq!(*vault(1).open("kid-a", &sealed).unwrap(), der);
        // Another row's kid, another vault key, no vault key: refused, not garbage.
        assert!(vault(1).open("kid-b", &sealed).is_err());
        assert!(vault(2).open("kid-a", &sealed).is_err());
        assert!(KeyVault::default().open("kid-a", &sealed).is_err());
        // Two seals of one key differ (fresh nonces).
        assert_ne!(sealed, vault(1).seal("kid-a", &der).unwrap());
    }

    #[test]
    fn plain_keys_pass_through_both_ways() {
        let der = b"\x30\x2e plain".to_vec();
        assert_eq!(KeyVault::default().seal("k", &der).unwrap(), der);
        assert_eq!(*vault(1).open("k", &der).unwrap(), der);
        assert!(!KeyVault::is_sealed(&der));
        let truncated = [SEALED_PREFIX, b"short"].concat();
        assert!(vault(1).open("k", &truncated).is_err());
    }
}
