//! The response bodies of `API.md` ("Objects"), and the token response shared by signup,
//! login and refresh.

use actix_web::HttpResponse;
use actix_web::http::StatusCode;
use actix_web::http::header;
use chrono::{NaiveDateTime, SecondsFormat};
use serde::Serialize;

use super::AppState;
use super::refresh_cookie::{self, Transport};
use crate::auth::sessions::Granted;
use crate::db;
use crate::db::sessions::Session;
use crate::db::users::User;
use crate::domain::SessionId;
use crate::error::Error;

/// RFC 3339 in UTC, to the second: `2026-11-27T10:00:00Z`.
pub fn timestamp(at: NaiveDateTime) -> String {
    at.and_utc().to_rfc3339_opts(SecondsFormat::Secs, true)
}

#[derive(Serialize, utoipa::ToSchema)]
#[schema(as = User)]
pub struct UserBody {
    #[schema(format = Uuid)]
    pub id: String,
    #[schema(examples("ada@example.com"))]
    pub email: String,
    #[schema(required = true, examples("ada"))]
    pub username: Option<String>,
    /// Whether the account proved it holds `email` (with a mailed code).
    pub email_verified: bool,
    /// The second factors a login needs besides the password: `totp` once it is confirmed.
    #[schema(inline, examples(json!([]), json!(["totp"])))]
    pub mfa: Vec<SecondFactorKind>,
    #[schema(format = DateTime)]
    pub created_at: String,
}

/// A kind of second factor.
#[derive(Serialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum SecondFactorKind {
    Totp,
}

impl From<User> for UserBody {
    fn from(user: User) -> Self {
        Self {
            id: user.id.into(),
            email: user.email,
            username: user.username,
            email_verified: user.email_verified_at.is_some(),
            mfa: user
                .totp_enabled_at
                .map(|_| SecondFactorKind::Totp)
                .into_iter()
                .collect(),
            created_at: timestamp(user.created_at),
        }
    }
}

#[derive(Serialize, utoipa::ToSchema)]
#[schema(as = Session)]
pub struct SessionBody {
    #[schema(format = Uuid)]
    pub id: String,
    #[schema(format = DateTime)]
    pub created_at: String,
    /// The last login or refresh.
    #[schema(format = DateTime)]
    pub last_used_at: String,
    /// The absolute end; the session also ends when idle too long.
    #[schema(format = DateTime)]
    pub expires_at: String,
    #[schema(required = true, examples("curl/8.5.0"))]
    pub user_agent: Option<String>,
    #[schema(required = true, examples("127.0.0.1"))]
    pub ip: Option<String>,
    /// Whether this is the session of the token making the request.
    pub current: bool,
}

impl SessionBody {
    pub fn new(session: Session, current_session_id: &SessionId) -> Self {
        Self {
            current: session.id == *current_session_id,
            id: session.id.into(),
            created_at: timestamp(session.created_at),
            last_used_at: timestamp(session.last_used_at),
            expires_at: timestamp(session.expires_at),
            user_agent: session.user_agent,
            ip: session.ip,
        }
    }
}

#[derive(Serialize, utoipa::ToSchema)]
#[schema(as = TokenResponse)]
pub struct TokenBody {
    /// A JWT (`typ: at+jwt`) for `Authorization: Bearer`. Its claims (RFC 9068): `iss`,
    /// `aud`, `sub` (the user's id), `sid` (the session's id), `iat`, `nbf`, `exp`, `jti`,
    /// and `amr` (RFC 8176), how the session's login proved who it was: `["pwd"]`, or
    /// `["pwd", "otp"]` after a second factor, `["hwk"]` after a passkey.
    access_token: String,
    #[schema(examples("Bearer"))]
    token_type: &'static str,
    /// Seconds until the access token expires.
    #[schema(examples(900))]
    expires_in: i64,
    /// Opaque; exchange it at `/refresh` for a new pair. Keep it secret. `null` when
    /// `refresh_token_transport` is `cookie`: the token is then in the
    /// `__Host-latchkey_refresh` cookie instead.
    #[schema(required = true)]
    refresh_token: Option<String>,
    user: UserBody,
}

/// A fresh access token for the session, with its refresh token in the body or in the
/// cookie. Never cached (RFC 6749 §5.1).
pub fn token_response(
    state: &AppState,
    status: StatusCode,
    Granted { user, continued }: Granted,
    transport: Transport,
) -> Result<HttpResponse, Error> {
    let access = state.auth.tokens.issue(
        &user.id,
        &continued.session.id,
        continued.session.expires_at,
        continued.session.amr,
    )?;
    let refresh_token = continued.refresh_token.encode();
    let (refresh_token, cookie) = match transport {
        Transport::Body => (Some(refresh_token), None),
        Transport::Cookie => {
            // The browser keeps the cookie until the session's absolute end (API.md). An
            // idle session ends earlier on the server, which then refuses the cookie.
            let remaining = (continued.session.expires_at - db::now()).num_seconds();
            (
                None,
                Some(refresh_cookie::holding(refresh_token, remaining)),
            )
        }
    };
    let body = TokenBody {
        access_token: access.token,
        token_type: "Bearer",
        expires_in: access.expires_in,
        refresh_token,
        user: user.into(),
    };
    let mut response = HttpResponse::build(status);
    response
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .insert_header((header::PRAGMA, "no-cache"));
    if let Some(cookie) = cookie {
        response.cookie(cookie);
    }
    Ok(response.json(body))
}

/// A response with private data: never stored by a shared or browser cache.
pub fn private_json(body: impl Serialize) -> HttpResponse {
    HttpResponse::Ok()
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .json(body)
}
