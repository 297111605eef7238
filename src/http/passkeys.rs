//! `POST /me/passkeys/register/start` and `/finish`, `GET /me/passkeys`, `PATCH` and
//! `DELETE /me/passkeys/{id}`, `POST /login/passkey/start` and `/finish`, `POST
//! /signup/passkey/start` and `/finish`: passkeys, logging in with one, and signing up with
//! one instead of a password.

use actix_web::http::StatusCode;
use actix_web::{HttpResponse, web};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use webauthn_rs::prelude::{PublicKeyCredential, RegisterPublicKeyCredential};

use super::AppState;
use super::authn::AuthenticatedUser;
use super::extract::Json;
use super::problem::Problem;
use super::refresh_cookie::Transport;
use super::responses::{TokenBody, private_json, timestamp, token_response};
use super::webauthn_json;
use crate::auth::accounts::Identity;
use crate::auth::client::ClientInfo;
use crate::auth::passkeys::{self, Started};
use crate::auth::sessions::Caller;
use crate::db::passkeys::StoredPasskey;
use crate::domain::PasskeyId;
use crate::error::Error;

/// A ceremony started: give `options` to the browser (or the platform's passkey API), and
/// its answer with `ceremony_id` to the matching `/finish` within 5 minutes.
#[derive(Serialize, utoipa::ToSchema)]
#[schema(as = PasskeyCeremony)]
pub struct CeremonyBody {
    /// Opaque, single use, for 5 minutes.
    #[schema(examples("x1Jd3QeM0e5aGtH7cJ5oVvQ0uBcP2l1Jg0e1n6GmH3Y"))]
    ceremony_id: String,
    /// WebAuthn options in their JSON form (WebAuthn Level 3): for a registration
    /// `PublicKeyCredentialCreationOptionsJSON`, for a login
    /// `PublicKeyCredentialRequestOptionsJSON` (binary values in base64url). In a browser:
    /// `PublicKeyCredential.parseCreationOptionsFromJSON(options)` (or
    /// `parseRequestOptionsFromJSON`), then `navigator.credentials.create({publicKey})` (or
    /// `.get`).
    #[schema(value_type = webauthn_json::Options)]
    options: Value,
}

impl From<Started> for CeremonyBody {
    fn from(started: Started) -> Self {
        Self {
            ceremony_id: started.ceremony_id,
            options: started.options,
        }
    }
}

/// A passkey of the account.
#[derive(Serialize, utoipa::ToSchema)]
#[schema(as = Passkey)]
pub struct PasskeyBody {
    #[schema(format = Uuid)]
    id: String,
    #[schema(examples("MacBook Touch ID"))]
    name: String,
    #[schema(format = DateTime)]
    created_at: String,
    /// The last login with it; `null` before the first.
    #[schema(required = true, format = DateTime)]
    last_used_at: Option<String>,
}

impl From<StoredPasskey> for PasskeyBody {
    fn from(passkey: StoredPasskey) -> Self {
        Self {
            id: passkey.id.into(),
            name: passkey.name,
            created_at: timestamp(passkey.created_at),
            last_used_at: passkey.last_used_at.map(timestamp),
        }
    }
}

/// Start adding a passkey to the account.
#[utoipa::path(post, path = "/me/passkeys/register/start", tag = "passkeys", operation_id = "startPasskeyRegistration",
    responses(
        (status = 200, description = "The ceremony: `options` ask for a discoverable credential that verifies its user (`residentKey: required`, `userVerification: required`), and exclude the account's passkeys.", body = CeremonyBody,
            headers(("Cache-Control" = String, description = "Always `no-store`."))),
        (status = 404, description = "`passkeys_unavailable`: passkeys are off (the public URL names no domain).", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "`too_many_passkeys`: the account has 20.", body = Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = [])))]
#[tracing::instrument(name = "start_passkey_registration", skip_all, fields(user_id = %user.id))]
pub async fn start_registration(
    state: web::Data<AppState>,
    AuthenticatedUser { caller, user }: AuthenticatedUser,
) -> Result<HttpResponse, Error> {
    let started = passkeys::start_registration(&state.auth, caller, user).await?;
    Ok(private_json(CeremonyBody::from(started)))
}

