//! Throttling, counted in the database so that every instance enforces one limit: at most N
//! failed password checks per account and M per client address within a sliding window, and
//! hourly quotas: at most S signups, and S mail-sending requests, per client address, and a
//! few mails per recipient, within an hour.
//!
//! An attempt is recorded *before* the password is checked (and a login's withdrawn when it
//! succeeds), under a per-key lock, so that concurrent attempts cannot all take the same
//! last slot, and a refused attempt costs no hashing at all.

use std::net::IpAddr;
use std::time::{Duration, Instant};

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chrono::NaiveDateTime;
use sha2::{Digest, Sha256};

use crate::db::{self, DbConn, login_failures};
use crate::domain::UserId;
use crate::error::Error;

#[derive(Debug, Clone, Copy)]
pub struct ThrottlePolicy {
    pub account_max_failures: usize,
    pub address_max_failures: usize,
    /// The window of both failure limits.
    pub window: Duration,
    /// Signups a client address may make within [`SIGNUP_WINDOW`] (and mail-sending
    /// requests, counted apart).
    pub signups_per_address: usize,
    /// Mails a recipient may be sent, on request, within [`SIGNUP_WINDOW`]: enough for a typo
    /// and a retry, too few to flood a mailbox (or a mail server's reputation) through this
    /// service.
    pub mails_per_recipient: usize,
}

/// The window of the signup limit (API.md: "per hour").
pub const SIGNUP_WINDOW: Duration = Duration::from_secs(60 * 60);

/// How long a refused signup waits before its answer: a client retrying at once, whatever
/// `Retry-After` said, makes one request a second per connection, not thousands.
pub const REFUSAL_PAUSE: Duration = Duration::from_secs(1);

/// The prefixes of the keys that count hourly quotas (the others count failed attempts).
const QUOTA_KEY_PREFIXES: [&str; 2] = ["signup:", "mail:"];

/// The keys an attempt counts against.
#[derive(Debug, Clone)]
pub struct AttemptKeys {
    account: String,
    address: String,
    /// For a second factor's code, the account's count of wrong codes too: kept apart from
    /// its count of passwords, which a password reset forgives, so that a reset (which
    /// whoever reads the mailbox can make) buys no more guesses at the codes.
    second_factor: Option<String>,
}

impl AttemptKeys {
    /// `account_id` is the id of the account the identifier names, if any. Attempts on an
    /// unknown identifier count against the identifier itself, so that they are throttled
    /// exactly like attempts on a real account and the lockout reveals nothing: `identifier`
    /// must be read exactly as the account lookup compares it.
    pub fn new(account_id: Option<&UserId>, identifier: &str, address: Option<IpAddr>) -> Self {
        match account_id {
            Some(id) => Self::of_account(id, address),
            // A digest: what strangers typed is not kept, and any text (NUL included) fits.
            None => Self {
                account: format!(
                    "identifier:{}",
                    URL_SAFE_NO_PAD.encode(Sha256::digest(identifier.as_bytes()))
                ),
                address: address_key(address),
                second_factor: None,
            },
        }
    }

    /// The keys of an attempt on a known account: its password confirmed by its owner, say.
    pub fn of_account(account_id: &UserId, address: Option<IpAddr>) -> Self {
        Self {
            account: format!("user:{account_id}"),
            address: address_key(address),
            second_factor: None,
        }
    }

    /// The keys of a code of the account's second factor: its account's, and its count of
    /// wrong codes, each within the account's limit.
    pub fn of_second_factor(account_id: &UserId, address: Option<IpAddr>) -> Self {
        Self {
            second_factor: Some(format!("mfa:user:{account_id}")),
            ..Self::of_account(account_id, address)
        }
    }

    /// The keys of a passkey login to a known account: the address's, and the account's
    /// count of refused passkeys, apart from its passwords': whoever guesses passwords does
    /// not lock the owner out of logging in with a passkey.
    pub fn of_passkey(account_id: &UserId, address: Option<IpAddr>) -> Self {
        Self {
            account: format!("passkey:user:{account_id}"),
            ..Self::of_account(account_id, address)
        }
    }

