//! Creating accounts, shared by `POST /signup` and `latchkey user create`.

use secrecy::SecretString;

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
