//! The second factor (API.md "Second factor: TOTP and recovery codes"): enrolment, login
//! with a TOTP code or a recovery code, replay, drift, wrong codes, the throttle, disabling,
//! and a password reset that does not bypass it. Codes are computed here from the secret,
//! by an RFC 6238 implementation of the test's own, checked against the RFC's vectors.

use std::time::{SystemTime, UNIX_EPOCH};

use hmac::{Hmac, Mac};
use reqwest::{Method, Response, StatusCode};
use serde_json::{Value, json};

use crate::support::cli::{assert_one_line_failure, assert_success, run_on};
use crate::support::mail_sink::MailSink;
use crate::support::{Backend, PASSWORD, TestApp, Tokens, assert_problem, claims_of};

backend_tests!(
    totp_is_enrolled_in_two_steps_and_shown_on_me,
    login_asks_for_the_second_factor_and_tokens_say_how,
    a_totp_code_is_accepted_once,
    concurrent_logins_with_one_code_succeed_once,
    one_step_of_drift_either_side_is_accepted,
    recovery_codes_log_in_once_each,
    five_wrong_codes_end_the_mfa_token,
    code_guesses_count_against_the_account_throttle,
    disabling_needs_the_password_and_a_code,
    a_password_reset_does_not_bypass_the_second_factor,
    a_password_reset_buys_no_more_code_guesses,
    secrets_and_recovery_codes_are_not_stored_in_the_clear,
    keys_encrypt_seals_secrets_stored_plain,
    an_operator_removes_a_lost_factor,
    concurrent_wrong_codes_end_the_token_at_five,
    a_confirmation_racing_a_new_enrolment_turns_on_the_secret_it_checked,
    a_login_racing_the_confirmation_gets_no_session_after_it,
    malformed_second_factor_requests_are_refused_clearly,
);

const STEP: u64 = 30;
/// `openssl rand -base64 32`.
const ENCRYPTION_KEY: &str = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=";

/// RFC 4648 base32 (no padding) to bytes.
fn base32_decode(text: &str) -> Vec<u8> {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";
    let (mut bits, mut value, mut out) = (0u32, 0u32, Vec::new());
    for c in text.bytes() {
        let index = ALPHABET.iter().position(|&a| a == c).expect("base32") as u32;
        value = (value << 5) | index;
        bits += 5;
        if bits >= 8 {
            bits -= 8;
            out.push((value >> bits) as u8);
            value &= (1 << bits) - 1;
        }
    }
    out
}

/// The RFC 6238 code (HMAC-SHA-1) of `secret` for time step `step`, with `digits` digits.
fn hotp(secret: &[u8], step: u64, digits: u32) -> String {
    let mut mac = Hmac::<sha1::Sha1>::new_from_slice(secret).unwrap();
    mac.update(&step.to_be_bytes());
    let hash = mac.finalize().into_bytes();
    let offset = usize::from(hash[19] & 0x0f);
    let binary = u32::from_be_bytes(hash[offset..offset + 4].try_into().unwrap()) & 0x7fff_ffff;
    format!(
        "{:0width$}",
        binary % 10u32.pow(digits),
        width = digits as usize
    )
}

#[test]
fn the_tests_codes_are_those_of_rfc_6238() {
    let secret = b"12345678901234567890";
    for (time, code) in [
        (59, "94287082"),
        (1_111_111_109, "07081804"),
        (1_111_111_111, "14050471"),
        (1_234_567_890, "89005924"),
        (2_000_000_000, "69279037"),
        (20_000_000_000, "65353130"),
    ] {
        assert_eq!(hotp(secret, time / STEP, 8), code, "at {time}");
    }
    assert_eq!(base32_decode("GEZDGNBVGY3TQOJQ"), b"1234567890");
}

fn current_step() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
        / STEP
}

/// A user with an enrolled (confirmed) factor: its secret, the step its confirming code was
/// for, and its recovery codes.
pub(crate) struct Enrolled {
    pub(crate) tokens: Tokens,
    secret: Vec<u8>,
    confirmed_step: u64,
    recovery_codes: Vec<String>,
}

impl Enrolled {
    /// The code of the step after the one used to confirm: accepted (one step of drift) and
    /// not used yet.
    fn next_code(&self) -> String {
        hotp(&self.secret, self.confirmed_step + 1, 6)
    }

    /// A code of the right shape that is not [`Enrolled::next_code`].
    fn wrong_code(&self) -> &'static str {
        if self.next_code() == "000000" {
            "000001"
        } else {
            "000000"
        }
    }
}

