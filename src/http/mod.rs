//! The HTTP layer: routes, extractors and the mapping of errors to problem documents.
//! Handlers are thin: they parse the request, call the one function of `auth` that holds the
//! endpoint's rule, and shape the response.

mod authn;
pub mod client_address;
mod cors;
mod email;
mod events;
pub mod extract;
mod health;
mod login;
mod logout;
mod me;
pub mod metrics;
mod mfa;
pub mod openapi;
mod page;
mod passkeys;
pub mod problem;
mod recovery;
mod refresh;
pub mod refresh_cookie;
pub mod request_log;
mod responses;
mod sessions;
mod signup;
mod webauthn_json;
mod well_known;

use actix_web::{Resource, Route, web};

pub use cors::{cors, only_for_allowed_origins};
pub use extract::MAX_BODY_BYTES;
// The request bodies, for tests that feed them to `extract::parse_json` (tests/fuzz.rs).
pub use email::{ChangeEmailRequest, VerifyEmailRequest};
pub use login::LoginRequest;
pub use logout::LogoutRequest;
pub use me::{ChangePasswordRequest, DeleteAccountRequest};
pub use mfa::{ConfirmTotpRequest, DisableTotpRequest, EnrolTotpRequest, LoginMfaRequest};
pub use recovery::{ForgotPasswordRequest, ResetPasswordRequest};
pub use refresh::RefreshRequest;
pub use signup::SignupRequest;

use crate::auth::Auth;
use crate::error::Error;

/// What every handler may use, shared by all workers.
pub struct AppState {
    /// The flows, and what they share.
    pub auth: Auth,
    /// Proxies whose `X-Forwarded-For` (and `-Host`, `-Proto`) is believed.
    pub trusted_proxies: Vec<ipnet::IpNet>,
    /// `LATCHKEY_CORS_ORIGINS`: besides CORS, the foreign origins whose pages may use the
    /// refresh cookie.
    pub cors_origins: Vec<String>,
    /// The longest a client may take to send a request head, or a body.
    pub client_timeout: std::time::Duration,
    /// This application's counters, gauges and histograms, shared with the metrics listener
    /// that serves them (and kept when `LATCHKEY_METRICS=off` turns it off).
    pub metrics: std::sync::Arc<crate::metrics::Metrics>,
}

/// Registers every route of `API.md` served on the public listener (`GET /metrics` has a
/// listener of its own: [`metrics::routes`]).
pub fn routes(config: &mut web::ServiceConfig) {
    config
        .service(resource("/signup", "POST").route(web::post().to(signup::signup)))
        .service(
            resource("/signup/passkey/start", "POST").route(web::post().to(passkeys::start_signup)),
        )
        .service(
            resource("/signup/passkey/finish", "POST")
                .route(web::post().to(passkeys::finish_signup)),
        )
        .service(resource("/login", "POST").route(web::post().to(login::login)))
        .service(resource("/login/mfa", "POST").route(web::post().to(mfa::login)))
        .service(
            resource("/login/passkey/start", "POST").route(web::post().to(passkeys::start_login)),
        )
        .service(
            resource("/login/passkey/finish", "POST").route(web::post().to(passkeys::finish_login)),
        )
        .service(resource("/refresh", "POST").route(web::post().to(refresh::refresh)))
        .service(resource("/logout", "POST").route(web::post().to(logout::logout)))
        .service(
            resource("/me", "GET, HEAD, DELETE")
                .route(get().to(me::show))
                .route(web::delete().to(me::delete)),
        )
        .service(resource("/me/password", "POST").route(web::post().to(me::change_password)))
        .service(
            resource("/me/mfa/totp", "POST, DELETE")
                .route(web::post().to(mfa::enrol))
                .route(web::delete().to(mfa::disable)),
        )
        .service(resource("/me/mfa/totp/confirm", "POST").route(web::post().to(mfa::confirm)))
        .service(
            resource("/me/passkeys/register/start", "POST")
                .route(web::post().to(passkeys::start_registration)),
        )
        .service(
            resource("/me/passkeys/register/finish", "POST")
                .route(web::post().to(passkeys::finish_registration)),
        )
        .service(resource("/me/passkeys", "GET, HEAD").route(get().to(passkeys::list)))
        .service(
            resource("/me/passkeys/{id}", "PATCH, DELETE")
                .route(web::patch().to(passkeys::rename))
                .route(web::delete().to(passkeys::delete)),
        )
        .service(resource("/me/email", "POST").route(web::post().to(email::change)))
        .service(
            resource("/me/email/verification", "POST")
                .route(web::post().to(email::send_verification)),
        )
        .service(resource("/me/events", "GET, HEAD").route(get().to(events::list)))
        .service(resource("/password/forgot", "POST").route(web::post().to(recovery::forgot)))
        .service(resource("/password/reset", "POST").route(web::post().to(recovery::reset)))
        .service(resource("/email/verify", "POST").route(web::post().to(email::verify)))
        .service(resource("/sessions", "GET, HEAD").route(get().to(sessions::list)))
        .service(resource("/sessions/{id}", "DELETE").route(web::delete().to(sessions::end)))
        .service(resource("/.well-known/jwks.json", "GET, HEAD").route(get().to(well_known::jwks)))
        .service(resource("/healthz", "GET, HEAD").route(get().to(health::healthz)))
        .service(resource("/readyz", "GET, HEAD").route(get().to(health::readyz)))
        .configure(openapi::routes)
        .configure(page::routes)
        .default_service(web::to(not_found));
}

/// What any path that matches no route answers.
async fn not_found() -> Result<actix_web::HttpResponse, Error> {
    Err(Error::NotFound)
}

/// A resource whose unmatched methods answer `405` with an `Allow` header.
fn resource(path: &str, allow: &'static str) -> Resource {
    web::resource(path).default_service(web::to(move || async move {
        Err::<actix_web::HttpResponse, _>(Error::MethodNotAllowed { allow })
    }))
}

/// GET, which also answers HEAD.
fn get() -> Route {
    web::route().guard(actix_web::guard::Any(actix_web::guard::Get()).or(actix_web::guard::Head()))
}
