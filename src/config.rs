//! Settings, read once from the environment at start-up and validated there, so that a bad
//! value stops the process with one line naming the variable instead of failing later.

use std::collections::HashMap;
use std::net::{SocketAddr, ToSocketAddrs};
use std::time::Duration;

use secrecy::SecretString;

use crate::auth::passwords::Argon2Params;
use crate::auth::sessions::SessionPolicy;
use crate::auth::throttle::ThrottlePolicy;
use crate::db::DatabaseUrl;
use crate::maintenance::PrunePolicy;
use crate::telemetry::{self, LogFormat};

/// Declares a constant for each variable's name, and [`VARIABLES`], from one list: each name
/// is written once.
macro_rules! variables {
    ($($name:ident),* $(,)?) => {
        $(pub const $name: &str = stringify!($name);)*
        /// Every variable Latchkey reads. The table in the README mirrors it, with defaults.
        pub const VARIABLES: &[&str] = &[$($name),*];
    };
}

variables!(
    DATABASE_URL,
    LATCHKEY_BIND,
    LATCHKEY_JWT_SECRET,
    LATCHKEY_KEY_ENCRYPTION_KEY,
    LATCHKEY_ISSUER,
    LATCHKEY_AUDIENCE,
    LATCHKEY_CORS_ORIGINS,
    LATCHKEY_ACCESS_TTL,
    LATCHKEY_SESSION_TTL,
    LATCHKEY_SESSION_IDLE_TTL,
    LATCHKEY_REFRESH_REUSE_GRACE,
    LATCHKEY_MAX_SESSIONS,
    LATCHKEY_LOGIN_MAX_FAILURES,
    LATCHKEY_LOGIN_IP_MAX_FAILURES,
    LATCHKEY_LOGIN_WINDOW,
    LATCHKEY_SIGNUP_IP_MAX,
    LATCHKEY_MAIL_RECIPIENT_MAX,
    LATCHKEY_TRUSTED_PROXIES,
    LATCHKEY_PRUNE_INTERVAL,
    LATCHKEY_EVENT_RETENTION,
    LATCHKEY_KEY_RELOAD_INTERVAL,
    LATCHKEY_CLIENT_TIMEOUT,
    LATCHKEY_LOG,
    LATCHKEY_LOG_FORMAT,
    LATCHKEY_METRICS,
    LATCHKEY_METRICS_BIND,
    LATCHKEY_ARGON2_MEMORY_KIB,
    LATCHKEY_ARGON2_ITERATIONS,
    LATCHKEY_ARGON2_PARALLELISM,
    LATCHKEY_HASH_WORKERS,
    LATCHKEY_HASH_QUEUE_MAX,
    LATCHKEY_DB_POOL_SIZE,
    LATCHKEY_DB_TIMEOUT,
    LATCHKEY_SMTP_URL,
    LATCHKEY_MAIL_FROM,
    LATCHKEY_APP_NAME,
    LATCHKEY_PUBLIC_URL,
    LATCHKEY_LINK_URL,
    LATCHKEY_CODE_TTL,
    LATCHKEY_REQUIRE_VERIFIED_EMAIL,
    LATCHKEY_WEBAUTHN_RP_ID,
    LATCHKEY_WEBAUTHN_ORIGINS,
);

