//! The `outbox` table: mail waiting to go out (`done_at` NULL), and what became of the rest.

use chrono::NaiveDateTime;
use diesel::prelude::*;

use super::DbConn;
use super::schema::outbox;
use crate::domain::{MailKind, UserId};

#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = outbox)]
pub struct Message {
    pub id: String,
    pub kind: MailKind,
    pub recipient: String,
    pub user_id: Option<UserId>,
    /// The code the message carries; erased once it is sent or given up.
    pub code: Option<String>,
    pub detail: Option<String>,
    pub requested_ip: Option<String>,
    pub requested_user_agent: Option<String>,
    pub created_at: NaiveDateTime,
    pub next_attempt_at: NaiveDateTime,
    pub attempts: i32,
}

#[derive(Debug, Insertable)]
#[diesel(table_name = outbox)]
pub struct NewMessage<'a> {
    pub id: &'a str,
    pub kind: MailKind,
    pub recipient: &'a str,
    pub user_id: Option<&'a UserId>,
    pub code: Option<&'a str>,
    pub detail: Option<&'a str>,
    pub requested_ip: Option<&'a str>,
    pub requested_user_agent: Option<&'a str>,
    pub created_at: NaiveDateTime,
    pub next_attempt_at: NaiveDateTime,
}

pub fn insert(conn: &mut DbConn, message: &NewMessage<'_>) -> QueryResult<()> {
    diesel::insert_into(outbox::table)
        .values(message)
        .execute(conn)
        .map(drop)
}

/// Claims up to `limit` messages due at `now` for this worker: each is put off until
/// `lease_until`, so no other worker takes it meanwhile (and another does if this one dies),
/// and its attempt is counted. Runs in a write transaction; on PostgreSQL rows another
/// worker holds are skipped, not waited for.
pub fn claim(
    conn: &mut DbConn,
    now: NaiveDateTime,
    lease_until: NaiveDateTime,
    limit: i64,
) -> QueryResult<Vec<Message>> {
    let due = outbox::table
        .filter(outbox::done_at.is_null())
        .filter(outbox::next_attempt_at.le(now))
        .order(outbox::next_attempt_at.asc())
        .limit(limit)
        .select(outbox::id);
    let ids: Vec<String> = match conn {
        DbConn::Postgres(pg) => due.for_update().skip_locked().load(pg)?,
        DbConn::Sqlite(sqlite) => due.load(sqlite)?,
    };
    if ids.is_empty() {
        return Ok(Vec::new());
    }
    let claimed = diesel::update(outbox::table.filter(outbox::id.eq_any(&ids))).set((
        outbox::next_attempt_at.eq(lease_until),
        outbox::attempts.eq(outbox::attempts + 1),
    ));
    per_backend!(conn, |conn| claimed
        .returning(Message::as_returning())
        .get_results(conn))
}

/// Gives a message found its account: the account and the code it carries.
pub fn set_code(conn: &mut DbConn, id: &str, user_id: &UserId, code: &str) -> QueryResult<usize> {
    diesel::update(outbox::table.find(id))
        .set((
            outbox::user_id.eq(Some(user_id)),
            outbox::code.eq(Some(code)),
        ))
        .execute(conn)
}

/// Ends a message with `outcome` (`sent`, `no_account`, `failed`); its code is erased.
pub fn finish(
    conn: &mut DbConn,
    id: &str,
    outcome: &str,
    error: Option<&str>,
    now: NaiveDateTime,
) -> QueryResult<usize> {
    diesel::update(outbox::table.find(id))
        .set((
            outbox::done_at.eq(Some(now)),
            outbox::outcome.eq(Some(outcome)),
            outbox::code.eq(None::<String>),
            outbox::last_error.eq(error),
        ))
        .execute(conn)
}

/// Puts a failed message off until `at`.
pub fn retry_at(conn: &mut DbConn, id: &str, at: NaiveDateTime, error: &str) -> QueryResult<usize> {
    diesel::update(outbox::table.find(id))
        .set((
            outbox::next_attempt_at.eq(at),
            outbox::last_error.eq(Some(error)),
        ))
        .execute(conn)
}

/// How many messages wait, and when the oldest of them was written.
pub fn waiting(conn: &mut DbConn) -> QueryResult<(i64, Option<NaiveDateTime>)> {
    outbox::table
        .filter(outbox::done_at.is_null())
        .select((
            diesel::dsl::count_star(),
            diesel::dsl::min(outbox::created_at),
        ))
        .get_result(conn)
}

/// Deletes the messages done at or before `cutoff`.
pub fn prune_done(conn: &mut DbConn, cutoff: NaiveDateTime) -> QueryResult<usize> {
    diesel::delete(outbox::table.filter(outbox::done_at.le(cutoff))).execute(conn)
}
