//! Passkeys (API.md "Passkeys (WebAuthn)"): registering, listing, renaming and removing
//! them, and logging in with one without naming the account, through a software
//! authenticator that answers as a browser does. And the attacks: replayed and expired
//! ceremonies, a ceremony finished as something else or by someone else, a wrong origin,
//! another account's user handle, a cloned authenticator, guessing under the throttle.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use reqwest::{Method, Response, StatusCode};
use serde_json::{Value, json};

use crate::mfa::{enrolled_user, event_types};
use crate::support::authenticator::{
    BACKED_UP, BACKUP_ELIGIBLE, HandMadeKey, ORIGIN, SoftAuthenticator, USER_PRESENT, USER_VERIFIED,
};
use crate::support::{Backend, PASSWORD, TestApp, Tokens, assert_problem, claims_of, unique_email};

backend_tests!(
    a_passkey_is_registered_and_logs_in_without_an_email,
    a_ceremony_started_on_one_instance_finishes_on_another,
    ceremonies_are_used_once,
    an_expired_ceremony_is_refused,
    a_ceremony_finishes_only_as_what_and_for_whom_it_started,
    a_wrong_origin_is_refused_and_listed_origins_are_not,
    another_accounts_user_handle_logs_in_nobody,
    a_cloned_authenticator_is_refused,
    a_cloned_authenticator_racing_the_original_wins_at_most_once,
    an_assertion_without_user_verification_is_refused,
    a_passkey_that_became_synced_still_logs_in,
    a_login_run_in_another_sites_frame_is_refused,
    a_passkey_login_satisfies_the_second_factor,
    passkeys_are_renamed_and_removed,
    the_only_way_in_is_not_removed,
    passkey_logins_are_throttled_apart_from_passwords,
    open_ceremonies_are_bounded,
    concurrent_finishes_of_one_login_succeed_once,
    malformed_passkey_requests_are_refused_clearly,
    passkeys_are_off_without_a_domain,
    an_account_signs_up_with_a_passkey_and_no_password,
    adding_a_passkey_needs_a_recent_login,
    a_password_reset_removes_passkeys_planted_before_it,
    passkey_signups_count_with_signups_and_lose_a_race_for_the_email,
);

/// `POST` with a bearer token and a JSON body.
async fn post_as(app: &TestApp, token: &str, path: &str, body: &Value) -> Response {
    app.send(Method::POST, path, Some(token), Some(body)).await
}

/// A started ceremony: its id and options.
async fn started(response: Response) -> (String, Value) {
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(response.headers()["cache-control"], "no-store");
    let body: Value = response.json().await.unwrap();
    let id = body["ceremony_id"].as_str().unwrap().to_owned();
    (id, body["options"].clone())
}

async fn start_registration(app: &TestApp, token: &str) -> (String, Value) {
    started(post_as(app, token, "/me/passkeys/register/start", &json!({})).await).await
}

async fn finish_registration(
    app: &TestApp,
    token: &str,
    ceremony_id: &str,
    credential: &Value,
    name: Option<&str>,
) -> Response {
    let body = json!({"ceremony_id": ceremony_id, "credential": credential, "name": name});
    post_as(app, token, "/me/passkeys/register/finish", &body).await
}

/// A registration started, and answered by a new authenticator: its id and credential.
async fn answered_registration(app: &TestApp, token: &str) -> (String, Value) {
    let (ceremony_id, options) = start_registration(app, token).await;
    let credential = SoftAuthenticator::new().register(&options).await;
    (ceremony_id, credential)
}

/// Registers a passkey of `authenticator` for the account; answers the Passkey.
async fn register(app: &TestApp, token: &str, authenticator: &mut SoftAuthenticator) -> Value {
    let (id, options) = start_registration(app, token).await;
    let credential = authenticator.register(&options).await;
    let response = finish_registration(app, token, &id, &credential, Some("Laptop")).await;
    assert_eq!(response.status(), StatusCode::CREATED);
    response.json().await.unwrap()
}

async fn start_login(app: &TestApp) -> (String, Value) {
    started(app.post("/login/passkey/start", &json!({})).await).await
}

async fn finish_login(app: &TestApp, ceremony_id: &str, credential: &Value) -> Response {
    let body = json!({"ceremony_id": ceremony_id, "credential": credential});
    app.post("/login/passkey/finish", &body).await
}

/// A login with the authenticator's passkey, start to finish.
async fn log_in(app: &TestApp, authenticator: &mut SoftAuthenticator) -> Response {
    let (id, options) = start_login(app).await;
    let credential = authenticator.assert(&options).await;
    finish_login(app, &id, &credential).await
}

async fn start_signup(app: &TestApp, email: &str) -> Response {
    app.post("/signup/passkey/start", &json!({"email": email}))
        .await
}

