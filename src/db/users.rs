//! The `users` table.

use chrono::NaiveDateTime;
use diesel::prelude::*;
use diesel::result::{DatabaseErrorKind, Error as DieselError};
use diesel::sql_types::{Nullable, Text};

use super::schema::users;
use super::{DbConn, REDACTED};
use crate::domain::UserId;

diesel::define_sql_function!(fn lower(x: Nullable<Text>) -> Nullable<Text>);

/// `Debug` leaves out the password hash (see below): an account printed into a log or a
/// panic message must not hand out something to crack offline.
#[derive(Clone, Queryable, Selectable)]
#[diesel(table_name = users)]
pub struct User {
    pub id: UserId,
    pub email: String,
    pub username: Option<String>,
    pub password_hash: String,
    pub created_at: NaiveDateTime,
    pub updated_at: NaiveDateTime,
    pub disabled_at: Option<NaiveDateTime>,
    /// When the account proved it holds `email`; `None` until then.
    pub email_verified_at: Option<NaiveDateTime>,
    /// When the account turned its TOTP factor on; `None` while logins need no code.
    pub totp_enabled_at: Option<NaiveDateTime>,
}

impl User {
    /// Whether the account can log in with a password: one that signed up with a passkey
    /// has none (an empty `password_hash`) until a reset sets one.
    pub fn has_password(&self) -> bool {
        !self.password_hash.is_empty()
    }
}

#[derive(Insertable)]
#[diesel(table_name = users)]
pub struct NewUser<'a> {
    pub id: &'a UserId,
    pub email: &'a str,
    pub username: Option<&'a str>,
    pub password_hash: &'a str,
    pub created_at: NaiveDateTime,
    pub updated_at: NaiveDateTime,
}

impl std::fmt::Debug for User {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("User")
            .field("id", &self.id)
            .field("email", &self.email)
            .field("username", &self.username)
            .field("password_hash", &REDACTED)
            .field("created_at", &self.created_at)
            .field("updated_at", &self.updated_at)
            .field("disabled_at", &self.disabled_at)
            .field("email_verified_at", &self.email_verified_at)
            .field("totp_enabled_at", &self.totp_enabled_at)
            .finish()
    }
}

impl std::fmt::Debug for NewUser<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NewUser")
            .field("id", &self.id)
            .field("email", &self.email)
            .field("username", &self.username)
            .field("password_hash", &REDACTED)
            .field("created_at", &self.created_at)
            .field("updated_at", &self.updated_at)
            .finish()
    }
}

/// Which unique rule an insert broke.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Conflict {
    Email,
    Username,
}

pub fn insert(conn: &mut DbConn, user: &NewUser<'_>) -> QueryResult<()> {
    diesel::insert_into(users::table)
        .values(user)
        .execute(conn)
        .map(drop)
}

/// Tells a unique violation on `users` apart by its index: PostgreSQL names the constraint,
/// SQLite names the column (`users.email`) or the expression index.
pub fn conflict(error: &DieselError) -> Option<Conflict> {
    let DieselError::DatabaseError(DatabaseErrorKind::UniqueViolation, info) = error else {
        return None;
    };
    let name = info.constraint_name().unwrap_or_else(|| info.message());
    if name.contains("users_email_key") || name.contains("users.email") {
        Some(Conflict::Email)
    } else if name.contains("users_username_key") || name.contains("users.username") {
        Some(Conflict::Username)
    } else {
        None
    }
}

pub fn find(conn: &mut DbConn, id: &UserId) -> QueryResult<Option<User>> {
    users::table
        .find(id)
        .select(User::as_select())
        .get_result(conn)
        .optional()
}

/// `email` must already be normalised (trimmed, lowercased), as stored.
pub fn find_by_email(conn: &mut DbConn, email: &str) -> QueryResult<Option<User>> {
    per_backend!(conn, |conn| users::table
        .filter(users::email.eq(email))
        .select(User::as_select())
        .get_result(conn)
        .optional())
}

/// Usernames match ignoring ASCII case, as the unique index compares them.
pub fn find_by_username(conn: &mut DbConn, username: &str) -> QueryResult<Option<User>> {
    users::table
        .filter(lower(users::username).eq(username.to_ascii_lowercase()))
        .select(User::as_select())
        .get_result(conn)
        .optional()
}

pub fn email_exists(conn: &mut DbConn, email: &str) -> QueryResult<bool> {
    diesel::select(diesel::dsl::exists(
        users::table.filter(users::email.eq(email)),
    ))
    .get_result(conn)
}

pub fn username_exists(conn: &mut DbConn, username: &str) -> QueryResult<bool> {
    diesel::select(diesel::dsl::exists(
        users::table.filter(lower(users::username).eq(username.to_ascii_lowercase())),
    ))
    .get_result(conn)
}

/// Replaces the password hash if it still is `verified`, the one a password was just checked
/// against; answers how many rows changed (0: it changed meanwhile, or the user is gone).
/// Of two concurrent changes from one password, the second finds no row.
pub fn set_password_hash(
    conn: &mut DbConn,
    id: &UserId,
    verified: &str,
    password_hash: &str,
    now: NaiveDateTime,
) -> QueryResult<usize> {
    diesel::update(
        users::table
            .find(id)
            .filter(users::password_hash.eq(verified)),
    )
    .set((
        users::password_hash.eq(password_hash),
        users::updated_at.eq(now),
    ))
    .execute(conn)
}

