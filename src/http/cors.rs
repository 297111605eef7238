//! Cross-origin access for browser frontends on other origins: only the origins listed in
//! `LATCHKEY_CORS_ORIGINS` get CORS headers (none by default). Requests from other origins
//! are still served; the browser withholds the response from the page.

use actix_cors::Cors;
use actix_web::body::MessageBody;
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::{Method, header};
use actix_web::middleware::Next;

/// How long a browser may cache a preflight answer, in seconds.
const PREFLIGHT_MAX_AGE: usize = 600;

pub fn cors(allowed_origins: &[String]) -> Cors {
    let cors = allowed_origins
        .iter()
        .fold(Cors::default(), |cors, origin| cors.allowed_origin(origin));
    cors.allowed_methods([Method::GET, Method::HEAD, Method::POST, Method::DELETE])
        .allowed_headers([header::AUTHORIZATION, header::CONTENT_TYPE, header::ACCEPT])
        .expose_headers([
            header::WWW_AUTHENTICATE,
            header::RETRY_AFTER,
            header::HeaderName::from_static("x-request-id"),
        ])
        // Credentials let a listed origin use the refresh-token cookie.
        .supports_credentials()
        .max_age(PREFLIGHT_MAX_AGE)
}

/// actix-cors adds `Access-Control-Allow-Credentials` and `-Expose-Headers` to every
/// response, whatever its `Origin`: CORS headers on an answer to a request from no listed
/// origin only tell a stranger what it may not use. They go unless the response allows an
/// origin. (Wrapped around [`cors`].)
pub async fn only_for_allowed_origins(
    request: ServiceRequest,
    next: Next<impl MessageBody>,
) -> Result<ServiceResponse<impl MessageBody>, actix_web::Error> {
    let mut response = next.call(request).await?;
    let headers = response.headers_mut();
    if !headers.contains_key(header::ACCESS_CONTROL_ALLOW_ORIGIN) {
        headers.remove(header::ACCESS_CONTROL_ALLOW_CREDENTIALS);
        headers.remove(header::ACCESS_CONTROL_EXPOSE_HEADERS);
    }
    Ok(response)
}