/// Signs up with `authenticator`'s new passkey and no password; answers the response.
async fn passkey_signup(
    app: &TestApp,
    email: &str,
    authenticator: &mut SoftAuthenticator,
) -> Response {
    let (ceremony_id, options) = started(start_signup(app, email).await).await;
    let credential = authenticator.register(&options).await;
    let body = json!({"ceremony_id": ceremony_id, "credential": credential, "name": "Phone"});
    app.post("/signup/passkey/finish", &body).await
}

/// A user with a password and a passkey.
async fn user_with_passkey(app: &TestApp) -> (Tokens, SoftAuthenticator, Value) {
    let tokens = app.signup_user().await;
    let mut authenticator = SoftAuthenticator::new();
    let passkey = register(app, &tokens.access_token, &mut authenticator).await;
    (tokens, authenticator, passkey)
}

/// A user with a password and a hand-made passkey registered with these flags; and its
/// user handle.
async fn user_with_hand_made_key(app: &TestApp, flags: u8) -> (Tokens, HandMadeKey, Vec<u8>) {
    let tokens = app.signup_user().await;
    let token = tokens.access_token.as_str();
    let key = HandMadeKey::new();
    let (ceremony_id, options) = start_registration(app, token).await;
    let credential = key.register(&options, flags);
    let response = finish_registration(app, token, &ceremony_id, &credential, None).await;
    assert_eq!(response.status(), StatusCode::CREATED);
    let handle = user_handle(&tokens.user_id);
    (tokens, key, handle)
}

async fn passkeys_of(app: &TestApp, token: &str) -> Vec<Value> {
    let response = app
        .send(Method::GET, "/me/passkeys", Some(token), None)
        .await;
    assert_eq!(response.status(), StatusCode::OK);
    response.json().await.unwrap()
}

/// The user handle of the account with this id: its UUID's 16 bytes.
fn user_handle(user_id: &str) -> Vec<u8> {
    uuid::Uuid::parse_str(user_id).unwrap().as_bytes().to_vec()
}

/// Asserts a token response for the user, whose tokens say `amr: ["hwk"]`.
async fn assert_logged_in_as(response: Response, user_id: &str) -> Tokens {
    assert_eq!(response.status(), StatusCode::OK);
    let tokens = Tokens::from(response.json::<Value>().await.unwrap());
    assert_eq!(tokens.user_id, user_id);
    let claims = claims_of(&tokens.access_token);
    assert_eq!(claims["amr"], json!(["hwk"]));
    tokens
}

async fn a_passkey_is_registered_and_logs_in_without_an_email(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let tokens = app.signup_user().await;
    let token = tokens.access_token.as_str();

    let (ceremony_id, options) = start_registration(&app, token).await;
    // A discoverable credential, verifying its user, for this relying party and account.
    let selection = &options["authenticatorSelection"];
    assert_eq!(selection["residentKey"], "required");
    assert_eq!(selection["requireResidentKey"], true);
    assert_eq!(selection["userVerification"], "required");
    assert_eq!(options["rp"]["id"], "localhost");
    assert_eq!(options["user"]["name"], tokens.email.as_str());
    assert_eq!(
        options["user"]["id"],
        URL_SAFE_NO_PAD.encode(user_handle(&tokens.user_id))
    );
    assert!(options.get("excludeCredentials").is_none(), "{options}");

    let mut authenticator = SoftAuthenticator::new();
    let credential = authenticator.register(&options).await;
    let response = finish_registration(&app, token, &ceremony_id, &credential, None).await;
    assert_eq!(response.status(), StatusCode::CREATED);
    let passkey: Value = response.json().await.unwrap();
    assert_eq!(passkey["name"], "Passkey");
    assert!(passkey["last_used_at"].is_null());
    assert!(passkey["created_at"].as_str().unwrap().ends_with('Z'));
    let keys = passkeys_of(&app, token).await;
    assert_eq!(keys, vec![passkey.clone()]);

    // The next registration excludes it, so one authenticator does not hold two.
    let (_, options) = start_registration(&app, token).await;
    assert_eq!(options["excludeCredentials"][0]["id"], credential["rawId"]);

    let (ceremony_id, options) = start_login(&app).await;
    assert_eq!(options["allowCredentials"], json!([]));
    assert_eq!(options["userVerification"], "required");
    assert_eq!(options["rpId"], "localhost");
    let assertion = authenticator.assert(&options).await;
    let response = finish_login(&app, &ceremony_id, &assertion).await;
    let session = assert_logged_in_as(response, &tokens.user_id).await;
    assert_eq!(app.me(&session.access_token).await.status(), StatusCode::OK);
    let keys = passkeys_of(&app, token).await;
    assert!(keys[0]["last_used_at"].is_string());

    let events = event_types(&app, token, "passkey_login").await;
    assert!(events.contains(&"passkey_added".to_owned()), "{events:?}");
}

