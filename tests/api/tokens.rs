//! Access tokens and signing keys (API.md: "Tokens and sessions", "General rules").

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use reqwest::{Response, StatusCode};
use serde_json::{Value, json};

use crate::support::{
    Backend, TestApp, assert_invalid_token, assert_problem, claims_of, header_of,
};

backend_tests!(
    access_tokens_carry_the_contract_header_and_claims,
    issuer_audience_and_lifetime_are_configurable,
    jwks_publishes_the_key_that_verifies_tokens_offline,
    the_key_is_kept_in_the_database_for_restarts_and_other_instances,
    forged_and_tampered_tokens_are_invalid,
    garbage_and_empty_bearer_tokens_are_invalid,
    a_missing_token_or_another_scheme_is_missing_token,
    hs256_mode_signs_with_the_shared_secret_and_publishes_nothing,
    hs256_mode_refuses_eddsa_tokens,
    a_token_used_many_times_still_expires,
);

const SECRET: &str = "an HS256 shared secret of at least 32 bytes";

fn now() -> i64 {
    chrono::Utc::now().timestamp()
}

fn b64(bytes: impl AsRef<[u8]>) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

/// The newest stored signing key, read straight from the database.
fn stored_key(app: &TestApp) -> latchkey::db::signing_keys::SigningKey {
    let keys = app
        .db
        .run_now(|conn| {
            Ok(latchkey::db::signing_keys::list_verifying(
                conn,
                latchkey::db::now(),
            )?)
        })
        .unwrap();
    keys.into_iter()
        .next()
        .expect("a signing key in the database")
}

fn header(algorithm: Algorithm, typ: Option<&str>, kid: Option<&str>) -> Header {
    let mut header = Header::new(algorithm);
    header.typ = typ.map(str::to_owned);
    header.kid = kid.map(str::to_owned);
    header
}

fn sign(header: &Header, claims: &Value, key: &EncodingKey) -> String {
    jsonwebtoken::encode(header, claims, key).expect("signing a test token")
}

/// `/me` with this token answers `401 invalid_token`; `what` names the case on failure.
async fn assert_refused(app: &TestApp, what: &str, token: &str) {
    let response = app.me(token).await;
    assert_eq!(
        response.status(),
        StatusCode::UNAUTHORIZED,
        "{what} was accepted"
    );
    assert_invalid_token(response).await;
}

async fn assert_accepted(app: &TestApp, what: &str, token: &str) {
    let response = app.me(token).await;
    assert_eq!(response.status(), StatusCode::OK, "{what} was refused");
}

async fn me_with_authorization(app: &TestApp, value: &str) -> Response {
    app.client
        .get(app.url("/me"))
        .header("authorization", value)
        .send()
        .await
        .unwrap()
}

async fn access_tokens_carry_the_contract_header_and_claims(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let before = now();
    let tokens = app.signup_user().await;
    let after = now();

    let header = header_of(&tokens.access_token);
    assert_eq!(header["alg"], "EdDSA", "{header}");
    assert_eq!(header["typ"], "at+jwt", "{header}");
    assert!(
        header["kid"].as_str().is_some_and(|kid| !kid.is_empty()),
        "{header}"
    );

    let claims = claims_of(&tokens.access_token);
    assert_eq!(claims["iss"], "latchkey");
    assert_eq!(claims["aud"], "latchkey");
    assert_eq!(claims["sub"], tokens.user_id.as_str());
    let sid = claims["sid"].as_str().expect("a sid claim");
    assert!(uuid::Uuid::parse_str(sid).is_ok(), "{claims}");
    let jti = claims["jti"].as_str().expect("a jti claim");
    assert!(!jti.is_empty());
    let (iat, nbf, exp) = (
        claims["iat"].as_i64().unwrap(),
        claims["nbf"].as_i64().unwrap(),
        claims["exp"].as_i64().unwrap(),
    );
    assert!((before..=after).contains(&iat), "iat {iat} not now");
    assert!(nbf <= iat, "usable at once");
    assert_eq!(exp - iat, 900, "15 minutes by default");
    assert_eq!(tokens.body["expires_in"], 900);

    // The sid is the session listed as current.
    let sessions: Vec<Value> = app
        .sessions(&tokens.access_token)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(sessions.len(), 1);
    assert_eq!(sessions[0]["id"], sid);

    // Each token is distinct: another login gets another jti and another session.
    let other = app.login_user(&tokens.email).await;
    let other_claims = claims_of(&other.access_token);
    assert_ne!(other_claims["jti"], claims["jti"]);
    assert_ne!(other_claims["sid"], claims["sid"]);
    assert_eq!(other_claims["sub"], claims["sub"]);
}

