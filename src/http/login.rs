//! `POST /login`: exchange an email or username and a password for a session.

use actix_web::http::StatusCode;
use actix_web::{HttpResponse, web};
use secrecy::SecretString;
use serde::Deserialize;
use utoipa::openapi::RefOr;
use utoipa::openapi::schema::{
    AllOfBuilder, ObjectBuilder, OneOfBuilder, RefBuilder, Schema, SchemaType, Type,
};

use super::AppState;
use super::extract::Json;
use super::problem::Problem;
use super::refresh_cookie::Transport;
use super::responses::{TokenBody, token_response};
use crate::auth::client::ClientInfo;
use crate::auth::login::{self, Identifier};
use crate::error::Error;

/// Exactly one of `email` and `username`, and the password. A `null` is the same as leaving
/// the field out.
#[derive(Deserialize)]
pub struct LoginRequest {
    email: Option<String>,
    username: Option<String>,
    password: SecretString,
    #[serde(default)]
    refresh_token_transport: Transport,
}

/// The fields, and `oneOf` for "exactly one of `email` and `username`", which the derived
/// schema cannot say: a request with both or neither is schema-invalid, as the `422` says.
impl utoipa::PartialSchema for LoginRequest {
    fn schema() -> RefOr<Schema> {
        let text = |example: &str| {
            ObjectBuilder::new()
                .schema_type(Type::String)
                .examples([example])
        };
        let text_or_null = |example: &str| {
            ObjectBuilder::new()
                .schema_type(SchemaType::from_iter([Type::String, Type::Null]))
                .examples([example])
        };
        let fields = ObjectBuilder::new()
            .property("email", text_or_null("ada@example.com"))
            .property("username", text_or_null("ada"))
            .property("password", text("correct horse battery staple"))
            .property(
                "refresh_token_transport",
                RefBuilder::new()
                    .ref_location_from_schema_name("RefreshTokenTransport")
                    // No `default`: openapi-typescript would make the field required.
                    .description(Some(
                        "`body` when left out; `cookie` for browser apps: the refresh token is \
                         set as an `HttpOnly` cookie instead of being returned in the body.",
                    )),
            )
            .required("password");
        let given = |field: &str| {
            ObjectBuilder::new()
                .property(field, ObjectBuilder::new().schema_type(Type::String))
                .required(field)
        };
        AllOfBuilder::new()
            .description(Some(
                "Exactly one of `email` and `username` (a `null` counts as absent), and the \
                 password.",
            ))
            .item(fields)
            .item(
                OneOfBuilder::new()
                    .item(given("email"))
                    .item(given("username")),
            )
            .into()
    }
}

impl utoipa::ToSchema for LoginRequest {}

/// Log in with an email or a username and the password; opens a new session.
#[utoipa::path(post, path = "/login", tag = "auth", operation_id = "login",
    request_body = LoginRequest,
    responses(
        (status = 200, description = "A new session.", body = TokenBody,
            headers(("Cache-Control" = String, description = "Always `no-store`."))),
        (status = 401, description = "`invalid_credentials`: the account or the password is wrong (one answer for both).", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "The right password, but: `mfa_required`, the account has a second factor: the problem carries an `mfa_token` for `POST /login/mfa`; `account_disabled`, the account is disabled; `email_not_verified`, with `LATCHKEY_REQUIRE_VERIFIED_EMAIL` on, its email is not verified yet.", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "`validation_failed`: give exactly one of `email` and `username`.", body = Problem, content_type = "application/problem+json"),
        (status = 429, description = "`too_many_attempts`: too many failed logins for this account or from this address within the window; the right password is refused too until `Retry-After` has passed.", body = Problem, content_type = "application/problem+json",
            headers(("Retry-After" = u64, description = "Seconds until an attempt is allowed again."))),
    ))]
#[tracing::instrument(name = "login", skip_all)]
pub async fn login(
    state: web::Data<AppState>,
    client: ClientInfo,
    Json(request): Json<LoginRequest>,
) -> Result<HttpResponse, Error> {
    let identifier = Identifier::parse(request.email.as_deref(), request.username.as_deref())?;
    let outcome = login::attempt(&state.auth, identifier, request.password, client).await;
    state.metrics.logins.count(&outcome);
    token_response(
        &state,
        StatusCode::OK,
        outcome?,
        request.refresh_token_transport,
    )
}
