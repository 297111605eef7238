//! A software passkey authenticator and WebAuthn client (the `passkey` crate's CTAP2
//! authenticator, ES256), standing where a browser and a platform authenticator stand: it
//! reads the options the server sends in their JSON form and answers what a browser's
//! `credential.toJSON()` gives, with the page's origin in its client data.
//!
//! Its credentials are discoverable (a login lists none, and it offers its own), verify
//! their user, and say they are backed up (BE and BS set), like a synced passkey.

use passkey::authenticator::{
    Authenticator, CredentialStore, DiscoverabilitySupport, StoreInfo, UiHint, UserCheck,
    UserValidationMethod,
};
use passkey::client::{Client, DefaultClientData};
use passkey::crypto::rust_crypto::RustCryptoBackend;
use passkey::types::Passkey;
use passkey::types::ctap2::make_credential::{
    Options, PublicKeyCredentialRpEntity, PublicKeyCredentialUserEntity,
};
use passkey::types::ctap2::{Aaguid, Ctap2Error, StatusCode};
use passkey::types::webauthn::{
    CredentialCreationOptions, CredentialRequestOptions, PublicKeyCredentialDescriptor,
};
use public_suffix::PublicSuffixList;
use serde_json::{Value, json};
use url::Url;

/// The page's origin the tests' server expects by default (`LATCHKEY_PUBLIC_URL`).
pub const ORIGIN: &str = "http://localhost:8080";

/// The credentials an authenticator holds, with the RP id of each.
#[derive(Clone, Default)]
pub struct Credentials(Vec<(String, Passkey)>);

#[async_trait::async_trait]
impl CredentialStore for Credentials {
    type PasskeyItem = Passkey;

    async fn find_credentials(
        &self,
        allowed: Option<&[PublicKeyCredentialDescriptor]>,
        rp_id: &str,
        _user_handle: Option<&[u8]>,
    ) -> Result<Vec<Passkey>, StatusCode> {
        // No list (or an empty one): a discoverable login, any credential of the RP.
        let listed = |passkey: &Passkey| {
            allowed.is_none_or(|allowed| {
                allowed.is_empty()
                    || allowed
                        .iter()
                        .any(|descriptor| descriptor.id == passkey.credential_id)
            })
        };
        let found: Vec<Passkey> = self
            .0
            .iter()
            .filter(|(rp, passkey)| rp == rp_id && listed(passkey))
            .map(|(_, passkey)| passkey.clone())
            .collect();
        if found.is_empty() {
            Err(Ctap2Error::NoCredentials.into())
        } else {
            Ok(found)
        }
    }

    async fn save_credential(
        &mut self,
        passkey: Passkey,
        _user: PublicKeyCredentialUserEntity,
        rp: PublicKeyCredentialRpEntity,
        _options: Options,
    ) -> Result<(), StatusCode> {
        self.0.push((rp.id, passkey));
        Ok(())
    }

    async fn update_credential(&mut self, updated: &Passkey) -> Result<(), StatusCode> {
        for (_, passkey) in &mut self.0 {
            if passkey.credential_id == updated.credential_id {
                *passkey = updated.clone();
            }
        }
        Ok(())
    }

    async fn get_info(&self) -> StoreInfo {
        StoreInfo {
            discoverability: DiscoverabilitySupport::Full,
        }
    }
}

/// A user who is always present and verified (a fingerprint that always matches).
struct VerifiedUser;

#[async_trait::async_trait]
impl UserValidationMethod for VerifiedUser {
    type PasskeyItem = Passkey;

    async fn check_user<'a>(
        &self,
        _hint: UiHint<'a, Passkey>,
        _presence: bool,
        _verification: bool,
    ) -> Result<UserCheck, Ctap2Error> {
        Ok(UserCheck {
            presence: true,
            verification: true,
        })
    }

    fn is_verification_enabled(&self) -> Option<bool> {
        Some(true)
    }

    fn is_presence_enabled(&self) -> bool {
        true
    }
}

/// An authenticator, used from a page of one origin.
#[derive(Clone)]
pub struct SoftAuthenticator {
    pub credentials: Credentials,
    origin: Url,
    /// Whether it counts its signatures (a security key does; synced passkeys say 0).
    counts_signatures: bool,
}

impl SoftAuthenticator {
    pub fn new() -> Self {
        Self::at(ORIGIN)
    }

    /// One used from a page of `origin`.
    pub fn at(origin: &str) -> Self {
        Self {
            credentials: Credentials::default(),
            origin: Url::parse(origin).unwrap(),
            counts_signatures: false,
        }
    }

    /// One that counts its signatures, as a hardware security key does.
    pub fn counting_signatures() -> Self {
        Self {
            counts_signatures: true,
            ..Self::new()
        }
    }

    /// The same credentials, used from a page of another origin.
    pub fn moved_to(&self, origin: &str) -> Self {
        Self {
            origin: Url::parse(origin).unwrap(),
            ..self.clone()
        }
    }

    /// Runs `operation` with a client over this authenticator's credentials, keeping what it
    /// changed in them.
    async fn with_client<T>(
        &mut self,
        operation: impl AsyncFnOnce(
            &mut Client<Credentials, VerifiedUser, RustCryptoBackend, PublicSuffixList, ()>,
            &Url,
        ) -> T,
    ) -> T {
        let mut authenticator = Authenticator::new(
            Aaguid::new_empty(),
            self.credentials.clone(),
            VerifiedUser,
            RustCryptoBackend,
        );
        authenticator.set_make_credentials_with_signature_counter(self.counts_signatures);
        let mut client = Client::new(authenticator).allows_insecure_localhost(true);
        let answer = operation(&mut client, &self.origin).await;
        self.credentials = client.authenticator().store().clone();
        answer
    }

    /// `navigator.credentials.create({publicKey: options})`, then `toJSON()`.
    pub async fn register(&mut self, options: &Value) -> Value {
        let request: CredentialCreationOptions =
            serde_json::from_value(json!({"publicKey": options})).unwrap();
        self.with_client(async |client, origin| {
            let created = client
                .register(origin, request, DefaultClientData)
                .await
                .expect("the authenticator registers");
            serde_json::to_value(created).unwrap()
        })
        .await
    }

    /// `navigator.credentials.get({publicKey: options})`, then `toJSON()`.
    pub async fn assert(&mut self, options: &Value) -> Value {
        let request: CredentialRequestOptions =
            serde_json::from_value(json!({"publicKey": options})).unwrap();
        self.with_client(async |client, origin| {
            let asserted = client
                .authenticate(origin, request, DefaultClientData)
                .await
                .expect("the authenticator finds a credential");
            serde_json::to_value(asserted).unwrap()
        })
        .await
    }
}