    /// Each key, with the limit it counts against.
    fn limits(&self, policy: &ThrottlePolicy) -> Vec<(&str, usize)> {
        let mut limits = vec![
            (self.account.as_str(), policy.account_max_failures),
            (self.address.as_str(), policy.address_max_failures),
        ];
        if let Some(key) = &self.second_factor {
            limits.push((key.as_str(), policy.account_max_failures));
        }
        limits
    }
}

pub(super) fn address_key(address: Option<IpAddr>) -> String {
    match address {
        Some(address) => format!("ip:{}", network_of(address)),
        None => "ip:unknown".to_owned(),
    }
}

/// IPv4 addresses count one by one; IPv6 addresses by /64, the block one subscriber holds.
fn network_of(address: IpAddr) -> String {
    match address {
        IpAddr::V4(v4) => v4.to_string(),
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => v4.to_string(),
            None => {
                let s = v6.segments();
                format!("{:x}:{:x}:{:x}:{:x}::/64", s[0], s[1], s[2], s[3])
            }
        },
    }
}

/// A counted attempt, to be withdrawn if the password turns out right.
#[derive(Debug)]
pub struct Reservation {
    keys: AttemptKeys,
    /// The rows counted, one per key: the account's, the address's, and the second
    /// factor's (if any).
    attempt_ids: Vec<String>,
}

pub enum Admission {
    Admitted(Reservation),
    /// Over a limit: the client may try again after this many seconds.
    Refused {
        retry_after: u64,
    },
}

/// Counts the attempt if both keys are under their limits. Runs in a write transaction.
pub fn admit(
    conn: &mut DbConn,
    keys: AttemptKeys,
    policy: &ThrottlePolicy,
) -> Result<Admission, Error> {
    let now = db::now();
    let limits = keys.limits(policy);
    let names: Vec<&str> = limits.iter().map(|(key, _)| *key).collect();
    login_failures::lock_keys(conn, &names)?;

    let mut retry_after = 0;
    for (key, max) in &limits {
        retry_after = retry_after.max(wait_for_slot(conn, key, *max, policy.window, now)?);
    }
    if retry_after > 0 {
        return Ok(Admission::Refused { retry_after });
    }

    let mut attempt_ids = Vec::with_capacity(names.len());
    for key in names {
        let id = uuid::Uuid::now_v7().to_string();
        login_failures::insert(conn, &id, key, now)?;
        attempt_ids.push(id);
    }
    Ok(Admission::Admitted(Reservation {
        keys: keys.clone(),
        attempt_ids,
    }))
}

/// A key counted against an hourly quota.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct QuotaKey(String);

impl QuotaKey {
    /// The signups of a client address.
    pub fn signup(address: Option<IpAddr>) -> Self {
        Self(format!("signup:{}", address_key(address)))
    }

    /// The mail-sending requests of a client address.
    pub fn mail_from(address: Option<IpAddr>) -> Self {
        Self(format!("mail:{}", address_key(address)))
    }

    /// The mails requested for a recipient (an email as stored: trimmed, lowercased), whether
    /// or not an account has it. A digest: the addresses strangers typed are not kept.
    pub fn mail_to(email: &str) -> Self {
        Self(format!(
            "mail:to:{}",
            URL_SAFE_NO_PAD.encode(Sha256::digest(email.as_bytes()))
        ))
    }
}

/// Counts one use of each quota key, or refuses them all with `TooManyAttempts` when one of
/// them has made its `max` uses within the hour. A use counts whatever its outcome: a taken
/// email answers a signup at once, so each answer is a guess to be rationed. Runs in a write
/// transaction.
pub fn admit_quotas(conn: &mut DbConn, quotas: &[(&QuotaKey, usize)]) -> Result<(), Error> {
    let now = db::now();
    let keys: Vec<&str> = quotas.iter().map(|(key, _)| key.0.as_str()).collect();
    login_failures::lock_keys(conn, &keys)?;
    let mut retry_after = 0;
    for (key, max) in quotas {
        retry_after = retry_after.max(wait_for_slot(conn, &key.0, *max, SIGNUP_WINDOW, now)?);
    }
    if retry_after > 0 {
        return Err(Error::TooManyAttempts { retry_after });
    }
    for key in keys {
        login_failures::insert(conn, &uuid::Uuid::now_v7().to_string(), key, now)?;
    }
    Ok(())
}

