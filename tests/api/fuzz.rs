//! Fuzzing on the stable toolchain: property tests that feed arbitrary and near-valid input
//! to everything that parses what a client or an operator sends — the JSON request bodies,
//! the access-token verifier, refresh tokens, the domain types, `X-Forwarded-For` and the
//! settings. Nothing may panic; request errors never repeat a submitted value; no forged or
//! tampered token is accepted.
//!
//! Each property runs a bounded number of cases so that `cargo test` (and so CI) stays
//! quick. For a longer run: `PROPTEST_CASES=30000 cargo test --test fuzz` (about three
//! minutes on two cores).
//! A failure prints the shrunk input and is recorded in `tests/api/fuzz.proptest-regressions`
//! (commit that file: its cases are replayed first on every run).

use std::net::IpAddr;
use std::sync::LazyLock;
use std::time::Duration;

use actix_web::dev::Payload;
use actix_web::http::header::{self, HeaderName, HeaderValue};
use actix_web::test::TestRequest;
use actix_web::{FromRequest as _, HttpRequest, web};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use ed25519_dalek::Signer as _;
use hmac::{Hmac, Mac};
use ipnet::IpNet;
use latchkey::auth::client::ClientInfo;
use latchkey::auth::keys::KeySet;
use latchkey::auth::refresh_token::RefreshToken;
use latchkey::auth::tokens::AccessTokens;
use latchkey::config::parse_duration;
use latchkey::db::DatabaseUrl;
use latchkey::domain::{Email, NewPassword, Username};
use latchkey::error::Error;
use latchkey::http::MAX_BODY_BYTES;
use latchkey::http::client_address::client_address;
use latchkey::http::extract::{Json, OptionalJson, parse_json};
use latchkey::http::{
    ChangeEmailRequest, ChangePasswordRequest, DeleteAccountRequest, ForgotPasswordRequest,
    LoginRequest, LogoutRequest, RefreshRequest, ResetPasswordRequest, SignupRequest,
    VerifyEmailRequest,
};
use proptest::prelude::*;
use proptest::sample::{Index, select};
use proptest::test_runner::FileFailurePersistence;
use secrecy::SecretString;
use serde_json::{Map, Value, json};
use sha2::Sha256;

/// `cases` per property, unless `PROPTEST_CASES` says otherwise. Failures are recorded in
/// `tests/api/fuzz.proptest-regressions` (relative to the package, where `cargo test` runs).
fn config(cases: u32) -> ProptestConfig {
    let mut config = ProptestConfig {
        failure_persistence: Some(Box::new(FileFailurePersistence::Direct(
            "tests/api/fuzz.proptest-regressions",
        ))),
        ..ProptestConfig::default()
    };
    if std::env::var_os("PROPTEST_CASES").is_none() {
        config.cases = cases;
    }
    config
}

// --- request bodies ---------------------------------------------------------------------

/// Every field of every request body, and the values of `scope`: the only names a detail
/// may contain.
const FIELDS: &[&str] = &[
    "email",
    "username",
    "password",
    "refresh_token",
    "refresh_token_transport",
    "scope",
    "current_password",
    "new_password",
    "code",
    "new_email",
];
const SCOPES: &[&str] = &["local", "others", "global"];

/// The fixed text of every detail `parse_json` writes.
const SENTENCES: &[&str] = &[
    "The request body must be a JSON object.",
    "The request body is not valid JSON (line ",
    ", column ",
    ").",
    "The required field `",
    "` is missing.",
    "The field `",
    "` has the wrong type or value.",
];

/// A `MalformedRequest` detail must be one of the fixed sentences, naming only our fields.
fn assert_fixed_sentence(detail: &str) {
    if detail == SENTENCES[0] {
        return;
    }
    if let Some(position) = detail
        .strip_prefix(SENTENCES[1])
        .and_then(|rest| rest.strip_suffix(SENTENCES[3]))
    {
        let (line, column) = position
            .split_once(SENTENCES[2])
            .unwrap_or_else(|| panic!("unexpected detail {detail:?}"));
        assert!(
            [line, column]
                .iter()
                .all(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit())),
            "unexpected detail {detail:?}"
        );
        return;
    }
    if let Some(field) = detail
        .strip_prefix(SENTENCES[4])
        .and_then(|rest| rest.strip_suffix(SENTENCES[5]))
    {
        assert!(FIELDS.contains(&field), "unexpected detail {detail:?}");
        return;
    }
    if let Some(path) = detail
        .strip_prefix(SENTENCES[6])
        .and_then(|rest| rest.strip_suffix(SENTENCES[7]))
    {
        assert!(
            path.split('.')
                .all(|segment| FIELDS.contains(&segment) || SCOPES.contains(&segment)),
            "unexpected detail {detail:?}"
        );
        return;
    }
    panic!("unexpected detail {detail:?}");
}

/// The detail of a failed parse, after checking that it is a `MalformedRequest` in one of
/// the fixed sentences.
fn detail_of<T>(result: Result<T, Error>) -> Option<String> {
    match result {
        Ok(_) => None,
        Err(Error::MalformedRequest(detail)) => {
            assert_fixed_sentence(&detail);
            Some(detail)
        }
        Err(other) => panic!("expected a malformed request, got {other:?}"),
    }
}

