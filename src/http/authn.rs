//! Bearer authentication for protected routes: handlers take [`Caller`] (or
//! [`AuthenticatedUser`]) and never read headers themselves. The rule is
//! [`sessions::authenticate`]; its failure is the handler's answer.

use actix_web::dev::Payload;
use actix_web::http::header;
use actix_web::{FromRequest, HttpRequest, web};
use futures_util::future::LocalBoxFuture;

use super::AppState;
use crate::auth::sessions::{self, Caller};
use crate::db::sessions::Session;
use crate::db::users::User;
use crate::error::Error;

/// The caller and their account, read in the same query as the session check.
#[derive(Debug, Clone)]
pub struct AuthenticatedUser {
    pub caller: Caller,
    pub user: User,
}

impl FromRequest for Caller {
    type Error = Error;
    type Future = LocalBoxFuture<'static, Result<Self, Error>>;

    fn from_request(request: &HttpRequest, _: &mut Payload) -> Self::Future {
        let caller = authenticate(request);
        Box::pin(async move {
            let (session, _) = caller.await?;
            Ok(Caller::from(session))
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
                caller: Caller::from(session),
                user,
            })
        })
    }
}

/// The session of the request's bearer token, and its user.
fn authenticate(request: &HttpRequest) -> LocalBoxFuture<'static, Result<(Session, User), Error>> {
    let state = request.app_data::<web::Data<AppState>>().cloned();
    // Owned, so that a token naming an unknown key can wait for a reload of the keys.
    let token = bearer_token(request).map(str::to_owned);
    Box::pin(async move {
        let token = token?;
        let state = state
            .ok_or_else(|| Error::internal(anyhow::anyhow!("application state is missing")))?;
        sessions::authenticate(&state.auth, &token).await
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
