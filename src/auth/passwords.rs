//! Argon2id hashing and verification, run on a [`HashPool`] of as many threads as cores: a
//! flood of logins waits its turn instead of pinning every thread and allocating the hash's
//! memory once per request.

use std::sync::Arc;

use argon2::password_hash::{PasswordHash, PasswordHasher as _, PasswordVerifier as _, SaltString};
use argon2::{Algorithm, Argon2, Params, Version};
use secrecy::{ExposeSecret, SecretString};

use super::hash_pool::HashPool;
use crate::config::Argon2Params;
use crate::error::Error;

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
    pub fn new(params: Argon2Params, workers: usize) -> anyhow::Result<Self> {
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
        let decoy_hash = hash_with(&hasher, &decoy_password)?;
        Ok(Self {
            hasher,
            pool: Arc::new(HashPool::new(workers)?),
            decoy_hash: decoy_hash.into(),
        })
    }

    /// Hashes a new password with the current parameters and a fresh salt.
    pub async fn hash(&self, password: SecretString) -> Result<String, Error> {
        let hasher = self.hasher.clone();
        self.pool
            .run(move || hash_with(&hasher, password.expose_secret().as_bytes()))
            .await?
            .map_err(Error::internal)
    }

    /// Checks `password` against `stored`, or against the decoy when there is no account.
    /// A decoy check never matches.
    pub async fn verify(
        &self,
        password: SecretString,
        stored: Option<String>,
    ) -> Result<Verification, Error> {
        let hasher = self.hasher.clone();
        let decoy = self.decoy_hash.clone();
        self.pool
            .run(move || {
                let is_decoy = stored.is_none();
                let encoded = stored.as_deref().unwrap_or(&decoy);
                let parsed = PasswordHash::new(encoded).map_err(|error| {
                    anyhow::anyhow!("stored password hash is unreadable: {error}")
                })?;
                let matches = hasher
                    .verify_password(password.expose_secret().as_bytes(), &parsed)
                    .is_ok();
                Ok::<_, anyhow::Error>(Verification {
                    matches: matches && !is_decoy,
                    needs_rehash: !uses_current_params(&hasher, &parsed),
                })
            })
            .await?
            .map_err(Error::internal)
    }
}

fn hash_with(hasher: &Argon2<'_>, password: &[u8]) -> anyhow::Result<String> {
    let mut salt = [0u8; 16];
    getrandom::fill(&mut salt)?;
    let salt = SaltString::encode_b64(&salt)
        .map_err(|error| anyhow::anyhow!("encoding a salt: {error}"))?;
    let hash = hasher
        .hash_password(password, &salt)
        .map_err(|error| anyhow::anyhow!("hashing a password: {error}"))?;
    Ok(hash.to_string())
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
        Passwords::new(params, 2).unwrap()
    }

    #[actix_web::test]
    async fn verifies_what_it_hashed_and_nothing_else() {
        let passwords = cheap(8192);
        let hash = passwords.hash("correct horse".into()).await.unwrap();
        assert!(hash.starts_with("$argon2id$v=19$m=8192,t=1,p=1$"));
        let right = passwords
            .verify("correct horse".into(), Some(hash.clone()))
            .await
            .unwrap();
        assert_eq!(
            right,
            Verification {
                matches: true,
                needs_rehash: false
            }
        );
        let wrong = passwords
            .verify("Correct horse".into(), Some(hash))
            .await
            .unwrap();
        assert!(!wrong.matches);
    }

    #[actix_web::test]
    async fn the_decoy_never_matches() {
        let passwords = cheap(8192);
        let outcome = passwords.verify("anything".into(), None).await.unwrap();
        assert!(!outcome.matches);
    }

    #[actix_web::test]
    async fn flags_hashes_made_with_other_parameters() {
        let old = cheap(8192).hash("correct horse".into()).await.unwrap();
        let outcome = cheap(9216)
            .verify("correct horse".into(), Some(old))
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
}