/// Parses `body` as each of the request types; returns the details of the failures.
fn parse_as_every_request(body: &[u8]) -> Vec<String> {
    [
        detail_of(parse_json::<SignupRequest>(body)),
        detail_of(parse_json::<LoginRequest>(body)),
        detail_of(parse_json::<RefreshRequest>(body)),
        detail_of(parse_json::<LogoutRequest>(body)),
        detail_of(parse_json::<ChangePasswordRequest>(body)),
        detail_of(parse_json::<DeleteAccountRequest>(body)),
        detail_of(parse_json::<ForgotPasswordRequest>(body)),
        detail_of(parse_json::<ResetPasswordRequest>(body)),
        detail_of(parse_json::<VerifyEmailRequest>(body)),
        detail_of(parse_json::<ChangeEmailRequest>(body)),
    ]
    .into_iter()
    .flatten()
    .collect()
}

/// Whether `body` is a valid request of the type numbered `kind`, as above.
fn parses_as(kind: usize, body: &[u8]) -> bool {
    match kind {
        0 => parse_json::<SignupRequest>(body).is_ok(),
        1 => parse_json::<LoginRequest>(body).is_ok(),
        2 => parse_json::<RefreshRequest>(body).is_ok(),
        3 => parse_json::<LogoutRequest>(body).is_ok(),
        4 => parse_json::<ChangePasswordRequest>(body).is_ok(),
        5 => parse_json::<DeleteAccountRequest>(body).is_ok(),
        6 => parse_json::<ForgotPasswordRequest>(body).is_ok(),
        7 => parse_json::<ResetPasswordRequest>(body).is_ok(),
        8 => parse_json::<VerifyEmailRequest>(body).is_ok(),
        _ => parse_json::<ChangeEmailRequest>(body).is_ok(),
    }
}

/// Every string of a JSON value, keys included.
fn strings_of(value: &Value, into: &mut Vec<String>) {
    match value {
        Value::String(text) => into.push(text.clone()),
        Value::Array(items) => items.iter().for_each(|item| strings_of(item, into)),
        Value::Object(map) => {
            for (key, item) in map {
                into.push(key.clone());
                strings_of(item, into);
            }
        }
        Value::Null | Value::Bool(_) | Value::Number(_) => {}
    }
}

/// No detail contains a submitted string of more than three characters, unless that string
/// is part of our own wording (a value `"email"` is indistinguishable from the field name).
fn assert_no_echo(details: &[String], submitted: &[String]) {
    let ours = |text: &str| {
        FIELDS.iter().chain(SCOPES).any(|name| name.contains(text))
            || SENTENCES.iter().any(|sentence| sentence.contains(text))
    };
    for detail in details {
        // The line and column are ours too.
        let wording = detail.split(SENTENCES[1]).next().unwrap_or(detail);
        for text in submitted {
            if text.chars().count() > 3 && wording.contains(text.as_str()) {
                assert!(ours(text), "the detail {detail:?} repeats {text:?}");
            }
        }
    }
}

/// Strings as clients send them, and names of our own fields to make the shapes line up.
fn text() -> impl Strategy<Value = String> {
    prop_oneof![
        4 => "[ -~]{0,24}",
        2 => any::<String>(),
        2 => "\\PC{0,12}",
        2 => select(FIELDS).prop_map(str::to_owned),
        1 => select(SCOPES).prop_map(str::to_owned),
    ]
}

fn key() -> impl Strategy<Value = String> {
    prop_oneof![
        3 => select(FIELDS).prop_map(str::to_owned),
        1 => select(SCOPES).prop_map(str::to_owned),
        1 => text(),
    ]
}

fn json_leaf() -> impl Strategy<Value = Value> {
    prop_oneof![
        1 => Just(Value::Null),
        1 => any::<bool>().prop_map(Value::Bool),
        1 => any::<i64>().prop_map(Value::from),
        1 => any::<u64>().prop_map(Value::from),
        1 => any::<f64>().prop_filter_map("a finite number", |f| {
            serde_json::Number::from_f64(f).map(Value::Number)
        }),
        3 => text().prop_map(Value::String),
    ]
}

fn json_value() -> BoxedStrategy<Value> {
    json_leaf()
        .prop_recursive(4, 48, 6, |inner| {
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
                prop::collection::vec((key(), inner), 0..6)
                    .prop_map(|entries| Value::Object(entries.into_iter().collect())),
            ]
        })
        .boxed()
}

/// Mostly objects with our field names, as request bodies are.
fn json_body() -> impl Strategy<Value = Value> {
    prop_oneof![
        3 => prop::collection::vec((key(), json_value()), 0..6)
            .prop_map(|entries| Value::Object(entries.into_iter().collect())),
        1 => json_value(),
    ]
}

/// A valid body of one request type, numbered as in [`parses_as`].
fn valid_body() -> impl Strategy<Value = (usize, Value)> {
    let t = || "[ -~]{4,24}|\\PC{4,12}";
    prop_oneof![
        (t(), t(), prop::option::of(t())).prop_map(|(email, password, username)| {
            (
                0,
                json!({"email": email, "password": password, "username": username}),
            )
        }),
        (select(&["email", "username"][..]), t(), t())
            .prop_map(|(by, name, password)| { (1, json!({by: name, "password": password})) }),
        t().prop_map(|token| (2, json!({"refresh_token": token}))),
        prop::option::of(select(SCOPES))
            .prop_map(|scope| { (3, scope.map_or(json!({}), |scope| json!({"scope": scope}))) }),
        (t(), t()).prop_map(|(current, new)| {
            (4, json!({"current_password": current, "new_password": new}))
        }),
        t().prop_map(|password| (5, json!({"password": password}))),
        t().prop_map(|email| (6, json!({"email": email}))),
        (t(), t(), t()).prop_map(|(email, code, new)| {
            (
                7,
                json!({"email": email, "code": code, "new_password": new}),
            )
        }),
        (t(), t()).prop_map(|(email, code)| (8, json!({"email": email, "code": code}))),
        (t(), t()).prop_map(|(new_email, password)| {
            (9, json!({"new_email": new_email, "password": password}))
        }),
    ]
}

