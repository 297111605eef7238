//! RFC 9457 problem documents: the one place that turns an [`Error`] into a response.

use actix_web::body::{BoxBody, MessageBody};
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::StatusCode;
use actix_web::http::header::{self, HeaderValue};
use actix_web::middleware::Next;
use actix_web::{HttpResponse, ResponseError};
use secrecy::ExposeSecret;
use serde::Serialize;

use crate::error::{Error, FieldError};

pub const CONTENT_TYPE: &str = "application/problem+json";

/// An RFC 9457 problem document. `code` is the stable, machine-readable part; `errors`
/// appears only on `422`.
#[derive(Serialize, utoipa::ToSchema)]
pub(super) struct Problem<'a> {
    #[serde(rename = "type")]
    #[schema(examples("about:blank"))]
    kind: &'static str,
    title: &'static str,
    status: u16,
    detail: &'a str,
    #[schema(examples("validation_failed"))]
    code: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    errors: Option<&'a [FieldError]>,
    /// Only with `mfa_required` (a `403` of `POST /login`): give it to `POST /login/mfa`
    /// with a code, within 5 minutes. Opaque, single use.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    mfa_token: Option<&'a str>,
}

impl Error {
    /// The stable, machine-readable code clients branch on.
    pub fn code(&self) -> &'static str {
        match self {
            Self::MalformedRequest(_) => "malformed_request",
            Self::UnsupportedMediaType => "unsupported_media_type",
            Self::PayloadTooLarge => "payload_too_large",
            Self::RequestTimeout => "request_timeout",
            Self::Validation(_) => "validation_failed",
            Self::NotFound => "not_found",
            Self::MethodNotAllowed { .. } => "method_not_allowed",
            Self::EmailTaken => "email_taken",
            Self::UsernameTaken => "username_taken",
            Self::InvalidCredentials => "invalid_credentials",
            Self::AccountDisabled => "account_disabled",
            Self::EmailNotVerified => "email_not_verified",
            Self::InvalidCode => "invalid_code",
            Self::MfaRequired { .. } => "mfa_required",
            Self::InvalidMfaToken => "invalid_mfa_token",
            Self::InvalidMfaCode => "invalid_mfa_code",
            Self::MfaAlreadyEnabled => "mfa_already_enabled",
            Self::MfaNotEnabled => "mfa_not_enabled",
            Self::MfaNotPending => "mfa_not_pending",
            Self::InvalidCeremony => "invalid_ceremony",
            Self::InvalidPasskey(_) => "invalid_passkey",
            Self::PasskeyExists => "passkey_exists",
            Self::TooManyPasskeys => "too_many_passkeys",
            Self::LastCredential => "last_credential",
            Self::PasskeysUnavailable => "passkeys_unavailable",
            Self::EmailAlreadyVerified => "email_already_verified",
            Self::TooManyAttempts { .. } => "too_many_attempts",
            Self::InvalidRefreshToken => "invalid_refresh_token",
            Self::RefreshTokenReused => "refresh_token_reused",
            Self::CsrfRejected => "csrf_rejected",
            Self::MissingToken => "missing_token",
            Self::InvalidToken => "invalid_token",
            Self::Unavailable(_) => "service_unavailable",
            Self::Internal(_) => "internal_error",
        }
    }

    fn detail(&self) -> &str {
        match self {
            Self::MalformedRequest(detail) => detail,
            Self::UnsupportedMediaType => "Send the request body as application/json.",
            Self::PayloadTooLarge => "The request body is larger than 64 KiB.",
            Self::RequestTimeout => "The request body took too long to arrive.",
            Self::Validation(_) => "Some fields are invalid; see `errors`.",
            Self::NotFound => "There is nothing here.",
            Self::MethodNotAllowed { .. } => {
                "This method is not allowed here; see the Allow header."
            }
            Self::EmailTaken => "An account with this email address already exists.",
            Self::UsernameTaken => "An account with this username already exists.",
            Self::InvalidCredentials => "The account or password is wrong.",
            Self::AccountDisabled => "This account has been disabled.",
            Self::EmailNotVerified => {
                "Verify this account's email address first: see POST /email/verify."
            }
            Self::InvalidCode => "The code is wrong, used or expired; ask for a new one.",
            Self::MfaRequired { .. } => {
                "This account has a second factor: send mfa_token with a code to POST /login/mfa."
            }
            Self::InvalidMfaToken => {
                "The mfa_token is unknown, used, expired or ended by wrong codes; log in again."
            }
            Self::InvalidMfaCode => "The code is wrong or was used already.",
            Self::MfaAlreadyEnabled => "This account has a TOTP factor already.",
            Self::MfaNotEnabled => "This account has no TOTP factor.",
            Self::MfaNotPending => "Start the enrolment first: POST /me/mfa/totp.",
            Self::InvalidCeremony => {
                "The ceremony_id is unknown, used or expired (after 5 minutes); start again."
            }
            Self::InvalidPasskey(detail) => detail,
            Self::PasskeyExists => "This passkey is registered already.",
            Self::TooManyPasskeys => {
                "This account has as many passkeys as it may have; remove one first."
            }
            Self::LastCredential => {
                "This passkey is the account's only way in: add another passkey, or set a \
                 password (POST /password/forgot), first."
            }
            Self::PasskeysUnavailable => {
                "Passkeys are off on this server: WebAuthn needs a domain name in \
                 LATCHKEY_PUBLIC_URL (localhost works), not an IP address."
            }
            Self::EmailAlreadyVerified => "This account's email address is verified already.",
            Self::TooManyAttempts { .. } => {
                "Too many attempts; try again after the time in Retry-After."
            }
            Self::InvalidRefreshToken => "The refresh token is invalid, expired or revoked.",
            Self::RefreshTokenReused => {
                "The refresh token was already used; the session has been revoked. Log in again."
            }
            Self::CsrfRejected => {
                "A request with the refresh cookie must be application/json and come from this \
                 service's origin or one of LATCHKEY_CORS_ORIGINS."
            }
            Self::MissingToken => "This endpoint needs an `Authorization: Bearer` access token.",
            Self::InvalidToken => "The access token is malformed, expired or revoked.",
            Self::Unavailable(_) => "The service is temporarily unavailable; try again shortly.",
            Self::Internal(_) => "An unexpected error occurred.",
        }
    }
}

