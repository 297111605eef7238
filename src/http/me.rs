//! `GET /me`, `POST /me/password` and `DELETE /me`: the caller's own account.

use actix_web::{HttpResponse, web};
use secrecy::SecretString;
use serde::Deserialize;

use super::AppState;
use super::authn::AuthenticatedUser;
use super::extract::Json;
use super::problem::Problem;
use super::responses::{UserBody, private_json};
use crate::auth::accounts;
use crate::auth::client::ClientInfo;
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
        (status = 401, description = "`invalid_credentials`: the current password is wrong, or another change of it committed first. `invalid_token`: also when the session was revoked while the change was under way. Also `missing_token`.", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "`validation_failed`: the new password breaks a rule (field `new_password`).", body = Problem, content_type = "application/problem+json"),
        (status = 429, description = "`too_many_attempts`: too many wrong passwords for this account (here or at `/login`, counted together) or from this address within the window.", body = Problem, content_type = "application/problem+json",
            headers(("Retry-After" = u64, description = "Seconds until an attempt is allowed again."))),
    ),
    security(("bearer" = [])))]
#[tracing::instrument(name = "change_password", skip_all, fields(user_id = %user.id))]
pub async fn change_password(
    state: web::Data<AppState>,
    AuthenticatedUser { caller, user }: AuthenticatedUser,
    client: ClientInfo,
    Json(request): Json<ChangePasswordRequest>,
) -> Result<HttpResponse, Error> {
    accounts::change_password(
        &state.auth,
        caller,
        user,
        request.current_password,
        request.new_password,
        client,
    )
    .await?;
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
        (status = 401, description = "`invalid_credentials`: the password is wrong, or was changed while the deletion was under way. `invalid_token`: also when the session was revoked meanwhile. Also `missing_token`.", body = Problem, content_type = "application/problem+json"),
        (status = 429, description = "`too_many_attempts`: too many wrong passwords for this account (here or at `/login`, counted together) or from this address within the window.", body = Problem, content_type = "application/problem+json",
            headers(("Retry-After" = u64, description = "Seconds until an attempt is allowed again."))),
    ),
    security(("bearer" = [])))]
#[tracing::instrument(name = "delete_account", skip_all, fields(user_id = %user.id))]
pub async fn delete(
    state: web::Data<AppState>,
    AuthenticatedUser { caller, user }: AuthenticatedUser,
    client: ClientInfo,
    Json(request): Json<DeleteAccountRequest>,
) -> Result<HttpResponse, Error> {
    accounts::delete(&state.auth, caller, user, request.password, client).await?;
    Ok(HttpResponse::NoContent().finish())
}