/// The quota keys this instance saw refused, and until when. A counted use is never
/// withdrawn, so a refusal holds, on every instance, until its `Retry-After`: meanwhile a
/// flood from that address is refused from memory, without a database transaction that
/// would queue before everyone else's writes. Bounded: past its size, new refusals are
/// simply not remembered (the database still refuses them).
#[derive(Default)]
pub struct QuotaRefusals {
    until: std::sync::Mutex<std::collections::HashMap<QuotaKey, Instant>>,
}

/// How many refused addresses an instance remembers at most.
const REMEMBERED_REFUSALS: usize = 10_000;

impl QuotaRefusals {
    /// `TooManyAttempts` if `key` was refused and its `Retry-After` has not passed.
    pub fn check(&self, key: &QuotaKey) -> Result<(), Error> {
        let now = Instant::now();
        let until = self.lock().get(key).copied();
        match until {
            Some(until) if now < until => Err(Error::TooManyAttempts {
                retry_after: (until - now).as_secs().max(1),
            }),
            _ => Ok(()),
        }
    }

    /// Remembers the refusal `outcome` is, if it is one.
    pub fn remember<T>(&self, key: &QuotaKey, outcome: &Result<T, Error>) {
        let Err(Error::TooManyAttempts { retry_after }) = outcome else {
            return;
        };
        let now = Instant::now();
        let mut until = self.lock();
        if until.len() >= REMEMBERED_REFUSALS {
            until.retain(|_, refused_until| now < *refused_until);
        }
        if until.len() < REMEMBERED_REFUSALS {
            until.insert(key.clone(), now + Duration::from_secs(*retry_after));
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, std::collections::HashMap<QuotaKey, Instant>> {
        self.until
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

/// Seconds until `key` has a free slot under `max` attempts per `window`; 0 if it has one.
fn wait_for_slot(
    conn: &mut DbConn,
    key: &str,
    max: usize,
    window: Duration,
    now: NaiveDateTime,
) -> Result<u64, Error> {
    let window = db::span(window);
    let times = login_failures::times_since(conn, key, now - window)?;
    if times.len() < max {
        return Ok(0);
    }
    // The attempt that must age out of the window for a slot to free up.
    let freeing = times[times.len() - max];
    Ok(seconds_until(freeing + window, now))
}

/// A successful login resets the account's count (and, with a second factor, its count of
/// wrong codes) and withdraws its attempt from the address's count.
pub fn succeeded(conn: &mut DbConn, reservation: &Reservation) -> Result<(), Error> {
    let keys = &reservation.keys;
    login_failures::delete_key(conn, &keys.account)?;
    if let Some(key) = &keys.second_factor {
        login_failures::delete_key(conn, key)?;
    }
    withdraw(conn, reservation)
}

/// Withdraws the attempt alone, leaving the account's earlier failures counted: for a step
/// that succeeded short of a login (the right password of an account that owes its second
/// factor), which must not wipe out the count of the wrong codes that guess at that factor.
pub fn withdraw(conn: &mut DbConn, reservation: &Reservation) -> Result<(), Error> {
    for id in &reservation.attempt_ids {
        login_failures::delete(conn, id)?;
    }
    Ok(())
}

/// Forgets the account's failed logins: its lockout, if any, ends. Not its wrong codes of a
/// second factor, which only a right code forgives.
pub fn forgive_account(conn: &mut DbConn, account_id: &UserId) -> Result<(), Error> {
    let keys = AttemptKeys::of_account(account_id, None);
    login_failures::delete_key(conn, &keys.account)?;
    Ok(())
}

/// Deletes the attempts too old to count against their limit any more, as of `now`.
pub fn forget_stale(
    conn: &mut DbConn,
    policy: &ThrottlePolicy,
    now: NaiveDateTime,
) -> Result<usize, Error> {
    let quotas = login_failures::prune_before(
        conn,
        login_failures::Keys::StartingWith(&QUOTA_KEY_PREFIXES),
        now - db::span(SIGNUP_WINDOW),
    )?;
    let failures = login_failures::prune_before(
        conn,
        login_failures::Keys::NotStartingWith(&QUOTA_KEY_PREFIXES),
        now - db::span(policy.window),
    )?;
    Ok(quotas + failures)
}

/// Whole seconds from `now` until `at`, at least 1.
fn seconds_until(at: NaiveDateTime, now: NaiveDateTime) -> u64 {
    let millis = (at - now).num_milliseconds().max(0) as u64;
    millis.div_ceil(1000).max(1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ipv6_clients_are_grouped_by_their_64_block() {
        let a: IpAddr = "2001:db8:1:2:aaaa::1".parse().unwrap();
        let b: IpAddr = "2001:db8:1:2:bbbb::2".parse().unwrap();
        let c: IpAddr = "2001:db8:1:3::1".parse().unwrap();
        assert_eq!(network_of(a), network_of(b));
        assert_ne!(network_of(a), network_of(c));
        let mapped: IpAddr = "::ffff:192.0.2.7".parse().unwrap();
        assert_eq!(network_of(mapped), "192.0.2.7");
    }

    #[test]
    fn unknown_identifiers_are_keyed_by_their_text_as_given() {
        let a = AttemptKeys::new(None, "ada@example.com", None);
        let b = AttemptKeys::new(None, "ada@example.com", None);
        assert_eq!(a.account, b.account);
        // Reading the identifier as the lookup does is the caller's (`login::Identifier`).
        let spaced = AttemptKeys::new(None, " ada@example.com", None);
        assert_ne!(a.account, spaced.account);
        assert!(
            !a.account.contains("ada"),
            "typed identifiers are not stored"
        );
        let nul = AttemptKeys::new(None, "a\0b", None);
        assert!(!nul.account.contains('\0'));
        let known = AttemptKeys::new(
            Some(&UserId::from("42".to_owned())),
            "ada@example.com",
            None,
        );
        assert_eq!(known.account, "user:42");
    }

    #[test]
    fn refused_signups_are_remembered_until_their_retry_after_within_a_bound() {
        let refusals = QuotaRefusals::default();
        let key = QuotaKey::signup(Some("192.0.2.1".parse().unwrap()));
        assert!(refusals.check(&key).is_ok());
        refusals.remember(&key, &Ok::<(), Error>(()));
        assert!(refusals.check(&key).is_ok(), "only refusals are remembered");
        let refused = Err::<(), _>(Error::TooManyAttempts { retry_after: 60 });
        refusals.remember(&key, &refused);
        assert!(matches!(
            refusals.check(&key),
            Err(Error::TooManyAttempts {
                retry_after: 59 | 60
            })
        ));
        let other = QuotaKey::signup(Some("192.0.2.2".parse().unwrap()));
        assert!(refusals.check(&other).is_ok());
        refusals.remember(
            &other,
            &Err::<(), _>(Error::TooManyAttempts { retry_after: 0 }),
        );
        assert!(
            refusals.check(&other).is_ok(),
            "an expired refusal is forgotten"
        );

        for n in 0..REMEMBERED_REFUSALS as u32 + 10 {
            let key = QuotaKey::signup(Some(std::net::Ipv4Addr::from(n).into()));
            refusals.remember(&key, &refused);
        }
        assert_eq!(refusals.lock().len(), REMEMBERED_REFUSALS);
    }

    #[test]
    fn retry_after_rounds_up_to_whole_seconds() {
        let now = chrono::DateTime::from_timestamp(1_000, 0)
            .unwrap()
            .naive_utc();
        assert_eq!(
            seconds_until(now + chrono::TimeDelta::milliseconds(1500), now),
            2
        );
        assert_eq!(seconds_until(now, now), 1);
    }
}
