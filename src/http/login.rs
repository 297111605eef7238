//! `POST /login`: exchange an email or username and a password for a session.

use actix_web::http::StatusCode;
use actix_web::{HttpResponse, web};
use secrecy::SecretString;
use serde::Deserialize;

use super::AppState;
use super::extract::Json;
use super::responses::token_response;
use crate::auth::sessions::{self, ClientInfo};
use crate::db::{self, users};
use crate::domain::Email;
use crate::error::{Error, FieldError};

#[derive(Deserialize)]
pub struct LoginRequest {
    email: Option<String>,
    username: Option<String>,
    password: SecretString,
}

enum Identifier {
    Email(String),
    Username(String),
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

#[tracing::instrument(name = "login", skip_all)]
pub async fn login(
    state: web::Data<AppState>,
    client: ClientInfo,
    Json(request): Json<LoginRequest>,
) -> Result<HttpResponse, Error> {
    let identifier = request.identifier()?;
    let user = state
        .db
        .run(move |conn| match identifier {
            Identifier::Email(email) => Ok(users::find_by_email(conn, &email)?),
            Identifier::Username(username) => Ok(users::find_by_username(conn, &username)?),
        })
        .await?;
    // An unknown account is checked against a decoy hash: the same work, the same answer.
    let stored_hash = user.as_ref().map(|user| user.password_hash.clone());
    let verification = state
        .passwords
        .verify(request.password.clone(), stored_hash)
        .await?;
    let user = match user {
        Some(user) if verification.matches => user,
        _ => {
            tracing::info!("login failed");
            return Err(Error::InvalidCredentials);
        }
    };
    if user.disabled_at.is_some() {
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
                sessions::start(conn, &user_id, &client, &policy)
            })
        })
        .await?;
    tracing::info!(user_id = %user.id, session_id = %continued.session.id, "logged in");
    token_response(&state, StatusCode::OK, user, continued)
}
