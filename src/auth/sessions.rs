//! The life of a session: started by signup or login, checked on every authenticated
//! request, kept alive by refresh-token rotation, and ended by its lifetime, its idle timeout,
//! a logout, its user, a password change, an operator or a detected reuse. Every revocation
//! goes through [`revoke`], which records its event in the same transaction.

use std::time::Duration;

use chrono::NaiveDateTime;
use serde::Deserialize;

use super::Auth;
use super::client::ClientInfo;
use super::events;
use super::refresh_token::RefreshToken;
use crate::db::refresh_tokens::{self, NewRefreshToken};
use crate::db::sessions::{self, Liveness, NewSession, Session, Which};
use crate::db::users::{self, User};
use crate::db::{self, DbConn};
use crate::domain::{AuthMethods, EventKind, RevokeReason, SessionId, UserId};
use crate::error::Error;

#[derive(Debug, Clone, Copy)]
pub struct SessionPolicy {
    /// Absolute lifetime from login.
    pub lifetime: Duration,
    /// A session not refreshed for this long ends.
    pub idle_timeout: Duration,
    /// How long after a rotation the retired token still answers with its successor.
    pub reuse_grace: Duration,
    /// Live sessions an account may have; a new one beyond ends the oldest.
    pub max_sessions: usize,
}

impl SessionPolicy {
    pub fn liveness(&self, now: NaiveDateTime) -> Liveness {
        Liveness {
            now,
            idle_cutoff: now - db::span(self.idle_timeout),
        }
    }
}

/// The caller of a protected route: a live session of an existing user.
#[derive(Debug, Clone)]
pub struct Caller {
    pub user_id: UserId,
    pub session_id: SessionId,
    /// When the session's login happened (refreshes continue it): how recently the caller
    /// proved who they are.
    pub logged_in_at: NaiveDateTime,
}

impl From<Session> for Caller {
    fn from(session: Session) -> Self {
        Self {
            user_id: session.user_id,
            session_id: session.id,
            logged_in_at: session.created_at,
        }
    }
}

/// A session and the refresh token that continues it.
pub struct Continued {
    pub session: Session,
    pub refresh_token: RefreshToken,
    /// A refresh that answered a just-retired token, within the grace window, with the
    /// successor it had already been given (rather than rotating).
    pub converged: bool,
}

/// What signup, login and refresh grant: the user, and a session to issue tokens for.
pub struct Granted {
    pub user: User,
    pub continued: Continued,
}

/// The session of a bearer token: the token's signature and claims are checked, then that its
/// session exists, is live now and is still the token's user's, so that a logout or a
/// revocation takes effect on the very next request. Answers the session and its user.
pub async fn authenticate(auth: &Auth, token: &str) -> Result<(Session, User), Error> {
    let claims = auth.tokens.verify_or_reload(token).await?;
    let liveness = auth.sessions.liveness(db::now());
    auth.session_checks
        .find_with_user(SessionId::from(claims.sid.clone()))
        .await?
        .filter(|(session, _)| session.user_id.as_str() == claims.sub && session.is_live(liveness))
        .ok_or(Error::InvalidToken)
}

/// `InvalidToken` unless the caller's session is still live, checked in the caller's write
/// transaction (and on PostgreSQL locked until it ends): what a session allows is not done
/// once another device has revoked it.
pub(super) fn ensure_live(conn: &mut DbConn, caller: &Caller, at: Liveness) -> Result<(), Error> {
    if sessions::is_live_locked(conn, &caller.session_id, &caller.user_id, at)? {
        Ok(())
    } else {
        Err(Error::InvalidToken)
    }
}

