//! Accounts: created by `POST /signup` and `latchkey user create`, changed and deleted by
//! their owner, and listed, disabled and enabled by an operator.

use secrecy::SecretString;

use super::Auth;
use super::client::ClientInfo;
use super::codes::Purpose;
use super::events;
use super::hash_pool::Ticket;
use super::login;
use super::outbox;
use super::passwords::Passwords;
use super::sessions::{self, Caller, Ending, Granted, SessionPolicy};
use super::throttle::{self, QuotaKey};
use crate::db::sessions::Which;
use crate::db::users::{self, Conflict, NewUser, User};
use crate::db::{self, Db, DbConn, mfa_challenges};
use crate::domain::{AuthMethods, Email, EventKind, NewPassword, RevokeReason, UserId, Username};
use crate::error::{Error, FieldError};

/// A validated request for an account; the password is not hashed yet.
pub struct NewAccount {
    pub identity: Identity,
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
        let identity = parse_identity(email, username, &mut errors);
        let names: Vec<&str> = std::iter::once(email).chain(username).collect();
        let password = NewPassword::parse("password", password, &names)
            .map_err(|e| errors.push(e))
            .ok();
        match (identity, password) {
            (Some(identity), Some(password)) if errors.is_empty() => {
                Ok(Self { identity, password })
            }
            _ => Err(Error::Validation(errors)),
        }
    }

    fn password_secret(&self) -> SecretString {
        self.password.secret().clone()
    }
}

/// Who an account is, validated: its email and username, as an account without a password
/// (one that signs up with a passkey) has them.
pub struct Identity {
    pub email: Email,
    pub username: Option<Username>,
}

impl Identity {
    /// Checks both fields and reports every failure at once.
    pub fn parse(email: &str, username: Option<&str>) -> Result<Self, Error> {
        let mut errors = Vec::new();
        match parse_identity(email, username, &mut errors) {
            Some(identity) if errors.is_empty() => Ok(identity),
            _ => Err(Error::Validation(errors)),
        }
    }
}

/// The email and the username, their failures pushed to `errors`.
fn parse_identity(
    email: &str,
    username: Option<&str>,
    errors: &mut Vec<FieldError>,
) -> Option<Identity> {
    let email = Email::parse(email).map_err(|e| errors.push(e)).ok();
    let username = match username {
        Some(raw) => Username::parse(raw).map_err(|e| errors.push(e)).ok(),
        None => None,
    };
    email.map(|email| Identity { email, username })
}

/// Creates the account and opens its first session (`POST /signup`), with its `signup`
/// event and the mail that verifies its address, in one transaction.
pub async fn sign_up(
    auth: &Auth,
    account: NewAccount,
    client: ClientInfo,
) -> Result<Granted, Error> {
    let admitted = admit(auth, QuotaKey::signup(client.ip)).await;
    if let Err(Error::TooManyAttempts { .. }) = &admitted {
        // A client that ignores Retry-After is answered after a pause: retrying at once
        // cannot turn cheap refusals into a flood that takes the CPU from others' logins.
        tokio::time::sleep(throttle::REFUSAL_PAUSE).await;
    }
    let ticket = admitted?;
    let account = auth
        .db
        .run(move |conn| ensure_available(conn, &account.identity).map(|()| account))
        .await?;
    let password_hash = auth
        .passwords
        .hash(ticket, account.password_secret())
        .await?;
    let (policy, codes) = (auth.sessions, auth.codes.clone());
    let granted = auth
        .db
        .run(move |conn| {
            db::write_transaction(conn, |conn| {
                let id = UserId::generate();
                let user = insert(conn, &id, &account.identity, &password_hash)?;
                let continued =
                    sessions::start(conn, &user.id, AuthMethods::Password, &client, &policy)?;
                let session_id = Some(&continued.session.id);
                events::record(conn, &user.id, EventKind::Signup, &client, session_id)?;
                let verification = Purpose::EmailVerification;
                outbox::mail_code(conn, &codes, &user.id, verification, &user.email)?;
                Ok::<_, Error>(Granted { user, continued })
            })
        })
        .await?;
    auth.outbox.wake();
    tracing::info!(event = "signed_up", user_id = %granted.user.id, session_id = %granted.continued.session.id, "signed up");
    Ok(granted)
}

