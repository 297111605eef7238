//! The signing key at rest (API.md "Keys and operations hardening"): encrypted under
//! `LATCHKEY_KEY_ENCRYPTION_KEY`, so that a copy of the database cannot sign a token, and
//! SQLite's files readable by their owner alone.

use jsonwebtoken::{Algorithm, EncodingKey, Header};
use reqwest::StatusCode;
use serde_json::Value;

use crate::recovery::{mail_about, mail_app};
use crate::support::cli::{assert_one_line_failure, assert_success, run_on};
use crate::support::mail_sink::MailSink;
use crate::support::{Backend, TestApp, Tokens, claims_of};

backend_tests!(
    a_copy_of_the_database_signs_nothing_once_keys_are_encrypted,
    keys_encrypt_seals_plain_keys_in_place_once,
    a_missing_or_wrong_encryption_key_stops_start_up,
    the_service_says_when_keys_are_stored_plain,
);

/// `openssl rand -base64 32`, twice.
const ENCRYPTION_KEY: &str = "q83vEjRWeJCrze8SNFZ4kKvN7xI0VniQq83vEjRWeJA=";
const OTHER_ENCRYPTION_KEY: &str = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=";
const ENCRYPTED: (&str, &str) = ("LATCHKEY_KEY_ENCRYPTION_KEY", ENCRYPTION_KEY);

/// The signing key's row as a backup holds it: its kid and stored private key.
fn stored_signing_key(app: &TestApp) -> (String, Vec<u8>) {
    let keys = app
        .db
        .run_now(|conn| Ok(latchkey::db::signing_keys::list(conn)?))
        .unwrap();
    let key = keys
        .into_iter()
        .find(|key| key.retired_at.is_none())
        .expect("a signing key");
    (key.kid, key.private_key)
}

/// The key of the one-time code hashes, as stored.
fn stored_code_key(app: &TestApp) -> Vec<u8> {
    app.db
        .run_now(|conn| {
            Ok(latchkey::db::server_secrets::find(
                conn,
                "one_time_code_key",
            )?)
        })
        .unwrap()
        .expect("a code key")
}

/// What someone holding a copy of the database tries: sign, with the stored private key, an
/// access token for another user's live session. `None` when the key does not even load.
fn forge(victim: &Tokens, kid: &str, private_key: &[u8]) -> Option<String> {
    let mut claims: Value = claims_of(&victim.access_token);
    claims["jti"] = Value::from(uuid::Uuid::now_v7().to_string());
    let mut header = Header::new(Algorithm::EdDSA);
    header.typ = Some("at+jwt".to_owned());
    header.kid = Some(kid.to_owned());
    jsonwebtoken::encode(&header, &claims, &EncodingKey::from_ed_der(private_key)).ok()
}

async fn a_copy_of_the_database_signs_nothing_once_keys_are_encrypted(backend: Backend) {
    // The attack, where keys are plain: the copy signs a token the service accepts.
    let plain = TestApp::spawn(backend).await;
    let victim = plain.signup_user().await;
    let (kid, private_key) = stored_signing_key(&plain);
    let forged = forge(&victim, &kid, &private_key).expect("a plain key signs");
    assert_eq!(plain.me(&forged).await.status(), StatusCode::OK);

    // Encrypted: the stored bytes are no key at all, and nothing signed with them verifies.
    let app = TestApp::spawn_with(backend, &[ENCRYPTED]).await;
    let victim = app.signup_user().await;
    assert_eq!(app.me(&victim.access_token).await.status(), StatusCode::OK);
    let (kid, private_key) = stored_signing_key(&app);
    assert!(private_key.starts_with(b"latchkey-sealed-v1:"));
    // So is the key of the mailed codes' hashes: the table of codes alone is no list of
    // hashes to try 2^40 codes against.
    assert!(stored_code_key(&app).starts_with(b"latchkey-sealed-v1:"));
    assert!(private_key.len() > 48, "a sealed PKCS#8 key");
    if let Some(forged) = forge(&victim, &kid, &private_key) {
        assert_eq!(app.me(&forged).await.status(), StatusCode::UNAUTHORIZED);
    }
}

