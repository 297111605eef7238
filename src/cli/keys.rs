//! `latchkey keys list|rotate`: the Ed25519 signing keys kept in the database.

use serde::Serialize;

use super::output::{self, timestamp};
use super::{CliError, connect, rejected};
use crate::auth::claims::LEEWAY;
use crate::auth::key_vault::KeyVault;
use crate::auth::keys::{self, KeyState};
use crate::config::{LATCHKEY_JWT_SECRET, Settings};
use crate::db;

/// Why the keys in the database do not matter with a shared secret.
fn shared_secret_note() -> String {
    format!(
        "{LATCHKEY_JWT_SECRET} is set: tokens are HS256, signed and verified with that shared \
         secret, not with the keys in the database"
    )
}

/// One key in `latchkey keys list --json`.
#[derive(Serialize)]
struct KeyRow<'a> {
    kid: &'a str,
    algorithm: &'a str,
    created_at: String,
    /// `signing`, `verifying` or `retired`.
    state: &'static str,
    /// When it stops (or stopped) verifying; `null` for the signing key.
    retires_at: Option<String>,
}

pub async fn list(settings: Settings, as_json: bool) -> Result<(), CliError> {
    let db = connect(&settings).await?;
    let keys = db
        .run(|conn| keys::list(conn, db::now()))
        .await
        .map_err(rejected)?;
    if settings.jwt_secret.is_some() {
        eprintln!("note: {}", shared_secret_note());
    } else if keys.is_empty() {
        eprintln!("note: no key yet; `latchkey serve` creates the first when it starts");
    }
    if as_json {
        let keys: Vec<_> = keys
            .iter()
            .map(|key| {
                let (state, retires_at) = match key.state {
                    KeyState::Signing => ("signing", None),
                    KeyState::VerifyingUntil(at) => ("verifying", Some(at)),
                    KeyState::RetiredAt(at) => ("retired", Some(at)),
                };
                KeyRow {
                    kid: &key.kid,
                    algorithm: &key.algorithm,
                    created_at: timestamp(key.created_at),
                    state,
                    retires_at: retires_at.map(timestamp),
                }
            })
            .collect();
        let text = serde_json::to_string_pretty(&keys).map_err(anyhow::Error::from)?;
        println!("{text}");
        return Ok(());
    }
    let rows: Vec<Vec<String>> = keys
        .iter()
        .map(|key| {
            let state = match key.state {
                KeyState::Signing => "signing".to_owned(),
                KeyState::VerifyingUntil(at) => format!("verifying until {}", timestamp(at)),
                KeyState::RetiredAt(at) => format!("retired since {}", timestamp(at)),
            };
            vec![
                key.kid.clone(),
                key.algorithm.clone(),
                timestamp(key.created_at),
                state,
            ]
        })
        .collect();
    print!(
        "{}",
        output::table(&["KID", "ALGORITHM", "CREATED", "STATE"], &rows)
    );
    Ok(())
}

/// Refuses with a shared secret: the instances do not use the keys in the database then, and
/// the secret is rotated by changing `LATCHKEY_JWT_SECRET` (which ends every access token).
pub async fn rotate(settings: Settings) -> Result<(), CliError> {
    if settings.jwt_secret.is_some() {
        return Err(CliError::Rejected(format!(
            "{}; nothing to rotate here: change the secret in the configuration instead",
            shared_secret_note()
        )));
    }
    let verify_for = keys::retire_after(settings.access_ttl, settings.key_reload_interval);
    let vault = KeyVault::new(settings.key_encryption_key.as_deref());
    let db = connect(&settings).await?;
    let rotated = db
        .run(move |conn| keys::rotate(conn, verify_for, &vault))
        .await
        .map_err(rejected)?
        .ok_or_else(|| {
            CliError::Rejected(
                "another rotation ran at the same moment and this one changed nothing; \
                 see `latchkey keys list`"
                    .into(),
            )
        })?;
    println!("new signing key {}", rotated.kid);
    if !rotated.replaced.is_empty() {
        println!(
            "{} {} verifying until {} (reload interval {} + access token lifetime {} + {} \
             leeway), then retires",
            rotated.replaced.join(", "),
            if rotated.replaced.len() == 1 {
                "keeps"
            } else {
                "keep"
            },
            timestamp(rotated.retires_at),
            output::duration(settings.key_reload_interval),
            output::duration(settings.access_ttl),
            output::duration(LEEWAY),
        );
    }
    Ok(())
}

/// Encrypts the private keys (and the code key) stored in plain text under
/// `LATCHKEY_KEY_ENCRYPTION_KEY`.
pub async fn encrypt(settings: Settings) -> Result<(), CliError> {
    if settings.key_encryption_key.is_none() {
        return Err(CliError::Rejected(
            "LATCHKEY_KEY_ENCRYPTION_KEY is not set: there is no key to encrypt with \
             (openssl rand -base64 32)"
                .into(),
        ));
    }
    let vault = KeyVault::new(settings.key_encryption_key.as_deref());
    let db = connect(&settings).await?;
    let encrypted = db
        .run(move |conn| keys::encrypt_stored(conn, &vault))
        .await
        .map_err(rejected)?;
    let plural = |count: usize| if count == 1 { "" } else { "s" };
    let count = encrypted.signing_keys;
    println!("encrypted {count} signing key{}", plural(count));
    if encrypted.code_key {
        println!("encrypted the key of the one-time codes");
    }
    if encrypted.totp_secrets > 0 {
        let count = encrypted.totp_secrets;
        println!("encrypted {count} TOTP secret{}", plural(count));
    }
    Ok(())
}