#[derive(Debug, Clone)]
pub struct Settings {
    pub database_url: DatabaseUrl,
    pub bind: SocketAddr,
    /// HS256 shared secret; `None` selects EdDSA with a key kept in the database.
    pub jwt_secret: Option<SecretString>,
    /// Seals the Ed25519 private keys stored in the database; `None`: stored plain.
    pub key_encryption_key: Option<std::sync::Arc<secrecy::SecretBox<[u8; 32]>>>,
    pub issuer: String,
    pub audience: String,
    pub access_ttl: Duration,
    pub session_ttl: Duration,
    pub session_idle_ttl: Duration,
    pub refresh_reuse_grace: Duration,
    /// Live sessions an account may have; a new one beyond ends the oldest.
    pub max_sessions: usize,
    /// Failed logins an account may take within `login_window`.
    pub login_max_failures: usize,
    /// Failed logins a client address may make within `login_window`.
    pub login_ip_max_failures: usize,
    pub login_window: Duration,
    /// Signups a client address may make within an hour.
    pub signup_ip_max: usize,
    /// Mails one recipient may be sent on request within an hour.
    pub mail_recipient_max: usize,
    /// Proxies whose `X-Forwarded-For` names the client; empty: the socket peer is the client.
    pub trusted_proxies: Vec<ipnet::IpNet>,
    /// How often ended sessions, stale login attempts and old security events are deleted.
    pub prune_interval: Duration,
    /// How long an account's security events (`GET /me/events`) are kept.
    pub event_retention: Duration,
    /// How often a running instance re-reads the signing keys, to pick up a rotation made
    /// elsewhere. A replaced key verifies for this long beyond the access-token lifetime,
    /// because an instance that has not reloaded yet may still sign with it.
    pub key_reload_interval: Duration,
    /// How long a client may take to send a request's head: slow clients cannot hold
    /// connections open indefinitely.
    pub client_timeout: Duration,
    /// Origins (`https://app.example.com`) whose pages may call the API; none by default.
    pub cors_origins: Vec<String>,
    pub log_filter: String,
    pub log_format: LogFormat,
    /// Where `GET /metrics` answers (`LATCHKEY_METRICS_BIND`), a listener of its own apart
    /// from the public one; `None` with `LATCHKEY_METRICS=off`: nothing listens.
    pub metrics_bind: Option<SocketAddr>,
    pub argon2: Argon2Params,
    /// How many password hashes may run at once; each holds `argon2.memory_kib` of memory.
    pub hash_workers: usize,
    /// How many hashes may wait for a hashing thread; past that, `503`.
    pub hash_queue_max: usize,
    pub db_pool_size: u32,
    /// How long a request waits for a database connection before answering `503`.
    pub db_timeout: Duration,
    /// How mail goes out, and what it says.
    pub mail: MailSettings,
    /// Where the service is reached (`LATCHKEY_PUBLIC_URL`), without a trailing slash.
    pub public_url: String,
    /// The WebAuthn RP id (`LATCHKEY_WEBAUTHN_RP_ID`); `None`: the public URL's host.
    pub webauthn_rp_id: Option<String>,
    /// Origins whose pages may use passkeys besides the public URL's
    /// (`LATCHKEY_WEBAUTHN_ORIGINS`).
    pub webauthn_origins: Vec<url::Url>,
    /// The link a mail carries, with `{purpose}`, `{code}` and `{email}` to fill in.
    pub link_url: String,
    /// How long a mailed one-time code lives.
    pub code_ttl: Duration,
    /// Logins to accounts whose email is not verified are refused.
    pub require_verified_email: bool,
}

/// How mail goes out (`LATCHKEY_SMTP_URL`, `LATCHKEY_MAIL_FROM`, `LATCHKEY_APP_NAME`).
#[derive(Debug, Clone)]
pub struct MailSettings {
    /// `None`: mail is written to the log instead of sent.
    pub smtp_url: Option<SecretString>,
    /// The sender, `Name <address>` or a bare address.
    pub from: String,
    /// The product's name in mails.
    pub app_name: String,
}

/// A variable with a value Latchkey cannot use. Displays as one line naming the variable;
/// it never repeats the value of a secret.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("{variable}: {problem}")]
pub struct ConfigError {
    pub variable: &'static str,
    pub problem: String,
}

impl Settings {
    /// Reads the process environment.
    pub fn from_env() -> Result<Self, ConfigError> {
        Self::from_env_with(&HashMap::new())
    }

