//! The security events of an account (`GET /me/events`): what happened to it, when, from
//! which address and user agent, and to which session.
//!
//! An event is recorded in the transaction of the action it reports, so that neither is
//! kept without the other. Two are not: a failed login and a lockout change nothing else in
//! the database by the time they are known, and writing their event before answering would
//! make the answer for an existing account slower than the one for an unknown identifier
//! (which records nothing): a timing oracle for which accounts exist. They are recorded
//! right after the answer has been decided, off the request's path (see [`Recorder`]).

use std::time::{Duration, Instant};

use chrono::NaiveDateTime;
use quick_cache::sync::Cache;
use tokio::sync::mpsc;

use super::client::ClientInfo;
use crate::db::security_events::{self, NewSecurityEvent, SecurityEvent};
use crate::db::{self, Db, DbConn};
use crate::domain::{EventKind, SessionId, UserId};
use crate::error::Error;

/// An event's identity: its id (a UUIDv7, so ids sort in time order) and its time.
struct Stamp {
    id: String,
    at: NaiveDateTime,
}

impl Stamp {
    fn now() -> Self {
        Self {
            id: uuid::Uuid::now_v7().to_string(),
            at: db::now(),
        }
    }
}

/// Records one event for the user, now, in the caller's transaction.
pub fn record(
    conn: &mut DbConn,
    user_id: &UserId,
    kind: EventKind,
    client: &ClientInfo,
    session_id: Option<&SessionId>,
) -> Result<(), Error> {
    insert(conn, &Stamp::now(), user_id, kind, client, session_id)
}

fn insert(
    conn: &mut DbConn,
    stamp: &Stamp,
    user_id: &UserId,
    kind: EventKind,
    client: &ClientInfo,
    session_id: Option<&SessionId>,
) -> Result<(), Error> {
    let ip = client.ip.map(|ip| ip.to_string());
    security_events::insert(
        conn,
        &NewSecurityEvent {
            id: &stamp.id,
            user_id,
            kind,
            at: stamp.at,
            ip: ip.as_deref(),
            user_agent: client.user_agent.as_deref(),
            session_id,
        },
    )?;
    Ok(())
}

/// A login that failed or was throttled, to be recorded once the answer is decided.
#[derive(Debug, Clone, Copy)]
pub enum Refusal {
    /// A wrong password.
    WrongPassword,
    /// Refused by throttling: one event per `window` is enough to tell the owner, where an
    /// event per refusal would let anybody grow the table, and keep the database busy, at no
    /// cost (a refusal costs no hash).
    Throttled { window: Duration },
    /// A wrong one-time code, for a code of this account's address.
    WrongCode,
    /// A wrong TOTP or recovery code for this account.
    WrongMfaCode,
    /// A passkey of this account refused at login.
    WrongPasskey,
}

/// Records refused logins of existing accounts on their own, after the answer: the answer
/// neither waits for the write nor depends on it, so it takes as long as for an unknown
/// identifier. Shared by every worker of an instance.
///
/// One task writes them, in one transaction per batch of whatever queued up meanwhile: a
/// burst of refusals costs a few writes, not one each, and leaves SQLite's write lock to
/// the login admissions of a flood.
pub struct Recorder {
    queue: mpsc::Sender<Pending>,
    /// The accounts whose lockout this instance recorded, and until when another would be
    /// one too many: a flood of refusals is not even queued. Bounded; an account that drops
    /// out is checked in the database again.
    lockouts: Cache<UserId, Instant>,
}

/// A refusal waiting for the writer.
struct Pending {
    stamp: Stamp,
    user_id: UserId,
    client: ClientInfo,
    refusal: Refusal,
}

/// Refusals that may wait for the writer; beyond, they are dropped with a warning rather
/// than held in memory without bound.
const QUEUE: usize = 10_000;
/// Refusals written in one transaction at most.
const BATCH: usize = 500;
/// Accounts remembered as recently locked out.
const REMEMBERED_LOCKOUTS: usize = 10_000;

impl Recorder {
    /// Starts the writer on the current (actix) runtime; it ends when the recorder is dropped.
    pub fn start(db: Db) -> Self {
        let (queue, pending) = mpsc::channel(QUEUE);
        actix_web::rt::spawn(write_refusals(db, pending));
        Self {
            queue,
            lockouts: Cache::new(REMEMBERED_LOCKOUTS),
        }
    }

