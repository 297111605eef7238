//! `POST /logout`: end this session, the others, or all of the user's sessions.

use actix_web::{HttpRequest, HttpResponse, web};
use serde::Deserialize;

use super::AppState;
use super::authn::Authenticated;
use super::extract::OptionalJson;
use super::refresh_cookie;
use crate::auth::events::{self, EventKind};
use crate::auth::refresh_token::RefreshToken;
use crate::auth::sessions::{ClientInfo, holds_live_session, reason};
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

impl Scope {
    /// The scope as the API spells it, for logs and metrics.
    fn label(self) -> &'static str {
        match self {
            Self::Local => "local",
            Self::Others => "others",
            Self::Global => "global",
        }
    }
}

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
    caller: Authenticated,
    client: ClientInfo,
    OptionalJson(request): OptionalJson<LogoutRequest>,
) -> Result<HttpResponse, Error> {
    let scope = request.map(|request| request.scope).unwrap_or_default();
    let cookie = refresh_cookie::presented(&http_request);
    let policy = state.policy;
    let session_id = caller.session_id.clone();
    let (revoked, clear_cookie) = state
        .db
        .run(move |conn| {
            let at = policy.liveness(db::now());
            let (user, session) = (&caller.user_id, &caller.session_id);
            let revoked = db::write_transaction(conn, |conn| {
                let (own, others) = match scope {
                    Scope::Local => (
                        sessions::revoke(conn, session, at.now, reason::LOGOUT)?,
                        vec![],
                    ),
                    Scope::Others => (
                        0,
                        sessions::revoke_all_of_user(
                            conn,
                            user,
                            Some(session),
                            at,
                            reason::LOGOUT_OTHERS,
                        )?,
                    ),
                    Scope::Global => {
                        let own = sessions::revoke(conn, session, at.now, reason::LOGOUT_GLOBAL)?;
                        let others = sessions::revoke_all_of_user(
                            conn,
                            user,
                            None,
                            at,
                            reason::LOGOUT_GLOBAL,
                        )?;
                        (own, others)
                    }
                };
                if own == 1 {
                    events::record(conn, user, EventKind::Logout, &client, Some(session))?;
                }
                events::record_revoked(conn, user, &client, &others)?;
                Ok::<_, Error>(own + others.len())
            })?;
            // The cookie goes when the session it holds has ended, now or before. A carried
            // cookie may hold another session than the caller's (two apps on one origin):
            // then it stays. A client may also hold the cookie without sending it (a cookie
            // jar keeps a `Secure` cookie back over plain HTTP), so without one the answer
            // clears it whenever the caller's own session ends: one header where there is
            // no cookie, against a dead cookie kept. With `others` the caller's session, and
            // so its cookie, lives on.
            let clear_cookie = match &cookie {
                Some(token) => match RefreshToken::parse(token) {
                    Some(token) => !holds_live_session(conn, &token, &policy)?,
                    None => true,
                },
                None => !matches!(scope, Scope::Others),
            };
            Ok((revoked, clear_cookie))
        })
        .await?;
    state.metrics.logout(scope.label());
    tracing::info!(event = "logged_out", %session_id, scope = scope.label(), revoked, clear_cookie, "logged out");
    let mut response = HttpResponse::NoContent();
    if clear_cookie {
        response.cookie(refresh_cookie::removal());
    }
    Ok(response.finish())
}
