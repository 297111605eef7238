//! Proving an email address: the code mailed at signup (or again on request) verifies the
//! account's address; a change of address takes effect only when the code mailed to the new
//! one comes back (`POST /email/verify` serves both).

use secrecy::SecretString;

use super::Auth;
use super::client::ClientInfo;
use super::codes::Purpose;
use super::events;
use super::login::{self, CheckedCode};
use super::outbox::{self, Outgoing};
use super::recovery::{mail_quotas, within_mail_quotas};
use super::sessions::{self, Caller};
use super::throttle;
use crate::db::users::{self, Conflict, User};
use crate::db::{self, one_time_codes};
use crate::domain::{Email, EventKind, MailKind};
use crate::error::{Error, FieldError};

/// Verifies the address with a mailed code (`POST /email/verify`): the account's own
/// address (`email_verified`), or a new one, which then replaces the old (`email_changed`;
/// `EmailTaken` if another account took it meanwhile, and the code stays usable). Answers
/// the account as it now is. No login is needed: the code is the proof.
pub async fn verify(
    auth: &Auth,
    email: &str,
    code: String,
    client: ClientInfo,
) -> Result<User, Error> {
    const PURPOSES: &[Purpose] = &[Purpose::EmailVerification, Purpose::EmailChange];
    let CheckedCode { code, reservation } =
        login::check_code(auth, email, code, PURPOSES, &client).await?;
    let email = Email::normalize_for_lookup(email);
    let codes = auth.codes.clone();
    let user = auth
        .db
        .run(move |conn| {
            db::write_transaction(conn, |conn| {
                if !codes.consume(conn, &code)? {
                    return Err(Error::InvalidCode);
                }
                let user_id = &code.user_id;
                let user = users::find(conn, user_id)?.ok_or(Error::InvalidCode)?;
                let now = db::now();
                let event = match code.purpose {
                    Purpose::EmailVerification if user.email == email => {
                        users::set_email_verified(conn, user_id, &email, now)?;
                        EventKind::EmailVerified
                    }
                    Purpose::EmailChange => {
                        users::set_verified_email(conn, user_id, &email, now).map_err(|error| {
                            match users::conflict(&error) {
                                Some(Conflict::Email) => Error::EmailTaken,
                                _ => error.into(),
                            }
                        })?;
                        // What was mailed to the old address is no key to the account now.
                        one_time_codes::delete_for(conn, user_id, None)?;
                        EventKind::EmailChanged
                    }
                    // A code for an address the account no longer has.
                    _ => return Err(Error::InvalidCode),
                };
                throttle::succeeded(conn, &reservation)?;
                events::record(conn, user_id, event, &client, None)?;
                users::find(conn, user_id)?.ok_or(Error::InvalidCode)
            })
        })
        .await?;
    tracing::info!(event = "email_verified", user_id = %user.id, "email verified");
    Ok(user)
}

/// Mails the account a new code for its address (`POST /me/email/verification`), within
/// the mail quotas; `EmailAlreadyVerified` when there is nothing to prove.
pub async fn resend_verification(auth: &Auth, user: User, client: ClientInfo) -> Result<(), Error> {
    if user.email_verified_at.is_some() {
        return Err(Error::EmailAlreadyVerified);
    }
    let codes = auth.codes.clone();
    let quotas = mail_quotas(auth, &client, &user.email);
    within_mail_quotas(auth, quotas, move |conn| {
        outbox::mail_code(
            conn,
            &codes,
            &user.id,
            Purpose::EmailVerification,
            &user.email,
        )
    })
    .await?;
    auth.outbox.wake();
    Ok(())
}

/// Asks to change the account's address (`POST /me/email`), once the password is confirmed
/// like a login: a code goes to the new address, a notice to the old one, and the change
/// waits for the code (see [`verify`]). `EmailTaken` if an account has the new address.
pub async fn request_change(
    auth: &Auth,
    caller: Caller,
    user: User,
    new_email: &str,
    password: SecretString,
    client: ClientInfo,
) -> Result<(), Error> {
    let new_email = Email::parse(new_email).map_err(|error| {
        Error::Validation(vec![FieldError {
            field: "new_email",
            ..error
        }])
    })?;
    if new_email.as_str() == user.email {
        return Err(Error::Validation(vec![FieldError::new(
            "new_email",
            "same_email",
            "must differ from the account's current email",
        )]));
    }
    // Counted on their own, before the password: a refused request costs no hash.
    let quotas = mail_quotas(auth, &client, new_email.as_str());
    within_mail_quotas(auth, quotas, |_| Ok(())).await?;
    let reservation = login::confirm_password(auth, &user, password, &client).await?;
    let (codes, policy) = (auth.codes.clone(), auth.sessions);
    auth.db
        .run(move |conn| {
            db::write_transaction(conn, |conn| {
                sessions::ensure_live(conn, &caller, policy.liveness(db::now()))?;
                if users::email_exists(conn, new_email.as_str())? {
                    return Err(Error::EmailTaken);
                }
                let user_id = &user.id;
                let new_email = new_email.as_str();
                outbox::mail_code(conn, &codes, user_id, Purpose::EmailChange, new_email)?;
                let notice = Outgoing {
                    detail: Some(new_email),
                    ..Outgoing::notice(MailKind::EmailChangeRequested, &user.email, user_id)
                };
                outbox::enqueue(conn, &notice)?;
                throttle::succeeded(conn, &reservation)?;
                let session_id = Some(&caller.session_id);
                events::record(
                    conn,
                    user_id,
                    EventKind::EmailChangeRequested,
                    &client,
                    session_id,
                )
            })
        })
        .await?;
    auth.outbox.wake();
    tracing::info!(event = "email_change_requested", "email change requested");
    Ok(())
}