/// Counts the signup against its address's limit (refusals remembered, see
/// [`throttle::QuotaRefusals`]), with a place in the hashing queue taken first: a `503`
/// uses up no signup.
async fn admit(auth: &Auth, key: QuotaKey) -> Result<Ticket, Error> {
    auth.quota_refusals.check(&key)?;
    let ticket = auth.passwords.reserve()?;
    count_signup(auth, key).await.map(|()| ticket)
}

/// Counts a signup against its address's limit, refusals remembered; a refusal answers after
/// a pause (see [`sign_up`]).
pub(super) async fn count_signup(auth: &Auth, key: QuotaKey) -> Result<(), Error> {
    auth.quota_refusals.check(&key)?;
    let (max, counted_key) = (auth.throttle.signups_per_address, key.clone());
    let admitted = auth
        .db
        .run(move |conn| {
            // Committed on its own: a signup that answers `409` has counted too.
            db::write_transaction(conn, |conn| {
                throttle::admit_quotas(conn, &[(&counted_key, max)])
            })
        })
        .await;
    auth.quota_refusals.remember(&key, &admitted);
    admitted
}

/// Creates the account without a session, as an operator does (`latchkey user create`).
pub async fn create(db: &Db, passwords: &Passwords, account: NewAccount) -> Result<User, Error> {
    let ticket = passwords.reserve()?;
    let password_hash = passwords.hash(ticket, account.password_secret()).await?;
    db.run(move |conn| insert(conn, &UserId::generate(), &account.identity, &password_hash))
        .await
}

/// Answers `409` early for a taken username or email, before a hash is paid for. The
/// username comes first: a taken one answers `username_taken` whatever the email, so a
/// known username cannot be paired with candidate emails to learn which are registered.
/// The unique indexes still decide races in [`insert`].
pub(super) fn ensure_available(conn: &mut DbConn, identity: &Identity) -> Result<(), Error> {
    if let Some(username) = &identity.username
        && users::username_exists(conn, username.as_str())?
    {
        return Err(Error::UsernameTaken);
    }
    if users::email_exists(conn, identity.email.as_str())? {
        return Err(Error::EmailTaken);
    }
    Ok(())
}

/// Inserts the account with this id; an empty `password_hash` is an account without a
/// password.
pub(super) fn insert(
    conn: &mut DbConn,
    id: &UserId,
    identity: &Identity,
    password_hash: &str,
) -> Result<User, Error> {
    let now = db::now();
    let new_user = NewUser {
        id,
        email: identity.email.as_str(),
        username: identity.username.as_ref().map(Username::as_str),
        password_hash,
        created_at: now,
        updated_at: now,
    };
    users::insert(conn, &new_user).map_err(|error| match users::conflict(&error) {
        Some(Conflict::Email) => Error::EmailTaken,
        Some(Conflict::Username) => Error::UsernameTaken,
        None => error.into(),
    })?;
    users::find(conn, id)?
        .ok_or_else(|| Error::internal(anyhow::anyhow!("user vanished after insert")))
}

