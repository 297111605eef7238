//! The WebAuthn relying party: webauthn-rs configured from `LATCHKEY_PUBLIC_URL` (the RP id
//! and first origin), `LATCHKEY_WEBAUTHN_RP_ID` and `LATCHKEY_WEBAUTHN_ORIGINS`, and the
//! ceremonies as this service runs them: options as the JSON a browser's
//! `PublicKeyCredential.parse*OptionsFromJSON` reads, state as JSON for the database.

use serde_json::Value;
use url::Url;
use webauthn_rs::prelude::{
    Credential, CredentialID, DiscoverableAuthentication, Passkey, PasskeyRegistration,
    PublicKeyCredential, RegisterPublicKeyCredential, Uuid, Webauthn, WebauthnBuilder,
    WebauthnError,
};
use webauthn_rs_proto::ResidentKeyRequirement;

use crate::domain::UserId;
use crate::error::Error;

/// Where passkeys are offered, or why not.
pub struct RelyingParty {
    webauthn: Option<Webauthn>,
}

/// What the relying party is built from.
pub struct RelyingPartySettings<'a> {
    /// `LATCHKEY_PUBLIC_URL`: its origin is allowed, its host is the RP id by default.
    pub public_url: &'a str,
    /// `LATCHKEY_WEBAUTHN_RP_ID`: a registrable suffix of the public URL's host, so that
    /// pages on its other subdomains can use the passkeys too.
    pub rp_id: Option<&'a str>,
    /// `LATCHKEY_WEBAUTHN_ORIGINS`: the pages' origins besides the public URL's (an SPA's,
    /// `android:apk-key-hash:…` of an app).
    pub origins: &'a [Url],
    /// What the browser shows the user.
    pub name: &'a str,
}

impl RelyingParty {
    /// The relying party of these settings. Passkeys are off, not an error, when the public
    /// URL's host is an IP address and no RP id is set (WebAuthn needs a domain); any other
    /// setting WebAuthn cannot use is an error, said in a sentence.
    pub fn new(settings: &RelyingPartySettings<'_>) -> Result<Self, String> {
        let public_url = Url::parse(settings.public_url)
            .map_err(|error| format!("LATCHKEY_PUBLIC_URL is no URL: {error}"))?;
        let rp_id = match (settings.rp_id, public_url.domain()) {
            (Some(rp_id), _) => rp_id,
            (None, Some(domain)) => domain,
            (None, None) if settings.origins.is_empty() => return Ok(Self::off()),
            (None, None) => {
                return Err(
                    "LATCHKEY_WEBAUTHN_ORIGINS is set, but LATCHKEY_PUBLIC_URL's host \
                            is no domain name and LATCHKEY_WEBAUTHN_RP_ID is not set"
                        .into(),
                );
            }
        };
        let mut builder = WebauthnBuilder::new(rp_id, &public_url).map_err(|_| {
            format!(
                "the WebAuthn RP id {rp_id:?} is not LATCHKEY_PUBLIC_URL's host or a parent \
                 domain of it"
            )
        })?;
        for origin in settings.origins {
            builder = builder.append_allowed_origin(origin);
        }
        let webauthn = builder
            .rp_name(settings.name)
            .build()
            .map_err(|error| format!("WebAuthn: {error}"))?;
        Ok(Self {
            webauthn: Some(webauthn),
        })
    }

    /// Passkeys are off: every ceremony answers `PasskeysUnavailable`.
    pub fn off() -> Self {
        Self { webauthn: None }
    }

    pub fn is_on(&self) -> bool {
        self.webauthn.is_some()
    }

    /// `PasskeysUnavailable` when passkeys are off.
    pub fn is_on_or_unavailable(&self) -> Result<(), Error> {
        self.webauthn().map(drop)
    }

    fn webauthn(&self) -> Result<&Webauthn, Error> {
        self.webauthn.as_ref().ok_or(Error::PasskeysUnavailable)
    }

    /// Starts registering a passkey for the account: the creation options, and the state
    /// its finish needs. The credential must be discoverable (a login names no account) and
    /// verify its user; `exclude` are the account's credentials already registered.
    pub fn start_registration(
        &self,
        user_id: &UserId,
        email: &str,
        exclude: Vec<Vec<u8>>,
    ) -> Result<(Value, String), Error> {
        let handle = user_handle(user_id)?;
        // A credential id is its bytes.
        let exclude: Option<Vec<CredentialID>> = (!exclude.is_empty()).then_some(exclude);
        let (mut options, state) = self
            .webauthn()?
            .start_passkey_registration(handle, email, email, exclude)
            .map_err(Error::internal)?;
        // webauthn-rs asks for a discoverable credential only as a preference, and some
        // authenticators then make one that a usernameless login cannot find: require it.
        let selection = options
            .public_key
            .authenticator_selection
            .get_or_insert_with(Default::default);
        selection.resident_key = Some(ResidentKeyRequirement::Required);
        selection.require_resident_key = true;
        Ok((to_json(&options.public_key)?, to_stored(&state)?))
    }

