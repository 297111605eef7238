//! Access tokens: JWTs with `typ: at+jwt` (RFC 9068). Verification pins the algorithm to the
//! key named by `kid` and checks `typ`, `iss`, `aud`, `exp` and `nbf` (RFC 8725).
//!
//! The keys can change while the server runs (a rotation made by `latchkey keys rotate`):
//! they sit behind an `ArcSwap`, so that verifying a token takes no lock, and a reload swaps
//! in a whole new set. A token naming a key this instance does not know may come from an
//! instance that picked up a rotation first, so it triggers one reload before it is refused;
//! such reloads are at most one per [`UNKNOWN_KEY_RELOAD_SPACING`], and callers that arrive
//! while one runs wait for it instead of reading the database too, so a flood of made-up
//! `kid`s costs at most one database read per second.

use std::collections::HashMap;
use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use arc_swap::ArcSwap;
use chrono::{NaiveDateTime, Utc};
use futures_util::future::BoxFuture;
use jsonwebtoken::{Header, Validation, decode, decode_header, encode};

use super::claims::{Claims, LEEWAY};
use super::keys::{Jwk, JwkSet, KeySet, SigningKey};
use super::verified_tokens::{self, VerifiedTokens};
use crate::domain::{AuthMethods, SessionId, UserId};
use crate::error::Error;

const TOKEN_TYPE: &str = "at+jwt";
/// The least time between two reloads caused by tokens with an unknown `kid`.
pub const UNKNOWN_KEY_RELOAD_SPACING: Duration = Duration::from_secs(1);

pub struct IssuedToken {
    pub token: String,
    /// Seconds until the token expires.
    pub expires_in: i64,
}

/// Why a token was not accepted. Both are `invalid_token` to the client; only an unknown
/// key is worth a reload.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unverified {
    Invalid,
    UnknownKey,
}

struct Verifier {
    algorithm: jsonwebtoken::Algorithm,
    decoding: jsonwebtoken::DecodingKey,
    validation: Validation,
    retires_at: Option<NaiveDateTime>,
}

/// A key still verifies before its retirement time; the signing key has none.
fn verifies_at(retires_at: Option<NaiveDateTime>, now: NaiveDateTime) -> bool {
    retires_at.is_none_or(|at| now < at)
}

/// One loaded key set, replaced as a whole.
struct Keys {
    signing: SigningKey,
    verifiers: HashMap<String, Verifier>,
    /// The public keys with their retirement times, newest first.
    jwks: Vec<(Option<NaiveDateTime>, Jwk)>,
    /// Tokens these keys have verified (a reload starts with an empty cache).
    verified: VerifiedTokens,
}

type LoadKeys = Box<dyn Fn() -> BoxFuture<'static, Result<KeySet, Error>> + Send + Sync>;

struct Reloader {
    load: LoadKeys,
    /// Held while a reload runs; holds when the last one started.
    gate: tokio::sync::Mutex<Option<Instant>>,
    /// Counts finished reloads, so that a caller that waited at the gate knows one happened.
    reloads: AtomicU64,
}

/// Issues and verifies access tokens. Clones share the keys.
#[derive(Clone)]
pub struct AccessTokens {
    issuer: String,
    audience: String,
    ttl: Duration,
    keys: Arc<ArcSwap<Keys>>,
    reloader: Option<Arc<Reloader>>,
}

impl AccessTokens {
    /// Tokens signed and verified with `keys`, which never change (see
    /// [`AccessTokens::reloading_with`]).
    pub fn new(keys: KeySet, issuer: String, audience: String, ttl: Duration) -> Self {
        let keys = Keys::new(keys, &issuer, &audience);
        Self {
            issuer,
            audience,
            ttl,
            keys: Arc::new(ArcSwap::from_pointee(keys)),
            reloader: None,
        }
    }