/// Opens a session for the user with its first refresh token (generation 0), in the caller's
/// write transaction. Refuses a disabled account: checked here, so that a login whose
/// password check overlapped a `latchkey user disable` cannot leave a session behind. Past
/// the account's limit of live sessions, the oldest end (`session_limit`, with their
/// `session_revoked` events): logging in in a loop cannot grow the tables without bound.
/// `methods` says how the login proved who it was, for its access tokens' `amr`.
pub(super) fn start(
    conn: &mut DbConn,
    user_id: &UserId,
    methods: AuthMethods,
    client: &ClientInfo,
    policy: &SessionPolicy,
) -> Result<Continued, Error> {
    match users::is_disabled_locked(conn, user_id)? {
        Some(false) => {}
        Some(true) => return Err(Error::AccountDisabled),
        None => {
            return Err(Error::internal(anyhow::anyhow!(
                "no user for the new session"
            )));
        }
    }
    let now = db::now();
    let id = SessionId::generate();
    let ip = client.ip.map(|ip| ip.to_string());
    let refresh_token = RefreshToken::first().map_err(Error::internal)?;
    let family = refresh_token.family_digest();
    let new_session = NewSession {
        id: &id,
        user_id,
        created_at: now,
        last_used_at: now,
        expires_at: now + db::span(policy.lifetime),
        user_agent: client.user_agent.as_deref(),
        ip: ip.as_deref(),
        refresh_family_hash: family.as_deref(),
        amr: methods,
    };
    sessions::insert(conn, &new_session)?;
    let beyond_the_limit = Ending {
        which: Which::AllButNewest(policy.max_sessions),
        reason: RevokeReason::SessionLimit,
        event: EventKind::SessionRevoked,
    };
    revoke(
        conn,
        user_id,
        beyond_the_limit,
        policy.liveness(now),
        client,
    )?;
    refresh_tokens::insert(
        conn,
        &NewRefreshToken {
            session_id: &id,
            generation: 0,
            token_hash: &refresh_token.digest(),
            created_at: now,
        },
    )?;
    let session = sessions::find(conn, &id)?
        .ok_or_else(|| Error::internal(anyhow::anyhow!("session vanished after insert")))?;
    Ok(Continued {
        session,
        refresh_token,
        converged: false,
    })
}

/// Exchanges a refresh token for its successor (`POST /refresh`). A retired token within the
/// grace window gets the successor it was already given; outside it, the token is a replay:
/// its session is revoked (with a `refresh_reused` event for the address `client` that
/// presented it, committed) and the answer is `RefreshTokenReused`.
pub async fn refresh(
    auth: &Auth,
    presented: RefreshToken,
    client: ClientInfo,
) -> Result<Granted, Error> {
    let policy = auth.sessions;
    let granted = auth
        .db
        .run(move |conn| {
            db::write_transaction(conn, |conn| {
                match rotate(conn, &presented, &client, &policy)? {
                    Rotation::Continued(continued) => {
                        // Disabling an account revokes its sessions; refusing here too
                        // keeps a disabled account out should one have been missed.
                        let user = users::find(conn, &continued.session.user_id)?
                            .filter(|user| user.disabled_at.is_none())
                            .ok_or(Error::InvalidRefreshToken)?;
                        Ok::<_, Error>(Some(Granted { user, continued }))
                    }
                    Rotation::Reused => Ok(None),
                }
            })
        })
        .await?;
    granted.ok_or(Error::RefreshTokenReused)
}

// One value per refresh, moved once: boxing the common case would only add an allocation.
#[allow(clippy::large_enum_variant)]
enum Rotation {
    Continued(Continued),
    /// A retired token came back outside the grace window: the session is now revoked.
    Reused,
}

