//! The `server_secrets` table: secrets the service makes for itself once and every instance
//! shares.

use chrono::NaiveDateTime;
use diesel::prelude::*;

use super::DbConn;
use super::schema::server_secrets;

/// Stores `value` under `name` unless a value is there already (another instance's, made at
/// the same time): the first one stays.
pub fn insert_if_absent(
    conn: &mut DbConn,
    name: &str,
    value: &[u8],
    now: NaiveDateTime,
) -> QueryResult<()> {
    let row = (
        server_secrets::name.eq(name),
        server_secrets::value.eq(value),
        server_secrets::created_at.eq(now),
    );
    per_backend!(conn, |conn| diesel::insert_into(server_secrets::table)
        .values(row)
        .on_conflict_do_nothing()
        .execute(conn)
        .map(drop))
}

pub fn find(conn: &mut DbConn, name: &str) -> QueryResult<Option<Vec<u8>>> {
    server_secrets::table
        .find(name)
        .select(server_secrets::value)
        .get_result(conn)
        .optional()
}

/// Replaces the value stored under `name` if it still is `old`; answers how many rows changed.
pub fn replace(conn: &mut DbConn, name: &str, old: &[u8], new: &[u8]) -> QueryResult<usize> {
    diesel::update(
        server_secrets::table
            .find(name)
            .filter(server_secrets::value.eq(old)),
    )
    .set(server_secrets::value.eq(new))
    .execute(conn)
}
