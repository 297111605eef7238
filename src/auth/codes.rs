//! One-time codes mailed to an account (API.md "One-time codes"): 8 characters of Crockford
//! base32, stored only as a keyed hash, living `LATCHKEY_CODE_TTL`, allowing
//! [`MAX_ATTEMPTS`] wrong tries, used once. A new code for a purpose replaces the older.
//!
//! The hash covers the purpose and the address the code was sent to, so a code is found by
//! its hash alone, and a code for one purpose or address is no code for another. Its key is
//! the service's own ([`CodeKey::load_or_create`]): a copy of the table alone does not let
//! anyone try the 2^40 codes offline.

use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256};
use zeroize::Zeroizing;

use super::key_vault::KeyVault;
use crate::db::one_time_codes::{self, LiveCode, NewCode};
use crate::db::{self, DbConn, server_secrets};
use crate::domain::UserId;
use crate::error::Error;

/// Wrong tries a code allows; the next try finds it dead.
pub const MAX_ATTEMPTS: i32 = 5;

/// Characters in a code: 40 bits.
pub const CODE_LENGTH: usize = 8;

/// Crockford's base32: no I, L, O or U to misread.
const ALPHABET: &[u8; 32] = b"0123456789ABCDEFGHJKMNPQRSTVWXYZ";

/// The name of the hash key in `server_secrets`.
const KEY_NAME: &str = "one_time_code_key";

pub use crate::domain::CodePurpose as Purpose;

impl Purpose {
    /// The word that names the purpose in a mailed link (`{purpose}`): which form the page
    /// opens.
    pub fn link_word(self) -> &'static str {
        match self {
            Self::PasswordReset => "reset",
            Self::EmailVerification | Self::EmailChange => "verify",
        }
    }
}

/// The key of the code hashes: random, made once, shared by every instance through the
/// database, sealed there like the signing keys when a vault key is configured.
#[derive(Clone)]
pub struct CodeKey(Zeroizing<[u8; 32]>);

impl CodeKey {
    pub fn load_or_create(conn: &mut DbConn, vault: &KeyVault) -> Result<Self, Error> {
        if server_secrets::find(conn, KEY_NAME)?.is_none() {
            let mut fresh = Zeroizing::new([0u8; 32]);
            getrandom::fill(fresh.as_mut()).map_err(Error::internal)?;
            let stored = vault.seal(KEY_NAME, fresh.as_ref())?;
            server_secrets::insert_if_absent(conn, KEY_NAME, &stored, db::now())?;
        }
        // Another instance's key, if it stored one first.
        let stored = server_secrets::find(conn, KEY_NAME)?
            .ok_or_else(|| Error::internal(anyhow::anyhow!("{KEY_NAME} vanished")))?;
        let opened = vault.open(KEY_NAME, &stored)?;
        let key: [u8; 32] = opened
            .as_slice()
            .try_into()
            .map_err(|_| Error::internal(anyhow::anyhow!("{KEY_NAME} is not 32 bytes")))?;
        Ok(Self(Zeroizing::new(key)))
    }

    /// Seals the stored key if it is plain (`latchkey keys encrypt`, once a vault key is
    /// set); answers whether it did.
    pub fn seal_stored(conn: &mut DbConn, vault: &KeyVault) -> Result<bool, Error> {
        match server_secrets::find(conn, KEY_NAME)? {
            Some(stored) if !KeyVault::is_sealed(&stored) => {
                let sealed = vault.seal(KEY_NAME, &stored)?;
                Ok(server_secrets::replace(conn, KEY_NAME, &stored, &sealed)? == 1)
            }
            _ => Ok(false),
        }
    }

    /// Whether the key is stored plain.
    pub fn is_stored_plain(conn: &mut DbConn) -> Result<bool, Error> {
        Ok(server_secrets::find(conn, KEY_NAME)?
            .is_some_and(|stored| !KeyVault::is_sealed(&stored)))
    }

    fn hash(&self, purpose: Purpose, email: &str, code: &str) -> Vec<u8> {
        self.hash_parts(&[purpose.as_str(), email, code])
    }

    fn hash_parts(&self, parts: &[&str]) -> Vec<u8> {
        let mut mac = Hmac::<Sha256>::new_from_slice(self.0.as_ref())
            .unwrap_or_else(|_| unreachable!("HMAC takes a key of any length"));
        for part in parts {
            // Length-prefixed, so that no two different lists hash the same text.
            mac.update(&(part.len() as u64).to_be_bytes());
            mac.update(part.as_bytes());
        }
        mac.finalize().into_bytes().to_vec()
    }
}

/// Issues, finds and uses up codes.
#[derive(Clone)]
pub struct Codes {
    key: CodeKey,
    ttl: Duration,
}

impl Codes {
    pub fn new(key: CodeKey, ttl: Duration) -> Self {
        Self { key, ttl }
    }

    pub fn ttl(&self) -> Duration {
        self.ttl
    }

    /// A new code for the account and purpose, sent to `email`, replacing the older one.
    /// Answers the code, which only the outbox keeps (until it is sent).
    pub fn issue(
        &self,
        conn: &mut DbConn,
        user_id: &UserId,
        purpose: Purpose,
        email: &str,
    ) -> Result<Zeroizing<String>, Error> {
        let code = generate()?;
        let now = db::now();
        let code_hash = self.key.hash(purpose, email, &code);
        one_time_codes::replace(
            conn,
            &NewCode {
                id: &uuid::Uuid::now_v7().to_string(),
                user_id,
                purpose,
                email,
                code_hash: &code_hash,
                created_at: now,
                expires_at: now + db::span(self.ttl),
            },
        )?;
        Ok(code)
    }

