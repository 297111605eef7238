//! The refresh token in a cookie for browser apps (API.md, "Browser clients: the refresh
//! token in a cookie"): the cookie's attributes, rotation and reuse through it, logout, and
//! the CSRF rules, each tried the way an attacker's page would.

use std::collections::HashMap;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use reqwest::{Method, Response, StatusCode};
use serde_json::{Value, json};

use crate::support::{
    Backend, PASSWORD, REFRESH_COOKIE, TestApp, assert_invalid_token, assert_problem, unique_email,
};

const APP_ORIGIN: &str = "https://app.example.com";
const EVIL_ORIGIN: &str = "https://evil.example.net";

backend_tests!(
    signup_login_and_refresh_set_the_cookie_with_every_attribute,
    the_cookie_lasts_until_the_session_absolute_end,
    refresh_from_the_cookie_rotates_and_keeps_the_cookie_transport,
    a_page_script_cannot_move_the_token_out_of_the_cookie,
    replaying_an_old_cookie_revokes_the_session,
    concurrent_cookie_refreshes_converge_on_one_cookie,
    logout_clears_the_cookie_and_the_old_value_then_fails,
    logout_keeps_a_cookie_whose_session_lives_on,
    the_body_transport_is_unchanged,
    a_cross_origin_request_with_the_cookie_is_refused,
    a_listed_cors_origin_may_use_the_cookie,
    the_own_origin_may_use_the_cookie,
    forwarded_host_counts_only_from_a_trusted_proxy,
    origin_null_is_refused,
    form_and_text_requests_with_the_cookie_are_refused,
    a_body_token_takes_precedence_over_the_cookie,
    an_unknown_transport_is_refused,
    without_a_body_token_or_the_cookie_the_answer_is_unchanged,
);

/// The contract as generated clients read it: the field, the nullable token, the cookie as
/// a security scheme, its `Set-Cookie` headers and the `403` of `/refresh`.
#[test]
fn the_openapi_document_describes_the_cookie() {
    let document = serde_json::to_value(latchkey::http::openapi::document()).unwrap();
    let scheme = &document["components"]["securitySchemes"]["refresh_cookie"];
    assert_eq!(scheme["type"], "apiKey");
    assert_eq!(scheme["in"], "cookie");
    assert_eq!(scheme["name"], REFRESH_COOKIE);
    let schemas = &document["components"]["schemas"];
    assert_eq!(
        schemas["RefreshTokenTransport"]["enum"],
        json!(["body", "cookie"])
    );
    assert_eq!(
        schemas["TokenResponse"]["properties"]["refresh_token"]["type"],
        json!(["string", "null"])
    );
    let paths = &document["paths"];
    for (path, status) in [
        ("/signup", "201"),
        ("/login", "200"),
        ("/refresh", "200"),
        ("/logout", "204"),
    ] {
        let response = &paths[path]["post"]["responses"][status];
        assert!(
            response["headers"]["Set-Cookie"].is_object(),
            "{path} {status}: {response}"
        );
    }
    let refresh = &paths["/refresh"]["post"];
    assert!(
        refresh["responses"]["403"]["description"]
            .as_str()
            .unwrap()
            .contains("csrf_rejected")
    );
    assert_eq!(refresh["security"], json!([{}, {"refresh_cookie": []}]));
    // /refresh needs no bearer token, so it must not be documented with the bearer 401.
    assert!(
        !refresh["responses"]["401"]["description"]
            .as_str()
            .unwrap()
            .contains("missing_token")
    );
    let transport = &schemas["SignupRequest"]["properties"]["refresh_token_transport"];
    assert_eq!(
        transport["$ref"],
        "#/components/schemas/RefreshTokenTransport"
    );
    assert!(
        transport.get("default").is_none(),
        "openapi-typescript would require it"
    );
}

/// One `Set-Cookie` of ours, taken apart.
#[derive(Debug)]
struct SetCookie {
    value: String,
    /// Attribute names lowercased; `None` for a flag such as `Secure`.
    attributes: HashMap<String, Option<String>>,
}

impl SetCookie {
    fn max_age(&self) -> i64 {
        self.attributes["max-age"]
            .as_deref()
            .expect("Max-Age has a value")
            .parse()
            .expect("Max-Age is a number")
    }
}

