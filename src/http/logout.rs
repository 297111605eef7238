//! `POST /logout`: end this session, the others, or all of the user's sessions.

use actix_web::{HttpResponse, web};
use serde::Deserialize;

use super::AppState;
use super::authn::Authenticated;
use super::extract::OptionalJson;
use crate::auth::sessions::reason;
use crate::db::{self, sessions};
use crate::error::Error;

/// `local`: this session; `others`: every other session of the user; `global`: all of them.
#[derive(Debug, Default, Clone, Copy, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Scope {
    #[default]
    Local,
    Others,
    Global,
}

#[derive(Deserialize, utoipa::ToSchema)]
pub struct LogoutRequest {
    #[serde(default)]
    #[schema(default = "local")]
    scope: Scope,
}

/// End this session (the default), the user's other sessions, or all of them. Their access
/// and refresh tokens stop working at once. The body is optional.
#[utoipa::path(post, path = "/logout", tag = "auth", operation_id = "logout",
    request_body(content = LogoutRequest, description = "Optional; without it the scope is `local`."),
    responses((status = 204, description = "The sessions are revoked.")),
    security(("bearer" = [])))]
#[tracing::instrument(name = "logout", skip_all, fields(user_id = %caller.user_id))]
pub async fn logout(
    state: web::Data<AppState>,
    caller: Authenticated,
    OptionalJson(request): OptionalJson<LogoutRequest>,
) -> Result<HttpResponse, Error> {
    let scope = request.map(|request| request.scope).unwrap_or_default();
    let revoked = state
        .db
        .run(move |conn| {
            let now = db::now();
            let (user, session) = (&caller.user_id, &caller.session_id);
            Ok(match scope {
                Scope::Local => sessions::revoke(conn, session, now, reason::LOGOUT)?,
                Scope::Others => sessions::revoke_all_of_user(
                    conn,
                    user,
                    Some(session),
                    now,
                    reason::LOGOUT_OTHERS,
                )?,
                Scope::Global => {
                    sessions::revoke_all_of_user(conn, user, None, now, reason::LOGOUT_GLOBAL)?
                }
            })
        })
        .await?;
    tracing::info!(?scope, revoked, "logged out");
    Ok(HttpResponse::NoContent().finish())
}