async fn keys_encrypt_seals_plain_keys_in_place_once(backend: Backend) {
    let sink = MailSink::start();
    let before = mail_app(backend, &sink, &[]).await;
    let user = before.signup_user().await;
    let code = mail_about(&sink, &user.email, "confirm", 1).await.code();
    let (kid, plain_key) = stored_signing_key(&before);

    assert!(!stored_code_key(&before).starts_with(b"latchkey-sealed-v1:"));
    let first = run_on(&before.database, &[ENCRYPTED], &["keys", "encrypt"]).await;
    assert_eq!(
        assert_success(&first),
        "encrypted 1 signing key\nencrypted the key of the one-time codes\n"
    );
    assert!(stored_code_key(&before).starts_with(b"latchkey-sealed-v1:"));
    let (same_kid, sealed) = stored_signing_key(&before);
    assert_eq!(same_kid, kid);
    assert!(sealed.starts_with(b"latchkey-sealed-v1:"));
    assert!(!sealed.windows(plain_key.len()).any(|w| w == plain_key));
    let again = run_on(&before.database, &[ENCRYPTED], &["keys", "encrypt"]).await;
    assert_eq!(assert_success(&again), "encrypted 0 signing keys\n");

    // The same key, now opened with the encryption key: earlier tokens verify, new ones too.
    let after = TestApp::spawn_on(before.database.clone(), &[ENCRYPTED]).await;
    assert_eq!(after.me(&user.access_token).await.status(), StatusCode::OK);
    // And the same code key: a code mailed before still verifies.
    let verified = after
        .post(
            "/email/verify",
            &serde_json::json!({"email": user.email, "code": code}),
        )
        .await;
    assert_eq!(verified.status(), StatusCode::OK);
    let newcomer = after.signup_user().await;
    assert_eq!(
        before.me(&newcomer.access_token).await.status(),
        StatusCode::OK
    );

    // Without an encryption key there is nothing to encrypt with.
    let refused = run_on(&before.database, &[], &["keys", "encrypt"]).await;
    assert!(assert_one_line_failure(&refused).contains("LATCHKEY_KEY_ENCRYPTION_KEY"));
}

async fn a_missing_or_wrong_encryption_key_stops_start_up(backend: Backend) {
    let app = TestApp::spawn_with(backend, &[ENCRYPTED]).await;
    let bind = ("LATCHKEY_BIND", "127.0.0.1:0");
    let metrics = ("LATCHKEY_METRICS", "off");
    for env in [
        vec![bind, metrics],
        vec![
            bind,
            metrics,
            ("LATCHKEY_KEY_ENCRYPTION_KEY", OTHER_ENCRYPTION_KEY),
        ],
    ] {
        let output = run_on(&app.database, &env, &["serve"]).await;
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(!output.status.success(), "{stderr}");
        assert!(!stderr.contains("panicked"), "{stderr}");
        assert!(stderr.contains("LATCHKEY_KEY_ENCRYPTION_KEY"), "{stderr}");
    }
    // The key was not replaced by a new one: the service still verifies what it signed.
    let user = app.signup_user().await;
    assert_eq!(app.me(&user.access_token).await.status(), StatusCode::OK);
    // A value that is not 32 bytes of base64 is a configuration error naming the variable.
    for bad in ["", "not base64!", "AAECAwQFBgcICQoLDA0ODw=="] {
        let env = [bind, ("LATCHKEY_KEY_ENCRYPTION_KEY", bad)];
        let output = run_on(&app.database, &env, &["serve"]).await;
        assert!(assert_one_line_failure(&output).contains("LATCHKEY_KEY_ENCRYPTION_KEY"));
    }
}

async fn the_service_says_when_keys_are_stored_plain(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    app.signup_user().await;
    // Each start-up loads the keys, says what it found, then stops on a taken port.
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let bind = format!("127.0.0.1:{}", taken.local_addr().unwrap().port());
    for (env, warning) in [
        (vec![], "LATCHKEY_KEY_ENCRYPTION_KEY is not set"),
        (vec![ENCRYPTED], "run `latchkey keys encrypt`"),
    ] {
        let mut env = env;
        env.extend([
            ("LATCHKEY_BIND", bind.as_str()),
            ("LATCHKEY_METRICS", "off"),
        ]);
        let output = run_on(&app.database, &env, &["serve"]).await;
        let logs = format!(
            "{}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
        assert!(logs.contains(warning), "{logs}");
    }
    drop(taken);
}

/// SQLite: the database and its `-wal` and `-shm` files are readable by their owner alone.
#[cfg(unix)]
#[actix_web::test]
async fn sqlite_files_are_created_owner_only() {
    use std::os::unix::fs::PermissionsExt as _;
    let app = TestApp::spawn(Backend::Sqlite).await;
    app.signup_user().await;
    let path = app.database.url.trim_start_matches("sqlite://").to_owned();
    for suffix in ["", "-wal", "-shm"] {
        let file = format!("{path}{suffix}");
        let mode = std::fs::metadata(&file).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600, "{file} is {mode:o}");
    }
}