    /// Lets the keys be replaced by what `load` answers, on [`AccessTokens::reload`] and when
    /// a token names an unknown key.
    pub fn reloading_with<F, Fut>(mut self, load: F) -> Self
    where
        F: Fn() -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<KeySet, Error>> + Send + 'static,
    {
        self.reloader = Some(Arc::new(Reloader {
            load: Box::new(move || Box::pin(load())),
            gate: tokio::sync::Mutex::new(None),
            reloads: AtomicU64::new(0),
        }));
        self
    }

    /// Signs a token for the session, whose login used `methods`; it never outlives the
    /// session itself.
    pub fn issue(
        &self,
        user_id: &UserId,
        session_id: &SessionId,
        session_expires_at: NaiveDateTime,
        methods: AuthMethods,
    ) -> Result<IssuedToken, Error> {
        let now = Utc::now().timestamp();
        let ttl = i64::try_from(self.ttl.as_secs()).unwrap_or(i64::MAX);
        let exp = now
            .saturating_add(ttl)
            .min(session_expires_at.and_utc().timestamp())
            .max(now);
        let claims = Claims {
            iss: self.issuer.clone(),
            aud: self.audience.clone(),
            sub: user_id.to_string(),
            sid: session_id.to_string(),
            iat: now,
            nbf: now,
            exp,
            jti: uuid::Uuid::now_v7().to_string(),
            amr: methods.amr().into_iter().map(str::to_owned).collect(),
        };
        let keys = self.keys.load();
        let mut header = Header::new(keys.signing.algorithm);
        header.typ = Some(TOKEN_TYPE.to_owned());
        header.kid = Some(keys.signing.kid.clone());
        let token = encode(&header, &claims, &keys.signing.encoding).map_err(Error::internal)?;
        Ok(IssuedToken {
            token,
            expires_in: exp - now,
        })
    }

    /// Checks signature and claims with the keys loaded now (the signature only the first
    /// time these keys see the token). Every failure is the same `InvalidToken`.
    pub fn verify(&self, token: &str) -> Result<Arc<Claims>, Error> {
        self.verify_noting(token, |_| {})
    }

    /// Like [`AccessTokens::verify`], but a token naming an unknown key first makes the
    /// keys reload (when they can, and not more than once per
    /// [`UNKNOWN_KEY_RELOAD_SPACING`]). The usual case completes without waiting.
    pub async fn verify_or_reload(&self, token: &str) -> Result<Arc<Claims>, Error> {
        let mut unknown_key = false;
        let verified = self.verify_noting(token, |refusal| {
            unknown_key = refusal == Unverified::UnknownKey;
        });
        match (verified, &self.reloader) {
            (Err(_), Some(reloader)) if unknown_key => {
                if self.reload_for_unknown_key(reloader).await {
                    self.verify(token)
                } else {
                    Err(Error::InvalidToken)
                }
            }
            (verified, _) => verified,
        }
    }

    /// [`AccessTokens::verify`], telling `refused` why a full check refused the token.
    fn verify_noting(
        &self,
        token: &str,
        refused: impl FnOnce(Unverified),
    ) -> Result<Arc<Claims>, Error> {
        let keys = self.keys.load();
        let now = Utc::now();
        keys.verified.claims(token, now.timestamp(), |token| {
            keys.check(token, now.naive_utc()).map_err(|refusal| {
                refused(refusal);
                Error::InvalidToken
            })
        })
    }

    /// Checks signature and claims in full, telling an unknown key apart.
    pub fn check(&self, token: &str) -> Result<Claims, Unverified> {
        self.keys
            .load()
            .check(token, Utc::now().naive_utc())
            .map(|(claims, _)| claims)
    }

    /// The public keys that verify now, as a JWK Set.
    pub fn jwks(&self) -> JwkSet {
        let now = Utc::now().naive_utc();
        let keys: Vec<_> = self
            .keys
            .load()
            .jwks
            .iter()
            .filter(|(retires_at, _)| verifies_at(*retires_at, now))
            .map(|(_, jwk)| jwk.clone())
            .collect();
        JwkSet { keys }
    }

