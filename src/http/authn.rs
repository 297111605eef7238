//! Bearer authentication for protected routes: handlers take [`Authenticated`] and never
//! read headers themselves. The token's signature and claims are checked, and then that its
//! session is still live, so a logout or revocation takes effect on the very next request.

use actix_web::dev::Payload;
use actix_web::http::header;
use actix_web::{FromRequest, HttpRequest, web};
use futures_util::future::LocalBoxFuture;

use super::AppState;
use crate::auth::sessions;
use crate::db::sessions::Session;
use crate::db::users::User;
use crate::error::Error;

/// The caller of a protected route: a live session of an existing user.
#[derive(Debug, Clone)]
pub struct Authenticated {
    pub user_id: String,
    pub session_id: String,
}

/// The caller and their account, read in the same query as the session check.
#[derive(Debug, Clone)]
pub struct AuthenticatedUser {
    pub caller: Authenticated,
    pub user: User,
}

impl FromRequest for Authenticated {
    type Error = Error;
    type Future = LocalBoxFuture<'static, Result<Self, Error>>;

    fn from_request(request: &HttpRequest, _: &mut Payload) -> Self::Future {
        let caller = authenticate(request);
        Box::pin(async move {
            let (session, _) = caller.await?;
            Ok(Authenticated::from(session))
        })
    }
}

impl FromRequest for AuthenticatedUser {
    type Error = Error;
    type Future = LocalBoxFuture<'static, Result<Self, Error>>;

    fn from_request(request: &HttpRequest, _: &mut Payload) -> Self::Future {
        let caller = authenticate(request);
        Box::pin(async move {
            let (session, user) = caller.await?;
            Ok(AuthenticatedUser {
                caller: Authenticated::from(session),
                user,
            })
        })
    }
}

impl From<Session> for Authenticated {
    fn from(session: Session) -> Self {
        Authenticated {
            user_id: session.user_id,
            session_id: session.id,
        }
    }
}

/// Checks the bearer token, then that its session is live now and still the token's user's;
/// answers the session and its user.
fn authenticate(request: &HttpRequest) -> LocalBoxFuture<'static, Result<(Session, User), Error>> {
    let state = request.app_data::<web::Data<AppState>>().cloned();
    // Owned, so that a token naming an unknown key can wait for a reload of the keys.
    let token = bearer_token(request).map(str::to_owned);
    Box::pin(async move {
        let token = token?;
        let state = state
            .ok_or_else(|| Error::internal(anyhow::anyhow!("application state is missing")))?;
        let claims = state.tokens.verify_or_reload(&token).await?;
        state
            .session_checks
            .find_with_user(claims.sid.clone())
            .await?
            .filter(|(session, _)| sessions::is_live_for(session, &claims.sub, &state.policy))
            .ok_or(Error::InvalidToken)
    })
}

/// The token of an `Authorization: Bearer` header. Any other scheme, or none, is a missing
/// token (RFC 6750 §3.1: no credentials, no error code).
fn bearer_token(request: &HttpRequest) -> Result<&str, Error> {
    let Some(value) = request.headers().get(header::AUTHORIZATION) else {
        return Err(Error::MissingToken);
    };
    let value = value.to_str().map_err(|_| Error::InvalidToken)?;
    let (scheme, token) = value.trim().split_once(' ').unwrap_or((value.trim(), ""));
    if !scheme.eq_ignore_ascii_case("bearer") {
        return Err(Error::MissingToken);
    }
    match token.trim() {
        "" => Err(Error::InvalidToken),
        token => Ok(token),
    }
}