/// The response's `Set-Cookie` for the refresh cookie, if any; there is never more than one.
fn refresh_set_cookie(response: &Response) -> Option<SetCookie> {
    let ours: Vec<SetCookie> = response
        .headers()
        .get_all("set-cookie")
        .iter()
        .map(|value| value.to_str().expect("an ASCII Set-Cookie"))
        .filter_map(|text| {
            let mut parts = text.split(';').map(str::trim);
            let (name, value) = parts.next()?.split_once('=')?;
            (name == REFRESH_COOKIE).then(|| SetCookie {
                value: value.to_owned(),
                attributes: parts
                    .map(|part| match part.split_once('=') {
                        Some((name, value)) => (name.to_ascii_lowercase(), Some(value.to_owned())),
                        None => (part.to_ascii_lowercase(), None),
                    })
                    .collect(),
            })
        })
        .collect();
    assert!(ours.len() <= 1, "one refresh cookie at most: {ours:?}");
    ours.into_iter().next()
}

/// Asserts the attributes API.md requires, and returns the cookie.
fn assert_cookie_attributes(cookie: &SetCookie) {
    let attribute = |name: &str| cookie.attributes.get(name);
    assert_eq!(attribute("path"), Some(&Some("/".to_owned())), "{cookie:?}");
    assert_eq!(attribute("secure"), Some(&None), "{cookie:?}");
    assert_eq!(attribute("httponly"), Some(&None), "{cookie:?}");
    assert_eq!(
        attribute("samesite"),
        Some(&Some("Strict".to_owned())),
        "{cookie:?}"
    );
    // `__Host-` cookies must not name a domain: browsers would drop them.
    assert_eq!(attribute("domain"), None, "{cookie:?}");
}

/// A token response that put the refresh token into the cookie: `refresh_token` is `null`
/// and the cookie holds a token. Returns the access token and the cookie.
async fn cookie_response(response: Response, status: StatusCode) -> (String, SetCookie) {
    assert_eq!(response.status(), status, "unexpected status");
    assert_eq!(response.headers()["cache-control"], "no-store");
    let cookie = refresh_set_cookie(&response).expect("a Set-Cookie for the refresh token");
    let body: Value = response.json().await.unwrap();
    assert!(
        body.get("refresh_token").is_some_and(Value::is_null),
        "refresh_token must be present and null: {body}"
    );
    assert_cookie_attributes(&cookie);
    assert!(cookie.max_age() > 0, "{cookie:?}");
    assert!(
        cookie.value.len() >= 43
            && cookie
                .value
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_'),
        "a refresh token: {cookie:?}"
    );
    let access = body["access_token"].as_str().unwrap().to_owned();
    (access, cookie)
}

/// A token response with the refresh token in the body and no cookie.
async fn body_response(response: Response, status: StatusCode) -> (String, String) {
    assert_eq!(response.status(), status, "unexpected status");
    assert!(
        refresh_set_cookie(&response).is_none(),
        "no cookie with the body transport"
    );
    let body: Value = response.json().await.unwrap();
    let refresh = body["refresh_token"].as_str().expect("a refresh token");
    (
        body["access_token"].as_str().unwrap().to_owned(),
        refresh.to_owned(),
    )
}

/// Signs up a fresh user with the cookie transport: its email, access token and cookie.
async fn cookie_signup(app: &TestApp) -> (String, String, SetCookie) {
    let email = unique_email();
    let response = app
        .signup(&json!({"email": email, "password": PASSWORD, "refresh_token_transport": "cookie"}))
        .await;
    let (access, cookie) = cookie_response(response, StatusCode::CREATED).await;
    (email, access, cookie)
}

/// Refreshes with the cookie (body `{}`, no Origin), asserting success.
async fn cookie_refreshed(app: &TestApp, cookie: &str) -> (String, SetCookie) {
    let response = app.refresh_with_cookie(cookie, &json!({}), None).await;
    cookie_response(response, StatusCode::OK).await
}

/// `POST /refresh` carrying the cookie, with any content type and body.
async fn raw_cookie_refresh(
    app: &TestApp,
    cookie: &str,
    content_type: Option<&str>,
    body: &str,
    origin: Option<&str>,
) -> Response {
    let mut request = app
        .client
        .post(app.url("/refresh"))
        .header("Cookie", format!("{REFRESH_COOKIE}={cookie}"))
        .body(body.to_owned());
    if let Some(content_type) = content_type {
        request = request.header("Content-Type", content_type);
    }
    if let Some(origin) = origin {
        request = request.header("Origin", origin);
    }
    request.send().await.unwrap()
}

