//! Prometheus metrics, served as text by `GET /metrics` on the metrics listener
//! (`LATCHKEY_METRICS_BIND`).
//!
//! Each [`Application`](crate::startup::Application) has a registry of its own, held in
//! `AppState` and shared with its metrics listener: nothing is process-global, so applications started side by side (the tests
//! start many in one process) count apart. Label values are fixed sets (route patterns, not
//! paths; known methods; the statuses the service answers), so that no request can add a
//! time series.

use std::time::Duration;

use actix_web::http::StatusCode;

use prometheus::{
    Encoder as _, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge, IntGaugeVec,
    Opts, Registry, TextEncoder,
};

use crate::auth::outbox::OutboxMetrics;
use crate::auth::passwords::Passwords;
use crate::auth::session_checks::SessionChecks;
use crate::auth::sessions::Granted;
use crate::db::Db;
use crate::error::Error;

/// The content type of the text exposition format, for `GET /metrics`.
pub const CONTENT_TYPE: &str = prometheus::TEXT_FORMAT;

/// The route label of a request that matched no route.
pub const UNMATCHED_ROUTE: &str = "unmatched";

pub struct Metrics {
    registry: Registry,
    db: Db,
    requests: IntCounterVec,
    request_duration: HistogramVec,
    db_connections: IntGaugeVec,
    db_connections_max: IntGauge,
    pub signups: IntCounter,
    pub logins: Logins,
    refreshes: Refreshes,
    refresh_token_reuse: IntCounter,
    logouts: IntCounterVec,
}

/// `latchkey_logins_total` by outcome.
pub struct Logins {
    pub success: IntCounter,
    pub failure: IntCounter,
    pub throttled: IntCounter,
    pub disabled: IntCounter,
    /// The right password of an account with a second factor: the login goes on at
    /// `/login/mfa`, whose outcome counts again.
    pub mfa_required: IntCounter,
}

impl Logins {
    /// Counts a login by its outcome; a failure that is none of the login's own refusals (the
    /// database being down) is not a login outcome.
    pub fn count<T>(&self, outcome: &Result<T, Error>) {
        let counter = match outcome {
            Ok(_) => &self.success,
            Err(Error::InvalidCredentials | Error::InvalidMfaCode | Error::InvalidMfaToken) => {
                &self.failure
            }
            Err(Error::MfaRequired { .. }) => &self.mfa_required,
            Err(Error::TooManyAttempts { .. }) => &self.throttled,
            Err(Error::AccountDisabled) => &self.disabled,
            Err(_) => return,
        };
        counter.inc();
    }
}

/// `latchkey_refreshes_total` by outcome.
struct Refreshes {
    /// The token was rotated: a new successor.
    rotated: IntCounter,
    /// A just-retired token came back within the grace window and got the same successor.
    converged: IntCounter,
}

