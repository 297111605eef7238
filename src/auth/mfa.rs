//! The second factor (API.md "Second factor: TOTP and recovery codes"): enrolling a TOTP
//! secret in two steps, the recovery codes that confirming it hands out, disabling it, and
//! the second step of a login to an account that has it.
//!
//! Every check of a code is throttled like a login and counted against the account's
//! limit, so a stolen password buys no faster guessing here than at `/login`; a wrong code
//! records `mfa_failed`. Every code is used up by a conditional update in the transaction
//! of what it allows: a TOTP step, a recovery code and a login challenge each once.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use chrono::NaiveDateTime;

use secrecy::{ExposeSecret, SecretString};
use zeroize::Zeroizing;

use super::Auth;
use super::client::ClientInfo;
use super::codes;
use super::events::{self, Refusal};
use super::key_vault::KeyVault;
use super::login;
use super::sessions::{self, Caller, Granted};
use super::throttle;
use super::totp::{self, Provisioning, TotpSecret};
use crate::db::totp_factors::{self, TotpFactor};
use crate::db::users::{self, User};
use crate::db::{self, DbConn, mfa_challenges, recovery_codes};
use crate::domain::{AuthMethods, EventKind, UserId};
use crate::error::Error;

/// How long a login may take to give its second factor.
pub const CHALLENGE_TTL: Duration = Duration::from_secs(5 * 60);
/// Wrong codes a login challenge allows; the next try finds it ended.
pub const MAX_WRONG_CODES: i32 = 5;
/// Challenges an account may have open at once (a login on each of a few devices); a new
/// one beyond ends the oldest, so that logging in in a loop grows nothing.
const MAX_OPEN_CHALLENGES: i64 = 5;
/// Recovery codes handed out when the factor is confirmed.
pub const RECOVERY_CODES: usize = 10;
/// Characters of Crockford base32 in a recovery code: 50 bits.
const RECOVERY_CODE_LENGTH: usize = 10;
/// The longest `mfa_token` read: longer is no token of ours (ours are 43 characters).
const MAX_TOKEN_LENGTH: usize = 128;

/// What the second factor needs besides the database: the key that seals the secrets, and
/// the name authenticator apps show for them.
pub struct Factors {
    vault: KeyVault,
    issuer: String,
}

impl Factors {
    pub fn new(vault: KeyVault, issuer: String) -> Self {
        Self { vault, issuer }
    }

    fn seal(&self, user_id: &UserId, secret: &TotpSecret) -> Result<Vec<u8>, Error> {
        self.vault.seal(&secret_context(user_id), secret.as_bytes())
    }

    fn open(&self, factor: &TotpFactor) -> Result<TotpSecret, Error> {
        let bytes = self
            .vault
            .open(&secret_context(&factor.user_id), &factor.secret)?;
        Ok(TotpSecret::from_bytes(bytes))
    }
}

/// Seals, in place, the TOTP secrets stored plain (`latchkey keys encrypt`); answers how
/// many. Each is replaced only if still the plain secret read.
pub fn seal_stored_secrets(conn: &mut DbConn, vault: &KeyVault) -> Result<usize, Error> {
    let mut sealed = 0;
    for factor in totp_factors::list(conn)? {
        if KeyVault::is_sealed(&factor.secret) {
            continue;
        }
        let stored = vault.seal(&secret_context(&factor.user_id), &factor.secret)?;
        sealed += totp_factors::replace_secret(conn, &factor.user_id, &factor.secret, &stored)?;
    }
    Ok(sealed)
}

/// How many TOTP secrets are stored plain.
pub fn count_plain_secrets(conn: &mut DbConn) -> Result<usize, Error> {
    Ok(totp_factors::list(conn)?
        .iter()
        .filter(|factor| !KeyVault::is_sealed(&factor.secret))
        .count())
}

/// What a sealed secret is bound to: its account, so that it cannot be moved to another.
fn secret_context(user_id: &UserId) -> String {
    format!("totp:{user_id}")
}

/// A second factor as typed.
pub enum SecondFactor {
    /// A TOTP code.
    Code(String),
    /// One of the account's recovery codes.
    RecoveryCode(String),
}

impl SecondFactor {
    /// Either kind, told apart by its shape (six digits are a TOTP code).
    pub fn either(typed: String) -> Self {
        if totp::looks_like_code(&typed) {
            Self::Code(typed)
        } else {
            Self::RecoveryCode(typed)
        }
    }
}

/// A second factor found right, to be used up in the transaction of what it allows.
enum Proof {
    /// A TOTP code of this time step.
    Step(i64),
    /// The hash of a recovery code, right if an unused code of the account has it.
    RecoveryCode(Vec<u8>),
}