fn session_of(access_token: &str) -> String {
    let payload = access_token.split('.').nth(1).expect("a JWT");
    let claims: Value = serde_json::from_slice(&URL_SAFE_NO_PAD.decode(payload).unwrap()).unwrap();
    claims["sid"].as_str().unwrap().to_owned()
}

async fn expires_at_of_current_session(app: &TestApp, access_token: &str) -> i64 {
    let response = app.sessions(access_token).await;
    assert_eq!(response.status(), StatusCode::OK);
    let sessions: Vec<Value> = response.json().await.unwrap();
    let current = sessions
        .iter()
        .find(|session| session["current"] == true)
        .expect("the current session is listed");
    chrono::DateTime::parse_from_rfc3339(current["expires_at"].as_str().unwrap())
        .unwrap()
        .timestamp()
}

async fn signup_login_and_refresh_set_the_cookie_with_every_attribute(backend: Backend) {
    let app = TestApp::spawn(backend).await;

    let (email, access, signed_up) = cookie_signup(&app).await;
    assert_eq!(app.me(&access).await.status(), StatusCode::OK);

    let login = app
        .login(&json!({"email": email, "password": PASSWORD, "refresh_token_transport": "cookie"}))
        .await;
    let (login_access, logged_in) = cookie_response(login, StatusCode::OK).await;
    assert_ne!(logged_in.value, signed_up.value);
    assert_ne!(
        session_of(&login_access),
        session_of(&access),
        "a new session"
    );

    // A body token may ask for the cookie too.
    let other = app.signup_user().await;
    let response = app
        .post(
            "/refresh",
            &json!({"refresh_token": other.refresh_token, "refresh_token_transport": "cookie"}),
        )
        .await;
    let (refreshed_access, moved) = cookie_response(response, StatusCode::OK).await;
    assert_eq!(
        session_of(&refreshed_access),
        session_of(&other.access_token)
    );
    // The token in the cookie is a real one: it refreshes in turn.
    cookie_refreshed(&app, &moved.value).await;
    cookie_refreshed(&app, &signed_up.value).await;
    cookie_refreshed(&app, &logged_in.value).await;
}

async fn the_cookie_lasts_until_the_session_absolute_end(backend: Backend) {
    let app = TestApp::spawn_with(backend, &[("LATCHKEY_SESSION_TTL", "3600")]).await;

    let (_, access, cookie) = cookie_signup(&app).await;
    let now = chrono::Utc::now().timestamp();
    let expires_at = expires_at_of_current_session(&app, &access).await;
    let max_age = cookie.max_age();
    assert!(
        (expires_at - now - max_age).abs() <= 2,
        "Max-Age {max_age} for a session ending in {} s",
        expires_at - now
    );
    assert!((3590..=3600).contains(&max_age), "{max_age}");

    // A refresh does not extend the absolute lifetime, so neither does the cookie.
    let (access, refreshed) = cookie_refreshed(&app, &cookie.value).await;
    assert!(refreshed.max_age() <= max_age, "{refreshed:?}");
    assert!(refreshed.max_age() >= max_age - 2, "{refreshed:?}");
    assert_eq!(
        expires_at_of_current_session(&app, &access).await,
        expires_at
    );
}

async fn refresh_from_the_cookie_rotates_and_keeps_the_cookie_transport(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let (_, first_access, first) = cookie_signup(&app).await;

    let (second_access, second) = cookie_refreshed(&app, &first.value).await;

    assert_ne!(second.value, first.value, "rotated");
    assert_ne!(second_access, first_access);
    assert_eq!(session_of(&second_access), session_of(&first_access));
    assert_eq!(app.me(&second_access).await.status(), StatusCode::OK);

    // An empty body (still declared JSON) works too, as does `null` for the token.
    let response =
        raw_cookie_refresh(&app, &second.value, Some("application/json"), "", None).await;
    let (_, third) = cookie_response(response, StatusCode::OK).await;
    assert_ne!(third.value, second.value);
    let response = app
        .refresh_with_cookie(&third.value, &json!({"refresh_token": null}), None)
        .await;
    let (fourth_access, fourth) = cookie_response(response, StatusCode::OK).await;
    assert_ne!(fourth.value, third.value);
    assert_eq!(session_of(&fourth_access), session_of(&first_access));
    let sessions: Vec<Value> = app.sessions(&fourth_access).await.json().await.unwrap();
    assert_eq!(sessions.len(), 1, "one session throughout");
}

