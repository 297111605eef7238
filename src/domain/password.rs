use secrecy::{ExposeSecret, SecretString};

use super::common_passwords;
use crate::error::FieldError;

/// A password acceptable for a new credential, per NIST SP 800-63B: 8 to 128 characters
/// (Unicode scalar values, not bytes), not a commonly used password, not the account's own
/// email or username, and no composition rules.
#[derive(Debug)]
pub struct NewPassword(SecretString);

const MIN_CHARS: usize = 8;
const MAX_CHARS: usize = 128;

impl NewPassword {
    /// `field` names the request field in errors; `identity` holds the account's email and
    /// username, which the password may not equal (ignoring case).
    pub fn parse(
        field: &'static str,
        raw: SecretString,
        identity: &[&str],
    ) -> Result<Self, FieldError> {
        let password = raw.expose_secret();
        let length = password.chars().count();
        if length < MIN_CHARS {
            return Err(FieldError::new(
                field,
                "password_too_short",
                "must be at least 8 characters",
            ));
        }
        if length > MAX_CHARS {
            return Err(FieldError::new(
                field,
                "password_too_long",
                "must be at most 128 characters",
            ));
        }
        let lowered = password.to_lowercase();
        if identity
            .iter()
            .any(|value| value.trim().to_lowercase() == lowered)
        {
            return Err(FieldError::new(
                field,
                "password_matches_identity",
                "must differ from the email address and the username",
            ));
        }
        if common_passwords::contains(&lowered) {
            return Err(FieldError::new(
                field,
                "password_too_common",
                "is too common; choose a less guessable password",
            ));
        }
        Ok(Self(raw))
    }

    pub fn secret(&self) -> &SecretString {
        &self.0
    }

    pub fn into_secret(self) -> SecretString {
        self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(raw: &str, identity: &[&str]) -> Result<NewPassword, &'static str> {
        NewPassword::parse("password", SecretString::from(raw), identity).map_err(|e| e.code)
    }

    #[test]
    fn counts_characters_not_bytes() {
        // Four characters of four bytes each: 16 bytes but too short.
        assert_eq!(check("😀😀😀😀", &[]).unwrap_err(), "password_too_short");
        assert!(check("😀😀😀😀😀😀😀😀x", &[]).is_ok());
        assert!(check(&"é".repeat(128), &[]).is_ok());
        assert_eq!(
            check(&"é".repeat(129), &[]).unwrap_err(),
            "password_too_long"
        );
    }

    #[test]
    fn rejects_common_passwords_ignoring_case() {
        assert_eq!(check("password", &[]).unwrap_err(), "password_too_common");
        assert_eq!(check("Qwerty123", &[]).unwrap_err(), "password_too_common");
    }

    #[test]
    fn rejects_the_accounts_own_identity() {
        let identity = ["ada@example.com", "ada_lovelace"];
        assert_eq!(
            check("ADA@example.com", &identity).unwrap_err(),
            "password_matches_identity"
        );
        assert_eq!(
            check("Ada_Lovelace", &identity).unwrap_err(),
            "password_matches_identity"
        );
        assert!(check("analytical engine 1843", &identity).is_ok());
    }
}
