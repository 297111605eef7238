//! Argon2id hashing and verification, run on a [`HashPool`] of as many threads as cores: a
//! flood of logins waits its turn instead of pinning every thread, and each hashing thread
//! keeps one Argon2 memory area that it reuses for every hash. Each hash or check takes a
//! [`Ticket`] first (see [`Passwords::reserve`]).

use std::cell::RefCell;
use std::sync::Arc;

use argon2::password_hash::{Output, ParamsString, PasswordHash, Salt, SaltString};
use argon2::{Algorithm, Argon2, Block, Params, Version};
use secrecy::{ExposeSecret, SecretString};

use super::hash_pool::{HashPool, Ticket};
use crate::error::Error;

/// Argon2id cost. The defaults are OWASP's minimum for Argon2id: m = 19 MiB, t = 2, p = 1.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Argon2Params {
    pub memory_kib: u32,
    pub iterations: u32,
    pub parallelism: u32,
}

impl Default for Argon2Params {
    fn default() -> Self {
        Self {
            memory_kib: 19 * 1024,
            iterations: 2,
            parallelism: 1,
        }
    }
}

/// The result of checking a password against a stored hash.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Verification {
    pub matches: bool,
    /// The stored hash was made with other parameters than the current ones.
    pub needs_rehash: bool,
}

#[derive(Clone)]
pub struct Passwords {
    hasher: Argon2<'static>,
    pool: Arc<HashPool>,
    /// A hash of a random password, verified when the account does not exist so that an
    /// unknown account costs as much as a wrong password.
    decoy_hash: Arc<str>,
}

impl Passwords {
    /// `workers` hashing threads, and room for `queue_max` hashes waiting for one.
    pub fn new(params: Argon2Params, workers: usize, queue_max: usize) -> anyhow::Result<Self> {
        let params = Params::new(
            params.memory_kib,
            params.iterations,
            params.parallelism,
            None,
        )
        .map_err(|error| anyhow::anyhow!("invalid Argon2 parameters: {error}"))?;
        let hasher = Argon2::new(Algorithm::Argon2id, Version::V0x13, params);
        let mut decoy_password = [0u8; 32];
        getrandom::fill(&mut decoy_password)?;
        // Hashed here, on the caller's thread, with memory of its own that is freed at once.
        let decoy_hash = hash_with(&hasher, &decoy_password, &mut Vec::new())?;
        Ok(Self {
            hasher,
            pool: Arc::new(HashPool::new(workers, queue_max)?),
            decoy_hash: decoy_hash.into(),
        })
    }

    /// The hashing queue's metrics, for `GET /metrics`.
    pub fn queue_collectors(&self) -> Vec<Box<dyn prometheus::core::Collector>> {
        self.pool.collectors()
    }

    /// A place in the hashing queue for one hash or check, or `Unavailable` when it is full.
    /// A flow takes its tickets before it counts an attempt or writes anything, so that an
    /// overloaded instance refuses at once and the refusal costs the client nothing.
    pub fn reserve(&self) -> Result<Ticket, Error> {
        self.pool.reserve()
    }

    /// Hashes a new password with the current parameters and a fresh salt.
    pub async fn hash(&self, ticket: Ticket, password: SecretString) -> Result<String, Error> {
        let hasher = self.hasher.clone();
        self.pool
            .run(ticket, move || {
                with_thread_memory(&hasher, |memory| {
                    hash_with(&hasher, password.expose_secret().as_bytes(), memory)
                })
            })
            .await?
            .map_err(Error::internal)
    }

    /// Checks `password` against `stored`, or against the decoy when there is no account.
    /// A decoy check never matches.
    pub async fn verify(
        &self,
        ticket: Ticket,
        password: SecretString,
        stored: Option<String>,
    ) -> Result<Verification, Error> {
        let hasher = self.hasher.clone();
        let decoy = self.decoy_hash.clone();
        self.pool
            .run(ticket, move || {
                let is_decoy = stored.is_none();
                let encoded = stored.as_deref().unwrap_or(&decoy);
                let parsed = PasswordHash::new(encoded).map_err(|error| {
                    anyhow::anyhow!("stored password hash is unreadable: {error}")
                })?;
                let matches = with_thread_memory(&hasher, |memory| {
                    matches_stored(password.expose_secret().as_bytes(), &parsed, memory)
                })?;
                Ok::<_, anyhow::Error>(Verification {
                    matches: matches && !is_decoy,
                    needs_rehash: !uses_current_params(&hasher, &parsed),
                })
            })
            .await?
            .map_err(Error::internal)
    }
}

