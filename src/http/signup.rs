//! `POST /signup`: create an account and log it in.

use actix_web::http::StatusCode;
use actix_web::{HttpResponse, web};
use secrecy::SecretString;
use serde::Deserialize;

use super::AppState;
use super::extract::Json;
use super::problem::Problem;
use super::refresh_cookie::Transport;
use super::responses::{TokenBody, token_response};
use crate::auth::accounts::{self, NewAccount};
use crate::auth::client::ClientInfo;
use crate::error::Error;

#[derive(Deserialize, utoipa::ToSchema)]
pub struct SignupRequest {
    /// A valid address of at most 254 characters, without invisible or control characters;
    /// stored trimmed and lowercased, the local part NFKC-normalised and the domain as
    /// punycode (UTS #46), so that look-alike spellings of one mailbox are one address.
    #[schema(format = Email, examples("ada@example.com"))]
    email: String,
    /// 8 to 128 characters, not a common password, not the email or username.
    #[schema(value_type = String, min_length = 8, max_length = 128,
        examples("correct horse battery staple"))]
    password: SecretString,
    /// 3 to 32 characters of `A-Z a-z 0-9 _ . -`, unique ignoring case. Optional; `null` is
    /// the same as leaving it out.
    #[schema(pattern = "^[A-Za-z0-9_.-]{3,32}$", examples("ada"))]
    username: Option<String>,
    /// `body` when left out; `cookie` for browser apps: the refresh token is set as an
    /// `HttpOnly` cookie instead of being returned in the body.
    // No `default` in the schema: openapi-typescript would make the field required.
    #[serde(default)]
    refresh_token_transport: Transport,
}

/// Create an account; the new user is logged in.
#[utoipa::path(post, path = "/signup", tag = "auth", operation_id = "signup",
    request_body = SignupRequest,
    responses(
        (status = 201, description = "The account exists and this is its first session.", body = TokenBody,
            headers(("Cache-Control" = String, description = "Always `no-store`."))),
        (status = 409, description = "`email_taken` or `username_taken` (compared ignoring case).", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "`validation_failed`: every invalid field is listed in `errors`.", body = Problem, content_type = "application/problem+json"),
        (status = 429, description = "`too_many_attempts`: this address has signed up `LATCHKEY_SIGNUP_IP_MAX` times (default 20) within the hour, whatever the answers were.", body = Problem, content_type = "application/problem+json",
            headers(("Retry-After" = u64, description = "Seconds until a signup is allowed again."))),
    ))]
#[tracing::instrument(name = "signup", skip_all)]
pub async fn signup(
    state: web::Data<AppState>,
    client: ClientInfo,
    Json(request): Json<SignupRequest>,
) -> Result<HttpResponse, Error> {
    let transport = request.refresh_token_transport;
    let account = NewAccount::parse(
        &request.email,
        request.username.as_deref(),
        request.password,
    )?;
    let granted = accounts::sign_up(&state.auth, account, client).await?;
    state.metrics.signups.inc();
    token_response(&state, StatusCode::CREATED, granted, transport)
}
