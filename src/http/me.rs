//! `GET /me`, `POST /me/password` and `DELETE /me`: the caller's own account.

use actix_web::{HttpResponse, web};
use secrecy::SecretString;
use serde::Deserialize;

use super::AppState;
use super::authn::AuthenticatedUser;
use super::extract::Json;
use super::problem::Problem;
use super::responses::{UserBody, private_json};
use crate::auth::events::{self, EventKind};
use crate::auth::sessions::{ClientInfo, reason};
use crate::db::users::User;
use crate::db::{self, sessions, users};
use crate::domain::NewPassword;
use crate::error::Error;

/// The caller's account.
#[utoipa::path(get, path = "/me", tag = "account", operation_id = "getMe",
    responses((status = 200, description = "The user.", body = UserBody,
        headers(("Cache-Control" = String, description = "Always `no-store`.")))),
    security(("bearer" = [])))]
#[tracing::instrument(name = "me", skip_all, fields(user_id = %caller.user.id))]
pub async fn show(caller: AuthenticatedUser) -> Result<HttpResponse, Error> {
    Ok(private_json(UserBody::from(caller.user)))
}

#[derive(Deserialize, utoipa::ToSchema)]
pub struct ChangePasswordRequest {
    #[schema(value_type = String)]
    current_password: SecretString,
    /// Follows the signup rules for passwords.
    #[schema(value_type = String, min_length = 8, max_length = 128)]
    new_password: SecretString,
}

/// Change the password; every other session of the user ends.
#[utoipa::path(post, path = "/me/password", tag = "account", operation_id = "changePassword",
    request_body = ChangePasswordRequest,
    responses(
        (status = 204, description = "Changed; the other sessions are revoked."),
        (status = 401, description = "`invalid_credentials`: the current password is wrong. Also `missing_token`, `invalid_token`.", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "`validation_failed`: the new password breaks a rule (field `new_password`).", body = Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = [])))]
#[tracing::instrument(name = "change_password", skip_all, fields(user_id = %user.id))]
pub async fn change_password(
    state: web::Data<AppState>,
    AuthenticatedUser { caller, user }: AuthenticatedUser,
    client: ClientInfo,
    Json(request): Json<ChangePasswordRequest>,
) -> Result<HttpResponse, Error> {
    let identity: Vec<&str> = std::iter::once(user.email.as_str())
        .chain(user.username.as_deref())
        .collect();
    let new_password = NewPassword::parse("new_password", request.new_password, &identity)
        .map_err(|error| Error::Validation(vec![error]))?;
    verify_password(&state, &user, request.current_password).await?;
    let new_hash = state.passwords.hash(new_password.into_secret()).await?;
    let policy = state.policy;
    let revoked = state
        .db
        .run(move |conn| {
            db::write_transaction(conn, |conn| {
                let at = policy.liveness(db::now());
                let (user_id, session_id) = (&caller.user_id, &caller.session_id);
                users::set_password_hash(conn, user_id, &new_hash, at.now)?;
                let keep = Some(session_id.as_str());
                let revoked = sessions::revoke_all_of_user(
                    conn,
                    user_id,
                    keep,
                    at,
                    reason::PASSWORD_CHANGED,
                )?;
                events::record(conn, user_id, EventKind::PasswordChanged, &client, keep)?;
                events::record_revoked(conn, user_id, &client, &revoked)?;
                Ok::<_, Error>(revoked.len())
            })
        })
        .await?;
    tracing::info!(event = "password_changed", revoked, "password changed");
    Ok(HttpResponse::NoContent().finish())
}

#[derive(Deserialize, utoipa::ToSchema)]
pub struct DeleteAccountRequest {
    #[schema(value_type = String)]
    password: SecretString,
}

/// Delete the account and all its sessions, once the password is confirmed.
#[utoipa::path(delete, path = "/me", tag = "account", operation_id = "deleteMe",
    request_body = DeleteAccountRequest,
    responses(
        (status = 204, description = "The account is gone."),
        (status = 401, description = "`invalid_credentials`: the password is wrong. Also `missing_token`, `invalid_token`.", body = Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = [])))]
#[tracing::instrument(name = "delete_account", skip_all, fields(user_id = %user.id))]
pub async fn delete(
    state: web::Data<AppState>,
    AuthenticatedUser { user, .. }: AuthenticatedUser,
    Json(request): Json<DeleteAccountRequest>,
) -> Result<HttpResponse, Error> {
    verify_password(&state, &user, request.password).await?;
    state
        .db
        // In a transaction, like every write, so that it is not done after a `503`.
        .run(move |conn| db::write_transaction(conn, |conn| Ok(users::delete(conn, &user.id)?)))
        .await?;
    tracing::info!(event = "account_deleted", "account deleted");
    Ok(HttpResponse::NoContent().finish())
}

async fn verify_password(
    state: &AppState,
    user: &User,
    password: SecretString,
) -> Result<(), Error> {
    let verification = state
        .passwords
        .verify(password, Some(user.password_hash.clone()))
        .await?;
    if verification.matches {
        Ok(())
    } else {
        Err(Error::InvalidCredentials)
    }
}