    /// Reads the process environment, with `overrides` (from command-line flags) winning.
    pub fn from_env_with(overrides: &HashMap<&str, String>) -> Result<Self, ConfigError> {
        let mut values = HashMap::new();
        for &variable in VARIABLES {
            if let Some(value) = env_var(variable)? {
                values.insert(variable.to_owned(), value);
            }
        }
        for (variable, value) in overrides {
            values.insert((*variable).to_owned(), value.clone());
        }
        Self::from_map(&values)
    }

    /// `LATCHKEY_BIND` alone, for `latchkey healthcheck`: a container health check must not
    /// fail because some other variable is unusable.
    pub fn bind_from_env() -> Result<SocketAddr, ConfigError> {
        let values = env_var(LATCHKEY_BIND)?
            .map(|value| (LATCHKEY_BIND.to_owned(), value))
            .into_iter()
            .collect();
        Env(&values).bind()
    }

    /// Reads settings from `values`, as if they were the environment.
    pub fn from_map(values: &HashMap<String, String>) -> Result<Self, ConfigError> {
        let env = Env(values);
        let hash_workers_default = std::thread::available_parallelism().map_or(2, usize::from);
        let hash_workers = env.number(LATCHKEY_HASH_WORKERS, hash_workers_default, 1..=1024)?;
        let public_url = env.parse(
            LATCHKEY_PUBLIC_URL,
            "http://localhost:8080",
            parse_public_url,
        )?;
        let settings = Self {
            database_url: env.parse(DATABASE_URL, "latchkey.db", DatabaseUrl::parse)?,
            bind: env.bind()?,
            jwt_secret: env.secret(LATCHKEY_JWT_SECRET)?,
            key_encryption_key: env.encryption_key(LATCHKEY_KEY_ENCRYPTION_KEY)?,
            issuer: env.non_empty(LATCHKEY_ISSUER, "latchkey")?,
            audience: env.non_empty(LATCHKEY_AUDIENCE, "latchkey")?,
            access_ttl: env.duration(LATCHKEY_ACCESS_TTL, "15m", 1)?,
            session_ttl: env.duration(LATCHKEY_SESSION_TTL, "30d", 1)?,
            session_idle_ttl: env.duration(LATCHKEY_SESSION_IDLE_TTL, "7d", 1)?,
            refresh_reuse_grace: env.duration(LATCHKEY_REFRESH_REUSE_GRACE, "10s", 0)?,
            max_sessions: env.number(LATCHKEY_MAX_SESSIONS, 100, 1..=1_000_000)?,
            login_max_failures: env.number(LATCHKEY_LOGIN_MAX_FAILURES, 10, 1..=1_000_000)?,
            login_ip_max_failures: env.number(
                LATCHKEY_LOGIN_IP_MAX_FAILURES,
                100,
                1..=1_000_000,
            )?,
            login_window: env.duration(LATCHKEY_LOGIN_WINDOW, "15m", 1)?,
            signup_ip_max: env.number(LATCHKEY_SIGNUP_IP_MAX, 20, 1..=1_000_000)?,
            mail_recipient_max: env.number(LATCHKEY_MAIL_RECIPIENT_MAX, 5, 1..=1_000_000)?,
            trusted_proxies: env.parse(LATCHKEY_TRUSTED_PROXIES, "", parse_networks)?,
            prune_interval: env.duration(LATCHKEY_PRUNE_INTERVAL, "10m", 1)?,
            event_retention: env.duration(LATCHKEY_EVENT_RETENTION, "90d", 1)?,
            key_reload_interval: env.duration(LATCHKEY_KEY_RELOAD_INTERVAL, "30s", 1)?,
            client_timeout: env.duration(LATCHKEY_CLIENT_TIMEOUT, "10s", 1)?,
            cors_origins: env.parse(LATCHKEY_CORS_ORIGINS, "", parse_origins)?,
            log_filter: env.parse(LATCHKEY_LOG, "info", |raw| {
                telemetry::check_filter(raw).map(|()| raw.trim().to_owned())
            })?,
            log_format: env.parse(LATCHKEY_LOG_FORMAT, "pretty", parse_log_format)?,
            metrics_bind: env.metrics_bind()?,
            argon2: Argon2Params {
                memory_kib: env.number(
                    LATCHKEY_ARGON2_MEMORY_KIB,
                    19 * 1024,
                    8 * 1024..=4 * 1024 * 1024,
                )?,
                iterations: env.number(LATCHKEY_ARGON2_ITERATIONS, 2, 1..=100)?,
                parallelism: env.number(LATCHKEY_ARGON2_PARALLELISM, 1, 1..=64)?,
            },
            hash_workers,
            // By default, the work of a queue full of hashes takes about two seconds at the
            // default cost (about 30 ms a hash on one thread): longer waits help nobody.
            hash_queue_max: env.number(
                LATCHKEY_HASH_QUEUE_MAX,
                hash_workers * 64,
                0..=1_000_000,
            )?,
            db_pool_size: env.number(LATCHKEY_DB_POOL_SIZE, 16, 1..=1000)?,
            db_timeout: env.duration(LATCHKEY_DB_TIMEOUT, "5s", 1)?,
            mail: MailSettings {
                smtp_url: env
                    .raw(LATCHKEY_SMTP_URL)
                    .map(|raw| {
                        crate::mail::check_smtp_url(raw)
                            .map(|()| SecretString::from(raw.trim()))
                            .map_err(|problem| ConfigError {
                                variable: LATCHKEY_SMTP_URL,
                                problem,
                            })
                    })
                    .transpose()?,
                from: env.parse(LATCHKEY_MAIL_FROM, "Latchkey <latchkey@localhost>", |raw| {
                    crate::mail::check_mailbox(raw).map(|()| raw.trim().to_owned())
                })?,
                app_name: env.non_empty(LATCHKEY_APP_NAME, "Latchkey")?,
            },
            public_url: public_url.clone(),
            link_url: env.parse(
                LATCHKEY_LINK_URL,
                &format!("{public_url}/#{{purpose}}?code={{code}}&email={{email}}"),
                parse_link_url,
            )?,
            code_ttl: env.duration(LATCHKEY_CODE_TTL, "30m", 60)?,
            webauthn_rp_id: env
                .raw(LATCHKEY_WEBAUTHN_RP_ID)
                .map(str::trim)
                .filter(|raw| !raw.is_empty())
                .map(|raw| raw.to_ascii_lowercase()),
            webauthn_origins: env.parse(LATCHKEY_WEBAUTHN_ORIGINS, "", parse_webauthn_origins)?,
            require_verified_email: env.parse(
                LATCHKEY_REQUIRE_VERIFIED_EMAIL,
                "false",
                parse_bool,
            )?,
        };
        Ok(settings)
    }

