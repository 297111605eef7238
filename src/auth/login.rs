//! Logging in with an email or a username and the password: the attempt is counted against
//! the throttle before the password is checked, an unknown account costs the same hash as a
//! known one, and a success opens a session in the transaction that withdraws the attempt.

use secrecy::SecretString;

use super::Auth;
use super::client::ClientInfo;
use super::codes::Purpose;
use super::events::{self, Refusal};
use super::mfa;
use super::sessions::{self, Granted};
use super::throttle::{self, Admission, AttemptKeys, Reservation};
use crate::db::one_time_codes::LiveCode;
use crate::db::users::{self, User};
use crate::db::{self, DbConn};
use crate::domain::{AuthMethods, Email, EventKind, UserId};
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
/// `InvalidCredentials` (a wrong password and an unknown account alike), `AccountDisabled`,
/// `EmailNotVerified`, or `MfaRequired` (the right password of an account with a second
/// factor, whose login goes on at [`mfa::complete_login`]).
/// Refusals of an existing account are recorded as its events after the answer is decided.
pub async fn attempt(
    auth: &Auth,
    identifier: Identifier,
    password: SecretString,
    client: ClientInfo,
) -> Result<Granted, Error> {
    // Before anything counts: an overloaded instance refuses without using up an attempt.
    let ticket = auth.passwords.reserve()?;
    let address = client.ip;
    let (user, admission) = admit(auth, move |conn| {
        let user = identifier.find(conn)?;
        let keys = AttemptKeys::new(user.as_ref().map(|u| &u.id), identifier.text(), address);
        Ok((user, keys))
    })
    .await?;
    let user_id = user.as_ref().map(|user| user.id.clone());
    let reservation = admitted(auth, admission, user_id.as_ref(), &client)?;
    // An unknown account, or one without a password (a passkey's), is checked against a
    // decoy hash: the same work, the same answer.
    let stored_hash = user.as_ref().and_then(stored_password_hash);
    let verification = auth
        .passwords
        .verify(ticket, password.clone(), stored_hash)
        .await?;
    let user = match user {
        Some(user) if verification.matches => user,
        _ => return Err(wrong_password(auth, user_id.as_ref(), &client)),
    };
    if user.disabled_at.is_some() {
        tracing::warn!(event = "login_disabled", user_id = %user.id, "login to a disabled account");
        return Err(Error::AccountDisabled);
    }
    if auth.require_verified_email && user.email_verified_at.is_none() {
        tracing::info!(event = "login_unverified", user_id = %user.id, "login to an unverified account");
        return Err(Error::EmailNotVerified);
    }
    let rehashed = match verification.needs_rehash.then(|| auth.passwords.reserve()) {
        Some(Ok(ticket)) => Some(auth.passwords.hash(ticket, password).await?),
        // Rehashing can wait for a later login when the hashing queue is full.
        Some(Err(_)) | None => None,
    };
    let policy = auth.sessions;
    let (user_id, verified_hash) = (user.id.clone(), user.password_hash.clone());
    let continued = auth
        .db
        .run(move |conn| {
            db::write_transaction(conn, |conn| {
                // Read again, locked: a password changed since it was checked loses this
                // login, and a second factor turned on meanwhile is asked for.
                let user = users::find_locked(conn, &user_id)?
                    .filter(|user| user.password_hash == verified_hash)
                    .ok_or(Error::InvalidCredentials)?;
                if let Some(hash) = &rehashed {
                    // Conditional as well, on the hash read above.
                    let now = db::now();
                    if users::set_password_hash(conn, &user_id, &verified_hash, hash, now)? == 0 {
                        return Err(Error::InvalidCredentials);
                    }
                }
                if user.totp_enabled_at.is_some() {
                    // The password was right, so its attempt is withdrawn; but the account's
                    // count stays, with the wrong codes that may follow in it.
                    throttle::withdraw(conn, &reservation)?;
                    return Ok(Err(mfa::challenge(conn, &user_id)?));
                }
                throttle::succeeded(conn, &reservation)?;
                let methods = AuthMethods::Password;
                let continued = sessions::start(conn, &user_id, methods, &client, &policy)?;
                let session_id = Some(&continued.session.id);
                events::record(conn, &user_id, EventKind::Login, &client, session_id)?;
                Ok::<_, Error>(Ok((user, continued)))
            })
        })
        .await?;
    let (user, continued) = match continued {
        Ok(granted) => granted,
        Err(mfa_token) => {
            tracing::info!(event = "mfa_required", user_id = %user.id, "password right; second factor required");
            return Err(Error::MfaRequired { mfa_token });
        }
    };
    tracing::info!(event = "logged_in", user_id = %user.id, session_id = %continued.session.id, "logged in");
    Ok(Granted { user, continued })
}