/// One change to a valid body, as a confused or hostile client would make.
#[derive(Debug, Clone)]
enum Mutation {
    ReplaceByte(Index, u8),
    RemoveByte(Index),
    InsertByte(Index, u8),
    Truncate(Index),
    RemoveField(Index),
    ReplaceValue(Index, Value),
    AddField(String, Value),
    DuplicateField(String, Value),
    WrapInArray,
}

fn mutation() -> impl Strategy<Value = Mutation> {
    let byte = || {
        prop_oneof![
            select(&b"{}[]\",:\\ \t\n0123456789eE+-.ntrufalsx"[..]),
            any::<u8>(),
        ]
    };
    prop_oneof![
        (any::<Index>(), byte()).prop_map(|(at, b)| Mutation::ReplaceByte(at, b)),
        any::<Index>().prop_map(Mutation::RemoveByte),
        (any::<Index>(), byte()).prop_map(|(at, b)| Mutation::InsertByte(at, b)),
        any::<Index>().prop_map(Mutation::Truncate),
        any::<Index>().prop_map(Mutation::RemoveField),
        (any::<Index>(), json_value()).prop_map(|(at, v)| Mutation::ReplaceValue(at, v)),
        (key(), json_value()).prop_map(|(k, v)| Mutation::AddField(k, v)),
        (key(), json_value()).prop_map(|(k, v)| Mutation::DuplicateField(k, v)),
        Just(Mutation::WrapInArray),
    ]
}

/// The mutated body, and the strings it submits.
fn apply(body: &Value, mutation: &Mutation) -> (Vec<u8>, Vec<String>) {
    let mut strings = Vec::new();
    strings_of(body, &mut strings);
    let mut map = body.as_object().cloned().unwrap_or_default();
    let keys: Vec<String> = map.keys().cloned().collect();
    let mut bytes = serde_json::to_vec(body).unwrap();
    match mutation {
        Mutation::ReplaceByte(at, b) => {
            let at = at.index(bytes.len());
            bytes[at] = *b;
        }
        Mutation::RemoveByte(at) => {
            bytes.remove(at.index(bytes.len()));
        }
        Mutation::InsertByte(at, b) => bytes.insert(at.index(bytes.len() + 1), *b),
        Mutation::Truncate(at) => bytes.truncate(at.index(bytes.len())),
        Mutation::RemoveField(at) if !keys.is_empty() => {
            map.remove(&keys[at.index(keys.len())]);
            bytes = serde_json::to_vec(&map).unwrap();
        }
        Mutation::ReplaceValue(at, value) if !keys.is_empty() => {
            strings_of(value, &mut strings);
            map.insert(keys[at.index(keys.len())].clone(), value.clone());
            bytes = serde_json::to_vec(&map).unwrap();
        }
        Mutation::RemoveField(_) | Mutation::ReplaceValue(..) => {}
        Mutation::AddField(key, value) => {
            strings.push(key.clone());
            strings_of(value, &mut strings);
            map.insert(key.clone(), value.clone());
            bytes = serde_json::to_vec(&map).unwrap();
        }
        Mutation::DuplicateField(key, value) => {
            // serde_json's maps cannot hold a key twice: write the extra one in front.
            strings.push(key.clone());
            strings_of(value, &mut strings);
            let extra = format!(
                "{{{}:{},",
                Value::String(key.clone()),
                serde_json::to_string(value).unwrap()
            );
            bytes.splice(..1, extra.into_bytes());
        }
        Mutation::WrapInArray => bytes = serde_json::to_vec(&json!([body])).unwrap(),
    }
    (bytes, strings)
}

