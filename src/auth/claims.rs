//! What an access token says, and how much clock difference its checks tolerate: shared by
//! the keys (how long a replaced key verifies), the tokens (signing, verifying) and the cache
//! of verified tokens, none of which needs the others for it.

use std::time::Duration;

use serde::{Deserialize, Serialize};

/// Tolerated clock difference between the instance that signs and the one that verifies.
pub const LEEWAY: Duration = Duration::from_secs(5);

/// The claims of an access token (RFC 9068): `sub` is the user, `sid` the session, `amr`
/// how its session's login proved who it was (RFC 8176: `pwd`, `otp`).
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
    /// Absent from tokens signed before sessions recorded it.
    #[serde(default)]
    pub amr: Vec<String>,
}
