//! The `refresh_tokens` table: one row per generation of a session's refresh token.

use chrono::NaiveDateTime;
use diesel::prelude::*;

use super::DbConn;
use super::schema::refresh_tokens;
use crate::domain::SessionId;

#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = refresh_tokens)]
pub struct RefreshToken {
    pub session_id: SessionId,
    pub generation: i32,
    pub token_hash: Vec<u8>,
    pub created_at: NaiveDateTime,
    pub retired_at: Option<NaiveDateTime>,
    pub successor: Option<Vec<u8>>,
}

#[derive(Debug, Insertable)]
#[diesel(table_name = refresh_tokens)]
pub struct NewRefreshToken<'a> {
    pub session_id: &'a SessionId,
    pub generation: i32,
    pub token_hash: &'a [u8],
    pub created_at: NaiveDateTime,
}

pub fn insert(conn: &mut DbConn, token: &NewRefreshToken<'_>) -> QueryResult<()> {
    diesel::insert_into(refresh_tokens::table)
        .values(token)
        .execute(conn)
        .map(drop)
}

pub fn find_by_hash(conn: &mut DbConn, token_hash: &[u8]) -> QueryResult<Option<RefreshToken>> {
    per_backend!(conn, |conn| refresh_tokens::table
        .filter(refresh_tokens::token_hash.eq(token_hash))
        .select(RefreshToken::as_select())
        .get_result(conn)
        .optional())
}

pub fn find(
    conn: &mut DbConn,
    session_id: &SessionId,
    generation: i32,
) -> QueryResult<Option<RefreshToken>> {
    refresh_tokens::table
        .find((session_id, generation))
        .select(RefreshToken::as_select())
        .get_result(conn)
        .optional()
}

/// Retires a generation if it is still current, recording its sealed successor. Answers 0
/// when another request retired it first: exactly one caller wins a rotation.
pub fn retire(
    conn: &mut DbConn,
    session_id: &SessionId,
    generation: i32,
    now: NaiveDateTime,
    sealed_successor: &[u8],
) -> QueryResult<usize> {
    diesel::update(
        refresh_tokens::table
            .find((session_id, generation))
            .filter(refresh_tokens::retired_at.is_null()),
    )
    .set((
        refresh_tokens::retired_at.eq(now),
        refresh_tokens::successor.eq(sealed_successor),
    ))
    .execute(conn)
}

/// Deletes the session's generations before `generation`, which no rule needs any more.
pub fn delete_before(
    conn: &mut DbConn,
    session_id: &SessionId,
    generation: i32,
) -> QueryResult<usize> {
    diesel::delete(
        refresh_tokens::table
            .filter(refresh_tokens::session_id.eq(session_id))
            .filter(refresh_tokens::generation.lt(generation)),
    )
    .execute(conn)
}