/// `depth` openings of arrays or objects, possibly closed, in the value of `field` (or as
/// the whole body): a body of at most [`MAX_BODY_BYTES`] can nest 64 Ki deep.
fn nested(depth: usize, object: bool, field: Option<&str>, closed: bool) -> Vec<u8> {
    let (open, close) = if object {
        (&br#"{"email":"#[..], &b"}"[..])
    } else {
        (&b"["[..], &b"]"[..])
    };
    let mut body = field.map_or_else(Vec::new, |field| format!("{{\"{field}\":").into_bytes());
    body.extend(open.repeat(depth));
    body.extend_from_slice(b"1");
    if closed {
        body.extend(close.repeat(depth));
        body.extend(field.map(|_| b'}'));
    }
    body
}

proptest! {
    #![proptest_config(config(256))]

    #[test]
    fn request_bodies_of_arbitrary_bytes_are_refused_cleanly(
        body in prop_oneof![
            prop::collection::vec(any::<u8>(), 0..256),
            "[{}\\[\\]\":, \\\\a-z0-9_.eE+-]{0,64}".prop_map(String::into_bytes),
        ]
    ) {
        parse_as_every_request(&body);
    }

    #[test]
    fn request_bodies_of_arbitrary_json_never_echo_a_value(body in json_body()) {
        let mut submitted = Vec::new();
        strings_of(&body, &mut submitted);
        for bytes in [serde_json::to_vec(&body).unwrap(), serde_json::to_vec_pretty(&body).unwrap()] {
            let details = parse_as_every_request(&bytes);
            assert_no_echo(&details, &submitted);
        }
    }

    #[test]
    fn near_valid_request_bodies_never_echo_a_value(
        (kind, body) in valid_body(),
        mutation in mutation(),
    ) {
        prop_assert!(parses_as(kind, &serde_json::to_vec(&body).unwrap()), "{}", body);
        let (bytes, submitted) = apply(&body, &mutation);
        let details = parse_as_every_request(&bytes);
        assert_no_echo(&details, &submitted);
    }

    #[test]
    fn deeply_nested_request_bodies_are_refused_cleanly(
        depth in prop_oneof![0usize..300, 0usize..MAX_BODY_BYTES],
        object in any::<bool>(),
        // A field of every body but logout's, one no body has, or none.
        field in prop::option::of(select(&["password", "unknown"][..])),
        closed in any::<bool>(),
    ) {
        let details = parse_as_every_request(&nested(depth, object, field, closed));
        // Logout ignores unknown fields: `{"password": [[1]]}` is a valid logout, and a valid
        // refresh body too (the token may come from the cookie instead).
        if depth > 0 {
            prop_assert!(details.len() >= 4);
        }
    }
}

/// A header value as a client may send it (only bytes HTTP allows in one).
fn header_value() -> impl Strategy<Value = HeaderValue> {
    prop_oneof![
        "[ -~]{0,40}".prop_map(String::into_bytes),
        prop::collection::vec(any::<u8>(), 0..300),
    ]
    .prop_filter_map("a valid header value", |bytes| {
        HeaderValue::from_bytes(&bytes).ok()
    })
}

/// A request through the extractors, as the server builds it (with its body limit).
fn post(headers: &[(HeaderName, HeaderValue)], body: &[u8]) -> (HttpRequest, Payload) {
    let mut request = TestRequest::post()
        .app_data(web::PayloadConfig::new(MAX_BODY_BYTES))
        .peer_addr("192.0.2.1:4711".parse().unwrap())
        .set_payload(body.to_vec());
    for header in headers {
        request = request.insert_header(header.clone());
    }
    request.to_http_parts()
}

/// An extractor's refusal is one of the answers a client may get for a body.
fn assert_refused_cleanly(error: Error) {
    match error {
        Error::UnsupportedMediaType | Error::PayloadTooLarge => {}
        Error::MalformedRequest(detail) if detail == "The request body could not be read." => {}
        Error::MalformedRequest(detail) => assert_fixed_sentence(&detail),
        other => panic!("unexpected refusal {other:?}"),
    }
}

proptest! {
    #![proptest_config(config(256))]

    #[test]
    fn json_extractors_take_any_headers_and_body(
        content_type in prop::option::weighted(0.9, prop_oneof![
            3 => select(&[
                "application/json", "application/problem+json", "Application/JSON; charset=utf-8",
                "application/json;", "application/json; charset=\"", "application/json ; q==",
            ][..]).prop_map(HeaderValue::from_static),
            1 => select(&[
                "application/*", "application/+json", "text/json", "application/jsonx",
                "multipart/form-data; boundary=\"x\"", "/", ";",
            ][..]).prop_map(HeaderValue::from_static),
            1 => header_value(),
        ]),
        content_length in prop::option::weighted(0.25, prop_oneof![
            "[0-9]{1,24}".prop_map(|n| HeaderValue::from_str(&n).unwrap()),
            header_value(),
        ]),
        body in prop_oneof![
            valid_body().prop_map(|(_, body)| serde_json::to_vec(&body).unwrap()),
            prop::collection::vec(any::<u8>(), 0..128),
            Just(Vec::new()),
            Just(vec![b' '; MAX_BODY_BYTES + 1]),
        ],
    ) {
        let mut headers = Vec::new();
        headers.extend(content_type.map(|value| (header::CONTENT_TYPE, value)));
        headers.extend(content_length.map(|value| (header::CONTENT_LENGTH, value)));
        actix_web::rt::System::new().block_on(async {
            let (request, mut payload) = post(&headers, &body);
            if let Err(error) = Json::<LoginRequest>::from_request(&request, &mut payload).await {
                assert_refused_cleanly(error);
            }
            let (request, mut payload) = post(&headers, &body);
            if let Err(error) = OptionalJson::<LogoutRequest>::from_request(&request, &mut payload).await {
                assert_refused_cleanly(error);
            }
        });
    }

    #[test]
    fn client_info_takes_any_user_agent_and_forwarded_for(
        user_agent in prop::option::of(header_value()),
        forwarded_for in prop::collection::vec(header_value(), 0..3),
    ) {
        let mut request = TestRequest::get().peer_addr("192.0.2.1:4711".parse().unwrap());
        if let Some(value) = user_agent {
            request = request.insert_header((header::USER_AGENT, value));
        }
        for value in forwarded_for {
            request = request.append_header((HeaderName::from_static("x-forwarded-for"), value));
        }
        let request = request.to_http_request();
        let info = actix_web::rt::System::new()
            .block_on(ClientInfo::from_request(&request, &mut Payload::None))
            .unwrap();
        // Without trusted proxies, the peer is the client whatever it claims.
        prop_assert_eq!(info.ip, Some("192.0.2.1".parse().unwrap()));
        if let Some(agent) = info.user_agent {
            prop_assert!(agent.chars().count() <= 256);
        }
    }
}

// --- access tokens ----------------------------------------------------------------------

const ISSUER: &str = "latchkey";
const SEED: [u8; 32] = [7; 32];
const SECRET: &str = "a shared secret of at least thirty-two bytes";

/// A verifier with real keys, and what a forger would need to sign for it.
struct Fixture {
    tokens: AccessTokens,
    alg: &'static str,
    kid: String,
}

impl Fixture {
    fn new(keys: KeySet, alg: &'static str) -> Self {
        let tokens =
            AccessTokens::new(keys, ISSUER.into(), ISSUER.into(), Duration::from_secs(900));
        let token = tokens
            .issue(
                &"user".to_owned().into(),
                &"session".to_owned().into(),
                far_future(),
                latchkey::domain::AuthMethods::Password,
            )
            .unwrap()
            .token;
        let kid = jsonwebtoken::decode_header(&token).unwrap().kid.unwrap();
        Self { tokens, alg, kid }
    }

    fn valid_token(&self) -> String {
        self.tokens
            .issue(
                &"user".to_owned().into(),
                &"session".to_owned().into(),
                far_future(),
                latchkey::domain::AuthMethods::Password,
            )
            .unwrap()
            .token
    }

    /// The real signature, as only the service can make it.
    fn sign(&self, message: &[u8]) -> Vec<u8> {
        match self.alg {
            "EdDSA" => Forger::Ed25519(SEED).sign(message),
            _ => Forger::Hmac(SECRET.as_bytes().to_vec()).sign(message),
        }
    }
}

static EDDSA: LazyLock<Fixture> =
    LazyLock::new(|| Fixture::new(KeySet::from_ed25519_seed(&SEED).unwrap(), "EdDSA"));
static HS256: LazyLock<Fixture> =
    LazyLock::new(|| Fixture::new(KeySet::from_secret(&SecretString::from(SECRET)), "HS256"));

fn fixture(hs256: bool) -> &'static Fixture {
    if hs256 { &HS256 } else { &EDDSA }
}

