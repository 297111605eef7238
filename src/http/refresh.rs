//! `POST /refresh`: exchange a refresh token for a new pair (rotation with reuse detection).

use actix_web::http::StatusCode;
use actix_web::{HttpResponse, web};
use serde::Deserialize;

use super::AppState;
use super::extract::Json;
use super::responses::token_response;
use crate::auth::refresh_token::RefreshToken;
use crate::auth::sessions::{self, Rotation};
use crate::db::{self, users};
use crate::error::Error;

#[derive(Deserialize)]
pub struct RefreshRequest {
    refresh_token: String,
}

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
