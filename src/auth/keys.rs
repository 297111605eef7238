//! Signing keys. With a shared secret configured, tokens are HS256 and nothing is published.
//! Otherwise Ed25519 keys are kept in the database, so that every instance and every
//! restart signs and verifies with the same keys: the first is generated on first start,
//! and `latchkey keys rotate` adds a new one that signs from then on. A replaced key keeps
//! verifying until every token it can have signed has expired (see [`retire_after`]).
//! Private keys are stored as the [`KeyVault`] seals them.

use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chrono::NaiveDateTime;
use ed25519_dalek::pkcs8::EncodePrivateKey as _;
use futures_util::future::BoxFuture;
use hmac::{Hmac, Mac};
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey};
use secrecy::{ExposeSecret, SecretString};
use serde::Serialize;
use sha2::{Digest, Sha256};

use super::claims::LEEWAY;
use super::codes::CodeKey;
use super::key_vault::KeyVault;
use super::mfa;
use crate::db::{self, Db, DbConn, signing_keys};
use crate::error::Error;

const EDDSA: &str = "EdDSA";

/// A key that verifies tokens, and its public form for the JWKS when it has one.
pub struct VerifyingKey {
    pub kid: String,
    pub algorithm: Algorithm,
    pub decoding: DecodingKey,
    pub jwk: Option<Jwk>,
    /// When it stops verifying; `None` for the key that signs.
    pub retires_at: Option<NaiveDateTime>,
}

/// A public key as the JWK Set publishes it (RFC 7517, RFC 8037): an Ed25519 key.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct Jwk {
    #[schema(examples("OKP"))]
    kty: &'static str,
    #[schema(examples("Ed25519"))]
    crv: &'static str,
    /// The public key, base64url without padding.
    x: String,
    kid: String,
    #[serde(rename = "use")]
    #[schema(examples("sig"))]
    use_: &'static str,
    #[schema(examples("EdDSA"))]
    alg: &'static str,
}

/// A JWK Set: Ed25519 keys as `{"kty": "OKP", "crv": "Ed25519", "x", "kid", "use": "sig", "alg": "EdDSA"}`.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct JwkSet {
    pub keys: Vec<Jwk>,
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

/// How long a replaced key must keep verifying. An instance that has not reloaded the keys
/// yet still signs with it, for up to `reload_interval` after the rotation; its last token
/// then lives `access_ttl`, and verifiers tolerate the clock leeway beyond that.
pub fn retire_after(access_ttl: Duration, reload_interval: Duration) -> Duration {
    reload_interval + access_ttl + LEEWAY
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
                retires_at: None,
            }],
        }
    }

    /// Loads the Ed25519 keys from the database, creating one if none signs (a fresh
    /// database).
    pub fn load_or_create(conn: &mut DbConn, vault: &KeyVault) -> Result<Self, Error> {
        if let Some(keys) = Self::load(conn, vault)? {
            return Ok(keys);
        }
        let generation = signing_keys::max_generation(conn)?.unwrap_or(0) + 1;
        create_key(conn, generation, vault)?;
        Self::load(conn, vault)?
            .ok_or_else(|| Error::internal(anyhow::anyhow!("no signing key after creating one")))
    }

    /// The Ed25519 keys that verify now, the newest unretired one signing; `None` when no
    /// key signs.
    pub fn load(conn: &mut DbConn, vault: &KeyVault) -> Result<Option<Self>, Error> {
        let stored = signing_keys::list_verifying(conn, db::now())?;
        let Some(newest) = stored
            .iter()
            .find(|key| key.algorithm == EDDSA && key.retired_at.is_none())
        else {
            return Ok(None);
        };
        let private_der = vault.open(&newest.kid, &newest.private_key)?;
        let signing = ed25519_signing(&newest.kid, &private_der);
        let verifying = stored
            .iter()
            .filter(|key| key.algorithm == EDDSA)
            .map(|key| ed25519_verifying(&key.kid, &key.public_key, key.retired_at))
            .collect();
        Ok(Some(Self { signing, verifying }))
    }

    /// The Ed25519 key set of one key made from `seed`, built exactly as
    /// [`KeySet::load_or_create`] builds it from the database (same DER forms, `kid` and
    /// JWK). For tests that need real keys without a database; the service keeps its keys
    /// in the database.
    pub fn from_ed25519_seed(seed: &[u8; 32]) -> Result<Self, Error> {
        let key = Ed25519Key::from_seed(seed)?;
        Ok(Self {
            signing: ed25519_signing(&key.kid, &key.private_der),
            verifying: vec![ed25519_verifying(&key.kid, &key.public, None)],
        })
    }
}