fn far_future() -> chrono::NaiveDateTime {
    (chrono::Utc::now() + chrono::TimeDelta::days(30)).naive_utc()
}

fn b64(bytes: impl AsRef<[u8]>) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

/// The public key of the EdDSA fixture: the classic material of algorithm confusion.
fn public_key() -> Vec<u8> {
    ed25519_dalek::SigningKey::from_bytes(&SEED)
        .verifying_key()
        .to_bytes()
        .to_vec()
}

/// How a forger signs: with a key of their own, with public material, or not at all.
#[derive(Debug, Clone)]
enum Forger {
    Hmac(Vec<u8>),
    Ed25519([u8; 32]),
    Bytes(Vec<u8>),
}

impl Forger {
    fn sign(&self, message: &[u8]) -> Vec<u8> {
        match self {
            Self::Hmac(key) => {
                let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(key).unwrap();
                mac.update(message);
                mac.finalize().into_bytes().to_vec()
            }
            Self::Ed25519(seed) => ed25519_dalek::SigningKey::from_bytes(seed)
                .sign(message)
                .to_bytes()
                .to_vec(),
            Self::Bytes(bytes) => bytes.clone(),
        }
    }
}

fn forger() -> impl Strategy<Value = Forger> {
    let public = public_key();
    prop_oneof![
        any::<[u8; 32]>()
            .prop_filter("not the real secret", |key| key != SECRET.as_bytes())
            .prop_map(|key| Forger::Hmac(key.to_vec())),
        prop::collection::vec(any::<u8>(), 0..80).prop_map(Forger::Hmac),
        Just(Forger::Hmac(public.clone())),
        Just(Forger::Hmac(b64(&public).into_bytes())),
        Just(Forger::Hmac(Vec::new())),
        any::<[u8; 32]>()
            .prop_filter("not the real key", |seed| *seed != SEED)
            .prop_map(Forger::Ed25519),
        prop::collection::vec(any::<u8>(), 0..80).prop_map(Forger::Bytes),
    ]
}

/// A verifier, with a header for it: often exactly what its own tokens carry, otherwise
/// with `alg`, `kid` or `typ` wrong or missing, and sometimes extra members.
fn fixture_and_header() -> impl Strategy<Value = (bool, Value)> {
    any::<bool>().prop_flat_map(|hs256| (Just(hs256), header(fixture(hs256))))
}

fn header(fixture: &'static Fixture) -> impl Strategy<Value = Value> {
    let alg = prop_oneof![
        select(
            &[
                "EdDSA", "HS256", "none", "None", "NONE", "RS256", "ES256", "HS512", "Ed25519",
            ][..]
        )
        .prop_map(Value::from),
        json_leaf(),
    ];
    let kid = prop_oneof![
        Just(()).prop_map(|()| Value::from(EDDSA.kid.clone())),
        Just(()).prop_map(|()| Value::from(HS256.kid.clone())),
        json_leaf(),
    ];
    let typ = prop_oneof![
        select(&["at+jwt", "AT+JWT", "application/at+jwt", "JWT"][..]).prop_map(Value::from),
        json_leaf(),
    ];
    let member = |right: Value, wrong: BoxedStrategy<Value>| {
        prop::option::weighted(0.95, prop_oneof![4 => Just(right), 1 => wrong])
    };
    (
        prop::collection::vec(("[a-z]{1,4}", json_leaf()), 0..3),
        member(Value::from(fixture.alg), alg.boxed()),
        member(Value::from(fixture.kid.clone()), kid.boxed()),
        member(Value::from("at+jwt"), typ.boxed()),
    )
        .prop_map(|(extra, alg, kid, typ)| {
            let mut header: Map<String, Value> = extra.into_iter().collect();
            for (name, value) in [("alg", alg), ("kid", kid), ("typ", typ)] {
                match value {
                    Some(value) => header.insert(name.into(), value),
                    None => header.remove(name),
                };
            }
            Value::Object(header)
        })
}