/// An injected script can call `/refresh` (the browser adds the cookie), but it must not be
/// able to get the refresh token into the body, from where it could send it away.
async fn a_page_script_cannot_move_the_token_out_of_the_cookie(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let (_, _, cookie) = cookie_signup(&app).await;

    let response = app
        .refresh_with_cookie(
            &cookie.value,
            &json!({"refresh_token_transport": "body"}),
            Some(&app.address),
        )
        .await;

    let (_, successor) = cookie_response(response, StatusCode::OK).await;
    assert_ne!(successor.value, cookie.value);
}

async fn replaying_an_old_cookie_revokes_the_session(backend: Backend) {
    let app = TestApp::spawn_with(backend, &[("LATCHKEY_REFRESH_REUSE_GRACE", "0")]).await;
    let (email, first_access, first) = cookie_signup(&app).await;
    let other = app.login_user(&email).await;
    let (second_access, second) = cookie_refreshed(&app, &first.value).await;

    // The stolen, already rotated cookie value is replayed.
    let replay = app
        .refresh_with_cookie(&first.value, &json!({}), None)
        .await;
    assert!(refresh_set_cookie(&replay).is_none());
    assert_problem(replay, StatusCode::UNAUTHORIZED, "refresh_token_reused").await;

    // The whole session is revoked, the legitimate newest cookie included.
    assert_invalid_token(app.me(&first_access).await).await;
    assert_invalid_token(app.me(&second_access).await).await;
    let newest = app
        .refresh_with_cookie(&second.value, &json!({}), None)
        .await;
    assert_problem(newest, StatusCode::UNAUTHORIZED, "invalid_refresh_token").await;
    // The same value in the body is just as dead, and the user's other session lives.
    let in_body = app.refresh(&second.value).await;
    assert_problem(in_body, StatusCode::UNAUTHORIZED, "invalid_refresh_token").await;
    assert_eq!(app.me(&other.access_token).await.status(), StatusCode::OK);
}

async fn concurrent_cookie_refreshes_converge_on_one_cookie(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let (_, first_access, first) = cookie_signup(&app).await;
    // Open the HTTP and database connections first, so that the refreshes really overlap.
    let warm_up = futures_util::future::join_all((0..8).map(|_| app.me(&first_access)));
    assert!(warm_up.await.iter().all(|r| r.status() == StatusCode::OK));

    let empty = json!({});
    let responses = futures_util::future::join_all(
        (0..8).map(|_| app.refresh_with_cookie(&first.value, &empty, Some(&app.address))),
    )
    .await;

    let mut successors = Vec::new();
    for response in responses {
        let (access, cookie) = cookie_response(response, StatusCode::OK).await;
        assert_eq!(session_of(&access), session_of(&first_access));
        assert_eq!(app.me(&access).await.status(), StatusCode::OK);
        successors.push(cookie.value);
    }
    assert_ne!(successors[0], first.value);
    assert!(
        successors.iter().all(|value| *value == successors[0]),
        "the session forked: {successors:?}"
    );
    // Another tab, a moment later, with the just-retired cookie: the same successor again.
    let (_, late) = cookie_refreshed(&app, &first.value).await;
    assert_eq!(late.value, successors[0]);
    // And the shared successor rotates normally.
    let (_, next) = cookie_refreshed(&app, &successors[0]).await;
    assert_ne!(next.value, successors[0]);
}

async fn logout_clears_the_cookie_and_the_old_value_then_fails(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let (email, _, first) = cookie_signup(&app).await;
    let (access, cookie) = cookie_refreshed(&app, &first.value).await;

    let response = app
        .client
        .post(app.url("/logout"))
        .bearer_auth(&access)
        .header("Cookie", format!("{REFRESH_COOKIE}={}", cookie.value))
        .send()
        .await
        .unwrap();

    assert_eq!(response.status(), StatusCode::NO_CONTENT);
    let removal = refresh_set_cookie(&response).expect("the cookie is cleared");
    assert_eq!(removal.value, "");
    assert_eq!(removal.max_age(), 0);
    assert_cookie_attributes(&removal);
    // The old value, should the browser have kept it, or the one before it, within the grace
    // window: both refused.
    let old = app
        .refresh_with_cookie(&cookie.value, &json!({}), None)
        .await;
    assert_problem(old, StatusCode::UNAUTHORIZED, "invalid_refresh_token").await;
    let older = app
        .refresh_with_cookie(&first.value, &json!({}), None)
        .await;
    assert_eq!(older.status(), StatusCode::UNAUTHORIZED);
    assert_invalid_token(app.me(&access).await).await;

    // A logout whose request does not carry the cookie (an app that omits credentials, a
    // cookie jar that keeps it back) still tells the client to drop it.
    let tokens = app.login_user(&email).await;
    let response = app.logout(&tokens.access_token, None).await;
    assert_eq!(response.status(), StatusCode::NO_CONTENT);
    let removal = refresh_set_cookie(&response).expect("cleared without being carried");
    assert_eq!(removal.max_age(), 0);
    // And so does `global`, which ends the caller's session too.
    let tokens = app.login_user(&email).await;
    let response = app
        .logout(&tokens.access_token, Some(&json!({"scope": "global"})))
        .await;
    assert_eq!(refresh_set_cookie(&response).unwrap().max_age(), 0);
}