    /// Records the refusal for the account `user_id`. The event is stamped now, so that it
    /// sorts where the attempt happened. A failure to record is logged; the client's answer
    /// is decided already.
    pub fn refused(&self, user_id: UserId, client: ClientInfo, refusal: Refusal) {
        if let Refusal::Throttled { window } = refusal {
            let now = Instant::now();
            if self.lockouts.get(&user_id).is_some_and(|until| until > now) {
                return;
            }
            self.lockouts.insert(user_id.clone(), now + window);
        }
        let pending = Pending {
            stamp: Stamp::now(),
            user_id,
            client,
            refusal,
        };
        if self.queue.try_send(pending).is_err() {
            tracing::warn!(?refusal, "too many security events waiting; one is dropped");
        }
    }
}

async fn write_refusals(db: Db, mut pending: mpsc::Receiver<Pending>) {
    let mut batch = Vec::with_capacity(BATCH);
    while pending.recv_many(&mut batch, BATCH).await > 0 {
        let refusals = std::mem::take(&mut batch);
        let written = db
            .run(move |conn| {
                let outcome = db::write_transaction(conn, |conn| {
                    refusals
                        .iter()
                        .try_for_each(|pending| record_refusal(conn, pending))
                });
                if outcome.is_ok() {
                    return Ok(());
                }
                // One bad event (its account deleted meanwhile) must not take the others
                // with it: each on its own.
                let mut last = Ok(());
                for pending in &refusals {
                    let one = db::write_transaction(conn, |conn| record_refusal(conn, pending));
                    if one.is_err() {
                        last = one;
                    }
                }
                last
            })
            .await;
        if let Err(error) = written {
            tracing::warn!(error = %error, "recording security events failed");
        }
    }
}

fn record_refusal(conn: &mut DbConn, pending: &Pending) -> Result<(), Error> {
    let Pending {
        stamp,
        user_id,
        client,
        refusal,
    } = pending;
    match *refusal {
        Refusal::WrongPassword => {
            insert(conn, stamp, user_id, EventKind::LoginFailed, client, None)
        }
        Refusal::WrongCode => insert(conn, stamp, user_id, EventKind::CodeFailed, client, None),
        Refusal::WrongMfaCode => insert(conn, stamp, user_id, EventKind::MfaFailed, client, None),
        Refusal::WrongPasskey => {
            insert(conn, stamp, user_id, EventKind::PasskeyFailed, client, None)
        }
        Refusal::Throttled { window } => {
            // Another instance may be recording the same lockout: one at a time.
            security_events::lock_user(conn, user_id)?;
            let since = stamp.at - db::span(window);
            let kind = EventKind::LockedOut;
            if security_events::exists_since(conn, user_id, kind, since)? {
                return Ok(());
            }
            insert(conn, stamp, user_id, EventKind::LockedOut, client, None)
        }
    }
}

/// The largest page.
pub const MAX_PAGE: usize = 100;

/// One page of a user's events, newest first.
pub struct Page {
    pub events: Vec<SecurityEvent>,
    /// The id to pass as `before` for the next page; `None` on the last page.
    pub next: Option<String>,
}

/// Up to `limit` of the user's events older than the event `before` (the newest without
/// it), for `GET /me/events`. `before` is a position, not a lookup: an id that is no event of
/// this user (pruned meanwhile, someone else's, made up) gives this user's events before that
/// point in time, so nothing can be learnt about other accounts and a page survives pruning.
pub async fn page(
    db: &Db,
    user_id: UserId,
    before: Option<String>,
    limit: usize,
) -> Result<Page, Error> {
    let limit = limit.clamp(1, MAX_PAGE);
    db.read(move |conn| {
        // One more than asked: whether it exists says whether there is a next page.
        let mut events =
            security_events::list_before(conn, &user_id, before.as_deref(), limit as i64 + 1)?;
        let next = if events.len() > limit {
            events.truncate(limit);
            events.last().map(|event| event.id.clone())
        } else {
            None
        };
        Ok(Page { events, next })
    })
    .await
}