/// [`refresh`] within its write transaction: the revocation on reuse is part of the outcome,
/// not an error, so that it commits.
fn rotate(
    conn: &mut DbConn,
    presented: &RefreshToken,
    client: &ClientInfo,
    policy: &SessionPolicy,
) -> Result<Rotation, Error> {
    let now = db::now();
    let at = policy.liveness(now);
    let Some(mut generation) = refresh_tokens::find_by_hash(conn, &presented.digest())? else {
        // No such generation kept: an older one of a live session's family is a replay.
        let family = presented
            .family_digest()
            .ok_or(Error::InvalidRefreshToken)?;
        let session = sessions::find_by_refresh_family(conn, &family)?
            .filter(|session| session.is_live(at))
            .ok_or(Error::InvalidRefreshToken)?;
        return reused(conn, &session, at, client);
    };
    let session = sessions::find(conn, &generation.session_id)?
        .filter(|session| session.is_live(at))
        .ok_or(Error::InvalidRefreshToken)?;

    if generation.retired_at.is_none() {
        let successor = presented.successor().map_err(Error::internal)?;
        let sealed = presented.seal(&successor);
        let won =
            refresh_tokens::retire(conn, &session.id, generation.generation, now, &sealed)? == 1;
        if won {
            refresh_tokens::insert(
                conn,
                &NewRefreshToken {
                    session_id: &session.id,
                    generation: generation.generation + 1,
                    token_hash: &successor.digest(),
                    created_at: now,
                },
            )?;
            if presented.family_digest().is_some() {
                // Its family recognises any older generation: only the one just retired
                // (for the grace window) and the new one are kept.
                refresh_tokens::delete_before(conn, &session.id, generation.generation)?;
            }
            return continue_session(conn, session, successor, now, false);
        }
        // A concurrent request rotated this token first (PostgreSQL let our update wait for
        // its commit): read what it recorded and answer with the same successor.
        generation = refresh_tokens::find(conn, &session.id, generation.generation)?
            .ok_or(Error::InvalidRefreshToken)?;
    }

    let within_grace = generation
        .retired_at
        .is_some_and(|retired_at| now < retired_at + db::span(policy.reuse_grace));
    let successor_row = refresh_tokens::find(conn, &session.id, generation.generation + 1)?;
    let converged = match (within_grace, successor_row, generation.successor.as_deref()) {
        // Only the immediate predecessor of the live token converges.
        (true, Some(row), Some(sealed)) if row.retired_at.is_none() => presented
            .unseal(sealed)
            .filter(|successor| successor.digest() == row.token_hash),
        _ => None,
    };
    match converged {
        Some(successor) => continue_session(conn, session, successor, now, true),
        None => reused(conn, &session, at, client),
    }
}

/// A retired token came back: its session is revoked, with a `refresh_reused` event.
fn reused(
    conn: &mut DbConn,
    session: &Session,
    at: Liveness,
    client: &ClientInfo,
) -> Result<Rotation, Error> {
    let ended = Ending {
        which: Which::One(&session.id),
        reason: RevokeReason::RefreshTokenReused,
        event: EventKind::RefreshReused,
    };
    revoke(conn, &session.user_id, ended, at, client)?;
    tracing::warn!(event = "refresh_token_reused", session_id = %session.id, user_id = %session.user_id, "refresh token reused; session revoked");
    Ok(Rotation::Reused)
}

fn continue_session(
    conn: &mut DbConn,
    mut session: Session,
    refresh_token: RefreshToken,
    now: NaiveDateTime,
    converged: bool,
) -> Result<Rotation, Error> {
    sessions::touch(conn, &session.id, now)?;
    session.last_used_at = now;
    Ok(Rotation::Continued(Continued {
        session,
        refresh_token,
        converged,
    }))
}

/// The user's live sessions, most recently used first (`GET /sessions`).
pub async fn list(auth: &Auth, user_id: UserId) -> Result<Vec<Session>, Error> {
    let policy = auth.sessions;
    auth.db
        .run(move |conn| {
            Ok(sessions::list_live(
                conn,
                &user_id,
                policy.liveness(db::now()),
            )?)
        })
        .await
}

/// Whether `token` (the current one or a retired one) belongs to a session that is still live.
pub async fn holds_live_session(auth: &Auth, token: RefreshToken) -> Result<bool, Error> {
    let policy = auth.sessions;
    auth.db
        .run(move |conn| {
            let Some(generation) = refresh_tokens::find_by_hash(conn, &token.digest())? else {
                return Ok(false);
            };
            Ok(sessions::find(conn, &generation.session_id)?
                .is_some_and(|session| session.is_live(policy.liveness(db::now()))))
        })
        .await
}

/// `local`: this session; `others`: every other session of the user; `global`: all of them.
#[derive(Debug, Default, Clone, Copy, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Scope {
    #[default]
    Local,
    Others,
    Global,
}