impl ResponseError for Error {
    fn status_code(&self) -> StatusCode {
        match self {
            Self::MalformedRequest(_) => StatusCode::BAD_REQUEST,
            Self::UnsupportedMediaType => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            Self::PayloadTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            Self::RequestTimeout => StatusCode::REQUEST_TIMEOUT,
            Self::Validation(_) => StatusCode::UNPROCESSABLE_ENTITY,
            Self::NotFound => StatusCode::NOT_FOUND,
            Self::MethodNotAllowed { .. } => StatusCode::METHOD_NOT_ALLOWED,
            Self::EmailTaken
            | Self::UsernameTaken
            | Self::EmailAlreadyVerified
            | Self::MfaAlreadyEnabled
            | Self::MfaNotEnabled
            | Self::MfaNotPending
            | Self::PasskeyExists
            | Self::TooManyPasskeys
            | Self::LastCredential => StatusCode::CONFLICT,
            Self::InvalidCode
            | Self::InvalidMfaCode
            | Self::InvalidCeremony
            | Self::InvalidPasskey(_) => StatusCode::BAD_REQUEST,
            Self::PasskeysUnavailable => StatusCode::NOT_FOUND,
            Self::InvalidCredentials
            | Self::InvalidRefreshToken
            | Self::RefreshTokenReused
            | Self::MissingToken
            | Self::InvalidToken
            | Self::InvalidMfaToken => StatusCode::UNAUTHORIZED,
            Self::AccountDisabled
            | Self::EmailNotVerified
            | Self::MfaRequired { .. }
            | Self::CsrfRejected => StatusCode::FORBIDDEN,
            Self::TooManyAttempts { .. } => StatusCode::TOO_MANY_REQUESTS,
            Self::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            Self::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    fn error_response(&self) -> HttpResponse {
        match self {
            Self::Internal(cause) => tracing::error!(error = ?cause, "internal error"),
            Self::Unavailable(cause) => tracing::warn!(error = %cause, "service unavailable"),
            _ => {}
        }
        let errors = match self {
            Self::Validation(errors) => Some(errors.as_slice()),
            _ => None,
        };
        let mfa_token = match self {
            Self::MfaRequired { mfa_token } => Some(mfa_token.expose_secret()),
            _ => None,
        };
        let body = Problem {
            mfa_token,
            ..Problem::new(self.status_code(), self.code(), self.detail(), errors)
        };
        let mut response = respond(body);
        let headers = response.headers_mut();
        match self {
            Self::MissingToken => {
                headers.insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
            }
            Self::InvalidToken => {
                headers.insert(
                    header::WWW_AUTHENTICATE,
                    HeaderValue::from_static(r#"Bearer error="invalid_token""#),
                );
            }
            Self::MethodNotAllowed { allow } => {
                headers.insert(header::ALLOW, HeaderValue::from_static(allow));
            }
            Self::Unavailable(_) => {
                headers.insert(header::RETRY_AFTER, HeaderValue::from_static("5"));
            }
            Self::TooManyAttempts { retry_after } => {
                headers.insert(header::RETRY_AFTER, HeaderValue::from(*retry_after));
            }
            _ => {}
        }
        response
    }
}

impl<'a> Problem<'a> {
    fn new(
        status: StatusCode,
        code: &'static str,
        detail: &'a str,
        errors: Option<&'a [FieldError]>,
    ) -> Self {
        Self {
            kind: "about:blank",
            title: title(status),
            status: status.as_u16(),
            detail,
            code,
            errors,
            mfa_token: None,
        }
    }
}

fn respond(body: Problem<'_>) -> HttpResponse {
    let status = StatusCode::from_u16(body.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    HttpResponse::build(status)
        .content_type(CONTENT_TYPE)
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .json(body)
}

/// The reason phrase, with RFC 9110's names where they differ from older ones.
fn title(status: StatusCode) -> &'static str {
    match status {
        StatusCode::PAYLOAD_TOO_LARGE => "Content Too Large",
        StatusCode::UNPROCESSABLE_ENTITY => "Unprocessable Content",
        _ => status.canonical_reason().unwrap_or("Error"),
    }
}

/// Middleware, the safety net for responses that no handler of ours produced (actix-web's
/// own errors such as a malformed URL, and refusals by other middleware such as CORS):
/// any error status without a problem body gets one.
pub async fn ensure_problem(
    request: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<BoxBody>, actix_web::Error> {
    let response = next.call(request).await?.map_into_boxed_body();
    let status = response.status();
    let is_problem = response
        .headers()
        .get(header::CONTENT_TYPE)
        .is_some_and(|value| value.as_bytes().starts_with(CONTENT_TYPE.as_bytes()));
    if !(status.is_client_error() || status.is_server_error()) || is_problem {
        return Ok(response);
    }
    let from_cors = response
        .response()
        .error()
        .is_some_and(|error| error.as_error::<actix_cors::CorsError>().is_some());
    let (code, detail) = match status.as_u16() {
        _ if from_cors => (
            "cors_rejected",
            "This origin may not make cross-origin requests to this service.",
        ),
        400 => ("malformed_request", "The request is malformed."),
        404 => ("not_found", "There is nothing here."),
        405 => ("method_not_allowed", "This method is not allowed here."),
        413 => ("payload_too_large", "The request is too large."),
        415 => (
            "unsupported_media_type",
            "Send the request body as application/json.",
        ),
        500..=599 => ("internal_error", "An unexpected error occurred."),
        _ => ("request_failed", "The request failed."),
    };
    let (request, _) = response.into_parts();
    Ok(ServiceResponse::new(
        request,
        respond(Problem::new(status, code, detail, None)),
    ))
}