    /// Finishes a registration: the passkey, or `InvalidPasskey` saying why not.
    pub fn finish_registration(
        &self,
        credential: &RegisterPublicKeyCredential,
        state: &str,
    ) -> Result<Passkey, Error> {
        let state: PasskeyRegistration = from_stored(state)?;
        // The client's word (credProps is not signed), but a client that says it made a
        // credential no login can discover is believed: it would not work.
        if credential
            .extensions
            .cred_props
            .as_ref()
            .is_some_and(|props| props.rk == Some(false))
        {
            return Err(Error::InvalidPasskey(
                "The authenticator made a credential that is not discoverable (credProps.rk is \
                 false); a login without an email could not find it."
                    .into(),
            ));
        }
        self.webauthn()?
            .finish_passkey_registration(credential, &state)
            .map_err(|error| refused("The passkey was refused", &error))
    }

    /// Starts a login with any passkey of this relying party: the request options (no
    /// credentials listed, so the authenticator offers its own), and the state of the finish.
    pub fn start_login(&self) -> Result<(Value, String), Error> {
        let (options, state) = self
            .webauthn()?
            .start_discoverable_authentication()
            .map_err(Error::internal)?;
        Ok((to_json(&options.public_key)?, to_stored(&state)?))
    }

    /// The account a login's credential names (its `userHandle`), before anything is
    /// verified.
    pub fn identify(&self, credential: &PublicKeyCredential) -> Result<UserId, Error> {
        let (handle, _) = self
            .webauthn()?
            .identify_discoverable_authentication(credential)
            .map_err(|_| Error::InvalidCredentials)?;
        Ok(UserId::from(handle.to_string()))
    }

    /// Verifies a login's credential against the stored passkey it names; answers the
    /// passkey as the login leaves it (a newer counter, changed backup flags) when it changed.
    ///
    /// A credential registered when it was not backup-eligible may be so now: Apple's and
    /// Google's passkeys become so when their owner turns syncing on. webauthn-rs refuses
    /// that in a discoverable login (and, with the backed-up flag set at the same time, in
    /// any login), which would lock the owner out for good. The flag is signed by the
    /// credential's key like the rest, so it is taken as the passkey's new state before the
    /// verification, which checks everything else as usual.
    pub fn finish_login(
        &self,
        credential: &PublicKeyCredential,
        state: &str,
        passkey: Passkey,
    ) -> Result<VerifiedLogin, WebauthnError> {
        let state: DiscoverableAuthentication =
            serde_json::from_str(state).map_err(WebauthnError::ParseJSONFailure)?;
        let webauthn = self.webauthn.as_ref().ok_or(WebauthnError::Configuration)?;
        if is_framed(&credential.response.client_data_json) {
            return Err(WebauthnError::CredentialCrossOrigin);
        }
        let mut stored = Credential::from(passkey);
        let became_eligible = !stored.backup_eligible
            && claims_backup_eligibility(&credential.response.authenticator_data);
        stored.backup_eligible |= became_eligible;
        let result = webauthn.finish_discoverable_authentication_v2(credential, state, &stored)?;
        let mut passkey = Passkey::from(stored);
        let changed = passkey.update_credential(&result) == Some(true);
        Ok(VerifiedLogin {
            updated: (changed || became_eligible).then_some(passkey),
            counter: result.counter(),
        })
    }
}

/// A login's credential, verified against the stored passkey it names.
pub struct VerifiedLogin {
    /// The passkey as the login leaves it, when it changed.
    pub updated: Option<Passkey>,
    /// The authenticator's signature counter (0: it keeps none, as synced passkeys).
    pub counter: u32,
}

impl VerifiedLogin {
    /// Whether `stored` (the passkey as another login left it meanwhile) counted this
    /// signature already: a counting authenticator's counter only goes up, so an equal or
    /// lower one comes from a copy of its key.
    pub fn counted_before(&self, stored: &str) -> Result<bool, Error> {
        let stored: Passkey = from_stored(stored)?;
        let counted = Credential::from(stored).counter;
        Ok(self.counter > 0 && self.counter <= counted)
    }
}