async fn a_ceremony_started_on_one_instance_finishes_on_another(backend: Backend) {
    let first = TestApp::spawn(backend).await;
    let second = TestApp::spawn_on(first.database.clone(), &[]).await;
    let tokens = first.signup_user().await;
    let token = tokens.access_token.as_str();
    let mut authenticator = SoftAuthenticator::new();

    let (ceremony_id, options) = start_registration(&first, token).await;
    let credential = authenticator.register(&options).await;
    let response = finish_registration(&second, token, &ceremony_id, &credential, None).await;
    assert_eq!(response.status(), StatusCode::CREATED);

    let (ceremony_id, options) = start_login(&second).await;
    let assertion = authenticator.assert(&options).await;
    let response = finish_login(&first, &ceremony_id, &assertion).await;
    assert_logged_in_as(response, &tokens.user_id).await;
}

async fn ceremonies_are_used_once(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let (tokens, mut authenticator, _) = user_with_passkey(&app).await;
    let token = tokens.access_token.as_str();

    // A registration's answer, sent again.
    let (ceremony_id, credential) = answered_registration(&app, token).await;
    let first = finish_registration(&app, token, &ceremony_id, &credential, None).await;
    assert_eq!(first.status(), StatusCode::CREATED);
    let again = finish_registration(&app, token, &ceremony_id, &credential, None).await;
    assert_problem(again, StatusCode::BAD_REQUEST, "invalid_ceremony").await;

    // A login's answer, sent again: to the same ceremony, and to a new one (whose challenge
    // it does not carry).
    let (ceremony_id, options) = start_login(&app).await;
    let assertion = authenticator.assert(&options).await;
    let response = finish_login(&app, &ceremony_id, &assertion).await;
    assert_logged_in_as(response, &tokens.user_id).await;
    let replayed = finish_login(&app, &ceremony_id, &assertion).await;
    assert_problem(replayed, StatusCode::BAD_REQUEST, "invalid_ceremony").await;
    let (fresh, _) = start_login(&app).await;
    let replayed = finish_login(&app, &fresh, &assertion).await;
    assert_problem(replayed, StatusCode::UNAUTHORIZED, "invalid_credentials").await;

    // A refused answer uses its ceremony up too.
    let (ceremony_id, options) = start_login(&app).await;
    let mut wrong = authenticator.moved_to("http://localhost:9999");
    let refused = finish_login(&app, &ceremony_id, &wrong.assert(&options).await).await;
    assert_problem(refused, StatusCode::UNAUTHORIZED, "invalid_credentials").await;
    let right = authenticator.assert(&options).await;
    let response = finish_login(&app, &ceremony_id, &right).await;
    assert_problem(response, StatusCode::BAD_REQUEST, "invalid_ceremony").await;
}

async fn an_expired_ceremony_is_refused(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let (tokens, mut authenticator, _) = user_with_passkey(&app).await;
    let (ceremony_id, options) = start_login(&app).await;
    let assertion = authenticator.assert(&options).await;
    // Five minutes pass.
    crate::recovery::execute(
        &app,
        "UPDATE webauthn_ceremonies SET expires_at = created_at",
    );
    let response = finish_login(&app, &ceremony_id, &assertion).await;
    assert_problem(response, StatusCode::BAD_REQUEST, "invalid_ceremony").await;
    let response = log_in(&app, &mut authenticator).await;
    assert_logged_in_as(response, &tokens.user_id).await;
}

async fn a_ceremony_finishes_only_as_what_and_for_whom_it_started(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let (tokens, mut authenticator, _) = user_with_passkey(&app).await;
    let token = tokens.access_token.as_str();
    let stranger = app.signup_user().await;

    // Another account's registration: its ceremony is the owner's alone.
    let (ceremony_id, options) = start_registration(&app, token).await;
    let mut theirs = SoftAuthenticator::new();
    let credential = theirs.register(&options).await;
    let response = finish_registration(
        &app,
        &stranger.access_token,
        &ceremony_id,
        &credential,
        None,
    )
    .await;
    assert_problem(response, StatusCode::BAD_REQUEST, "invalid_ceremony").await;
    assert!(passkeys_of(&app, &stranger.access_token).await.is_empty());

    // A login's ceremony is no registration's, and the other way round.
    let (login_id, options) = start_login(&app).await;
    let assertion = authenticator.assert(&options).await;
    let response = finish_registration(&app, token, &login_id, &assertion, None).await;
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);
    let (register_id, _) = start_registration(&app, token).await;
    let response = finish_login(&app, &register_id, &assertion).await;
    assert_problem(response, StatusCode::BAD_REQUEST, "invalid_ceremony").await;
    let response = finish_login(&app, &login_id, &assertion).await;
    assert_logged_in_as(response, &tokens.user_id).await;
}