impl Proof {
    /// Uses it up: `false` if it is wrong after all (a recovery code) or was used meanwhile.
    /// A used recovery code records `recovery_code_used`.
    fn use_up(
        &self,
        conn: &mut DbConn,
        user_id: &UserId,
        client: &ClientInfo,
    ) -> Result<bool, Error> {
        match self {
            Self::Step(step) => Ok(totp_factors::use_step(conn, user_id, *step)? == 1),
            Self::RecoveryCode(hash) => {
                let used = recovery_codes::use_code(conn, user_id, hash, db::now())? == 1;
                if used {
                    events::record(conn, user_id, EventKind::RecoveryCodeUsed, client, None)?;
                }
                Ok(used)
            }
        }
    }
}

/// Starts enrolling a TOTP factor (`POST /me/mfa/totp`), once the password is confirmed like
/// a login: a new secret, pending until [`confirm`], replacing a pending one.
pub async fn enrol(
    auth: &Auth,
    caller: Caller,
    user: User,
    password: SecretString,
    client: ClientInfo,
) -> Result<Provisioning, Error> {
    if user.totp_enabled_at.is_some() {
        return Err(Error::MfaAlreadyEnabled);
    }
    let reservation = login::confirm_password(auth, &user, password, &client).await?;
    let secret = TotpSecret::generate()?;
    let provisioning = secret.provisioning(&auth.mfa.issuer, &user.email)?;
    let sealed = auth.mfa.seal(&user.id, &secret)?;
    let policy = auth.sessions;
    auth.db
        .run(move |conn| {
            db::write_transaction(conn, |conn| {
                let at = policy.liveness(db::now());
                sessions::ensure_live(conn, &caller, at)?;
                if totp_factors::replace_pending(conn, &caller.user_id, &sealed, at.now)? == 0 {
                    return Err(Error::MfaAlreadyEnabled);
                }
                throttle::succeeded(conn, &reservation)
            })
        })
        .await?;
    tracing::info!(event = "mfa_enrolment_started", "TOTP enrolment started");
    Ok(provisioning)
}

/// Confirms the pending TOTP factor with a code of it (`POST /me/mfa/totp/confirm`): logins
/// ask for codes from now on. Answers the recovery codes, which only their hashes outlive.
pub async fn confirm(
    auth: &Auth,
    caller: Caller,
    user: User,
    typed: String,
    client: ClientInfo,
) -> Result<Vec<Zeroizing<String>>, Error> {
    let factor = match read_factor(auth, &user.id).await? {
        _ if user.totp_enabled_at.is_some() => return Err(Error::MfaAlreadyEnabled),
        Some(factor) if factor.confirmed_at.is_none() => factor,
        Some(_) => return Err(Error::MfaAlreadyEnabled),
        None => return Err(Error::MfaNotPending),
    };
    let reservation = login::admit_second_factor(auth, &user.id, &client).await?;
    let Some(step) = totp_step(auth, &factor, &typed)? else {
        return Err(wrong_code(auth, &user.id, &client));
    };
    let codes = new_recovery_codes()?;
    let hashes: Vec<Vec<u8>> = codes
        .iter()
        .map(|code| auth.codes.recovery_code_hash(&user.id, code))
        .collect();
    let checked = factor.secret;
    change_factor(
        auth,
        caller,
        client,
        EventKind::MfaEnabled,
        move |conn, user_id, _, now| {
            // The secret the code was checked against, unless an enrolment replaced it.
            if totp_factors::confirm(conn, user_id, &checked, now)? == 0 {
                return Err(Error::MfaNotPending);
            }
            if totp_factors::use_step(conn, user_id, step)? == 0 {
                return Err(Error::InvalidMfaCode);
            }
            users::set_totp_enabled(conn, user_id, Some(now))?;
            recovery_codes::replace_all(conn, user_id, &hashes)?;
            throttle::withdraw(conn, &reservation)
        },
    )
    .await?;
    tracing::info!(event = "mfa_enabled", "TOTP factor enabled");
    Ok(codes
        .iter()
        .map(|code| display_recovery_code(code))
        .collect())
}

