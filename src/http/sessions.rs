//! `GET /sessions` and `DELETE /sessions/{id}`: the caller's live sessions.

use actix_web::{HttpResponse, web};

use super::AppState;
use super::problem::Problem;
use super::responses::{SessionBody, private_json};
use crate::auth::client::ClientInfo;
use crate::auth::sessions::{self, Caller};
use crate::domain::SessionId;
use crate::error::Error;

/// The caller's live sessions, most recently used first; `current` marks this one.
#[utoipa::path(get, path = "/sessions", tag = "sessions", operation_id = "listSessions",
    responses((status = 200, description = "The live sessions.", body = Vec<SessionBody>,
        headers(("Cache-Control" = String, description = "Always `no-store`.")))),
    security(("bearer" = [])))]
#[tracing::instrument(name = "list_sessions", skip_all, fields(user_id = %caller.user_id))]
pub async fn list(state: web::Data<AppState>, caller: Caller) -> Result<HttpResponse, Error> {
    let live = sessions::list(&state.auth, caller.user_id.clone()).await?;
    let body: Vec<SessionBody> = live
        .into_iter()
        .map(|session| SessionBody::new(session, &caller.session_id))
        .collect();
    Ok(private_json(body))
}

/// End one of the caller's sessions (the current one too). Someone else's session, an
/// unknown one and an ended one are all the same `404`.
#[utoipa::path(delete, path = "/sessions/{id}", tag = "sessions", operation_id = "endSession",
    params(("id" = String, Path, description = "The session's id.", format = Uuid)),
    responses(
        (status = 204, description = "The session is revoked."),
        (status = 404, description = "`not_found`: no live session of the caller has this id.", body = Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = [])))]
#[tracing::instrument(name = "end_session", skip_all, fields(user_id = %caller.user_id))]
pub async fn end(
    state: web::Data<AppState>,
    caller: Caller,
    client: ClientInfo,
    path: web::Path<String>,
) -> Result<HttpResponse, Error> {
    // Session ids are UUIDs; anything else names no session (and never reaches the query).
    let session_id = SessionId::parse(&path.into_inner()).ok_or(Error::NotFound)?;
    sessions::end_one(&state.auth, caller, session_id, client).await?;
    Ok(HttpResponse::NoContent().finish())
}
