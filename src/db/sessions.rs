//! The `sessions` table.

use chrono::NaiveDateTime;
use diesel::expression::{AppearsOnTable, ValidGrouping, is_aggregate};
use diesel::prelude::*;
use diesel::query_builder::{AstPass, QueryFragment, QueryId};
use diesel::sql_types::{Bool, Text};
use diesel::sqlite::Sqlite;

use super::DbConn;
use super::schema::{sessions, users};
use super::users::User;

#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = sessions)]
pub struct Session {
    pub id: String,
    pub user_id: String,
    pub created_at: NaiveDateTime,
    pub last_used_at: NaiveDateTime,
    pub expires_at: NaiveDateTime,
    pub revoked_at: Option<NaiveDateTime>,
    pub revoked_reason: Option<String>,
    pub user_agent: Option<String>,
    pub ip: Option<String>,
}

#[derive(Debug, Insertable)]
#[diesel(table_name = sessions)]
pub struct NewSession<'a> {
    pub id: &'a str,
    pub user_id: &'a str,
    pub created_at: NaiveDateTime,
    pub last_used_at: NaiveDateTime,
    pub expires_at: NaiveDateTime,
    pub user_agent: Option<&'a str>,
    pub ip: Option<&'a str>,
}

/// The instant a session is judged at: `now`, and the oldest `last_used_at` that is not yet
/// idle for too long. One type, so that the SQL filter and the Rust check cannot disagree.
#[derive(Debug, Clone, Copy)]
pub struct Liveness {
    pub now: NaiveDateTime,
    pub idle_cutoff: NaiveDateTime,
}

impl Session {
    /// Not revoked, before its absolute end, and used recently enough.
    pub fn is_live(&self, at: Liveness) -> bool {
        self.revoked_at.is_none() && self.expires_at > at.now && self.last_used_at > at.idle_cutoff
    }
}

pub fn insert(conn: &mut DbConn, session: &NewSession<'_>) -> QueryResult<()> {
    diesel::insert_into(sessions::table)
        .values(session)
        .execute(conn)
        .map(drop)
}

pub fn find(conn: &mut DbConn, id: &str) -> QueryResult<Option<Session>> {
    per_backend!(conn, |conn| sessions::table
        .find(id)
        .select(Session::as_select())
        .get_result(conn)
        .optional())
}

/// The sessions among `ids` that exist, each with its user, in one query whose prepared
/// statement is reused whatever the number of ids: PostgreSQL takes them as one array
/// (`= ANY($1)`); on SQLite, diesel writes `IN (?, ?, …)` with a placeholder per id and
/// prepares it anew every time, so they travel as one JSON array ([`IdInJsonArray`]).
pub fn find_many_with_user(conn: &mut DbConn, ids: &[String]) -> QueryResult<Vec<(Session, User)>> {
    let joined = sessions::table.inner_join(users::table);
    match conn {
        DbConn::Postgres(conn) => joined
            .filter(sessions::id.eq_any(ids))
            .select(<(Session, User)>::as_select())
            .load(conn),
        DbConn::Sqlite(conn) => joined
            .filter(IdInJsonArray::of(ids)?)
            .select(<(Session, User)>::as_select())
            .load(conn),
    }
}

/// `sessions.id IN (SELECT value FROM json_each(?))`, the ids bound as one JSON array: one
/// SQL text for any number of ids, so SQLite prepares it once. (diesel's `sql()` literals
/// are never cached, hence a type of its own.)
#[derive(Debug, Clone, QueryId)]
pub struct IdInJsonArray {
    ids: String,
}

impl IdInJsonArray {
    fn of(ids: &[String]) -> QueryResult<Self> {
        let ids = serde_json::to_string(ids)
            .map_err(|error| diesel::result::Error::SerializationError(Box::new(error)))?;
        Ok(Self { ids })
    }
}

impl Expression for IdInJsonArray {
    type SqlType = Bool;
}

impl ValidGrouping<()> for IdInJsonArray {
    type IsAggregate = is_aggregate::Never;
}

impl<QS> AppearsOnTable<QS> for IdInJsonArray where sessions::id: AppearsOnTable<QS> {}

impl QueryFragment<Sqlite> for IdInJsonArray {
    fn walk_ast<'b>(&'b self, mut out: AstPass<'_, 'b, Sqlite>) -> QueryResult<()> {
        sessions::id.walk_ast(out.reborrow())?;
        out.push_sql(" IN (SELECT value FROM json_each(");
        out.push_bind_param::<Text, _>(&self.ids)?;
        out.push_sql("))");
        Ok(())
    }
}

