//! `POST /refresh`: exchange a refresh token for a new pair (rotation with reuse detection).

use actix_web::http::StatusCode;
use actix_web::{HttpResponse, web};
use serde::Deserialize;

use super::AppState;
use super::extract::Json;
use super::problem::Problem;
use super::responses::{TokenBody, token_response};
use crate::auth::refresh_token::RefreshToken;
use crate::auth::sessions::{self, Rotation};
use crate::db::{self, users};
use crate::error::Error;

#[derive(Deserialize, utoipa::ToSchema)]
pub struct RefreshRequest {
    /// The `refresh_token` of the last token response.
    refresh_token: String,
}

/// Exchange a refresh token for a new pair. The presented token is retired; within the
/// grace window it answers again with the same successor, so concurrent refreshes converge.
#[utoipa::path(post, path = "/refresh", tag = "auth", operation_id = "refresh",
    request_body = RefreshRequest,
    responses(
        (status = 200, description = "A fresh access token and the successor refresh token.", body = TokenBody,
            headers(("Cache-Control" = String, description = "Always `no-store`."))),
        (status = 401, description = "`invalid_refresh_token`: unknown, expired or revoked. `refresh_token_reused`: a retired token was replayed, and the session is now revoked.", body = Problem, content_type = "application/problem+json"),
    ))]
#[tracing::instrument(name = "refresh", skip_all)]
pub async fn refresh(
    state: web::Data<AppState>,
    Json(request): Json<RefreshRequest>,
) -> Result<HttpResponse, Error> {
    let presented =
        RefreshToken::parse(&request.refresh_token).ok_or(Error::InvalidRefreshToken)?;
    let policy = state.policy;
    let outcome = state
        .db
        .run(move |conn| {
            db::write_transaction(conn, |conn| {
                match sessions::rotate(conn, &presented, &policy)? {
                    Rotation::Continued(continued) => {
                        // Disabling an account revokes its sessions; refusing here too
                        // keeps a disabled account out should one have been missed.
                        let user = users::find(conn, &continued.session.user_id)?
                            .filter(|user| user.disabled_at.is_none())
                            .ok_or(Error::InvalidRefreshToken)?;
                        Ok::<_, Error>(Some((user, continued)))
                    }
                    Rotation::Reused => Ok(None),
                }
            })
        })
        .await?;
    let (user, continued) = outcome.ok_or(Error::RefreshTokenReused)?;
    token_response(&state, StatusCode::OK, user, continued)
}