/// Reads the keys from the database again, for [`AccessTokens::reloading_with`]; failing
/// when no key signs, so that the keys loaded so far stay in use.
///
/// [`AccessTokens::reloading_with`]: super::tokens::AccessTokens::reloading_with
pub fn reload_from(
    db: Db,
    vault: KeyVault,
) -> impl Fn() -> BoxFuture<'static, Result<KeySet, Error>> + Send + Sync {
    move || {
        let (db, vault) = (db.clone(), vault.clone());
        Box::pin(async move {
            db.run(move |conn| {
                KeySet::load(conn, &vault)?.ok_or_else(|| {
                    Error::internal(anyhow::anyhow!("no signing key in the database"))
                })
            })
            .await
        })
    }
}

/// A key as `latchkey keys list` shows it.
pub struct KeyInfo {
    pub kid: String,
    pub algorithm: String,
    pub created_at: NaiveDateTime,
    pub state: KeyState,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyState {
    Signing,
    VerifyingUntil(NaiveDateTime),
    RetiredAt(NaiveDateTime),
}

/// Every stored key, newest first, with its state at `now`.
pub fn list(conn: &mut DbConn, now: NaiveDateTime) -> Result<Vec<KeyInfo>, Error> {
    let keys = signing_keys::list(conn)?;
    Ok(keys
        .into_iter()
        .map(|key| KeyInfo {
            state: match key.retired_at {
                None => KeyState::Signing,
                Some(at) if at > now => KeyState::VerifyingUntil(at),
                Some(at) => KeyState::RetiredAt(at),
            },
            kid: key.kid,
            algorithm: key.algorithm,
            created_at: key.created_at,
        })
        .collect())
}

/// What a rotation did.
pub struct Rotated {
    /// The new key, which signs from now on.
    pub kid: String,
    /// The key(s) it replaced, which verify until `retires_at`.
    pub replaced: Vec<String>,
    pub retires_at: NaiveDateTime,
}

/// Adds a new Ed25519 key that signs from now on; the keys it replaces verify for
/// `verify_for` more (see [`retire_after`]). `None` when another rotation committed at the
/// same moment: this one then changed nothing.
pub fn rotate(
    conn: &mut DbConn,
    verify_for: Duration,
    vault: &KeyVault,
) -> Result<Option<Rotated>, Error> {
    let key = Ed25519Key::generate()?;
    let stored_private = vault.seal(&key.kid, &key.private_der)?;
    let now = db::now();
    let retires_at = now + db::span(verify_for);
    // The generation is read before anything is written, so that of two concurrent
    // rotations the second fails on the unique generation instead of leaving two keys that
    // both think they sign.
    let outcome = db::write_transaction(conn, |conn| {
        let generation = signing_keys::max_generation(conn)?.unwrap_or(0) + 1;
        let replaced = signing_keys::schedule_retirement(conn, retires_at)?;
        signing_keys::erase_retired_private_keys(conn)?;
        signing_keys::insert(conn, &key.to_new(generation, now, &stored_private))?;
        Ok::<_, diesel::result::Error>(replaced)
    });
    match outcome {
        Ok(replaced) => Ok(Some(Rotated {
            kid: key.kid,
            replaced,
            retires_at,
        })),
        Err(error) if is_unique_violation(&error) => Ok(None),
        Err(error) => Err(error.into()),
    }
}

/// The generation is unique, so when several instances start on a database without a
/// signing key at once, one insert wins and the others read the winner's key.
fn create_key(conn: &mut DbConn, generation: i32, vault: &KeyVault) -> Result<(), Error> {
    let key = Ed25519Key::generate()?;
    let stored_private = vault.seal(&key.kid, &key.private_der)?;
    match signing_keys::insert(conn, &key.to_new(generation, db::now(), &stored_private)) {
        Ok(()) => {
            tracing::info!(kid = %key.kid, "generated an Ed25519 signing key");
            Ok(())
        }
        Err(error) if is_unique_violation(&error) => Ok(()),
        Err(error) => Err(error.into()),
    }
}

/// What `latchkey keys encrypt` sealed.
pub struct Encrypted {
    pub signing_keys: usize,
    /// The key of the one-time code hashes (see `codes::CodeKey`).
    pub code_key: bool,
    /// Accounts' TOTP secrets (see `mfa`).
    pub totp_secrets: usize,
}

/// Seals, in place, the private keys and the code key stored plain (before
/// `LATCHKEY_KEY_ENCRYPTION_KEY` was set). Each is replaced only if still the plain key
/// read, so that concurrent runs seal it once.
pub fn encrypt_stored(conn: &mut DbConn, vault: &KeyVault) -> Result<Encrypted, Error> {
    if !vault.seals() {
        return Err(Error::internal(anyhow::anyhow!(
            "LATCHKEY_KEY_ENCRYPTION_KEY is not set: there is no key to encrypt with"
        )));
    }
    let mut signing_keys = 0;
    for key in signing_keys::list(conn)? {
        if key.private_key.is_empty() || KeyVault::is_sealed(&key.private_key) {
            continue;
        }
        let stored = vault.seal(&key.kid, &key.private_key)?;
        signing_keys +=
            signing_keys::replace_private_key(conn, &key.kid, &key.private_key, &stored)?;
    }
    let code_key = CodeKey::seal_stored(conn, vault)?;
    let totp_secrets = mfa::seal_stored_secrets(conn, vault)?;
    Ok(Encrypted {
        signing_keys,
        code_key,
        totp_secrets,
    })
}

/// How many secret keys are stored plain: private keys (retired keys have none left), the
/// code key, and TOTP secrets.
pub fn count_plain(conn: &mut DbConn) -> Result<usize, Error> {
    let signing = signing_keys::list(conn)?
        .iter()
        .filter(|key| !key.private_key.is_empty() && !KeyVault::is_sealed(&key.private_key))
        .count();
    let code_key = usize::from(CodeKey::is_stored_plain(conn)?);
    Ok(signing + code_key + mfa::count_plain_secrets(conn)?)
}

fn is_unique_violation(error: &diesel::result::Error) -> bool {
    matches!(
        error,
        diesel::result::Error::DatabaseError(diesel::result::DatabaseErrorKind::UniqueViolation, _)
    )
}

/// An Ed25519 key in the forms it is stored in: PKCS#8 DER private key, raw public key.
struct Ed25519Key {
    kid: String,
    private_der: Vec<u8>,
    public: [u8; 32],
}

impl Ed25519Key {
    fn generate() -> Result<Self, Error> {
        let mut seed = [0u8; 32];
        getrandom::fill(&mut seed).map_err(Error::internal)?;
        Self::from_seed(&seed)
    }

