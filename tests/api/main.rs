//! The integration tests: the real application over real HTTP, on SQLite and on
//! PostgreSQL, one module per concern. One test binary, so that the suite links once and
//! every helper in `support` is used by some module.

// Tests state their expectations with `unwrap` and `expect`: a panic is the failure report.
#![allow(clippy::unwrap_used)]

#[macro_use]
mod support;

mod cli;
mod cookies;
mod cors;
mod events;
mod exhaustion;
mod fuzz;
mod general_rules;
mod health;
mod hygiene;
mod key_rotation;
mod keys_at_rest;
mod login;
mod logout;
mod mail;
mod me;
mod metrics;
mod mfa;
mod openapi;
mod operator;
mod outage;
mod overload;
mod page;
mod passkeys;
mod processes;
mod recovery;
mod refresh;
mod sessions;
mod shutdown;
mod signup;
mod storage;
mod throttle;
mod tokens;
mod verification;