/// Claims that would pass (made when the case is generated), sometimes with one member
/// changed or dropped, or arbitrary JSON, or bytes that are not JSON at all.
fn claims() -> impl Strategy<Value = Vec<u8>> {
    let valid = || {
        let now = chrono::Utc::now().timestamp();
        json!({
            "iss": ISSUER, "aud": ISSUER, "sub": "user", "sid": "session",
            "iat": now, "nbf": now, "exp": now + 900, "jti": "jti",
        })
    };
    const MEMBERS: &[&str] = &["iss", "aud", "sub", "sid", "iat", "nbf", "exp", "jti"];
    prop_oneof![
        2 => Just(()).prop_map(move |()| serde_json::to_vec(&valid()).unwrap()),
        3 => (select(MEMBERS), prop::option::of(prop_oneof![
                json_leaf(),
                any::<i64>().prop_map(Value::from),
                (-1_000i64..1_000).prop_map(move |offset| Value::from(chrono::Utc::now().timestamp() + offset)),
                Just(json!([ISSUER])),
            ]))
            .prop_map(move |(member, value)| {
                let mut claims = valid();
                match value {
                    Some(value) => claims[member] = value,
                    None => {
                        claims.as_object_mut().unwrap().remove(member);
                    }
                }
                serde_json::to_vec(&claims).unwrap()
            }),
        1 => json_value().prop_map(|value| serde_json::to_vec(&value).unwrap()),
        1 => prop::collection::vec(any::<u8>(), 0..64),
    ]
}

fn token_of(header: &Value, claims: &[u8], sign: impl Fn(&[u8]) -> Vec<u8>) -> String {
    let message = format!(
        "{}.{}",
        b64(serde_json::to_vec(header).unwrap()),
        b64(claims)
    );
    let signature = sign(message.as_bytes());
    format!("{message}.{}", b64(signature))
}

fn assert_refused(tokens: &AccessTokens, token: &str) {
    match tokens.verify(token) {
        Err(Error::InvalidToken) => {}
        Ok(claims) => panic!("accepted {token:?} with {claims:?}"),
        Err(other) => panic!("{token:?} failed with {other:?}, not InvalidToken"),
    }
}

/// One character changed, removed or inserted.
#[derive(Debug, Clone)]
enum Edit {
    Replace(Index, char),
    Remove(Index),
    Insert(Index, char),
}

fn edit() -> impl Strategy<Value = Edit> {
    let character = || {
        prop_oneof![
            3 => select(
                "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_.=+/ "
                    .chars()
                    .collect::<Vec<_>>()
            ),
            1 => any::<char>(),
        ]
    };
    prop_oneof![
        (any::<Index>(), character()).prop_map(|(at, c)| Edit::Replace(at, c)),
        any::<Index>().prop_map(Edit::Remove),
        (any::<Index>(), character()).prop_map(|(at, c)| Edit::Insert(at, c)),
    ]
}

/// Tokens are ASCII, so byte positions are character positions.
fn apply_edit(token: &str, edit: &Edit) -> String {
    let mut edited = token.to_owned();
    match edit {
        Edit::Replace(at, c) => {
            let at = at.index(token.len());
            edited.replace_range(at..=at, &c.to_string());
        }
        Edit::Remove(at) => {
            edited.remove(at.index(token.len()));
        }
        Edit::Insert(at, c) => edited.insert(at.index(token.len() + 1), *c),
    }
    edited
}

#[test]
fn the_token_fixtures_accept_their_own_tokens() {
    for hs256 in [false, true] {
        let fixture = fixture(hs256);
        assert!(fixture.tokens.verify(&fixture.valid_token()).is_ok());
        // The hand-made tokens of the properties below are accepted when signed for real,
        // so their refusal is the signature's doing.
        let now = chrono::Utc::now().timestamp();
        let header = json!({"alg": fixture.alg, "typ": "at+jwt", "kid": fixture.kid});
        let claims = json!({
            "iss": ISSUER, "aud": ISSUER, "sub": "u", "sid": "s",
            "iat": now, "nbf": now, "exp": now + 60, "jti": "j",
        });
        let token = token_of(&header, &serde_json::to_vec(&claims).unwrap(), |message| {
            fixture.sign(message)
        });
        assert!(fixture.tokens.verify(&token).is_ok(), "{}", fixture.alg);
    }
}

proptest! {
    #![proptest_config(config(256))]

    #[test]
    fn arbitrary_strings_are_never_tokens(
        hs256 in any::<bool>(),
        token in prop_oneof![
            any::<String>(),
            "[A-Za-z0-9_-]{0,120}\\.[A-Za-z0-9_-]{0,200}\\.[A-Za-z0-9_-]{0,90}",
            "[A-Za-z0-9_=.+/-]{0,200}",
            "(eyJ[A-Za-z0-9_-]{0,60}\\.){1,4}[A-Za-z0-9_-]{0,60}",
        ],
    ) {
        assert_refused(&fixture(hs256).tokens, &token);
    }

    #[test]
    fn a_valid_token_with_one_character_changed_is_refused(
        hs256 in any::<bool>(),
        edit in edit(),
    ) {
        let fixture = fixture(hs256);
        let token = fixture.valid_token();
        let edited = apply_edit(&token, &edit);
        prop_assume!(edited != token, "the edit changed nothing");
        assert_refused(&fixture.tokens, &edited);
    }

    #[test]
    fn tokens_signed_without_the_key_are_refused(
        (hs256, header) in fixture_and_header(),
        claims in claims(),
        forger in forger(),
    ) {
        let token = token_of(&header, &claims, |message| forger.sign(message));
        assert_refused(&fixture(hs256).tokens, &token);
        // The signature of the other key set's algorithm does not help either.
        let token = token_of(&header, &claims, |message| fixture(!hs256).sign(message));
        assert_refused(&fixture(hs256).tokens, &token);
    }

    /// Signed with the real key, arbitrary headers and claims exercise the claim checks:
    /// nothing panics, and what is accepted passes every check of the contract.
    #[test]
    fn tokens_signed_with_the_key_are_accepted_only_when_every_check_passes(
        (hs256, header) in fixture_and_header(),
        claims in claims(),
    ) {
        let fixture = fixture(hs256);
        let token = token_of(&header, &claims, |message| fixture.sign(message));
        if let Ok(accepted) = fixture.tokens.verify(&token) {
            let now = chrono::Utc::now().timestamp();
            prop_assert_eq!(&header["alg"], &json!(fixture.alg));
            prop_assert_eq!(&header["kid"], &json!(fixture.kid));
            let typ = header["typ"].as_str().unwrap_or_default().to_ascii_lowercase();
            prop_assert!(typ == "at+jwt" || typ == "application/at+jwt", "{}", typ);
            prop_assert_eq!(accepted.iss.as_str(), ISSUER);
            prop_assert_eq!(accepted.aud.as_str(), ISSUER);
            prop_assert!(accepted.exp >= now - 5, "expired: {:?}", accepted);
            prop_assert!(accepted.nbf <= now + 5, "not yet valid: {:?}", accepted);
        }
    }
}

