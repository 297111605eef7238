//! The `totp_factors` table: an account's TOTP secret, pending until a first code confirms
//! it, and the newest time step a code was accepted for.

use chrono::NaiveDateTime;
use diesel::prelude::*;

use super::schema::totp_factors;
use super::{DbConn, REDACTED};
use crate::domain::UserId;

#[derive(Clone, Queryable, Selectable)]
#[diesel(table_name = totp_factors)]
pub struct TotpFactor {
    pub user_id: UserId,
    /// As stored: sealed when a vault key is configured (see `auth::key_vault`).
    pub secret: Vec<u8>,
    pub created_at: NaiveDateTime,
    /// `None` while the enrolment waits for its first code.
    pub confirmed_at: Option<NaiveDateTime>,
    pub last_used_step: Option<i64>,
}

impl std::fmt::Debug for TotpFactor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TotpFactor")
            .field("user_id", &self.user_id)
            .field("secret", &REDACTED)
            .field("created_at", &self.created_at)
            .field("confirmed_at", &self.confirmed_at)
            .field("last_used_step", &self.last_used_step)
            .finish()
    }
}

pub fn find(conn: &mut DbConn, user_id: &UserId) -> QueryResult<Option<TotpFactor>> {
    totp_factors::table
        .find(user_id)
        .select(TotpFactor::as_select())
        .get_result(conn)
        .optional()
}

/// Stores a new pending secret for the account, replacing a pending one; a confirmed factor
/// is left alone. Answers how many rows it wrote: 0 when the account's factor is confirmed.
pub fn replace_pending(
    conn: &mut DbConn,
    user_id: &UserId,
    secret: &[u8],
    now: NaiveDateTime,
) -> QueryResult<usize> {
    diesel::delete(
        totp_factors::table
            .find(user_id)
            .filter(totp_factors::confirmed_at.is_null()),
    )
    .execute(conn)?;
    let row = (
        totp_factors::user_id.eq(user_id),
        totp_factors::secret.eq(secret),
        totp_factors::created_at.eq(now),
    );
    per_backend!(conn, |conn| diesel::insert_into(totp_factors::table)
        .values(row)
        .on_conflict_do_nothing()
        .execute(conn))
}

/// Records that a code of `step` was accepted, if no code of that step or a later one was:
/// of two concurrent uses of one code, one changes the row and the other nothing. Answers
/// how many rows changed.
pub fn use_step(conn: &mut DbConn, user_id: &UserId, step: i64) -> QueryResult<usize> {
    diesel::update(
        totp_factors::table.find(user_id).filter(
            totp_factors::last_used_step
                .is_null()
                .or(totp_factors::last_used_step.lt(step)),
        ),
    )
    .set(totp_factors::last_used_step.eq(step))
    .execute(conn)
}

/// Confirms the pending factor if its secret is still `secret` (the one a code was checked
/// against: a new enrolment may have replaced it meanwhile). Answers how many rows changed.
pub fn confirm(
    conn: &mut DbConn,
    user_id: &UserId,
    secret: &[u8],
    now: NaiveDateTime,
) -> QueryResult<usize> {
    diesel::update(
        totp_factors::table
            .find(user_id)
            .filter(totp_factors::confirmed_at.is_null())
            .filter(totp_factors::secret.eq(secret)),
    )
    .set(totp_factors::confirmed_at.eq(Some(now)))
    .execute(conn)
}

pub fn delete(conn: &mut DbConn, user_id: &UserId) -> QueryResult<usize> {
    diesel::delete(totp_factors::table.find(user_id)).execute(conn)
}

/// Every stored secret (`latchkey keys encrypt` seals the plain ones).
pub fn list(conn: &mut DbConn) -> QueryResult<Vec<TotpFactor>> {
    totp_factors::table
        .select(TotpFactor::as_select())
        .load(conn)
}

/// Replaces a secret's stored form, if it is still `old` (sealing it in place).
pub fn replace_secret(
    conn: &mut DbConn,
    user_id: &UserId,
    old: &[u8],
    new: &[u8],
) -> QueryResult<usize> {
    diesel::update(
        totp_factors::table
            .find(user_id)
            .filter(totp_factors::secret.eq(old)),
    )
    .set(totp_factors::secret.eq(new))
    .execute(conn)
}