async fn logout_keeps_a_cookie_whose_session_lives_on(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let (email, _, cookie) = cookie_signup(&app).await;
    let (access, cookie) = cookie_refreshed(&app, &cookie.value).await;
    let laptop = app.login_user(&email).await;

    // "Log out my other devices", from the browser holding the cookie: its own session, and
    // so its cookie, stay.
    let response = app
        .client
        .post(app.url("/logout"))
        .bearer_auth(&access)
        .header("Cookie", format!("{REFRESH_COOKIE}={}", cookie.value))
        .json(&json!({"scope": "others"}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::NO_CONTENT);
    assert!(refresh_set_cookie(&response).is_none(), "the cookie stays");
    assert_invalid_token(app.me(&laptop.access_token).await).await;
    // Nor without the cookie: with `others` the caller's session goes on.
    let response = app.logout(&access, Some(&json!({"scope": "others"}))).await;
    assert!(refresh_set_cookie(&response).is_none());
    let (access, cookie) = cookie_refreshed(&app, &cookie.value).await;

    // Another session's access token logging out locally (a second app on the same origin)
    // does not throw away a cookie whose session is still live.
    let other = app.login_user(&email).await;
    let response = app
        .client
        .post(app.url("/logout"))
        .bearer_auth(&other.access_token)
        .header("Cookie", format!("{REFRESH_COOKIE}={}", cookie.value))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::NO_CONTENT);
    assert!(
        refresh_set_cookie(&response).is_none(),
        "not that session's cookie"
    );
    assert_invalid_token(app.me(&other.access_token).await).await;
    assert_eq!(app.me(&access).await.status(), StatusCode::OK);
    cookie_refreshed(&app, &cookie.value).await;
}

async fn the_body_transport_is_unchanged(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let email = unique_email();

    for transport in [None, Some("body")] {
        let mut body = json!({"email": unique_email(), "password": PASSWORD});
        if let Some(transport) = transport {
            body["refresh_token_transport"] = json!(transport);
        }
        body_response(app.signup(&body).await, StatusCode::CREATED).await;
    }
    let signup = app
        .signup(&json!({"email": email, "password": PASSWORD}))
        .await;
    let (_, refresh) = body_response(signup, StatusCode::CREATED).await;
    let login = app
        .login(&json!({"email": email, "password": PASSWORD, "refresh_token_transport": "body"}))
        .await;
    body_response(login, StatusCode::OK).await;
    let (_, refresh) = body_response(app.refresh(&refresh).await, StatusCode::OK).await;
    let explicit = app
        .post(
            "/refresh",
            &json!({"refresh_token": refresh, "refresh_token_transport": "body"}),
        )
        .await;
    body_response(explicit, StatusCode::OK).await;
}

async fn a_cross_origin_request_with_the_cookie_is_refused(backend: Backend) {
    let app = TestApp::spawn_with(backend, &[("LATCHKEY_CORS_ORIGINS", APP_ORIGIN)]).await;
    let (_, _, cookie) = cookie_signup(&app).await;
    let own_host = app.address.trim_start_matches("http://").to_owned();
    let port: u16 = own_host.rsplit(':').next().unwrap().parse().unwrap();

    for origin in [
        EVIL_ORIGIN.to_owned(),
        // Lookalikes of the listed origin and of our own.
        "https://app.example.com.evil.net".to_owned(),
        "https://evil-app.example.com".to_owned(),
        "http://app.example.com".to_owned(),
        "https://app.example.com:8443".to_owned(),
        format!("http://{own_host}.evil.net"),
        format!("http://127.0.0.1:{}", port.wrapping_add(1)),
        format!("http://localhost:{port}"),
        format!("file://{own_host}"),
        "chrome-extension://abcdefghijklmnop".to_owned(),
        "garbage".to_owned(),
    ] {
        let response = app
            .refresh_with_cookie(&cookie.value, &json!({}), Some(&origin))
            .await;
        assert_eq!(response.status(), StatusCode::FORBIDDEN, "{origin}");
        assert!(refresh_set_cookie(&response).is_none());
        assert_problem(response, StatusCode::FORBIDDEN, "csrf_rejected").await;
    }
    // Two Origin headers are no browser's request.
    let response = app
        .client
        .post(app.url("/refresh"))
        .header("Cookie", format!("{REFRESH_COOKIE}={}", cookie.value))
        .header("Origin", APP_ORIGIN)
        .header("Origin", EVIL_ORIGIN)
        .json(&json!({}))
        .send()
        .await
        .unwrap();
    assert_problem(response, StatusCode::FORBIDDEN, "csrf_rejected").await;

    // None of that touched the session: the cookie was not spent.
    cookie_refreshed(&app, &cookie.value).await;
}

