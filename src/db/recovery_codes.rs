//! The `recovery_codes` table: an account's recovery codes, as keyed hashes, each used once.

use chrono::NaiveDateTime;
use diesel::prelude::*;

use super::DbConn;
use super::schema::recovery_codes;
use crate::domain::UserId;

/// Replaces the account's recovery codes with these hashes.
pub fn replace_all(conn: &mut DbConn, user_id: &UserId, hashes: &[Vec<u8>]) -> QueryResult<()> {
    delete_all(conn, user_id)?;
    for hash in hashes {
        diesel::insert_into(recovery_codes::table)
            .values((
                recovery_codes::id.eq(uuid::Uuid::now_v7().to_string()),
                recovery_codes::user_id.eq(user_id),
                recovery_codes::code_hash.eq(hash.as_slice()),
            ))
            .execute(conn)?;
    }
    Ok(())
}

/// Uses up the account's unused code with this hash, if there is one: of two concurrent uses
/// one changes the row and the other nothing. Answers how many rows changed.
pub fn use_code(
    conn: &mut DbConn,
    user_id: &UserId,
    code_hash: &[u8],
    now: NaiveDateTime,
) -> QueryResult<usize> {
    diesel::update(
        recovery_codes::table
            .filter(recovery_codes::user_id.eq(user_id))
            .filter(recovery_codes::code_hash.eq(code_hash))
            .filter(recovery_codes::used_at.is_null()),
    )
    .set(recovery_codes::used_at.eq(Some(now)))
    .execute(conn)
}

pub fn delete_all(conn: &mut DbConn, user_id: &UserId) -> QueryResult<usize> {
    diesel::delete(recovery_codes::table.filter(recovery_codes::user_id.eq(user_id))).execute(conn)
}
