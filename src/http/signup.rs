//! `POST /signup`: create an account and log it in.

use actix_web::http::StatusCode;
use actix_web::{HttpResponse, web};
use secrecy::SecretString;
use serde::Deserialize;

use super::AppState;
use super::extract::Json;
use super::responses::token_response;
use crate::auth::accounts::{self, NewAccount};
use crate::auth::sessions::{self, ClientInfo};
use crate::db;
use crate::error::Error;

#[derive(Deserialize)]
pub struct SignupRequest {
    email: String,
    password: SecretString,
    username: Option<String>,
}

#[tracing::instrument(name = "signup", skip_all)]
pub async fn signup(
    state: web::Data<AppState>,
    client: ClientInfo,
    Json(request): Json<SignupRequest>,
) -> Result<HttpResponse, Error> {
    let account = NewAccount::parse(
        &request.email,
        request.username.as_deref(),
        request.password,
    )?;
    let account = state
        .db
        .run(move |conn| accounts::ensure_available(conn, &account).map(|()| account))
        .await?;
    let password_hash = state.passwords.hash(account.password_secret()).await?;
    let policy = state.policy;
    let (user, continued) = state
        .db
        .run(move |conn| {
            db::write_transaction(conn, |conn| {
                let user = accounts::insert(conn, &account, &password_hash)?;
                let continued = sessions::start(conn, &user.id, &client, &policy)?;
                Ok::<_, Error>((user, continued))
            })
        })
        .await?;
    tracing::info!(user_id = %user.id, session_id = %continued.session.id, "signed up");
    token_response(&state, StatusCode::CREATED, user, continued)
}
