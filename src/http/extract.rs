//! Request extractors whose failures are our problem documents: a JSON body parser that
//! never echoes submitted values, and the client's address and user agent.

use std::future::{Ready, ready};

use actix_web::dev::Payload;
use actix_web::error::PayloadError;
use actix_web::http::header::{self, HeaderName};
use actix_web::mime;
use actix_web::{FromRequest, HttpMessage as _, HttpRequest, web};
use futures_util::future::LocalBoxFuture;
use serde::de::DeserializeOwned;
use serde_json::error::Category;

use super::AppState;
use super::client_address::client_address;
use crate::auth::client::ClientInfo;
use crate::error::Error;

/// Bodies larger than this are refused, by `Content-Length` before any byte is read.
pub const MAX_BODY_BYTES: usize = 64 * 1024;
/// Used when the application state is missing (it never is outside unit tests).
const DEFAULT_BODY_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);
/// Longer user agents are cut: the session list shows them, and they are attacker-chosen.
const MAX_USER_AGENT_CHARS: usize = 256;

/// A JSON request body. Unlike actix-web's own, its errors never quote the body (serde's
/// messages repeat the offending value, which may be a password).
pub struct Json<T>(pub T);

impl<T: DeserializeOwned + 'static> FromRequest for Json<T> {
    type Error = Error;
    type Future = LocalBoxFuture<'static, Result<Self, Error>>;

    fn from_request(request: &HttpRequest, payload: &mut Payload) -> Self::Future {
        let body = json_body(request, payload);
        Box::pin(async move { parse_json(&body.await?).map(Json) })
    }
}

/// A JSON body that may be absent altogether (no body, or an empty one), as the body of
/// `POST /logout` is. A body that is present must be valid.
pub struct OptionalJson<T>(pub Option<T>);

impl<T: DeserializeOwned + 'static> FromRequest for OptionalJson<T> {
    type Error = Error;
    type Future = LocalBoxFuture<'static, Result<Self, Error>>;

    fn from_request(request: &HttpRequest, payload: &mut Payload) -> Self::Future {
        let declared_empty = request
            .headers()
            .get(header::CONTENT_LENGTH)
            .is_none_or(|length| length.as_bytes() == b"0");
        if declared_empty && !request.headers().contains_key(header::CONTENT_TYPE) {
            return Box::pin(ready(Ok(OptionalJson(None))));
        }
        let body = json_body(request, payload);
        Box::pin(async move {
            let body = body.await?;
            // Generated clients send `Content-Type: application/json` even without a body.
            if body.trim_ascii().is_empty() {
                return Ok(OptionalJson(None));
            }
            parse_json(&body).map(|value| OptionalJson(Some(value)))
        })
    }
}

/// The raw body of a request that declares JSON, read up to [`MAX_BODY_BYTES`].
fn json_body(
    request: &HttpRequest,
    payload: &mut Payload,
) -> LocalBoxFuture<'static, Result<web::Bytes, Error>> {
    let is_json = has_json_content_type(request) && !is_encoded(request);
    let timeout = request
        .app_data::<web::Data<AppState>>()
        .map_or(DEFAULT_BODY_TIMEOUT, |state| state.client_timeout);
    let body = web::Bytes::from_request(request, payload);
    Box::pin(async move {
        if !is_json {
            return Err(Error::UnsupportedMediaType);
        }
        // A client trickling its body would otherwise hold the connection for ever.
        actix_web::rt::time::timeout(timeout, body)
            .await
            .map_err(|_| Error::RequestTimeout)?
            .map_err(payload_error)
    })
}

/// Whether the body comes with a `Content-Encoding` other than `identity`. Such a body is
/// refused unread: decompressed, a few kilobytes could expand far past [`MAX_BODY_BYTES`],
/// which is checked against the bytes received.
fn is_encoded(request: &HttpRequest) -> bool {
    request
        .headers()
        .get_all(header::CONTENT_ENCODING)
        .any(|value| match value.to_str() {
            Ok(codings) => codings
                .split(',')
                .any(|coding| !coding.trim().eq_ignore_ascii_case("identity")),
            Err(_) => true,
        })
}

fn has_json_content_type(request: &HttpRequest) -> bool {
    let Ok(Some(mime)) = request.mime_type() else {
        return false;
    };
    mime.type_() == mime::APPLICATION
        && (mime.subtype() == mime::JSON || mime.suffix() == Some(mime::JSON))
}