    /// The live code `typed` is, among those sent to `email` for one of `purposes`. A miss
    /// counts a wrong try against every such code; the caller commits it either way.
    pub fn find(
        &self,
        conn: &mut DbConn,
        purposes: &[Purpose],
        email: &str,
        typed: &str,
    ) -> Result<Option<LiveCode>, Error> {
        let now = db::now();
        if let Some(code) = normalize(typed) {
            for &purpose in purposes {
                let hash = self.key.hash(purpose, email, &code);
                let found =
                    one_time_codes::find_live(conn, &hash, email, purpose, now, MAX_ATTEMPTS)?;
                if let Some(found) = found {
                    return Ok(Some(found));
                }
            }
        }
        one_time_codes::count_wrong_try(conn, email, purposes, now)?;
        Ok(None)
    }

    /// The stored form of one of the account's recovery codes (as [`read_base32`] reads it):
    /// keyed like the mailed codes, and bound to the account.
    pub fn recovery_code_hash(&self, user_id: &UserId, code: &str) -> Vec<u8> {
        self.key
            .hash_parts(&["recovery_code", user_id.as_str(), code])
    }

    /// Uses up a code [`Codes::find`] found, if it still is live: of two concurrent uses
    /// exactly one gets `true`.
    pub fn consume(&self, conn: &mut DbConn, code: &LiveCode) -> Result<bool, Error> {
        Ok(one_time_codes::consume(conn, &code.id, db::now(), MAX_ATTEMPTS)? == 1)
    }
}

/// A fresh random code.
fn generate() -> Result<Zeroizing<String>, Error> {
    random_base32(CODE_LENGTH)
}

/// `length` random characters of Crockford's base32.
pub fn random_base32(length: usize) -> Result<Zeroizing<String>, Error> {
    let mut bytes = Zeroizing::new(vec![0u8; length]);
    getrandom::fill(bytes.as_mut()).map_err(Error::internal)?;
    // 256 is a multiple of 32: every character is equally likely.
    Ok(Zeroizing::new(
        bytes
            .iter()
            .map(|byte| char::from(ALPHABET[usize::from(byte % 32)]))
            .collect(),
    ))
}

/// A fresh opaque token of 256 random bits, in base64url: an `mfa_token`, a passkey
/// ceremony's id. Stored only as its [`token_digest`].
pub fn random_token() -> Result<String, Error> {
    let mut bytes = Zeroizing::new([0u8; 32]);
    getrandom::fill(bytes.as_mut()).map_err(Error::internal)?;
    Ok(URL_SAFE_NO_PAD.encode(bytes.as_ref()))
}

/// The digest a random token is stored and found by: the table alone holds no usable token.
/// A plain SHA-256 suffices: the token has 256 random bits, nothing to guess offline.
pub fn token_digest(token: &str) -> Vec<u8> {
    Sha256::digest(token.as_bytes()).to_vec()
}

/// A code as typed, read the way Crockford base32 reads: case-insensitive, spaces and
/// hyphens ignored, `I`/`L` as `1` and `O` as `0`. `None` when it cannot be a code.
pub fn normalize(typed: &str) -> Option<String> {
    read_base32(typed, CODE_LENGTH)
}

/// [`normalize`] for codes of `length` characters.
pub fn read_base32(typed: &str, length: usize) -> Option<String> {
    // Bounded before any work: a client's megabyte of spaces is not read through.
    if typed.len() > 4 * length {
        return None;
    }
    let code: String = typed
        .chars()
        .filter(|c| !matches!(c, ' ' | '-'))
        .map(|c| match c.to_ascii_uppercase() {
            'I' | 'L' => '1',
            'O' => '0',
            other => other,
        })
        .collect();
    let valid = code.len() == length && code.bytes().all(|b| ALPHABET.contains(&b));
    valid.then_some(code)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_are_eight_characters_of_the_alphabet() {
        let a = generate().unwrap();
        let b = generate().unwrap();
        assert_eq!(a.len(), CODE_LENGTH);
        assert!(a.bytes().all(|c| ALPHABET.contains(&c)));
        assert_ne!(*a, *b);
        assert_eq!(normalize(&a).as_deref(), Some(a.as_str()));
    }

    #[test]
    fn typed_codes_are_read_like_crockford_base32() {
        assert_eq!(normalize("abcd-efgh").as_deref(), Some("ABCDEFGH"));
        assert_eq!(
            normalize(" 0o1i l234 ").as_deref(),
            Some("0011 1234".replace(' ', "").as_str())
        );
        assert_eq!(normalize("ABCDEFG"), None, "too short");
        assert_eq!(normalize("ABCDEFGHJ"), None, "too long");
        assert_eq!(normalize("ABCDEFGU"), None, "U is not in the alphabet");
        assert_eq!(normalize("ÄBCDEFGH"), None);
        assert_eq!(normalize(&" ".repeat(10_000)), None);
    }

    #[test]
    fn hashes_bind_purpose_address_and_code() {
        let key = CodeKey(Zeroizing::new([7; 32]));
        let base = key.hash(Purpose::PasswordReset, "a@example.com", "ABCDEFGH");
        assert_eq!(
            base,
            key.hash(Purpose::PasswordReset, "a@example.com", "ABCDEFGH")
        );
        assert_ne!(
            base,
            key.hash(Purpose::EmailVerification, "a@example.com", "ABCDEFGH")
        );
        assert_ne!(
            base,
            key.hash(Purpose::PasswordReset, "b@example.com", "ABCDEFGH")
        );
        assert_ne!(
            base,
            key.hash(Purpose::PasswordReset, "a@example.com", "ABCDEFGJ")
        );
        let other_key = CodeKey(Zeroizing::new([8; 32]));
        assert_ne!(
            base,
            other_key.hash(Purpose::PasswordReset, "a@example.com", "ABCDEFGH")
        );
    }
}
