//! The command line: `serve` (the default), `migrate`, `openapi`, `healthcheck`, `user`
//! (create, list, disable, enable), `sessions revoke`, `keys` (list, rotate, encrypt) and
//! `mail test`.

mod healthcheck;
mod keys;
mod mail;
mod operator;
mod output;

use std::collections::HashMap;
use std::io::Read as _;

use clap::{Args, Parser, Subcommand};
use secrecy::SecretString;

use crate::auth::accounts::{self, NewAccount};
use crate::auth::passwords::Passwords;
use crate::config::{self, Settings};
use crate::db::Db;
use crate::error::Error;
use crate::startup::{self, Application};

#[derive(Debug, Parser)]
#[command(
    name = "latchkey",
    version,
    about = "A small, fast, hard-to-break authentication service"
)]
pub struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
    /// Database URL (overrides DATABASE_URL): a file path, sqlite://PATH or postgres://...
    #[arg(long, global = true)]
    database_url: Option<String>,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Serve the API (the default).
    Serve(ServeArgs),
    /// Apply pending database migrations and exit.
    Migrate,
    /// Print the OpenAPI document (YAML) and exit; touches no database.
    Openapi,
    /// Exit 0 if the server on LATCHKEY_BIND answers GET /healthz with 200 within 3 s, 1
    /// otherwise (a container HEALTHCHECK); reads no other setting, touches no database.
    Healthcheck(HealthcheckArgs),
    /// Manage user accounts.
    #[command(subcommand)]
    User(UserCommand),
    /// Manage sessions.
    #[command(subcommand)]
    Sessions(SessionsCommand),
    /// Manage the Ed25519 signing keys kept in the database.
    #[command(subcommand)]
    Keys(KeysCommand),
    /// Check the mail settings; touches no database.
    #[command(subcommand)]
    Mail(MailCommand),
}

#[derive(Debug, Default, Args)]
struct ServeArgs {
    /// Address to listen on (overrides LATCHKEY_BIND), like 127.0.0.1:8080.
    #[arg(long)]
    bind: Option<String>,
}

#[derive(Debug, Args)]
struct HealthcheckArgs {
    /// The URL to check instead of http://LATCHKEY_BIND/healthz (0.0.0.0 and :: are read
    /// as loopback), like http://127.0.0.1:8080/healthz.
    #[arg(long)]
    url: Option<String>,
}

