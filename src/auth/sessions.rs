//! The life of a session: started by signup or login, kept alive by refresh-token rotation,
//! ended by its lifetime, its idle timeout, a logout or a detected reuse.

use std::time::Duration;

use chrono::NaiveDateTime;

use super::events::{self, EventKind};
use super::refresh_token::RefreshToken;
use crate::db::refresh_tokens::{self, NewRefreshToken};
use crate::db::sessions::{self, Liveness, NewSession, Session};
use crate::db::users;
use crate::db::{self, DbConn};
use crate::error::Error;

/// Why a session was revoked, as recorded in `sessions.revoked_reason`.
pub mod reason {
    pub const LOGOUT: &str = "logout";
    pub const LOGOUT_OTHERS: &str = "logout_others";
    pub const LOGOUT_GLOBAL: &str = "logout_global";
    pub const ENDED_BY_USER: &str = "ended_by_user";
    pub const PASSWORD_CHANGED: &str = "password_changed";
    pub const REFRESH_TOKEN_REUSED: &str = "refresh_token_reused";
    pub const ACCOUNT_DISABLED: &str = "account_disabled";
    pub const REVOKED_BY_OPERATOR: &str = "revoked_by_operator";
}

#[derive(Debug, Clone, Copy)]
pub struct SessionPolicy {
    /// Absolute lifetime from login.
    pub lifetime: Duration,
    /// A session not refreshed for this long ends.
    pub idle_timeout: Duration,
    /// How long after a rotation the retired token still answers with its successor.
    pub reuse_grace: Duration,
}

impl SessionPolicy {
    pub fn liveness(&self, now: NaiveDateTime) -> Liveness {
        Liveness {
            now,
            idle_cutoff: now - db::span(self.idle_timeout),
        }
    }
}

/// Who opened the session, as shown in the session list.
#[derive(Debug, Clone, Default)]
pub struct ClientInfo {
    pub user_agent: Option<String>,
    pub ip: Option<std::net::IpAddr>,
}

/// A session and the refresh token that continues it.
pub struct Continued {
    pub session: Session,
    pub refresh_token: RefreshToken,
    /// A refresh that answered a just-retired token, within the grace window, with the
    /// successor it had already been given (rather than rotating).
    pub converged: bool,
}

// One value per refresh, moved once: boxing the common case would only add an allocation.
#[allow(clippy::large_enum_variant)]
pub enum Rotation {
    Continued(Continued),
    /// A retired token came back outside the grace window: the session is now revoked.
    Reused,
}

/// Opens a session for the user with its first refresh token (generation 0). Refuses a
/// disabled account: checked here, in the caller's write transaction, so that a login whose
/// password check overlapped a `latchkey user disable` cannot leave a session behind.
pub fn start(
    conn: &mut DbConn,
    user_id: &str,
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
    let id = uuid::Uuid::now_v7().to_string();
    let ip = client.ip.map(|ip| ip.to_string());
    let new_session = NewSession {
        id: &id,
        user_id,
        created_at: now,
        last_used_at: now,
        expires_at: now + db::span(policy.lifetime),
        user_agent: client.user_agent.as_deref(),
        ip: ip.as_deref(),
    };
    sessions::insert(conn, &new_session)?;
    let refresh_token = RefreshToken::generate().map_err(Error::internal)?;
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

/// Exchanges a refresh token for its successor. Must run inside
/// [`db::write_transaction`]: the revocation on reuse (and its `refresh_reused` event, with
/// the address of `client`, who presented the token) is part of the outcome, not an error,
/// so that it commits.
pub fn rotate(
    conn: &mut DbConn,
    presented: &RefreshToken,
    client: &ClientInfo,
    policy: &SessionPolicy,
) -> Result<Rotation, Error> {
    let now = db::now();
    let mut generation = refresh_tokens::find_by_hash(conn, &presented.digest())?
        .ok_or(Error::InvalidRefreshToken)?;
    let session = sessions::find(conn, &generation.session_id)?
        .filter(|session| session.is_live(policy.liveness(now)))
        .ok_or(Error::InvalidRefreshToken)?;

    if generation.retired_at.is_none() {
        let successor = RefreshToken::generate().map_err(Error::internal)?;
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
        None => {
            sessions::revoke(conn, &session.id, now, reason::REFRESH_TOKEN_REUSED)?;
            events::record(
                conn,
                &session.user_id,
                EventKind::RefreshReused,
                client,
                Some(&session.id),
            )?;
            tracing::warn!(event = "refresh_token_reused", session_id = %session.id, user_id = %session.user_id, "refresh token reused; session revoked");
            Ok(Rotation::Reused)
        }
    }
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

/// Whether `token` (the current one or a retired one) belongs to a session that is still live.
pub fn holds_live_session(
    conn: &mut DbConn,
    token: &RefreshToken,
    policy: &SessionPolicy,
) -> Result<bool, Error> {
    let Some(generation) = refresh_tokens::find_by_hash(conn, &token.digest())? else {
        return Ok(false);
    };
    Ok(sessions::find(conn, &generation.session_id)?
        .is_some_and(|session| session.is_live(policy.liveness(db::now()))))
}

/// Ends every live session of the user at once, as an operator does: each gets a
/// `session_revoked` event, without an address or user agent. Runs in the caller's write
/// transaction; answers how many.
pub fn end_all(
    conn: &mut DbConn,
    user_id: &str,
    policy: &SessionPolicy,
    reason: &str,
) -> Result<usize, Error> {
    let ended = sessions::revoke_live_of_user(conn, user_id, policy.liveness(db::now()), reason)?;
    events::record_revoked(conn, user_id, &ClientInfo::default(), &ended)?;
    Ok(ended.len())
}

/// Whether `session` belongs to `user_id` and is live now: what an access token, or a user
/// ending one of their sessions, may act on.
pub fn is_live_for(session: &Session, user_id: &str, policy: &SessionPolicy) -> bool {
    session.user_id == user_id && session.is_live(policy.liveness(db::now()))
}
