//! One log line per request (method, route, status, latency, request id) and its count and
//! latency in the metrics. Never headers or bodies, which carry passwords and tokens.
//!
//! Each request runs in a `request` span carrying its id, so every event logged while it is
//! handled carries the id too. The id is the request's `X-Request-Id` when that is sane (1 to
//! 128 visible ASCII characters), otherwise a new UUID v7; the response echoes it.

use std::time::Instant;

use actix_web::body::MessageBody;
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::header::{HeaderName, HeaderValue};
use actix_web::middleware::Next;
use actix_web::{Error, web};
use tracing::Instrument as _;

use super::AppState;
use crate::metrics::{self, UNMATCHED_ROUTE};

pub const REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// The longest `X-Request-Id` taken from a client.
const MAX_REQUEST_ID_LEN: usize = 128;

pub async fn log_request(
    request: ServiceRequest,
    next: Next<impl MessageBody>,
) -> Result<ServiceResponse<impl MessageBody>, Error> {
    let started = Instant::now();
    let method = metrics::method_label(request.method());
    // The route pattern (`/sessions/{id}`), not the path, so that ids stay out of the logs
    // and a flood of made-up paths adds no label value.
    let route = request
        .match_pattern()
        .unwrap_or_else(|| UNMATCHED_ROUTE.to_owned());
    let request_id = request
        .headers()
        .get(&REQUEST_ID)
        .and_then(|value| value.to_str().ok())
        .filter(|value| is_sane_request_id(value))
        .map_or_else(|| uuid::Uuid::now_v7().to_string(), str::to_owned);
    let state = request.app_data::<web::Data<AppState>>().cloned();
    let span = tracing::info_span!("request", request_id = %request_id);
    let outcome = next.call(request).instrument(span.clone()).await;
    let latency = started.elapsed();
    let status = match &outcome {
        Ok(response) => response.status(),
        Err(error) => error.as_response_error().status_code(),
    };
    span.in_scope(|| {
        tracing::info!(
            method,
            route,
            status = status.as_u16(),
            latency_ms = latency.as_secs_f64() * 1000.0,
            "request"
        );
    });
    if let Some(state) = state {
        state.metrics.request(method, &route, status, latency);
    }
    let mut response = outcome?;
    if let Ok(value) = HeaderValue::from_str(&request_id) {
        response.headers_mut().insert(REQUEST_ID, value);
    }
    Ok(response)
}

/// 1 to 128 visible ASCII characters: nothing that could forge a log line or bloat it.
fn is_sane_request_id(value: &str) -> bool {
    (1..=MAX_REQUEST_ID_LEN).contains(&value.len())
        && value.bytes().all(|byte| byte.is_ascii_graphic())
}

#[cfg(test)]
mod tests {
    use super::is_sane_request_id;

    #[test]
    fn only_short_visible_ascii_ids_are_taken() {
        assert!(is_sane_request_id("abc-123_XYZ:/.="));
        assert!(is_sane_request_id(&"a".repeat(128)));
        assert!(!is_sane_request_id(""));
        assert!(!is_sane_request_id(&"a".repeat(129)));
        assert!(!is_sane_request_id("with space"));
        assert!(!is_sane_request_id("tab\there"));
        assert!(!is_sane_request_id("é"));
        assert!(!is_sane_request_id("line\nbreak"));
    }
}
