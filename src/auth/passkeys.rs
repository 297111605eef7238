//! Passkeys (API.md "Passkeys (WebAuthn)"): registering them from a session, listing,
//! renaming and removing them, and logging in with one, naming no account.
//!
//! Each ceremony is started by one request and finished by another, on any instance: its
//! state waits in the database under the digest of its id, for 5 minutes, and its finish
//! takes it with a conditional delete, so that it is used once. A login's credential is
//! checked under the throttle like a password (per address, and per account in a count of
//! its own), and a refusal records `passkey_failed`.

use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chrono::NaiveDateTime;
use serde_json::Value;
use webauthn_rs::prelude::{Passkey, PublicKeyCredential, RegisterPublicKeyCredential};

use super::Auth;
use super::accounts::{self, Identity};
use super::client::ClientInfo;
use super::codes;
use super::codes::Purpose as CodePurpose;
use super::events::{self, Refusal};
use super::login;
use super::outbox;
use super::sessions::{self, Caller, Granted};
use super::throttle::{self, AttemptKeys, QuotaKey};
use crate::db::passkeys::{self, StoredPasskey};
use crate::db::users::{self, User};
use crate::db::webauthn_ceremonies::{self, NewCeremony};
use crate::db::{self, DbConn};
use crate::domain::{AuthMethods, CeremonyPurpose, Email, EventKind, PasskeyId, UserId, Username};
use crate::error::{Error, FieldError};

/// How long a ceremony waits for its finish.
pub const CEREMONY_TTL: Duration = Duration::from_secs(5 * 60);
/// How recently the caller's session must have logged in to add a passkey: a passkey logs
/// in for good, so a stolen access token (or a device left unlocked) must not add one
/// unless the owner proved who they are just before.
pub const RECENT_LOGIN: Duration = Duration::from_secs(10 * 60);
/// Passkeys an account may have.
pub const MAX_PASSKEYS: i64 = 20;
/// Registrations an account may have open at once; a new one beyond ends the oldest.
const MAX_OPEN_REGISTRATIONS: i64 = 5;
/// Logins and signups an address may have open at once (many people behind one NAT log in
/// at the same time). A start beyond waits (`429`) for the oldest to expire: it never ends
/// anyone else's ceremony in progress, and starting in a loop grows nothing.
const MAX_OPEN_LOGINS: i64 = 32;
/// The longest `ceremony_id` read: longer is no id of ours (ours are 43 characters).
const MAX_CEREMONY_ID_LENGTH: usize = 128;
/// The longest credential id WebAuthn allows.
const MAX_CREDENTIAL_ID_LENGTH: usize = 1023;
/// A passkey's name, in characters.
const MAX_NAME_CHARS: usize = 64;
/// The name of a passkey registered without one.
const DEFAULT_NAME: &str = "Passkey";

/// A ceremony started: its id, for the finish, and the options for the browser's
/// `navigator.credentials.create()` or `.get()`.
pub struct Started {
    pub ceremony_id: String,
    pub options: Value,
}

/// A passkey's name as given: trimmed; `None` or blank is the default name.
pub fn read_name(name: Option<&str>) -> Result<String, Error> {
    let name = name.map(str::trim).filter(|name| !name.is_empty());
    match name {
        None => Ok(DEFAULT_NAME.to_owned()),
        Some(name)
            if name.chars().count() <= MAX_NAME_CHARS && !name.chars().any(char::is_control) =>
        {
            Ok(name.to_owned())
        }
        Some(_) => Err(Error::Validation(vec![FieldError::new(
            "name",
            "invalid_name",
            "must be at most 64 characters, without control characters",
        )])),
    }
}

/// Starts registering a passkey for the caller's account (`POST
/// /me/passkeys/register/start`); the authenticator is asked not to make a second
/// credential beside one the account has.
pub async fn start_registration(auth: &Auth, caller: Caller, user: User) -> Result<Started, Error> {
    if caller.logged_in_at < db::now() - db::span(RECENT_LOGIN) {
        return Err(Error::ReauthenticationRequired);
    }
    let user_id = caller.user_id.clone();
    let registered = auth
        .db
        .run(move |conn| Ok(passkeys::credential_ids(conn, &user_id)?))
        .await?;
    if registered.len() >= MAX_PASSKEYS as usize {
        return Err(Error::TooManyPasskeys);
    }
    let (options, state) =
        auth.relying_party
            .start_registration(&user.id, &user.email, registered)?;
    let owner = format!("user:{}", user.id);
    let ceremony_id = open(auth, CeremonyPurpose::Register, owner, Some(user.id), state).await?;
    Ok(Started {
        ceremony_id,
        options,
    })
}