async fn issuer_audience_and_lifetime_are_configurable(backend: Backend) {
    let app = TestApp::spawn_with(
        backend,
        &[
            ("LATCHKEY_ISSUER", "https://auth.example.com"),
            ("LATCHKEY_AUDIENCE", "api.example.com"),
            ("LATCHKEY_ACCESS_TTL", "2m"),
        ],
    )
    .await;
    let tokens = app.signup_user().await;

    let claims = claims_of(&tokens.access_token);
    assert_eq!(claims["iss"], "https://auth.example.com");
    assert_eq!(claims["aud"], "api.example.com");
    assert_eq!(
        claims["exp"].as_i64().unwrap() - claims["iat"].as_i64().unwrap(),
        120
    );
    assert_eq!(tokens.body["expires_in"], 120);
    assert_accepted(
        &app,
        "a token of the configured issuer",
        &tokens.access_token,
    )
    .await;

    // Same database, same key, default issuer and audience: the token is not for it.
    let default_issuer = TestApp::spawn_on(app.database.clone(), &[]).await;
    assert_refused(
        &default_issuer,
        "a token of another issuer and audience",
        &tokens.access_token,
    )
    .await;
    // Only the audience differs.
    let other_audience = TestApp::spawn_on(
        app.database.clone(),
        &[
            ("LATCHKEY_ISSUER", "https://auth.example.com"),
            ("LATCHKEY_AUDIENCE", "billing.example.com"),
        ],
    )
    .await;
    assert_refused(
        &other_audience,
        "a token for another audience",
        &tokens.access_token,
    )
    .await;
}

async fn jwks_publishes_the_key_that_verifies_tokens_offline(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let tokens = app.signup_user().await;

    let set = app.jwks().await;
    let keys = set["keys"].as_array().expect("a JWK Set");
    assert_eq!(keys.len(), 1, "{set}");
    let jwk = &keys[0];
    assert_eq!(jwk["kty"], "OKP");
    assert_eq!(jwk["crv"], "Ed25519");
    assert_eq!(jwk["use"], "sig");
    assert_eq!(jwk["alg"], "EdDSA");
    assert!(
        jwk.get("d").is_none(),
        "the private key is published: {jwk}"
    );
    let x = jwk["x"].as_str().expect("the public key");
    assert_eq!(URL_SAFE_NO_PAD.decode(x).unwrap().len(), 32);
    assert_eq!(jwk["kid"], header_of(&tokens.access_token)["kid"]);

    // Another service verifies the token with nothing but the JWK.
    let key = DecodingKey::from_ed_components(x).unwrap();
    let mut validation = Validation::new(Algorithm::EdDSA);
    validation.set_issuer(&["latchkey"]);
    validation.set_audience(&["latchkey"]);
    let verified = jsonwebtoken::decode::<Value>(&tokens.access_token, &key, &validation)
        .expect("the token verifies with the published key");
    assert_eq!(verified.claims["sub"], tokens.user_id.as_str());

    // And the published key is the one in the database.
    let stored = stored_key(&app);
    assert_eq!(jwk["kid"], stored.kid.as_str());
    assert_eq!(x, b64(&stored.public_key));
}