async fn a_listed_cors_origin_may_use_the_cookie(backend: Backend) {
    let origins = format!("{APP_ORIGIN}, http://localhost:5173");
    let app = TestApp::spawn_with(backend, &[("LATCHKEY_CORS_ORIGINS", &origins)]).await;
    let (_, _, cookie) = cookie_signup(&app).await;

    // What the browser asks before `fetch(…, {credentials: "include"})` with JSON.
    let preflight = app
        .client
        .request(Method::OPTIONS, app.url("/refresh"))
        .header("Origin", APP_ORIGIN)
        .header("Access-Control-Request-Method", "POST")
        .header("Access-Control-Request-Headers", "content-type")
        .send()
        .await
        .unwrap();
    assert_eq!(preflight.status(), StatusCode::OK);
    let headers = preflight.headers();
    assert_eq!(headers["access-control-allow-origin"], APP_ORIGIN);
    assert_eq!(headers["access-control-allow-credentials"], "true");
    assert!(
        headers["access-control-allow-headers"]
            .to_str()
            .unwrap()
            .to_lowercase()
            .contains("content-type")
    );

    let response = app
        .refresh_with_cookie(&cookie.value, &json!({}), Some(APP_ORIGIN))
        .await;
    // Credentials need the exact origin echoed, never `*`, or the browser hides the answer.
    assert_eq!(
        response.headers()["access-control-allow-origin"],
        APP_ORIGIN
    );
    assert_eq!(
        response.headers()["access-control-allow-credentials"],
        "true"
    );
    let (_, successor) = cookie_response(response, StatusCode::OK).await;
    let response = app
        .refresh_with_cookie(&successor.value, &json!({}), Some("http://localhost:5173"))
        .await;
    cookie_response(response, StatusCode::OK).await;

    // An unlisted origin's preflight is refused, with no credentials allowed.
    let refused = app
        .client
        .request(Method::OPTIONS, app.url("/refresh"))
        .header("Origin", EVIL_ORIGIN)
        .header("Access-Control-Request-Method", "POST")
        .header("Access-Control-Request-Headers", "content-type")
        .send()
        .await
        .unwrap();
    assert!(
        !refused
            .headers()
            .contains_key("access-control-allow-credentials")
    );
    assert!(
        !refused
            .headers()
            .contains_key("access-control-allow-origin")
    );
}

async fn the_own_origin_may_use_the_cookie(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let (_, _, cookie) = cookie_signup(&app).await;

    // A page served from the service's own origin (as `GET /` is): Origin matches Host.
    let response = app
        .refresh_with_cookie(&cookie.value, &json!({}), Some(&app.address))
        .await;
    let (_, cookie) = cookie_response(response, StatusCode::OK).await;
    // Origins are compared ignoring case; no Origin at all (curl, a native app) passes too.
    let upper = app.address.replace("http://", "HTTP://");
    let response = app
        .refresh_with_cookie(&cookie.value, &json!({}), Some(&upper))
        .await;
    let (_, cookie) = cookie_response(response, StatusCode::OK).await;
    cookie_refreshed(&app, &cookie.value).await;
}

