//! API.md "General rules": body parsing, media types, size limits, unknown paths and
//! methods, problem documents, bearer challenges, hostile input, and the shape of IDs and
//! timestamps, all over real HTTP on both backends.

use std::collections::HashMap;
use std::io::{Read as _, Write as _};

use base64::Engine as _;
use reqwest::header::{AUTHORIZATION, CONTENT_ENCODING, CONTENT_TYPE, USER_AGENT};
use reqwest::{Method, Response, StatusCode};
use serde_json::{Value, json};

use crate::support::{
    Backend, PASSWORD, TestApp, assert_invalid_token, assert_problem, unique_email,
};

backend_tests!(
    a_body_that_is_not_json_is_malformed,
    json_of_the_wrong_shape_is_malformed,
    malformed_request_details_never_echo_submitted_values,
    other_content_types_are_unsupported,
    compressed_bodies_are_unsupported,
    json_with_a_charset_parameter_is_accepted,
    a_body_over_64_kib_is_too_large,
    a_chunked_body_over_64_kib_is_too_large,
    a_body_just_under_64_kib_is_accepted,
    unknown_json_fields_are_ignored,
    unknown_json_fields_are_ignored_even_with_nul_characters,
    nul_characters_in_known_fields_are_refused_like_any_bad_value,
    null_in_an_optional_field_counts_as_absent,
    unknown_paths_are_not_found,
    wrong_methods_are_not_allowed_with_an_allow_header,
    validation_problems_carry_errors,
    protected_routes_without_a_bearer_token_say_missing_token,
    protected_routes_with_a_bad_bearer_token_say_invalid_token,
    hostile_bodies_never_cause_a_server_error,
    hostile_session_ids_are_not_found,
    sessions_have_canonical_ids_and_utc_timestamps,
);

const LIMIT: usize = 64 * 1024;
const JSON: &str = "application/json";

/// Sends `body` as is, with this `Content-Type` (or none).
async fn raw(
    app: &TestApp,
    method: Method,
    path: &str,
    content_type: Option<&str>,
    body: impl Into<reqwest::Body>,
) -> Response {
    let mut request = app.client.request(method, app.url(path)).body(body);
    if let Some(content_type) = content_type {
        request = request.header(CONTENT_TYPE, content_type);
    }
    request.send().await.expect("sending a request")
}

/// Asserts a problem document and that its text contains none of `secrets`.
async fn assert_problem_without(
    response: Response,
    status: StatusCode,
    code: &str,
    secrets: &[&str],
) -> Value {
    let body = assert_problem(response, status, code).await;
    let text = body.to_string();
    for secret in secrets {
        assert!(
            !text.contains(secret),
            "the problem echoes {secret:?}: {text}"
        );
    }
    body
}

/// A signup body of exactly `size` bytes, padded with an unknown field.
fn padded_signup(size: usize) -> Vec<u8> {
    let head = format!(
        r#"{{"email":"{}","password":"{PASSWORD}","padding":""#,
        unique_email()
    );
    let tail = r#""}"#;
    let padding = size - head.len() - tail.len();
    let body = format!("{head}{}{tail}", "x".repeat(padding));
    assert_eq!(body.len(), size);
    body.into_bytes()
}

/// A response read off a raw socket.
struct RawResponse {
    status: u16,
    headers: HashMap<String, String>,
    body: Vec<u8>,
}

/// POSTs `body` with `Transfer-Encoding: chunked` (no `Content-Length`) over a plain socket,
/// in 4 KiB chunks, and reads the whole response.
async fn post_chunked(app: &TestApp, path: &str, body: Vec<u8>) -> RawResponse {
    let host = app.address.trim_start_matches("http://").to_owned();
    let path = path.to_owned();
    tokio::task::spawn_blocking(move || {
        let mut stream = std::net::TcpStream::connect(&host).expect("connecting");
        stream
            .set_read_timeout(Some(std::time::Duration::from_secs(15)))
            .unwrap();
        let head = format!(
            "POST {path} HTTP/1.1\r\nHost: {host}\r\nContent-Type: {JSON}\r\n\
             Transfer-Encoding: chunked\r\nConnection: close\r\n\r\n"
        );
        let mut request = head.into_bytes();
        for chunk in body.chunks(4096) {
            request.extend_from_slice(format!("{:x}\r\n", chunk.len()).as_bytes());
            request.extend_from_slice(chunk);
            request.extend_from_slice(b"\r\n");
        }
        request.extend_from_slice(b"0\r\n\r\n");
        // The server may answer and close before reading everything: a refused write is not
        // this test's concern, the answer is.
        let writer = {
            let mut stream = stream.try_clone().unwrap();
            std::thread::spawn(move || {
                let _ = stream.write_all(&request);
            })
        };
        let mut response = Vec::new();
        let _ = stream.read_to_end(&mut response);
        writer.join().unwrap();
        parse_response(&response)
    })
    .await
    .unwrap()
}