/// The user's live sessions, most recently used first.
pub fn list_live(conn: &mut DbConn, user_id: &str, at: Liveness) -> QueryResult<Vec<Session>> {
    sessions::table
        .filter(sessions::user_id.eq(user_id))
        .filter(sessions::revoked_at.is_null())
        .filter(sessions::expires_at.gt(at.now))
        .filter(sessions::last_used_at.gt(at.idle_cutoff))
        .order((sessions::last_used_at.desc(), sessions::id.desc()))
        .select(Session::as_select())
        .load(conn)
}

pub fn touch(conn: &mut DbConn, id: &str, now: NaiveDateTime) -> QueryResult<usize> {
    diesel::update(sessions::table.find(id))
        .set(sessions::last_used_at.eq(now))
        .execute(conn)
}

/// Revokes one session unless it already is; answers how many rows changed (0 or 1).
pub fn revoke(conn: &mut DbConn, id: &str, now: NaiveDateTime, reason: &str) -> QueryResult<usize> {
    diesel::update(
        sessions::table
            .find(id)
            .filter(sessions::revoked_at.is_null()),
    )
    .set((
        sessions::revoked_at.eq(now),
        sessions::revoked_reason.eq(reason),
    ))
    .execute(conn)
}

/// Revokes every unrevoked session of the user, except `keep` when given; answers the ids
/// of those that were live at `at` (the others had already ended by themselves).
pub fn revoke_all_of_user(
    conn: &mut DbConn,
    user_id: &str,
    keep: Option<&str>,
    at: Liveness,
    reason: &str,
) -> QueryResult<Vec<String>> {
    let targets = sessions::table
        .filter(sessions::user_id.eq(user_id))
        .filter(sessions::revoked_at.is_null())
        .filter(sessions::id.ne(keep.unwrap_or("")));
    let revoked: Vec<(String, NaiveDateTime, NaiveDateTime)> = diesel::update(targets)
        .set((
            sessions::revoked_at.eq(at.now),
            sessions::revoked_reason.eq(reason),
        ))
        .returning((sessions::id, sessions::expires_at, sessions::last_used_at))
        .get_results(conn)?;
    let mut live: Vec<String> = revoked
        .into_iter()
        .filter(|(_, expires_at, last_used_at)| {
            *expires_at > at.now && *last_used_at > at.idle_cutoff
        })
        .map(|(id, _, _)| id)
        .collect();
    // Oldest first (ids are UUIDv7), whatever order the database returned them in.
    live.sort_unstable();
    Ok(live)
}

/// Revokes every live session of the user; answers their ids.
pub fn revoke_live_of_user(
    conn: &mut DbConn,
    user_id: &str,
    at: Liveness,
    reason: &str,
) -> QueryResult<Vec<String>> {
    let targets = sessions::table
        .filter(sessions::user_id.eq(user_id))
        .filter(sessions::revoked_at.is_null())
        .filter(sessions::expires_at.gt(at.now))
        .filter(sessions::last_used_at.gt(at.idle_cutoff));
    diesel::update(targets)
        .set((
            sessions::revoked_at.eq(at.now),
            sessions::revoked_reason.eq(reason),
        ))
        .returning(sessions::id)
        .get_results(conn)
        .map(|mut ids: Vec<String>| {
            ids.sort_unstable();
            ids
        })
}

/// How many live sessions each user with any has.
pub fn count_live_by_user(conn: &mut DbConn, at: Liveness) -> QueryResult<Vec<(String, i64)>> {
    sessions::table
        .filter(sessions::revoked_at.is_null())
        .filter(sessions::expires_at.gt(at.now))
        .filter(sessions::last_used_at.gt(at.idle_cutoff))
        .group_by(sessions::user_id)
        .select((sessions::user_id, diesel::dsl::count_star()))
        .load(conn)
}

/// Deletes sessions that ended (revoked, expired or idle) before `cutoff`, with their
/// refresh tokens (ON DELETE CASCADE). `idle_timeout_cutoff` is `cutoff` minus the idle
/// timeout: a session last used before it had gone idle by `cutoff`.
pub fn delete_ended_before(
    conn: &mut DbConn,
    cutoff: NaiveDateTime,
    idle_timeout_cutoff: NaiveDateTime,
) -> QueryResult<usize> {
    diesel::delete(
        sessions::table.filter(
            sessions::revoked_at
                .lt(cutoff)
                .or(sessions::expires_at.lt(cutoff))
                .or(sessions::last_used_at.lt(idle_timeout_cutoff)),
        ),
    )
    .execute(conn)
}