async fn the_key_is_kept_in_the_database_for_restarts_and_other_instances(backend: Backend) {
    let first = TestApp::spawn(backend).await;
    let tokens = first.signup_user().await;
    let published = first.jwks().await;

    // A restart, or a second instance, on the same database.
    let second = TestApp::spawn_on(first.database.clone(), &[]).await;

    assert_eq!(second.jwks().await, published, "one key for every instance");
    assert_accepted(
        &second,
        "a token of the first instance",
        &tokens.access_token,
    )
    .await;
    let refreshed = second.refresh(&tokens.refresh_token).await;
    assert_eq!(refreshed.status(), StatusCode::OK);
    let from_second = second.signup_user().await;
    assert_eq!(
        header_of(&from_second.access_token)["kid"],
        header_of(&tokens.access_token)["kid"]
    );
    assert_accepted(
        &first,
        "a token of the second instance",
        &from_second.access_token,
    )
    .await;

    let keys = first
        .db
        .run_now(|conn| {
            Ok(latchkey::db::signing_keys::list_verifying(
                conn,
                latchkey::db::now(),
            )?)
        })
        .unwrap();
    assert_eq!(keys.len(), 1, "no second key was generated");

    let third = TestApp::spawn_on(first.database.clone(), &[]).await;
    assert_eq!(third.jwks().await, published);
}