impl Scope {
    /// The scope as the API spells it, for logs and metrics.
    pub fn label(self) -> &'static str {
        match self {
            Self::Local => "local",
            Self::Others => "others",
            Self::Global => "global",
        }
    }

    /// What the scope ends: the caller's session gets a `logout` event, every other session
    /// a `session_revoked`.
    fn endings(self, own: &SessionId) -> Vec<Ending<'_>> {
        let own_session = |reason| Ending {
            which: Which::One(own),
            reason,
            event: EventKind::Logout,
        };
        let other_sessions = |reason| Ending {
            which: Which::AllBut(own),
            reason,
            event: EventKind::SessionRevoked,
        };
        match self {
            Self::Local => vec![own_session(RevokeReason::Logout)],
            Self::Others => vec![other_sessions(RevokeReason::LogoutOthers)],
            Self::Global => vec![
                own_session(RevokeReason::LogoutGlobal),
                other_sessions(RevokeReason::LogoutGlobal),
            ],
        }
    }
}

/// Ends the caller's session, the user's others, or all of them (`POST /logout`); answers
/// how many ended.
pub async fn log_out(
    auth: &Auth,
    caller: Caller,
    scope: Scope,
    client: ClientInfo,
) -> Result<usize, Error> {
    let policy = auth.sessions;
    let session_id = caller.session_id.clone();
    let revoked = auth
        .db
        .run(move |conn| {
            let at = policy.liveness(db::now());
            db::write_transaction(conn, |conn| {
                let mut revoked = 0;
                for ending in scope.endings(&caller.session_id) {
                    revoked += revoke(conn, &caller.user_id, ending, at, &client)?.len();
                }
                Ok::<_, Error>(revoked)
            })
        })
        .await?;
    tracing::info!(event = "logged_out", %session_id, scope = scope.label(), revoked, "logged out");
    Ok(revoked)
}

/// Ends one of the caller's sessions, the current one too (`DELETE /sessions/{id}`).
/// Someone else's session, an unknown one and an ended one are all `NotFound`.
pub async fn end_one(
    auth: &Auth,
    caller: Caller,
    session_id: SessionId,
    client: ClientInfo,
) -> Result<(), Error> {
    let policy = auth.sessions;
    let ended = session_id.clone();
    auth.db
        .run(move |conn| {
            let at = policy.liveness(db::now());
            db::write_transaction(conn, |conn| {
                let ending = Ending {
                    which: Which::One(&session_id),
                    reason: RevokeReason::EndedByUser,
                    event: EventKind::SessionRevoked,
                };
                match revoke(conn, &caller.user_id, ending, at, &client)?.len() {
                    0 => Err(Error::NotFound),
                    _ => Ok(()),
                }
            })
        })
        .await?;
    tracing::info!(event = "session_revoked", session_id = %ended, "session ended by its user");
    Ok(())
}

/// Ends every live session of the user at once, as an operator does: each gets a
/// `session_revoked` event, without an address or user agent. Runs in the caller's write
/// transaction; answers how many.
pub(super) fn end_all(
    conn: &mut DbConn,
    user_id: &UserId,
    policy: &SessionPolicy,
    reason: RevokeReason,
) -> Result<usize, Error> {
    let ending = Ending {
        which: Which::All,
        reason,
        event: EventKind::SessionRevoked,
    };
    let at = policy.liveness(db::now());
    Ok(revoke(conn, user_id, ending, at, &ClientInfo::default())?.len())
}

/// One revocation: which sessions, why, and the event each ended session records.
pub(super) struct Ending<'a> {
    pub which: Which<'a>,
    pub reason: RevokeReason,
    pub event: EventKind,
}

/// Revokes the user's live sessions that `ending` names, recording its event for each (by
/// `client`), in the caller's write transaction. The one way a session is revoked; answers
/// the ids ended, oldest first.
pub(super) fn revoke(
    conn: &mut DbConn,
    user_id: &UserId,
    ending: Ending<'_>,
    at: Liveness,
    client: &ClientInfo,
) -> Result<Vec<SessionId>, Error> {
    let ended = sessions::revoke_live(conn, user_id, ending.which, at, ending.reason)?;
    for session_id in &ended {
        events::record(conn, user_id, ending.event, client, Some(session_id))?;
    }
    Ok(ended)
}