/// Changes the caller's password once the current one is confirmed (`POST /me/password`);
/// every other session of the user ends. The new password is checked first, against the
/// rules and the account's own email and username; the current one like a login (see
/// [`login::confirm_password`]). The change commits only if the caller's session is still
/// live and the password still the one confirmed: a session revoked meanwhile gets
/// `InvalidToken`, the loser of two concurrent changes `InvalidCredentials`.
pub async fn change_password(
    auth: &Auth,
    caller: Caller,
    user: User,
    current_password: SecretString,
    new_password: SecretString,
    client: ClientInfo,
) -> Result<(), Error> {
    let identity: Vec<&str> = std::iter::once(user.email.as_str())
        .chain(user.username.as_deref())
        .collect();
    let new_password = NewPassword::parse("new_password", new_password, &identity)
        .map_err(|error| Error::Validation(vec![error]))?;
    // Both hashes' places are taken before the check counts an attempt.
    let new_hash_ticket = auth.passwords.reserve()?;
    let reservation = login::confirm_password(auth, &user, current_password, &client).await?;
    let new_hash = auth
        .passwords
        .hash(new_hash_ticket, new_password.into_secret())
        .await?;
    let policy = auth.sessions;
    let revoked = auth
        .db
        .run(move |conn| {
            db::write_transaction(conn, |conn| {
                let at = policy.liveness(db::now());
                let (user_id, session_id) = (&caller.user_id, &caller.session_id);
                sessions::ensure_live(conn, &caller, at)?;
                let verified = user.password_hash.as_str();
                if users::set_password_hash(conn, user_id, verified, &new_hash, at.now)? == 0 {
                    return Err(Error::InvalidCredentials);
                }
                // Logins that got past the old password end with it.
                mfa_challenges::delete_for(conn, user_id)?;
                throttle::succeeded(conn, &reservation)?;
                let kept = Some(session_id);
                events::record(conn, user_id, EventKind::PasswordChanged, &client, kept)?;
                let others = Ending {
                    which: Which::AllBut(session_id),
                    reason: RevokeReason::PasswordChanged,
                    event: EventKind::SessionRevoked,
                };
                Ok::<_, Error>(sessions::revoke(conn, user_id, others, at, &client)?.len())
            })
        })
        .await?;
    tracing::info!(event = "password_changed", revoked, "password changed");
    Ok(())
}

/// Deletes the account and all its sessions once the password is confirmed like a login
/// (`DELETE /me`), if the caller's session is still live and the password still the one
/// confirmed (else `InvalidToken` or `InvalidCredentials`, and nothing is deleted).
pub async fn delete(
    auth: &Auth,
    caller: Caller,
    user: User,
    password: SecretString,
    client: ClientInfo,
) -> Result<(), Error> {
    let reservation = login::confirm_password(auth, &user, password, &client).await?;
    let policy = auth.sessions;
    auth.db
        .run(move |conn| {
            db::write_transaction(conn, |conn| {
                sessions::ensure_live(conn, &caller, policy.liveness(db::now()))?;
                if users::delete(conn, &user.id, &user.password_hash)? == 0 {
                    return Err(Error::InvalidCredentials);
                }
                // The account's own count went with it; this withdraws the address's.
                throttle::succeeded(conn, &reservation)
            })
        })
        .await?;
    tracing::info!(event = "account_deleted", "account deleted");
    Ok(())
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
pub async fn list(db: &Db, policy: SessionPolicy) -> Result<Vec<AccountSummary>, Error> {
    db.run(move |conn| {
        let counts: std::collections::HashMap<UserId, i64> =
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
    })
    .await
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
pub async fn disable(db: &Db, email: String, policy: SessionPolicy) -> Result<Disabled, Error> {
    db.run(move |conn| {
        db::write_transaction(conn, |conn| {
            let user = find_by_email(conn, &email)?;
            let now = db::now();
            // On PostgreSQL this update waits for a login that is opening a session for the
            // account (see `sessions::start`), so that the revocation below sees its session.
            let already = users::set_disabled(conn, &user.id, Some(now), now)? == 0;
            let reason = RevokeReason::AccountDisabled;
            let ended_sessions = sessions::end_all(conn, &user.id, &policy, reason)?;
            let user = users::find(conn, &user.id)?.ok_or(Error::NotFound)?;
            Ok(Disabled {
                user,
                already,
                ended_sessions,
            })
        })
    })
    .await
}

/// Ends every live session of the account with this email, as an operator does (`latchkey
/// sessions revoke`); answers the account's email and how many ended. The account stays
/// enabled.
pub async fn end_sessions(
    db: &Db,
    email: String,
    policy: SessionPolicy,
) -> Result<(String, usize), Error> {
    db.run(move |conn| {
        db::write_transaction(conn, |conn| {
            let user = find_by_email(conn, &email)?;
            let reason = RevokeReason::RevokedByOperator;
            let ended = sessions::end_all(conn, &user.id, &policy, reason)?;
            Ok((user.email, ended))
        })
    })
    .await
}

/// Enables a disabled account; answers whether it was disabled.
pub async fn enable(db: &Db, email: String) -> Result<bool, Error> {
    db.run(move |conn| {
        db::write_transaction(conn, |conn| {
            let user = find_by_email(conn, &email)?;
            Ok(users::set_disabled(conn, &user.id, None, db::now())? == 1)
        })
    })
    .await
}
