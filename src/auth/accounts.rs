//! Creating accounts, shared by `POST /signup` and `latchkey user create`; and what an
//! operator does to them: listing, disabling and enabling.

use secrecy::SecretString;

use super::sessions::{self, SessionPolicy, reason};
use crate::db::users::{self, Conflict, NewUser, User};
use crate::db::{self, DbConn};
use crate::domain::{Email, NewPassword, Username};
use crate::error::{Error, FieldError};

/// A validated request for an account; the password is not hashed yet.
pub struct NewAccount {
    pub email: Email,
    pub username: Option<Username>,
    pub password: NewPassword,
}

impl NewAccount {
    /// Checks every field and reports every failure at once.
    pub fn parse(
        email: &str,
        username: Option<&str>,
        password: SecretString,
    ) -> Result<Self, Error> {
        let mut errors: Vec<FieldError> = Vec::new();
        let email_parsed = Email::parse(email).map_err(|e| errors.push(e)).ok();
        let username_parsed = match username {
            Some(raw) => Username::parse(raw).map_err(|e| errors.push(e)).ok(),
            None => None,
        };
        let identity: Vec<&str> = std::iter::once(email).chain(username).collect();
        let password = NewPassword::parse("password", password, &identity)
            .map_err(|e| errors.push(e))
            .ok();
        match (email_parsed, password) {
            (Some(email), Some(password)) if errors.is_empty() => Ok(Self {
                email,
                username: username_parsed,
                password,
            }),
            _ => Err(Error::Validation(errors)),
        }
    }
}

impl NewAccount {
    pub fn password_secret(&self) -> SecretString {
        self.password.secret().clone()
    }
}

/// Answers `409` early for a taken email or username, before a hash is paid for. The unique
/// indexes still decide races in [`insert`].
pub fn ensure_available(conn: &mut DbConn, account: &NewAccount) -> Result<(), Error> {
    if users::email_exists(conn, account.email.as_str())? {
        return Err(Error::EmailTaken);
    }
    if let Some(username) = &account.username
        && users::username_exists(conn, username.as_str())?
    {
        return Err(Error::UsernameTaken);
    }
    Ok(())
}

pub fn insert(conn: &mut DbConn, account: &NewAccount, password_hash: &str) -> Result<User, Error> {
    let now = db::now();
    let id = uuid::Uuid::now_v7().to_string();
    let new_user = NewUser {
        id: &id,
        email: account.email.as_str(),
        username: account.username.as_ref().map(Username::as_str),
        password_hash,
        created_at: now,
        updated_at: now,
    };
    users::insert(conn, &new_user).map_err(|error| match users::conflict(&error) {
        Some(Conflict::Email) => Error::EmailTaken,
        Some(Conflict::Username) => Error::UsernameTaken,
        None => error.into(),
    })?;
    users::find(conn, &id)?
        .ok_or_else(|| Error::internal(anyhow::anyhow!("user vanished after insert")))
}

/// The account with this email (compared as stored: trimmed, lowercased); `NotFound` when
/// there is none.
pub fn find_by_email(conn: &mut DbConn, email: &str) -> Result<User, Error> {
    users::find_by_email(conn, &Email::normalize_for_lookup(email))?.ok_or(Error::NotFound)
}

/// An account as an operator sees it.
pub struct AccountSummary {
    pub user: User,
    pub live_sessions: i64,
}

/// Every account, oldest first, with its number of live sessions.
pub fn list(conn: &mut DbConn, policy: &SessionPolicy) -> Result<Vec<AccountSummary>, Error> {
    let counts: std::collections::HashMap<String, i64> =
        db::sessions::count_live_by_user(conn, policy.liveness(db::now()))?
            .into_iter()
            .collect();
    Ok(users::list(conn)?
        .into_iter()
        .map(|user| AccountSummary {
            live_sessions: counts.get(&user.id).copied().unwrap_or(0),
            user,
        })
        .collect())
}

/// What disabling an account did.
pub struct Disabled {
    pub user: User,
    /// It was disabled before; `user.disabled_at` is still the first time.
    pub already: bool,
    pub ended_sessions: usize,
}

/// Disables the account and ends all its sessions, in one transaction: its access tokens
/// are refused on their next request and its refresh tokens at once. Idempotent; a second
/// call keeps the first time and ends whatever session might have slipped through.
pub fn disable(conn: &mut DbConn, email: &str, policy: &SessionPolicy) -> Result<Disabled, Error> {
    db::write_transaction(conn, |conn| {
        let user = find_by_email(conn, email)?;
        let now = db::now();
        // On PostgreSQL this update waits for a login that is opening a session for the
        // account (see `sessions::start`), so that the revocation below sees its session.
        let already = users::set_disabled(conn, &user.id, Some(now), now)? == 0;
        let ended_sessions = sessions::end_all(conn, &user.id, policy, reason::ACCOUNT_DISABLED)?;
        let user = users::find(conn, &user.id)?.ok_or(Error::NotFound)?;
        Ok(Disabled {
            user,
            already,
            ended_sessions,
        })
    })
}

/// Enables a disabled account; answers whether it was disabled.
pub fn enable(conn: &mut DbConn, email: &str) -> Result<bool, Error> {
    db::write_transaction(conn, |conn| {
        let user = find_by_email(conn, email)?;
        Ok(users::set_disabled(conn, &user.id, None, db::now())? == 1)
    })
}