    /// How long sessions live, idle, and converge on a retired refresh token.
    pub fn session_policy(&self) -> SessionPolicy {
        SessionPolicy {
            lifetime: self.session_ttl,
            idle_timeout: self.session_idle_ttl,
            reuse_grace: self.refresh_reuse_grace,
            max_sessions: self.max_sessions,
        }
    }

    /// How many failed logins an account and an address may have within the window.
    pub fn throttle_policy(&self) -> ThrottlePolicy {
        ThrottlePolicy {
            account_max_failures: self.login_max_failures,
            address_max_failures: self.login_ip_max_failures,
            window: self.login_window,
            signups_per_address: self.signup_ip_max,
            mails_per_recipient: self.mail_recipient_max,
        }
    }

    /// What the housekeeping deletes, and when.
    pub fn prune_policy(&self) -> PrunePolicy {
        PrunePolicy {
            sessions: self.session_policy(),
            throttle: self.throttle_policy(),
            event_retention: self.event_retention,
        }
    }
}

/// One variable from the process environment.
fn env_var(variable: &'static str) -> Result<Option<String>, ConfigError> {
    std::env::var_os(variable)
        .map(|value| {
            value.into_string().map_err(|_| ConfigError {
                variable,
                problem: "is not valid UTF-8".into(),
            })
        })
        .transpose()
}