    /// Reads the keys again now (the periodic reload); without a way to reload, does nothing.
    pub async fn reload(&self) -> Result<(), Error> {
        let Some(reloader) = &self.reloader else {
            return Ok(());
        };
        let mut last = reloader.gate.lock().await;
        *last = Some(Instant::now());
        self.reload_holding_gate(reloader).await
    }

    /// After a token named an unknown key. A reload that finished while this caller waited
    /// at the gate is as good as its own; otherwise it reloads unless the last reload started
    /// less than the spacing ago. Answers whether the keys may have changed.
    async fn reload_for_unknown_key(&self, reloader: &Reloader) -> bool {
        let seen = reloader.reloads.load(Ordering::Acquire);
        let mut last = reloader.gate.lock().await;
        if reloader.reloads.load(Ordering::Acquire) != seen {
            return true;
        }
        if last.is_some_and(|at| at.elapsed() < UNKNOWN_KEY_RELOAD_SPACING) {
            return false;
        }
        *last = Some(Instant::now());
        match self.reload_holding_gate(reloader).await {
            Ok(()) => true,
            Err(error) => {
                tracing::warn!(error = %error, "reloading the signing keys failed");
                false
            }
        }
    }

    async fn reload_holding_gate(&self, reloader: &Reloader) -> Result<(), Error> {
        let fresh = Keys::new((reloader.load)().await?, &self.issuer, &self.audience);
        let previous = self.keys.swap(Arc::new(fresh));
        reloader.reloads.fetch_add(1, Ordering::Release);
        let current = self.keys.load();
        if previous.signing.kid != current.signing.kid {
            tracing::info!(kid = %current.signing.kid, "signing with a new key");
        }
        let mut before: Vec<&String> = previous.verifiers.keys().collect();
        let mut after: Vec<&String> = current.verifiers.keys().collect();
        before.sort();
        after.sort();
        if before != after {
            tracing::info!(keys = ?after, "the set of verifying keys changed");
        }
        Ok(())
    }
}

impl Keys {
    fn new(keys: KeySet, issuer: &str, audience: &str) -> Self {
        let jwks = keys
            .verifying
            .iter()
            .filter_map(|key| key.jwk.clone().map(|jwk| (key.retires_at, jwk)))
            .collect();
        let verifiers = keys
            .verifying
            .into_iter()
            .map(|key| {
                let mut validation = Validation::new(key.algorithm);
                validation.set_issuer(&[issuer]);
                validation.set_audience(&[audience]);
                validation.set_required_spec_claims(&["exp", "nbf", "iat", "iss", "aud", "sub"]);
                validation.validate_nbf = true;
                validation.leeway = LEEWAY.as_secs();
                let verifier = Verifier {
                    algorithm: key.algorithm,
                    decoding: key.decoding,
                    validation,
                    retires_at: key.retires_at,
                };
                (key.kid, verifier)
            })
            .collect();
        Self {
            signing: keys.signing,
            verifiers,
            jwks,
            verified: VerifiedTokens::new(verified_tokens::DEFAULT_CAPACITY, LEEWAY.as_secs()),
        }
    }

