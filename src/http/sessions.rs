//! `GET /sessions` and `DELETE /sessions/{id}`: the caller's live sessions.

use actix_web::{HttpResponse, web};

use super::AppState;
use super::authn::Authenticated;
use super::problem::Problem;
use super::responses::{SessionBody, private_json};
use crate::auth::events;
use crate::auth::sessions::{ClientInfo, is_live_for, reason};
use crate::db::{self, sessions};
use crate::error::Error;

/// The caller's live sessions, most recently used first; `current` marks this one.
#[utoipa::path(get, path = "/sessions", tag = "sessions", operation_id = "listSessions",
    responses((status = 200, description = "The live sessions.", body = Vec<SessionBody>,
        headers(("Cache-Control" = String, description = "Always `no-store`.")))),
    security(("bearer" = [])))]
#[tracing::instrument(name = "list_sessions", skip_all, fields(user_id = %caller.user_id))]
pub async fn list(
    state: web::Data<AppState>,
    caller: Authenticated,
) -> Result<HttpResponse, Error> {
    let policy = state.policy;
    let user_id = caller.user_id.clone();
    let live = state
        .db
        .run(move |conn| {
            Ok(sessions::list_live(
                conn,
                &user_id,
                policy.liveness(db::now()),
            )?)
        })
        .await?;
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
    caller: Authenticated,
    client: ClientInfo,
    path: web::Path<String>,
) -> Result<HttpResponse, Error> {
    // Session ids are UUIDs; anything else names no session (and never reaches the query).
    let session_id = uuid::Uuid::try_parse(&path.into_inner())
        .map_err(|_| Error::NotFound)?
        .to_string();
    let ended = session_id.clone();
    let policy = state.policy;
    state
        .db
        .run(move |conn| {
            db::write_transaction(conn, |conn| {
                let now = db::now();
                let owned_and_live = sessions::find(conn, &session_id)?
                    .is_some_and(|session| is_live_for(&session, &caller.user_id, &policy));
                if !owned_and_live
                    || sessions::revoke(conn, &session_id, now, reason::ENDED_BY_USER)? == 0
                {
                    return Err(Error::NotFound);
                }
                let ended = [session_id];
                events::record_revoked(conn, &caller.user_id, &client, &ended)
            })
        })
        .await?;
    tracing::info!(event = "session_revoked", session_id = %ended, "session ended by its user");
    Ok(HttpResponse::NoContent().finish())
}