async fn forged_and_tampered_tokens_are_invalid(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let tokens = app.signup_user().await;
    let stranger = app.signup_user().await;
    let key = stored_key(&app);
    let kid = key.kid.as_str();
    let private = EncodingKey::from_ed_der(&key.private_key);
    let real = claims_of(&tokens.access_token);
    let good_header = header(Algorithm::EdDSA, Some("at+jwt"), Some(kid));

    // The control: a token made here, the way the forgeries are, with nothing wrong, IS
    // accepted. Each forgery below differs from it in one thing only.
    let mut claims = real.clone();
    claims["jti"] = json!(uuid::Uuid::now_v7().to_string());
    let control = sign(&good_header, &claims, &private);
    assert_accepted(&app, "the control token", &control).await;
    assert_accepted(&app, "the real token", &tokens.access_token).await;

    let with = |field: &str, value: Value| {
        let mut changed = claims.clone();
        changed[field] = value;
        sign(&good_header, &changed, &private)
    };
    let without = |field: &str| {
        let mut changed = claims.clone();
        changed.as_object_mut().unwrap().remove(field);
        sign(&good_header, &changed, &private)
    };
    let [_, payload, signature] = control.split('.').collect::<Vec<_>>()[..] else {
        panic!("a JWT has three parts");
    };

    let mut forgeries: Vec<(&str, String)> = Vec::new();

    // alg: none, unsigned.
    let none_header = json!({"alg": "none", "typ": "at+jwt", "kid": kid});
    forgeries.push((
        "alg none",
        format!("{}.{payload}.", b64(none_header.to_string())),
    ));
    forgeries.push((
        "alg none with the real signature",
        format!("{}.{payload}.{signature}", b64(none_header.to_string())),
    ));

    // HS256 keyed with the public key, as raw bytes and as the JWK's `x`.
    let hs256 = header(Algorithm::HS256, Some("at+jwt"), Some(kid));
    forgeries.push((
        "HS256 keyed with the raw public key",
        sign(&hs256, &claims, &EncodingKey::from_secret(&key.public_key)),
    ));
    let x = b64(&key.public_key);
    forgeries.push((
        "HS256 keyed with the JWK x",
        sign(&hs256, &claims, &EncodingKey::from_secret(x.as_bytes())),
    ));

    // Bad signatures.
    let mut bytes = URL_SAFE_NO_PAD.decode(signature).unwrap();
    bytes[0] ^= 0x01;
    let good_header_part = control.split('.').next().unwrap();
    forgeries.push((
        "a flipped signature byte",
        format!("{good_header_part}.{payload}.{}", b64(&bytes)),
    ));
    let mut payload_bytes = URL_SAFE_NO_PAD.decode(payload).unwrap();
    let jti_at = String::from_utf8_lossy(&payload_bytes)
        .find(r#""jti":""#)
        .expect("a jti in the payload")
        + r#""jti":""#.len();
    payload_bytes[jti_at] ^= 0x01; // a hex digit stays a hex digit: still valid JSON
    forgeries.push((
        "a flipped payload byte",
        format!("{good_header_part}.{}.{signature}", b64(&payload_bytes)),
    ));
    forgeries.push((
        "another user's sub on this session",
        with("sub", json!(stranger.user_id)),
    ));
    forgeries.push((
        "a signature from another Ed25519 key",
        sign(&good_header, &claims, &other_ed25519_key()),
    ));

    // Claims.
    forgeries.push(("a wrong iss", with("iss", json!("https://evil.example"))));
    forgeries.push(("a wrong aud", with("aud", json!("another-service"))));
    let t = now();
    let mut expired = claims.clone();
    expired["iat"] = json!(t - 3600 - 900);
    expired["nbf"] = json!(t - 3600 - 900);
    expired["exp"] = json!(t - 3600);
    forgeries.push((
        "expired an hour ago",
        sign(&good_header, &expired, &private),
    ));
    let mut early = claims.clone();
    early["nbf"] = json!(t + 3600);
    early["exp"] = json!(t + 3600 + 900);
    forgeries.push((
        "valid only in an hour",
        sign(&good_header, &early, &private),
    ));
    forgeries.push(("no exp", without("exp")));
    forgeries.push(("no sid", without("sid")));
    forgeries.push(("no sub", without("sub")));

    // Header.
    for (what, typ) in [("typ JWT", Some("JWT")), ("no typ", None)] {
        let header = header(Algorithm::EdDSA, typ, Some(kid));
        forgeries.push((what, sign(&header, &claims, &private)));
    }
    // A critical extension, which this service cannot understand (RFC 7515 §4.1.11).
    let mut critical = good_header.clone();
    critical.crit = Some(vec!["exp".to_owned()]);
    forgeries.push(("a crit header", sign(&critical, &claims, &private)));
    // Issued in the future, beyond any clock difference.
    forgeries.push(("issued an hour from now", with("iat", json!(t + 3600))));
    let unknown_kid = header(Algorithm::EdDSA, Some("at+jwt"), Some("unknown-kid"));
    forgeries.push(("an unknown kid", sign(&unknown_kid, &claims, &private)));
    let no_kid = header(Algorithm::EdDSA, Some("at+jwt"), None);
    forgeries.push(("no kid", sign(&no_kid, &claims, &private)));

    for (what, token) in &forgeries {
        assert_refused(&app, what, token).await;
    }
    // None of this hurt the real session.
    assert_accepted(&app, "the control token, afterwards", &control).await;
}

/// An Ed25519 key that is not the service's.
fn other_ed25519_key() -> EncodingKey {
    use ed25519_dalek::pkcs8::EncodePrivateKey as _;
    let key = ed25519_dalek::SigningKey::from_bytes(&[7; 32]);
    EncodingKey::from_ed_der(key.to_pkcs8_der().unwrap().as_bytes())
}

async fn garbage_and_empty_bearer_tokens_are_invalid(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let tokens = app.signup_user().await;
    let access = tokens.access_token.as_str();
    let parts: Vec<&str> = access.split('.').collect();

    let garbage = [
        "garbage".to_owned(),
        "a.b.c".to_owned(),
        "..".to_owned(),
        "eyJhbGciOiJFZERTQSJ9.e30.".to_owned(),
        format!("{access}.extra"),
        format!("{}.{}", parts[0], parts[1]),
        tokens.refresh_token.clone(),
        "x".repeat(4000),
    ];
    for token in &garbage {
        assert_refused(&app, &format!("{token:.40}"), token).await;
    }
    for value in ["Bearer ", "Bearer", "Bearer    "] {
        let response = me_with_authorization(&app, value).await;
        assert_eq!(response.status(), StatusCode::UNAUTHORIZED, "{value:?}");
        assert_invalid_token(response).await;
    }
    // The scheme is case-insensitive (RFC 7235): the real token still works this way.
    let response = me_with_authorization(&app, &format!("bearer {access}")).await;
    assert_eq!(response.status(), StatusCode::OK);
}

async fn a_missing_token_or_another_scheme_is_missing_token(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let tokens = app.signup_user().await;

    let missing = app.client.get(app.url("/me")).send().await.unwrap();
    let basic = me_with_authorization(&app, "Basic dXNlcjpwYXNzd29yZA==").await;
    let access_as_basic =
        me_with_authorization(&app, &format!("Basic {}", tokens.access_token)).await;

    for response in [missing, basic, access_as_basic] {
        assert_eq!(response.headers()["www-authenticate"], "Bearer");
        assert_problem(response, StatusCode::UNAUTHORIZED, "missing_token").await;
    }
}

async fn hs256_mode_signs_with_the_shared_secret_and_publishes_nothing(backend: Backend) {
    let app = TestApp::spawn_with(backend, &[("LATCHKEY_JWT_SECRET", SECRET)]).await;
    let tokens = app.signup_user().await;

    let jose = header_of(&tokens.access_token);
    assert_eq!(jose["alg"], "HS256", "{jose}");
    assert_eq!(jose["typ"], "at+jwt");
    let kid = jose["kid"].as_str().expect("a kid").to_owned();
    assert_accepted(&app, "an HS256 access token", &tokens.access_token).await;

    let mut validation = Validation::new(Algorithm::HS256);
    validation.set_issuer(&["latchkey"]);
    validation.set_audience(&["latchkey"]);
    let secret_key = DecodingKey::from_secret(SECRET.as_bytes());
    jsonwebtoken::decode::<Value>(&tokens.access_token, &secret_key, &validation)
        .expect("signed with the shared secret");

    // The secret must stay secret: nothing is published.
    assert_eq!(app.jwks().await, json!({"keys": []}));
    let refreshed = app.refresh(&tokens.refresh_token).await;
    assert_eq!(refreshed.status(), StatusCode::OK);

    // A token made with the secret is accepted; one made with another secret is not.
    let mut claims = claims_of(&tokens.access_token);
    claims["jti"] = json!(uuid::Uuid::now_v7().to_string());
    let hs256 = header(Algorithm::HS256, Some("at+jwt"), Some(&kid));
    let control = sign(
        &hs256,
        &claims,
        &EncodingKey::from_secret(SECRET.as_bytes()),
    );
    assert_accepted(&app, "an HS256 control token", &control).await;
    let other_secret = sign(
        &hs256,
        &claims,
        &EncodingKey::from_secret(b"another secret of at least 32 bytes!!"),
    );
    assert_refused(&app, "an HS256 token of another secret", &other_secret).await;
}

async fn hs256_mode_refuses_eddsa_tokens(backend: Backend) {
    // An EdDSA instance first, so that the database holds an Ed25519 key and a live session.
    let eddsa = TestApp::spawn(backend).await;
    let tokens = eddsa.signup_user().await;
    let hs256 = TestApp::spawn_on(eddsa.database.clone(), &[("LATCHKEY_JWT_SECRET", SECRET)]).await;

    assert_accepted(
        &eddsa,
        "an EdDSA token on the EdDSA instance",
        &tokens.access_token,
    )
    .await;
    assert_refused(&hs256, "an EdDSA token in HS256 mode", &tokens.access_token).await;

    // Even under the HS256 key's kid, with the stored Ed25519 key.
    let kid = header_of(&hs256.signup_user().await.access_token)["kid"]
        .as_str()
        .unwrap()
        .to_owned();
    let key = stored_key(&eddsa);
    let claims = claims_of(&tokens.access_token);
    let forged = sign(
        &header(Algorithm::EdDSA, Some("at+jwt"), Some(&kid)),
        &claims,
        &EncodingKey::from_ed_der(&key.private_key),
    );
    assert_refused(&hs256, "an EdDSA token under the HS256 kid", &forged).await;
    // The control: the same claims signed with the secret are accepted there.
    let control = sign(
        &header(Algorithm::HS256, Some("at+jwt"), Some(&kid)),
        &claims,
        &EncodingKey::from_secret(SECRET.as_bytes()),
    );
    assert_accepted(&hs256, "the HS256 control token", &control).await;
}

/// The server remembers the tokens it has verified (the signature is checked once); a token
/// that was accepted many times must still be refused once it expires.
async fn a_token_used_many_times_still_expires(backend: Backend) {
    let app = TestApp::spawn_with(backend, &[("LATCHKEY_ACCESS_TTL", "1")]).await;
    let tokens = app.signup_user().await;
    for _ in 0..3 {
        assert_accepted(&app, "a fresh token", &tokens.access_token).await;
    }
    let exp = claims_of(&tokens.access_token)["exp"].as_i64().unwrap();
    // Past `exp` and the verifier's 5 s leeway for clock differences between instances.
    let wait = exp + 5 + 1 - chrono::Utc::now().timestamp();
    actix_web::rt::time::sleep(std::time::Duration::from_secs(wait.max(0) as u64 + 1)).await;
    assert_invalid_token(app.me(&tokens.access_token).await).await;
}
