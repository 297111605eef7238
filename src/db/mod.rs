//! Storage: one diesel connection type over SQLite and PostgreSQL, its pool, migrations, and
//! one repository module per table. This is the only place that writes SQL; it knows
//! nothing of HTTP or JWT.
//!
//! Lookups by a unique key use `get_result`, never `first`: `first` adds `LIMIT ?`, and
//! SQLite re-plans a statement whose `LIMIT` parameter is bound again, so a cached
//! statement would be parsed and planned anew on every request.

/// Runs `$body` with `$inner` bound to the backend's own connection instead of [`DbConn`]:
/// the derived multi-connection writes out the SQL text of a query again on every execution
/// (and converts every value it reads), which is dear for a query run on every request;
/// the backends' own connections find the prepared statement by the query's type. For the
/// queries of every request; `$body` is compiled once per backend.
macro_rules! per_backend {
    ($conn:expr, |$inner:ident| $body:expr) => {
        match $conn {
            $crate::db::DbConn::Postgres($inner) => $body,
            $crate::db::DbConn::Sqlite($inner) => $body,
        }
    };
}

mod clock;
mod connection;
pub mod login_failures;
pub mod mfa_challenges;
pub mod one_time_codes;
pub mod outbox;
pub mod passkeys;
mod pool;
pub mod recovery_codes;
pub mod refresh_tokens;
mod run;
pub mod schema;
pub mod security_events;
pub mod server_secrets;
pub mod sessions;
pub mod signing_keys;
pub mod totp_factors;
mod transaction;
mod url;
pub mod users;
pub mod webauthn_ceremonies;

use diesel::connection::SimpleConnection as _;
use diesel::result::QueryResult;

pub use clock::{now, span};
pub use connection::DbConn;
pub use pool::{Db, PoolOptions, PoolUse};
pub use transaction::{lock_until_commit, write_transaction};
pub use url::{Backend, DatabaseUrl};

/// What `Debug` shows in place of a secret column (a password hash, a private key).
const REDACTED: &str = "<redacted>";

/// Answers whether the database responds, for `/readyz`.
pub fn ping(conn: &mut DbConn) -> QueryResult<()> {
    conn.batch_execute("SELECT 1")
}
