//! Signing-key rotation (API.md "Tokens and sessions", "Running it"): `latchkey keys rotate`
//! and `keys list` through the real binary, and the running applications that pick the new
//! key up without a restart, by their periodic reload or on meeting its `kid`.

use std::future::Future;
use std::time::Duration;

use chrono::{DateTime, Utc};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::support::cli::{assert_one_line_failure, assert_success, run_on, stderr_of, stdout_of};
use crate::support::{Backend, TestApp, TestDatabase, assert_invalid_token, claims_of, header_of};

backend_tests!(
    rotation_signs_with_a_new_key_and_the_old_one_verifies_until_it_retires,
    an_instance_reloads_when_it_meets_the_kid_of_a_rotation,
    instances_pick_up_a_rotation_by_their_periodic_reload,
    a_second_rotation_keeps_the_first_keys_retirement,
    with_a_shared_secret_rotation_is_refused,
);

const SECRET: &str = "an HS256 shared secret of at least 32 bytes";

fn kid_of(token: &str) -> String {
    header_of(token)["kid"].as_str().expect("a kid").to_owned()
}

/// The kids of the application's JWK Set, in its order.
async fn published_kids(app: &TestApp) -> Vec<String> {
    let set = app.jwks().await;
    set["keys"]
        .as_array()
        .expect("a JWK Set")
        .iter()
        .map(|jwk| jwk["kid"].as_str().unwrap().to_owned())
        .collect()
}

/// `latchkey keys rotate` with the settings the applications run with; answers its output.
async fn rotate(database: &TestDatabase, env: &[(&str, &str)]) -> String {
    assert_success(&run_on(database, env, &["keys", "rotate"]).await)
}

/// `latchkey keys list --json`.
async fn listed_keys(database: &TestDatabase) -> Vec<Value> {
    let output = assert_success(&run_on(database, &[], &["keys", "list", "--json"]).await);
    serde_json::from_str(&output).expect("a JSON array")
}

fn time(value: &Value) -> DateTime<Utc> {
    value
        .as_str()
        .and_then(|text| DateTime::parse_from_rfc3339(text).ok())
        .expect("an RFC 3339 time")
        .with_timezone(&Utc)
}

/// Polls `condition` until it holds, failing after `within`.
async fn eventually<F, Fut>(what: &str, within: Duration, mut condition: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let deadline = std::time::Instant::now() + within;
    while !condition().await {
        assert!(
            std::time::Instant::now() < deadline,
            "{what}: not within {within:?}"
        );
        actix_web::rt::time::sleep(Duration::from_millis(100)).await;
    }
}

/// A token of `tokens`' session signed with the stored key `kid`, valid for an hour: it
/// outlives the test, so only the key's retirement can end it.
fn long_lived_token(app: &TestApp, tokens: &crate::support::Tokens, kid: &str) -> String {
    let keys = app
        .db
        .run_now(|conn| Ok(latchkey::db::signing_keys::list(conn)?))
        .unwrap();
    let key = keys
        .iter()
        .find(|key| key.kid == kid)
        .expect("the key in the database");
    let mut claims = claims_of(&tokens.access_token);
    let now = Utc::now().timestamp();
    claims["iat"] = json!(now);
    claims["nbf"] = json!(now);
    claims["exp"] = json!(now + 3600);
    claims["jti"] = json!(uuid::Uuid::now_v7().to_string());
    let mut header = Header::new(Algorithm::EdDSA);
    header.typ = Some("at+jwt".to_owned());
    header.kid = Some(kid.to_owned());
    jsonwebtoken::encode(
        &header,
        &claims,
        &EncodingKey::from_ed_der(&key.private_key),
    )
    .unwrap()
}

async fn assert_accepted(app: &TestApp, what: &str, token: &str) {
    assert_eq!(app.me(token).await.status(), StatusCode::OK, "{what}");
}

