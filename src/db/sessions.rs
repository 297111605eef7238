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
use crate::domain::{AuthMethods, RevokeReason, SessionId, UserId};

#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = sessions)]
pub struct Session {
    pub id: SessionId,
    pub user_id: UserId,
    pub created_at: NaiveDateTime,
    pub last_used_at: NaiveDateTime,
    pub expires_at: NaiveDateTime,
    pub revoked_at: Option<NaiveDateTime>,
    pub revoked_reason: Option<RevokeReason>,
    pub user_agent: Option<String>,
    pub ip: Option<String>,
    /// How its login proved who it was.
    pub amr: AuthMethods,
}

#[derive(Debug, Insertable)]
#[diesel(table_name = sessions)]
pub struct NewSession<'a> {
    pub id: &'a SessionId,
    pub user_id: &'a UserId,
    pub created_at: NaiveDateTime,
    pub last_used_at: NaiveDateTime,
    pub expires_at: NaiveDateTime,
    pub user_agent: Option<&'a str>,
    pub ip: Option<&'a str>,
    /// The digest of its refresh tokens' family (see `auth::refresh_token`).
    pub refresh_family_hash: Option<&'a [u8]>,
    pub amr: AuthMethods,
}

/// The instant a session is judged at: `now`, and the oldest `last_used_at` that is not yet
/// idle for too long. One type, so that the SQL filter ([`live_at`]) and the Rust check
/// ([`Session::is_live`]) cannot disagree.
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

/// [`Session::is_live`] as SQL.
#[diesel::dsl::auto_type]
fn live_at(at: Liveness) -> _ {
    let now: NaiveDateTime = at.now;
    let idle_cutoff: NaiveDateTime = at.idle_cutoff;
    sessions::revoked_at
        .is_null()
        .and(sessions::expires_at.gt(now))
        .and(sessions::last_used_at.gt(idle_cutoff))
}

pub fn insert(conn: &mut DbConn, session: &NewSession<'_>) -> QueryResult<()> {
    diesel::insert_into(sessions::table)
        .values(session)
        .execute(conn)
        .map(drop)
}

pub fn find(conn: &mut DbConn, id: &SessionId) -> QueryResult<Option<Session>> {
    per_backend!(conn, |conn| sessions::table
        .find(id)
        .select(Session::as_select())
        .get_result(conn)
        .optional())
}

/// The session whose refresh tokens are of the family with this digest.
pub fn find_by_refresh_family(
    conn: &mut DbConn,
    family_hash: &[u8],
) -> QueryResult<Option<Session>> {
    sessions::table
        .filter(sessions::refresh_family_hash.eq(family_hash))
        .select(Session::as_select())
        .get_result(conn)
        .optional()
}

/// The sessions among `ids` that exist, each with its user, in one query whose prepared
/// statement is reused whatever the number of ids: PostgreSQL takes them as one array
/// (`= ANY($1)`); on SQLite, diesel writes `IN (?, ?, …)` with a placeholder per id and
/// prepares it anew every time, so they travel as one JSON array ([`IdInJsonArray`]).
pub fn find_many_with_user(
    conn: &mut DbConn,
    ids: &[SessionId],
) -> QueryResult<Vec<(Session, User)>> {
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
    fn of(ids: &[SessionId]) -> QueryResult<Self> {
        let ids: Vec<&str> = ids.iter().map(SessionId::as_str).collect();
        let ids = serde_json::to_string(&ids)
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
pub fn list_live(conn: &mut DbConn, user_id: &UserId, at: Liveness) -> QueryResult<Vec<Session>> {
    sessions::table
        .filter(sessions::user_id.eq(user_id))
        .filter(live_at(at))
        .order((sessions::last_used_at.desc(), sessions::id.desc()))
        .select(Session::as_select())
        .load(conn)
}

/// Whether the session is the user's and live at `at`. On PostgreSQL the row stays
/// share-locked until the transaction ends, so that a concurrent revocation waits for it (and
/// one committed first is seen); SQLite's write transactions are serialised anyway.
pub fn is_live_locked(
    conn: &mut DbConn,
    id: &SessionId,
    user_id: &UserId,
    at: Liveness,
) -> QueryResult<bool> {
    let query = sessions::table
        .find(id)
        .filter(sessions::user_id.eq(user_id))
        .filter(live_at(at))
        .select(sessions::id);
    let found = match conn {
        DbConn::Postgres(pg) => query.for_share().get_result::<SessionId>(pg).optional()?,
        DbConn::Sqlite(sqlite) => query.get_result::<SessionId>(sqlite).optional()?,
    };
    Ok(found.is_some())
}

pub fn touch(conn: &mut DbConn, id: &SessionId, now: NaiveDateTime) -> QueryResult<usize> {
    diesel::update(sessions::table.find(id))
        .set(sessions::last_used_at.eq(now))
        .execute(conn)
}

/// Which of a user's sessions a revocation ends.
#[derive(Debug, Clone, Copy)]
pub enum Which<'a> {
    One(&'a SessionId),
    AllBut(&'a SessionId),
    All,
    /// All but the newest this many.
    AllButNewest(usize),
}

/// Revokes the user's sessions that `which` names and that are live at `at`; answers their
/// ids, oldest first. Sessions that already ended by themselves are left as they ended.
pub fn revoke_live(
    conn: &mut DbConn,
    user_id: &UserId,
    which: Which<'_>,
    at: Liveness,
    reason: RevokeReason,
) -> QueryResult<Vec<SessionId>> {
    let mut targets = diesel::update(sessions::table)
        .filter(sessions::user_id.eq(user_id))
        .filter(live_at(at))
        .set((
            sessions::revoked_at.eq(at.now),
            sessions::revoked_reason.eq(reason),
        ))
        .into_boxed();
    targets = match which {
        Which::One(id) => targets.filter(sessions::id.eq(id)),
        Which::AllBut(id) => targets.filter(sessions::id.ne(id)),
        Which::All => targets,
        Which::AllButNewest(kept) => {
            // Ids are UUIDv7: their order is the order the sessions began in. The newest
            // beyond those kept, if any, and every live one before it, end.
            let newest_beyond: Option<SessionId> = sessions::table
                .filter(sessions::user_id.eq(user_id))
                .filter(live_at(at))
                .order(sessions::id.desc())
                .offset(i64::try_from(kept).unwrap_or(i64::MAX))
                .select(sessions::id)
                .first(conn)
                .optional()?;
            match newest_beyond {
                Some(id) => targets.filter(sessions::id.le(id)),
                None => return Ok(Vec::new()),
            }
        }
    };
    let mut revoked: Vec<SessionId> = targets.returning(sessions::id).get_results(conn)?;
    // Oldest first (ids are UUIDv7), whatever order the database returned them in.
    revoked.sort_unstable();
    Ok(revoked)
}

/// How many live sessions each user with any has.
pub fn count_live_by_user(conn: &mut DbConn, at: Liveness) -> QueryResult<Vec<(UserId, i64)>> {
    sessions::table
        .filter(live_at(at))
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