#[derive(Deserialize, utoipa::ToSchema)]
pub struct FinishPasskeyRegistrationRequest {
    /// From `POST /me/passkeys/register/start`.
    ceremony_id: String,
    /// What `navigator.credentials.create()` answered, as its `toJSON()` gives it
    /// (`RegistrationResponseJSON`: `id`, `rawId`, `type`, `response.clientDataJSON`,
    /// `response.attestationObject`, `clientExtensionResults`).
    #[schema(value_type = webauthn_json::RegistrationResponse)]
    credential: RegisterPublicKeyCredential,
    /// What the user calls it (at most 64 characters); `Passkey` when left out.
    #[schema(examples("MacBook Touch ID"), max_length = 64)]
    name: Option<String>,
}

/// Finish adding a passkey: it is stored, and logs in from now on.
#[utoipa::path(post, path = "/me/passkeys/register/finish", tag = "passkeys", operation_id = "finishPasskeyRegistration",
    request_body = FinishPasskeyRegistrationRequest,
    responses(
        (status = 201, description = "The passkey is added.", body = PasskeyBody),
        (status = 400, description = "`invalid_ceremony`: unknown, used, expired, or another account's: start again. `invalid_passkey`: the credential was refused (wrong origin or challenge, no user verification, not discoverable…); `detail` says why. Also `malformed_request`.", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "`passkeys_unavailable`.", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "`passkey_exists`: this credential is registered already. `too_many_passkeys`.", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "`validation_failed`: the name is too long or has control characters.", body = Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = [])))]
#[tracing::instrument(name = "finish_passkey_registration", skip_all, fields(user_id = %caller.user_id))]
pub async fn finish_registration(
    state: web::Data<AppState>,
    caller: Caller,
    client: ClientInfo,
    Json(request): Json<FinishPasskeyRegistrationRequest>,
) -> Result<HttpResponse, Error> {
    // Checked before the ceremony is used up: a bad name loses nothing.
    let name = passkeys::read_name(request.name.as_deref())?;
    let (ceremony_id, credential) = (request.ceremony_id, request.credential);
    let added =
        passkeys::finish_registration(&state.auth, caller, ceremony_id, credential, name, client)
            .await?;
    Ok(HttpResponse::Created().json(PasskeyBody::from(added)))
}

/// The account's passkeys, oldest first.
#[utoipa::path(get, path = "/me/passkeys", tag = "passkeys", operation_id = "listPasskeys",
    responses((status = 200, description = "The passkeys.", body = Vec<PasskeyBody>,
        headers(("Cache-Control" = String, description = "Always `no-store`.")))),
    security(("bearer" = [])))]
#[tracing::instrument(name = "list_passkeys", skip_all, fields(user_id = %caller.user_id))]
pub async fn list(state: web::Data<AppState>, caller: Caller) -> Result<HttpResponse, Error> {
    let passkeys = passkeys::list(&state.auth, caller.user_id).await?;
    let body: Vec<PasskeyBody> = passkeys.into_iter().map(PasskeyBody::from).collect();
    Ok(private_json(body))
}

#[derive(Deserialize, utoipa::ToSchema)]
pub struct RenamePasskeyRequest {
    /// At most 64 characters, no control characters; blank is `Passkey`.
    #[schema(examples("YubiKey 5C"), max_length = 64)]
    name: String,
}

/// Rename one of the account's passkeys.
#[utoipa::path(patch, path = "/me/passkeys/{id}", tag = "passkeys", operation_id = "renamePasskey",
    params(("id" = String, Path, description = "The passkey's id.", format = Uuid)),
    request_body = RenamePasskeyRequest,
    responses(
        (status = 200, description = "The passkey, renamed.", body = PasskeyBody),
        (status = 404, description = "`not_found`: the account has no passkey with this id.", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "`validation_failed`: the name is too long or has control characters.", body = Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = [])))]
#[tracing::instrument(name = "rename_passkey", skip_all, fields(user_id = %caller.user_id))]
pub async fn rename(
    state: web::Data<AppState>,
    caller: Caller,
    path: web::Path<String>,
    Json(request): Json<RenamePasskeyRequest>,
) -> Result<HttpResponse, Error> {
    let id = PasskeyId::parse(&path.into_inner()).ok_or(Error::NotFound)?;
    let name = passkeys::read_name(Some(&request.name))?;
    let renamed = passkeys::rename(&state.auth, caller.user_id, id, name).await?;
    Ok(private_json(PasskeyBody::from(renamed)))
}