async fn a_wrong_origin_is_refused_and_listed_origins_are_not(backend: Backend) {
    let app = TestApp::spawn_with(
        backend,
        &[("LATCHKEY_WEBAUTHN_ORIGINS", "https://app.localhost")],
    )
    .await;
    let tokens = app.signup_user().await;
    let token = tokens.access_token.as_str();

    // A page of another origin (under the same RP id) registers nothing.
    let mut elsewhere = SoftAuthenticator::at("http://localhost:9999");
    let (ceremony_id, options) = start_registration(&app, token).await;
    let credential = elsewhere.register(&options).await;
    let response = finish_registration(&app, token, &ceremony_id, &credential, None).await;
    let problem = assert_problem(response, StatusCode::BAD_REQUEST, "invalid_passkey").await;
    assert!(
        problem["detail"].as_str().unwrap().contains("origin"),
        "{problem}"
    );

    // A listed one does; and a passkey registered there logs in from the public URL's page.
    let mut app_page = SoftAuthenticator::at("https://app.localhost");
    let (ceremony_id, options) = start_registration(&app, token).await;
    let credential = app_page.register(&options).await;
    let response = finish_registration(&app, token, &ceremony_id, &credential, None).await;
    assert_eq!(response.status(), StatusCode::CREATED);
    let mut here = app_page.moved_to(ORIGIN);
    assert_logged_in_as(log_in(&app, &mut here).await, &tokens.user_id).await;

    // Its answer from a phishing page's origin logs in nobody, and the owner is told.
    let mut phished = app_page.moved_to("http://localhost:9999");
    let response = log_in(&app, &mut phished).await;
    assert_problem(response, StatusCode::UNAUTHORIZED, "invalid_credentials").await;
    event_types(&app, token, "passkey_failed").await;
}

async fn another_accounts_user_handle_logs_in_nobody(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let (victim, mut victims, _) = user_with_passkey(&app).await;
    let (_, mut attackers, _) = user_with_passkey(&app).await;

    // The user handle is not signed: the attacker's own valid answer, naming the victim.
    let (ceremony_id, options) = start_login(&app).await;
    let mut assertion = attackers.assert(&options).await;
    assertion["response"]["userHandle"] =
        json!(URL_SAFE_NO_PAD.encode(user_handle(&victim.user_id)));
    let response = finish_login(&app, &ceremony_id, &assertion).await;
    assert_problem(response, StatusCode::UNAUTHORIZED, "invalid_credentials").await;

    // The victim's credential id on the attacker's signature.
    let (ceremony_id, options) = start_login(&app).await;
    let mut assertion = attackers.assert(&options).await;
    let genuine = victims.assert(&options).await;
    for field in ["id", "rawId"] {
        assertion[field] = genuine[field].clone();
    }
    assertion["response"]["userHandle"] = genuine["response"]["userHandle"].clone();
    let response = finish_login(&app, &ceremony_id, &assertion).await;
    assert_problem(response, StatusCode::UNAUTHORIZED, "invalid_credentials").await;
    event_types(&app, &victim.access_token, "passkey_failed").await;
}

async fn a_cloned_authenticator_is_refused(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let tokens = app.signup_user().await;
    let mut key = SoftAuthenticator::counting_signatures();
    register(&app, &tokens.access_token, &mut key).await;
    let mut clone = key.clone();
    assert_logged_in_as(log_in(&app, &mut key).await, &tokens.user_id).await;
    // The clone's counter has not moved past the original's.
    let response = log_in(&app, &mut clone).await;
    assert_problem(response, StatusCode::UNAUTHORIZED, "invalid_credentials").await;
    assert_logged_in_as(log_in(&app, &mut key).await, &tokens.user_id).await;
}

async fn an_assertion_without_user_verification_is_refused(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let (tokens, authenticator, _) = user_with_passkey(&app).await;
    let handle = user_handle(&tokens.user_id);
    let synced = BACKUP_ELIGIBLE | BACKED_UP;
    // Present but not verified (no fingerprint, no PIN): a passkey is not a factor then.
    let (ceremony_id, options) = start_login(&app).await;
    let unverified = USER_PRESENT | synced;
    let assertion = authenticator.assert_with_flags(&options, &handle, unverified);
    let response = finish_login(&app, &ceremony_id, &assertion).await;
    assert_problem(response, StatusCode::UNAUTHORIZED, "invalid_credentials").await;
    // Neither present nor verified.
    let (ceremony_id, options) = start_login(&app).await;
    let assertion = authenticator.assert_with_flags(&options, &handle, synced);
    let response = finish_login(&app, &ceremony_id, &assertion).await;
    assert_problem(response, StatusCode::UNAUTHORIZED, "invalid_credentials").await;
    // The same hand-made assertion, verified, is accepted: only the flag made the difference.
    let (ceremony_id, options) = start_login(&app).await;
    let verified = USER_PRESENT | USER_VERIFIED | synced;
    let assertion = authenticator.assert_with_flags(&options, &handle, verified);
    let response = finish_login(&app, &ceremony_id, &assertion).await;
    assert_logged_in_as(response, &tokens.user_id).await;
}

