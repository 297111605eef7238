//! The `passkeys` table: the accounts' WebAuthn credentials.

use chrono::NaiveDateTime;
use diesel::prelude::*;

use super::DbConn;
use super::schema::passkeys;
use crate::domain::{PasskeyId, UserId};

#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = passkeys)]
pub struct StoredPasskey {
    pub id: PasskeyId,
    pub user_id: UserId,
    pub credential_id: Vec<u8>,
    /// webauthn-rs's `Passkey` as JSON: the public key, its counter and backup flags.
    pub credential: String,
    pub name: String,
    pub created_at: NaiveDateTime,
    pub last_used_at: Option<NaiveDateTime>,
}

/// Inserts a passkey; `Ok(false)` if its credential id is registered already (to any
/// account).
pub fn insert(conn: &mut DbConn, passkey: &StoredPasskey) -> QueryResult<bool> {
    let inserted = diesel::insert_into(passkeys::table)
        .values((
            passkeys::id.eq(&passkey.id),
            passkeys::user_id.eq(&passkey.user_id),
            passkeys::credential_id.eq(&passkey.credential_id),
            passkeys::credential.eq(&passkey.credential),
            passkeys::name.eq(&passkey.name),
            passkeys::created_at.eq(passkey.created_at),
            passkeys::last_used_at.eq(passkey.last_used_at),
        ))
        .execute(conn);
    match inserted {
        Ok(_) => Ok(true),
        Err(diesel::result::Error::DatabaseError(
            diesel::result::DatabaseErrorKind::UniqueViolation,
            _,
        )) => Ok(false),
        Err(error) => Err(error),
    }
}

/// Serialises the transactions that call it for this account until they end, so that each
/// counts the account's passkeys after the others' changes: PostgreSQL would otherwise let
/// two removals of the last two both see two. SQLite's write transactions already run one at
/// a time.
pub fn lock_account(conn: &mut DbConn, user_id: &UserId) -> QueryResult<()> {
    super::lock_until_commit(conn, &format!("passkeys:{user_id}"))
}

/// The account's passkeys, oldest first.
pub fn list(conn: &mut DbConn, user_id: &UserId) -> QueryResult<Vec<StoredPasskey>> {
    passkeys::table
        .filter(passkeys::user_id.eq(user_id))
        .order(passkeys::id.asc())
        .select(StoredPasskey::as_select())
        .load(conn)
}

pub fn count(conn: &mut DbConn, user_id: &UserId) -> QueryResult<i64> {
    passkeys::table
        .filter(passkeys::user_id.eq(user_id))
        .count()
        .get_result(conn)
}

/// The credential ids of the account's passkeys (for `excludeCredentials`).
pub fn credential_ids(conn: &mut DbConn, user_id: &UserId) -> QueryResult<Vec<Vec<u8>>> {
    passkeys::table
        .filter(passkeys::user_id.eq(user_id))
        .order(passkeys::id.asc())
        .select(passkeys::credential_id)
        .load(conn)
}

pub fn find_by_credential_id(
    conn: &mut DbConn,
    credential_id: &[u8],
) -> QueryResult<Option<StoredPasskey>> {
    passkeys::table
        .filter(passkeys::credential_id.eq(credential_id))
        .select(StoredPasskey::as_select())
        .get_result(conn)
        .optional()
}

/// The account's passkey with this id.
pub fn find(
    conn: &mut DbConn,
    user_id: &UserId,
    id: &PasskeyId,
) -> QueryResult<Option<StoredPasskey>> {
    passkeys::table
        .filter(passkeys::id.eq(id))
        .filter(passkeys::user_id.eq(user_id))
        .select(StoredPasskey::as_select())
        .get_result(conn)
        .optional()
}

/// Renames the account's passkey; answers how many rows changed.
pub fn rename(
    conn: &mut DbConn,
    user_id: &UserId,
    id: &PasskeyId,
    name: &str,
) -> QueryResult<usize> {
    diesel::update(
        passkeys::table
            .filter(passkeys::id.eq(id))
            .filter(passkeys::user_id.eq(user_id)),
    )
    .set(passkeys::name.eq(name))
    .execute(conn)
}

/// The passkey with this id, read for a login's transaction: on PostgreSQL locked until it
/// ends, so that concurrent logins with one credential check its counter one after the
/// other (SQLite's write transactions already run one at a time).
pub fn find_locked(conn: &mut DbConn, id: &PasskeyId) -> QueryResult<Option<StoredPasskey>> {
    let found = passkeys::table.find(id);
    match conn {
        DbConn::Postgres(pg) => found
            .select(StoredPasskey::as_select())
            .for_update()
            .get_result(pg)
            .optional(),
        DbConn::Sqlite(sqlite) => found
            .select(StoredPasskey::as_select())
            .get_result(sqlite)
            .optional(),
    }
}

/// Records a login with the passkey, and its credential as the login left it (a newer
/// counter, changed backup flags), if it changed.
pub fn record_use(
    conn: &mut DbConn,
    id: &PasskeyId,
    updated: Option<&str>,
    now: NaiveDateTime,
) -> QueryResult<()> {
    let passkey = passkeys::table.filter(passkeys::id.eq(id));
    match updated {
        Some(updated) => diesel::update(passkey)
            .set((
                passkeys::last_used_at.eq(Some(now)),
                passkeys::credential.eq(updated),
            ))
            .execute(conn),
        None => diesel::update(passkey)
            .set(passkeys::last_used_at.eq(Some(now)))
            .execute(conn),
    }
    .map(drop)
}

/// Deletes all the account's passkeys; answers how many.
pub fn delete_all(conn: &mut DbConn, user_id: &UserId) -> QueryResult<usize> {
    diesel::delete(passkeys::table.filter(passkeys::user_id.eq(user_id))).execute(conn)
}

/// Deletes the account's passkey; answers how many rows changed.
pub fn delete(conn: &mut DbConn, user_id: &UserId, id: &PasskeyId) -> QueryResult<usize> {
    diesel::delete(
        passkeys::table
            .filter(passkeys::id.eq(id))
            .filter(passkeys::user_id.eq(user_id)),
    )
    .execute(conn)
}
