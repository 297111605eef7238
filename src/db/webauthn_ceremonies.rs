//! The `webauthn_ceremonies` table: passkey registrations and logins started and not yet
//! finished, found by the digest of their id.

use chrono::NaiveDateTime;
use diesel::prelude::*;

use super::DbConn;
use super::schema::webauthn_ceremonies;
use crate::domain::{CeremonyPurpose, UserId};

/// A ceremony to store.
pub struct NewCeremony<'a> {
    pub id_hash: &'a [u8],
    /// `register`, `login` or `signup`: a ceremony is finished only as what it was started for.
    pub purpose: CeremonyPurpose,
    /// Who the open ceremonies are counted against (see the migration).
    pub owner: &'a str,
    /// The account a registration is for.
    pub user_id: Option<&'a UserId>,
    pub state: &'a str,
    pub now: NaiveDateTime,
    pub expires_at: NaiveDateTime,
}

pub fn insert(conn: &mut DbConn, ceremony: &NewCeremony<'_>) -> QueryResult<()> {
    diesel::insert_into(webauthn_ceremonies::table)
        .values((
            webauthn_ceremonies::id_hash.eq(ceremony.id_hash),
            webauthn_ceremonies::purpose.eq(ceremony.purpose),
            webauthn_ceremonies::owner.eq(ceremony.owner),
            webauthn_ceremonies::user_id.eq(ceremony.user_id),
            webauthn_ceremonies::state.eq(ceremony.state),
            webauthn_ceremonies::created_at.eq(ceremony.now),
            webauthn_ceremonies::expires_at.eq(ceremony.expires_at),
        ))
        .execute(conn)
        .map(drop)
}

/// Takes the live ceremony with this id digest, started for `purpose` (and, for a
/// registration, for this account): deletes it and answers its state. Of two concurrent
/// finishes, one gets the state and the other nothing.
pub fn take(
    conn: &mut DbConn,
    id_hash: &[u8],
    purpose: CeremonyPurpose,
    user_id: Option<&UserId>,
    now: NaiveDateTime,
) -> QueryResult<Option<String>> {
    let matching = webauthn_ceremonies::table
        .filter(webauthn_ceremonies::id_hash.eq(id_hash))
        .filter(webauthn_ceremonies::purpose.eq(purpose))
        .filter(webauthn_ceremonies::expires_at.gt(now));
    let taken = match user_id {
        Some(user_id) => diesel::delete(matching.filter(webauthn_ceremonies::user_id.eq(user_id)))
            .returning(webauthn_ceremonies::state)
            .get_result(conn),
        None => diesel::delete(matching.filter(webauthn_ceremonies::user_id.is_null()))
            .returning(webauthn_ceremonies::state)
            .get_result(conn),
    };
    taken.optional()
}

/// When the owner's live ceremonies expire, soonest first, at most `limit` of them.
pub fn live_expiries(
    conn: &mut DbConn,
    owner: &str,
    now: NaiveDateTime,
    limit: i64,
) -> QueryResult<Vec<NaiveDateTime>> {
    webauthn_ceremonies::table
        .filter(webauthn_ceremonies::owner.eq(owner))
        .filter(webauthn_ceremonies::expires_at.gt(now))
        .order(webauthn_ceremonies::expires_at.asc())
        .limit(limit)
        .select(webauthn_ceremonies::expires_at)
        .load(conn)
}

/// Ends the owner's ceremonies but the newest `keep`.
pub fn keep_newest(conn: &mut DbConn, owner: &str, keep: i64) -> QueryResult<usize> {
    let older: Vec<Vec<u8>> = webauthn_ceremonies::table
        .filter(webauthn_ceremonies::owner.eq(owner))
        .order((
            webauthn_ceremonies::created_at.desc(),
            webauthn_ceremonies::id_hash.desc(),
        ))
        .offset(keep)
        .limit(i64::MAX)
        .select(webauthn_ceremonies::id_hash)
        .load(conn)?;
    if older.is_empty() {
        return Ok(0);
    }
    diesel::delete(webauthn_ceremonies::table.filter(webauthn_ceremonies::id_hash.eq_any(older)))
        .execute(conn)
}

/// Deletes the ceremonies that expired at or before `cutoff`.
pub fn prune_expired(conn: &mut DbConn, cutoff: NaiveDateTime) -> QueryResult<usize> {
    diesel::delete(webauthn_ceremonies::table.filter(webauthn_ceremonies::expires_at.le(cutoff)))
        .execute(conn)
}