async fn rotation_signs_with_a_new_key_and_the_old_one_verifies_until_it_retires(backend: Backend) {
    // A replaced key verifies for reload interval + access lifetime + 5 s leeway: 8 s here.
    let env = [
        ("LATCHKEY_ACCESS_TTL", "2"),
        ("LATCHKEY_KEY_RELOAD_INTERVAL", "1"),
    ];
    let app = TestApp::spawn_with(backend, &env).await;
    let before = app.signup_user().await;
    let old_kid = kid_of(&before.access_token);
    let lasting = long_lived_token(&app, &before, &old_kid);
    assert_accepted(&app, "the old key's token before the rotation", &lasting).await;

    let stdout = rotate(&app.database, &env).await;

    let keys = listed_keys(&app.database).await;
    assert_eq!(keys.len(), 2, "{keys:?}");
    let new_kid = keys[0]["kid"].as_str().unwrap().to_owned();
    assert_ne!(new_kid, old_kid);
    assert_eq!(keys[0]["state"], "signing");
    assert_eq!(keys[0]["retires_at"], Value::Null);
    assert_eq!(keys[1]["kid"], old_kid.as_str());
    assert_eq!(keys[1]["state"], "verifying");
    let retires_at = time(&keys[1]["retires_at"]);
    let verify_for = retires_at - time(&keys[0]["created_at"]);
    assert!(
        (7..=9).contains(&verify_for.num_seconds()),
        "retires {verify_for} after the rotation"
    );
    assert!(
        stdout.contains(&format!("new signing key {new_kid}")),
        "{stdout}"
    );
    assert!(stdout.contains(&old_kid), "{stdout}");
    assert!(
        stdout.contains(keys[1]["retires_at"].as_str().unwrap()),
        "{stdout}"
    );
    // The replaced key never signs again: its private key is gone from the database, the
    // new one's is there.
    let stored = app
        .db
        .run_now(|conn| Ok(latchkey::db::signing_keys::list(conn)?))
        .unwrap();
    let private_key_of = |kid: &str| {
        let key = stored.iter().find(|key| key.kid == kid).expect("stored");
        key.private_key.clone()
    };
    assert!(private_key_of(&old_kid).is_empty(), "the replaced key's");
    assert!(!private_key_of(&new_kid).is_empty(), "the signing key's");

    // The running application picks the new key up without a restart.
    eventually(
        "the JWKS lists both keys",
        Duration::from_secs(5),
        || async { published_kids(&app).await == [new_kid.as_str(), old_kid.as_str()] },
    )
    .await;
    let after = app.signup_user().await;
    assert_eq!(kid_of(&after.access_token), new_kid);
    assert_accepted(&app, "a token of the new key", &after.access_token).await;
    assert_accepted(&app, "the old key's token after the rotation", &lasting).await;

    // Once every token the old key can have signed has expired, it retires.
    eventually(
        "the old key leaves the JWKS",
        (retires_at - Utc::now()).to_std().unwrap_or_default() + Duration::from_secs(3),
        || async { published_kids(&app).await == [new_kid.as_str()] },
    )
    .await;
    assert!(Utc::now() >= retires_at, "retired early");
    let refused = app.me(&lasting).await;
    assert_eq!(refused.status(), StatusCode::UNAUTHORIZED, "a retired key");
    assert_invalid_token(refused).await;
    let fresh = app.login_user(&before.email).await;
    assert_accepted(&app, "a token of the new key", &fresh.access_token).await;
    let keys = listed_keys(&app.database).await;
    assert_eq!(keys[1]["state"], "retired", "{keys:?}");
}

async fn an_instance_reloads_when_it_meets_the_kid_of_a_rotation(backend: Backend) {
    // No periodic reload within the test: only an unknown kid can make them reload.
    let env = [("LATCHKEY_KEY_RELOAD_INTERVAL", "1h")];
    let first = TestApp::spawn_with(backend, &env).await;
    let second = TestApp::spawn_on(first.database.clone(), &env).await;
    let before = first.signup_user().await;
    let old_kid = kid_of(&before.access_token);

    rotate(&first.database, &env).await;
    // An instance started after the rotation signs with the new key at once.
    let third = TestApp::spawn_on(first.database.clone(), &env).await;
    let from_third = third.signup_user().await;
    let new_kid = kid_of(&from_third.access_token);
    assert_ne!(new_kid, old_kid);
    assert_eq!(published_kids(&first).await, [old_kid.as_str()]);

    assert_accepted(&first, "a token of the new key", &from_third.access_token).await;

    assert_eq!(
        published_kids(&first).await,
        [new_kid.as_str(), old_kid.as_str()]
    );
    let from_first = first.signup_user().await;
    assert_eq!(kid_of(&from_first.access_token), new_kid);
    assert_accepted(&first, "a token of the old key", &before.access_token).await;
    // The second instance had not reloaded: it was the new kid that made the first do so.
    assert_eq!(published_kids(&second).await, [old_kid.as_str()]);
    assert_accepted(&second, "a token of the new key", &from_first.access_token).await;
    assert_eq!(
        published_kids(&second).await,
        [new_kid.as_str(), old_kid.as_str()]
    );
}