async fn forwarded_host_counts_only_from_a_trusted_proxy(backend: Backend) {
    // Without a trusted proxy, anyone's X-Forwarded-Host is ignored: an attacker cannot
    // make its own origin look like ours.
    let app = TestApp::spawn(backend).await;
    let (_, _, cookie) = cookie_signup(&app).await;
    let spoofed = app
        .client
        .post(app.url("/refresh"))
        .header("Cookie", format!("{REFRESH_COOKIE}={}", cookie.value))
        .header("Origin", EVIL_ORIGIN)
        .header("X-Forwarded-Host", "evil.example.net")
        .header("X-Forwarded-Proto", "https")
        .json(&json!({}))
        .send()
        .await
        .unwrap();
    assert_problem(spoofed, StatusCode::FORBIDDEN, "csrf_rejected").await;

    // Behind a trusted proxy (here the test client, on 127.0.0.1), the proxy's word on host
    // and scheme makes the public origin our own.
    let proxied = TestApp::spawn_with(backend, &[("LATCHKEY_TRUSTED_PROXIES", "127.0.0.1")]).await;
    let (_, _, cookie) = cookie_signup(&proxied).await;
    let via_proxy = |origin: &str, proto: &str| {
        proxied
            .client
            .post(proxied.url("/refresh"))
            .header("Cookie", format!("{REFRESH_COOKIE}={}", cookie.value))
            .header("Origin", origin)
            .header("X-Forwarded-Host", "auth.example.com")
            .header("X-Forwarded-Proto", proto)
            .json(&json!({}))
            .send()
    };
    let wrong_scheme = via_proxy("http://auth.example.com", "https").await.unwrap();
    assert_problem(wrong_scheme, StatusCode::FORBIDDEN, "csrf_rejected").await;
    let internal = via_proxy(&proxied.address, "https").await.unwrap();
    assert_problem(internal, StatusCode::FORBIDDEN, "csrf_rejected").await;
    let public = via_proxy("https://auth.example.com", "https")
        .await
        .unwrap();
    cookie_response(public, StatusCode::OK).await;
}

async fn origin_null_is_refused(backend: Backend) {
    let app = TestApp::spawn_with(backend, &[("LATCHKEY_CORS_ORIGINS", APP_ORIGIN)]).await;
    let (_, _, cookie) = cookie_signup(&app).await;

    // A sandboxed iframe or a `data:` page of any site sends `Origin: null`.
    let response = app
        .refresh_with_cookie(&cookie.value, &json!({}), Some("null"))
        .await;

    assert!(refresh_set_cookie(&response).is_none());
    assert_problem(response, StatusCode::FORBIDDEN, "csrf_rejected").await;
    cookie_refreshed(&app, &cookie.value).await;
}