// --- the other parsers ------------------------------------------------------------------

fn email_like() -> impl Strategy<Value = String> {
    prop_oneof![
        any::<String>(),
        "[ \t]{0,2}[A-Za-z0-9._%+!#-]{1,70}@[A-Za-z0-9.-]{1,70}[ \t]{0,2}",
        "\\PC{1,12}@\\PC{1,12}\\.[a-zA-Z]{2,6}",
        // Around the 254-character limit.
        (
            "[a-zA-Z0-9]{1,64}",
            prop::collection::vec("[a-zA-Z0-9-]{1,63}", 1..6),
            "[a-z]{2,6}"
        )
            .prop_map(|(local, labels, tld)| format!("{local}@{}.{tld}", labels.join("."))),
    ]
}

fn ip_pool() -> impl Strategy<Value = IpAddr> {
    prop_oneof![
        select(
            [
                "10.0.0.1",
                "10.1.2.3",
                "192.168.1.1",
                "203.0.113.9",
                "127.0.0.1",
                "::1",
                "fd00::1",
                "2001:db8::1",
                "::ffff:10.0.0.1",
            ]
            .map(|ip| ip.parse::<IpAddr>().unwrap())
            .to_vec()
        ),
        any::<IpAddr>(),
    ]
}

fn network() -> impl Strategy<Value = IpNet> {
    prop_oneof![
        select(
            [
                "10.0.0.0/8",
                "192.168.0.0/16",
                "127.0.0.1/32",
                "fd00::/8",
                "::1/128",
                "0.0.0.0/0"
            ]
            .map(|net| net.parse::<IpNet>().unwrap())
            .to_vec()
        ),
        (ip_pool(), any::<u8>()).prop_map(|(ip, prefix)| {
            let max = if ip.is_ipv4() { 32 } else { 128 };
            IpNet::new(ip, prefix % (max + 1)).unwrap().trunc()
        }),
    ]
}

fn hop() -> impl Strategy<Value = String> {
    prop_oneof![
        4 => (ip_pool(), "[ \t]{0,2}", "[ \t]{0,2}").prop_map(|(ip, l, r)| format!("{l}{ip}{r}")),
        1 => "[ -~]{0,16}",
        1 => any::<String>(),
    ]
}

/// The client named by the doc comment of `client_address`, written independently.
fn expected_client(peer: IpAddr, hops: &[&str], trusted: &[IpNet]) -> IpAddr {
    let is_trusted = |ip: &IpAddr| trusted.iter().any(|net| net.contains(ip));
    if !is_trusted(&peer) {
        return peer;
    }
    let parsed: Vec<Option<IpAddr>> = hops.iter().map(|hop| hop.trim().parse().ok()).collect();
    // The nearest hop that is not a trusted address, counting from the right.
    match (0..parsed.len())
        .rev()
        .find(|&i| !parsed[i].is_some_and(|ip| is_trusted(&ip)))
    {
        Some(i) => match parsed[i] {
            Some(untrusted) => untrusted,
            // Garbage: the last hop that could be checked, the one to its right, or the peer.
            None => parsed.get(i + 1).copied().flatten().unwrap_or(peer),
        },
        None => parsed.first().copied().flatten().unwrap_or(peer),
    }
}