#[derive(Debug, Subcommand)]
enum UserCommand {
    /// Create a user; the password is read from standard input.
    Create {
        #[arg(long)]
        email: String,
        #[arg(long)]
        username: Option<String>,
    },
    /// List every user: id, email, username, created, disabled or not, live sessions.
    List {
        /// Print a JSON array instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Disable an account: end all its sessions at once and refuse its logins.
    Disable {
        #[arg(long)]
        email: String,
    },
    /// Enable a disabled account again.
    Enable {
        #[arg(long)]
        email: String,
    },
    /// Remove an account's second factor (TOTP and recovery codes), for an owner who lost
    /// both: its logins need the password alone again. Check who is asking first.
    ResetMfa {
        #[arg(long)]
        email: String,
    },
}

#[derive(Debug, Subcommand)]
enum SessionsCommand {
    /// End every live session of a user at once; the account stays enabled.
    Revoke {
        #[arg(long)]
        email: String,
    },
}

#[derive(Debug, Subcommand)]
enum KeysCommand {
    /// List the signing keys: kid, created, and signing, verifying until, or retired.
    List {
        /// Print a JSON array instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Add a new signing key that signs from now on; the previous one keeps verifying until
    /// every token it can have signed has expired. Refused with LATCHKEY_JWT_SECRET set.
    Rotate,
    /// Encrypt the private keys stored in plain text under LATCHKEY_KEY_ENCRYPTION_KEY
    /// (those stored before it was set); keys already encrypted are left as they are.
    Encrypt,
}

#[derive(Debug, Subcommand)]
enum MailCommand {
    /// Send one test message now through the SMTP server of LATCHKEY_SMTP_URL, and print
    /// the server's answer; exit 1 if it is not delivered, or without LATCHKEY_SMTP_URL.
    Test {
        /// The recipient, like ada@example.com.
        #[arg(long)]
        to: String,
    },
}

/// What went wrong, for `main` to print as one line and turn into the exit code.
#[derive(Debug, thiserror::Error)]
pub enum CliError {
    #[error("invalid configuration: {0}")]
    Config(#[from] crate::config::ConfigError),
    #[error("{0}")]
    Rejected(String),
    #[error("healthcheck: {0}")]
    Unhealthy(String),
    #[error("{0:#}")]
    Failed(#[from] anyhow::Error),
}

impl Cli {
    /// The settings from the environment, with this command line's overrides applied.
    pub fn settings(&self) -> Result<Settings, CliError> {
        let mut overrides = HashMap::new();
        if let Some(url) = &self.database_url {
            overrides.insert(config::DATABASE_URL, url.clone());
        }
        if let Some(Command::Serve(ServeArgs { bind: Some(bind) })) = &self.command {
            overrides.insert(config::LATCHKEY_BIND, bind.clone());
        }
        Ok(Settings::from_env_with(&overrides)?)
    }

    /// Commands that need no settings, run before the environment is read.
    pub fn run_standalone(&self) -> Option<Result<(), CliError>> {
        match self.command {
            Some(Command::Openapi) => Some(print_openapi()),
            Some(Command::Healthcheck(ref args)) => Some(healthcheck(args)),
            _ => None,
        }
    }

    pub async fn run(self, settings: Settings) -> Result<(), CliError> {
        match self.command {
            Some(Command::Openapi) => print_openapi(),
            Some(Command::Healthcheck(args)) => healthcheck(&args),
            None | Some(Command::Serve(_)) => serve(settings).await,
            Some(Command::Migrate) => {
                let db = connect(&settings).await?;
                println!("migrations applied ({} database)", db.backend());
                Ok(())
            }
            Some(Command::User(UserCommand::Create { email, username })) => {
                create_user(settings, &email, username.as_deref()).await
            }
            Some(Command::User(UserCommand::List { json })) => {
                operator::list_users(settings, json).await
            }
            Some(Command::User(UserCommand::Disable { email })) => {
                operator::disable_user(settings, email).await
            }
            Some(Command::User(UserCommand::Enable { email })) => {
                operator::enable_user(settings, email).await
            }
            Some(Command::User(UserCommand::ResetMfa { email })) => {
                operator::reset_mfa(settings, email).await
            }
            Some(Command::Sessions(SessionsCommand::Revoke { email })) => {
                operator::revoke_sessions(settings, email).await
            }
            Some(Command::Keys(KeysCommand::List { json })) => keys::list(settings, json).await,
            Some(Command::Keys(KeysCommand::Rotate)) => keys::rotate(settings).await,
            Some(Command::Keys(KeysCommand::Encrypt)) => keys::encrypt(settings).await,
            Some(Command::Mail(MailCommand::Test { to })) => mail::test(settings, &to).await,
        }
    }
}

fn print_openapi() -> Result<(), CliError> {
    print!("{}", crate::http::openapi::yaml());
    Ok(())
}

/// Fails with exit code 1 whatever went wrong: container runtimes reserve 2.
fn healthcheck(args: &HealthcheckArgs) -> Result<(), CliError> {
    let url = match &args.url {
        Some(url) => url.clone(),
        None => healthcheck::url_for_bind(Settings::bind_from_env()?),
    };
    healthcheck::check(&url, healthcheck::TIMEOUT).map_err(CliError::Unhealthy)
}

async fn serve(settings: Settings) -> Result<(), CliError> {
    let backend = settings.database_url.backend();
    let application = Application::build(settings).await?;
    let metrics = application.metrics_address().map_or_else(
        || "off".to_owned(),
        |address| format!("http://{address}/metrics"),
    );
    tracing::info!(
        port = application.port(),
        backend = backend.name(),
        metrics,
        "latchkey is listening"
    );
    application
        .run_until_stopped()
        .await
        .map_err(|error| CliError::Failed(error.into()))
}

async fn create_user(
    settings: Settings,
    email: &str,
    username: Option<&str>,
) -> Result<(), CliError> {
    let password = read_password()?;
    let account = NewAccount::parse(email, username, password).map_err(rejected)?;
    let db = connect(&settings).await?;
    let passwords = Passwords::new(settings.argon2, 1, 0)?;
    let user = accounts::create(&db, &passwords, account)
        .await
        .map_err(rejected)?;
    println!("created user {} <{}>", user.id, user.email);
    Ok(())
}

/// The database, for a command that runs one piece of work and exits: one connection, so
/// that the pool never opens another in the background (it tops its idle connections up
/// after each checkout). A PostgreSQL connection still being opened on a pool thread as the
/// process exits can crash it (SIGSEGV) after the command has done its work.
async fn connect(settings: &Settings) -> Result<Db, CliError> {
    let settings = Settings {
        db_pool_size: 1,
        ..settings.clone()
    };
    Ok(startup::connect(&settings).await?)
}

/// The password is the whole of standard input, without its final line break.
fn read_password() -> Result<SecretString, CliError> {
    let mut input = String::new();
    std::io::stdin()
        .read_to_string(&mut input)
        .map_err(|error| {
            CliError::Rejected(format!("reading the password from standard input: {error}"))
        })?;
    let password = input.strip_suffix('\n').unwrap_or(&input);
    let password = password.strip_suffix('\r').unwrap_or(password);
    Ok(SecretString::from(password))
}

/// Describes a refusal in words an operator can act on.
fn rejected(error: Error) -> CliError {
    match error {
        Error::Validation(errors) => CliError::Rejected(
            errors
                .iter()
                .map(|e| format!("{} {}", e.field, e.message))
                .collect::<Vec<_>>()
                .join("; "),
        ),
        Error::EmailTaken => CliError::Rejected("a user with this email already exists".into()),
        Error::UsernameTaken => {
            CliError::Rejected("a user with this username already exists".into())
        }
        other => CliError::Failed(anyhow::Error::new(other)),
    }
}
