//! `POST /password/forgot` and `POST /password/reset`: a forgotten password, replaced with a
//! mailed code.

use actix_web::{HttpResponse, web};
use secrecy::SecretString;
use serde::{Deserialize, Serialize};

use super::AppState;
use super::extract::Json;
use super::problem::Problem;
use crate::auth::client::ClientInfo;
use crate::auth::recovery;
use crate::error::Error;

#[derive(Deserialize, utoipa::ToSchema)]
pub struct ForgotPasswordRequest {
    #[schema(format = Email, examples("ada@example.com"))]
    email: String,
}

/// The answer of a request that mails something.
#[derive(Serialize, utoipa::ToSchema)]
#[schema(as = MailAccepted)]
pub struct MailAcceptedBody {
    /// `sent_if_registered` (`POST /password/forgot`: the same whether or not an account has
    /// the address) or `sent`.
    #[schema(examples("sent_if_registered"))]
    pub status: &'static str,
}

/// `202` with `status`: the mail is queued (or, for a reset, will be if an account has the
/// address).
pub fn mail_accepted(status: &'static str) -> HttpResponse {
    HttpResponse::Accepted().json(MailAcceptedBody { status })
}

/// Ask for a password reset code by mail.
#[utoipa::path(post, path = "/password/forgot", tag = "recovery", operation_id = "forgotPassword",
    request_body = ForgotPasswordRequest,
    responses(
        (status = 202, description = "If an account has this address, a code (and a link carrying it) is on its way; the answer, and its time, are the same when none has.", body = MailAcceptedBody),
        (status = 422, description = "`validation_failed`: `email` is not an email address.", body = Problem, content_type = "application/problem+json"),
        (status = 429, description = "`too_many_attempts`: this client address has asked for `LATCHKEY_SIGNUP_IP_MAX` mails (default 20), or this email for `LATCHKEY_MAIL_RECIPIENT_MAX` (default 5), within the hour (the same for registered and unknown emails).", body = Problem, content_type = "application/problem+json",
            headers(("Retry-After" = u64, description = "Seconds until a request is allowed again."))),
    ))]
#[tracing::instrument(name = "forgot_password", skip_all)]
pub async fn forgot(
    state: web::Data<AppState>,
    client: ClientInfo,
    Json(request): Json<ForgotPasswordRequest>,
) -> Result<HttpResponse, Error> {
    recovery::forgot(&state.auth, &request.email, client).await?;
    Ok(mail_accepted("sent_if_registered"))
}

#[derive(Deserialize, utoipa::ToSchema)]
pub struct ResetPasswordRequest {
    #[schema(format = Email, examples("ada@example.com"))]
    email: String,
    /// The 8 characters mailed (Crockford base32: case, spaces and hyphens do not matter).
    #[schema(examples("7KQ2-M9XD"))]
    code: String,
    /// Follows the signup rules for passwords.
    #[schema(value_type = String, min_length = 8, max_length = 128)]
    new_password: SecretString,
}

/// Set a new password with a mailed code; every session of the account ends.
#[utoipa::path(post, path = "/password/reset", tag = "recovery", operation_id = "resetPassword",
    request_body = ResetPasswordRequest,
    responses(
        (status = 204, description = "The password is set; every session ended and every passkey removed (the new password is the way in), the login lockout is cleared, and a notice is mailed. The address counts as verified."),
        (status = 400, description = "`invalid_code`: wrong, used, expired or out of tries (5 wrong tries end a code); the same for an email without an account.", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "`account_disabled`: the code is right but the account was disabled.", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "`validation_failed`: the new password breaks a rule (field `new_password`); the code stays usable.", body = Problem, content_type = "application/problem+json"),
        (status = 429, description = "`too_many_attempts`: too many codes tried for this email, or too many failed attempts from this address, within the login window.", body = Problem, content_type = "application/problem+json",
            headers(("Retry-After" = u64, description = "Seconds until an attempt is allowed again."))),
    ))]
#[tracing::instrument(name = "reset_password", skip_all)]
pub async fn reset(
    state: web::Data<AppState>,
    client: ClientInfo,
    Json(request): Json<ResetPasswordRequest>,
) -> Result<HttpResponse, Error> {
    recovery::reset(
        &state.auth,
        &request.email,
        request.code,
        request.new_password,
        client,
    )
    .await?;
    Ok(HttpResponse::NoContent().finish())
}