proptest! {
    #![proptest_config(config(256))]

    #[test]
    fn refresh_tokens_parse_only_their_own_encoding(
        raw in prop_oneof![
            any::<String>(),
            "[ \t\n]{0,2}[A-Za-z0-9_-]{40,46}[ \t\n=]{0,2}",
            "[A-Za-z0-9_+/=-]{43}",
            "[ \t\n]{0,2}[A-Za-z0-9_-]{62,66}[ \t\n=]{0,2}",
        ]
    ) {
        if let Some(token) = RefreshToken::parse(&raw) {
            prop_assert_eq!(token.encode(), raw.trim());
            prop_assert_eq!(token.digest().len(), 32);
        }
    }

    #[test]
    fn refresh_tokens_round_trip(bytes in any::<[u8; 32]>(), pad in "[ \t\r\n]{0,3}") {
        let encoded = b64(bytes);
        let token = RefreshToken::parse(&format!("{pad}{encoded}{pad}"));
        prop_assert_eq!(token.map(|token| token.encode()), Some(encoded));
    }

    #[test]
    fn emails_are_stored_normalised_and_short(raw in email_like()) {
        match Email::parse(&raw) {
            Ok(email) => {
                let stored = email.as_str();
                prop_assert_eq!(stored, Email::normalize_for_lookup(&raw));
                let domain = stored.rsplit_once('@').map(|(_, domain)| domain);
                prop_assert!(domain.is_some_and(|domain| domain.is_ascii()), "{}", stored);
                prop_assert_eq!(stored, stored.to_lowercase());
                prop_assert!(stored.chars().count() <= 254);
                prop_assert!(stored.contains('@'));
                prop_assert!(!stored.chars().any(char::is_control));
                prop_assert_eq!(Email::parse(stored).ok(), Some(email.clone()));
            }
            Err(error) => {
                prop_assert_eq!(error.field, "email");
                prop_assert!(["invalid_email", "email_too_long"].contains(&error.code));
            }
        }
    }

    #[test]
    fn usernames_are_3_to_32_allowed_characters(
        raw in prop_oneof![any::<String>(), "[A-Za-z0-9_.@ -]{0,40}"]
    ) {
        let allowed = |c: char| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-');
        let valid = (3..=32).contains(&raw.len()) && raw.chars().all(allowed);
        match Username::parse(&raw) {
            Ok(username) => {
                prop_assert!(valid, "{:?}", raw);
                prop_assert_eq!(username.as_str(), raw.as_str());
            }
            Err(error) => {
                prop_assert!(!valid, "{:?}", raw);
                prop_assert_eq!(error.code, "invalid_username");
            }
        }
    }

    #[test]
    fn new_passwords_follow_the_rules(
        raw in prop_oneof![any::<String>(), "\\PC{6,10}", "[a-z0-9]{6,10}", "\\PC{120,135}"],
        identity in prop::collection::vec(prop_oneof![any::<String>(), email_like()], 0..3),
    ) {
        let identity: Vec<&str> = identity.iter().map(String::as_str).collect();
        match NewPassword::parse("new_password", SecretString::from(raw.clone()), &identity) {
            Ok(_) => {
                prop_assert!((8..=128).contains(&raw.chars().count()));
                let lowered = raw.to_lowercase();
                prop_assert!(identity.iter().all(|value| value.trim().to_lowercase() != lowered));
            }
            Err(error) => {
                prop_assert_eq!(error.field, "new_password");
                prop_assert!([
                    "password_too_short",
                    "password_too_long",
                    "password_matches_identity",
                    "password_too_common",
                ]
                .contains(&error.code));
            }
        }
    }

    #[test]
    fn a_new_password_may_not_be_the_identity(
        raw in "\\PC{8,128}".prop_filter("no surrounding whitespace", |raw| raw.trim() == raw)
    ) {
        // The account's own email or username, in other letter case and untrimmed.
        let identity = format!("  {}\t", raw.to_ascii_uppercase());
        let error = NewPassword::parse("password", SecretString::from(raw.clone()), &[&identity])
            .unwrap_err();
        prop_assert_eq!(error.code, "password_matches_identity");
    }

    #[test]
    fn database_urls_select_a_backend_or_explain(
        raw in prop_oneof![
            any::<String>(),
            "[ ]{0,2}(postgres|postgresql|sqlite|mysql|)(:|://|)[ -~]{0,24}",
            "[a-z/._-]{0,12}(:memory:|mode=memory)?[a-z/._-]{0,12}",
        ]
    ) {
        match DatabaseUrl::parse(&raw) {
            Ok(DatabaseUrl::Postgres(url)) => {
                prop_assert_eq!(url.as_str(), raw.trim());
                prop_assert!(url.starts_with("postgres://") || url.starts_with("postgresql://"));
            }
            Ok(DatabaseUrl::Sqlite(path)) => {
                prop_assert!(!path.is_empty());
                prop_assert!(raw.trim().ends_with(path.as_str()));
                prop_assert!(!path.contains(":memory:") && !path.contains("mode=memory"));
                prop_assert!(!path.contains("://"));
            }
            Err(problem) => prop_assert!(!problem.is_empty()),
        }
    }

    #[test]
    fn durations_never_panic_and_stay_within_ten_years(raw in any::<String>()) {
        if let Ok(duration) = parse_duration(&raw) {
            prop_assert!(duration <= Duration::from_secs(10 * 365 * 86_400));
        }
    }

    #[test]
    fn durations_accept_every_number_with_a_unit_in_range(
        value in prop_oneof![0u64..=400_000_000, any::<u64>()],
        unit in select(&[("", 1u64), ("s", 1), ("m", 60), ("h", 3_600), ("d", 86_400)][..]),
        zeros in "0{0,3}",
        pad in "[ \t]{0,2}",
    ) {
        let raw = format!("{pad}{zeros}{value}{}{pad}", unit.0);
        let expected = value
            .checked_mul(unit.1)
            .filter(|&seconds| seconds <= 10 * 365 * 86_400)
            .map(Duration::from_secs);
        prop_assert_eq!(parse_duration(&raw).ok(), expected, "{:?}", raw);
    }

    #[test]
    fn the_client_address_is_the_first_untrusted_hop(
        (peer, trusted) in (ip_pool(), prop::collection::vec(network(), 0..4), any::<u8>())
            .prop_map(|(peer, mut trusted, prefix)| {
                // Often behind a proxy of ours.
                if prefix % 4 != 0 {
                    let max = if peer.is_ipv4() { 32 } else { 128 };
                    trusted.push(IpNet::new(peer, prefix % (max + 1)).unwrap().trunc());
                }
                (peer, trusted)
            }),
        headers in prop::collection::vec(
            prop::collection::vec(hop(), 0..4).prop_map(|hops| hops.join(",")),
            0..3,
        ),
    ) {
        let hops: Vec<&str> = headers.iter().flat_map(|header| header.split(',')).collect();
        let client = client_address(peer, headers.iter().map(String::as_str), &trusted);
        prop_assert_eq!(client, expected_client(peer, &hops, &trusted));
        if !trusted.iter().any(|net| net.contains(&peer)) {
            prop_assert_eq!(client, peer);
        }
        prop_assert!(
            client == peer || hops.iter().any(|hop| hop.trim().parse() == Ok(client)),
            "{} is neither the peer nor a hop", client
        );
    }
}