/// Finishes a registration (`POST /me/passkeys/register/finish`): the new passkey, recorded
/// as `passkey_added` for the caller's session.
pub async fn finish_registration(
    auth: &Auth,
    caller: Caller,
    ceremony_id: String,
    credential: RegisterPublicKeyCredential,
    name: String,
    client: ClientInfo,
) -> Result<StoredPasskey, Error> {
    let state = take(
        auth,
        &ceremony_id,
        CeremonyPurpose::Register,
        Some(&caller.user_id),
    )
    .await?;
    let passkey = auth
        .relying_party
        .finish_registration(&credential, &state)?;
    let stored = new_passkey(&caller.user_id, &passkey, name)?;
    let policy = auth.sessions;
    let added = auth
        .db
        .run(move |conn| {
            db::write_transaction(conn, |conn| {
                sessions::ensure_live(conn, &caller, policy.liveness(db::now()))?;
                // Concurrent registrations cannot together pass the limit.
                passkeys::lock_account(conn, &caller.user_id)?;
                if passkeys::count(conn, &caller.user_id)? >= MAX_PASSKEYS {
                    return Err(Error::TooManyPasskeys);
                }
                if !passkeys::insert(conn, &stored)? {
                    return Err(Error::PasskeyExists);
                }
                let session = Some(&caller.session_id);
                let kind = EventKind::PasskeyAdded;
                events::record(conn, &caller.user_id, kind, &client, session)?;
                Ok(stored)
            })
        })
        .await?;
    tracing::info!(event = "passkey_added", passkey_id = %added.id, "passkey added");
    Ok(added)
}

/// The account's passkeys (`GET /me/passkeys`), oldest first.
pub async fn list(auth: &Auth, user_id: UserId) -> Result<Vec<StoredPasskey>, Error> {
    auth.db
        .run(move |conn| Ok(passkeys::list(conn, &user_id)?))
        .await
}

/// Renames one of the account's passkeys (`PATCH /me/passkeys/{id}`).
pub async fn rename(
    auth: &Auth,
    user_id: UserId,
    id: PasskeyId,
    name: String,
) -> Result<StoredPasskey, Error> {
    auth.db
        .run(move |conn| {
            db::write_transaction(conn, |conn| {
                if passkeys::rename(conn, &user_id, &id, &name)? == 0 {
                    return Err(Error::NotFound);
                }
                passkeys::find(conn, &user_id, &id)?.ok_or(Error::NotFound)
            })
        })
        .await
}

/// Removes one of the account's passkeys (`DELETE /me/passkeys/{id}`), unless it is the
/// account's only way in (no password, no other passkey). Records `passkey_removed`.
pub async fn remove(
    auth: &Auth,
    caller: Caller,
    id: PasskeyId,
    client: ClientInfo,
) -> Result<(), Error> {
    let policy = auth.sessions;
    auth.db
        .run(move |conn| {
            db::write_transaction(conn, |conn| {
                sessions::ensure_live(conn, &caller, policy.liveness(db::now()))?;
                let owner = &caller.user_id;
                // Of two concurrent removals of an account's last two passkeys, the second
                // sees the first's.
                passkeys::lock_account(conn, owner)?;
                let user = users::find_locked(conn, owner)?.ok_or(Error::InvalidToken)?;
                passkeys::find(conn, owner, &id)?.ok_or(Error::NotFound)?;
                if !user.has_password() && passkeys::count(conn, owner)? <= 1 {
                    return Err(Error::LastCredential);
                }
                passkeys::delete(conn, owner, &id)?;
                let session = Some(&caller.session_id);
                events::record(conn, owner, EventKind::PasskeyRemoved, &client, session)
            })
        })
        .await?;
    tracing::info!(event = "passkey_removed", "passkey removed");
    Ok(())
}

/// Starts a login with a passkey (`POST /login/passkey/start`), for whoever asks: the
/// ceremonies open from one address are bounded.
pub async fn start_login(auth: &Auth, client: &ClientInfo) -> Result<Started, Error> {
    let (options, state) = auth.relying_party.start_login()?;
    let owner = address_owner(client);
    let ceremony_id = open(auth, CeremonyPurpose::Login, owner, None, state).await?;
    Ok(Started {
        ceremony_id,
        options,
    })
}