    /// The row of this key, its private key in `stored_private`, the form the vault gave.
    fn to_new<'a>(
        &'a self,
        generation: i32,
        now: NaiveDateTime,
        stored_private: &'a [u8],
    ) -> signing_keys::NewSigningKey<'a> {
        signing_keys::NewSigningKey {
            kid: &self.kid,
            generation,
            algorithm: EDDSA,
            private_key: stored_private,
            public_key: &self.public,
            created_at: now,
        }
    }

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

fn ed25519_verifying(kid: &str, public: &[u8], retires_at: Option<NaiveDateTime>) -> VerifyingKey {
    VerifyingKey {
        kid: kid.to_owned(),
        algorithm: Algorithm::EdDSA,
        decoding: DecodingKey::from_ed_der(public),
        jwk: Some(ed25519_jwk(kid, public)),
        retires_at,
    }
}

fn ed25519_jwk(kid: &str, public: &[u8]) -> Jwk {
    Jwk {
        kty: "OKP",
        crv: "Ed25519",
        x: URL_SAFE_NO_PAD.encode(public),
        kid: kid.to_owned(),
        use_: "sig",
        alg: EDDSA,
    }
}

/// The RFC 7638 thumbprint of the public key's JWK: a key id any client can recompute.
fn jwk_thumbprint(public: &[u8]) -> String {
    let canonical = format!(
        r#"{{"crv":"Ed25519","kty":"OKP","x":"{}"}}"#,
        URL_SAFE_NO_PAD.encode(public)
    );
    URL_SAFE_NO_PAD.encode(Sha256::digest(canonical.as_bytes()))
}