/// Marks `email` verified if it still is the user's address and was not verified yet; answers
/// how many rows changed (0: verified already, the address changed meanwhile, or the user is
/// gone).
pub fn set_email_verified(
    conn: &mut DbConn,
    id: &UserId,
    email: &str,
    now: NaiveDateTime,
) -> QueryResult<usize> {
    diesel::update(
        users::table
            .find(id)
            .filter(users::email.eq(email))
            .filter(users::email_verified_at.is_null()),
    )
    .set((
        users::email_verified_at.eq(Some(now)),
        users::updated_at.eq(now),
    ))
    .execute(conn)
}

/// Replaces the user's email with `email`, proven held at `now`. A taken address breaks the
/// unique index (see [`conflict`]).
pub fn set_verified_email(
    conn: &mut DbConn,
    id: &UserId,
    email: &str,
    now: NaiveDateTime,
) -> QueryResult<usize> {
    diesel::update(users::table.find(id))
        .set((
            users::email.eq(email),
            users::email_verified_at.eq(Some(now)),
            users::updated_at.eq(now),
        ))
        .execute(conn)
}

/// Replaces the password hash, whatever it was (a reset proves the address, not the old
/// password).
pub fn replace_password_hash(
    conn: &mut DbConn,
    id: &UserId,
    password_hash: &str,
    now: NaiveDateTime,
) -> QueryResult<usize> {
    diesel::update(users::table.find(id))
        .set((
            users::password_hash.eq(password_hash),
            users::updated_at.eq(now),
        ))
        .execute(conn)
}

/// Every user, oldest first.
/// Records when the account turned its TOTP factor on (`None`: off).
pub fn set_totp_enabled(
    conn: &mut DbConn,
    id: &UserId,
    at: Option<NaiveDateTime>,
) -> QueryResult<usize> {
    diesel::update(users::table.find(id))
        .set(users::totp_enabled_at.eq(at))
        .execute(conn)
}

pub fn list(conn: &mut DbConn) -> QueryResult<Vec<User>> {
    users::table
        .order((users::created_at.asc(), users::id.asc()))
        .select(User::as_select())
        .load(conn)
}

/// Sets or clears `disabled_at`; answers how many rows changed (0 when it already was so).
pub fn set_disabled(
    conn: &mut DbConn,
    id: &UserId,
    disabled_at: Option<NaiveDateTime>,
    now: NaiveDateTime,
) -> QueryResult<usize> {
    let target = users::table.find(id);
    match disabled_at {
        Some(_) => diesel::update(target.filter(users::disabled_at.is_null()))
            .set((
                users::disabled_at.eq(disabled_at),
                users::updated_at.eq(now),
            ))
            .execute(conn),
        None => diesel::update(target.filter(users::disabled_at.is_not_null()))
            .set((
                users::disabled_at.eq(disabled_at),
                users::updated_at.eq(now),
            ))
            .execute(conn),
    }
}

/// The user, read as [`is_disabled_locked`] reads: on PostgreSQL share-locked until the
/// transaction ends, so that a change of the password or of the second factor either
/// committed before (and is seen) or waits for this transaction.
pub fn find_locked(conn: &mut DbConn, id: &UserId) -> QueryResult<Option<User>> {
    let found = users::table.find(id);
    match conn {
        DbConn::Postgres(pg) => found
            .select(User::as_select())
            .for_share()
            .get_result(pg)
            .optional(),
        DbConn::Sqlite(sqlite) => found
            .select(User::as_select())
            .get_result(sqlite)
            .optional(),
    }
}

/// Whether the user is disabled (`None`: no such user). On PostgreSQL the row stays
/// share-locked until the transaction ends, so that a concurrent [`set_disabled`] waits for
/// it, and then sees (and revokes) the session the transaction opened; SQLite's
/// write transactions are serialised anyway.
pub fn is_disabled_locked(conn: &mut DbConn, id: &UserId) -> QueryResult<Option<bool>> {
    let query = users::table.find(id).select(users::disabled_at);
    let disabled_at = match conn {
        DbConn::Postgres(pg) => query
            .for_share()
            .get_result::<Option<NaiveDateTime>>(pg)
            .optional()?,
        DbConn::Sqlite(sqlite) => query
            .get_result::<Option<NaiveDateTime>>(sqlite)
            .optional()?,
    };
    Ok(disabled_at.map(|at| at.is_some()))
}

/// Deletes the user if the password hash still is `verified`; their sessions and refresh
/// tokens go with them (ON DELETE CASCADE). Answers how many rows went (0 or 1).
pub fn delete(conn: &mut DbConn, id: &UserId, verified: &str) -> QueryResult<usize> {
    diesel::delete(
        users::table
            .find(id)
            .filter(users::password_hash.eq(verified)),
    )
    .execute(conn)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_output_leaves_out_the_password_hash() {
        let at = chrono::DateTime::UNIX_EPOCH.naive_utc();
        let hash = "$argon2id$v=19$m=19456,t=2,p=1$c2FsdHNhbHQ$aGFzaGhhc2g";
        let id = UserId::from("u1".to_owned());
        let user = User {
            id: id.clone(),
            email: "ada@example.com".into(),
            username: Some("ada".into()),
            password_hash: hash.into(),
            created_at: at,
            updated_at: at,
            disabled_at: None,
            email_verified_at: None,
            totp_enabled_at: None,
        };
        let new_user = NewUser {
            id: &id,
            email: "ada@example.com",
            username: None,
            password_hash: hash,
            created_at: at,
            updated_at: at,
        };
        for printed in [
            format!("{user:?}"),
            format!("{new_user:?}"),
            format!("{user:#?}"),
        ] {
            assert!(printed.contains("ada@example.com"), "{printed}");
            assert!(printed.contains(REDACTED), "{printed}");
            assert!(!printed.contains("argon2id"), "{printed}");
        }
    }
}
