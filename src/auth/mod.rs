//! The rules of authentication, free of HTTP: password hashing on a bounded pool, signing
//! keys and access tokens, refresh-token rotation and the life of a session.

pub mod accounts;
pub mod events;
pub mod hash_pool;
pub mod keys;
pub mod passwords;
pub mod refresh_token;
pub mod session_checks;
pub mod sessions;
pub mod throttle;
pub mod tokens;
pub mod verified_tokens;