/// Remove one of the account's passkeys; it logs in no more.
#[utoipa::path(delete, path = "/me/passkeys/{id}", tag = "passkeys", operation_id = "deletePasskey",
    params(("id" = String, Path, description = "The passkey's id.", format = Uuid)),
    responses(
        (status = 204, description = "The passkey is removed."),
        (status = 404, description = "`not_found`: the account has no passkey with this id.", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "`last_credential`: the account has no password and no other passkey; this one is its only way in.", body = Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = [])))]
#[tracing::instrument(name = "delete_passkey", skip_all, fields(user_id = %caller.user_id))]
pub async fn delete(
    state: web::Data<AppState>,
    caller: Caller,
    client: ClientInfo,
    path: web::Path<String>,
) -> Result<HttpResponse, Error> {
    let id = PasskeyId::parse(&path.into_inner()).ok_or(Error::NotFound)?;
    passkeys::remove(&state.auth, caller, id, client).await?;
    Ok(HttpResponse::NoContent().finish())
}

/// Start a login with a passkey: no email or username, the authenticator offers the user's
/// passkeys for this site.
#[utoipa::path(post, path = "/login/passkey/start", tag = "auth", operation_id = "startPasskeyLogin",
    responses(
        (status = 200, description = "The ceremony: `options` list no credentials (a discoverable login) and require user verification.", body = CeremonyBody,
            headers(("Cache-Control" = String, description = "Always `no-store`."))),
        (status = 404, description = "`passkeys_unavailable`: passkeys are off (the public URL names no domain).", body = Problem, content_type = "application/problem+json"),
    ))]
#[tracing::instrument(name = "start_passkey_login", skip_all)]
pub async fn start_login(
    state: web::Data<AppState>,
    client: ClientInfo,
) -> Result<HttpResponse, Error> {
    let started = passkeys::start_login(&state.auth, &client).await?;
    Ok(private_json(CeremonyBody::from(started)))
}

#[derive(Deserialize, utoipa::ToSchema)]
pub struct FinishPasskeyLoginRequest {
    /// From `POST /login/passkey/start`.
    ceremony_id: String,
    /// What `navigator.credentials.get()` answered, as its `toJSON()` gives it
    /// (`AuthenticationResponseJSON`: `id`, `rawId`, `type`, `response.clientDataJSON`,
    /// `response.authenticatorData`, `response.signature`, `response.userHandle`).
    #[schema(value_type = webauthn_json::AuthenticationResponse)]
    credential: PublicKeyCredential,
    #[serde(default)]
    #[schema(value_type = Option<Transport>)]
    refresh_token_transport: Transport,
}

/// Finish a login with a passkey: a new session. The passkey verified its user, so an
/// account with a second factor is not asked for a code.
#[utoipa::path(post, path = "/login/passkey/finish", tag = "auth", operation_id = "finishPasskeyLogin",
    request_body = FinishPasskeyLoginRequest,
    responses(
        (status = 200, description = "A new session; its access tokens say `amr: [\"hwk\"]`.", body = TokenBody,
            headers(("Cache-Control" = String, description = "Always `no-store`."))),
        (status = 400, description = "`invalid_ceremony`: unknown, used or expired: start again. Also `malformed_request`.", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "`invalid_credentials`: the passkey was refused (unknown, removed, a wrong signature or origin, no user verification).", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "`account_disabled`; `email_not_verified` with `LATCHKEY_REQUIRE_VERIFIED_EMAIL` on.", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "`passkeys_unavailable`.", body = Problem, content_type = "application/problem+json"),
        (status = 429, description = "`too_many_attempts`: too many refused passkeys for this account, or failed logins from this address, within the window.", body = Problem, content_type = "application/problem+json",
            headers(("Retry-After" = u64, description = "Seconds until an attempt is allowed again."))),
    ))]
#[tracing::instrument(name = "finish_passkey_login", skip_all)]
pub async fn finish_login(
    state: web::Data<AppState>,
    client: ClientInfo,
    Json(request): Json<FinishPasskeyLoginRequest>,
) -> Result<HttpResponse, Error> {
    let (ceremony_id, credential) = (request.ceremony_id, request.credential);
    let outcome = passkeys::finish_login(&state.auth, ceremony_id, credential, client).await;
    state.metrics.logins.count(&outcome);
    token_response(
        &state,
        StatusCode::OK,
        outcome?,
        request.refresh_token_transport,
    )
}

