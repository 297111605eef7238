//! Refresh tokens, shown to the client as URL-safe base64 and stored only as SHA-256 digests.
//!
//! A token is its session's *family* (128 random bits, the same in every generation of one
//! session) followed by the generation's own 256 random bits. Only the generations still
//! needed are kept: the current one and its predecessor (for the grace window). An older
//! generation presented again has no row any more, but its family names its session, so the
//! replay is still caught and revokes the session (RFC 9700 §4.14.2), however many times the
//! thief rotated meanwhile. Knowing a family proves having held some token of that session;
//! it lets one end the session, nothing more. Tokens issued before families existed (the
//! 256 random bits alone) are still read, and their sessions keep every generation.
//!
//! To let concurrent refreshes with one token converge on the same successor without ever
//! storing a token, the successor's random bits are kept sealed under the token it replaces:
//! XOR with HMAC-SHA256(old token, label). Only a caller who presents the old token can open
//! them, and each token seals exactly one successor, so the pad is never reused.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256};

const FAMILY_LEN: usize = 16;
const SECRET_LEN: usize = 32;
const SEAL_LABEL: &[u8] = b"latchkey refresh-token successor v1";

pub struct RefreshToken {
    /// `None` for a token issued before families existed.
    family: Option<[u8; FAMILY_LEN]>,
    secret: [u8; SECRET_LEN],
}

impl RefreshToken {
    /// The first token of a new session, with a new family.
    pub fn first() -> Result<Self, getrandom::Error> {
        Ok(Self {
            family: Some(random()?),
            secret: random()?,
        })
    }

    /// The next generation of this token's session: the same family, new random bits.
    pub fn successor(&self) -> Result<Self, getrandom::Error> {
        Ok(Self {
            family: self.family,
            secret: random()?,
        })
    }

    /// Reads a token as clients send it; anything else is not a token of ours.
    pub fn parse(encoded: &str) -> Option<Self> {
        let bytes = URL_SAFE_NO_PAD.decode(encoded.trim()).ok()?;
        match bytes.len() {
            SECRET_LEN => Some(Self {
                family: None,
                secret: bytes.try_into().ok()?,
            }),
            len if len == FAMILY_LEN + SECRET_LEN => {
                let (family, secret) = bytes.split_at(FAMILY_LEN);
                Some(Self {
                    family: Some(family.try_into().ok()?),
                    secret: secret.try_into().ok()?,
                })
            }
            _ => None,
        }
    }

    pub fn encode(&self) -> String {
        URL_SAFE_NO_PAD.encode(self.bytes())
    }

    /// The form stored and looked up. A fast hash suffices: the input has 256 bits of entropy.
    pub fn digest(&self) -> Vec<u8> {
        Sha256::digest(self.bytes()).to_vec()
    }

    /// The digest of the family, stored with its session; `None` for a token without one.
    pub fn family_digest(&self) -> Option<Vec<u8>> {
        self.family.map(|family| Sha256::digest(family).to_vec())
    }

    /// `successor`'s random bits, sealed under this token (the family is the same).
    pub fn seal(&self, successor: &RefreshToken) -> Vec<u8> {
        xor(&self.pad(), &successor.secret).to_vec()
    }

    pub fn unseal(&self, sealed: &[u8]) -> Option<RefreshToken> {
        let sealed: [u8; SECRET_LEN] = sealed.try_into().ok()?;
        Some(Self {
            family: self.family,
            secret: xor(&self.pad(), &sealed),
        })
    }

    fn bytes(&self) -> Vec<u8> {
        let family = self.family.as_ref().map_or(&[][..], |family| &family[..]);
        [family, &self.secret].concat()
    }

    fn pad(&self) -> [u8; SECRET_LEN] {
        let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(&self.bytes())
            .expect("HMAC takes keys of any length");
        mac.update(SEAL_LABEL);
        mac.finalize().into_bytes().into()
    }
}

fn random<const N: usize>() -> Result<[u8; N], getrandom::Error> {
    let mut bytes = [0u8; N];
    getrandom::fill(&mut bytes)?;
    Ok(bytes)
}

fn xor(a: &[u8; SECRET_LEN], b: &[u8; SECRET_LEN]) -> [u8; SECRET_LEN] {
    std::array::from_fn(|i| a[i] ^ b[i])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encodes_a_family_and_256_bits_url_safe() {
        let token = RefreshToken::first().unwrap();
        let encoded = token.encode();
        assert_eq!(encoded.len(), 64);
        assert!(
            encoded
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
        );
        let parsed = RefreshToken::parse(&encoded).unwrap();
        assert_eq!(parsed.bytes(), token.bytes());
        assert_eq!(parsed.family_digest(), token.family_digest());
    }

    #[test]
    fn successors_keep_the_family_and_nothing_else() {
        let first = RefreshToken::first().unwrap();
        let next = first.successor().unwrap();
        assert_eq!(next.family_digest(), first.family_digest());
        assert_ne!(next.digest(), first.digest());
        let other = RefreshToken::first().unwrap();
        assert_ne!(other.family_digest(), first.family_digest());
    }

    #[test]
    fn reads_tokens_issued_before_families() {
        let legacy = URL_SAFE_NO_PAD.encode([7u8; SECRET_LEN]);
        assert_eq!(legacy.len(), 43);
        let token = RefreshToken::parse(&legacy).unwrap();
        assert!(token.family_digest().is_none());
        // Stored digests of such tokens were of the 256 bits alone: still found.
        assert_eq!(token.digest(), Sha256::digest([7u8; SECRET_LEN]).to_vec());
        let next = token.successor().unwrap();
        assert_eq!(next.encode().len(), 43);
    }

    #[test]
    fn rejects_other_lengths_and_alphabets() {
        for bad in [
            "",
            "abc",
            "not base64 at all!",
            &"A".repeat(44),
            &"A".repeat(63),
            &"+".repeat(43),
        ] {
            assert!(RefreshToken::parse(bad).is_none(), "{bad}");
        }
    }

    #[test]
    fn only_the_old_token_unseals_its_successor() {
        let old = RefreshToken::first().unwrap();
        let next = old.successor().unwrap();
        let sealed = old.seal(&next);
        assert_ne!(
            sealed,
            next.secret.to_vec(),
            "the successor is not stored in plain text"
        );
        assert_eq!(old.unseal(&sealed).unwrap().bytes(), next.bytes());
        let stranger = old.successor().unwrap();
        assert_ne!(stranger.unseal(&sealed).unwrap().bytes(), next.bytes());
    }
}
