//! `POST /me/mfa/totp`, `POST /me/mfa/totp/confirm`, `DELETE /me/mfa/totp` and
//! `POST /login/mfa`: a second factor, and logging in with it.

use actix_web::http::StatusCode;
use actix_web::{HttpResponse, web};
use secrecy::SecretString;
use serde::{Deserialize, Serialize};
use utoipa::openapi::RefOr;
use utoipa::openapi::schema::{ObjectBuilder, Schema, Type};
use zeroize::Zeroizing;

use super::AppState;
use super::authn::AuthenticatedUser;
use super::extract::Json;
use super::login::{exactly_one_of, text, transport_property};
use super::problem::Problem;
use super::refresh_cookie::Transport;
use super::responses::{TokenBody, private_json, token_response};
use crate::auth::client::ClientInfo;
use crate::auth::mfa::{self, SecondFactor};
use crate::error::{Error, FieldError};

#[derive(Deserialize, utoipa::ToSchema)]
pub struct EnrolTotpRequest {
    #[schema(value_type = String, examples("correct horse battery staple"))]
    password: SecretString,
}

/// A new TOTP secret, for an authenticator app.
#[derive(Serialize, utoipa::ToSchema)]
#[schema(as = TotpEnrolment)]
pub struct TotpEnrolmentBody {
    /// The secret in base32 (RFC 4648, no padding), to type into an app by hand.
    #[schema(value_type = String, examples("JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP"))]
    secret: Zeroizing<String>,
    /// The `otpauth://totp/` URI the QR code holds (SHA-1, 6 digits, 30 s).
    #[schema(value_type = String, examples("otpauth://totp/Latchkey:ada%40example.com?secret=JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP&issuer=Latchkey"))]
    otpauth_uri: Zeroizing<String>,
    /// The QR code of `otpauth_uri`, as an SVG document.
    qr_svg: String,
}

/// Start setting up TOTP: a new secret, pending until a code of it is confirmed.
#[utoipa::path(post, path = "/me/mfa/totp", tag = "mfa", operation_id = "enrolTotp",
    request_body = EnrolTotpRequest,
    responses(
        (status = 200, description = "The secret, pending until `POST /me/mfa/totp/confirm`; it replaces a pending one.", body = TotpEnrolmentBody,
            headers(("Cache-Control" = String, description = "Always `no-store`."))),
        (status = 401, description = "`invalid_credentials`: the password is wrong. Also `missing_token`, `invalid_token`.", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "`mfa_already_enabled`: disable the factor first.", body = Problem, content_type = "application/problem+json"),
        (status = 429, description = "`too_many_attempts`: too many wrong passwords or codes for this account (counted with `/login`) or from this address within the window.", body = Problem, content_type = "application/problem+json",
            headers(("Retry-After" = u64, description = "Seconds until an attempt is allowed again."))),
    ),
    security(("bearer" = [])))]
#[tracing::instrument(name = "enrol_totp", skip_all, fields(user_id = %user.id))]
pub async fn enrol(
    state: web::Data<AppState>,
    AuthenticatedUser { caller, user }: AuthenticatedUser,
    client: ClientInfo,
    Json(request): Json<EnrolTotpRequest>,
) -> Result<HttpResponse, Error> {
    let given = mfa::enrol(&state.auth, caller, user, request.password, client).await?;
    Ok(private_json(TotpEnrolmentBody {
        secret: given.secret,
        otpauth_uri: given.otpauth_uri,
        qr_svg: given.qr_svg,
    }))
}

#[derive(Deserialize, utoipa::ToSchema)]
pub struct ConfirmTotpRequest {
    /// The app's current 6-digit code.
    #[schema(examples("123456"))]
    code: String,
}

/// The recovery codes: each logs in once in place of a TOTP code. Shown only this once.
#[derive(Serialize, utoipa::ToSchema)]
#[schema(as = RecoveryCodes, examples(json!({"recovery_codes": [
    "7KQ2M-9XDA4", "H3RT8-ZW6NE", "P0V5C-KQ1MX", "9DSJ2-E4TBR", "WM6XA-3HNQ7",
    "B8ZKF-R2V0D", "Q5CN1-TY9GW", "XJ4E7-M0PHS", "2RGV8-DKA6Z", "N7WQ3-FB5TC",
]})))]
pub struct RecoveryCodesBody {
    /// 10 codes of 10 characters (Crockford base32, shown with a hyphen in the middle;
    /// case, spaces and hyphens do not matter when typed).
    #[schema(value_type = Vec<String>, min_items = 10, max_items = 10)]
    recovery_codes: Vec<Zeroizing<String>>,
}

/// Turn TOTP on with a first code of the pending secret; answers the recovery codes.
#[utoipa::path(post, path = "/me/mfa/totp/confirm", tag = "mfa", operation_id = "confirmTotp",
    request_body = ConfirmTotpRequest,
    responses(
        (status = 200, description = "TOTP is on: logins ask for a code from now on. Keep the recovery codes somewhere safe; they are not shown again.", body = RecoveryCodesBody,
            headers(("Cache-Control" = String, description = "Always `no-store`."))),
        (status = 400, description = "`invalid_mfa_code`: not a current code of the pending secret.", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "`mfa_not_pending`: no enrolment started (`POST /me/mfa/totp`). `mfa_already_enabled`.", body = Problem, content_type = "application/problem+json"),
        (status = 429, description = "`too_many_attempts`: too many wrong passwords or codes for this account (counted with `/login`) or from this address within the window.", body = Problem, content_type = "application/problem+json",
            headers(("Retry-After" = u64, description = "Seconds until an attempt is allowed again."))),
    ),
    security(("bearer" = [])))]
