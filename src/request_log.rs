//! One log line per request: method, route, status and latency. Never headers or bodies,
//! which carry passwords and tokens.

use std::time::Instant;

use actix_web::Error;
use actix_web::body::MessageBody;
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::middleware::Next;

pub async fn log_request(
    request: ServiceRequest,
    next: Next<impl MessageBody>,
) -> Result<ServiceResponse<impl MessageBody>, Error> {
    let started = Instant::now();
    let method = request.method().clone();
    // The route pattern (`/sessions/{id}`), not the path, so that ids stay out of the logs.
    let route = request
        .match_pattern()
        .unwrap_or_else(|| "<unmatched>".to_owned());
    let response = next.call(request).await?;
    tracing::info!(
        %method,
        route,
        status = response.status().as_u16(),
        latency_ms = started.elapsed().as_secs_f64() * 1000.0,
        "request"
    );
    Ok(response)
}