async fn a_passkey_that_became_synced_still_logs_in(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    // Registered on a device that did not sync its passkeys then.
    let verified = USER_PRESENT | USER_VERIFIED;
    let (tokens, key, handle) = user_with_hand_made_key(&app, verified).await;
    let (ceremony_id, options) = start_login(&app).await;
    let assertion = key.assert(&options, &handle, verified);
    assert_logged_in_as(
        finish_login(&app, &ceremony_id, &assertion).await,
        &tokens.user_id,
    )
    .await;
    // Its owner turned syncing on since (iCloud Keychain): backup-eligible and backed up now.
    let synced = verified | BACKUP_ELIGIBLE | BACKED_UP;
    let (ceremony_id, options) = start_login(&app).await;
    let assertion = key.assert(&options, &handle, synced);
    assert_logged_in_as(
        finish_login(&app, &ceremony_id, &assertion).await,
        &tokens.user_id,
    )
    .await;
}

async fn a_cloned_authenticator_racing_the_original_wins_at_most_once(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let tokens = app.signup_user().await;
    let mut key = SoftAuthenticator::counting_signatures();
    register(&app, &tokens.access_token, &mut key).await;
    for _ in 0..5 {
        let mut clone = key.clone();
        let (first, options) = start_login(&app).await;
        let original = key.assert(&options).await;
        let (second, options) = start_login(&app).await;
        // The same counter value as the original's.
        let cloned = clone.assert(&options).await;
        let (a, b) = futures_util::future::join(
            finish_login(&app, &first, &original),
            finish_login(&app, &second, &cloned),
        )
        .await;
        let won = [a.status(), b.status()]
            .iter()
            .filter(|status| **status == StatusCode::OK)
            .count();
        assert_eq!(won, 1, "{} and {}", a.status(), b.status());
    }
}

async fn a_login_run_in_another_sites_frame_is_refused(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let verified = USER_PRESENT | USER_VERIFIED;
    let (tokens, key, handle) = user_with_hand_made_key(&app, verified).await;
    // The login page, framed by another site that makes its user log in unseen.
    let (ceremony_id, options) = start_login(&app).await;
    let assertion = key.assert_framed(&options, &handle, "https://evil.example");
    let response = finish_login(&app, &ceremony_id, &assertion).await;
    assert_problem(response, StatusCode::UNAUTHORIZED, "invalid_credentials").await;
    let (ceremony_id, options) = start_login(&app).await;
    let assertion = key.assert(&options, &handle, verified);
    assert_logged_in_as(
        finish_login(&app, &ceremony_id, &assertion).await,
        &tokens.user_id,
    )
    .await;
}

async fn a_passkey_login_satisfies_the_second_factor(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let enrolled = enrolled_user(&app).await;
    let token = enrolled.tokens.access_token.as_str();
    let mut authenticator = SoftAuthenticator::new();
    register(&app, token, &mut authenticator).await;
    // The password alone still owes a code.
    let response = app
        .login(&json!({"email": enrolled.tokens.email, "password": PASSWORD}))
        .await;
    assert_problem(response, StatusCode::FORBIDDEN, "mfa_required").await;
    let response = log_in(&app, &mut authenticator).await;
    assert_logged_in_as(response, &enrolled.tokens.user_id).await;
}

async fn passkeys_are_renamed_and_removed(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let (tokens, mut authenticator, passkey) = user_with_passkey(&app).await;
    let token = tokens.access_token.as_str();
    let path = format!("/me/passkeys/{}", passkey["id"].as_str().unwrap());
    let stranger = app.signup_user().await;

    let response = app
        .send(
            Method::PATCH,
            &path,
            Some(token),
            Some(&json!({"name": " Work laptop "})),
        )
        .await;
    assert_eq!(response.status(), StatusCode::OK);
    let renamed: Value = response.json().await.unwrap();
    assert_eq!(renamed["name"], "Work laptop");
    assert_eq!(renamed["id"], passkey["id"]);
    let long = "x".repeat(65);
    let response = app
        .send(
            Method::PATCH,
            &path,
            Some(token),
            Some(&json!({"name": long})),
        )
        .await;
    assert_problem(
        response,
        StatusCode::UNPROCESSABLE_ENTITY,
        "validation_failed",
    )
    .await;

    // Another account's passkey is not there for it; neither is an id that is none.
    let theirs = Some(stranger.access_token.as_str());
    let response = app
        .send(Method::PATCH, &path, theirs, Some(&json!({"name": "mine"})))
        .await;
    assert_problem(response, StatusCode::NOT_FOUND, "not_found").await;
    let response = app.send(Method::DELETE, &path, theirs, None).await;
    assert_problem(response, StatusCode::NOT_FOUND, "not_found").await;
    let response = app
        .send(Method::DELETE, "/me/passkeys/not-an-id", Some(token), None)
        .await;
    assert_problem(response, StatusCode::NOT_FOUND, "not_found").await;

    // An account with a password may remove its only passkey; it logs in no more.
    let response = app.send(Method::DELETE, &path, Some(token), None).await;
    assert_eq!(response.status(), StatusCode::NO_CONTENT);
    assert!(passkeys_of(&app, token).await.is_empty());
    let response = log_in(&app, &mut authenticator).await;
    assert_problem(response, StatusCode::UNAUTHORIZED, "invalid_credentials").await;
    let response = app.send(Method::DELETE, &path, Some(token), None).await;
    assert_problem(response, StatusCode::NOT_FOUND, "not_found").await;
    event_types(&app, token, "passkey_removed").await;
}

