//! The `one_time_codes` table: the codes mailed to accounts, one live row per account and
//! purpose, kept as keyed hashes (see `auth::codes`).

use chrono::NaiveDateTime;
use diesel::prelude::*;

use super::DbConn;
use super::schema::one_time_codes;
use crate::domain::{CodePurpose, UserId};

/// A code as issued: its hash, for whom, and until when.
#[derive(Debug, Insertable)]
#[diesel(table_name = one_time_codes)]
pub struct NewCode<'a> {
    pub id: &'a str,
    pub user_id: &'a UserId,
    pub purpose: CodePurpose,
    pub email: &'a str,
    pub code_hash: &'a [u8],
    pub created_at: NaiveDateTime,
    pub expires_at: NaiveDateTime,
}

/// What a live code is for.
#[derive(Debug, Clone, Queryable)]
pub struct LiveCode {
    pub id: String,
    pub user_id: UserId,
    pub purpose: CodePurpose,
}

/// Stores `code` as the account's code for its purpose: a new one replaces the older, its
/// tries and use forgotten with it.
pub fn replace(conn: &mut DbConn, code: &NewCode<'_>) -> QueryResult<()> {
    let fresh = (
        one_time_codes::id.eq(code.id),
        one_time_codes::email.eq(code.email),
        one_time_codes::code_hash.eq(code.code_hash),
        one_time_codes::created_at.eq(code.created_at),
        one_time_codes::expires_at.eq(code.expires_at),
        one_time_codes::attempts.eq(0),
        one_time_codes::used_at.eq(None::<NaiveDateTime>),
    );
    per_backend!(conn, |conn| diesel::insert_into(one_time_codes::table)
        .values(code)
        .on_conflict((one_time_codes::user_id, one_time_codes::purpose))
        .do_update()
        .set(fresh)
        .execute(conn)
        .map(drop))
}

/// The unused, unexpired code with this hash sent to `email` for `purpose`, if it has
/// tries left.
pub fn find_live(
    conn: &mut DbConn,
    code_hash: &[u8],
    email: &str,
    purpose: CodePurpose,
    now: NaiveDateTime,
    max_attempts: i32,
) -> QueryResult<Option<LiveCode>> {
    one_time_codes::table
        .filter(one_time_codes::code_hash.eq(code_hash))
        .filter(one_time_codes::email.eq(email))
        .filter(one_time_codes::purpose.eq(purpose))
        .filter(one_time_codes::used_at.is_null())
        .filter(one_time_codes::attempts.lt(max_attempts))
        .filter(one_time_codes::expires_at.gt(now))
        .select((
            one_time_codes::id,
            one_time_codes::user_id,
            one_time_codes::purpose,
        ))
        .get_result(conn)
        .optional()
}

/// Uses up code `id` if it is still live: of two concurrent uses, one changes the row and the
/// other finds nothing to change. Answers how many rows changed.
pub fn consume(
    conn: &mut DbConn,
    id: &str,
    now: NaiveDateTime,
    max_attempts: i32,
) -> QueryResult<usize> {
    diesel::update(
        one_time_codes::table
            .find(id)
            .filter(one_time_codes::used_at.is_null())
            .filter(one_time_codes::attempts.lt(max_attempts))
            .filter(one_time_codes::expires_at.gt(now)),
    )
    .set(one_time_codes::used_at.eq(Some(now)))
    .execute(conn)
}

/// Counts a wrong try against every live code sent to `email` for one of `purposes`.
pub fn count_wrong_try(
    conn: &mut DbConn,
    email: &str,
    purposes: &[CodePurpose],
    now: NaiveDateTime,
) -> QueryResult<usize> {
    diesel::update(
        one_time_codes::table
            .filter(one_time_codes::email.eq(email))
            .filter(one_time_codes::purpose.eq_any(purposes))
            .filter(one_time_codes::used_at.is_null())
            .filter(one_time_codes::expires_at.gt(now)),
    )
    .set(one_time_codes::attempts.eq(one_time_codes::attempts + 1))
    .execute(conn)
}

/// Deletes the account's codes (all of them, or those of one purpose).
pub fn delete_for(
    conn: &mut DbConn,
    user_id: &UserId,
    purpose: Option<CodePurpose>,
) -> QueryResult<usize> {
    let owned = one_time_codes::table.filter(one_time_codes::user_id.eq(user_id));
    match purpose {
        Some(purpose) => {
            diesel::delete(owned.filter(one_time_codes::purpose.eq(purpose))).execute(conn)
        }
        None => diesel::delete(owned).execute(conn),
    }
}

/// Deletes the codes that expired at or before `cutoff`.
pub fn prune_expired(conn: &mut DbConn, cutoff: NaiveDateTime) -> QueryResult<usize> {
    diesel::delete(one_time_codes::table.filter(one_time_codes::expires_at.le(cutoff)))
        .execute(conn)
}
