//! Where the data lives: `DATABASE_URL` read into a backend and its address.

use std::time::Duration;

/// Which database serves: the URL's scheme decides.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Postgres,
    Sqlite,
}

impl Backend {
    /// The backend's name, for logs and messages.
    pub fn name(self) -> &'static str {
        match self {
            Self::Postgres => "postgres",
            Self::Sqlite => "sqlite",
        }
    }
}

impl std::fmt::Display for Backend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// Where the data lives, parsed from `DATABASE_URL`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DatabaseUrl {
    Postgres(String),
    Sqlite(String),
}

impl DatabaseUrl {
    /// `postgres://` and `postgresql://` select PostgreSQL; `sqlite://PATH` or a plain path
    /// selects SQLite.
    pub fn parse(url: &str) -> Result<Self, String> {
        let url = url.trim();
        if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            return Ok(Self::Postgres(url.to_owned()));
        }
        let path = url
            .strip_prefix("sqlite://")
            .or_else(|| url.strip_prefix("sqlite:"))
            .unwrap_or(url);
        if path.is_empty() {
            return Err("is empty; give a file path, sqlite://PATH or postgres://...".into());
        }
        if path.contains(":memory:") || path.contains("mode=memory") {
            // Each pooled connection would open its own, empty database.
            return Err("an in-memory SQLite database is not supported; give a file path".into());
        }
        if let Some((scheme, _)) = path.split_once("://") {
            return Err(format!("the scheme `{scheme}://` is not supported"));
        }
        Ok(Self::Sqlite(path.to_owned()))
    }

    pub fn backend(&self) -> Backend {
        match self {
            Self::Postgres(_) => Backend::Postgres,
            Self::Sqlite(_) => Backend::Sqlite,
        }
    }
}

/// Bounds what the network may take on PostgreSQL, unless the URL says otherwise:
/// connecting, so an unreachable server turns into a `503` instead of a hang; and noticing
/// a server that vanished without closing the connection (keepalives while awaiting an
/// answer, the TCP user timeout for data never acknowledged), so that a thread stuck on it
/// gives its connection back within about half a minute, not after hours: otherwise a few
/// such threads would keep the pool empty long after the database is back.
pub(super) fn with_network_timeouts(url: &DatabaseUrl, connect_timeout: Duration) -> DatabaseUrl {
    let DatabaseUrl::Postgres(raw) = url else {
        return url.clone();
    };
    let seconds = connect_timeout.as_secs().max(1).to_string();
    let mut url = raw.clone();
    for (key, value) in [
        ("connect_timeout", seconds.as_str()),
        ("keepalives_idle", "10"),
        ("keepalives_interval", "5"),
        ("keepalives_count", "3"),
        ("tcp_user_timeout", "30000"),
    ] {
        if !raw.contains(key) {
            let separator = if url.contains('?') { '&' } else { '?' };
            url = format!("{url}{separator}{key}={value}");
        }
    }
    DatabaseUrl::Postgres(url)
}
