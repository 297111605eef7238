//! `GET /metrics`: this instance's Prometheus metrics.

use actix_web::{HttpResponse, web};

use super::AppState;
use super::problem::Problem;
use crate::error::Error;
use crate::metrics::CONTENT_TYPE;

/// This instance's metrics in the Prometheus text format: requests and latency by route and
/// status, signups, logins by outcome, refreshes, refresh-token reuse, logouts by scope, the
/// hashing queue and the database pool. Answered without the database. Operators usually
/// keep it from the public at their proxy, or turn it off with `LATCHKEY_METRICS=off`.
#[utoipa::path(get, path = "/metrics", tag = "metrics", operation_id = "metrics",
    responses(
        (status = 200, description = "The metrics, in the Prometheus text exposition format 0.0.4.",
            body = String, content_type = "text/plain; version=0.0.4"),
        (status = 404, description = "`not_found`: `LATCHKEY_METRICS=off`.", body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn metrics(state: web::Data<AppState>) -> Result<HttpResponse, Error> {
    if !state.metrics_enabled {
        return Err(Error::NotFound);
    }
    Ok(HttpResponse::Ok()
        .content_type(CONTENT_TYPE)
        .insert_header((actix_web::http::header::CACHE_CONTROL, "no-store"))
        .body(state.metrics.render()))
}
