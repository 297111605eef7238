//! The rules of authentication, free of HTTP: every flow of an account and its sessions is a
//! function here that owns its transaction, records its security event, and answers a domain
//! outcome; handlers parse the request, call one of them and shape the response.
//!
//! | endpoint or command | its rule |
//! |---|---|
//! | `POST /signup` | [`accounts::sign_up`] |
//! | `POST /login` | [`login::attempt`] |
//! | `POST /login/mfa` | [`mfa::complete_login`] |
//! | `POST /me/mfa/totp`, `/confirm`, `DELETE /me/mfa/totp` | [`mfa::enrol`], [`mfa::confirm`], [`mfa::disable`] |
//! | `POST /me/passkeys/register/start`, `/finish` | [`passkeys::start_registration`], [`passkeys::finish_registration`] |
//! | `GET /me/passkeys`, `PATCH` and `DELETE /me/passkeys/{id}` | [`passkeys::list`], [`passkeys::rename`], [`passkeys::remove`] |
//! | `POST /signup/passkey/start`, `/finish` | [`passkeys::start_signup`], [`passkeys::finish_signup`] |
//! | `POST /login/passkey/start`, `/finish` | [`passkeys::start_login`], [`passkeys::finish_login`] |
//! | `POST /refresh` | [`sessions::refresh`] |
//! | `POST /logout` | [`sessions::log_out`] |
//! | every bearer-authenticated request, `GET /me` | [`sessions::authenticate`] |
//! | `POST /me/password` | [`accounts::change_password`] |
//! | `POST /password/forgot`, `POST /password/reset` | [`recovery::forgot`], [`recovery::reset`] |
//! | `POST /email/verify` | [`email::verify`] |
//! | `POST /me/email/verification`, `POST /me/email` | [`email::resend_verification`], [`email::request_change`] |
//! | `DELETE /me` | [`accounts::delete`] |
//! | `GET /me/events` | [`events::page`] |
//! | `GET /sessions` | [`sessions::list`] |
//! | `DELETE /sessions/{id}` | [`sessions::end_one`] |
//! | `GET /.well-known/jwks.json` | [`tokens::AccessTokens::jwks`] |
//! | `latchkey user create` | [`accounts::create`] |
//! | `latchkey user list`, `disable`, `enable` | [`accounts::list`], [`accounts::disable`], [`accounts::enable`] |
//! | `latchkey sessions revoke` | [`accounts::end_sessions`] |
//! | `latchkey keys list`, `rotate` | [`keys::list`], [`keys::rotate`] |

pub mod accounts;
pub mod claims;
pub mod client;
pub mod codes;
pub mod email;
pub mod events;
pub mod hash_pool;
pub mod key_vault;
pub mod keys;
pub mod login;
pub mod mfa;
pub mod outbox;
pub mod passkeys;
pub mod passwords;
pub mod recovery;
pub mod refresh_token;
pub mod relying_party;
pub mod session_checks;
pub mod sessions;
pub mod throttle;
pub mod tokens;
pub mod totp;
pub mod verified_tokens;

use tokio::sync::Semaphore;

use crate::db::Db;

/// What the flows of a running server share, built once at start-up.
pub struct Auth {
    pub db: Db,
    pub passwords: passwords::Passwords,
    pub tokens: tokens::AccessTokens,
    /// The session check of every authenticated request (read in batches).
    pub session_checks: session_checks::SessionChecks,
    pub sessions: sessions::SessionPolicy,
    pub throttle: throttle::ThrottlePolicy,
    /// Signups and mail requests refused per key, remembered until their `Retry-After`.
    pub quota_refusals: throttle::QuotaRefusals,
    /// Records failed and throttled logins after their answer.
    pub refusals: events::Recorder,
    /// Logins counting their attempt in the database at once. Those from one address queue
    /// on one lock in PostgreSQL, each holding a connection while it waits: capped, a login
    /// flood cannot take the whole pool and make other routes answer 503.
    pub login_admissions: Semaphore,
    /// The codes mailed for resets and verifications (and the key of recovery codes).
    pub codes: codes::Codes,
    /// Second factors: the key sealing TOTP secrets, the issuer apps show.
    pub mfa: mfa::Factors,
    /// Passkeys: the WebAuthn relying party, or that passkeys are off.
    pub relying_party: relying_party::RelyingParty,
    /// Wakes this instance's mail worker.
    pub outbox: outbox::Outbox,
    /// Logins to accounts whose email is not verified are refused
    /// (`LATCHKEY_REQUIRE_VERIFIED_EMAIL`).
    pub require_verified_email: bool,
}