struct Env<'a>(&'a HashMap<String, String>);

impl Env<'_> {
    fn bind(&self) -> Result<SocketAddr, ConfigError> {
        self.parse(LATCHKEY_BIND, "127.0.0.1:8080", parse_socket_addr)
    }

    /// Checked even when metrics are off, so that turning them on later meets no surprise.
    fn metrics_bind(&self) -> Result<Option<SocketAddr>, ConfigError> {
        let enabled = self.parse(LATCHKEY_METRICS, "on", parse_switch)?;
        let bind = self.parse(LATCHKEY_METRICS_BIND, "127.0.0.1:9090", parse_socket_addr)?;
        if enabled && bind == self.bind()? && bind.port() != 0 {
            return Err(ConfigError {
                variable: LATCHKEY_METRICS_BIND,
                problem: format!("must differ from {LATCHKEY_BIND} ({bind})"),
            });
        }
        Ok(enabled.then_some(bind))
    }

    fn raw(&self, variable: &str) -> Option<&str> {
        self.0.get(variable).map(String::as_str)
    }

    fn parse<T>(
        &self,
        variable: &'static str,
        default: &str,
        parse: impl FnOnce(&str) -> Result<T, String>,
    ) -> Result<T, ConfigError> {
        let raw = self.raw(variable).unwrap_or(default);
        parse(raw).map_err(|problem| ConfigError { variable, problem })
    }

    fn non_empty(&self, variable: &'static str, default: &str) -> Result<String, ConfigError> {
        self.parse(variable, default, |raw| {
            let value = raw.trim();
            if value.is_empty() {
                Err("must not be empty".into())
            } else {
                Ok(value.to_owned())
            }
        })
    }

    fn duration(
        &self,
        variable: &'static str,
        default: &str,
        min_seconds: u64,
    ) -> Result<Duration, ConfigError> {
        self.parse(variable, default, |raw| {
            let duration = parse_duration(raw)?;
            if duration.as_secs() < min_seconds {
                return Err(format!("must be at least {min_seconds} second(s)"));
            }
            Ok(duration)
        })
    }

    fn number<T>(
        &self,
        variable: &'static str,
        default: T,
        range: std::ops::RangeInclusive<T>,
    ) -> Result<T, ConfigError>
    where
        T: std::str::FromStr + PartialOrd + std::fmt::Display + Copy,
    {
        let Some(raw) = self.raw(variable) else {
            return Ok(default);
        };
        match raw.trim().parse::<T>() {
            Ok(value) if range.contains(&value) => Ok(value),
            _ => Err(ConfigError {
                variable,
                problem: format!(
                    "expected a whole number from {} to {}, got {raw:?}",
                    range.start(),
                    range.end()
                ),
            }),
        }
    }

    /// 32 bytes in standard base64 (`openssl rand -base64 32`).
    fn encryption_key(
        &self,
        variable: &'static str,
    ) -> Result<Option<std::sync::Arc<secrecy::SecretBox<[u8; 32]>>>, ConfigError> {
        use base64::Engine as _;
        let Some(raw) = self.raw(variable) else {
            return Ok(None);
        };
        let problem = || ConfigError {
            variable,
            problem: "expected 32 bytes in base64 (openssl rand -base64 32)".into(),
        };
        let bytes = zeroize::Zeroizing::new(
            base64::engine::general_purpose::STANDARD
                .decode(raw.trim())
                .map_err(|_| problem())?,
        );
        let key: [u8; 32] = bytes.as_slice().try_into().map_err(|_| problem())?;
        Ok(Some(std::sync::Arc::new(secrecy::SecretBox::new(
            Box::new(key),
        ))))
    }

    fn secret(&self, variable: &'static str) -> Result<Option<SecretString>, ConfigError> {
        match self.raw(variable) {
            None => Ok(None),
            Some(secret) if secret.len() >= 32 => Ok(Some(SecretString::from(secret))),
            Some(_) => Err(ConfigError {
                variable,
                problem: "must be at least 32 bytes long".into(),
            }),
        }
    }
}