/// Finishes a login with a passkey (`POST /login/passkey/finish`): a new session, whose
/// tokens say `amr: ["hwk"]`; the passkey verified its user, so no second factor is asked.
/// A credential refused answers `InvalidCredentials`, whatever the reason (logged).
pub async fn finish_login(
    auth: &Auth,
    ceremony_id: String,
    credential: PublicKeyCredential,
    client: ClientInfo,
) -> Result<Granted, Error> {
    let state = take(auth, &ceremony_id, CeremonyPurpose::Login, None).await?;
    let credential_id = credential.raw_id.to_vec();
    let found = credential_id.clone();
    let stored = auth
        .db
        .run(move |conn| Ok(passkeys::find_by_credential_id(conn, &found)?))
        .await?;
    let owner = stored.as_ref().map(|stored| stored.user_id.clone());
    let keys = match &owner {
        Some(owner) => AttemptKeys::of_passkey(owner, client.ip),
        // An unknown credential counts against the address (and its own key, like an
        // unknown identifier at /login).
        None => AttemptKeys::new(
            None,
            &format!("passkey:{}", URL_SAFE_NO_PAD.encode(&credential_id)),
            client.ip,
        ),
    };
    let reservation = login::admit_keys(auth, owner.as_ref(), keys, &client).await?;
    let Some(stored) = stored else {
        tracing::info!(
            event = "passkey_refused",
            reason = "unknown credential",
            "passkey login refused"
        );
        return Err(Error::InvalidCredentials);
    };
    let passkey: Passkey = serde_json::from_str(&stored.credential).map_err(Error::internal)?;
    let verified = match auth.relying_party.identify(&credential) {
        Ok(handle) if handle == stored.user_id => auth
            .relying_party
            .finish_login(&credential, &state, passkey)
            .map_err(|error| error.to_string()),
        Ok(_) => Err("the user handle names another account".to_owned()),
        Err(_) => Err("no user handle".to_owned()),
    };
    let verified = match verified {
        Ok(verified) => verified,
        Err(reason) => {
            tracing::info!(event = "passkey_refused", user_id = %stored.user_id, %reason, "passkey login refused");
            login::refused(auth, Some(&stored.user_id), &client, Refusal::WrongPasskey);
            return Err(Error::InvalidCredentials);
        }
    };
    let updated = verified
        .updated
        .as_ref()
        .map(serde_json::to_string)
        .transpose()
        .map_err(Error::internal)?;
    let (policy, require_verified) = (auth.sessions, auth.require_verified_email);
    let account = stored.user_id.clone();
    let (owner, session_client) = (account.clone(), client.clone());
    let granted = auth
        .db
        .run(move |conn| {
            db::write_transaction(conn, |conn| {
                let client = &session_client;
                // Read again, locked: a passkey removed since it was read logs in nobody,
                // and of two logins with one counting credential the second sees the first's
                // counter (a cloned key racing the original).
                match passkeys::find_locked(conn, &stored.id)? {
                    Some(now) if now.credential == stored.credential => {}
                    Some(now) if !verified.counted_before(&now.credential)? => {}
                    _ => return Err(Error::InvalidCredentials),
                }
                let user = users::find_locked(conn, &owner)?.ok_or(Error::InvalidCredentials)?;
                if user.disabled_at.is_some() {
                    return Err(Error::AccountDisabled);
                }
                if require_verified && user.email_verified_at.is_none() {
                    return Err(Error::EmailNotVerified);
                }
                passkeys::record_use(conn, &stored.id, updated.as_deref(), db::now())?;
                throttle::succeeded(conn, &reservation)?;
                let methods = AuthMethods::Passkey;
                let continued = sessions::start(conn, &owner, methods, client, &policy)?;
                let session_id = Some(&continued.session.id);
                events::record(conn, &owner, EventKind::PasskeyLogin, client, session_id)?;
                Ok(Granted { user, continued })
            })
        })
        .await;
    if let Err(Error::InvalidCredentials) = &granted {
        let reason = "removed, or its counter used, meanwhile";
        tracing::info!(event = "passkey_refused", user_id = %account, %reason, "passkey login refused");
        login::refused(auth, Some(&account), &client, Refusal::WrongPasskey);
    }
    let granted = granted?;
    tracing::info!(event = "logged_in", user_id = %granted.user.id, session_id = %granted.continued.session.id, "logged in with a passkey");
    Ok(granted)
}