async fn the_only_way_in_is_not_removed(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let mut authenticator = SoftAuthenticator::new();
    let response = passkey_signup(&app, &unique_email(), &mut authenticator).await;
    assert_eq!(response.status(), StatusCode::CREATED);
    let tokens = Tokens::from(response.json::<Value>().await.unwrap());
    let token = tokens.access_token.as_str();
    let first = passkeys_of(&app, token).await.remove(0);
    let second = register(&app, token, &mut SoftAuthenticator::new()).await;
    // No password logs in to it, and none fails otherwise than a wrong one.
    for password in [PASSWORD, ""] {
        let body = json!({"email": tokens.email, "password": password});
        let response = app.login(&body).await;
        assert_problem(response, StatusCode::UNAUTHORIZED, "invalid_credentials").await;
    }

    // Of two concurrent removals of its last two passkeys, one wins.
    let paths: Vec<String> = [&first, &second]
        .iter()
        .map(|passkey| format!("/me/passkeys/{}", passkey["id"].as_str().unwrap()))
        .collect();
    let responses = futures_util::future::join_all(
        paths
            .iter()
            .map(|path| app.send(Method::DELETE, path, Some(token), None)),
    )
    .await;
    let mut statuses: Vec<StatusCode> = responses.iter().map(Response::status).collect();
    statuses.sort();
    assert_eq!(statuses, [StatusCode::NO_CONTENT, StatusCode::CONFLICT]);
    let left = passkeys_of(&app, token).await;
    assert_eq!(left.len(), 1);
    let path = format!("/me/passkeys/{}", left[0]["id"].as_str().unwrap());
    let response = app.send(Method::DELETE, &path, Some(token), None).await;
    assert_problem(response, StatusCode::CONFLICT, "last_credential").await;
    if left[0]["id"] == first["id"] {
        assert_logged_in_as(log_in(&app, &mut authenticator).await, &tokens.user_id).await;
    }
}

async fn passkey_logins_are_throttled_apart_from_passwords(backend: Backend) {
    let app = TestApp::spawn_with(backend, &[("LATCHKEY_LOGIN_MAX_FAILURES", "3")]).await;
    let (tokens, mut authenticator, _) = user_with_passkey(&app).await;

    // Whoever guesses the password locks the password out, not the passkey.
    for _ in 0..3 {
        let body = json!({"email": tokens.email, "password": "not the password"});
        assert_eq!(app.login(&body).await.status(), StatusCode::UNAUTHORIZED);
    }
    let body = json!({"email": tokens.email, "password": PASSWORD});
    assert_eq!(
        app.login(&body).await.status(),
        StatusCode::TOO_MANY_REQUESTS
    );
    let response = log_in(&app, &mut authenticator).await;
    assert_logged_in_as(response, &tokens.user_id).await;

    // Refused passkeys count against the account's passkeys.
    let mut phished = authenticator.moved_to("http://localhost:9999");
    for _ in 0..3 {
        let response = log_in(&app, &mut phished).await;
        assert_problem(response, StatusCode::UNAUTHORIZED, "invalid_credentials").await;
    }
    let response = log_in(&app, &mut authenticator).await;
    assert_problem(response, StatusCode::TOO_MANY_REQUESTS, "too_many_attempts").await;
    event_types(&app, &tokens.access_token, "locked_out").await;
}

async fn open_ceremonies_are_bounded(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let (tokens, mut authenticator, _) = user_with_passkey(&app).await;
    // A login in progress is never ended by others starting theirs from the same address:
    // past 32 open ones, a start waits for the oldest to expire.
    let (ceremony_id, options) = start_login(&app).await;
    let assertion = authenticator.assert(&options).await;
    for _ in 0..31 {
        start_login(&app).await;
    }
    let response = app.post("/login/passkey/start", &json!({})).await;
    let problem =
        assert_problem(response, StatusCode::TOO_MANY_REQUESTS, "too_many_attempts").await;
    let _ = problem;
    let response = app
        .post("/signup/passkey/start", &json!({"email": unique_email()}))
        .await;
    let retry_after: u64 = response.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=300).contains(&retry_after), "{retry_after}");
    assert_problem(response, StatusCode::TOO_MANY_REQUESTS, "too_many_attempts").await;
    assert_eq!(app.rows("webauthn_ceremonies"), 32);
    let response = finish_login(&app, &ceremony_id, &assertion).await;
    assert_logged_in_as(response, &tokens.user_id).await;
    // An account's registrations end its own oldest.
    for _ in 0..8 {
        start_registration(&app, &tokens.access_token).await;
    }
    assert_eq!(app.rows("webauthn_ceremonies"), 31 + 5);
}

