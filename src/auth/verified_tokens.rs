//! Access tokens whose signature and claims have already been checked.
//!
//! A client sends the same access token with every request for its whole life (15 minutes by
//! default), and an Ed25519 check is dear beside the rest of `GET /me`. What a
//! check proves of a token, signed by one of our keys with these claims, does not change
//! while the keys stay the same, so it is remembered, keyed by the exact token text. The
//! time-bound claims, and the retirement of the key that signed the token, are checked again
//! on every use; each loaded key set has a cache of its own, so a reload of the keys starts
//! afresh. The session behind the token is not
//! cached at all (it is read from the database on every request, so a logout still takes
//! effect on the very next one). Refused tokens are not remembered: they could fill the cache.

use std::sync::Arc;

use quick_cache::sync::Cache;

use super::claims::Claims;
use crate::error::Error;

/// How many verified tokens are remembered: roughly the clients active within an access
/// token's lifetime. Each entry costs about the token's length plus its claims (under 1 KiB).
pub const DEFAULT_CAPACITY: usize = 16_384;

pub struct VerifiedTokens {
    cache: Cache<Box<str>, Verified>,
    leeway_seconds: i64,
}

/// What a full check established about a token.
#[derive(Clone)]
struct Verified {
    claims: Arc<Claims>,
    /// When the key that signed it stops verifying (Unix seconds), if ever.
    key_retires_at: Option<i64>,
}

impl VerifiedTokens {
    pub fn new(capacity: usize, leeway_seconds: u64) -> Self {
        Self {
            cache: Cache::new(capacity.max(1)),
            leeway_seconds: i64::try_from(leeway_seconds).unwrap_or(i64::MAX),
        }
    }

    /// The claims of `token`: remembered if it was verified before, else from `verify`
    /// (the claims, and when the key that signed them retires), and remembered when that
    /// succeeds. `now` is the current Unix time in seconds.
    pub fn claims(
        &self,
        token: &str,
        now: i64,
        verify: impl FnOnce(&str) -> Result<(Claims, Option<i64>), Error>,
    ) -> Result<Arc<Claims>, Error> {
        if let Some(verified) = self.cache.get(token) {
            let claims = &verified.claims;
            // The same bounds, with the same leeway, as the full check applies.
            let fresh = claims.exp.saturating_add(self.leeway_seconds) >= now
                && claims.nbf.saturating_sub(self.leeway_seconds) <= now
                && verified.key_retires_at.is_none_or(|at| now < at);
            return if fresh {
                Ok(verified.claims)
            } else {
                Err(Error::InvalidToken)
            };
        }
        let (claims, key_retires_at) = verify(token)?;
        let claims = Arc::new(claims);
        let verified = Verified {
            claims: Arc::clone(&claims),
            key_retires_at,
        };
        self.cache.insert(token.into(), verified);
        Ok(claims)
    }
}

#[cfg(test)]
mod tests {
    use std::cell::Cell;

    use super::*;

    fn claims(nbf: i64, exp: i64) -> Claims {
        Claims {
            iss: "latchkey".into(),
            aud: "latchkey".into(),
            sub: "user".into(),
            sid: "session".into(),
            iat: nbf,
            nbf,
            exp,
            jti: "jti".into(),
            amr: vec!["pwd".into()],
        }
    }

    #[test]
    fn verifies_once_then_remembers() {
        let tokens = VerifiedTokens::new(16, 5);
        let calls = Cell::new(0);
        let verify = |_: &str| {
            calls.set(calls.get() + 1);
            Ok((claims(100, 200), None))
        };
        for _ in 0..3 {
            assert_eq!(tokens.claims("a.b.c", 150, verify).unwrap().sub, "user");
        }
        assert_eq!(calls.get(), 1);
    }

    #[test]
    fn a_remembered_token_still_expires_and_is_not_yet_valid_before_nbf() {
        let tokens = VerifiedTokens::new(16, 5);
        tokens
            .claims("a.b.c", 150, |_| Ok((claims(100, 200), None)))
            .unwrap();
        let never =
            |_: &str| -> Result<(Claims, Option<i64>), Error> { panic!("should be remembered") };
        assert!(
            tokens.claims("a.b.c", 205, never).is_ok(),
            "within the leeway"
        );
        assert!(tokens.claims("a.b.c", 206, never).is_err(), "expired");
        assert!(
            tokens.claims("a.b.c", 95, never).is_ok(),
            "within the leeway"
        );
        assert!(tokens.claims("a.b.c", 94, never).is_err(), "not yet valid");
    }

    #[test]
    fn refusals_are_not_remembered() {
        let tokens = VerifiedTokens::new(16, 5);
        assert!(
            tokens
                .claims("x", 150, |_| Err(Error::InvalidToken))
                .is_err()
        );
        assert!(
            tokens
                .claims("x", 150, |_| Ok((claims(100, 200), None)))
                .is_ok()
        );
    }

    #[test]
    fn a_remembered_token_stops_when_its_key_retires() {
        let tokens = VerifiedTokens::new(16, 5);
        tokens
            .claims("a.b.c", 150, |_| Ok((claims(100, 200), Some(170))))
            .unwrap();
        let never = |_: &str| -> Result<(Claims, Option<i64>), Error> { panic!("remembered") };
        assert!(tokens.claims("a.b.c", 169, never).is_ok());
        assert!(tokens.claims("a.b.c", 170, never).is_err());
    }

    #[test]
    fn only_the_exact_token_text_is_remembered() {
        let tokens = VerifiedTokens::new(16, 5);
        tokens
            .claims("a.b.c", 150, |_| Ok((claims(100, 200), None)))
            .unwrap();
        assert!(
            tokens
                .claims("a.b.d", 150, |_| Err(Error::InvalidToken))
                .is_err()
        );
        assert!(
            tokens
                .claims("a.b.c ", 150, |_| Err(Error::InvalidToken))
                .is_err()
        );
    }
}
