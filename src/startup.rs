//! Building the application from its settings: database, keys, hashing pool, and the two
//! HTTP servers: the public API, and the metrics listener beside it.

use std::net::{SocketAddr, TcpListener};
use std::sync::Arc;
use std::time::Duration;

use actix_web::dev::Server;
use actix_web::middleware::from_fn;
use actix_web::{App, HttpServer, web};
use anyhow::Context as _;

use crate::auth::codes::{CodeKey, Codes};
use crate::auth::key_vault::KeyVault;
use crate::auth::keys::{self, KeySet};
use crate::auth::outbox::{LetterSettings, Outbox, OutboxMetrics, Worker};
use crate::auth::passwords::Passwords;
use crate::auth::relying_party::{RelyingParty, RelyingPartySettings};
use crate::auth::session_checks::SessionChecks;
use crate::auth::tokens::AccessTokens;
use crate::auth::{Auth, events, mfa};
use crate::config::{self, Settings};
use crate::db::{Db, PoolOptions};
use crate::domain;
use crate::http::{self, AppState};
use crate::mail::Mailer;
use crate::maintenance;
use crate::metrics::Metrics;

pub struct Application {
    port: u16,
    server: Server,
    /// The metrics listener and the address it listens on; `None` with `LATCHKEY_METRICS=off`.
    metrics: Option<(SocketAddr, Server)>,
}