/// What a passkey signup's ceremony keeps until its finish: the account to create (its id is
/// the credential's user handle already) and webauthn-rs's state.
#[derive(serde::Serialize, serde::Deserialize)]
struct PendingSignup {
    user_id: String,
    email: String,
    username: Option<String>,
    registration: String,
}

/// Starts signing up with a passkey and no password (`POST /signup/passkey/start`): counted
/// against the address's signups like `POST /signup`, and `409` at once for a taken email or
/// username, as there. Nothing is created until the finish.
pub async fn start_signup(
    auth: &Auth,
    identity: Identity,
    client: &ClientInfo,
) -> Result<Started, Error> {
    auth.relying_party.is_on_or_unavailable()?;
    let counted = accounts::count_signup(auth, QuotaKey::signup(client.ip)).await;
    if let Err(Error::TooManyAttempts { .. }) = &counted {
        // As at `POST /signup`: retrying at once turns no cheap refusal into a flood.
        tokio::time::sleep(throttle::REFUSAL_PAUSE).await;
    }
    counted?;
    let identity = auth
        .db
        .run(move |conn| accounts::ensure_available(conn, &identity).map(|()| identity))
        .await?;
    let user_id = UserId::generate();
    let email = identity.email.as_str();
    let (options, registration) = auth
        .relying_party
        .start_registration(&user_id, email, vec![])?;
    let pending = PendingSignup {
        user_id: user_id.into(),
        email: email.to_owned(),
        username: identity
            .username
            .as_ref()
            .map(|name| name.as_str().to_owned()),
        registration,
    };
    let state = serde_json::to_string(&pending).map_err(Error::internal)?;
    let owner = address_owner(client);
    let ceremony_id = open(auth, CeremonyPurpose::Signup, owner, None, state).await?;
    Ok(Started {
        ceremony_id,
        options,
    })
}

/// Finishes a passkey signup (`POST /signup/passkey/finish`): the account, without a
/// password, its passkey, and its first session (`amr: ["hwk"]`), with the mail that
/// verifies its address, in one transaction. Records `signup` and `passkey_added`.
pub async fn finish_signup(
    auth: &Auth,
    ceremony_id: String,
    credential: RegisterPublicKeyCredential,
    name: String,
    client: ClientInfo,
) -> Result<Granted, Error> {
    let state = take(auth, &ceremony_id, CeremonyPurpose::Signup, None).await?;
    let pending: PendingSignup = serde_json::from_str(&state).map_err(Error::internal)?;
    let identity = Identity {
        email: Email::parse(&pending.email).map_err(|_| stored_identity_unreadable())?,
        username: match &pending.username {
            Some(name) => Some(Username::parse(name).map_err(|_| stored_identity_unreadable())?),
            None => None,
        },
    };
    let passkey = auth
        .relying_party
        .finish_registration(&credential, &pending.registration)?;
    let user_id = UserId::from(pending.user_id);
    let stored = new_passkey(&user_id, &passkey, name)?;
    let (policy, codes) = (auth.sessions, auth.codes.clone());
    let granted = auth
        .db
        .run(move |conn| {
            db::write_transaction(conn, |conn| {
                // No password: only a reset by mail ever sets one.
                let user = accounts::insert(conn, &user_id, &identity, "")?;
                if !passkeys::insert(conn, &stored)? {
                    return Err(Error::PasskeyExists);
                }
                let methods = AuthMethods::Passkey;
                let continued = sessions::start(conn, &user.id, methods, &client, &policy)?;
                let session_id = Some(&continued.session.id);
                events::record(conn, &user.id, EventKind::Signup, &client, session_id)?;
                events::record(conn, &user.id, EventKind::PasskeyAdded, &client, session_id)?;
                let verification = CodePurpose::EmailVerification;
                outbox::mail_code(conn, &codes, &user.id, verification, &user.email)?;
                Ok(Granted { user, continued })
            })
        })
        .await?;
    auth.outbox.wake();
    tracing::info!(event = "signed_up", user_id = %granted.user.id, session_id = %granted.continued.session.id, "signed up with a passkey");
    Ok(granted)
}

