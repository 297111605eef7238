//! The command line: `serve` (the default), `migrate`, `openapi`, `healthcheck` and
//! `user create`.

mod healthcheck;

use std::collections::HashMap;
use std::io::Read as _;

use clap::{Args, Parser, Subcommand};
use secrecy::SecretString;

use crate::auth::accounts::{self, NewAccount};
use crate::auth::passwords::Passwords;
use crate::config::Settings;
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
            overrides.insert("DATABASE_URL", url.clone());
        }
        if let Some(Command::Serve(ServeArgs { bind: Some(bind) })) = &self.command {
            overrides.insert("LATCHKEY_BIND", bind.clone());
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
                let db = startup::connect(&settings).await?;
                println!("migrations applied ({} database)", db.backend());
                Ok(())
            }
            Some(Command::User(UserCommand::Create { email, username })) => {
                create_user(settings, &email, username.as_deref()).await
            }
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
    tracing::info!(port = application.port(), backend, "latchkey is listening");
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
    let db = startup::connect(&settings).await?;
    let passwords = Passwords::new(settings.argon2, 1)?;
    let password_hash = passwords
        .hash(account.password_secret())
        .await
        .map_err(rejected)?;
    let user = db
        .run(move |conn| accounts::insert(conn, &account, &password_hash))
        .await
        .map_err(rejected)?;
    println!("created user {} <{}>", user.id, user.email);
    Ok(())
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
