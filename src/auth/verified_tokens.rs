//! Access tokens whose signature and claims have already been checked.
//!
//! A client sends the same access token with every request for its whole life (15 minutes by
//! default), and checking an Ed25519 signature took a fifth of the CPU of `GET /me`. What a
//! check proves of a token, signed by one of our keys with these claims, does not change
//! while the keys stay the same, so it is remembered, keyed by the exact token text. The
//! time-bound claims are checked again on every use; the session behind the token is not
//! cached at all (it is read from the database on every request, so a logout still takes
//! effect on the very next one). Refused tokens are not remembered: they could fill the cache.

use std::sync::Arc;

use quick_cache::sync::Cache;

use super::tokens::Claims;
use crate::error::Error;

/// How many verified tokens are remembered: roughly the clients active within an access
/// token's lifetime. Each entry costs about the token's length plus its claims (under 1 KiB).
pub const DEFAULT_CAPACITY: usize = 16_384;

pub struct VerifiedTokens {
    cache: Cache<Box<str>, Arc<Claims>>,
    leeway_seconds: i64,
}

impl VerifiedTokens {
    pub fn new(capacity: usize, leeway_seconds: u64) -> Self {
        Self {
            cache: Cache::new(capacity.max(1)),
            leeway_seconds: i64::try_from(leeway_seconds).unwrap_or(i64::MAX),
        }
    }

    /// The claims of `token`: remembered if it was verified before, else from `verify`,
    /// and remembered when that succeeds. `now` is the current Unix time in seconds.
    pub fn claims(
        &self,
        token: &str,
        now: i64,
        verify: impl FnOnce(&str) -> Result<Claims, Error>,
    ) -> Result<Arc<Claims>, Error> {
        if let Some(claims) = self.cache.get(token) {
            // The same bounds, with the same leeway, as the full check applies.
            let fresh = claims.exp.saturating_add(self.leeway_seconds) >= now
                && claims.nbf.saturating_sub(self.leeway_seconds) <= now;
            return if fresh {
                Ok(claims)
            } else {
                Err(Error::InvalidToken)
            };
        }
        let claims = Arc::new(verify(token)?);
        self.cache.insert(token.into(), Arc::clone(&claims));
        Ok(claims)
    }

    /// Forgets every verified token: the keys changed, and a token signed by a key that no
    /// longer verifies must be checked (and refused) again.
    pub fn forget_all(&self) {
        self.cache.clear();
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
        }
    }

    #[test]
    fn verifies_once_then_remembers() {
        let tokens = VerifiedTokens::new(16, 5);
        let calls = Cell::new(0);
        let verify = |_: &str| {
            calls.set(calls.get() + 1);
            Ok(claims(100, 200))
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
            .claims("a.b.c", 150, |_| Ok(claims(100, 200)))
            .unwrap();
        let never = |_: &str| -> Result<Claims, Error> { panic!("should be remembered") };
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
    fn refusals_are_not_remembered_and_forgetting_forces_a_new_check() {
        let tokens = VerifiedTokens::new(16, 5);
        assert!(
            tokens
                .claims("x", 150, |_| Err(Error::InvalidToken))
                .is_err()
        );
        assert!(tokens.claims("x", 150, |_| Ok(claims(100, 200))).is_ok());
        tokens.forget_all();
        assert!(
            tokens
                .claims("x", 150, |_| Err(Error::InvalidToken))
                .is_err()
        );
    }

    #[test]
    fn only_the_exact_token_text_is_remembered() {
        let tokens = VerifiedTokens::new(16, 5);
        tokens
            .claims("a.b.c", 150, |_| Ok(claims(100, 200)))
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
