//! `POST /logout`: end this session, the others, or all of the user's sessions.

use actix_web::{HttpRequest, HttpResponse, web};
use serde::Deserialize;

use super::AppState;
use super::extract::OptionalJson;
use super::refresh_cookie;
use crate::auth::client::ClientInfo;
use crate::auth::refresh_token::RefreshToken;
use crate::auth::sessions::{self, Caller, Scope};
use crate::error::Error;

#[derive(Deserialize, utoipa::ToSchema)]
pub struct LogoutRequest {
    #[serde(default)]
    #[schema(default = "local")]
    scope: Scope,
}

/// End this session (the default), the user's other sessions, or all of them. Their access
/// and refresh tokens stop working at once. The body is optional.
///
/// The account's events get a `logout` for the caller's session when it ends (`local`,
/// `global`) and a `session_revoked` for every other session ended (`others`, `global`).
///
/// The `__Host-latchkey_refresh` cookie is cleared when the request carries it and its
/// session has ended, or, when the request does not carry it, when the caller's own session
/// has ended (scope `local` or `global`).
#[utoipa::path(post, path = "/logout", tag = "auth", operation_id = "logout",
    request_body(content = LogoutRequest, description = "Optional; without it the scope is `local`."),
    responses((status = 204, description = "The sessions are revoked.")),
    security(("bearer" = [])))]
#[tracing::instrument(name = "logout", skip_all, fields(user_id = %caller.user_id))]
pub async fn logout(
    state: web::Data<AppState>,
    http_request: HttpRequest,
    caller: Caller,
    client: ClientInfo,
    OptionalJson(request): OptionalJson<LogoutRequest>,
) -> Result<HttpResponse, Error> {
    let scope = request.map(|request| request.scope).unwrap_or_default();
    sessions::log_out(&state.auth, caller, scope, client).await?;
    state.metrics.logout(scope.label());
    // The cookie goes when the session it holds has ended, now or before. A carried cookie may
    // hold another session than the caller's (two apps on one origin): then it stays. A client
    // may also hold the cookie without sending it (a cookie jar keeps a `Secure` cookie back
    // over plain HTTP), so without one the answer clears it whenever the caller's own session
    // ends: one header where there is no cookie, against a dead cookie kept. With `others`
    // the caller's session, and so its cookie, lives on.
    let clear_cookie = match refresh_cookie::presented(&http_request) {
        Some(token) => match RefreshToken::parse(&token) {
            Some(token) => !sessions::holds_live_session(&state.auth, token).await?,
            None => true,
        },
        None => !matches!(scope, Scope::Others),
    };
    let mut response = HttpResponse::NoContent();
    if clear_cookie {
        response.cookie(refresh_cookie::removal());
    }
    Ok(response.finish())
}