async fn concurrent_finishes_of_one_login_succeed_once(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let (tokens, mut authenticator, _) = user_with_passkey(&app).await;
    let (ceremony_id, options) = start_login(&app).await;
    let assertion = authenticator.assert(&options).await;
    let responses = futures_util::future::join_all(
        (0..8).map(|_| finish_login(&app, &ceremony_id, &assertion)),
    )
    .await;
    let statuses: Vec<StatusCode> = responses.iter().map(Response::status).collect();
    let won = statuses
        .iter()
        .filter(|status| **status == StatusCode::OK)
        .count();
    assert_eq!(won, 1, "{statuses:?}");
    assert!(
        statuses
            .iter()
            .all(|status| [StatusCode::OK, StatusCode::BAD_REQUEST].contains(status)),
        "{statuses:?}"
    );
    let _ = tokens;
}

async fn malformed_passkey_requests_are_refused_clearly(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let (tokens, mut authenticator, _) = user_with_passkey(&app).await;
    let token = tokens.access_token.as_str();

    let (ceremony_id, credential) = answered_registration(&app, token).await;
    // A bad name, or a credential of the wrong shape, loses nothing: the ceremony stays.
    let response = finish_registration(
        &app,
        token,
        &ceremony_id,
        &credential,
        Some(&"n".repeat(65)),
    )
    .await;
    assert_problem(
        response,
        StatusCode::UNPROCESSABLE_ENTITY,
        "validation_failed",
    )
    .await;
    let body = json!({"ceremony_id": ceremony_id, "credential": {"id": 1}});
    let response = post_as(&app, token, "/me/passkeys/register/finish", &body).await;
    let problem = assert_problem(response, StatusCode::BAD_REQUEST, "malformed_request").await;
    assert!(
        problem["detail"].as_str().unwrap().contains("credential"),
        "{problem}"
    );
    let response = finish_registration(&app, token, &ceremony_id, &credential, Some("Phone")).await;
    assert_eq!(response.status(), StatusCode::CREATED);

    let (ceremony_id, options) = start_login(&app).await;
    let assertion = authenticator.assert(&options).await;
    let response = finish_login(&app, &"x".repeat(10_000), &assertion).await;
    assert_problem(response, StatusCode::BAD_REQUEST, "invalid_ceremony").await;
    let response = app
        .post(
            "/login/passkey/finish",
            &json!({"ceremony_id": ceremony_id}),
        )
        .await;
    assert_problem(response, StatusCode::BAD_REQUEST, "malformed_request").await;
    let mut garbled = assertion.clone();
    garbled["response"]["signature"] = json!("not base64url!");
    let response = finish_login(&app, &ceremony_id, &garbled).await;
    assert_problem(response, StatusCode::BAD_REQUEST, "malformed_request").await;
    let response = finish_login(&app, &ceremony_id, &assertion).await;
    assert_logged_in_as(response, &tokens.user_id).await;

    let response = app
        .send(Method::POST, "/me/passkeys/register/start", None, None)
        .await;
    assert_problem(response, StatusCode::UNAUTHORIZED, "missing_token").await;
}

async fn passkeys_are_off_without_a_domain(backend: Backend) {
    let app =
        TestApp::spawn_with(backend, &[("LATCHKEY_PUBLIC_URL", "http://127.0.0.1:8080")]).await;
    let tokens = app.signup_user().await;
    let response = app.post("/login/passkey/start", &json!({})).await;
    assert_problem(response, StatusCode::NOT_FOUND, "passkeys_unavailable").await;
    let response = post_as(
        &app,
        &tokens.access_token,
        "/me/passkeys/register/start",
        &json!({}),
    )
    .await;
    assert_problem(response, StatusCode::NOT_FOUND, "passkeys_unavailable").await;
    // The rest of the service runs.
    assert_eq!(app.me(&tokens.access_token).await.status(), StatusCode::OK);
}