async fn enrol(app: &TestApp, token: &str, password: &str) -> Response {
    let body = json!({"password": password});
    app.send(Method::POST, "/me/mfa/totp", Some(token), Some(&body))
        .await
}

async fn confirm(app: &TestApp, token: &str, code: &str) -> Response {
    let body = json!({"code": code});
    app.send(
        Method::POST,
        "/me/mfa/totp/confirm",
        Some(token),
        Some(&body),
    )
    .await
}

async fn disable(app: &TestApp, token: &str, password: &str, code: &str) -> Response {
    let body = json!({"password": password, "code": code});
    app.send(Method::DELETE, "/me/mfa/totp", Some(token), Some(&body))
        .await
}

/// Starts an enrolment; answers the secret.
async fn start_enrolment(app: &TestApp, token: &str) -> Vec<u8> {
    let response = enrol(app, token, PASSWORD).await;
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(response.headers()["cache-control"], "no-store");
    let body: Value = response.json().await.unwrap();
    base32_decode(body["secret"].as_str().unwrap())
}

/// Signs up a user and turns TOTP on with the current step's code.
pub(crate) async fn enrolled_user(app: &TestApp) -> Enrolled {
    let tokens = app.signup_user().await;
    let secret = start_enrolment(app, &tokens.access_token).await;
    let step = current_step();
    let response = confirm(app, &tokens.access_token, &hotp(&secret, step, 6)).await;
    assert_eq!(response.status(), StatusCode::OK);
    let body: Value = response.json().await.unwrap();
    let recovery_codes = body["recovery_codes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|code| code.as_str().unwrap().to_owned())
        .collect();
    Enrolled {
        tokens,
        secret,
        confirmed_step: step,
        recovery_codes,
    }
}

/// Logs in with the password; asserts `mfa_required` and answers the `mfa_token`.
async fn mfa_token(app: &TestApp, email: &str, password: &str) -> String {
    let response = app
        .login(&json!({"email": email, "password": password}))
        .await;
    let problem = assert_problem(response, StatusCode::FORBIDDEN, "mfa_required").await;
    problem["mfa_token"].as_str().unwrap().to_owned()
}

async fn login_mfa(app: &TestApp, body: &Value) -> Response {
    app.post("/login/mfa", body).await
}

async fn with_code(app: &TestApp, token: &str, code: &str) -> Response {
    login_mfa(app, &json!({"mfa_token": token, "code": code})).await
}

async fn with_recovery_code(app: &TestApp, token: &str, code: &str) -> Response {
    login_mfa(app, &json!({"mfa_token": token, "recovery_code": code})).await
}

/// The types of the user's events, newest first, once `expected` is among them (refusals are
/// recorded just after their answer).
pub(crate) async fn event_types(app: &TestApp, token: &str, expected: &str) -> Vec<String> {
    for _ in 0..100 {
        let response = app.send(Method::GET, "/me/events", Some(token), None).await;
        assert_eq!(response.status(), StatusCode::OK);
        let body: Value = response.json().await.unwrap();
        let types: Vec<String> = body["events"]
            .as_array()
            .unwrap()
            .iter()
            .map(|event| event["type"].as_str().unwrap().to_owned())
            .collect();
        if types.iter().any(|kind| kind == expected) {
            return types;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    panic!("no {expected} event");
}

async fn me(app: &TestApp, token: &str) -> Value {
    let response = app.me(token).await;
    assert_eq!(response.status(), StatusCode::OK);
    response.json().await.unwrap()
}

async fn totp_is_enrolled_in_two_steps_and_shown_on_me(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let tokens = app.signup_user().await;
    let token = tokens.access_token.as_str();
    assert_eq!(tokens.body["user"]["mfa"], json!([]));

    assert_problem(
        enrol(&app, token, "not the password").await,
        StatusCode::UNAUTHORIZED,
        "invalid_credentials",
    )
    .await;
    assert_problem(
        confirm(&app, token, "123456").await,
        StatusCode::CONFLICT,
        "mfa_not_pending",
    )
    .await;

    let response = enrol(&app, token, PASSWORD).await;
    assert_eq!(response.status(), StatusCode::OK);
    let body: Value = response.json().await.unwrap();
    let secret_text = body["secret"].as_str().unwrap();
    let secret = base32_decode(secret_text);
    assert_eq!(secret.len(), 20, "160 bits");
    let uri = body["otpauth_uri"].as_str().unwrap();
    let account = tokens.email.replace('@', "%40");
    assert_eq!(
        uri,
        format!("otpauth://totp/Latchkey:{account}?secret={secret_text}&issuer=Latchkey")
    );
    let svg = body["qr_svg"].as_str().unwrap();
    assert!(svg.contains("<svg") && svg.ends_with("</svg>"), "{svg}");

    // Pending: nothing changes for logins yet, and a new enrolment replaces the secret.
    assert_eq!(me(&app, token).await["mfa"], json!([]));
    let replaced = start_enrolment(&app, token).await;
    assert_ne!(replaced, secret);
    let step = current_step();
    assert_problem(
        confirm(&app, token, &hotp(&secret, step, 6)).await,
        StatusCode::BAD_REQUEST,
        "invalid_mfa_code",
    )
    .await;

    let response = confirm(&app, token, &hotp(&replaced, step, 6)).await;
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(response.headers()["cache-control"], "no-store");
    let body: Value = response.json().await.unwrap();
    let codes = body["recovery_codes"].as_array().unwrap();
    assert_eq!(codes.len(), 10);
    let mut distinct: Vec<&str> = codes.iter().map(|code| code.as_str().unwrap()).collect();
    distinct.sort();
    distinct.dedup();
    assert_eq!(distinct.len(), 10);
    for code in &distinct {
        assert_eq!(code.len(), 11, "{code}");
        assert_eq!(&code[5..6], "-", "{code}");
    }

    assert_eq!(me(&app, token).await["mfa"], json!(["totp"]));
    assert_problem(
        enrol(&app, token, PASSWORD).await,
        StatusCode::CONFLICT,
        "mfa_already_enabled",
    )
    .await;
    assert_problem(
        confirm(&app, token, &hotp(&replaced, step + 1, 6)).await,
        StatusCode::CONFLICT,
        "mfa_already_enabled",
    )
    .await;
    let types = event_types(&app, token, "mfa_enabled").await;
    assert_eq!(types[0], "mfa_enabled");
    // The wrong code at confirmation was recorded too.
    event_types(&app, token, "mfa_failed").await;
}

async fn login_asks_for_the_second_factor_and_tokens_say_how(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let user = enrolled_user(&app).await;
    assert_eq!(claims_of(&user.tokens.access_token)["amr"], json!(["pwd"]));
    let sessions_before = app.rows("sessions");

    let token = mfa_token(&app, &user.tokens.email, PASSWORD).await;
    assert!(token.len() >= 40, "{token}");
    assert_eq!(
        app.rows("sessions"),
        sessions_before,
        "no session before the second factor"
    );
    // A wrong password is still just that.
    let wrong = app
        .login(&json!({"email": user.tokens.email, "password": "not the password"}))
        .await;
    assert_problem(wrong, StatusCode::UNAUTHORIZED, "invalid_credentials").await;

    let response = with_code(&app, &token, &user.next_code()).await;
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(response.headers()["cache-control"], "no-store");
    let tokens = Tokens::from(response.json::<Value>().await.unwrap());
    assert_eq!(tokens.user_id, user.tokens.user_id);
    assert_eq!(tokens.body["user"]["mfa"], json!(["totp"]));
    assert_eq!(
        claims_of(&tokens.access_token)["amr"],
        json!(["pwd", "otp"])
    );
    // The session keeps what its login proved.
    let refreshed = app.refresh(&tokens.refresh_token).await;
    assert_eq!(refreshed.status(), StatusCode::OK);
    let refreshed = Tokens::from(refreshed.json::<Value>().await.unwrap());
    assert_eq!(
        claims_of(&refreshed.access_token)["amr"],
        json!(["pwd", "otp"])
    );

    // The token is single use, whatever comes with it.
    let again = with_recovery_code(&app, &token, &user.recovery_codes[0]).await;
    assert_problem(again, StatusCode::UNAUTHORIZED, "invalid_mfa_token").await;
    let made_up = with_code(&app, "bm90IGEgdG9rZW4", &user.next_code()).await;
    assert_problem(made_up, StatusCode::UNAUTHORIZED, "invalid_mfa_token").await;
    let types = event_types(&app, &tokens.access_token, "login").await;
    assert_eq!(types[0], "login");
}

async fn a_totp_code_is_accepted_once(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let user = enrolled_user(&app).await;
    let email = &user.tokens.email;
    // The code that confirmed the factor cannot log in.
    let token = mfa_token(&app, email, PASSWORD).await;
    let confirming = hotp(&user.secret, user.confirmed_step, 6);
    let replay = with_code(&app, &token, &confirming).await;
    assert_problem(replay, StatusCode::BAD_REQUEST, "invalid_mfa_code").await;
    // The token survives a wrong code; the next step's code logs in...
    assert_eq!(
        with_code(&app, &token, &user.next_code()).await.status(),
        StatusCode::OK
    );
    // ...once: neither it nor an older one works again.
    let token = mfa_token(&app, email, PASSWORD).await;
    for code in [user.next_code(), confirming] {
        let replay = with_code(&app, &token, &code).await;
        assert_problem(replay, StatusCode::BAD_REQUEST, "invalid_mfa_code").await;
    }
}

async fn concurrent_logins_with_one_code_succeed_once(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let user = enrolled_user(&app).await;
    let email = &user.tokens.email;
    let mut tokens = Vec::new();
    for _ in 0..4 {
        tokens.push(mfa_token(&app, email, PASSWORD).await);
    }
    let code = user.next_code();
    let attempts = tokens.iter().map(|token| with_code(&app, token, &code));
    let statuses: Vec<StatusCode> = futures_util::future::join_all(attempts)
        .await
        .iter()
        .map(Response::status)
        .collect();
    let won = statuses.iter().filter(|s| **s == StatusCode::OK).count();
    assert_eq!(won, 1, "{statuses:?}");
    assert!(
        statuses
            .iter()
            .all(|s| *s == StatusCode::OK || *s == StatusCode::BAD_REQUEST),
        "{statuses:?}"
    );
}

async fn one_step_of_drift_either_side_is_accepted(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    // One step behind, one ahead: accepted. Two: refused.
    for (offset, accepted) in [(-1i64, true), (1, true), (-2, false), (2, false)] {
        let tokens = app.signup_user().await;
        let secret = start_enrolment(&app, &tokens.access_token).await;
        let step = current_step().checked_add_signed(offset).unwrap();
        let response = confirm(&app, &tokens.access_token, &hotp(&secret, step, 6)).await;
        if accepted {
            assert_eq!(response.status(), StatusCode::OK, "offset {offset}");
        } else {
            assert_problem(response, StatusCode::BAD_REQUEST, "invalid_mfa_code").await;
        }
    }
}

async fn recovery_codes_log_in_once_each(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let user = enrolled_user(&app).await;
    let other = enrolled_user(&app).await;
    let email = &user.tokens.email;
    let first = &user.recovery_codes[0];

    // Another account's code is no code of this one.
    let token = mfa_token(&app, email, PASSWORD).await;
    let foreign = with_recovery_code(&app, &token, &other.recovery_codes[0]).await;
    assert_problem(foreign, StatusCode::BAD_REQUEST, "invalid_mfa_code").await;
    // Typed loosely: lower case, without its hyphen.
    let typed = first.replace('-', "").to_lowercase();
    let response = with_recovery_code(&app, &token, &typed).await;
    assert_eq!(response.status(), StatusCode::OK);
    let tokens = Tokens::from(response.json::<Value>().await.unwrap());
    assert_eq!(
        claims_of(&tokens.access_token)["amr"],
        json!(["pwd", "otp"])
    );
    event_types(&app, &tokens.access_token, "recovery_code_used").await;

    let token = mfa_token(&app, email, PASSWORD).await;
    let used = with_recovery_code(&app, &token, first).await;
    assert_problem(used, StatusCode::BAD_REQUEST, "invalid_mfa_code").await;
    let second = with_recovery_code(&app, &token, &user.recovery_codes[1]).await;
    assert_eq!(second.status(), StatusCode::OK);
    // A recovery code is not a TOTP code, nor the other way round.
    let token = mfa_token(&app, email, PASSWORD).await;
    let as_code = with_code(&app, &token, &user.recovery_codes[2]).await;
    assert_problem(as_code, StatusCode::BAD_REQUEST, "invalid_mfa_code").await;
    let as_recovery = with_recovery_code(&app, &token, &user.next_code()).await;
    assert_problem(as_recovery, StatusCode::BAD_REQUEST, "invalid_mfa_code").await;
}

async fn five_wrong_codes_end_the_mfa_token(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let user = enrolled_user(&app).await;
    let token = mfa_token(&app, &user.tokens.email, PASSWORD).await;
    let right = user.next_code();
    let wrong = user.wrong_code();
    for _ in 0..5 {
        let response = with_code(&app, &token, wrong).await;
        assert_problem(response, StatusCode::BAD_REQUEST, "invalid_mfa_code").await;
    }
    let ended = with_code(&app, &token, &right).await;
    assert_problem(ended, StatusCode::UNAUTHORIZED, "invalid_mfa_token").await;
    let types = event_types(&app, &user.tokens.access_token, "mfa_failed").await;
    let failed = types.iter().filter(|kind| *kind == "mfa_failed").count();
    assert!(failed >= 1, "{types:?}");
    // A new login still works with the code, which the ended token did not use up.
    let token = mfa_token(&app, &user.tokens.email, PASSWORD).await;
    assert_eq!(
        with_code(&app, &token, &right).await.status(),
        StatusCode::OK
    );
}

async fn code_guesses_count_against_the_account_throttle(backend: Backend) {
    let app = TestApp::spawn_with(backend, &[("LATCHKEY_LOGIN_MAX_FAILURES", "3")]).await;
    let user = enrolled_user(&app).await;
    let email = &user.tokens.email;
    let right = user.next_code();
    let wrong = user.wrong_code();
    // Right passwords do not count: many logins, no lockout.
    for _ in 0..4 {
        mfa_token(&app, email, PASSWORD).await;
    }
    let waiting = mfa_token(&app, email, PASSWORD).await;
    // Each new token gives no new guesses: wrong codes count for the account.
    for _ in 0..3 {
        let token = mfa_token(&app, email, PASSWORD).await;
        let response = with_code(&app, &token, wrong).await;
        assert_problem(response, StatusCode::BAD_REQUEST, "invalid_mfa_code").await;
    }
    // Locked out: the right code with a token got before, and the right password.
    let throttled = with_code(&app, &waiting, &right).await;
    assert!(throttled.headers().contains_key("retry-after"));
    assert_problem(
        throttled,
        StatusCode::TOO_MANY_REQUESTS,
        "too_many_attempts",
    )
    .await;
    let locked = app
        .login(&json!({"email": email, "password": PASSWORD}))
        .await;
    assert_problem(locked, StatusCode::TOO_MANY_REQUESTS, "too_many_attempts").await;
}

async fn disabling_needs_the_password_and_a_code(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let plain = app.signup_user().await;
    assert_problem(
        disable(&app, &plain.access_token, PASSWORD, "123456").await,
        StatusCode::CONFLICT,
        "mfa_not_enabled",
    )
    .await;

    // With a TOTP code.
    let user = enrolled_user(&app).await;
    let token = &user.tokens.access_token;
    let pending_login = mfa_token(&app, &user.tokens.email, PASSWORD).await;
    assert_problem(
        disable(&app, token, "not the password", &user.next_code()).await,
        StatusCode::UNAUTHORIZED,
        "invalid_credentials",
    )
    .await;
    let wrong = user.wrong_code();
    assert_problem(
        disable(&app, token, PASSWORD, wrong).await,
        StatusCode::BAD_REQUEST,
        "invalid_mfa_code",
    )
    .await;
    let response = disable(&app, token, PASSWORD, &user.next_code()).await;
    assert_eq!(response.status(), StatusCode::NO_CONTENT);
    assert_eq!(me(&app, token).await["mfa"], json!([]));
    event_types(&app, token, "mfa_disabled").await;
    // Logins need the password alone again; a login that was waiting for its code has ended.
    let login = app
        .login(&json!({"email": user.tokens.email, "password": PASSWORD}))
        .await;
    assert_eq!(login.status(), StatusCode::OK);
    let body: Value = login.json().await.unwrap();
    assert_eq!(
        claims_of(body["access_token"].as_str().unwrap())["amr"],
        json!(["pwd"])
    );
    let stale = with_recovery_code(&app, &pending_login, &user.recovery_codes[0]).await;
    assert_problem(stale, StatusCode::UNAUTHORIZED, "invalid_mfa_token").await;

    // With a recovery code; the others go with the factor.
    let user = enrolled_user(&app).await;
    let token = &user.tokens.access_token;
    let response = disable(&app, token, PASSWORD, &user.recovery_codes[3]).await;
    assert_eq!(response.status(), StatusCode::NO_CONTENT);
    let types = event_types(&app, token, "mfa_disabled").await;
    assert!(
        types.contains(&"recovery_code_used".to_owned()),
        "{types:?}"
    );
    assert_eq!(app.rows("recovery_codes"), 0);
    assert_eq!(app.rows("totp_factors"), 0);
}

async fn a_password_reset_does_not_bypass_the_second_factor(backend: Backend) {
    let sink = MailSink::start();
    let app = crate::recovery::mail_app(backend, &sink, &[]).await;
    let user = enrolled_user(&app).await;
    let email = &user.tokens.email;
    let before_reset = mfa_token(&app, email, PASSWORD).await;
    let forgot = app.post("/password/forgot", &json!({"email": email})).await;
    assert_eq!(forgot.status(), StatusCode::ACCEPTED);
    let mail = crate::recovery::mail_about(&sink, email, "reset", 1).await;
    let new_password = crate::recovery::NEW_PASSWORD;
    let body = json!({"email": email, "code": mail.code(), "new_password": new_password});
    let reset = app.post("/password/reset", &body).await;
    assert_eq!(reset.status(), StatusCode::NO_CONTENT);

    // The new password still owes the second factor; a login begun before the reset ended.
    let token = mfa_token(&app, email, new_password).await;
    let stale = with_code(&app, &before_reset, &user.next_code()).await;
    assert_problem(stale, StatusCode::UNAUTHORIZED, "invalid_mfa_token").await;
    let response = with_code(&app, &token, &user.next_code()).await;
    assert_eq!(response.status(), StatusCode::OK);
}

async fn a_password_reset_buys_no_more_code_guesses(backend: Backend) {
    let sink = MailSink::start();
    let env = [("LATCHKEY_LOGIN_MAX_FAILURES", "3")];
    let app = crate::recovery::mail_app(backend, &sink, &env).await;
    let user = enrolled_user(&app).await;
    let email = &user.tokens.email;
    let right = user.next_code();
    let wrong = user.wrong_code();
    for _ in 0..3 {
        let token = mfa_token(&app, email, PASSWORD).await;
        let response = with_code(&app, &token, wrong).await;
        assert_problem(response, StatusCode::BAD_REQUEST, "invalid_mfa_code").await;
    }
    // Whoever reads the mailbox resets the password: the password lockout ends...
    let forgot = app.post("/password/forgot", &json!({"email": email})).await;
    assert_eq!(forgot.status(), StatusCode::ACCEPTED);
    let mail = crate::recovery::mail_about(&sink, email, "reset", 1).await;
    let new_password = crate::recovery::NEW_PASSWORD;
    let body = json!({"email": email, "code": mail.code(), "new_password": new_password});
    let reset = app.post("/password/reset", &body).await;
    assert_eq!(reset.status(), StatusCode::NO_CONTENT);
    let token = mfa_token(&app, email, new_password).await;
    // ...but the codes guessed still count: no new guess, right or wrong, is judged.
    for code in [wrong, right.as_str()] {
        let refused = with_code(&app, &token, code).await;
        assert_problem(refused, StatusCode::TOO_MANY_REQUESTS, "too_many_attempts").await;
    }
}

async fn secrets_and_recovery_codes_are_not_stored_in_the_clear(backend: Backend) {
    let key = ("LATCHKEY_KEY_ENCRYPTION_KEY", ENCRYPTION_KEY);
    let app = TestApp::spawn_with(backend, &[key]).await;
    let user = enrolled_user(&app).await;
    let (secrets, hashes) = app
        .db
        .run_now(|conn| {
            use diesel::prelude::*;
            use latchkey::db::schema::{recovery_codes, totp_factors};
            let secrets: Vec<Vec<u8>> = totp_factors::table
                .select(totp_factors::secret)
                .load(conn)?;
            let hashes: Vec<Vec<u8>> = recovery_codes::table
                .select(recovery_codes::code_hash)
                .load(conn)?;
            Ok((secrets, hashes))
        })
        .unwrap();
    let contains =
        |haystack: &[u8], needle: &[u8]| haystack.windows(needle.len()).any(|w| w == needle);
    assert_eq!(secrets.len(), 1);
    assert!(!contains(&secrets[0], &user.secret), "the secret is sealed");
    assert_eq!(hashes.len(), 10);
    for code in &user.recovery_codes {
        let plain = code.replace('-', "");
        assert!(hashes.iter().all(|hash| !contains(hash, plain.as_bytes())));
    }
    // Sealed, it still works.
    let token = mfa_token(&app, &user.tokens.email, PASSWORD).await;
    assert_eq!(
        with_code(&app, &token, &user.next_code()).await.status(),
        StatusCode::OK
    );
}

/// The TOTP secrets as stored.
fn stored_secrets(app: &TestApp) -> Vec<Vec<u8>> {
    app.db
        .run_now(|conn| {
            use diesel::prelude::*;
            use latchkey::db::schema::totp_factors;
            Ok(totp_factors::table
                .select(totp_factors::secret)
                .load(conn)?)
        })
        .unwrap()
}

async fn keys_encrypt_seals_secrets_stored_plain(backend: Backend) {
    let before = TestApp::spawn(backend).await;
    let user = enrolled_user(&before).await;
    let plain = stored_secrets(&before);
    assert_eq!(
        plain,
        std::slice::from_ref(&user.secret),
        "plain without a key"
    );
    let key = ("LATCHKEY_KEY_ENCRYPTION_KEY", ENCRYPTION_KEY);
    let output = run_on(&before.database, &[key], &["keys", "encrypt"]).await;
    assert!(
        assert_success(&output).ends_with("encrypted 1 TOTP secret\n"),
        "{output:?}"
    );
    let sealed = stored_secrets(&before);
    assert!(sealed[0].starts_with(b"latchkey-sealed-v1:"));
    // Opened with the key, the secret makes the same codes.
    let after = TestApp::spawn_on(before.database.clone(), &[key]).await;
    let token = mfa_token(&after, &user.tokens.email, PASSWORD).await;
    assert_eq!(
        with_code(&after, &token, &user.next_code()).await.status(),
        StatusCode::OK
    );
}

async fn an_operator_removes_a_lost_factor(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let user = enrolled_user(&app).await;
    let email = &user.tokens.email;
    let waiting = mfa_token(&app, email, PASSWORD).await;
    let upper = email.to_uppercase();
    let output = app.cli(&["user", "reset-mfa", "--email", &upper]).await;
    assert_eq!(
        assert_success(&output),
        format!("removed the second factor of {email}; it logs in with the password alone\n")
    );
    let login = app
        .login(&json!({"email": email, "password": PASSWORD}))
        .await;
    assert_eq!(login.status(), StatusCode::OK);
    let stale = with_code(&app, &waiting, &user.next_code()).await;
    assert_problem(stale, StatusCode::UNAUTHORIZED, "invalid_mfa_token").await;
    let token = &user.tokens.access_token;
    assert_eq!(me(&app, token).await["mfa"], json!([]));
    event_types(&app, token, "mfa_disabled").await;
    // The owner can set it up anew.
    start_enrolment(&app, token).await;

    let again = app.cli(&["user", "reset-mfa", "--email", email]).await;
    assert_eq!(
        assert_success(&again),
        format!("{email} has no second factor; nothing changed\n")
    );
    let unknown = app
        .cli(&["user", "reset-mfa", "--email", "nobody@example.com"])
        .await;
    assert!(assert_one_line_failure(&unknown).contains("no user with email"));
}

async fn concurrent_wrong_codes_end_the_token_at_five(backend: Backend) {
    let app = TestApp::spawn_with(backend, &[("LATCHKEY_LOGIN_MAX_FAILURES", "100")]).await;
    let user = enrolled_user(&app).await;
    let token = mfa_token(&app, &user.tokens.email, PASSWORD).await;
    let right: u32 = user.next_code().parse().unwrap();
    let wrong: Vec<String> = (1..=20)
        .map(|n| format!("{:06}", (right + n) % 1_000_000))
        .collect();
    let attempts = wrong.iter().map(|code| with_code(&app, &token, code));
    let statuses: Vec<StatusCode> = futures_util::future::join_all(attempts)
        .await
        .iter()
        .map(Response::status)
        .collect();
    let judged = statuses
        .iter()
        .filter(|s| **s == StatusCode::BAD_REQUEST)
        .count();
    assert!(
        judged <= 5,
        "{judged} wrong codes judged on one token: {statuses:?}"
    );
    assert!(
        statuses
            .iter()
            .all(|s| *s == StatusCode::BAD_REQUEST || *s == StatusCode::UNAUTHORIZED),
        "{statuses:?}"
    );
    let ended = with_code(&app, &token, &user.next_code()).await;
    assert_problem(ended, StatusCode::UNAUTHORIZED, "invalid_mfa_token").await;
}

async fn a_confirmation_racing_a_new_enrolment_turns_on_the_secret_it_checked(backend: Backend) {
    let app = TestApp::spawn_with(backend, &[("LATCHKEY_SIGNUP_IP_MAX", "1000")]).await;
    for delay in 0..15u64 {
        let tokens = app.signup_user().await;
        let token = tokens.access_token.as_str();
        let checked = start_enrolment(&app, token).await;
        let step = current_step();
        let code = hotp(&checked, step, 6);
        let confirming = async {
            tokio::time::sleep(std::time::Duration::from_millis(delay * 3)).await;
            confirm(&app, token, &code).await.status()
        };
        let (confirmed, _) = tokio::join!(confirming, enrol(&app, token, PASSWORD));
        if confirmed == StatusCode::OK {
            // What the owner's app holds is what logs in.
            let login = mfa_token(&app, &tokens.email, PASSWORD).await;
            let next = with_code(&app, &login, &hotp(&checked, step + 1, 6)).await;
            assert_eq!(next.status(), StatusCode::OK, "delay {delay}");
        } else {
            // Replaced before it was read (a wrong code for the new secret), or meanwhile.
            let refused = [StatusCode::BAD_REQUEST, StatusCode::CONFLICT];
            assert!(refused.contains(&confirmed), "delay {delay}: {confirmed}");
        }
    }
}

async fn a_login_racing_the_confirmation_gets_no_session_after_it(backend: Backend) {
    let app = TestApp::spawn_with(backend, &[("LATCHKEY_SIGNUP_IP_MAX", "1000")]).await;
    for delay in 0..12u64 {
        let tokens = app.signup_user().await;
        let token = tokens.access_token.as_str();
        let secret = start_enrolment(&app, token).await;
        let code = hotp(&secret, current_step(), 6);
        let confirming = async {
            tokio::time::sleep(std::time::Duration::from_millis(delay * 3)).await;
            confirm(&app, token, &code).await.status()
        };
        let password = json!({"email": tokens.email, "password": PASSWORD});
        let (confirmed, login) = tokio::join!(confirming, app.login(&password));
        assert_eq!(confirmed, StatusCode::OK);
        if login.status() == StatusCode::OK {
            // A login without a code committed before the factor was on, never after.
            let types = event_types(&app, token, "mfa_enabled").await;
            let at = |kind: &str| types.iter().position(|t| t == kind).unwrap();
            assert!(at("mfa_enabled") < at("login"), "delay {delay}: {types:?}");
        } else {
            assert_problem(login, StatusCode::FORBIDDEN, "mfa_required").await;
        }
    }
}

async fn malformed_second_factor_requests_are_refused_clearly(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let user = enrolled_user(&app).await;
    let token = mfa_token(&app, &user.tokens.email, PASSWORD).await;
    let neither = login_mfa(&app, &json!({"mfa_token": token})).await;
    let problem = assert_problem(
        neither,
        StatusCode::UNPROCESSABLE_ENTITY,
        "validation_failed",
    )
    .await;
    assert_eq!(problem["errors"][0]["field"], "code");
    let both = json!({"mfa_token": token, "code": "123456", "recovery_code": "ABCDE-FGHJK"});
    let problem = assert_problem(
        login_mfa(&app, &both).await,
        StatusCode::UNPROCESSABLE_ENTITY,
        "validation_failed",
    )
    .await;
    assert_eq!(problem["errors"][0]["field"], "recovery_code");
    // Oversized and odd inputs are wrong codes or unknown tokens, never a failure.
    let huge = "9".repeat(60_000);
    let response = with_code(&app, &token, &huge).await;
    assert_problem(response, StatusCode::BAD_REQUEST, "invalid_mfa_code").await;
    let response = with_recovery_code(&app, &token, "ÄÖÜ-\u{0}").await;
    assert_problem(response, StatusCode::BAD_REQUEST, "invalid_mfa_code").await;
    let response = with_code(&app, &"t".repeat(60_000), "123456").await;
    assert_problem(response, StatusCode::UNAUTHORIZED, "invalid_mfa_token").await;
    let response = with_code(&app, "\u{0}", "123456").await;
    assert_problem(response, StatusCode::UNAUTHORIZED, "invalid_mfa_token").await;
    // The token is still good after all that (3 wrong codes so far).
    assert_eq!(
        with_code(&app, &token, &user.next_code()).await.status(),
        StatusCode::OK
    );
    // Confirming and disabling need a bearer token.
    let anonymous = app
        .send(
            Method::POST,
            "/me/mfa/totp",
            None,
            Some(&json!({"password": PASSWORD})),
        )
        .await;
    assert_problem(anonymous, StatusCode::UNAUTHORIZED, "missing_token").await;
}
