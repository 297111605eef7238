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

/// Authenticator data flags (WebAuthn §6.1): user present, user verified, backup eligible,
/// backed up.
pub const USER_PRESENT: u8 = 0x01;
pub const USER_VERIFIED: u8 = 0x04;
pub const BACKUP_ELIGIBLE: u8 = 0x08;
pub const BACKED_UP: u8 = 0x10;

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

impl SoftAuthenticator {
    /// An assertion for the request `options` made by hand with this authenticator's only
    /// credential, with the authenticator data flags given: what a tampered or non-compliant
    /// authenticator could send (no user verification, say). Signed like a real one.
    pub fn assert_with_flags(&self, options: &Value, user_handle: &[u8], flags: u8) -> Value {
        let [(rp_id, passkey)] = &self.credentials.0[..] else {
            panic!("one credential expected");
        };
        let private = passkey
            .key
            .params
            .iter()
            .find(|(label, _)| *label == coset::Label::Int(-4))
            .and_then(|(_, value)| value.as_bytes())
            .expect("an EC2 private key");
        let key = HandMadeKey {
            key: p256::ecdsa::SigningKey::from_slice(private).unwrap(),
            credential_id: passkey.credential_id.to_vec(),
            rp_id: rp_id.clone(),
            origin: self.origin.clone(),
        };
        key.assert(options, user_handle, flags)
    }
}

/// A credential whose every answer is made by hand (CBOR, flags, signature), for what no
/// compliant authenticator sends on request: a registration that was not backup-eligible
/// whose later logins are (a passkey whose owner turned on iCloud Keychain since).
pub struct HandMadeKey {
    key: p256::ecdsa::SigningKey,
    credential_id: Vec<u8>,
    rp_id: String,
    origin: Url,
}

fn base64url(bytes: &[u8]) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

impl HandMadeKey {
    pub fn new() -> Self {
        let mut credential_id = vec![0u8; 16];
        getrandom::fill(&mut credential_id).unwrap();
        Self {
            key: p256::ecdsa::SigningKey::from_slice(&p256_scalar()).unwrap(),
            credential_id,
            rp_id: "localhost".into(),
            origin: Url::parse(ORIGIN).unwrap(),
        }
    }

    /// Authenticator data: the RP id's hash, the flags, a zero counter, and `attested`.
    fn authenticator_data(&self, flags: u8, attested: &[u8]) -> Vec<u8> {
        use sha2::{Digest, Sha256};
        let mut data = Sha256::digest(self.rp_id.as_bytes()).to_vec();
        data.push(flags);
        data.extend_from_slice(&[0, 0, 0, 0]);
        data.extend_from_slice(attested);
        data
    }

    fn client_data(&self, kind: &str, options: &Value) -> String {
        json!({
            "type": kind,
            "challenge": options["challenge"],
            "origin": self.origin.origin().ascii_serialization(),
            "crossOrigin": false,
        })
        .to_string()
    }

    /// The answer to creation `options`: "none" attestation, with these flags (AT added).
    pub fn register(&self, options: &Value, flags: u8) -> Value {
        use coset::iana;
        let point = self.key.verifying_key().to_sec1_point(false);
        let public = coset::CoseKeyBuilder::new_ec2_pub_key(
            iana::EllipticCurve::P_256,
            point.x().unwrap().to_vec(),
            point.y().unwrap().to_vec(),
        )
        .algorithm(iana::Algorithm::ES256)
        .build();
        let public = coset::CborSerializable::to_vec(public).unwrap();
        let mut attested = vec![0u8; 16]; // AAGUID: none
        attested.extend_from_slice(
            &u16::try_from(self.credential_id.len())
                .unwrap()
                .to_be_bytes(),
        );
        attested.extend_from_slice(&self.credential_id);
        attested.extend_from_slice(&public);
        let attested_flag = 0x40;
        let auth_data = self.authenticator_data(flags | attested_flag, &attested);
        let attestation = coset::cbor::Value::Map(vec![
            ("fmt".into(), "none".into()),
            ("attStmt".into(), coset::cbor::Value::Map(vec![])),
            ("authData".into(), coset::cbor::Value::Bytes(auth_data)),
        ]);
        let mut attestation_object = Vec::new();
        coset::cbor::ser::into_writer(&attestation, &mut attestation_object).unwrap();
        let id = base64url(&self.credential_id);
        json!({
            "id": id,
            "rawId": id,
            "type": "public-key",
            "response": {
                "clientDataJSON": base64url(self.client_data("webauthn.create", options).as_bytes()),
                "attestationObject": base64url(&attestation_object),
            },
            "clientExtensionResults": {"credProps": {"rk": true}},
        })
    }

    /// The answer to request `options`, with these flags.
    pub fn assert(&self, options: &Value, user_handle: &[u8], flags: u8) -> Value {
        use p256::ecdsa::signature::Signer as _;
        use sha2::{Digest, Sha256};
        let authenticator_data = self.authenticator_data(flags, &[]);
        let client_data = self.client_data("webauthn.get", options);
        let mut signed = authenticator_data.clone();
        signed.extend_from_slice(&Sha256::digest(client_data.as_bytes()));
        let signature: p256::ecdsa::Signature = self.key.sign(&signed);
        let id = base64url(&self.credential_id);
        json!({
            "id": id,
            "rawId": id,
            "type": "public-key",
            "response": {
                "clientDataJSON": base64url(client_data.as_bytes()),
                "authenticatorData": base64url(&authenticator_data),
                "signature": base64url(&signature.to_der().to_bytes()),
                "userHandle": base64url(user_handle),
            },
            "clientExtensionResults": {},
        })
    }
}

/// 32 random bytes below the P-256 order: a private key.
fn p256_scalar() -> [u8; 32] {
    loop {
        let mut bytes = [0u8; 32];
        getrandom::fill(&mut bytes).unwrap();
        if p256::ecdsa::SigningKey::from_slice(&bytes).is_ok() {
            return bytes;
        }
    }
}