/// Confirms the user's password (before a password change or an account deletion),
/// throttled like a login and counted against the same limits: someone holding a stolen
/// access token guesses no faster than at `/login`, and not at all while the account is
/// locked out. A wrong password records `login_failed`, a refusal `locked_out`. The
/// reservation is the caller's to withdraw, with [`throttle::succeeded`], in the
/// transaction of what the password allowed.
pub(super) async fn confirm_password(
    auth: &Auth,
    user: &User,
    password: SecretString,
    client: &ClientInfo,
) -> Result<Reservation, Error> {
    let ticket = auth.passwords.reserve()?;
    let reservation = admit_account(auth, &user.id, client).await?;
    let stored_hash = stored_password_hash(user);
    let verification = auth.passwords.verify(ticket, password, stored_hash).await?;
    if verification.matches {
        Ok(reservation)
    } else {
        Err(wrong_password(auth, Some(&user.id), client))
    }
}

/// The hash a password is checked against: `None` (the decoy) for an account without one.
fn stored_password_hash(user: &User) -> Option<String> {
    user.has_password().then(|| user.password_hash.clone())
}

/// Counts an attempt on a known account (a code typed for it, say) against the throttle,
/// like a login's; or `TooManyAttempts`, its `locked_out` event recorded.
pub(super) async fn admit_account(
    auth: &Auth,
    user_id: &UserId,
    client: &ClientInfo,
) -> Result<Reservation, Error> {
    let keys = AttemptKeys::of_account(user_id, client.ip);
    admit_known(auth, user_id, keys, client).await
}

/// [`admit_account`] for a code of the account's second factor, which also counts against
/// its count of wrong codes (see [`AttemptKeys::of_second_factor`]).
pub(super) async fn admit_second_factor(
    auth: &Auth,
    user_id: &UserId,
    client: &ClientInfo,
) -> Result<Reservation, Error> {
    let keys = AttemptKeys::of_second_factor(user_id, client.ip);
    admit_known(auth, user_id, keys, client).await
}

async fn admit_known(
    auth: &Auth,
    user_id: &UserId,
    keys: AttemptKeys,
    client: &ClientInfo,
) -> Result<Reservation, Error> {
    admit_keys(auth, Some(user_id), keys, client).await
}

/// Counts an attempt under `keys` against the throttle; or `TooManyAttempts`, its
/// `locked_out` event recorded for the account `user_id`, if there is one.
pub(super) async fn admit_keys(
    auth: &Auth,
    user_id: Option<&UserId>,
    keys: AttemptKeys,
    client: &ClientInfo,
) -> Result<Reservation, Error> {
    let ((), admission) = admit(auth, move |_| Ok(((), keys))).await?;
    admitted(auth, admission, user_id, client)
}

/// A live code, found by [`check_code`], and its counted attempt.
pub(super) struct CheckedCode {
    pub code: LiveCode,
    pub reservation: Reservation,
}