/// Whether the client data says the ceremony ran in a frame of another site (`crossOrigin`,
/// `topOrigin`): webauthn-rs refuses that at registration only, and a login run in a frame
/// of another site is how a page would trick its user into logging in somewhere unseen.
fn is_framed(client_data_json: &[u8]) -> bool {
    #[derive(serde::Deserialize)]
    #[serde(rename_all = "camelCase")]
    struct Framing {
        #[serde(default)]
        cross_origin: bool,
        top_origin: Option<String>,
    }
    // Unreadable client data is refused by the verification itself.
    serde_json::from_slice::<Framing>(client_data_json)
        .is_ok_and(|framing| framing.cross_origin || framing.top_origin.is_some())
}

/// Whether authenticator data sets the backup-eligible flag (WebAuthn §6.1: bit 3 of the
/// flags, after the 32 bytes of the RP id's hash).
fn claims_backup_eligibility(authenticator_data: &[u8]) -> bool {
    const BACKUP_ELIGIBLE: u8 = 0x08;
    authenticator_data
        .get(32)
        .is_some_and(|flags| flags & BACKUP_ELIGIBLE != 0)
}

/// The user handle of an account: its id, a UUID, as 16 bytes.
fn user_handle(user_id: &UserId) -> Result<Uuid, Error> {
    Uuid::try_parse(user_id.as_str()).map_err(Error::internal)
}

fn to_json(value: &impl serde::Serialize) -> Result<Value, Error> {
    serde_json::to_value(value).map_err(Error::internal)
}

fn to_stored(value: &impl serde::Serialize) -> Result<String, Error> {
    serde_json::to_string(value).map_err(Error::internal)
}

fn from_stored<T: serde::de::DeserializeOwned>(stored: &str) -> Result<T, Error> {
    serde_json::from_str(stored).map_err(Error::internal)
}

/// `InvalidPasskey`, saying which check failed.
fn refused(what: &str, error: &WebauthnError) -> Error {
    tracing::info!(event = "passkey_refused", %error, "{what}");
    Error::InvalidPasskey(format!("{what}: {error}."))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings<'a>(public_url: &'a str, rp_id: Option<&'a str>) -> RelyingPartySettings<'a> {
        RelyingPartySettings {
            public_url,
            rp_id,
            origins: &[],
            name: "Latchkey",
        }
    }

    #[test]
    fn the_rp_id_is_the_public_urls_domain_or_a_parent_of_it() {
        assert!(
            RelyingParty::new(&settings("http://localhost:8080", None))
                .unwrap()
                .is_on()
        );
        let parent = settings("https://auth.example.com", Some("example.com"));
        assert!(RelyingParty::new(&parent).unwrap().is_on());
        let unrelated = settings("https://auth.example.com", Some("example.org"));
        assert!(RelyingParty::new(&unrelated).is_err());
        // An IP address is no RP id: passkeys are off, and the rest of the service runs.
        assert!(
            !RelyingParty::new(&settings("http://127.0.0.1:8080", None))
                .unwrap()
                .is_on()
        );
    }

    #[test]
    fn registrations_require_a_discoverable_credential_verifying_its_user() {
        let rp = RelyingParty::new(&settings("http://localhost:8080", None)).unwrap();
        let user_id = UserId::generate();
        let (options, _) = rp
            .start_registration(&user_id, "ada@example.com", vec![])
            .unwrap();
        let selection = &options["authenticatorSelection"];
        assert_eq!(selection["residentKey"], "required");
        assert_eq!(selection["requireResidentKey"], true);
        assert_eq!(selection["userVerification"], "required");
        assert_eq!(options["rp"]["id"], "localhost");
    }

    #[test]
    fn logins_list_no_credentials() {
        let rp = RelyingParty::new(&settings("http://localhost:8080", None)).unwrap();
        let (options, _) = rp.start_login().unwrap();
        assert_eq!(options["allowCredentials"], serde_json::json!([]));
        assert_eq!(options["userVerification"], "required");
    }

    #[test]
    fn a_ceremony_run_in_another_sites_frame_is_told_apart() {
        assert!(!is_framed(
            br#"{"type":"webauthn.get","crossOrigin":false}"#
        ));
        assert!(!is_framed(br#"{"type":"webauthn.get"}"#));
        assert!(is_framed(br#"{"type":"webauthn.get","crossOrigin":true}"#));
        assert!(is_framed(
            br#"{"crossOrigin":false,"topOrigin":"https://evil.example"}"#
        ));
    }

    #[test]
    fn the_backup_eligible_flag_is_read_from_the_flags_byte() {
        let mut data = vec![0u8; 37];
        assert!(!claims_backup_eligibility(&data));
        data[32] = 0x1d;
        assert!(claims_backup_eligibility(&data));
        assert!(!claims_backup_eligibility(&data[..32]));
    }
}