impl Application {
    /// Connects to the database (applying migrations), loads or creates the signing key (and
    /// reloads the keys every `key_reload_interval`) and binds the listeners. Port 0 in the
    /// settings picks a free port (tests do).
    pub async fn build(settings: Settings) -> anyhow::Result<Self> {
        let db = connect(&settings).await?;
        let vault = KeyVault::new(settings.key_encryption_key.as_deref());
        let tokens = match &settings.jwt_secret {
            Some(secret) => access_tokens(&settings, KeySet::from_secret(secret)),
            None => {
                let loading = vault.clone();
                let keys = db
                    .run(move |conn| KeySet::load_or_create(conn, &loading))
                    .await
                    .context("loading the signing keys")?;
                warn_of_plain_keys(&db, &vault).await?;
                let reload = keys::reload_from(db.clone(), vault.clone());
                let tokens = access_tokens(&settings, keys).reloading_with(reload);
                maintenance::spawn_key_reload(tokens.clone(), settings.key_reload_interval);
                tokens
            }
        };
        let (argon2, workers, queue_max) = (
            settings.argon2,
            settings.hash_workers,
            settings.hash_queue_max,
        );
        let passwords = tokio::task::spawn_blocking(move || {
            domain::load_common_passwords();
            Passwords::new(argon2, workers, queue_max)
        })
        .await??;
        let session_checks = SessionChecks::new(db.clone()).context("registering the metrics")?;
        let outbox_metrics = OutboxMetrics::new().context("registering the metrics")?;
        let metrics = Arc::new(
            Metrics::new(&db, &passwords, &session_checks, &outbox_metrics)
                .context("registering the metrics")?,
        );
        let mfa = mfa::Factors::new(vault.clone(), settings.mail.app_name.clone());
        let code_key = db
            .run(move |conn| CodeKey::load_or_create(conn, &vault))
            .await
            .context("loading the key of the one-time codes")?;
        let codes = Codes::new(code_key, settings.code_ttl);
        let outbox = start_mail(&settings, &db, &codes, outbox_metrics)?;
        let relying_party = relying_party(&settings)?;
        maintenance::spawn(db.clone(), settings.prune_policy(), settings.prune_interval);
        let auth = Auth {
            refusals: events::Recorder::start(db.clone()),
            session_checks,
            db,
            passwords,
            tokens,
            sessions: settings.session_policy(),
            throttle: settings.throttle_policy(),
            quota_refusals: Default::default(),
            login_admissions: tokio::sync::Semaphore::new(login_admission_slots(
                settings.db_pool_size,
            )),
            codes,
            mfa,
            relying_party,
            outbox,
            require_verified_email: settings.require_verified_email,
        };
        let state = web::Data::new(AppState {
            auth,
            trusted_proxies: settings.trusted_proxies.clone(),
            cors_origins: settings.cors_origins.clone(),
            client_timeout: settings.client_timeout,
            metrics: metrics.clone(),
        });

        let metrics = match settings.metrics_bind {
            Some(address) => Some(metrics_server(
                listen(config::LATCHKEY_METRICS_BIND, address)?,
                web::Data::from(metrics),
                settings.client_timeout,
            )?),
            None => None,
        };
        let listener = listen(config::LATCHKEY_BIND, settings.bind)?;
        let port = listener.local_addr()?.port();
        let cors_origins = settings.cors_origins.clone();
        let server = HttpServer::new(move || {
            App::new()
                .app_data(state.clone())
                .app_data(web::PayloadConfig::new(http::MAX_BODY_BYTES))
                .wrap(http::cors(&cors_origins))
                .wrap(from_fn(http::only_for_allowed_origins))
                .wrap(from_fn(http::openapi::docs_headers))
                .wrap(from_fn(http::problem::ensure_problem))
                .wrap(from_fn(http::request_log::log_request))
                .configure(http::routes)
        })
        .listen(listener)?
        .client_request_timeout(settings.client_timeout)
        .client_disconnect_timeout(Duration::from_secs(2))
        // A client that closes its side has hung up (as nginx, say, does on a client's
        // abort): the request is dropped, and its hash skipped if it is still queued.
        .h1_allow_half_closed(false)
        .shutdown_timeout(30)
        .run();
        Ok(Self {
            port,
            server,
            metrics,
        })
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// Where the metrics listener listens (its port chosen when the settings said 0), or
    /// `None` with `LATCHKEY_METRICS=off`.
    pub fn metrics_address(&self) -> Option<SocketAddr> {
        self.metrics.as_ref().map(|(address, _)| *address)
    }

    /// Serves until a signal. On SIGTERM it stops accepting, finishes the requests in flight
    /// (for up to 30 s) and returns; actix stops at once on SIGINT and SIGQUIT. The metrics
    /// listener stops with the API server (and the API server with it, were it to fail), so
    /// the process never runs half a service.
    pub async fn run_until_stopped(self) -> std::io::Result<()> {
        use futures_util::future::{Either, join, select};
        let Some((_, metrics)) = self.metrics else {
            return self.server.await;
        };
        let (api_handle, metrics_handle) = (self.server.handle(), metrics.handle());
        // A server acts on `stop` only while it is polled: join, never await one then the other.
        let (stopped_first, stopped_then) = match select(self.server, metrics).await {
            Either::Left((served, metrics)) => {
                (served, join(metrics_handle.stop(true), metrics).await.1)
            }
            Either::Right((served, api)) => (served, join(api_handle.stop(true), api).await.1),
        };
        stopped_first.and(stopped_then)
    }
}

/// Binds `address`, or says which variable named it: one line an operator can act on when
/// the port is taken.
fn listen(variable: &str, address: SocketAddr) -> anyhow::Result<TcpListener> {
    TcpListener::bind(address).with_context(|| format!("{variable}: cannot listen on {address}"))
}

/// The metrics listener: the registry's text and nothing else (`http::metrics`). One worker
/// is plenty for a scraper every few seconds. It leaves the signals to the API server, which
/// stops it once its own requests have drained (`run_until_stopped`).
fn metrics_server(
    listener: TcpListener,
    metrics: web::Data<Metrics>,
    client_timeout: Duration,
) -> anyhow::Result<(SocketAddr, Server)> {
    let address = listener.local_addr()?;
    let server = HttpServer::new(move || {
        App::new()
            .app_data(metrics.clone())
            .wrap(from_fn(http::problem::ensure_problem))
            .configure(http::metrics::routes)
    })
    .listen(listener)?
    .workers(1)
    .client_request_timeout(client_timeout)
    .client_disconnect_timeout(Duration::from_secs(2))
    .disable_signals()
    .shutdown_timeout(5)
    .run();
    Ok((address, server))
}

/// Starts this instance's mail worker, saying where mail goes.
fn start_mail(
    settings: &Settings,
    db: &Db,
    codes: &Codes,
    metrics: OutboxMetrics,
) -> anyhow::Result<Outbox> {
    let mailer = Mailer::new(&settings.mail).context("LATCHKEY_SMTP_URL")?;
    if settings.mail.smtp_url.is_some() {
        tracing::info!("{}", mailer.describe());
    } else {
        tracing::warn!("{}", mailer.describe());
    }
    let outbox = Outbox::default();
    Worker {
        db: db.clone(),
        mailer: Arc::new(mailer),
        codes: codes.clone(),
        letters: LetterSettings {
            app_name: settings.mail.app_name.clone(),
            link_url: settings.link_url.clone(),
        },
        outbox: outbox.clone(),
        metrics,
    }
    .spawn();
    Ok(outbox)
}

/// The WebAuthn relying party of the settings, saying at start-up whether passkeys are on.
fn relying_party(settings: &Settings) -> anyhow::Result<RelyingParty> {
    let relying_party = RelyingParty::new(&RelyingPartySettings {
        public_url: &settings.public_url,
        rp_id: settings.webauthn_rp_id.as_deref(),
        origins: &settings.webauthn_origins,
        name: &settings.mail.app_name,
    })
    .map_err(|problem| anyhow::anyhow!("passkeys: {problem}"))?;
    if !relying_party.is_on() {
        tracing::warn!(
            public_url = %settings.public_url,
            "passkeys are off: WebAuthn needs a domain name (localhost works) in \
             LATCHKEY_PUBLIC_URL or LATCHKEY_WEBAUTHN_RP_ID, not an IP address"
        );
    }
    Ok(relying_party)
}

/// Says at start-up when signing keys are stored in plain text, and what to do about it.
async fn warn_of_plain_keys(db: &Db, vault: &KeyVault) -> anyhow::Result<()> {
    if !vault.seals() {
        tracing::warn!(
            "LATCHKEY_KEY_ENCRYPTION_KEY is not set: the Ed25519 signing key (and the accounts' \
             TOTP secrets) are stored in plain text, and a copy of the database can sign tokens; \
             set it (openssl rand -base64 32) and run `latchkey keys encrypt`"
        );
        return Ok(());
    }
    let plain = db.run(keys::count_plain).await?;
    if plain > 0 {
        tracing::warn!(
            plain,
            "keys stored before LATCHKEY_KEY_ENCRYPTION_KEY was set are still plain: \
             run `latchkey keys encrypt`"
        );
    }
    Ok(())
}

fn access_tokens(settings: &Settings, keys: KeySet) -> AccessTokens {
    AccessTokens::new(
        keys,
        settings.issuer.clone(),
        settings.audience.clone(),
        settings.access_ttl,
    )
}

/// Opens the pool on a blocking thread: connecting and migrating are blocking I/O.
pub async fn connect(settings: &Settings) -> anyhow::Result<Db> {
    let url = settings.database_url.clone();
    let options = PoolOptions {
        max_connections: settings.db_pool_size,
        acquire_timeout: settings.db_timeout,
    };
    tokio::task::spawn_blocking(move || Db::connect(&url, &options)).await?
}

/// A quarter of the pool, at least two (and never more than the pool): enough to keep the
/// hashing threads busy (admission takes a millisecond or two, a hash tens), and the rest of
/// the pool for everything else.
fn login_admission_slots(pool_size: u32) -> usize {
    (pool_size as usize / 4).max(2).min(pool_size as usize)
}