fn parse_response(bytes: &[u8]) -> RawResponse {
    let split = bytes
        .windows(4)
        .position(|window| window == b"\r\n\r\n")
        .unwrap_or_else(|| panic!("no complete response: {:?}", String::from_utf8_lossy(bytes)));
    let head = std::str::from_utf8(&bytes[..split]).unwrap();
    let mut lines = head.split("\r\n");
    let status = lines.next().unwrap().split(' ').nth(1).unwrap();
    let headers: HashMap<String, String> = lines
        .filter_map(|line| line.split_once(':'))
        .map(|(name, value)| (name.trim().to_ascii_lowercase(), value.trim().to_owned()))
        .collect();
    let mut body = bytes[split + 4..].to_vec();
    if let Some(length) = headers.get("content-length") {
        body.truncate(length.parse().unwrap());
    }
    RawResponse {
        status: status.parse().unwrap(),
        headers,
        body,
    }
}

async fn a_body_that_is_not_json_is_malformed(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    for path in ["/signup", "/login", "/refresh"] {
        for body in [
            "not json",
            "{",
            "",
            "{'email': 'single quotes'}",
            "\u{feff}{}",
        ] {
            let response = raw(&app, Method::POST, path, Some(JSON), body).await;
            assert_problem(response, StatusCode::BAD_REQUEST, "malformed_request").await;
        }
    }
}