/// An absolute `http` or `https` URL, kept without its trailing slash.
fn parse_public_url(raw: &str) -> Result<String, String> {
    let raw = raw.trim();
    let has_host = ["http://", "https://"].iter().any(|scheme| {
        raw.strip_prefix(scheme)
            .is_some_and(|rest| !rest.is_empty())
    });
    if !has_host || raw.chars().any(char::is_whitespace) {
        return Err(format!("expected an http:// or https:// URL, got {raw:?}"));
    }
    Ok(raw.trim_end_matches('/').to_owned())
}

/// A link template: an absolute URL that carries the `{code}` to fill in.
fn parse_link_url(raw: &str) -> Result<String, String> {
    let raw = raw.trim();
    parse_public_url(raw)?;
    if !raw.contains("{code}") {
        return Err("must contain {code}".into());
    }
    Ok(raw.to_owned())
}

fn parse_bool(raw: &str) -> Result<bool, String> {
    match raw.trim().to_ascii_lowercase().as_str() {
        "true" | "1" | "yes" | "on" => Ok(true),
        "false" | "0" | "no" | "off" | "" => Ok(false),
        other => Err(format!("expected true or false, got {other:?}")),
    }
}

/// Whole seconds (`900`) or a number with a unit: `s`, `m`, `h` or `d` (`15m`, `30d`).
pub fn parse_duration(raw: &str) -> Result<Duration, String> {
    let raw = raw.trim();
    let problem =
        || format!("expected whole seconds or a number with s, m, h or d (like 15m), got {raw:?}");
    let split = raw.find(|c: char| !c.is_ascii_digit()).unwrap_or(raw.len());
    let (digits, unit) = raw.split_at(split);
    let value: u64 = digits.parse().map_err(|_| problem())?;
    let unit_seconds = match unit {
        "" | "s" => 1,
        "m" => 60,
        "h" => 60 * 60,
        "d" => 24 * 60 * 60,
        _ => return Err(problem()),
    };
    // Ten years is beyond any sensible lifetime and keeps time arithmetic far from overflow.
    const MAX_SECONDS: u64 = 10 * 365 * 24 * 60 * 60;
    match value.checked_mul(unit_seconds) {
        Some(seconds) if seconds <= MAX_SECONDS => Ok(Duration::from_secs(seconds)),
        _ => Err(format!("must be at most ten years, got {raw:?}")),
    }
}

fn parse_socket_addr(raw: &str) -> Result<SocketAddr, String> {
    raw.trim()
        .to_socket_addrs()
        .ok()
        .and_then(|mut addrs| addrs.next())
        .ok_or_else(|| format!("expected HOST:PORT (like 127.0.0.1:8080), got {raw:?}"))
}

/// A comma-separated list of origins: scheme, host and optional port, nothing more.
fn parse_origins(raw: &str) -> Result<Vec<String>, String> {
    raw.split(',')
        .map(str::trim)
        .filter(|origin| !origin.is_empty())
        .map(|origin| {
            let rest = origin
                .strip_prefix("https://")
                .or_else(|| origin.strip_prefix("http://"))
                .ok_or_else(|| format!("{origin:?} is not an origin like https://app.example.com"))?;
            let valid_host = !rest.is_empty()
                && rest
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | ':' | '[' | ']'));
            if valid_host {
                Ok(origin.to_owned())
            } else {
                Err(format!(
                    "{origin:?} is not an origin like https://app.example.com (no path, no wildcard)"
                ))
            }
        })
        .collect()
}