#[derive(Deserialize, utoipa::ToSchema)]
pub struct StartPasskeySignupRequest {
    /// As at `POST /signup`.
    #[schema(format = Email, examples("ada@example.com"))]
    email: String,
    /// As at `POST /signup`: optional, 3 to 32 characters of `A-Z a-z 0-9 _ . -`.
    #[schema(pattern = "^[A-Za-z0-9_.-]{3,32}$", examples("ada"))]
    username: Option<String>,
}

/// Start signing up with a passkey instead of a password.
#[utoipa::path(post, path = "/signup/passkey/start", tag = "auth", operation_id = "startPasskeySignup",
    request_body = StartPasskeySignupRequest,
    responses(
        (status = 200, description = "The ceremony: `options` ask for a discoverable credential that verifies its user, for the account to be. Nothing is created until the finish.", body = CeremonyBody,
            headers(("Cache-Control" = String, description = "Always `no-store`."))),
        (status = 404, description = "`passkeys_unavailable`.", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "`email_taken` or `username_taken`, as at `POST /signup`.", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "`validation_failed`: every invalid field is listed in `errors`.", body = Problem, content_type = "application/problem+json"),
        (status = 429, description = "`too_many_attempts`: this address has signed up `LATCHKEY_SIGNUP_IP_MAX` times within the hour (counted with `POST /signup`).", body = Problem, content_type = "application/problem+json",
            headers(("Retry-After" = u64, description = "Seconds until a signup is allowed again."))),
    ))]
#[tracing::instrument(name = "start_passkey_signup", skip_all)]
pub async fn start_signup(
    state: web::Data<AppState>,
    client: ClientInfo,
    Json(request): Json<StartPasskeySignupRequest>,
) -> Result<HttpResponse, Error> {
    let identity = Identity::parse(&request.email, request.username.as_deref())?;
    let started = passkeys::start_signup(&state.auth, identity, &client).await?;
    Ok(private_json(CeremonyBody::from(started)))
}

#[derive(Deserialize, utoipa::ToSchema)]
pub struct FinishPasskeySignupRequest {
    /// From `POST /signup/passkey/start`.
    ceremony_id: String,
    /// What `navigator.credentials.create()` answered, as its `toJSON()` gives it.
    #[schema(value_type = webauthn_json::RegistrationResponse)]
    credential: RegisterPublicKeyCredential,
    /// What the user calls the passkey (at most 64 characters); `Passkey` when left out.
    #[schema(examples("iPhone"), max_length = 64)]
    name: Option<String>,
    #[serde(default)]
    #[schema(value_type = Option<Transport>)]
    refresh_token_transport: Transport,
}

/// Finish signing up with a passkey: the account exists, without a password, and this is its
/// first session.
#[utoipa::path(post, path = "/signup/passkey/finish", tag = "auth", operation_id = "finishPasskeySignup",
    request_body = FinishPasskeySignupRequest,
    responses(
        (status = 201, description = "The account exists and this is its first session; its access tokens say `amr: [\"hwk\"]`. A code to verify the email is mailed, as at `POST /signup`. The account has no password until one is set with `POST /password/forgot` and `/password/reset`.", body = TokenBody,
            headers(("Cache-Control" = String, description = "Always `no-store`."))),
        (status = 400, description = "`invalid_ceremony`: unknown, used or expired: start again. `invalid_passkey`: the credential was refused; `detail` says why. Also `malformed_request`.", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "`passkeys_unavailable`.", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "`email_taken` or `username_taken`: taken since the start. `passkey_exists`.", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "`validation_failed`: the name is too long or has control characters.", body = Problem, content_type = "application/problem+json"),
    ))]
#[tracing::instrument(name = "finish_passkey_signup", skip_all)]
pub async fn finish_signup(
    state: web::Data<AppState>,
    client: ClientInfo,
    Json(request): Json<FinishPasskeySignupRequest>,
) -> Result<HttpResponse, Error> {
    // Checked before the ceremony is used up: a bad name loses nothing.
    let name = passkeys::read_name(request.name.as_deref())?;
    let (ceremony_id, credential) = (request.ceremony_id, request.credential);
    let granted =
        passkeys::finish_signup(&state.auth, ceremony_id, credential, name, client).await?;
    state.metrics.signups.inc();
    let transport = request.refresh_token_transport;
    token_response(&state, StatusCode::CREATED, granted, transport)
}