/// What a cross-site `<form>` or a `no-cors` fetch can send without a preflight, with the
/// cookie the browser attaches: refused before the body is even looked at.
async fn form_and_text_requests_with_the_cookie_are_refused(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let (_, _, cookie) = cookie_signup(&app).await;

    for (content_type, body) in [
        (
            Some("application/x-www-form-urlencoded"),
            "refresh_token_transport=cookie",
        ),
        // JSON text under a safelisted type: a form with enctype="text/plain" can send this.
        (Some("text/plain"), "{}"),
        (Some("text/plain;charset=UTF-8"), r#"{"a": "="}"#),
        (Some("multipart/form-data; boundary=x"), "--x--\r\n"),
        // `fetch(url, {method: "POST", mode: "no-cors", credentials: "include"})`.
        (None, ""),
        // Not application/json either, though the JSON endpoints accept it elsewhere.
        (Some("application/merge-patch+json"), "{}"),
    ] {
        for origin in [None, Some(EVIL_ORIGIN), Some(app.address.as_str())] {
            let response =
                raw_cookie_refresh(&app, &cookie.value, content_type, body, origin).await;
            assert_eq!(
                response.status(),
                StatusCode::FORBIDDEN,
                "{content_type:?} from {origin:?}"
            );
            assert!(refresh_set_cookie(&response).is_none());
            assert_problem(response, StatusCode::FORBIDDEN, "csrf_rejected").await;
        }
    }
    // Parameters do not hide the type: this one is JSON.
    let response = raw_cookie_refresh(
        &app,
        &cookie.value,
        Some("application/json; charset=utf-8"),
        "{}",
        Some(&app.address),
    )
    .await;
    cookie_response(response, StatusCode::OK).await;
}

/// A token in the body is an explicit choice; the cookie is whatever the browser attached.
/// The body's token wins, and the cookie (another session here) is left as it was.
async fn a_body_token_takes_precedence_over_the_cookie(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let (_, cookie_access, cookie) = cookie_signup(&app).await;
    let other = app.signup_user().await;

    let response = app
        .refresh_with_cookie(
            &cookie.value,
            &json!({"refresh_token": other.refresh_token}),
            None,
        )
        .await;

    let (access, successor) = body_response(response, StatusCode::OK).await;
    assert_eq!(session_of(&access), session_of(&other.access_token));
    assert_ne!(successor, other.refresh_token);
    // The cookie was not spent: it still rotates to a successor of its own session.
    let (access, _) = cookie_refreshed(&app, &cookie.value).await;
    assert_eq!(session_of(&access), session_of(&cookie_access));

    // A bad body token is refused; the request does not fall back to the cookie.
    let (_, _, cookie) = cookie_signup(&app).await;
    let response = app
        .refresh_with_cookie(
            &cookie.value,
            &json!({"refresh_token": "not-a-token"}),
            None,
        )
        .await;
    assert!(refresh_set_cookie(&response).is_none());
    assert_problem(response, StatusCode::UNAUTHORIZED, "invalid_refresh_token").await;
    // The CSRF rules hold for any request that carries the cookie, body token or not.
    let response = app
        .refresh_with_cookie(
            &cookie.value,
            &json!({"refresh_token": successor}),
            Some(EVIL_ORIGIN),
        )
        .await;
    assert_problem(response, StatusCode::FORBIDDEN, "csrf_rejected").await;
    cookie_refreshed(&app, &cookie.value).await;
}

async fn an_unknown_transport_is_refused(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let (_, _, cookie) = cookie_signup(&app).await;
    let tokens = app.signup_user().await;

    for transport in [
        json!("header"),
        json!("Cookie"),
        json!("COOKIE"),
        json!(""),
        json!(1),
        json!(true),
        json!(null),
        json!(["cookie"]),
    ] {
        let signup = app
            .signup(&json!({"email": unique_email(), "password": PASSWORD, "refresh_token_transport": transport}))
            .await;
        assert!(refresh_set_cookie(&signup).is_none());
        assert_problem(signup, StatusCode::BAD_REQUEST, "malformed_request").await;
        let login = app
            .login(&json!({"email": tokens.email, "password": PASSWORD, "refresh_token_transport": transport}))
            .await;
        assert_problem(login, StatusCode::BAD_REQUEST, "malformed_request").await;
        let refresh = app
            .post(
                "/refresh",
                &json!({"refresh_token": tokens.refresh_token, "refresh_token_transport": transport}),
            )
            .await;
        let problem = assert_problem(refresh, StatusCode::BAD_REQUEST, "malformed_request").await;
        assert!(
            problem["detail"]
                .as_str()
                .unwrap()
                .contains("refresh_token_transport"),
            "{problem}"
        );
        let with_cookie = app
            .refresh_with_cookie(
                &cookie.value,
                &json!({"refresh_token_transport": transport}),
                None,
            )
            .await;
        assert_problem(with_cookie, StatusCode::BAD_REQUEST, "malformed_request").await;
    }
    // Nothing above spent a token.
    body_response(app.refresh(&tokens.refresh_token).await, StatusCode::OK).await;
    cookie_refreshed(&app, &cookie.value).await;
}

async fn without_a_body_token_or_the_cookie_the_answer_is_unchanged(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let (_, _, cookie) = cookie_signup(&app).await;

    let cookie_headers = [
        None,
        // A cleared cookie, and cookies that are not ours: a name without the `__Host-`
        // prefix (which any subdomain could set) is not the cookie.
        Some(format!("{REFRESH_COOKIE}=")),
        Some(format!("latchkey_refresh={}", cookie.value)),
        Some(format!("__host-latchkey_refresh={}", cookie.value)),
        Some(format!("{REFRESH_COOKIE}x={}", cookie.value)),
    ];
    for header in cookie_headers {
        let mut request = app.client.post(app.url("/refresh")).json(&json!({}));
        if let Some(header) = &header {
            request = request.header("Cookie", header);
        }
        let response = request.send().await.unwrap();
        let problem = assert_problem(response, StatusCode::BAD_REQUEST, "malformed_request").await;
        assert!(
            problem["detail"]
                .as_str()
                .unwrap()
                .contains("`refresh_token`"),
            "{header:?}: {problem}"
        );
    }
    // Other content types are still 415 without the cookie.
    let response = app
        .client
        .post(app.url("/refresh"))
        .header("Content-Type", "text/plain")
        .body("{}")
        .send()
        .await
        .unwrap();
    assert_problem(
        response,
        StatusCode::UNSUPPORTED_MEDIA_TYPE,
        "unsupported_media_type",
    )
    .await;
    cookie_refreshed(&app, &cookie.value).await;
}