thread_local! {
    /// The Argon2 memory area of a hashing thread, reused: a fresh area per hash costs more
    /// than the hash itself, as every page of it is faulted in and zeroed, then unmapped.
    /// Argon2 overwrites every block before reading it, so nothing carries over between
    /// hashes; what stays in memory between them reveals no more than the stored hash does.
    static MEMORY: RefCell<Vec<Block>> = const { RefCell::new(Vec::new()) };
}

/// Runs `work` with this thread's Argon2 memory area, which it keeps at the size the current
/// parameters need: a stored hash made with more memory grows it only for that hash.
fn with_thread_memory<T>(hasher: &Argon2<'_>, work: impl FnOnce(&mut Vec<Block>) -> T) -> T {
    MEMORY.with(|memory| {
        let mut memory = memory.borrow_mut();
        let outcome = work(&mut memory);
        let kept = hasher.params().block_count();
        if memory.len() > kept {
            memory.truncate(kept);
            memory.shrink_to_fit();
        }
        outcome
    })
}

/// Hashes `password` with a fresh salt into a PHC string, in `memory`.
fn hash_with(
    hasher: &Argon2<'_>,
    password: &[u8],
    memory: &mut Vec<Block>,
) -> anyhow::Result<String> {
    let mut salt = [0u8; 16];
    getrandom::fill(&mut salt)?;
    let salt = SaltString::encode_b64(&salt)
        .map_err(|error| anyhow::anyhow!("encoding a salt: {error}"))?;
    let params = hasher.params();
    let output = compute(
        hasher,
        password,
        salt.as_salt(),
        params.output_len(),
        memory,
    )?;
    let hash = PasswordHash {
        algorithm: argon2::ARGON2ID_IDENT,
        version: Some(Version::V0x13.into()),
        params: ParamsString::try_from(params)
            .map_err(|error| anyhow::anyhow!("encoding Argon2 parameters: {error}"))?,
        salt: Some(salt.as_salt()),
        hash: Some(output),
    };
    Ok(hash.to_string())
}

/// Whether `password` hashes to `stored`, recomputed with the stored algorithm, version and
/// parameters (which may be older than the current ones).
fn matches_stored(
    password: &[u8],
    stored: &PasswordHash<'_>,
    memory: &mut Vec<Block>,
) -> anyhow::Result<bool> {
    let unreadable = |error: &dyn std::fmt::Display| {
        anyhow::anyhow!("stored password hash is unreadable: {error}")
    };
    let (Some(salt), Some(expected)) = (stored.salt, stored.hash) else {
        return Err(unreadable(&"it has no salt or no hash"));
    };
    let algorithm = Algorithm::try_from(stored.algorithm).map_err(|e| unreadable(&e))?;
    let version = stored
        .version
        .map_or(Ok(Version::default()), Version::try_from)
        .map_err(|e| unreadable(&e))?;
    let params = Params::try_from(stored).map_err(|e| unreadable(&e))?;
    let hasher = Argon2::new(algorithm, version, params);
    let actual = compute(&hasher, password, salt, Some(expected.len()), memory)?;
    // Output's equality is constant-time.
    Ok(actual == expected)
}

/// The raw Argon2 output for `password` and `salt` (its base64 text decoded, as the PHC
/// format's hashers do), computed in `memory`.
fn compute(
    hasher: &Argon2<'_>,
    password: &[u8],
    salt: Salt<'_>,
    output_len: Option<usize>,
    memory: &mut Vec<Block>,
) -> anyhow::Result<Output> {
    let mut salt_bytes = [0u8; Salt::MAX_LENGTH];
    let salt = salt
        .decode_b64(&mut salt_bytes)
        .map_err(|error| anyhow::anyhow!("decoding a salt: {error}"))?;
    let blocks = hasher.params().block_count();
    if memory.len() < blocks {
        memory.resize(blocks, Block::default());
    }
    Output::init_with(output_len.unwrap_or(Params::DEFAULT_OUTPUT_LEN), |out| {
        hasher
            .hash_password_into_with_memory(password, salt, out, &mut memory[..blocks])
            .map_err(argon2::password_hash::Error::from)
    })
    .map_err(|error| anyhow::anyhow!("hashing a password: {error}"))
}