/// Removes the TOTP factor and its recovery codes (`DELETE /me/mfa/totp`), once the password
/// is confirmed like a login and a code of the factor (or a recovery code) is right.
pub async fn disable(
    auth: &Auth,
    caller: Caller,
    user: User,
    password: SecretString,
    typed: String,
    client: ClientInfo,
) -> Result<(), Error> {
    if user.totp_enabled_at.is_none() {
        return Err(Error::MfaNotEnabled);
    }
    let reservation = login::confirm_password(auth, &user, password, &client).await?;
    let Some(proof) = check(auth, &user.id, SecondFactor::either(typed)).await? else {
        return Err(wrong_code(auth, &user.id, &client));
    };
    change_factor(
        auth,
        caller,
        client,
        EventKind::MfaDisabled,
        move |conn, user_id, client, _| {
            if !proof.use_up(conn, user_id, client)? {
                return Err(Error::InvalidMfaCode);
            }
            remove_factor(conn, user_id)?;
            throttle::succeeded(conn, &reservation)
        },
    )
    .await?;
    tracing::info!(event = "mfa_disabled", "TOTP factor disabled");
    Ok(())
}

/// Runs `change` (given the account, the client and the time) in a write transaction, if the
/// caller's session is still live, and records `kind` for the session there. A code found
/// wrong in it (a recovery code, a step used meanwhile) records `mfa_failed` after.
async fn change_factor(
    auth: &Auth,
    caller: Caller,
    client: ClientInfo,
    kind: EventKind,
    change: impl FnOnce(&mut DbConn, &UserId, &ClientInfo, NaiveDateTime) -> Result<(), Error>
    + Send
    + 'static,
) -> Result<(), Error> {
    let policy = auth.sessions;
    let (user_id, events_client) = (caller.user_id.clone(), client.clone());
    let changed = auth
        .db
        .run(move |conn| {
            db::write_transaction(conn, |conn| {
                let at = policy.liveness(db::now());
                let (owner, session) = (&caller.user_id, Some(&caller.session_id));
                sessions::ensure_live(conn, &caller, at)?;
                change(conn, owner, &events_client, at.now)?;
                events::record(conn, owner, kind, &events_client, session)
            })
        })
        .await;
    if let Err(Error::InvalidMfaCode) = changed {
        wrong_code(auth, &user_id, &client);
    }
    changed
}

/// Removes the second factor of the account with this email, as an operator does for an owner
/// who lost both the app and the recovery codes (`latchkey user reset-mfa`): answers the
/// account's email and whether it had a (confirmed) factor. Records
/// `mfa_disabled`, without an address or user agent; the sessions stay as they are.
pub async fn reset_by_operator(db: &db::Db, email: String) -> Result<(String, bool), Error> {
    db.run(move |conn| {
        db::write_transaction(conn, |conn| {
            let user = super::accounts::find_by_email(conn, &email)?;
            // A pending enrolment goes too, but was no factor yet.
            let had = user.totp_enabled_at.is_some();
            remove_factor(conn, &user.id)?;
            if had {
                let operator = ClientInfo::default();
                events::record(conn, &user.id, EventKind::MfaDisabled, &operator, None)?;
            }
            Ok((user.email, had))
        })
    })
    .await
}

/// Removes the account's factor, its recovery codes and its open login challenges, in the
/// caller's write transaction.
fn remove_factor(conn: &mut DbConn, user_id: &UserId) -> Result<(), Error> {
    totp_factors::delete(conn, user_id)?;
    recovery_codes::delete_all(conn, user_id)?;
    mfa_challenges::delete_for(conn, user_id)?;
    users::set_totp_enabled(conn, user_id, None)?;
    Ok(())
}

/// Opens a login challenge for an account whose password was right and that owes its second
/// factor, in the caller's write transaction; answers its token, for `Error::MfaRequired`.
pub(super) fn challenge(conn: &mut DbConn, user_id: &UserId) -> Result<SecretString, Error> {
    let token = codes::random_token()?;
    let now = db::now();
    let expires_at = now + db::span(CHALLENGE_TTL);
    mfa_challenges::insert(conn, &codes::token_digest(&token), user_id, now, expires_at)?;
    mfa_challenges::keep_newest(conn, user_id, MAX_OPEN_CHALLENGES)?;
    Ok(SecretString::from(token))
}

