//! Access tokens: JWTs with `typ: at+jwt` (RFC 9068). Verification pins the algorithm to the
//! key named by `kid` and checks `typ`, `iss`, `aud`, `exp` and `nbf` (RFC 8725).

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use chrono::{NaiveDateTime, Utc};
use jsonwebtoken::{Header, Validation, decode, decode_header, encode};
use serde::{Deserialize, Serialize};

use super::keys::{KeySet, SigningKey};
use super::verified_tokens::{self, VerifiedTokens};
use crate::error::Error;

const TOKEN_TYPE: &str = "at+jwt";
/// Tolerated clock difference between the instance that signs and the one that verifies.
const LEEWAY_SECONDS: u64 = 5;

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Claims {
    pub iss: String,
    pub aud: String,
    pub sub: String,
    pub sid: String,
    pub iat: i64,
    pub nbf: i64,
    pub exp: i64,
    pub jti: String,
}

pub struct IssuedToken {
    pub token: String,
    /// Seconds until the token expires.
    pub expires_in: i64,
}

struct Verifier {
    algorithm: jsonwebtoken::Algorithm,
    decoding: jsonwebtoken::DecodingKey,
    validation: Validation,
}

pub struct AccessTokens {
    issuer: String,
    audience: String,
    ttl: Duration,
    signing: SigningKey,
    verifiers: HashMap<String, Verifier>,
    verified: VerifiedTokens,
    jwks: serde_json::Value,
}

impl AccessTokens {
    pub fn new(keys: KeySet, issuer: String, audience: String, ttl: Duration) -> Self {
        let jwks = keys.jwks();
        let verifiers = keys
            .verifying
            .into_iter()
            .map(|key| {
                let mut validation = Validation::new(key.algorithm);
                validation.set_issuer(&[&issuer]);
                validation.set_audience(&[&audience]);
                validation.set_required_spec_claims(&["exp", "nbf", "iat", "iss", "aud", "sub"]);
                validation.validate_nbf = true;
                validation.leeway = LEEWAY_SECONDS;
                let verifier = Verifier {
                    algorithm: key.algorithm,
                    decoding: key.decoding,
                    validation,
                };
                (key.kid, verifier)
            })
            .collect();
        Self {
            issuer,
            audience,
            ttl,
            signing: keys.signing,
            verifiers,
            verified: VerifiedTokens::new(verified_tokens::DEFAULT_CAPACITY, LEEWAY_SECONDS),
            jwks,
        }
    }

    /// Signs a token for the session; it never outlives the session itself.
    pub fn issue(
        &self,
        user_id: &str,
        session_id: &str,
        session_expires_at: NaiveDateTime,
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
            sub: user_id.to_owned(),
            sid: session_id.to_owned(),
            iat: now,
            nbf: now,
            exp,
            jti: uuid::Uuid::now_v7().to_string(),
        };
        let mut header = Header::new(self.signing.algorithm);
        header.typ = Some(TOKEN_TYPE.to_owned());
        header.kid = Some(self.signing.kid.clone());
        let token = encode(&header, &claims, &self.signing.encoding).map_err(Error::internal)?;
        Ok(IssuedToken {
            token,
            expires_in: exp - now,
        })
    }

    /// Checks signature and claims (the signature only the first time a token is seen). Every
    /// failure is the same `InvalidToken`.
    pub fn verify(&self, token: &str) -> Result<Arc<Claims>, Error> {
        self.verified
            .claims(token, Utc::now().timestamp(), |token| self.check(token))
    }

    fn check(&self, token: &str) -> Result<Claims, Error> {
        let header = decode_header(token).map_err(|_| Error::InvalidToken)?;
        let typ_ok = header.typ.as_deref().is_some_and(|typ| {
            typ.eq_ignore_ascii_case(TOKEN_TYPE) || typ.eq_ignore_ascii_case("application/at+jwt")
        });
        let verifier = header
            .kid
            .as_deref()
            .and_then(|kid| self.verifiers.get(kid))
            .filter(|verifier| typ_ok && verifier.algorithm == header.alg)
            .ok_or(Error::InvalidToken)?;
        decode::<Claims>(token, &verifier.decoding, &verifier.validation)
            .map(|data| data.claims)
            .map_err(|_| Error::InvalidToken)
    }

    /// The public verification keys as a JWK Set.
    pub fn jwks(&self) -> &serde_json::Value {
        &self.jwks
    }
}