async fn an_account_signs_up_with_a_passkey_and_no_password(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let email = unique_email();
    let response = start_signup(&app, "not an email").await;
    assert_problem(
        response,
        StatusCode::UNPROCESSABLE_ENTITY,
        "validation_failed",
    )
    .await;

    let response = start_signup(&app, &email).await;
    let (ceremony_id, options) = started(response).await;
    assert_eq!(options["user"]["name"], email.as_str());
    assert_eq!(options["authenticatorSelection"]["residentKey"], "required");
    // Nothing exists before the finish.
    assert_eq!(app.rows("users"), 0);
    let mut authenticator = SoftAuthenticator::new();
    let credential = authenticator.register(&options).await;
    let body = json!({"ceremony_id": ceremony_id, "credential": credential});
    let response = app.post("/signup/passkey/finish", &body).await;
    assert_eq!(response.status(), StatusCode::CREATED);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["user"]["email"], email.as_str());
    assert_eq!(body["user"]["email_verified"], false);
    let tokens = Tokens::from(body);
    assert_eq!(claims_of(&tokens.access_token)["amr"], json!(["hwk"]));
    let token = tokens.access_token.as_str();
    assert_eq!(app.me(token).await.status(), StatusCode::OK);
    let keys = passkeys_of(&app, token).await;
    assert_eq!(keys.len(), 1);
    assert_eq!(keys[0]["name"], "Passkey");
    // Its address is verified by a mailed code, as after POST /signup.
    assert_eq!(app.rows("one_time_codes"), 1);

    // The passkey logs in; no password does.
    assert_logged_in_as(log_in(&app, &mut authenticator).await, &tokens.user_id).await;
    let body = json!({"email": email, "password": PASSWORD});
    let response = app.login(&body).await;
    assert_problem(response, StatusCode::UNAUTHORIZED, "invalid_credentials").await;
    // The email is taken now, and the passkey is the only way in.
    let response = start_signup(&app, &email).await;
    assert_problem(response, StatusCode::CONFLICT, "email_taken").await;
    let path = format!("/me/passkeys/{}", keys[0]["id"].as_str().unwrap());
    let response = app.send(Method::DELETE, &path, Some(token), None).await;
    assert_problem(response, StatusCode::CONFLICT, "last_credential").await;
    let events = event_types(&app, token, "signup").await;
    assert!(events.contains(&"passkey_added".to_owned()), "{events:?}");
}

async fn passkey_signups_count_with_signups_and_lose_a_race_for_the_email(backend: Backend) {
    let app = TestApp::spawn_with(backend, &[("LATCHKEY_SIGNUP_IP_MAX", "2")]).await;
    let email = unique_email();
    let (ceremony_id, options) = started(start_signup(&app, &email).await).await;
    // The address is taken meanwhile, with a password.
    let body = json!({"email": email, "password": PASSWORD});
    assert_eq!(app.signup(&body).await.status(), StatusCode::CREATED);
    let credential = SoftAuthenticator::new().register(&options).await;
    let body = json!({"ceremony_id": ceremony_id, "credential": credential});
    let response = app.post("/signup/passkey/finish", &body).await;
    assert_problem(response, StatusCode::CONFLICT, "email_taken").await;
    assert_eq!(app.rows("passkeys"), 0);
    // Two signups from this address within the hour, of either kind: the third waits.
    let response = start_signup(&app, &unique_email()).await;
    assert_problem(response, StatusCode::TOO_MANY_REQUESTS, "too_many_attempts").await;
}

async fn adding_a_passkey_needs_a_recent_login(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let tokens = app.signup_user().await;
    // The session logged in long ago (a stolen token, a device left unlocked); the only one.
    crate::recovery::execute(
        &app,
        "UPDATE sessions SET created_at = '2000-01-01 00:00:00'",
    );
    let response = post_as(
        &app,
        &tokens.access_token,
        "/me/passkeys/register/start",
        &json!({}),
    )
    .await;
    assert_problem(response, StatusCode::FORBIDDEN, "reauthentication_required").await;
    // Logged in again, the owner adds it.
    let fresh = app.login_user(&tokens.email).await;
    register(&app, &fresh.access_token, &mut SoftAuthenticator::new()).await;
}

async fn a_password_reset_removes_passkeys_planted_before_it(backend: Backend) {
    let sink = crate::support::mail_sink::MailSink::start();
    let app = crate::recovery::mail_app(backend, &sink, &[]).await;
    // Someone signs up with the owner's address first and plants a passkey.
    let email = unique_email();
    let signed_up = crate::recovery::sign_up(&app, &email).await;
    let token = signed_up["access_token"].as_str().unwrap();
    let mut planted = SoftAuthenticator::new();
    register(&app, token, &mut planted).await;
    // The owner takes the address back with a reset.
    let forgot = app.post("/password/forgot", &json!({"email": email})).await;
    assert_eq!(forgot.status(), StatusCode::ACCEPTED);
    let mail = crate::recovery::mail_about(&sink, &email, "reset", 1).await;
    let body = json!({"email": email, "code": mail.code(),
                      "new_password": crate::recovery::NEW_PASSWORD});
    let response = app.post("/password/reset", &body).await;
    assert_eq!(response.status(), StatusCode::NO_CONTENT);
    let response = log_in(&app, &mut planted).await;
    assert_problem(response, StatusCode::UNAUTHORIZED, "invalid_credentials").await;
    assert_eq!(app.rows("passkeys"), 0);
    let owner = app
        .login(&json!({"email": email, "password": crate::recovery::NEW_PASSWORD}))
        .await;
    let owner = Tokens::from(owner.json::<Value>().await.unwrap());
    event_types(&app, &owner.access_token, "passkey_removed").await;
}