/// A comma-separated list of the origins WebAuthn may see besides the public URL's: web
/// origins (`https://app.example.com`, no path) or an app's (`android:apk-key-hash:…`,
/// `ios:bundle-id:…`), compared exactly.
fn parse_webauthn_origins(raw: &str) -> Result<Vec<url::Url>, String> {
    raw.split(',')
        .map(str::trim)
        .filter(|origin| !origin.is_empty())
        .map(|origin| {
            let url = url::Url::parse(origin).map_err(|_| format!("{origin:?} is no origin"))?;
            let web = matches!(url.scheme(), "http" | "https");
            if web && (url.path() != "/" || url.query().is_some() || url.fragment().is_some()) {
                return Err(format!("{origin:?} is no origin: it has a path"));
            }
            Ok(url)
        })
        .collect()
}

/// A comma-separated list of addresses (`10.0.0.7`) or networks (`10.0.0.0/8`, `fd00::/8`).
fn parse_networks(raw: &str) -> Result<Vec<ipnet::IpNet>, String> {
    raw.split(',')
        .map(str::trim)
        .filter(|item| !item.is_empty())
        .map(|item| {
            item.parse::<ipnet::IpNet>()
                .or_else(|_| item.parse::<std::net::IpAddr>().map(ipnet::IpNet::from))
                .map_err(|_| format!("{item:?} is not an IP address or network like 10.0.0.0/8"))
        })
        .collect()
}

fn parse_log_format(raw: &str) -> Result<LogFormat, String> {
    match raw.trim() {
        "pretty" => Ok(LogFormat::Pretty),
        "json" => Ok(LogFormat::Json),
        other => Err(format!("expected `pretty` or `json`, got {other:?}")),
    }
}

