//! `POST /refresh`: exchange a refresh token for a new pair (rotation with reuse detection).
//! The token comes from the body, or, for browser apps, from the `__Host-latchkey_refresh`
//! cookie (see `refresh_cookie`).

use actix_web::dev::Payload;
use actix_web::http::StatusCode;
use actix_web::{FromRequest, HttpRequest, HttpResponse, web};
use futures_util::future::LocalBoxFuture;
use serde::Deserialize;

use super::AppState;
use super::extract::{Json, OptionalJson};
use super::problem::Problem;
use super::refresh_cookie::{self, Allowed, Transport};
use super::responses::{TokenBody, token_response};
use crate::auth::client::ClientInfo;
use crate::auth::refresh_token::RefreshToken;
use crate::auth::sessions;
use crate::error::Error;

#[derive(Deserialize, utoipa::ToSchema)]
pub struct RefreshRequest {
    /// The `refresh_token` of the last token response. Leave it out (or `null`) to use the
    /// `__Host-latchkey_refresh` cookie instead; without the cookie it is required.
    #[schema(nullable = false)]
    refresh_token: Option<String>,
    /// Where the successor goes; `body` when left out. A refresh with the cookie always
    /// answers with the cookie, whatever this says: the token never moves from the cookie to
    /// where scripts can read it.
    // No `default` in the schema: openapi-typescript would make the field required.
    #[serde(default)]
    refresh_token_transport: Transport,
}

/// The refresh token a request presents, and where its successor goes.
pub struct Presented {
    token: String,
    transport: Transport,
}

/// Without the cookie, the body must name the token, as for clients that never use one.
/// With it, the CSRF rules come first (so a cross-site form is a `403`, not a `415`), the
/// body may be empty, and a token in the body takes precedence: an explicit credential
/// beats an ambient one, and the cookie is then left alone.
impl FromRequest for Presented {
    type Error = Error;
    type Future = LocalBoxFuture<'static, Result<Self, Error>>;

    fn from_request(request: &HttpRequest, payload: &mut Payload) -> Self::Future {
        let Some(cookie) = refresh_cookie::presented(request) else {
            let body = Json::<RefreshRequest>::from_request(request, payload);
            return Box::pin(async move {
                let Json(body) = body.await?;
                let token = body.refresh_token.ok_or_else(missing_token)?;
                Ok(Presented {
                    token,
                    transport: body.refresh_token_transport,
                })
            });
        };
        let checked = match request.app_data::<web::Data<AppState>>() {
            Some(state) => refresh_cookie::check_csrf(
                request,
                &Allowed {
                    origins: &state.cors_origins,
                    trusted_proxies: &state.trusted_proxies,
                },
            ),
            None => Err(Error::internal(anyhow::anyhow!(
                "application state is missing"
            ))),
        };
        if let Err(error) = checked {
            return Box::pin(std::future::ready(Err(error)));
        }
        let body = OptionalJson::<RefreshRequest>::from_request(request, payload);
        Box::pin(async move {
            let OptionalJson(body) = body.await?;
            Ok(match body {
                Some(RefreshRequest {
                    refresh_token: Some(token),
                    refresh_token_transport,
                }) => Presented {
                    token,
                    transport: refresh_token_transport,
                },
                _ => Presented {
                    token: cookie,
                    transport: Transport::Cookie,
                },
            })
        })
    }
}

/// The answer any missing required field gets.
fn missing_token() -> Error {
    Error::MalformedRequest("The required field `refresh_token` is missing.".into())
}

/// Exchange a refresh token for a new pair. The presented token is retired; within the
/// grace window it answers again with the same successor, so concurrent refreshes converge.
///
/// The token is the body's `refresh_token` or, when the body has none, the
/// `__Host-latchkey_refresh` cookie (the successor is then set as that cookie again, and the
/// body's `refresh_token` is `null`). A request carrying the cookie must be
/// `Content-Type: application/json` and, when it has an `Origin`, come from this service's
/// origin or one of `LATCHKEY_CORS_ORIGINS`. With the cookie the body may be `{}` or empty.
#[utoipa::path(post, path = "/refresh", tag = "auth", operation_id = "refresh",
    request_body = RefreshRequest,
    responses(
        (status = 200, description = "A fresh access token and the successor refresh token.", body = TokenBody,
            headers(("Cache-Control" = String, description = "Always `no-store`."))),
        (status = 400, description = "`malformed_request`: the body is not JSON, or JSON of the wrong shape; or it has no `refresh_token` and the request no cookie.", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "`invalid_refresh_token`: unknown, expired or revoked. `refresh_token_reused`: a retired token was replayed, and the session is now revoked.", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "`csrf_rejected`: the request carries the refresh cookie but is not `application/json`, or comes from an origin that is neither this service's nor in `LATCHKEY_CORS_ORIGINS`.", body = Problem, content_type = "application/problem+json"),
    ),
    security((), ("refresh_cookie" = [])))]
#[tracing::instrument(name = "refresh", skip_all)]
pub async fn refresh(
    state: web::Data<AppState>,
    client: ClientInfo,
    presented: Presented,
) -> Result<HttpResponse, Error> {
    let Presented { token, transport } = presented;
    let presented = RefreshToken::parse(&token).ok_or(Error::InvalidRefreshToken)?;
    let outcome = sessions::refresh(&state.auth, presented, client).await;
    state.metrics.refresh(&outcome);
    token_response(&state, StatusCode::OK, outcome?, transport)
}
