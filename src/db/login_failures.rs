//! The `login_failures` table: one row per counted attempt (a password check, a signup), per
//! throttling key. (Named for its first use; renaming it would break a rolling upgrade.)

use chrono::NaiveDateTime;
use diesel::prelude::*;

use super::DbConn;
use super::schema::login_failures;

/// Serialises the callers that count and record attempts for these keys until the end of
/// the transaction, so that concurrent attempts cannot all pass the same last free slot.
/// SQLite needs nothing more: its write transactions already run one at a time.
pub fn lock_keys(conn: &mut DbConn, keys: &[&str]) -> QueryResult<()> {
    let DbConn::Postgres(pg) = conn else {
        return Ok(());
    };
    // Every login from one address queues on that address's lock, so the lock must be held
    // for as short a time as possible: this transaction does not wait for its commit to
    // reach the disk. A crash may forget the last few attempts it counted, never more, and
    // never anything but these counts.
    diesel::sql_query("SET LOCAL synchronous_commit TO OFF").execute(pg)?;
    let mut keys = keys.to_vec();
    // One order for everybody, so two transactions never wait on each other in a cycle.
    keys.sort_unstable();
    keys.dedup();
    for key in keys {
        super::transaction::advisory_lock(pg, key)?;
    }
    Ok(())
}

pub fn insert(conn: &mut DbConn, id: &str, key: &str, at: NaiveDateTime) -> QueryResult<()> {
    diesel::insert_into(login_failures::table)
        .values((
            login_failures::id.eq(id),
            login_failures::throttle_key.eq(key),
            login_failures::failed_at.eq(at),
        ))
        .execute(conn)
        .map(drop)
}

/// The times of the key's attempts since `since`, oldest first.
pub fn times_since(
    conn: &mut DbConn,
    key: &str,
    since: NaiveDateTime,
) -> QueryResult<Vec<NaiveDateTime>> {
    login_failures::table
        .filter(login_failures::throttle_key.eq(key))
        .filter(login_failures::failed_at.gt(since))
        .order(login_failures::failed_at.asc())
        .select(login_failures::failed_at)
        .load(conn)
}

pub fn delete(conn: &mut DbConn, id: &str) -> QueryResult<usize> {
    diesel::delete(login_failures::table.find(id)).execute(conn)
}

pub fn delete_key(conn: &mut DbConn, key: &str) -> QueryResult<usize> {
    diesel::delete(login_failures::table.filter(login_failures::throttle_key.eq(key))).execute(conn)
}

/// Which keys a prune applies to, by prefixes of their text.
pub enum Keys<'a> {
    StartingWith(&'a [&'a str]),
    NotStartingWith(&'a [&'a str]),
}

/// Forgets the attempts of `keys` made at or before `cutoff`.
pub fn prune_before(
    conn: &mut DbConn,
    keys: Keys<'_>,
    cutoff: NaiveDateTime,
) -> QueryResult<usize> {
    // The prefixes are fixed ASCII words: no LIKE wildcard to escape.
    let stale = || login_failures::table.filter(login_failures::failed_at.le(cutoff));
    match keys {
        Keys::StartingWith(prefixes) => prefixes.iter().try_fold(0, |pruned, prefix| {
            let starting = login_failures::throttle_key.like(format!("{prefix}%"));
            Ok(pruned + diesel::delete(stale().filter(starting)).execute(conn)?)
        }),
        Keys::NotStartingWith(prefixes) => {
            let mut others = diesel::delete(stale()).into_boxed();
            for prefix in prefixes {
                others = others.filter(login_failures::throttle_key.not_like(format!("{prefix}%")));
            }
            others.execute(conn)
        }
    }
}