/// Completes a login with its second factor (`POST /login/mfa`): a new session, whose tokens
/// say `amr: ["pwd", "otp"]`. A wrong code counts against the challenge and the account's
/// throttle and records `mfa_failed`.
pub async fn complete_login(
    auth: &Auth,
    mfa_token: SecretString,
    factor: SecondFactor,
    client: ClientInfo,
) -> Result<Granted, Error> {
    let token = mfa_token.expose_secret();
    if token.len() > MAX_TOKEN_LENGTH {
        return Err(Error::InvalidMfaToken);
    }
    let challenge = codes::token_digest(token);
    let found = challenge.clone();
    let user_id = auth
        .db
        .run(move |conn| {
            let now = db::now();
            Ok(mfa_challenges::find_live(
                conn,
                &found,
                now,
                MAX_WRONG_CODES,
            )?)
        })
        .await?
        .ok_or(Error::InvalidMfaToken)?;
    let reservation = login::admit_second_factor(auth, &user_id, &client).await?;
    let proof = check(auth, &user_id, factor).await?;
    let (policy, owner, session_client) = (auth.sessions, user_id.clone(), client.clone());
    let granted = auth
        .db
        .run(move |conn| {
            db::write_transaction(conn, |conn| {
                let client = &session_client;
                let proven = match &proof {
                    Some(proof) => proof.use_up(conn, &owner, client)?,
                    None => false,
                };
                let now = db::now();
                if !proven {
                    // Committed: the wrong code counts against the challenge, unless
                    // concurrent wrong codes ended it meanwhile.
                    let max = MAX_WRONG_CODES;
                    if mfa_challenges::count_wrong_code(conn, &challenge, now, max)? == 0 {
                        return Err(Error::InvalidMfaToken);
                    }
                    return Ok(None);
                }
                if mfa_challenges::consume(conn, &challenge, now, MAX_WRONG_CODES)? == 0 {
                    return Err(Error::InvalidMfaToken);
                }
                throttle::succeeded(conn, &reservation)?;
                let methods = AuthMethods::PasswordAndOtp;
                let continued = sessions::start(conn, &owner, methods, client, &policy)?;
                let session_id = Some(&continued.session.id);
                events::record(conn, &owner, EventKind::Login, client, session_id)?;
                let user = users::find(conn, &owner)?.ok_or(Error::InvalidMfaToken)?;
                Ok::<_, Error>(Some(Granted { user, continued }))
            })
        })
        .await?;
    let Some(granted) = granted else {
        return Err(wrong_code(auth, &user_id, &client));
    };
    tracing::info!(event = "logged_in", user_id = %user_id, session_id = %granted.continued.session.id, "logged in with a second factor");
    Ok(granted)
}

/// The account's TOTP factor, pending or confirmed.
async fn read_factor(auth: &Auth, user_id: &UserId) -> Result<Option<TotpFactor>, Error> {
    let user_id = user_id.clone();
    auth.db
        .run(move |conn| Ok(totp_factors::find(conn, &user_id)?))
        .await
}

/// The step a TOTP code of `factor` is for, if it is one not used yet.
fn totp_step(auth: &Auth, factor: &TotpFactor, typed: &str) -> Result<Option<i64>, Error> {
    let secret = auth.mfa.open(factor)?;
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_err(Error::internal)?
        .as_secs();
    Ok(secret.step_of(typed, now, factor.last_used_step))
}

/// What `factor` proves for the account's confirmed TOTP factor, if it can be right.
async fn check(
    auth: &Auth,
    user_id: &UserId,
    factor: SecondFactor,
) -> Result<Option<Proof>, Error> {
    match factor {
        SecondFactor::Code(typed) => {
            let confirmed = read_factor(auth, user_id)
                .await?
                .filter(|factor| factor.confirmed_at.is_some());
            match confirmed {
                Some(factor) => Ok(totp_step(auth, &factor, &typed)?.map(Proof::Step)),
                None => Ok(None),
            }
        }
        SecondFactor::RecoveryCode(typed) => Ok(codes::read_base32(&typed, RECOVERY_CODE_LENGTH)
            .map(|code| Proof::RecoveryCode(auth.codes.recovery_code_hash(user_id, &code)))),
    }
}

/// Fresh recovery codes, as [`codes::read_base32`] reads them.
fn new_recovery_codes() -> Result<Vec<Zeroizing<String>>, Error> {
    (0..RECOVERY_CODES)
        .map(|_| codes::random_base32(RECOVERY_CODE_LENGTH))
        .collect()
}

/// `ABCDE-FGHJK`: halves are easier to copy by hand.
fn display_recovery_code(code: &str) -> Zeroizing<String> {
    let (first, second) = code.split_at(RECOVERY_CODE_LENGTH / 2);
    Zeroizing::new(format!("{first}-{second}"))
}

/// `InvalidMfaCode`, its `mfa_failed` event recorded after the answer.
fn wrong_code(auth: &Auth, user_id: &UserId, client: &ClientInfo) -> Error {
    tracing::info!(event = "mfa_failed", user_id = %user_id, "wrong second factor");
    login::refused(auth, Some(user_id), client, Refusal::WrongMfaCode);
    Error::InvalidMfaCode
}
