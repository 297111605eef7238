//! Account recovery: `POST /password/forgot` mails a code, `POST /password/reset` trades it
//! for a new password.
//!
//! The request for a code does the same work whatever the address: it counts its quotas and
//! queues a message naming only the address, and the outbox finds the account later (see
//! `outbox`). Neither its answer nor its time says whether the address has an account.

use secrecy::SecretString;

use super::Auth;
use super::client::ClientInfo;
use super::codes::Purpose;
use super::events;
use super::login::{self, CheckedCode};
use super::outbox::{self, Outgoing};
use super::sessions::{self, Ending};
use super::throttle::{self, QuotaKey};
use crate::db::sessions::Which;
use crate::db::{self, DbConn, mfa_challenges, passkeys, users};
use crate::domain::{Email, EventKind, MailKind, NewPassword, RevokeReason};
use crate::error::Error;

/// Queues a reset code for `email` (`POST /password/forgot`), within the quotas of the client
/// address and of the recipient, whether or not an account has the address.
pub async fn forgot(auth: &Auth, email: &str, client: ClientInfo) -> Result<(), Error> {
    let email = Email::parse(email).map_err(|error| Error::Validation(vec![error]))?;
    let quotas = mail_quotas(auth, &client, email.as_str());
    within_mail_quotas(auth, quotas, move |conn| {
        outbox::enqueue(
            conn,
            &Outgoing {
                kind: MailKind::PasswordReset,
                recipient: email.as_str(),
                user_id: None,
                code: None,
                detail: None,
                requested_by: Some(&client),
            },
        )
    })
    .await?;
    auth.outbox.wake();
    Ok(())
}

/// The quotas a request that mails `recipient` counts against: the client address's
/// (`LATCHKEY_SIGNUP_IP_MAX` an hour) and the recipient's (`LATCHKEY_MAIL_RECIPIENT_MAX`).
pub(super) fn mail_quotas(
    auth: &Auth,
    client: &ClientInfo,
    recipient: &str,
) -> [(QuotaKey, usize); 2] {
    [
        (
            QuotaKey::mail_from(client.ip),
            auth.throttle.signups_per_address,
        ),
        (
            QuotaKey::mail_to(recipient),
            auth.throttle.mails_per_recipient,
        ),
    ]
}

/// Counts a request against its [`mail_quotas`] and runs `then` in the same write
/// transaction if they admit it. A refusal is answered after a pause (see
/// `throttle::REFUSAL_PAUSE`).
pub(super) async fn within_mail_quotas<T, F>(
    auth: &Auth,
    quotas: [(QuotaKey, usize); 2],
    then: F,
) -> Result<T, Error>
where
    T: Send + 'static,
    F: FnOnce(&mut DbConn) -> Result<T, Error> + Send + 'static,
{
    let outcome = auth
        .db
        .run(move |conn| {
            db::write_transaction(conn, |conn| {
                let counted = quotas.each_ref().map(|(key, max)| (key, *max));
                throttle::admit_quotas(conn, &counted)?;
                then(conn)
            })
        })
        .await;
    if let Err(Error::TooManyAttempts { .. }) = outcome {
        tokio::time::sleep(throttle::REFUSAL_PAUSE).await;
    }
    outcome
}

/// Sets a new password with a reset code (`POST /password/reset`): every session of the
/// account ends, its login lockout is cleared, `password_reset` is recorded and a notice is
/// mailed. The code is checked before the password (a `422` tells only the code's holder
/// about the account), and used up in the transaction that sets the password: of two
/// concurrent resets with one code, exactly one succeeds.
pub async fn reset(
    auth: &Auth,
    email: &str,
    code: String,
    new_password: SecretString,
    client: ClientInfo,
) -> Result<(), Error> {
    // Before anything counts: an overloaded instance refuses without using up a try.
    let ticket = auth.passwords.reserve()?;
    const PURPOSES: &[Purpose] = &[Purpose::PasswordReset];
    let CheckedCode { code, reservation } =
        login::check_code(auth, email, code, PURPOSES, &client).await?;
    let user_id = code.user_id.clone();
    let user = auth
        .db
        .run(move |conn| Ok(users::find(conn, &user_id)?))
        .await?
        .ok_or(Error::InvalidCode)?;
    if user.disabled_at.is_some() {
        return Err(Error::AccountDisabled);
    }
    let identity: Vec<&str> = std::iter::once(user.email.as_str())
        .chain(user.username.as_deref())
        .collect();
    let new_password = NewPassword::parse("new_password", new_password, &identity)
        .map_err(|error| Error::Validation(vec![error]))?;
    let new_hash = auth
        .passwords
        .hash(ticket, new_password.into_secret())
        .await?;
    let (codes, policy) = (auth.codes.clone(), auth.sessions);
    let ended = auth
        .db
        .run(move |conn| {
            db::write_transaction(conn, |conn| {
                if !codes.consume(conn, &code)? {
                    return Err(Error::InvalidCode);
                }
                let at = policy.liveness(db::now());
                let user_id = &user.id;
                users::replace_password_hash(conn, user_id, &new_hash, at.now)?;
                // A login that got past the old password owes nothing any more: it ends. The
                // second factor stays: a reset does not bypass it.
                mfa_challenges::delete_for(conn, user_id)?;
                // The code went to the address: it is the account holder's.
                users::set_email_verified(conn, user_id, &user.email, at.now)?;
                // So are the account's ways in: the new password only. A passkey, which logs
                // in alone, may have been planted by whoever held the account before (signed
                // up with this address first, or held a stolen session); the owner adds theirs
                // again.
                if passkeys::delete_all(conn, user_id)? > 0 {
                    events::record(conn, user_id, EventKind::PasskeyRemoved, &client, None)?;
                }
                throttle::succeeded(conn, &reservation)?;
                throttle::forgive_account(conn, user_id)?;
                let all = Ending {
                    which: Which::All,
                    reason: RevokeReason::PasswordReset,
                    event: EventKind::SessionRevoked,
                };
                let ended = sessions::revoke(conn, user_id, all, at, &client)?.len();
                events::record(conn, user_id, EventKind::PasswordReset, &client, None)?;
                let notice = Outgoing::notice(MailKind::PasswordChanged, &user.email, user_id);
                outbox::enqueue(conn, &notice)?;
                Ok::<_, Error>(ended)
            })
        })
        .await?;
    auth.outbox.wake();
    tracing::info!(event = "password_reset", ended, "password reset");
    Ok(())
}
