//! `POST /email/verify`, `POST /me/email/verification` and `POST /me/email`: proving an
//! address, and changing it.

use actix_web::{HttpResponse, web};
use secrecy::SecretString;
use serde::Deserialize;

use super::AppState;
use super::authn::AuthenticatedUser;
use super::extract::Json;
use super::problem::Problem;
use super::recovery::{MailAcceptedBody, mail_accepted};
use super::responses::{UserBody, private_json};
use crate::auth::client::ClientInfo;
use crate::auth::email;
use crate::error::Error;

#[derive(Deserialize, utoipa::ToSchema)]
pub struct VerifyEmailRequest {
    /// The address the code was mailed to: the account's, or the new one of a change.
    #[schema(format = Email, examples("ada@example.com"))]
    email: String,
    /// The 8 characters mailed (Crockford base32: case, spaces and hyphens do not matter).
    #[schema(examples("7KQ2-M9XD"))]
    code: String,
}

/// Verify an email address with a mailed code (no login needed).
#[utoipa::path(post, path = "/email/verify", tag = "recovery", operation_id = "verifyEmail",
    request_body = VerifyEmailRequest,
    responses(
        (status = 200, description = "Verified: the account's address, or the new address of a change, which now replaces the old. The account as it now is.", body = UserBody,
            headers(("Cache-Control" = String, description = "Always `no-store`."))),
        (status = 400, description = "`invalid_code`: wrong, used, expired or out of tries (5 wrong tries end a code).", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "`email_taken`: another account took the new address meanwhile; the code stays usable.", body = Problem, content_type = "application/problem+json"),
        (status = 429, description = "`too_many_attempts`: too many codes tried for this email, or too many failed attempts from this address, within the login window.", body = Problem, content_type = "application/problem+json",
            headers(("Retry-After" = u64, description = "Seconds until an attempt is allowed again."))),
    ))]
#[tracing::instrument(name = "verify_email", skip_all)]
pub async fn verify(
    state: web::Data<AppState>,
    client: ClientInfo,
    Json(request): Json<VerifyEmailRequest>,
) -> Result<HttpResponse, Error> {
    let user = email::verify(&state.auth, &request.email, request.code, client).await?;
    Ok(private_json(UserBody::from(user)))
}

/// Mail a new code that verifies the account's address.
#[utoipa::path(post, path = "/me/email/verification", tag = "account", operation_id = "sendEmailVerification",
    responses(
        (status = 202, description = "A new code is on its way; it replaces the older.", body = MailAcceptedBody),
        (status = 409, description = "`email_already_verified`: there is nothing to prove.", body = Problem, content_type = "application/problem+json"),
        (status = 429, description = "`too_many_attempts`: this client address has asked for `LATCHKEY_SIGNUP_IP_MAX` mails (default 20), or this email for `LATCHKEY_MAIL_RECIPIENT_MAX` (default 5), within the hour.", body = Problem, content_type = "application/problem+json",
            headers(("Retry-After" = u64, description = "Seconds until a request is allowed again."))),
    ),
    security(("bearer" = [])))]
#[tracing::instrument(name = "send_email_verification", skip_all, fields(user_id = %user.id))]
pub async fn send_verification(
    state: web::Data<AppState>,
    AuthenticatedUser { user, .. }: AuthenticatedUser,
    client: ClientInfo,
) -> Result<HttpResponse, Error> {
    email::resend_verification(&state.auth, user, client).await?;
    Ok(mail_accepted("sent"))
}

#[derive(Deserialize, utoipa::ToSchema)]
pub struct ChangeEmailRequest {
    /// The address to change to; the signup rules for emails apply.
    #[schema(format = Email, examples("ada@example.org"))]
    new_email: String,
    /// The account's password, asked again: a stolen access token alone cannot move the
    /// account to an address its thief reads.
    #[schema(value_type = String, examples("correct horse battery staple"))]
    password: SecretString,
}

/// Change the account's email: a code goes to the new address, a notice to the old one; the
/// change happens when the code comes back through `POST /email/verify`.
#[utoipa::path(post, path = "/me/email", tag = "account", operation_id = "changeEmail",
    request_body = ChangeEmailRequest,
    responses(
        (status = 202, description = "The code is on its way to the new address, the notice to the old one.", body = MailAcceptedBody),
        (status = 401, description = "`invalid_credentials`: the password is wrong. `invalid_token`: also when the session was revoked meanwhile. Also `missing_token`.", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "`email_taken`: another account has the new address.", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "`validation_failed`: `new_email` is not an address, or is the current one (`same_email`).", body = Problem, content_type = "application/problem+json"),
        (status = 429, description = "`too_many_attempts`: too many wrong passwords for this account (here or at `/login`, counted together) or from this address; or too many mails asked for within the hour.", body = Problem, content_type = "application/problem+json",
            headers(("Retry-After" = u64, description = "Seconds until an attempt is allowed again."))),
    ),
    security(("bearer" = [])))]
#[tracing::instrument(name = "change_email", skip_all, fields(user_id = %user.id))]
pub async fn change(
    state: web::Data<AppState>,
    AuthenticatedUser { caller, user }: AuthenticatedUser,
    client: ClientInfo,
    Json(request): Json<ChangeEmailRequest>,
) -> Result<HttpResponse, Error> {
    email::request_change(
        &state.auth,
        caller,
        user,
        &request.new_email,
        request.password,
        client,
    )
    .await?;
    Ok(mail_accepted("sent"))
}
