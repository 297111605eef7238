//! Latchkey: signup, login, refresh-token rotation, sessions and logout over HTTP, on
//! SQLite or PostgreSQL. `main.rs` is the command line; everything else lives here so that
//! tests can build the real application.

pub mod auth;
pub mod cli;
pub mod config;
pub mod db;
pub mod domain;
pub mod error;
pub mod http;
pub mod mail;
pub mod maintenance;
pub mod metrics;
pub mod startup;
pub mod telemetry;
