//! Housekeeping that keeps the tables from growing without bound: ended sessions (with
//! their refresh-token generations), throttled attempts too old to count and security events
//! older than `LATCHKEY_EVENT_RETENTION`, expired one-time codes, login challenges and passkey ceremonies, and
//! mail sent (or given up) a while ago. Every instance
//! runs it; the deletes are idempotent. And the periodic reload of the signing keys, which
//! picks up a rotation made by another process.

use std::time::Duration;

use chrono::NaiveDateTime;

use crate::auth::sessions::SessionPolicy;
use crate::auth::throttle::{self, ThrottlePolicy};
use crate::auth::tokens::AccessTokens;
use crate::db::{
    self, Db, DbConn, mfa_challenges, one_time_codes, outbox, security_events, sessions,
    webauthn_ceremonies,
};
use crate::error::Error;

/// How long an ended session stays in the table, for an operator's inspection.
pub const ENDED_SESSION_RETENTION: Duration = Duration::from_secs(24 * 60 * 60);

/// How long a message that is done (sent, dropped or given up) stays in the outbox, for an
/// operator's inspection; its code is erased at once.
pub const DONE_MAIL_RETENTION: Duration = Duration::from_secs(7 * 24 * 60 * 60);

#[derive(Debug, Clone, Copy)]
pub struct PrunePolicy {
    pub sessions: SessionPolicy,
    /// The throttle's limits, whose windows say when a counted attempt stops counting.
    pub throttle: ThrottlePolicy,
    /// How long security events are kept.
    pub event_retention: Duration,
}

#[derive(Debug, Default, PartialEq, Eq)]
pub struct Pruned {
    pub sessions: usize,
    pub login_failures: usize,
    pub security_events: usize,
    pub one_time_codes: usize,
    pub mfa_challenges: usize,
    pub webauthn_ceremonies: usize,
    pub outbox: usize,
}

/// Deletes what no rule needs any more, as of `now`.
pub fn prune(conn: &mut DbConn, policy: &PrunePolicy, now: NaiveDateTime) -> Result<Pruned, Error> {
    let cutoff = now - db::span(ENDED_SESSION_RETENTION);
    let idle_cutoff = cutoff - db::span(policy.sessions.idle_timeout);
    Ok(Pruned {
        sessions: sessions::delete_ended_before(conn, cutoff, idle_cutoff)?,
        login_failures: throttle::forget_stale(conn, &policy.throttle, now)?,
        security_events: security_events::prune_before(
            conn,
            now - db::span(policy.event_retention),
        )?,
        // An expired code answers like a wrong one: nothing needs it.
        one_time_codes: one_time_codes::prune_expired(conn, now)?,
        mfa_challenges: mfa_challenges::prune_expired(conn, now)?,
        webauthn_ceremonies: webauthn_ceremonies::prune_expired(conn, now)?,
        outbox: outbox::prune_done(conn, now - db::span(DONE_MAIL_RETENTION))?,
    })
}

/// Prunes every `every`, for as long as the server runs. Failures (the database being down)
/// are logged and retried at the next tick.
pub fn spawn(db: Db, policy: PrunePolicy, every: Duration) {
    actix_web::rt::spawn(async move {
        let mut ticks = actix_web::rt::time::interval(every);
        ticks.tick().await; // the first tick is immediate; start-up has enough to do
        loop {
            ticks.tick().await;
            match db.run(move |conn| prune(conn, &policy, db::now())).await {
                Ok(pruned) if pruned != Pruned::default() => {
                    tracing::info!(
                        sessions = pruned.sessions,
                        login_failures = pruned.login_failures,
                        security_events = pruned.security_events,
                        one_time_codes = pruned.one_time_codes,
                        mfa_challenges = pruned.mfa_challenges,
                        webauthn_ceremonies = pruned.webauthn_ceremonies,
                        outbox = pruned.outbox,
                        "pruned"
                    );
                }
                Ok(_) => {}
                Err(error) => tracing::warn!(error = %error, "pruning failed; will retry"),
            }
        }
    });
}

/// Reloads the signing keys every `every`, for as long as the server runs. A failure keeps
/// the keys loaded so far and is retried at the next tick.
pub fn spawn_key_reload(tokens: AccessTokens, every: Duration) {
    actix_web::rt::spawn(async move {
        let mut ticks = actix_web::rt::time::interval(every);
        ticks.tick().await; // the keys were just loaded
        loop {
            ticks.tick().await;
            if let Err(error) = tokens.reload().await {
                tracing::warn!(error = %error, "reloading the signing keys failed; will retry");
            }
        }
    });
}