impl Metrics {
    /// Registers the service's metrics, and those that the database pool, the hashing
    /// threads and the session checks keep themselves.
    pub fn new(
        db: &Db,
        passwords: &Passwords,
        session_checks: &SessionChecks,
        outbox: &OutboxMetrics,
    ) -> prometheus::Result<Self> {
        let registry = Registry::new();
        let requests = IntCounterVec::new(
            Opts::new(
                "latchkey_http_requests_total",
                "HTTP requests answered, by method, route pattern and status.",
            ),
            &["method", "route", "status"],
        )?;
        let request_duration = HistogramVec::new(
            HistogramOpts::new(
                "latchkey_http_request_duration_seconds",
                "Time from a request's arrival to its response, by method, route pattern and status.",
            )
            // Most answers take well under the default buckets' first 5 ms.
            .buckets(vec![
                0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
            ]),
            &["method", "route", "status"],
        )?;
        let db_connections = IntGaugeVec::new(
            Opts::new(
                "latchkey_db_connections",
                "Open database connections of the pool, by state (in_use, idle).",
            ),
            &["state"],
        )?;
        let db_connections_max = IntGauge::new(
            "latchkey_db_connections_max",
            "The pool's size (LATCHKEY_DB_POOL_SIZE).",
        )?;
        let signups = IntCounter::new("latchkey_signups_total", "Accounts created.")?;
        let logins = IntCounterVec::new(
            Opts::new(
                "latchkey_logins_total",
                "Login attempts, by outcome: success, failure (wrong account, password or \
                 second factor), throttled (429), disabled (the right password for a disabled \
                 account), mfa_required (the right password; a code is owed at /login/mfa).",
            ),
            &["outcome"],
        )?;
        let refreshes = IntCounterVec::new(
            Opts::new(
                "latchkey_refreshes_total",
                "Successful refreshes, by outcome: rotated (a new successor), converged (a \
                 just-retired token within the grace window got the same successor).",
            ),
            &["outcome"],
        )?;
        let refresh_token_reuse = IntCounter::new(
            "latchkey_refresh_token_reuse_total",
            "Retired refresh tokens replayed outside the grace window; each revoked its session.",
        )?;
        let logouts = IntCounterVec::new(
            Opts::new(
                "latchkey_logouts_total",
                "Logouts, by scope: local, others, global.",
            ),
            &["scope"],
        )?;
        let (check_batch_sizes, check_hedges) = session_checks.metrics();
        for collector in [
            Box::new(requests.clone()) as Box<dyn prometheus::core::Collector>,
            Box::new(request_duration.clone()),
            Box::new(db_connections.clone()),
            Box::new(db_connections_max.clone()),
            Box::new(db.permit_wait_metric()),
            Box::new(check_batch_sizes),
            Box::new(check_hedges),
            Box::new(signups.clone()),
            Box::new(logins.clone()),
            Box::new(refreshes.clone()),
            Box::new(refresh_token_reuse.clone()),
            Box::new(logouts.clone()),
        ]
        .into_iter()
        .chain(passwords.queue_collectors())
        .chain(outbox.collectors())
        {
            registry.register(collector)?;
        }
        // Every outcome is there from the start, at 0, so that rates work from the first scrape.
        for scope in ["local", "others", "global"] {
            logouts.with_label_values(&[scope]);
        }
        Ok(Self {
            registry,
            db: db.clone(),
            requests,
            request_duration,
            db_connections,
            db_connections_max,
            signups,
            logins: Logins {
                success: logins.with_label_values(&["success"]),
                failure: logins.with_label_values(&["failure"]),
                throttled: logins.with_label_values(&["throttled"]),
                disabled: logins.with_label_values(&["disabled"]),
                mfa_required: logins.with_label_values(&["mfa_required"]),
            },
            refreshes: Refreshes {
                rotated: refreshes.with_label_values(&["rotated"]),
                converged: refreshes.with_label_values(&["converged"]),
            },
            refresh_token_reuse,
            logouts,
        })
    }

    /// Counts a refresh by its outcome: rotated, converged, or a replayed token.
    pub fn refresh(&self, outcome: &Result<Granted, Error>) {
        match outcome {
            Ok(granted) if granted.continued.converged => self.refreshes.converged.inc(),
            Ok(_) => self.refreshes.rotated.inc(),
            Err(Error::RefreshTokenReused) => self.refresh_token_reuse.inc(),
            Err(_) => {}
        }
    }

    /// Counts a logout of `scope` (`local`, `others` or `global`).
    pub fn logout(&self, scope: &str) {
        self.logouts.with_label_values(&[scope]).inc();
    }

    /// Counts an answered request. `route` is the matched pattern or [`UNMATCHED_ROUTE`].
    pub fn request(&self, method: &str, route: &str, status: StatusCode, latency: Duration) {
        let labels = [method, route, status.as_str()];
        self.requests.with_label_values(&labels).inc();
        self.request_duration
            .with_label_values(&labels)
            .observe(latency.as_secs_f64());
    }

    /// The text exposition of every metric, the pool's gauges read now.
    pub fn render(&self) -> String {
        let pool = self.db.pool_use();
        let gauge = |state: &str| self.db_connections.with_label_values(&[state]);
        gauge("in_use").set(i64::from(pool.in_use));
        gauge("idle").set(i64::from(pool.idle));
        self.db_connections_max.set(i64::from(pool.max));
        let mut text = Vec::new();
        if let Err(error) = TextEncoder::new().encode(&self.registry.gather(), &mut text) {
            tracing::error!(%error, "encoding the metrics failed");
        }
        String::from_utf8(text).unwrap_or_default()
    }
}

/// A method label: the standard methods as they are, anything else `other`, so that made-up
/// methods add no series.
pub fn method_label(method: &actix_web::http::Method) -> &'static str {
    use actix_web::http::Method;
    match *method {
        Method::GET => "GET",
        Method::HEAD => "HEAD",
        Method::POST => "POST",
        Method::PUT => "PUT",
        Method::DELETE => "DELETE",
        Method::PATCH => "PATCH",
        Method::OPTIONS => "OPTIONS",
        Method::TRACE => "TRACE",
        Method::CONNECT => "CONNECT",
        _ => "other",
    }
}