    /// The full check of signature and claims at `now`: the claims, and when the key that
    /// signed them retires (Unix seconds), if ever.
    fn check(&self, token: &str, now: NaiveDateTime) -> Result<(Claims, Option<i64>), Unverified> {
        let header = decode_header(token).map_err(|_| Unverified::Invalid)?;
        let typ_ok = header.typ.as_deref().is_some_and(|typ| {
            typ.eq_ignore_ascii_case(TOKEN_TYPE) || typ.eq_ignore_ascii_case("application/at+jwt")
        });
        // `crit` names extensions a verifier must understand or refuse (RFC 7515 §4.1.11):
        // this one understands none.
        let Some(kid) = header
            .kid
            .as_deref()
            .filter(|_| typ_ok && header.crit.is_none())
        else {
            return Err(Unverified::Invalid);
        };
        let verifier = match self.verifiers.get(kid) {
            Some(verifier) => verifier,
            // Only a key of the algorithm this service signs with could appear on a reload.
            None if header.alg == self.signing.algorithm => return Err(Unverified::UnknownKey),
            None => return Err(Unverified::Invalid),
        };
        if verifier.algorithm != header.alg || !verifies_at(verifier.retires_at, now) {
            return Err(Unverified::Invalid);
        }
        let claims = decode::<Claims>(token, &verifier.decoding, &verifier.validation)
            .map(|data| data.claims)
            .map_err(|_| Unverified::Invalid)?;
        // Issued later than any clock this service runs on can be: not one of its tokens.
        let leeway = i64::try_from(LEEWAY.as_secs()).unwrap_or(i64::MAX);
        if claims.iat > now.and_utc().timestamp().saturating_add(leeway) {
            return Err(Unverified::Invalid);
        }
        let retires_at = verifier.retires_at.map(|at| at.and_utc().timestamp());
        Ok((claims, retires_at))
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::AtomicUsize;

    use futures_util::future::join_all;

    use super::*;

    const OLD: [u8; 32] = [1; 32];
    const NEW: [u8; 32] = [2; 32];

    fn jwks(tokens: &AccessTokens) -> serde_json::Value {
        serde_json::to_value(tokens.jwks()).unwrap()
    }

    fn far_future() -> NaiveDateTime {
        Utc::now().naive_utc() + chrono::TimeDelta::days(1)
    }

    fn tokens_of(seed: &[u8; 32]) -> AccessTokens {
        let keys = KeySet::from_ed25519_seed(seed).unwrap();
        AccessTokens::new(keys, "iss".into(), "aud".into(), Duration::from_secs(900))
    }

    fn token_of(seed: &[u8; 32]) -> String {
        tokens_of(seed)
            .issue(
                &"user".to_owned().into(),
                &"session".to_owned().into(),
                far_future(),
                AuthMethods::Password,
            )
            .unwrap()
            .token
    }

    /// `NEW` signs, `OLD` verifies until `old_retires_at`.
    fn rotated(old_retires_at: NaiveDateTime) -> KeySet {
        let mut keys = KeySet::from_ed25519_seed(&NEW).unwrap();
        let mut old = KeySet::from_ed25519_seed(&OLD).unwrap().verifying;
        old[0].retires_at = Some(old_retires_at);
        keys.verifying.append(&mut old);
        keys
    }

    /// Tokens verified with `OLD` whose reloads answer `reloaded` and are counted.
    fn reloading(reloaded: fn() -> KeySet) -> (AccessTokens, Arc<AtomicUsize>) {
        let loads = Arc::new(AtomicUsize::new(0));
        let counter = loads.clone();
        let tokens = tokens_of(&OLD).reloading_with(move || {
            let counter = counter.clone();
            async move {
                counter.fetch_add(1, Ordering::SeqCst);
                // A database read takes a while: callers arriving meanwhile must wait for it.
                tokio::time::sleep(Duration::from_millis(20)).await;
                Ok(reloaded())
            }
        });
        (tokens, loads)
    }

    #[tokio::test]
    async fn a_token_of_a_key_added_elsewhere_verifies_after_one_reload() {
        let (tokens, loads) = reloading(|| rotated(far_future()));
        let token = token_of(&NEW);
        assert_eq!(tokens.check(&token).unwrap_err(), Unverified::UnknownKey);

        assert!(tokens.verify_or_reload(&token).await.is_ok());

        assert_eq!(loads.load(Ordering::SeqCst), 1);
        assert!(tokens.verify(&token).is_ok(), "no reload needed any more");
        assert!(
            tokens.verify(&token_of(&OLD)).is_ok(),
            "the old key verifies"
        );
        let issued = tokens
            .issue(
                &"u".to_owned().into(),
                &"s".to_owned().into(),
                far_future(),
                AuthMethods::Password,
            )
            .unwrap()
            .token;
        let kid = decode_header(&issued).unwrap().kid.unwrap();
        assert_eq!(kid, decode_header(&token).unwrap().kid.unwrap());
        assert_eq!(jwks(&tokens)["keys"].as_array().unwrap().len(), 2);
    }

    #[tokio::test]
    async fn made_up_kids_cost_at_most_one_reload_per_second() {
        let (tokens, loads) = reloading(|| KeySet::from_ed25519_seed(&OLD).unwrap());
        let stranger = token_of(&NEW);
        let flood = || join_all((0..100).map(|_| tokens.verify_or_reload(&stranger)));

        // Many at once share one reload.
        assert!(flood().await.iter().all(Result::is_err));
        assert_eq!(loads.load(Ordering::SeqCst), 1);
        // Right after it, none.
        assert!(flood().await.iter().all(Result::is_err));
        assert_eq!(loads.load(Ordering::SeqCst), 1);
        // A second later, one more.
        tokio::time::sleep(UNKNOWN_KEY_RELOAD_SPACING).await;
        assert!(flood().await.iter().all(Result::is_err));
        assert_eq!(loads.load(Ordering::SeqCst), 2);
    }

    #[tokio::test]
    async fn tokens_that_no_reload_can_help_do_not_reload() {
        let (tokens, loads) = reloading(|| rotated(far_future()));
        let valid = token_of(&OLD);
        let tampered = format!("{valid}x");
        let secret = secrecy::SecretString::from("a shared secret of at least thirty-two bytes");
        let hs256 = AccessTokens::new(
            KeySet::from_secret(&secret),
            "iss".into(),
            "aud".into(),
            Duration::from_secs(900),
        )
        .issue(
            &"u".to_owned().into(),
            &"s".to_owned().into(),
            far_future(),
            AuthMethods::Password,
        )
        .unwrap()
        .token;

        assert!(tokens.verify_or_reload(&valid).await.is_ok());
        assert!(tokens.verify_or_reload(&tampered).await.is_err());
        assert!(tokens.verify_or_reload("garbage").await.is_err());
        assert_eq!(
            tokens.check(&hs256).unwrap_err(),
            Unverified::Invalid,
            "another algorithm"
        );
        assert!(tokens.verify_or_reload(&hs256).await.is_err());
        assert_eq!(loads.load(Ordering::SeqCst), 0);
    }

    #[test]
    fn a_retired_key_neither_verifies_nor_is_published() {
        let now = Utc::now().naive_utc();
        let tokens = tokens_of(&NEW);
        let old_token = token_of(&OLD);
        let kids = |tokens: &AccessTokens| -> Vec<String> {
            jwks(tokens)["keys"]
                .as_array()
                .unwrap()
                .iter()
                .map(|jwk| jwk["kid"].as_str().unwrap().to_owned())
                .collect()
        };
        let new_kid = decode_header(token_of(&NEW)).unwrap().kid.unwrap();
        let old_kid = decode_header(&old_token).unwrap().kid.unwrap();

        tokens.keys.store(Arc::new(Keys::new(
            rotated(now + chrono::TimeDelta::seconds(60)),
            "iss",
            "aud",
        )));
        assert!(tokens.verify(&old_token).is_ok());
        assert_eq!(kids(&tokens), [new_kid.clone(), old_kid]);

        tokens.keys.store(Arc::new(Keys::new(
            rotated(now - chrono::TimeDelta::seconds(1)),
            "iss",
            "aud",
        )));
        assert_eq!(tokens.check(&old_token).unwrap_err(), Unverified::Invalid);
        assert_eq!(kids(&tokens), [new_kid]);
    }
}
