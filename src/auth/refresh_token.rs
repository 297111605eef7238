//! Refresh tokens: 256 random bits, shown to the client as 43 URL-safe base64 characters,
//! stored only as a SHA-256 digest.
//!
//! To let concurrent refreshes with one token converge on the same successor without ever
//! storing a token, the successor is kept sealed under the token it replaces: XOR with
//! HMAC-SHA256(old token, label). Only a caller who presents the old token can open it, and
//! each token seals exactly one successor, so the pad is never reused.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256};

const LEN: usize = 32;
const SEAL_LABEL: &[u8] = b"latchkey refresh-token successor v1";

pub struct RefreshToken([u8; LEN]);

impl RefreshToken {
    pub fn generate() -> Result<Self, getrandom::Error> {
        let mut bytes = [0u8; LEN];
        getrandom::fill(&mut bytes)?;
        Ok(Self(bytes))
    }

    /// Reads a token as clients send it; anything else is not a token of ours.
    pub fn parse(encoded: &str) -> Option<Self> {
        let bytes = URL_SAFE_NO_PAD.decode(encoded.trim()).ok()?;
        Some(Self(bytes.try_into().ok()?))
    }

    pub fn encode(&self) -> String {
        URL_SAFE_NO_PAD.encode(self.0)
    }

    /// The form stored and looked up. A fast hash suffices: the input has 256 bits of entropy.
    pub fn digest(&self) -> Vec<u8> {
        Sha256::digest(self.0).to_vec()
    }

    pub fn seal(&self, successor: &RefreshToken) -> Vec<u8> {
        xor(&self.pad(), &successor.0).to_vec()
    }

    pub fn unseal(&self, sealed: &[u8]) -> Option<RefreshToken> {
        let sealed: [u8; LEN] = sealed.try_into().ok()?;
        Some(Self(xor(&self.pad(), &sealed)))
    }

    fn pad(&self) -> [u8; LEN] {
        let mut mac =
            <Hmac<Sha256> as Mac>::new_from_slice(&self.0).expect("HMAC takes keys of any length");
        mac.update(SEAL_LABEL);
        mac.finalize().into_bytes().into()
    }
}

fn xor(a: &[u8; LEN], b: &[u8; LEN]) -> [u8; LEN] {
    std::array::from_fn(|i| a[i] ^ b[i])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encodes_256_bits_url_safe() {
        let token = RefreshToken::generate().unwrap();
        let encoded = token.encode();
        assert_eq!(encoded.len(), 43);
        assert!(
            encoded
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
        );
        assert_eq!(RefreshToken::parse(&encoded).unwrap().0, token.0);
    }

    #[test]
    fn rejects_other_lengths_and_alphabets() {
        for bad in [
            "",
            "abc",
            "not base64 at all!",
            &"A".repeat(44),
            &"+".repeat(43),
        ] {
            assert!(RefreshToken::parse(bad).is_none(), "{bad}");
        }
    }

    #[test]
    fn only_the_old_token_unseals_its_successor() {
        let old = RefreshToken::generate().unwrap();
        let next = RefreshToken::generate().unwrap();
        let sealed = old.seal(&next);
        assert_ne!(
            sealed,
            next.0.to_vec(),
            "the successor is not stored in plain text"
        );
        assert_eq!(old.unseal(&sealed).unwrap().0, next.0);
        let stranger = RefreshToken::generate().unwrap();
        assert_ne!(stranger.unseal(&sealed).unwrap().0, next.0);
    }
}
