//! The schemas, for the OpenAPI document only, of WebAuthn's JSON forms (WebAuthn Level 3
//! §5.1.8–5.1.10, what `PublicKeyCredential.parse*OptionsFromJSON` reads and `toJSON()`
//! writes): named, so that generated clients get their fields instead of an opaque object.
//! webauthn-rs's own types are what the server reads and writes; these say the same shape,
//! with every binary value a base64url string without padding. Each allows more properties
//! than it lists (JSON Schema's default), as browsers add some.

#![allow(dead_code)] // Never built: they exist for their schemas.

use serde::Serialize;
use utoipa::ToSchema;

/// `PublicKeyCredentialCreationOptionsJSON`: for `navigator.credentials.create()`.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
#[schema(as = PublicKeyCredentialCreationOptionsJSON)]
pub struct CreationOptions {
    rp: RelyingPartyEntity,
    user: UserEntity,
    /// base64url.
    challenge: String,
    pub_key_cred_params: Vec<CredentialParameters>,
    /// Milliseconds.
    timeout: Option<u64>,
    /// The account's passkeys, which the authenticator must not register again.
    exclude_credentials: Option<Vec<CredentialDescriptor>>,
    authenticator_selection: AuthenticatorSelection,
    #[schema(examples("none"))]
    attestation: Option<String>,
    #[schema(value_type = Option<Object>)]
    extensions: Option<serde_json::Value>,
}

/// `PublicKeyCredentialRequestOptionsJSON`: for `navigator.credentials.get()`.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
#[schema(as = PublicKeyCredentialRequestOptionsJSON)]
pub struct RequestOptions {
    /// base64url.
    challenge: String,
    /// Milliseconds.
    timeout: Option<u64>,
    #[schema(examples("localhost"))]
    rp_id: String,
    /// Empty: the authenticator offers the user's passkeys for the site.
    allow_credentials: Vec<CredentialDescriptor>,
    #[schema(examples("required"))]
    user_verification: String,
    #[schema(value_type = Option<Object>)]
    extensions: Option<serde_json::Value>,
}

/// Either options, as the ceremony's kind says.
#[derive(Serialize, ToSchema)]
#[serde(untagged)]
#[schema(as = PublicKeyCredentialOptionsJSON)]
pub enum Options {
    Creation(CreationOptions),
    Request(RequestOptions),
}

#[derive(Serialize, ToSchema)]
struct RelyingPartyEntity {
    #[schema(examples("localhost"))]
    id: String,
    #[schema(examples("Latchkey"))]
    name: String,
}

#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
struct UserEntity {
    /// The user handle, base64url: the account's id as 16 bytes.
    id: String,
    #[schema(examples("ada@example.com"))]
    name: String,
    #[schema(examples("ada@example.com"))]
    display_name: String,
}

#[derive(Serialize, ToSchema)]
struct CredentialParameters {
    #[serde(rename = "type")]
    #[schema(examples("public-key"))]
    kind: String,
    /// A COSE algorithm: -7 (ES256), -257 (RS256)…
    alg: i64,
}

#[derive(Serialize, ToSchema)]
struct CredentialDescriptor {
    #[serde(rename = "type")]
    #[schema(examples("public-key"))]
    kind: String,
    /// The credential id, base64url.
    id: String,
    transports: Option<Vec<String>>,
}

#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
struct AuthenticatorSelection {
    #[schema(examples("required"))]
    resident_key: String,
    require_resident_key: bool,
    #[schema(examples("required"))]
    user_verification: String,
}

/// `RegistrationResponseJSON`: what `navigator.credentials.create()` answered, as its
/// `toJSON()` gives it.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
#[schema(as = RegistrationResponseJSON)]
pub struct RegistrationResponse {
    /// The credential id, base64url.
    id: String,
    /// The same, base64url.
    raw_id: String,
    #[serde(rename = "type")]
    #[schema(examples("public-key"))]
    kind: String,
    response: AttestationResponse,
    /// `{"credProps": {"rk": true}}` from a browser.
    #[schema(value_type = Option<Object>)]
    client_extension_results: Option<serde_json::Value>,
    authenticator_attachment: Option<String>,
}

#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
struct AttestationResponse {
    /// base64url.
    #[serde(rename = "clientDataJSON")]
    client_data_json: String,
    /// base64url (CBOR).
    attestation_object: String,
    transports: Option<Vec<String>>,
}

/// `AuthenticationResponseJSON`: what `navigator.credentials.get()` answered, as its
/// `toJSON()` gives it.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
#[schema(as = AuthenticationResponseJSON)]
pub struct AuthenticationResponse {
    /// The credential id, base64url.
    id: String,
    /// The same, base64url.
    raw_id: String,
    #[serde(rename = "type")]
    #[schema(examples("public-key"))]
    kind: String,
    response: AssertionResponse,
    #[schema(value_type = Option<Object>)]
    client_extension_results: Option<serde_json::Value>,
    authenticator_attachment: Option<String>,
}

#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
struct AssertionResponse {
    /// base64url.
    #[serde(rename = "clientDataJSON")]
    client_data_json: String,
    /// base64url.
    authenticator_data: String,
    /// base64url (DER, for ES256).
    signature: String,
    /// base64url: the account's id, which a discoverable credential gives back.
    user_handle: String,
}