#[tracing::instrument(name = "confirm_totp", skip_all, fields(user_id = %user.id))]
pub async fn confirm(
    state: web::Data<AppState>,
    AuthenticatedUser { caller, user }: AuthenticatedUser,
    client: ClientInfo,
    Json(request): Json<ConfirmTotpRequest>,
) -> Result<HttpResponse, Error> {
    let recovery_codes = mfa::confirm(&state.auth, caller, user, request.code, client).await?;
    Ok(private_json(RecoveryCodesBody { recovery_codes }))
}

#[derive(Deserialize, utoipa::ToSchema)]
pub struct DisableTotpRequest {
    #[schema(value_type = String, examples("correct horse battery staple"))]
    password: SecretString,
    /// A current TOTP code, or an unused recovery code.
    #[schema(examples("123456"))]
    code: String,
}

/// Turn TOTP off, with the password and a code (or a recovery code).
#[utoipa::path(delete, path = "/me/mfa/totp", tag = "mfa", operation_id = "disableTotp",
    request_body = DisableTotpRequest,
    responses(
        (status = 204, description = "TOTP is off; its secret and recovery codes are gone."),
        (status = 400, description = "`invalid_mfa_code`: the code is wrong or used.", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "`invalid_credentials`: the password is wrong. Also `missing_token`, `invalid_token`.", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "`mfa_not_enabled`.", body = Problem, content_type = "application/problem+json"),
        (status = 429, description = "`too_many_attempts`: too many wrong passwords or codes for this account (counted with `/login`) or from this address within the window.", body = Problem, content_type = "application/problem+json",
            headers(("Retry-After" = u64, description = "Seconds until an attempt is allowed again."))),
    ),
    security(("bearer" = [])))]
#[tracing::instrument(name = "disable_totp", skip_all, fields(user_id = %user.id))]
pub async fn disable(
    state: web::Data<AppState>,
    AuthenticatedUser { caller, user }: AuthenticatedUser,
    client: ClientInfo,
    Json(request): Json<DisableTotpRequest>,
) -> Result<HttpResponse, Error> {
    let (password, code) = (request.password, request.code);
    mfa::disable(&state.auth, caller, user, password, code, client).await?;
    Ok(HttpResponse::NoContent().finish())
}

/// The `mfa_token` of a `403` `mfa_required`, and exactly one of `code` and `recovery_code`.
#[derive(Deserialize)]
pub struct LoginMfaRequest {
    mfa_token: SecretString,
    code: Option<String>,
    recovery_code: Option<String>,
    #[serde(default)]
    refresh_token_transport: Transport,
}

impl utoipa::PartialSchema for LoginMfaRequest {
    fn schema() -> RefOr<Schema> {
        let fields = ObjectBuilder::new()
            .property(
                "mfa_token",
                ObjectBuilder::new()
                    .schema_type(Type::String)
                    .description(Some("From the `mfa_required` problem of `POST /login`.")),
            )
            .property(
                "code",
                text("123456").description(Some("The app's current 6-digit code.")),
            )
            .property(
                "recovery_code",
                text("7KQ2M-9XDA4")
                    .description(Some("One of the recovery codes, in place of `code`.")),
            )
            .property("refresh_token_transport", transport_property())
            .required("mfa_token");
        exactly_one_of(
            fields,
            ["code", "recovery_code"],
            "The `mfa_token`, and exactly one of `code` and `recovery_code`.",
        )
    }
}

impl utoipa::ToSchema for LoginMfaRequest {}

/// Finish a login to an account with a second factor: a new session.
#[utoipa::path(post, path = "/login/mfa", tag = "auth", operation_id = "loginWithMfa",
    request_body = LoginMfaRequest,
    responses(
        (status = 200, description = "A new session; its access tokens say `amr: [\"pwd\", \"otp\"]`.", body = TokenBody,
            headers(("Cache-Control" = String, description = "Always `no-store`."))),
        (status = 400, description = "`invalid_mfa_code`: the code is wrong or used (a TOTP code is accepted once). 5 wrong codes end the `mfa_token`.", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "`invalid_mfa_token`: unknown, used, expired (after 5 minutes) or ended by wrong codes: log in again.", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "`account_disabled`.", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "`validation_failed`: give exactly one of `code` and `recovery_code`.", body = Problem, content_type = "application/problem+json"),
        (status = 429, description = "`too_many_attempts`: too many failed attempts for this account (counted with `/login`) or from this address within the window.", body = Problem, content_type = "application/problem+json",
            headers(("Retry-After" = u64, description = "Seconds until an attempt is allowed again."))),
    ))]
#[tracing::instrument(name = "login_mfa", skip_all)]
pub async fn login(
    state: web::Data<AppState>,
    client: ClientInfo,
    Json(request): Json<LoginMfaRequest>,
) -> Result<HttpResponse, Error> {
    let factor = match (request.code, request.recovery_code) {
        (Some(code), None) => SecondFactor::Code(code),
        (None, Some(code)) => SecondFactor::RecoveryCode(code),
        (None, None) => {
            return Err(Error::Validation(vec![FieldError::new(
                "code",
                "code_or_recovery_code_required",
                "give either code or recovery_code",
            )]));
        }
        (Some(_), Some(_)) => {
            return Err(Error::Validation(vec![FieldError::new(
                "recovery_code",
                "code_and_recovery_code_given",
                "give either code or recovery_code, not both",
            )]));
        }
    };
    let outcome = mfa::complete_login(&state.auth, request.mfa_token, factor, client).await;
    state.metrics.logins.count(&outcome);
    let transport = request.refresh_token_transport;
    token_response(&state, StatusCode::OK, outcome?, transport)
}
