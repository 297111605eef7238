//! Logging in with an email or a username and the password: the attempt is counted against
//! the throttle before the password is checked, an unknown account costs the same hash as a
//! known one, and a success opens a session in the transaction that withdraws the attempt.

use secrecy::SecretString;

use super::Auth;
use super::client::ClientInfo;
use super::events::{self, Refusal};
use super::sessions::{self, Granted};
use super::throttle::{self, Admission, AttemptKeys};
use crate::db::users::{self, User};
use crate::db::{self, DbConn};
use crate::domain::{Email, EventKind};
use crate::error::{Error, FieldError};

/// What names the account: exactly one of an email and a username, read once the way the
/// lookup compares it. The throttle keys an unknown identifier by the same text, so that
/// its lockout behaves exactly like an account's: two spellings that name one account count
/// together, and two that the lookup tells apart count apart, whether an account exists or
/// not.
pub enum Identifier {
    /// Trimmed and lowercased, as emails are stored.
    Email(String),
    /// ASCII-lowercased: usernames are unique ignoring ASCII case.
    Username(String),
}

impl Identifier {
    /// Exactly one of `email` and `username`.
    pub fn parse(email: Option<&str>, username: Option<&str>) -> Result<Self, Error> {
        match (email, username) {
            (Some(email), None) => Ok(Self::Email(Email::normalize_for_lookup(email))),
            (None, Some(username)) => Ok(Self::Username(username.to_ascii_lowercase())),
            (None, None) => Err(Error::Validation(vec![FieldError::new(
                "email",
                "email_or_username_required",
                "give either email or username",
            )])),
            (Some(_), Some(_)) => Err(Error::Validation(vec![FieldError::new(
                "username",
                "email_and_username_given",
                "give either email or username, not both",
            )])),
        }
    }

    /// The identifier as the lookup compares it.
    fn text(&self) -> &str {
        match self {
            Self::Email(text) | Self::Username(text) => text,
        }
    }

    /// The account it names, if any.
    fn find(&self, conn: &mut DbConn) -> Result<Option<User>, Error> {
        Ok(match self {
            // No stored email or username holds a NUL (signup refuses control characters),
            // and PostgreSQL cannot even compare text with one.
            Self::Email(name) | Self::Username(name) if name.contains('\0') => None,
            Self::Email(email) => users::find_by_email(conn, email)?,
            Self::Username(username) => users::find_by_username(conn, username)?,
        })
    }
}

/// Logs in (`POST /login`): a new session for the account, or `TooManyAttempts`,
/// `InvalidCredentials` (a wrong password and an unknown account alike) or `AccountDisabled`.
/// Refusals of an existing account are recorded as its events after the answer is decided.
pub async fn attempt(
    auth: &Auth,
    identifier: Identifier,
    password: SecretString,
    client: ClientInfo,
) -> Result<Granted, Error> {
    let (user, admission) = admit(auth, identifier, &client).await?;
    let refused = |user: &Option<User>, refusal| {
        if let Some(user) = user {
            auth.refusals
                .refused(user.id.clone(), client.clone(), refusal);
        }
    };
    let reservation = match admission {
        Admission::Admitted(reservation) => reservation,
        Admission::Refused { retry_after } => {
            let user_id = user.as_ref().map(|user| user.id.as_str());
            tracing::warn!(
                event = "login_throttled",
                user_id,
                retry_after,
                "login throttled"
            );
            let window = auth.throttle.window;
            refused(&user, Refusal::Throttled { window });
            return Err(Error::TooManyAttempts { retry_after });
        }
    };
    // An unknown account is checked against a decoy hash: the same work, the same answer.
    let stored_hash = user.as_ref().map(|user| user.password_hash.clone());
    let verification = auth.passwords.verify(password.clone(), stored_hash).await?;
    let user = match user {
        Some(user) if verification.matches => user,
        _ => {
            let user_id = user.as_ref().map(|user| user.id.as_str());
            tracing::info!(event = "login_failed", user_id, "login failed");
            refused(&user, Refusal::WrongPassword);
            return Err(Error::InvalidCredentials);
        }
    };
    if user.disabled_at.is_some() {
        tracing::warn!(event = "login_disabled", user_id = %user.id, "login to a disabled account");
        return Err(Error::AccountDisabled);
    }
    let rehashed = if verification.needs_rehash {
        Some(auth.passwords.hash(password).await?)
    } else {
        None
    };
    let policy = auth.sessions;
    let user_id = user.id.clone();
    let continued = auth
        .db
        .run(move |conn| {
            db::write_transaction(conn, |conn| {
                if let Some(hash) = &rehashed {
                    users::set_password_hash(conn, &user_id, hash, db::now())?;
                }
                throttle::succeeded(conn, &reservation)?;
                let continued = sessions::start(conn, &user_id, &client, &policy)?;
                let session_id = Some(&continued.session.id);
                events::record(conn, &user_id, EventKind::Login, &client, session_id)?;
                Ok::<_, Error>(continued)
            })
        })
        .await?;
    tracing::info!(event = "logged_in", user_id = %user.id, session_id = %continued.session.id, "logged in");
    Ok(Granted { user, continued })
}

/// Looks the account up and counts the attempt against the throttle, holding one of the
/// login admissions meanwhile: they queue for as long as the work itself may take, like the
/// hashing threads', and their work is short.
async fn admit(
    auth: &Auth,
    identifier: Identifier,
    client: &ClientInfo,
) -> Result<(Option<User>, Admission), Error> {
    let _admission = tokio::time::timeout(auth.db.work_timeout(), auth.login_admissions.acquire())
        .await
        .map_err(|_| Error::Unavailable(anyhow::anyhow!("no login admission free in time")))?
        .map_err(Error::internal)?;
    let (throttle, address) = (auth.throttle, client.ip);
    auth.db
        .run(move |conn| {
            let user = identifier.find(conn)?;
            let keys = AttemptKeys::new(user.as_ref().map(|u| &u.id), identifier.text(), address);
            let admission =
                db::write_transaction(conn, |conn| throttle::admit(conn, keys, &throttle))?;
            Ok((user, admission))
        })
        .await
}

#[cfg(test)]
mod tests {
    use super::*;

    fn text(email: Option<&str>, username: Option<&str>) -> String {
        Identifier::parse(email, username)
            .unwrap()
            .text()
            .to_owned()
    }

    #[test]
    fn identifiers_are_read_as_the_lookup_compares_them() {
        assert_eq!(text(Some(" Ada@Example.com"), None), "ada@example.com");
        assert_eq!(text(Some("ada@example.com"), None), "ada@example.com");
        assert_eq!(text(None, Some("ADA")), "ada");
        // The username lookup does not trim: neither does the key of an unknown one.
        assert_eq!(text(None, Some(" ada")), " ada");
    }
}
