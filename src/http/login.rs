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
use crate::auth::events::{self, EventKind, Refusal};
use crate::auth::sessions::{self, ClientInfo};
use crate::auth::throttle::{self, Admission, AttemptKeys};
use crate::db::{self, users};
use crate::domain::Email;
use crate::error::{Error, FieldError};

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

enum Identifier {
    Email(String),
    Username(String),
}

impl Identifier {
    fn text(&self) -> &str {
        match self {
            Self::Email(text) | Self::Username(text) => text,
        }
    }
}

impl LoginRequest {
    fn identifier(&self) -> Result<Identifier, Error> {
        match (&self.email, &self.username) {
            (Some(email), None) => Ok(Identifier::Email(Email::normalize_for_lookup(email))),
            (None, Some(username)) => Ok(Identifier::Username(username.clone())),
            (None, None) => Err(Error::Validation(vec![FieldError::new(
                "email",
                "email_or_username_required",
                "give either email or username",
            )])),
            (Some(_), Some(_)) => Err(Error::Validation(vec![FieldError::new(
                "username",
                "email_and_username_given",
                "give either email or username, not both",
            )])),
        }
    }
}

/// Log in with an email or a username and the password; opens a new session.
#[utoipa::path(post, path = "/login", tag = "auth", operation_id = "login",
    request_body = LoginRequest,
    responses(
        (status = 200, description = "A new session.", body = TokenBody,
            headers(("Cache-Control" = String, description = "Always `no-store`."))),
        (status = 401, description = "`invalid_credentials`: the account or the password is wrong (one answer for both).", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "`account_disabled`: the right password for a disabled account.", body = Problem, content_type = "application/problem+json"),
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
    let identifier = request.identifier()?;
    let transport = request.refresh_token_transport;
    let (throttle, address) = (state.throttle, client.ip);
    // Refusals are recorded after the answer, for existing accounts only (see `events`).
    let refused = |user: &Option<users::User>, refusal| {
        if let Some(user) = user {
            state
                .events
                .refused(user.id.clone(), client.clone(), refusal);
        }
    };
    let (user, admission) = state
        .db
        .run_in_lane(&state.login_admissions, move |conn| {
            let user = match &identifier {
                // No stored email or username holds a NUL (signup refuses control
                // characters), and PostgreSQL cannot even compare text with one.
                Identifier::Email(name) | Identifier::Username(name) if name.contains('\0') => None,
                Identifier::Email(email) => users::find_by_email(conn, email)?,
                Identifier::Username(username) => users::find_by_username(conn, username)?,
            };
            let keys = AttemptKeys::new(
                user.as_ref().map(|u| u.id.as_str()),
                identifier.text(),
                address,
            );
            let admission =
                db::write_transaction(conn, |conn| throttle::admit(conn, keys, &throttle))?;
            Ok((user, admission))
        })
        .await?;
    let reservation = match admission {
        Admission::Admitted(reservation) => reservation,
        Admission::Refused { retry_after } => {
            state.metrics.logins.throttled.inc();
            let user_id = user.as_ref().map(|user| user.id.as_str());
            tracing::warn!(
                event = "login_throttled",
                user_id,
                retry_after,
                "login throttled"
            );
            let window = state.throttle.window;
            refused(&user, Refusal::Throttled { window });
            return Err(Error::TooManyAttempts { retry_after });
        }
    };
    // An unknown account is checked against a decoy hash: the same work, the same answer.
    let stored_hash = user.as_ref().map(|user| user.password_hash.clone());
    let verification = state
        .passwords
        .verify(request.password.clone(), stored_hash)
        .await?;
    let user = match user {
        Some(user) if verification.matches => user,
        _ => {
            state.metrics.logins.failure.inc();
            let user_id = user.as_ref().map(|user| user.id.as_str());
            tracing::info!(event = "login_failed", user_id, "login failed");
            refused(&user, Refusal::WrongPassword);
            return Err(Error::InvalidCredentials);
        }
    };
    if user.disabled_at.is_some() {
        state.metrics.logins.disabled.inc();
        tracing::warn!(event = "login_disabled", user_id = %user.id, "login to a disabled account");
        return Err(Error::AccountDisabled);
    }
    let rehashed = if verification.needs_rehash {
        Some(state.passwords.hash(request.password).await?)
    } else {
        None
    };
    let policy = state.policy;
    let user_id = user.id.clone();
    let continued = state
        .db
        .run(move |conn| {
            db::write_transaction(conn, |conn| {
                if let Some(hash) = &rehashed {
                    users::set_password_hash(conn, &user_id, hash, db::now())?;
                }
                throttle::succeeded(conn, &reservation)?;
                let continued = sessions::start(conn, &user_id, &client, &policy)?;
                let session_id = Some(continued.session.id.as_str());
                events::record(conn, &user_id, EventKind::Login, &client, session_id)?;
                Ok::<_, Error>(continued)
            })
        })
        .await?;
    state.metrics.logins.success.inc();
    tracing::info!(event = "logged_in", user_id = %user.id, session_id = %continued.session.id, "logged in");
    token_response(&state, StatusCode::OK, user, continued, transport)
}
