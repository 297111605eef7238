//! The `mfa_challenges` table: logins whose password was right and that owe their second
//! factor, found by the digest of their token.

use chrono::NaiveDateTime;
use diesel::prelude::*;

use super::DbConn;
use super::schema::mfa_challenges;
use crate::domain::UserId;

pub fn insert(
    conn: &mut DbConn,
    token_hash: &[u8],
    user_id: &UserId,
    now: NaiveDateTime,
    expires_at: NaiveDateTime,
) -> QueryResult<()> {
    diesel::insert_into(mfa_challenges::table)
        .values((
            mfa_challenges::token_hash.eq(token_hash),
            mfa_challenges::user_id.eq(user_id),
            mfa_challenges::created_at.eq(now),
            mfa_challenges::expires_at.eq(expires_at),
        ))
        .execute(conn)
        .map(drop)
}

/// The account of the live challenge with this token digest: unused, unexpired, with fewer
/// than `max_wrong` wrong codes.
pub fn find_live(
    conn: &mut DbConn,
    token_hash: &[u8],
    now: NaiveDateTime,
    max_wrong: i32,
) -> QueryResult<Option<UserId>> {
    live(token_hash, now, max_wrong)
        .select(mfa_challenges::user_id)
        .get_result(conn)
        .optional()
}

/// Uses up the challenge if it is still live. Answers how many rows changed: of two
/// concurrent uses, one gets 1.
pub fn consume(
    conn: &mut DbConn,
    token_hash: &[u8],
    now: NaiveDateTime,
    max_wrong: i32,
) -> QueryResult<usize> {
    diesel::update(live(token_hash, now, max_wrong))
        .set(mfa_challenges::used_at.eq(Some(now)))
        .execute(conn)
}

/// Counts a wrong code against the challenge if it is still live. Answers how many rows
/// changed: of concurrent wrong codes, no more than `max_wrong` are ever counted (and so
/// judged).
pub fn count_wrong_code(
    conn: &mut DbConn,
    token_hash: &[u8],
    now: NaiveDateTime,
    max_wrong: i32,
) -> QueryResult<usize> {
    diesel::update(live(token_hash, now, max_wrong))
        .set(mfa_challenges::wrong_codes.eq(mfa_challenges::wrong_codes + 1))
        .execute(conn)
}

#[diesel::dsl::auto_type]
fn live<'a>(token_hash: &'a [u8], now: NaiveDateTime, max_wrong: i32) -> _ {
    mfa_challenges::table
        .filter(mfa_challenges::token_hash.eq(token_hash))
        .filter(mfa_challenges::used_at.is_null())
        .filter(mfa_challenges::expires_at.gt(now))
        .filter(mfa_challenges::wrong_codes.lt(max_wrong))
}

/// Ends the account's challenges but the newest `keep`.
pub fn keep_newest(conn: &mut DbConn, user_id: &UserId, keep: i64) -> QueryResult<usize> {
    let older: Vec<Vec<u8>> = mfa_challenges::table
        .filter(mfa_challenges::user_id.eq(user_id))
        .order((
            mfa_challenges::created_at.desc(),
            mfa_challenges::token_hash.desc(),
        ))
        .offset(keep)
        .limit(i64::MAX)
        .select(mfa_challenges::token_hash)
        .load(conn)?;
    if older.is_empty() {
        return Ok(0);
    }
    diesel::delete(mfa_challenges::table.filter(mfa_challenges::token_hash.eq_any(older)))
        .execute(conn)
}

/// Ends the account's pending challenges (its password or its factor changed).
pub fn delete_for(conn: &mut DbConn, user_id: &UserId) -> QueryResult<usize> {
    diesel::delete(mfa_challenges::table.filter(mfa_challenges::user_id.eq(user_id))).execute(conn)
}

/// Deletes the challenges that expired at or before `cutoff`.
pub fn prune_expired(conn: &mut DbConn, cutoff: NaiveDateTime) -> QueryResult<usize> {
    diesel::delete(mfa_challenges::table.filter(mfa_challenges::expires_at.le(cutoff)))
        .execute(conn)
}
