//! The metrics listener: `GET /metrics` and nothing else, on `LATCHKEY_METRICS_BIND`.
//!
//! It is an application of its own, beside the public one, so that the metrics (traffic,
//! failure rates, load) never answer on the public port, whatever a proxy in front does.
//! It shares the public application's registry, but none of its middleware: no CORS (no
//! browser page calls it), and no request log or request metrics (a scrape every few
//! seconds would drown the API's own lines, and `latchkey_http_requests_total` counts the
//! API's routes).

use actix_web::{HttpResponse, web};

use crate::metrics::{CONTENT_TYPE, Metrics};

/// The metrics listener's one route. Any other path is `404` and any other method `405`,
/// problem documents like the public listener's.
pub fn routes(config: &mut web::ServiceConfig) {
    config
        .service(super::resource("/metrics", "GET, HEAD").route(super::get().to(metrics)))
        .default_service(web::to(super::not_found));
}

/// This instance's metrics in the Prometheus text format: requests and latency by route and
/// status, signups, logins by outcome, refreshes, refresh-token reuse, logouts by scope, the
/// hashing queue and the database pool. Answered without the database.
async fn metrics(metrics: web::Data<Metrics>) -> HttpResponse {
    HttpResponse::Ok()
        .content_type(CONTENT_TYPE)
        .insert_header((actix_web::http::header::CACHE_CONTROL, "no-store"))
        .body(metrics.render())
}