fn stored_identity_unreadable() -> Error {
    Error::internal(anyhow::anyhow!(
        "a pending signup's email or username is unreadable"
    ))
}

/// The row of a passkey just registered for the account.
fn new_passkey(user_id: &UserId, passkey: &Passkey, name: String) -> Result<StoredPasskey, Error> {
    let credential_id = passkey.cred_id().to_vec();
    if credential_id.len() > MAX_CREDENTIAL_ID_LENGTH {
        return Err(Error::InvalidPasskey(
            "The credential id is longer than WebAuthn allows (1023 bytes).".into(),
        ));
    }
    Ok(StoredPasskey {
        id: PasskeyId::generate(),
        user_id: user_id.clone(),
        credential_id,
        credential: serde_json::to_string(passkey).map_err(Error::internal)?,
        name,
        created_at: db::now(),
        last_used_at: None,
    })
}

/// Who a ceremony started by whoever asks (a login, a signup) counts against: its address.
fn address_owner(client: &ClientInfo) -> String {
    format!("address:{}", throttle::address_key(client.ip))
}

/// Stores a ceremony's state under a new id, ending the owner's oldest beyond its limit;
/// answers the id.
async fn open(
    auth: &Auth,
    purpose: CeremonyPurpose,
    owner: String,
    user_id: Option<UserId>,
    state: String,
) -> Result<String, Error> {
    let ceremony_id = codes::random_token()?;
    let id_hash = codes::token_digest(&ceremony_id);
    auth.db
        .run(move |conn| {
            db::write_transaction(conn, |conn| {
                let now = db::now();
                if let CeremonyPurpose::Login | CeremonyPurpose::Signup = purpose {
                    // Started by whoever asks: bounded per address, together.
                    let open =
                        webauthn_ceremonies::live_expiries(conn, &owner, now, MAX_OPEN_LOGINS)?;
                    if let (true, Some(soonest)) =
                        (open.len() as i64 >= MAX_OPEN_LOGINS, open.first())
                    {
                        let wait = (*soonest - now).num_seconds().max(1);
                        return Err(Error::TooManyAttempts {
                            retry_after: wait.unsigned_abs(),
                        });
                    }
                }
                let ceremony = NewCeremony {
                    id_hash: &id_hash,
                    purpose,
                    owner: &owner,
                    user_id: user_id.as_ref(),
                    state: &state,
                    now,
                    expires_at: expiry(now),
                };
                webauthn_ceremonies::insert(conn, &ceremony)?;
                if let CeremonyPurpose::Register = purpose {
                    // An account's own: a new one ends its oldest beyond the limit.
                    webauthn_ceremonies::keep_newest(conn, &owner, MAX_OPEN_REGISTRATIONS)?;
                }
                Ok(())
            })
        })
        .await?;
    Ok(ceremony_id)
}

fn expiry(now: NaiveDateTime) -> NaiveDateTime {
    now + db::span(CEREMONY_TTL)
}

/// Takes the live ceremony with this id, started for `purpose` (by this account, for a
/// registration): its state, or `InvalidCeremony`. Used up whatever the finish makes of it.
async fn take(
    auth: &Auth,
    ceremony_id: &str,
    purpose: CeremonyPurpose,
    user_id: Option<&UserId>,
) -> Result<String, Error> {
    if ceremony_id.len() > MAX_CEREMONY_ID_LENGTH {
        return Err(Error::InvalidCeremony);
    }
    let id_hash = codes::token_digest(ceremony_id);
    let user_id = user_id.cloned();
    auth.db
        .run(move |conn: &mut DbConn| {
            let now = db::now();
            let state = webauthn_ceremonies::take(conn, &id_hash, purpose, user_id.as_ref(), now)?;
            state.ok_or(Error::InvalidCeremony)
        })
        .await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_trimmed_bounded_and_default() {
        assert_eq!(read_name(None).unwrap(), "Passkey");
        assert_eq!(read_name(Some("  ")).unwrap(), "Passkey");
        assert_eq!(read_name(Some(" Laptop ")).unwrap(), "Laptop");
        assert_eq!(read_name(Some(&"é".repeat(64))).unwrap(), "é".repeat(64));
        assert!(read_name(Some(&"é".repeat(65))).is_err());
        assert!(read_name(Some("a\u{0}b")).is_err());
    }
}
