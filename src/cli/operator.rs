//! `latchkey user list|disable|enable|reset-mfa` and `latchkey sessions revoke`: what an operator does
//! to accounts, straight on the database that the running instances share.

use serde::Serialize;

use super::output::{self, timestamp};
use super::{CliError, connect, rejected};
use crate::auth::{accounts, mfa};
use crate::config::Settings;
use crate::error::Error;

/// An unknown email is the operator's mistake, said as such.
fn no_such_user(email: &str) -> impl FnOnce(Error) -> CliError + '_ {
    move |error| match error {
        Error::NotFound => CliError::Rejected(format!("no user with email {}", email.trim())),
        other => rejected(other),
    }
}

/// One user in `latchkey user list --json`.
#[derive(Serialize)]
struct UserRow<'a> {
    id: &'a str,
    email: &'a str,
    username: Option<&'a str>,
    created_at: String,
    disabled_at: Option<String>,
    live_sessions: i64,
}

pub async fn list_users(settings: Settings, as_json: bool) -> Result<(), CliError> {
    let policy = settings.session_policy();
    let db = connect(&settings).await?;
    let accounts = accounts::list(&db, policy).await.map_err(rejected)?;
    if as_json {
        let users: Vec<_> = accounts
            .iter()
            .map(|account| UserRow {
                id: account.user.id.as_str(),
                email: &account.user.email,
                username: account.user.username.as_deref(),
                created_at: timestamp(account.user.created_at),
                disabled_at: account.user.disabled_at.map(timestamp),
                live_sessions: account.live_sessions,
            })
            .collect();
        let text = serde_json::to_string_pretty(&users).map_err(anyhow::Error::from)?;
        println!("{text}");
        return Ok(());
    }
    let rows: Vec<Vec<String>> = accounts
        .iter()
        .map(|account| {
            let user = &account.user;
            vec![
                user.id.to_string(),
                user.email.clone(),
                user.username.clone().unwrap_or_else(|| "-".to_owned()),
                timestamp(user.created_at),
                user.disabled_at
                    .map_or_else(|| "no".to_owned(), |at| format!("since {}", timestamp(at))),
                account.live_sessions.to_string(),
            ]
        })
        .collect();
    print!(
        "{}",
        output::table(
            &["ID", "EMAIL", "USERNAME", "CREATED", "DISABLED", "SESSIONS"],
            &rows
        )
    );
    Ok(())
}

pub async fn disable_user(settings: Settings, email: String) -> Result<(), CliError> {
    let policy = settings.session_policy();
    let db = connect(&settings).await?;
    let disabled = accounts::disable(&db, email.clone(), policy)
        .await
        .map_err(no_such_user(&email))?;
    let address = &disabled.user.email;
    let ended = output::sessions(disabled.ended_sessions);
    match disabled.user.disabled_at.filter(|_| disabled.already) {
        Some(since) => println!(
            "{address} was already disabled (since {}); ended {ended}",
            timestamp(since)
        ),
        None => println!("disabled {address}, ended {ended}"),
    }
    Ok(())
}

pub async fn enable_user(settings: Settings, email: String) -> Result<(), CliError> {
    let db = connect(&settings).await?;
    let enabled = accounts::enable(&db, email.clone())
        .await
        .map_err(no_such_user(&email))?;
    let address = email.trim().to_lowercase();
    if enabled {
        println!("enabled {address}");
    } else {
        println!("{address} was not disabled; nothing changed");
    }
    Ok(())
}

pub async fn reset_mfa(settings: Settings, email: String) -> Result<(), CliError> {
    let db = connect(&settings).await?;
    let (address, had) = mfa::reset_by_operator(&db, email.clone())
        .await
        .map_err(no_such_user(&email))?;
    if had {
        println!("removed the second factor of {address}; it logs in with the password alone");
    } else {
        println!("{address} has no second factor; nothing changed");
    }
    Ok(())
}

pub async fn revoke_sessions(settings: Settings, email: String) -> Result<(), CliError> {
    let policy = settings.session_policy();
    let db = connect(&settings).await?;
    let (address, ended) = accounts::end_sessions(&db, email.clone(), policy)
        .await
        .map_err(no_such_user(&email))?;
    if ended == 0 {
        println!("{address} had no live session; nothing changed");
    } else {
        println!("ended {} of {address}", output::sessions(ended));
    }
    Ok(())
}