fn uses_current_params(hasher: &Argon2<'_>, stored: &PasswordHash<'_>) -> bool {
    let current = hasher.params();
    stored.algorithm == argon2::ARGON2ID_IDENT
        && stored.version == Some(Version::V0x13.into())
        && Params::try_from(stored).is_ok_and(|params| {
            params.m_cost() == current.m_cost()
                && params.t_cost() == current.t_cost()
                && params.p_cost() == current.p_cost()
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cheap(memory_kib: u32) -> Passwords {
        let params = Argon2Params {
            memory_kib,
            iterations: 1,
            parallelism: 1,
        };
        Passwords::new(params, 2, 8).unwrap()
    }

    async fn hash(passwords: &Passwords, password: &str) -> String {
        let ticket = passwords.reserve().unwrap();
        passwords.hash(ticket, password.into()).await.unwrap()
    }

    async fn verify(
        passwords: &Passwords,
        password: &str,
        stored: Option<String>,
    ) -> Result<Verification, Error> {
        let ticket = passwords.reserve().unwrap();
        passwords.verify(ticket, password.into(), stored).await
    }

    #[actix_web::test]
    async fn verifies_what_it_hashed_and_nothing_else() {
        let passwords = cheap(8192);
        let hash = hash(&passwords, "correct horse").await;
        assert!(hash.starts_with("$argon2id$v=19$m=8192,t=1,p=1$"));
        let right = verify(&passwords, "correct horse", Some(hash.clone()))
            .await
            .unwrap();
        assert_eq!(
            right,
            Verification {
                matches: true,
                needs_rehash: false
            }
        );
        let wrong = verify(&passwords, "Correct horse", Some(hash))
            .await
            .unwrap();
        assert!(!wrong.matches);
    }

    #[actix_web::test]
    async fn the_decoy_never_matches() {
        let passwords = cheap(8192);
        let outcome = verify(&passwords, "anything", None).await.unwrap();
        assert!(!outcome.matches);
    }

    #[actix_web::test]
    async fn flags_hashes_made_with_other_parameters() {
        let old = hash(&cheap(8192), "correct horse").await;
        let outcome = verify(&cheap(9216), "correct horse", Some(old))
            .await
            .unwrap();
        assert_eq!(
            outcome,
            Verification {
                matches: true,
                needs_rehash: true
            }
        );
    }

    /// Hashes already stored may come from the argon2 crate's own hasher: both directions
    /// must keep agreeing with it.
    #[actix_web::test]
    async fn agrees_with_the_argon2_crates_own_hasher() {
        use argon2::password_hash::{PasswordHasher as _, PasswordVerifier as _};

        let passwords = cheap(8192);
        let standard = passwords.hasher.clone();
        let salt = SaltString::encode_b64(b"sixteen byte slt").unwrap();
        let theirs = standard
            .hash_password(b"correct horse", &salt)
            .unwrap()
            .to_string();
        let outcome = verify(&passwords, "correct horse", Some(theirs.clone()))
            .await
            .unwrap();
        assert!(outcome.matches && !outcome.needs_rehash);
        let wrong = verify(&passwords, "correct horsE", Some(theirs))
            .await
            .unwrap();
        assert!(!wrong.matches);

        let ours = hash(&passwords, "correct horse").await;
        let parsed = PasswordHash::new(&ours).unwrap();
        assert!(standard.verify_password(b"correct horse", &parsed).is_ok());
        assert!(standard.verify_password(b"correct horsE", &parsed).is_err());
    }

    #[actix_web::test]
    async fn verifies_a_hash_made_with_more_memory_and_keeps_its_own_size() {
        let bigger = hash(&cheap(16384), "correct horse").await;
        // One hashing thread, so that the check below runs where the hash ran.
        let params = Argon2Params {
            memory_kib: 8192,
            iterations: 1,
            parallelism: 1,
        };
        let passwords = Passwords::new(params, 1, 8).unwrap();
        let outcome = verify(&passwords, "correct horse", Some(bigger))
            .await
            .unwrap();
        assert!(outcome.matches && outcome.needs_rehash);
        let kept = passwords
            .pool
            .run(passwords.reserve().unwrap(), || {
                MEMORY.with(|memory| memory.borrow().len())
            })
            .await
            .unwrap();
        assert_eq!(kept, 8192, "the area should be back to the current size");
    }

    #[actix_web::test]
    async fn an_unreadable_stored_hash_is_an_error_not_a_match() {
        let passwords = cheap(8192);
        for stored in [
            "",
            "$argon2id$v=19$m=8192,t=1,p=1$c2FsdHNhbHRzYWx0",
            "plain",
        ] {
            let outcome = verify(&passwords, "x", Some(stored.into())).await;
            assert!(outcome.is_err(), "{stored:?} was accepted");
        }
    }
}