async fn json_of_the_wrong_shape_is_malformed(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let cases = [
        ("/signup", json!({"email": "a@example.com"}).to_string()), // missing field
        ("/signup", json!({"password": PASSWORD}).to_string()),
        (
            "/signup",
            json!({"email": 42, "password": PASSWORD}).to_string(),
        ), // wrong type
        (
            "/signup",
            json!({"email": "a@example.com", "password": null}).to_string(),
        ),
        (
            "/signup",
            json!({"email": "a@example.com", "password": PASSWORD, "username": ["x"]}).to_string(),
        ),
        (
            "/signup",
            json!([{"email": "a@example.com", "password": PASSWORD}]).to_string(),
        ),
        ("/signup", "null".to_owned()),
        ("/signup", r#""a string""#.to_owned()),
        (
            "/signup",
            format!(r#"{{"email": "a@example.com", "password": "{PASSWORD}"}} garbage"#),
        ),
        (
            "/signup",
            format!(r#"{{"email": "a@example.com", "password": "{PASSWORD}"}}{{}}"#),
        ),
        ("/login", json!({"email": "a@example.com"}).to_string()),
        (
            "/login",
            json!({"email": true, "password": PASSWORD}).to_string(),
        ),
        ("/login", json!(["a@example.com", PASSWORD]).to_string()),
        ("/refresh", json!({}).to_string()),
        ("/refresh", json!({"refresh_token": 7}).to_string()),
        ("/refresh", json!(["token"]).to_string()),
    ];
    for (path, body) in cases {
        let response = raw(&app, Method::POST, path, Some(JSON), body.clone()).await;
        assert_eq!(response.status(), StatusCode::BAD_REQUEST, "{path} {body}");
        assert_problem(response, StatusCode::BAD_REQUEST, "malformed_request").await;
    }
}

async fn malformed_request_details_never_echo_submitted_values(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let cases = [
        (
            "/signup",
            r#"{"email":"a@b.io","password":12345678901}"#.to_owned(),
            vec!["12345678901", "a@b.io"],
        ),
        (
            "/login",
            r#"{"email":"a@b.io","password":12345678901}"#.to_owned(),
            vec!["12345678901", "a@b.io"],
        ),
        (
            "/signup",
            r#"{"email":"a@b.io","password":["hunter2hunter2"]}"#.to_owned(),
            vec!["hunter2hunter2", "a@b.io"],
        ),
        (
            "/signup",
            r#"{"email":"a@b.io","password":"s3cret-passphrase"} trailing"#.to_owned(),
            vec!["s3cret-passphrase", "trailing", "a@b.io"],
        ),
        (
            "/signup",
            r#"{"email":"a@b.io","password":"s3cret-passphrase"#.to_owned(),
            vec!["s3cret-passphrase", "a@b.io"],
        ),
        (
            "/refresh",
            r#"{"refresh_token":98765432109}"#.to_owned(),
            vec!["98765432109"],
        ),
    ];
    for (path, body, secrets) in cases {
        let response = raw(&app, Method::POST, path, Some(JSON), body).await;
        let problem = assert_problem_without(
            response,
            StatusCode::BAD_REQUEST,
            "malformed_request",
            &secrets,
        )
        .await;
        assert!(
            !problem["detail"].as_str().unwrap().is_empty(),
            "a human-readable detail: {problem}"
        );
    }
}

async fn other_content_types_are_unsupported(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let body = json!({"email": unique_email(), "password": PASSWORD}).to_string();
    for path in ["/signup", "/login", "/refresh"] {
        for content_type in [
            Some("text/plain"),
            Some("application/x-www-form-urlencoded"),
            Some("multipart/form-data; boundary=x"),
            Some("text/json-ish"),
            None,
        ] {
            let response = raw(&app, Method::POST, path, content_type, body.clone()).await;
            assert_eq!(
                response.status(),
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "{path} {content_type:?}"
            );
            assert_problem(
                response,
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "unsupported_media_type",
            )
            .await;
        }
    }
    // Form-encoded credentials are refused too, not parsed.
    let email = unique_email();
    let form = format!("email={email}&password=correct+horse+battery+staple");
    let response = raw(
        &app,
        Method::POST,
        "/signup",
        Some("application/x-www-form-urlencoded"),
        form,
    )
    .await;
    assert_problem(
        response,
        StatusCode::UNSUPPORTED_MEDIA_TYPE,
        "unsupported_media_type",
    )
    .await;
    let login = app
        .login(&json!({"email": email, "password": PASSWORD}))
        .await;
    assert_problem(login, StatusCode::UNAUTHORIZED, "invalid_credentials").await;

    // A protected route's body is held to the same rule once the caller is authenticated.
    let tokens = app.signup_user().await;
    let logout = app
        .client
        .post(app.url("/logout"))
        .header(CONTENT_TYPE, "text/plain")
        .body(r#"{"scope":"global"}"#);
    assert_logout_refused_unsupported(&app, &tokens.access_token, logout).await;
}

/// Sends `logout` with the caller's token: it must be refused as `415`, and the caller's
/// session live on.
async fn assert_logout_refused_unsupported(
    app: &TestApp,
    token: &str,
    logout: reqwest::RequestBuilder,
) {
    let response = logout.bearer_auth(token).send().await.unwrap();
    assert_problem(
        response,
        StatusCode::UNSUPPORTED_MEDIA_TYPE,
        "unsupported_media_type",
    )
    .await;
    assert_eq!(app.me(token).await.status(), StatusCode::OK);
}

fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    encoder.write_all(bytes).unwrap();
    encoder.finish().unwrap()
}

/// The attack: a body of a few kilobytes, gzip-compressed from megabytes, was decompressed and
/// held in memory whole, the 64 KiB limit being checked against the compressed length. Any
/// `Content-Encoding` but `identity` is now refused before the body is read.
async fn compressed_bodies_are_unsupported(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let email = unique_email();
    let signup = json!({"email": email, "password": PASSWORD}).to_string();
    // Eight megabytes of spaces before the object: valid JSON, compressed far below the limit.
    let bomb = gzip(&[vec![b' '; 8 * 1024 * 1024], signup.clone().into_bytes()].concat());
    assert!(bomb.len() < LIMIT, "{} bytes", bomb.len());
    let tokens = app.signup_user().await;
    let login = json!({"email": tokens.email, "password": PASSWORD}).to_string();
    let cases = [
        ("/signup", "gzip", bomb),
        ("/signup", "GZIP", gzip(signup.as_bytes())),
        ("/signup", "identity, gzip", gzip(signup.as_bytes())),
        ("/signup", "deflate", signup.clone().into_bytes()),
        ("/login", "br", login.clone().into_bytes()),
        ("/login", "x-made-up", login.into_bytes()),
        ("/refresh", "gzip", gzip(br#"{"refresh_token":"x"}"#)),
    ];
    for (path, encoding, body) in cases {
        let response = app
            .client
            .post(app.url(path))
            .header(CONTENT_TYPE, JSON)
            .header(CONTENT_ENCODING, encoding)
            .body(body)
            .send()
            .await
            .unwrap();
        assert_problem(
            response,
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
        )
        .await;
    }
    // No account came of the compressed signups.
    let response = app
        .login(&json!({"email": email, "password": PASSWORD}))
        .await;
    assert_problem(response, StatusCode::UNAUTHORIZED, "invalid_credentials").await;

    // A protected route's optional body too; the session lives on.
    let logout = app
        .client
        .post(app.url("/logout"))
        .header(CONTENT_TYPE, JSON)
        .header(CONTENT_ENCODING, "gzip")
        .body(gzip(br#"{"scope":"global"}"#));
    assert_logout_refused_unsupported(&app, &tokens.access_token, logout).await;

    // `identity` is no encoding at all: the body is read as it is.
    let response = app
        .client
        .post(app.url("/signup"))
        .header(CONTENT_TYPE, JSON)
        .header(CONTENT_ENCODING, "identity")
        .body(signup)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::CREATED);
}

async fn json_with_a_charset_parameter_is_accepted(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let email = unique_email();
    let body = json!({"email": email, "password": PASSWORD}).to_string();
    for content_type in ["application/json; charset=utf-8", "Application/JSON"] {
        let response = raw(
            &app,
            Method::POST,
            "/login",
            Some(content_type),
            body.clone(),
        )
        .await;
        // Parsed (so the unknown account is an authentication failure, not a 415).
        assert_problem(response, StatusCode::UNAUTHORIZED, "invalid_credentials").await;
    }
    let response = raw(
        &app,
        Method::POST,
        "/signup",
        Some("application/json; charset=utf-8"),
        body,
    )
    .await;
    assert_eq!(response.status(), StatusCode::CREATED);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["user"]["email"], email);
}

async fn a_body_over_64_kib_is_too_large(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    for (path, size) in [
        ("/signup", LIMIT + 1),
        ("/signup", 4 * LIMIT),
        ("/login", LIMIT + 1),
        ("/refresh", LIMIT + 100),
    ] {
        let body = padded_signup(size);
        let response = raw(&app, Method::POST, path, Some(JSON), body).await;
        assert_eq!(
            response.status(),
            StatusCode::PAYLOAD_TOO_LARGE,
            "{path} {size}"
        );
        let problem =
            assert_problem(response, StatusCode::PAYLOAD_TOO_LARGE, "payload_too_large").await;
        assert!(!problem.to_string().contains(PASSWORD));
    }
}

async fn a_chunked_body_over_64_kib_is_too_large(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let response = post_chunked(&app, "/signup", padded_signup(LIMIT + 4096)).await;
    assert_eq!(
        response.status,
        413,
        "{}",
        String::from_utf8_lossy(&response.body)
    );
    assert_eq!(response.headers["content-type"], "application/problem+json");
    let problem: Value = serde_json::from_slice(&response.body).unwrap();
    assert_eq!(problem["code"], "payload_too_large");
    assert_eq!(problem["status"], 413);

    // The same request under the limit goes through: the chunked path itself works.
    let response = post_chunked(&app, "/signup", padded_signup(LIMIT - 1)).await;
    assert_eq!(
        response.status,
        201,
        "{}",
        String::from_utf8_lossy(&response.body)
    );
}

async fn a_body_just_under_64_kib_is_accepted(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    for size in [LIMIT - 1, LIMIT] {
        let response = raw(
            &app,
            Method::POST,
            "/signup",
            Some(JSON),
            padded_signup(size),
        )
        .await;
        assert_eq!(response.status(), StatusCode::CREATED, "{size} bytes");
    }
}

async fn unknown_json_fields_are_ignored(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let email = unique_email();
    let response = app
        .signup(&json!({
            "email": email,
            "password": PASSWORD,
            "favourite_colour": "teal",
            "admin": true,
            "nested": {"deep": [1, 2, 3]},
        }))
        .await;
    assert_eq!(response.status(), StatusCode::CREATED);
    let tokens = crate::support::Tokens::from(response.json::<Value>().await.unwrap());
    assert!(tokens.body["user"].get("admin").is_none());

    let response = app
        .login(&json!({"email": email, "password": PASSWORD, "remember_me": true}))
        .await;
    assert_eq!(response.status(), StatusCode::OK);
    let response = app
        .post(
            "/refresh",
            &json!({"refresh_token": tokens.refresh_token, "client": "test"}),
        )
        .await;
    assert_eq!(response.status(), StatusCode::OK);
}

/// Unknown fields are ignored even when they hold a NUL, anywhere in the body (Schemathesis
/// adds such fields to schema-valid bodies).
async fn unknown_json_fields_are_ignored_even_with_nul_characters(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let email = unique_email();
    let extra = json!({"k\u{0}": ["\u{0}", {"\u{0}": "a\u{0}b"}], "n": 1});
    let response = app
        .signup(&json!({
            "email": email, "password": PASSWORD, "note": "a\u{0}b", "\u{0}": extra,
        }))
        .await;
    assert_eq!(response.status(), StatusCode::CREATED);
    let tokens = crate::support::Tokens::from(response.json::<Value>().await.unwrap());

    let response = app
        .login(&json!({"email": email, "password": PASSWORD, "note\u{0}": extra}))
        .await;
    assert_eq!(response.status(), StatusCode::OK);
    let response = app
        .post(
            "/refresh",
            &json!({"refresh_token": tokens.refresh_token, "note": extra}),
        )
        .await;
    assert_eq!(response.status(), StatusCode::OK);
    let tokens = crate::support::Tokens::from(response.json::<Value>().await.unwrap());
    let response = app
        .send(
            Method::POST,
            "/me/password",
            Some(&tokens.access_token),
            Some(&json!({
                "current_password": PASSWORD,
                "new_password": "a different passphrase",
                "note": extra,
            })),
        )
        .await;
    assert_eq!(response.status(), StatusCode::NO_CONTENT);
    let response = app
        .logout(
            &tokens.access_token,
            Some(&json!({"scope": "local", "note": extra})),
        )
        .await;
    assert_eq!(response.status(), StatusCode::NO_CONTENT);
}

/// A NUL is one more character that no email, username or refresh token may hold: each
/// request gets the answer any other invalid value gets, and PostgreSQL never sees it.
async fn nul_characters_in_known_fields_are_refused_like_any_bad_value(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let tokens = app.signup_user().await;
    let cases = [
        (
            "/signup",
            json!({"email": "a\u{0}b@example.com", "password": PASSWORD}),
            StatusCode::UNPROCESSABLE_ENTITY,
            "validation_failed",
        ),
        (
            "/signup",
            json!({"email": unique_email(), "password": PASSWORD, "username": "ab\u{0}c"}),
            StatusCode::UNPROCESSABLE_ENTITY,
            "validation_failed",
        ),
        (
            "/login",
            json!({"email": format!("{}\u{0}", tokens.email), "password": PASSWORD}),
            StatusCode::UNAUTHORIZED,
            "invalid_credentials",
        ),
        (
            "/login",
            json!({"username": "ab\u{0}c", "password": PASSWORD}),
            StatusCode::UNAUTHORIZED,
            "invalid_credentials",
        ),
        (
            "/login",
            json!({"email": tokens.email, "password": "\u{0}"}),
            StatusCode::UNAUTHORIZED,
            "invalid_credentials",
        ),
        (
            "/refresh",
            json!({"refresh_token": format!("{}\u{0}", tokens.refresh_token)}),
            StatusCode::UNAUTHORIZED,
            "invalid_refresh_token",
        ),
    ];
    for (path, body, status, code) in cases {
        let response = app.post(path, &body).await;
        assert_problem(response, status, code).await;
    }
    // Nothing was refused for the wrong reason: the session is intact.
    assert_eq!(app.me(&tokens.access_token).await.status(), StatusCode::OK);
}

/// `null` in an optional field is the same as leaving it out (openapi.yaml says so).
async fn null_in_an_optional_field_counts_as_absent(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let email = unique_email();
    let response = app
        .signup(&json!({"email": email, "password": PASSWORD, "username": null}))
        .await;
    assert_eq!(response.status(), StatusCode::CREATED);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["user"]["username"], Value::Null);

    let response = app
        .login(&json!({"email": email, "username": null, "password": PASSWORD}))
        .await;
    assert_eq!(response.status(), StatusCode::OK);
    // Still exactly one of the two: two nulls are neither.
    let response = app
        .login(&json!({"email": null, "username": null, "password": PASSWORD}))
        .await;
    assert_problem(
        response,
        StatusCode::UNPROCESSABLE_ENTITY,
        "validation_failed",
    )
    .await;
}

async fn unknown_paths_are_not_found(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let tokens = app.signup_user().await;
    for (method, path) in [
        (Method::GET, "/nope"),
        (Method::POST, "/nope"),
        (Method::DELETE, "/users/1"),
        (Method::GET, "/signup/extra"),
        (Method::GET, "/me/nothing"),
        (Method::GET, "/sessions/a/b"),
        (Method::GET, "/.well-known/openid-configuration"),
        (Method::GET, "/%ff%fe"),
    ] {
        let response = app
            .client
            .request(method.clone(), app.url(path))
            .bearer_auth(&tokens.access_token)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::NOT_FOUND, "{method} {path}");
        assert_problem(response, StatusCode::NOT_FOUND, "not_found").await;
    }
    // Unauthenticated too: an unknown path is a 404, not a 401.
    let response = raw(&app, Method::GET, "/admin", None, "").await;
    assert_problem(response, StatusCode::NOT_FOUND, "not_found").await;
}

async fn wrong_methods_are_not_allowed_with_an_allow_header(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let session = uuid::Uuid::now_v7().to_string();
    let cases = [
        (Method::GET, "/signup".to_owned(), "POST"),
        (Method::GET, "/login".to_owned(), "POST"),
        (Method::PUT, "/refresh".to_owned(), "POST"),
        (Method::GET, "/logout".to_owned(), "POST"),
        (Method::PUT, "/me".to_owned(), "GET"),
        (Method::PATCH, "/me".to_owned(), "DELETE"),
        (Method::GET, "/me/password".to_owned(), "POST"),
        (Method::POST, "/sessions".to_owned(), "GET"),
        (Method::PATCH, format!("/sessions/{session}"), "DELETE"),
        (Method::DELETE, "/healthz".to_owned(), "GET"),
        (Method::POST, "/readyz".to_owned(), "GET"),
        (Method::POST, "/.well-known/jwks.json".to_owned(), "GET"),
    ];
    for (method, path, allowed) in cases {
        let response = app
            .client
            .request(method.clone(), app.url(&path))
            .send()
            .await
            .unwrap();
        assert_eq!(
            response.status(),
            StatusCode::METHOD_NOT_ALLOWED,
            "{method} {path}"
        );
        let allow = response
            .headers()
            .get("allow")
            .unwrap_or_else(|| panic!("{method} {path}: no Allow header"))
            .to_str()
            .unwrap()
            .to_owned();
        let methods: Vec<&str> = allow.split(',').map(str::trim).collect();
        assert!(
            methods.contains(&allowed),
            "{method} {path}: Allow: {allow}"
        );
        assert!(
            !methods.contains(&method.as_str()),
            "{method} {path}: Allow: {allow}"
        );
        assert_problem(
            response,
            StatusCode::METHOD_NOT_ALLOWED,
            "method_not_allowed",
        )
        .await;
    }
}

async fn validation_problems_carry_errors(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let response = app
        .signup(&json!({"email": "nope", "password": PASSWORD}))
        .await;
    assert_eq!(
        response.headers()["content-type"],
        "application/problem+json"
    );
    let body = assert_problem(
        response,
        StatusCode::UNPROCESSABLE_ENTITY,
        "validation_failed",
    )
    .await;
    assert_eq!(body["title"], "Unprocessable Content");
    let errors = body["errors"].as_array().expect("`errors` on a 422");
    assert!(!errors.is_empty());
    for error in errors {
        assert!(error["field"].is_string() && error["message"].is_string());
        let code = error["code"].as_str().unwrap();
        assert!(
            code.chars().all(|c| c.is_ascii_lowercase() || c == '_'),
            "snake_case: {code}"
        );
    }
    // Both identifiers on a login is a 422 too, with its `errors`.
    let response = app
        .login(&json!({"email": unique_email(), "username": "ada", "password": PASSWORD}))
        .await;
    let body = assert_problem(
        response,
        StatusCode::UNPROCESSABLE_ENTITY,
        "validation_failed",
    )
    .await;
    assert!(body["errors"].as_array().is_some_and(|e| !e.is_empty()));
}

/// Every protected route, with a body it would accept from an authenticated caller.
fn protected_routes() -> Vec<(Method, String, Option<Value>)> {
    vec![
        (Method::GET, "/me".to_owned(), None),
        (Method::GET, "/sessions".to_owned(), None),
        (Method::POST, "/logout".to_owned(), None),
        (
            Method::POST,
            "/me/password".to_owned(),
            Some(json!({"current_password": PASSWORD, "new_password": "a fresh passphrase"})),
        ),
        (
            Method::DELETE,
            "/me".to_owned(),
            Some(json!({"password": PASSWORD})),
        ),
        (
            Method::DELETE,
            format!("/sessions/{}", uuid::Uuid::now_v7()),
            None,
        ),
    ]
}

async fn send_protected(
    app: &TestApp,
    method: &Method,
    path: &str,
    body: Option<&Value>,
    authorization: Option<&str>,
) -> Response {
    let mut request = app.client.request(method.clone(), app.url(path));
    if let Some(value) = authorization {
        request = request.header(AUTHORIZATION, value);
    }
    if let Some(body) = body {
        request = request.json(body);
    }
    request.send().await.unwrap()
}

async fn protected_routes_without_a_bearer_token_say_missing_token(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let tokens = app.signup_user().await;
    let basic = format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(format!("{}:{PASSWORD}", tokens.email))
    );
    for (method, path, body) in protected_routes() {
        for authorization in [None, Some(basic.as_str()), Some("Digest username=\"ada\"")] {
            let response = send_protected(&app, &method, &path, body.as_ref(), authorization).await;
            assert_eq!(
                response.status(),
                StatusCode::UNAUTHORIZED,
                "{method} {path} {authorization:?}"
            );
            assert_eq!(
                response.headers()["www-authenticate"],
                "Bearer",
                "{method} {path} {authorization:?}"
            );
            assert_problem(response, StatusCode::UNAUTHORIZED, "missing_token").await;
        }
    }
    // None of that touched the account.
    assert_eq!(app.me(&tokens.access_token).await.status(), StatusCode::OK);
}

async fn protected_routes_with_a_bad_bearer_token_say_invalid_token(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let tokens = app.signup_user().await;
    let mut tampered = tokens.access_token.clone();
    tampered.pop();
    tampered.push(if tokens.access_token.ends_with('A') {
        'B'
    } else {
        'A'
    });
    let bad = [
        "Bearer garbage".to_owned(),
        "Bearer a.b.c".to_owned(),
        "Bearer ".to_owned(),
        "bearer not-a-jwt".to_owned(),
        format!("Bearer {tampered}"),
        format!("Bearer {}", tokens.refresh_token),
    ];
    for (method, path, body) in protected_routes() {
        for authorization in &bad {
            let response =
                send_protected(&app, &method, &path, body.as_ref(), Some(authorization)).await;
            assert_eq!(
                response.status(),
                StatusCode::UNAUTHORIZED,
                "{method} {path} {authorization}"
            );
            let problem = response.headers()["www-authenticate"].clone();
            assert_eq!(
                problem, r#"Bearer error="invalid_token""#,
                "{method} {path}"
            );
            let body = assert_problem(response, StatusCode::UNAUTHORIZED, "invalid_token").await;
            assert!(!body.to_string().contains(&tokens.access_token[..20]));
        }
    }
    // The genuine token still works: the account was not touched.
    assert_invalid_token(app.me(&tampered).await).await;
    assert_eq!(app.me(&tokens.access_token).await.status(), StatusCode::OK);
}

/// Sends raw bytes as JSON and asserts the answer is one of `allowed`, and a problem
/// document whenever it is an error: never a 500, never a hang.
async fn assert_handled(app: &TestApp, path: &str, body: Vec<u8>, allowed: &[u16]) {
    let shown = String::from_utf8_lossy(&body[..body.len().min(80)]).into_owned();
    let response = app
        .client
        .post(app.url(path))
        .header(CONTENT_TYPE, JSON)
        .timeout(std::time::Duration::from_secs(15))
        .body(body)
        .send()
        .await
        .unwrap_or_else(|error| panic!("{path} {shown}: {error}"));
    let status = response.status();
    assert!(
        allowed.contains(&status.as_u16()),
        "{path} {shown}: {status} is not one of {allowed:?}: {}",
        response.text().await.unwrap_or_default()
    );
    if status.is_client_error() {
        let content_type = response.headers()[CONTENT_TYPE].clone();
        assert_eq!(content_type, "application/problem+json", "{path} {shown}");
        let problem: Value = response.json().await.unwrap();
        assert_eq!(problem["status"], status.as_u16());
        let text = problem.to_string();
        assert!(
            !text.contains("SELECT") && !text.contains("DROP") && !text.contains("panicked"),
            "{path} {shown}: {text}"
        );
    }
}

async fn hostile_bodies_never_cause_a_server_error(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let victim = app.signup_user().await;
    let long = "a".repeat(10_000);
    let long_email = format!("{long}@example.com");
    let nested = "[".repeat(10_000);
    let nested_field = format!(r#"{{"email": {nested}"#);
    let sql = [
        "' OR '1'='1",
        "'; DROP TABLE users; --",
        "\" OR \"\"=\"",
        "admin'--",
        "1; SELECT pg_sleep(10)",
        "x' UNION SELECT password_hash FROM users --",
    ];
    let bytes = |body: String| body.into_bytes();
    let with_bad_utf8 = |field: &str| {
        let mut body = format!(r#"{{"{field}": "ab"#).into_bytes();
        body.extend_from_slice(&[0xff, 0xfe, 0xc3]);
        body.extend_from_slice(format!(r#"cd", "password": "{PASSWORD}"}}"#).as_bytes());
        body
    };

    // POST /signup
    let mut signup: Vec<(Vec<u8>, &[u16])> = vec![
        (with_bad_utf8("email"), &[400]),
        (with_bad_utf8("username"), &[400]),
        (
            bytes(format!(
                r#"{{"email": "{}", "password": "ab\ud800cdefghij"}}"#,
                unique_email()
            )),
            &[400],
        ),
        (
            bytes(format!(
                r#"{{"email": "\udfff@example.com", "password": "{PASSWORD}"}}"#
            )),
            &[400],
        ),
        (
            bytes(format!(
                r#"{{"email": "a\u0000b@example.com", "password": "{PASSWORD}"}}"#
            )),
            &[400, 422],
        ),
        (
            bytes(format!(
                r#"{{"email": "{}", "username": "ab\u0000c", "password": "{PASSWORD}"}}"#,
                unique_email()
            )),
            &[400, 422],
        ),
        (
            bytes(format!(
                r#"{{"email": "{}", "password": "correct\u0000horse battery"}}"#,
                unique_email()
            )),
            &[201, 400, 422],
        ),
        (bytes(nested.clone()), &[400]),
        (bytes(nested_field.clone()), &[400]),
        (
            bytes(json!({"email": long_email, "password": PASSWORD}).to_string()),
            &[422],
        ),
        (
            bytes(
                json!({"email": unique_email(), "username": long, "password": PASSWORD})
                    .to_string(),
            ),
            &[422],
        ),
        (
            bytes(json!({"email": unique_email(), "password": long}).to_string()),
            &[422],
        ),
        (
            bytes(json!({"email": victim.email, "password": "' OR '1'='1 --"}).to_string()),
            &[409],
        ),
    ];
    for injection in sql {
        signup.push((
            bytes(json!({"email": injection, "password": PASSWORD}).to_string()),
            &[422],
        ));
        signup.push((
            bytes(
                json!({"email": unique_email(), "username": injection, "password": PASSWORD})
                    .to_string(),
            ),
            &[422],
        ));
    }
    for (body, allowed) in signup {
        assert_handled(&app, "/signup", body, allowed).await;
    }

    // POST /login: none of this logs anyone in.
    let mut login: Vec<(Vec<u8>, &[u16])> = vec![
        (with_bad_utf8("email"), &[400]),
        (
            bytes(format!(
                r#"{{"email": "\ud800", "password": "{PASSWORD}"}}"#
            )),
            &[400],
        ),
        (
            bytes(format!(
                r#"{{"email": "a\u0000b@example.com", "password": "{PASSWORD}"}}"#
            )),
            &[400, 401, 422],
        ),
        (
            bytes(format!(
                r#"{{"username": "ab\u0000c", "password": "{PASSWORD}"}}"#
            )),
            &[400, 401, 422],
        ),
        (
            bytes(format!(
                r#"{{"email": "{}", "password": "\u0000\u0000\u0000\u0000\u0000\u0000\u0000\u0000"}}"#,
                victim.email
            )),
            &[400, 401],
        ),
        (bytes(nested.clone()), &[400]),
        (bytes(nested_field.clone()), &[400]),
        (
            bytes(json!({"email": long_email, "password": PASSWORD}).to_string()),
            &[401, 422],
        ),
        (
            bytes(json!({"username": long, "password": PASSWORD}).to_string()),
            &[401, 422],
        ),
        (
            bytes(json!({"email": victim.email, "password": long}).to_string()),
            &[401],
        ),
    ];
    for injection in sql {
        login.push((
            bytes(json!({"email": injection, "password": injection}).to_string()),
            &[401, 422],
        ));
        login.push((
            bytes(json!({"username": injection, "password": PASSWORD}).to_string()),
            &[401, 422],
        ));
    }
    for (body, allowed) in login {
        assert_handled(&app, "/login", body, allowed).await;
    }

    // POST /refresh
    let mut refresh: Vec<(Vec<u8>, &[u16])> = vec![
        (
            {
                let mut body = br#"{"refresh_token": ""#.to_vec();
                body.extend_from_slice(&[0xc0, 0xaf, 0xff]);
                body.extend_from_slice(br#""}"#);
                body
            },
            &[400],
        ),
        (
            bytes(r#"{"refresh_token": "\ud800\udbff"}"#.to_owned()),
            &[400],
        ),
        (
            bytes(r#"{"refresh_token": "\u0000"}"#.to_owned()),
            &[400, 401],
        ),
        (
            bytes(format!(
                r#"{{"refresh_token": "{}\u0000"}}"#,
                victim.refresh_token
            )),
            &[400, 401],
        ),
        (bytes(nested.clone()), &[400]),
        (bytes(json!({"refresh_token": long}).to_string()), &[401]),
    ];
    for injection in sql {
        refresh.push((
            bytes(json!({"refresh_token": injection}).to_string()),
            &[401],
        ));
    }
    for (body, allowed) in refresh {
        assert_handled(&app, "/refresh", body, allowed).await;
    }

    // The data is intact and the victim's session still works.
    assert_eq!(app.me(&victim.access_token).await.status(), StatusCode::OK);
    app.login_user(&victim.email).await;
    app.signup_user().await;
}

/// `DELETE /sessions/{id}` with ids that are not ids (a NUL, SQL, bytes that are not UTF-8,
/// 10,000 characters): the same `404` as an unknown session, never a `500`.
async fn hostile_session_ids_are_not_found(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let victim = app.signup_user().await;
    for id in [
        "not-a-uuid",
        "%00",
        "abc%00def",
        "%27%20OR%20%271%27%3D%271",
        "%ff%fe",
        &"a".repeat(10_000),
    ] {
        let response = app
            .client
            .delete(app.url(&format!("/sessions/{id}")))
            .bearer_auth(&victim.access_token)
            .timeout(std::time::Duration::from_secs(15))
            .send()
            .await
            .unwrap();
        let shown = &id[..id.len().min(40)];
        assert_eq!(
            response.status(),
            StatusCode::NOT_FOUND,
            "/sessions/{shown}"
        );
        assert_problem(response, StatusCode::NOT_FOUND, "not_found").await;
    }

    assert_eq!(app.me(&victim.access_token).await.status(), StatusCode::OK);
}

fn assert_canonical_uuid(id: &str) {
    let parsed = uuid::Uuid::parse_str(id).unwrap_or_else(|_| panic!("not a UUID: {id}"));
    assert_eq!(parsed.to_string(), id, "canonical lowercase UUID");
}

fn assert_utc_timestamp(at: &str) {
    let parsed =
        chrono::DateTime::parse_from_rfc3339(at).unwrap_or_else(|_| panic!("not RFC 3339: {at}"));
    assert!(at.ends_with('Z'), "in UTC: {at}");
    assert_eq!(parsed.offset().local_minus_utc(), 0);
}

/// The `sid` claim of an access token.
fn session_id_of(access_token: &str) -> String {
    let payload = access_token.split('.').nth(1).unwrap();
    let claims: Value = serde_json::from_slice(
        &base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(payload)
            .unwrap(),
    )
    .unwrap();
    claims["sid"].as_str().unwrap().to_owned()
}

async fn sessions_have_canonical_ids_and_utc_timestamps(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let email = unique_email();
    let response = app
        .client
        .post(app.url("/signup"))
        .header(USER_AGENT, "general-rules-test/1.0")
        .json(&json!({"email": email, "password": PASSWORD}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::CREATED);
    let first = crate::support::Tokens::from(response.json::<Value>().await.unwrap());
    let second = app.login_user(&email).await;

    let response = app.sessions(&second.access_token).await;
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(response.headers()["content-type"], "application/json");
    let sessions: Vec<Value> = response.json().await.unwrap();
    assert_eq!(sessions.len(), 2, "{sessions:?}");
    for session in &sessions {
        let id = session["id"].as_str().unwrap();
        assert_canonical_uuid(id);
        for field in ["created_at", "last_used_at", "expires_at"] {
            assert_utc_timestamp(session[field].as_str().unwrap());
        }
        let created =
            chrono::DateTime::parse_from_rfc3339(session["created_at"].as_str().unwrap()).unwrap();
        let expires =
            chrono::DateTime::parse_from_rfc3339(session["expires_at"].as_str().unwrap()).unwrap();
        assert!(expires > created, "{session}");
        assert_eq!(session["ip"], "127.0.0.1");
        assert!(session["current"].is_boolean());
    }
    let current: Vec<&Value> = sessions.iter().filter(|s| s["current"] == true).collect();
    assert_eq!(
        current.len(),
        1,
        "exactly one current session: {sessions:?}"
    );
    assert_eq!(current[0]["id"], session_id_of(&second.access_token));
    let other = sessions.iter().find(|s| s["current"] == false).unwrap();
    assert_eq!(other["id"], session_id_of(&first.access_token));
    assert_eq!(other["user_agent"], "general-rules-test/1.0");

    // Ending a session takes the canonical id from the list.
    let response = app
        .send(
            Method::DELETE,
            &format!("/sessions/{}", other["id"].as_str().unwrap()),
            Some(&second.access_token),
            None,
        )
        .await;
    assert_eq!(response.status(), StatusCode::NO_CONTENT);
    assert_invalid_token(app.me(&first.access_token).await).await;
}
