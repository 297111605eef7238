//! Cross-origin access for browser frontends on other origins: only the origins listed in
//! `LATCHKEY_CORS_ORIGINS` get CORS headers (none by default). Requests from other origins
//! are still served; the browser withholds the response from the page.

use actix_cors::Cors;
use actix_web::http::{Method, header};

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