async fn instances_pick_up_a_rotation_by_their_periodic_reload(backend: Backend) {
    let env = [("LATCHKEY_KEY_RELOAD_INTERVAL", "1")];
    let first = TestApp::spawn_with(backend, &env).await;
    let second = TestApp::spawn_on(first.database.clone(), &env).await;
    let before = first.signup_user().await;
    let old_kid = kid_of(&before.access_token);

    rotate(&first.database, &env).await;

    let keys = listed_keys(&first.database).await;
    let new_kid = keys[0]["kid"].as_str().unwrap().to_owned();
    for app in [&first, &second] {
        // Nothing with the new kid reached them: only the periodic reload can do this.
        eventually(
            "the JWKS lists the new key",
            Duration::from_secs(5),
            || async { published_kids(app).await == [new_kid.as_str(), old_kid.as_str()] },
        )
        .await;
    }
    let from_first = first.signup_user().await;
    let from_second = second.signup_user().await;
    assert_eq!(kid_of(&from_first.access_token), new_kid);
    assert_eq!(kid_of(&from_second.access_token), new_kid);
    assert_accepted(&second, "the first's new token", &from_first.access_token).await;
    assert_accepted(&first, "the second's new token", &from_second.access_token).await;
    assert_accepted(&second, "a token of the old key", &before.access_token).await;
}

async fn a_second_rotation_keeps_the_first_keys_retirement(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let tokens = app.signup_user().await;
    rotate(&app.database, &[]).await;
    let once = listed_keys(&app.database).await;
    // Defaults: a 30 s reload interval, 15 min access tokens and 5 s of leeway.
    let verify_for = time(&once[1]["retires_at"]) - time(&once[0]["created_at"]);
    assert!(
        (934..=936).contains(&verify_for.num_seconds()),
        "{verify_for}"
    );

    // As if the first key had been replaced before rotations erased private keys.
    let first_kid = once[1]["kid"].as_str().unwrap().to_owned();
    app.db
        .run_now(move |conn| {
            use diesel::prelude::*;
            use latchkey::db::schema::signing_keys;
            diesel::update(signing_keys::table.find(first_kid))
                .set(signing_keys::private_key.eq(vec![1_u8; 48]))
                .execute(conn)?;
            Ok(())
        })
        .unwrap();

    rotate(&app.database, &[]).await;

    let stored = app
        .db
        .run_now(|conn| Ok(latchkey::db::signing_keys::list(conn)?))
        .unwrap();
    let private_key_lengths: Vec<usize> = stored.iter().map(|key| key.private_key.len()).collect();
    assert!(private_key_lengths[0] > 0, "the signing key keeps its own");
    assert_eq!(
        private_key_lengths[1..],
        [0, 0],
        "both replaced keys erased"
    );
    let twice = listed_keys(&app.database).await;
    let states: Vec<&str> = twice.iter().map(|k| k["state"].as_str().unwrap()).collect();
    assert_eq!(states, ["signing", "verifying", "verifying"]);
    assert_eq!(twice[1]["kid"], once[0]["kid"]);
    assert_eq!(twice[2]["kid"], once[1]["kid"]);
    assert_eq!(twice[2]["retires_at"], once[1]["retires_at"], "unchanged");
    assert!(time(&twice[1]["retires_at"]) >= time(&twice[2]["retires_at"]));
    // The first key, two rotations old, still verifies its tokens.
    assert_accepted(&app, "a token of the first key", &tokens.access_token).await;

    // The table says the same as the JSON.
    let output = run_on(&app.database, &[], &["keys", "list"]).await;
    let table = assert_success(&output);
    let lines: Vec<&str> = table.lines().collect();
    assert_eq!(lines.len(), 4, "{table}");
    assert_eq!(
        lines[0].split_whitespace().collect::<Vec<_>>(),
        ["KID", "ALGORITHM", "CREATED", "STATE"]
    );
    for (line, key) in lines[1..].iter().zip(&twice) {
        assert!(line.starts_with(key["kid"].as_str().unwrap()), "{table}");
        match key["retires_at"].as_str() {
            None => assert!(line.ends_with(" signing"), "{table}"),
            Some(at) => assert!(line.ends_with(&format!(" verifying until {at}")), "{table}"),
        }
    }
}

async fn with_a_shared_secret_rotation_is_refused(backend: Backend) {
    let env = [("LATCHKEY_JWT_SECRET", SECRET)];
    let app = TestApp::spawn_with(backend, &env).await;
    let tokens = app.signup_user().await;

    let output = run_on(&app.database, &env, &["keys", "rotate"]).await;

    let stderr = assert_one_line_failure(&output);
    assert!(stderr.contains("LATCHKEY_JWT_SECRET"), "{stderr}");
    assert!(!stderr.contains(SECRET), "{stderr}");
    assert_eq!(stdout_of(&output), "");
    // Nothing was stored, and the listing says why no key is in use.
    let output = run_on(&app.database, &env, &["keys", "list"]).await;
    assert!(output.status.success(), "{}", stderr_of(&output));
    assert_eq!(stdout_of(&output).lines().count(), 1, "a header only");
    assert!(stderr_of(&output).contains("LATCHKEY_JWT_SECRET"));
    assert_accepted(&app, "an HS256 token", &tokens.access_token).await;
}