fn payload_error(error: actix_web::Error) -> Error {
    match error.as_error::<PayloadError>() {
        Some(PayloadError::Overflow) => Error::PayloadTooLarge,
        _ => Error::MalformedRequest("The request body could not be read.".into()),
    }
}

/// Parses JSON, naming the failing field but never its value.
///
/// Every request body is an object: serde would otherwise read a struct from an array of its
/// field values.
pub fn parse_json<T: DeserializeOwned>(body: &[u8]) -> Result<T, Error> {
    let first = body.iter().find(|byte| !b" \t\r\n".contains(byte));
    if first != Some(&b'{') {
        serde_json::from_slice::<serde::de::IgnoredAny>(body)
            .map_err(|error| describe(".", &error))?;
        return Err(Error::MalformedRequest(
            "The request body must be a JSON object.".into(),
        ));
    }
    let mut deserializer = serde_json::Deserializer::from_slice(body);
    let value = serde_path_to_error::deserialize(&mut deserializer).map_err(|error| {
        let path = error.path().to_string();
        describe(&path, &error.into_inner())
    })?;
    deserializer.end().map_err(|error| describe(".", &error))?;
    Ok(value)
}

fn describe(path: &str, error: &serde_json::Error) -> Error {
    let detail = match error.classify() {
        Category::Data => {
            let message = error.to_string();
            if let Some(missing) = message.strip_prefix("missing field ") {
                let missing = missing.split(" at line").next().unwrap_or(missing);
                format!("The required field {missing} is missing.")
            } else if path == "." {
                "The request body must be a JSON object.".to_owned()
            } else {
                format!("The field `{path}` has the wrong type or value.")
            }
        }
        Category::Syntax | Category::Eof | Category::Io => format!(
            "The request body is not valid JSON (line {}, column {}).",
            error.line(),
            error.column()
        ),
    };
    Error::MalformedRequest(detail)
}

impl FromRequest for ClientInfo {
    type Error = Error;
    type Future = Ready<Result<Self, Error>>;

    fn from_request(request: &HttpRequest, _: &mut Payload) -> Self::Future {
        let user_agent = request
            .headers()
            .get(header::USER_AGENT)
            .and_then(|value| value.to_str().ok())
            .map(|agent| agent.chars().take(MAX_USER_AGENT_CHARS).collect());
        let trusted = request
            .app_data::<web::Data<AppState>>()
            .map_or(&[][..], |state| &state.trusted_proxies[..]);
        let forwarded_for = request
            .headers()
            .get_all(HeaderName::from_static("x-forwarded-for"))
            .filter_map(|value| value.to_str().ok());
        let ip = request
            .peer_addr()
            .map(|peer| client_address(peer.ip(), forwarded_for, trusted));
        ready(Ok(ClientInfo { user_agent, ip }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, serde::Deserialize)]
    #[allow(dead_code)]
    struct Login {
        email: String,
        password: String,
    }

    fn detail(body: &str) -> String {
        match parse_json::<Login>(body.as_bytes()) {
            Err(Error::MalformedRequest(detail)) => detail,
            other => panic!("expected a malformed request, got {other:?}"),
        }
    }

    #[test]
    fn names_the_field_without_its_value() {
        let detail = detail(r#"{"email": "a@b.io", "password": 31415926535}"#);
        assert!(detail.contains("`password`"), "{detail}");
        assert!(!detail.contains("31415926535"), "{detail}");
    }

    #[test]
    fn reports_missing_fields_syntax_errors_and_trailing_data() {
        assert!(detail(r#"{"email": "a@b.io"}"#).contains("`password`"));
        assert!(detail(r#"{"email": "#).contains("not valid JSON"));
        assert!(detail(r#"{"email": "a", "password": "b"} x"#).contains("not valid JSON"));
        assert!(detail("[1, 2]").contains("JSON object"));
        assert!(detail("[1, 2").contains("not valid JSON"));
    }

    #[test]
    fn refuses_arrays_even_of_the_right_length() {
        assert!(detail(r#"["a@b.io", "secret"]"#).contains("JSON object"));
        assert!(detail(r#" "text" "#).contains("JSON object"));
    }
}