fn parse_switch(raw: &str) -> Result<bool, String> {
    match raw.trim() {
        "on" => Ok(true),
        "off" => Ok(false),
        other => Err(format!("expected `on` or `off`, got {other:?}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(pairs: &[(&str, &str)]) -> Result<Settings, ConfigError> {
        let values = pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        Settings::from_map(&values)
    }

    #[test]
    fn durations_take_seconds_or_a_unit() {
        assert_eq!(parse_duration("900"), Ok(Duration::from_secs(900)));
        assert_eq!(parse_duration("15m"), Ok(Duration::from_secs(900)));
        assert_eq!(parse_duration("2h"), Ok(Duration::from_secs(7200)));
        assert_eq!(parse_duration("30d"), Ok(Duration::from_secs(30 * 86_400)));
        assert_eq!(parse_duration("0"), Ok(Duration::ZERO));
        for bad in [
            "",
            "m",
            "-5",
            "1.5h",
            "15 minutes",
            "99999999999999999999d",
            "5y",
        ] {
            assert!(parse_duration(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn defaults_match_the_contract() {
        let s = settings(&[]).unwrap();
        assert_eq!(s.database_url, DatabaseUrl::Sqlite("latchkey.db".into()));
        assert_eq!(s.bind.to_string(), "127.0.0.1:8080");
        assert_eq!(s.access_ttl, Duration::from_secs(15 * 60));
        assert_eq!(s.session_ttl, Duration::from_secs(30 * 86_400));
        assert_eq!(s.session_idle_ttl, Duration::from_secs(7 * 86_400));
        assert_eq!(s.refresh_reuse_grace, Duration::from_secs(10));
        assert_eq!(s.argon2, Argon2Params::default());
        assert!(s.jwt_secret.is_none());
        assert_eq!(s.login_max_failures, 10);
        assert_eq!(s.login_ip_max_failures, 100);
        assert_eq!(s.login_window, Duration::from_secs(15 * 60));
        assert!(s.trusted_proxies.is_empty());
        assert_eq!(s.key_reload_interval, Duration::from_secs(30));
        assert_eq!(s.metrics_bind, Some("127.0.0.1:9090".parse().unwrap()));
        let off = settings(&[("LATCHKEY_METRICS", "off")]).unwrap();
        assert_eq!(off.metrics_bind, None);
        assert_eq!(s.event_retention, Duration::from_secs(90 * 86_400));
    }

    #[test]
    fn bad_values_name_their_variable() {
        let cases = [
            ("LATCHKEY_ACCESS_TTL", "soon"),
            ("LATCHKEY_ACCESS_TTL", "0"),
            ("LATCHKEY_BIND", "nowhere"),
            ("LATCHKEY_LOG_FORMAT", "xml"),
            ("LATCHKEY_METRICS", "yes"),
            ("LATCHKEY_METRICS_BIND", "nowhere"),
            ("LATCHKEY_METRICS_BIND", "127.0.0.1:8080"),
            ("LATCHKEY_JWT_SECRET", "short"),
            ("DATABASE_URL", "mysql://localhost/x"),
            ("DATABASE_URL", "sqlite::memory:"),
            ("LATCHKEY_ARGON2_MEMORY_KIB", "12"),
            ("LATCHKEY_CORS_ORIGINS", "*"),
            ("LATCHKEY_TRUSTED_PROXIES", "10.0.0.0/33"),
            ("LATCHKEY_TRUSTED_PROXIES", "proxy.internal"),
            ("LATCHKEY_LOGIN_MAX_FAILURES", "0"),
            ("LATCHKEY_LOGIN_WINDOW", "forever"),
            ("LATCHKEY_KEY_RELOAD_INTERVAL", "0"),
            ("LATCHKEY_KEY_RELOAD_INTERVAL", "often"),
            ("LATCHKEY_EVENT_RETENTION", "0"),
            ("LATCHKEY_EVENT_RETENTION", "3 months"),
            ("LATCHKEY_CORS_ORIGINS", "https://app.example.com/"),
            ("LATCHKEY_CORS_ORIGINS", "app.example.com"),
        ];
        for (variable, value) in cases {
            let error = settings(&[(variable, value)]).unwrap_err();
            assert_eq!(error.variable, variable, "{value}");
        }
    }

    #[test]
    fn cors_origins_are_a_comma_separated_list() {
        let s = settings(&[(
            "LATCHKEY_CORS_ORIGINS",
            " https://app.example.com, http://localhost:5173 ,",
        )])
        .unwrap();
        assert_eq!(
            s.cors_origins,
            ["https://app.example.com", "http://localhost:5173"]
        );
        assert!(settings(&[]).unwrap().cors_origins.is_empty());
    }

    #[test]
    fn trusted_proxies_take_addresses_and_networks() {
        let s = settings(&[("LATCHKEY_TRUSTED_PROXIES", "10.0.0.0/8, 127.0.0.1,::1")]).unwrap();
        let rendered: Vec<String> = s.trusted_proxies.iter().map(|n| n.to_string()).collect();
        assert_eq!(rendered, ["10.0.0.0/8", "127.0.0.1/32", "::1/128"]);
    }

    #[test]
    fn secret_errors_do_not_repeat_the_secret() {
        let error = settings(&[("LATCHKEY_JWT_SECRET", "hunter2-hunter2")]).unwrap_err();
        assert!(!error.to_string().contains("hunter2"));
    }

    #[test]
    fn database_urls_select_the_backend() {
        let parse = |raw| DatabaseUrl::parse(raw).unwrap();
        assert_eq!(parse("data/l.db"), DatabaseUrl::Sqlite("data/l.db".into()));
        assert_eq!(parse("sqlite://l.db"), DatabaseUrl::Sqlite("l.db".into()));
        assert_eq!(
            parse("sqlite:///tmp/l.db"),
            DatabaseUrl::Sqlite("/tmp/l.db".into())
        );
        assert!(matches!(
            parse("postgres://u@h/db"),
            DatabaseUrl::Postgres(_)
        ));
        assert!(matches!(
            parse("postgresql://u@h/db"),
            DatabaseUrl::Postgres(_)
        ));
    }
}
