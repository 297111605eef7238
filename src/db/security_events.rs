//! The `security_events` table: what happened to each account, kept for its owner to read.

use chrono::NaiveDateTime;
use diesel::prelude::*;

use super::DbConn;
use super::schema::security_events;
use crate::domain::{EventKind, SessionId, UserId};

#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = security_events)]
pub struct SecurityEvent {
    pub id: String,
    pub user_id: UserId,
    pub kind: EventKind,
    pub at: NaiveDateTime,
    pub ip: Option<String>,
    pub user_agent: Option<String>,
    pub session_id: Option<SessionId>,
}

#[derive(Debug, Insertable)]
#[diesel(table_name = security_events)]
pub struct NewSecurityEvent<'a> {
    pub id: &'a str,
    pub user_id: &'a UserId,
    pub kind: EventKind,
    pub at: NaiveDateTime,
    pub ip: Option<&'a str>,
    pub user_agent: Option<&'a str>,
    pub session_id: Option<&'a SessionId>,
}

pub fn insert(conn: &mut DbConn, event: &NewSecurityEvent<'_>) -> QueryResult<()> {
    diesel::insert_into(security_events::table)
        .values(event)
        .execute(conn)
        .map(drop)
}

/// The user's events with an id below `before` (all of them without it), newest first, at
/// most `limit`. Ids are UUIDv7 in canonical text, so their order is the order in time.
pub fn list_before(
    conn: &mut DbConn,
    user_id: &UserId,
    before: Option<&str>,
    limit: i64,
) -> QueryResult<Vec<SecurityEvent>> {
    let mut query = security_events::table
        .filter(security_events::user_id.eq(user_id))
        .order(security_events::id.desc())
        .limit(limit)
        .select(SecurityEvent::as_select())
        .into_boxed();
    if let Some(before) = before {
        query = query.filter(security_events::id.lt(before));
    }
    query.load(conn)
}

/// Serialises the transactions that call it for this user until they end: PostgreSQL
/// would otherwise let two of them check for the same event and both insert it. SQLite's
/// write transactions already run one at a time.
pub fn lock_user(conn: &mut DbConn, user_id: &UserId) -> QueryResult<()> {
    super::lock_until_commit(conn, &format!("security_events:{user_id}"))
}

/// Whether the user has an event of this kind since `since`.
pub fn exists_since(
    conn: &mut DbConn,
    user_id: &UserId,
    kind: EventKind,
    since: NaiveDateTime,
) -> QueryResult<bool> {
    diesel::select(diesel::dsl::exists(
        security_events::table
            .filter(security_events::user_id.eq(user_id))
            .filter(security_events::kind.eq(kind))
            .filter(security_events::at.gt(since)),
    ))
    .get_result(conn)
}

/// Forgets events older than `cutoff`.
pub fn prune_before(conn: &mut DbConn, cutoff: NaiveDateTime) -> QueryResult<usize> {
    diesel::delete(security_events::table.filter(security_events::at.lt(cutoff))).execute(conn)
}
