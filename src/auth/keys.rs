//! Signing keys. With a shared secret configured, tokens are HS256 and nothing is published.
//! Otherwise an Ed25519 key is generated on first start and kept in the database, so that
//! every instance and every restart signs and verifies with the same keys.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use ed25519_dalek::pkcs8::EncodePrivateKey as _;
use hmac::{Hmac, Mac};
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey};
use secrecy::{ExposeSecret, SecretString};
use serde_json::json;
use sha2::{Digest, Sha256};

use crate::db::{self, DbConn, signing_keys};
use crate::error::Error;

const EDDSA: &str = "EdDSA";

/// A key that verifies tokens, and its public form for the JWKS when it has one.
pub struct VerifyingKey {
    pub kid: String,
    pub algorithm: Algorithm,
    pub decoding: DecodingKey,
    pub jwk: Option<serde_json::Value>,
}

pub struct SigningKey {
    pub kid: String,
    pub algorithm: Algorithm,
    pub encoding: EncodingKey,
}

/// The key that signs new tokens and every key that still verifies.
pub struct KeySet {
    pub signing: SigningKey,
    pub verifying: Vec<VerifyingKey>,
}

impl KeySet {
    /// The HS256 key set of a shared secret. Its `kid` is derived from the secret by HMAC, so
    /// instances sharing the secret agree on it and it reveals nothing about the secret.
    pub fn from_secret(secret: &SecretString) -> Self {
        let secret = secret.expose_secret().as_bytes();
        let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(secret).expect("HMAC takes any key");
        mac.update(b"latchkey key id");
        let kid = format!(
            "hs256-{}",
            &URL_SAFE_NO_PAD.encode(mac.finalize().into_bytes())[..16]
        );
        Self {
            signing: SigningKey {
                kid: kid.clone(),
                algorithm: Algorithm::HS256,
                encoding: EncodingKey::from_secret(secret),
            },
            verifying: vec![VerifyingKey {
                kid,
                algorithm: Algorithm::HS256,
                decoding: DecodingKey::from_secret(secret),
                jwk: None,
            }],
        }
    }

    /// Loads the Ed25519 keys from the database, creating the first one if there is none.
    pub fn load_or_create(conn: &mut DbConn) -> Result<Self, Error> {
        let mut stored = signing_keys::list_unretired(conn)?;
        if stored.is_empty() {
            create_first_key(conn)?;
            stored = signing_keys::list_unretired(conn)?;
        }
        let newest = stored
            .first()
            .ok_or_else(|| Error::internal(anyhow::anyhow!("no signing key after creating one")))?;
        let signing = ed25519_signing(&newest.kid, &newest.private_key);
        let verifying = stored
            .iter()
            .filter(|key| key.algorithm == EDDSA)
            .map(|key| ed25519_verifying(&key.kid, &key.public_key))
            .collect();
        Ok(Self { signing, verifying })
    }

    /// The Ed25519 key set of one key made from `seed`, built exactly as
    /// [`KeySet::load_or_create`] builds it from the database (same DER forms, `kid` and
    /// JWK). For tests that need real keys without a database; the service keeps its keys
    /// in the database.
    pub fn from_ed25519_seed(seed: &[u8; 32]) -> Result<Self, Error> {
        let key = Ed25519Key::from_seed(seed)?;
        Ok(Self {
            signing: ed25519_signing(&key.kid, &key.private_der),
            verifying: vec![ed25519_verifying(&key.kid, &key.public)],
        })
    }

    /// The JWK Set of the public keys (empty for HS256, whose key must stay secret).
    pub fn jwks(&self) -> serde_json::Value {
        let keys: Vec<_> = self
            .verifying
            .iter()
            .filter_map(|key| key.jwk.clone())
            .collect();
        json!({ "keys": keys })
    }
}

/// Generation 1 is unique, so when several instances start on an empty database at once,
/// one insert wins and the others read the winner's key.
fn create_first_key(conn: &mut DbConn) -> Result<(), Error> {
    let mut seed = [0u8; 32];
    getrandom::fill(&mut seed).map_err(Error::internal)?;
    let Ed25519Key {
        kid,
        private_der,
        public,
    } = Ed25519Key::from_seed(&seed)?;
    let inserted = signing_keys::insert(
        conn,
        &signing_keys::NewSigningKey {
            kid: &kid,
            generation: 1,
            algorithm: EDDSA,
            private_key: &private_der,
            public_key: &public,
            created_at: db::now(),
        },
    );
    match inserted {
        Ok(()) => {
            tracing::info!(%kid, "generated the first Ed25519 signing key");
            Ok(())
        }
        Err(diesel::result::Error::DatabaseError(
            diesel::result::DatabaseErrorKind::UniqueViolation,
            _,
        )) => Ok(()),
        Err(error) => Err(error.into()),
    }
}

/// An Ed25519 key in the forms it is stored in: PKCS#8 DER private key, raw public key.
struct Ed25519Key {
    kid: String,
    private_der: Vec<u8>,
    public: [u8; 32],
}

impl Ed25519Key {
    fn from_seed(seed: &[u8; 32]) -> Result<Self, Error> {
        let key = ed25519_dalek::SigningKey::from_bytes(seed);
        let private_der = key.to_pkcs8_der().map_err(Error::internal)?;
        let public = key.verifying_key().to_bytes();
        Ok(Self {
            kid: jwk_thumbprint(&public),
            private_der: private_der.as_bytes().to_vec(),
            public,
        })
    }
}

fn ed25519_signing(kid: &str, private_der: &[u8]) -> SigningKey {
    SigningKey {
        kid: kid.to_owned(),
        algorithm: Algorithm::EdDSA,
        encoding: EncodingKey::from_ed_der(private_der),
    }
}

fn ed25519_verifying(kid: &str, public: &[u8]) -> VerifyingKey {
    VerifyingKey {
        kid: kid.to_owned(),
        algorithm: Algorithm::EdDSA,
        decoding: DecodingKey::from_ed_der(public),
        jwk: Some(ed25519_jwk(kid, public)),
    }
}

fn ed25519_jwk(kid: &str, public: &[u8]) -> serde_json::Value {
    json!({
        "kty": "OKP",
        "crv": "Ed25519",
        "x": URL_SAFE_NO_PAD.encode(public),
        "kid": kid,
        "use": "sig",
        "alg": EDDSA,
    })
}

/// The RFC 7638 thumbprint of the public key's JWK: a key id any client can recompute.
fn jwk_thumbprint(public: &[u8]) -> String {
    let canonical = format!(
        r#"{{"crv":"Ed25519","kty":"OKP","x":"{}"}}"#,
        URL_SAFE_NO_PAD.encode(public)
    );
    URL_SAFE_NO_PAD.encode(Sha256::digest(canonical.as_bytes()))
}