/// Checks a code typed for `email` against the live codes sent there for one of `purposes`,
/// throttled like a login: per client address, and per address typed (whether or not an
/// account has it, so the throttle tells nothing). Codes count in a bucket of their own, so
/// that a login lockout (which anybody can cause) never keeps the owner from a reset. A wrong
/// code counts a try against the codes sent there, and records `code_failed` for the account
/// with that address, after the answer.
pub(super) async fn check_code(
    auth: &Auth,
    email: &str,
    typed: String,
    purposes: &'static [Purpose],
    client: &ClientInfo,
) -> Result<CheckedCode, Error> {
    let identifier = Identifier::parse(Some(email), None)?;
    let email = identifier.text().to_owned();
    let address = client.ip;
    let (owner, admission) = admit(auth, move |conn| {
        let owner = identifier.find(conn)?.map(|user| user.id);
        let keys = AttemptKeys::new(None, &format!("code:{}", identifier.text()), address);
        Ok((owner, keys))
    })
    .await?;
    let reservation = admitted(auth, admission, owner.as_ref(), client)?;
    let codes = auth.codes.clone();
    let found = auth
        .db
        .run(move |conn| {
            if email.contains('\0') {
                // No code is sent to such an address (see `Identifier::find`).
                return Ok(None);
            }
            // Committed whatever it finds: a wrong try counts.
            db::write_transaction(conn, |conn| codes.find(conn, purposes, &email, &typed))
        })
        .await?;
    match found {
        Some(code) => Ok(CheckedCode { code, reservation }),
        None => {
            tracing::info!(
                event = "code_failed",
                user_id = owner.as_ref().map(UserId::as_str),
                "wrong code"
            );
            refused(auth, owner.as_ref(), client, Refusal::WrongCode);
            Err(Error::InvalidCode)
        }
    }
}

/// Counts an attempt against the throttle, for the keys `keys_of` finds (with whatever else
/// it reads), holding one of the login admissions meanwhile: they queue for as long as the
/// work itself may take, like the hashing threads', and their work is short.
async fn admit<T: Send + 'static>(
    auth: &Auth,
    keys_of: impl FnOnce(&mut DbConn) -> Result<(T, AttemptKeys), Error> + Send + 'static,
) -> Result<(T, Admission), Error> {
    let _admission = tokio::time::timeout(auth.db.work_timeout(), auth.login_admissions.acquire())
        .await
        .map_err(|_| Error::Unavailable(anyhow::anyhow!("no login admission free in time")))?
        .map_err(Error::internal)?;
    let throttle = auth.throttle;
    auth.db
        .run(move |conn| {
            let (found, keys) = keys_of(conn)?;
            let admission =
                db::write_transaction(conn, |conn| throttle::admit(conn, keys, &throttle))?;
            Ok((found, admission))
        })
        .await
}

/// The reservation of an admitted attempt; or `TooManyAttempts`, its `locked_out` event
/// recorded for the account, if there is one.
fn admitted(
    auth: &Auth,
    admission: Admission,
    user_id: Option<&UserId>,
    client: &ClientInfo,
) -> Result<Reservation, Error> {
    match admission {
        Admission::Admitted(reservation) => Ok(reservation),
        Admission::Refused { retry_after } => {
            let user = user_id.map(UserId::as_str);
            tracing::warn!(
                event = "login_throttled",
                user_id = user,
                retry_after,
                "login throttled"
            );
            let window = auth.throttle.window;
            refused(auth, user_id, client, Refusal::Throttled { window });
            Err(Error::TooManyAttempts { retry_after })
        }
    }
}

/// `InvalidCredentials`, its `login_failed` event recorded for the account, if there is one.
fn wrong_password(auth: &Auth, user_id: Option<&UserId>, client: &ClientInfo) -> Error {
    tracing::info!(
        event = "login_failed",
        user_id = user_id.map(UserId::as_str),
        "login failed"
    );
    refused(auth, user_id, client, Refusal::WrongPassword);
    Error::InvalidCredentials
}

/// Refusals are recorded after the answer, for existing accounts only (see `events`).
pub(super) fn refused(
    auth: &Auth,
    user_id: Option<&UserId>,
    client: &ClientInfo,
    refusal: Refusal,
) {
    if let Some(user_id) = user_id {
        auth.refusals
            .refused(user_id.clone(), client.clone(), refusal);
    }
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
