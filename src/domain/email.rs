use validator::ValidateEmail;

use crate::error::FieldError;

/// An email address as stored: trimmed, lowercased, syntactically valid, at most 254
/// characters (RFC 5321's limit on a forward path).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Email(String);

const MAX_CHARS: usize = 254;

impl Email {
    pub fn parse(raw: &str) -> Result<Self, FieldError> {
        let normalized = raw.trim().to_lowercase();
        if normalized.chars().count() > MAX_CHARS {
            return Err(FieldError::new(
                "email",
                "email_too_long",
                "must be at most 254 characters",
            ));
        }
        if normalized.chars().any(char::is_control) || !normalized.validate_email() {
            return Err(FieldError::new(
                "email",
                "invalid_email",
                "must be a valid email address",
            ));
        }
        Ok(Self(normalized))
    }

    /// The form used to look an account up: the same normalisation as [`Email::parse`],
    /// without judging the syntax (an invalid address simply matches nobody).
    pub fn normalize_for_lookup(raw: &str) -> String {
        raw.trim().to_lowercase()
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn trims_and_lowercases() {
        let email = Email::parse("  Ada@Example.COM ").unwrap();
        assert_eq!(email.as_str(), "ada@example.com");
    }

    #[test]
    fn rejects_what_is_not_an_address() {
        for raw in [
            "",
            "ada",
            "ada@",
            "@example.com",
            "ada@exa mple.com",
            "a\u{0}@x.io",
        ] {
            assert_eq!(
                Email::parse(raw).unwrap_err().code,
                "invalid_email",
                "{raw:?}"
            );
        }
    }

    #[test]
    fn rejects_more_than_254_characters() {
        let raw = format!("{}@{}.com", "a".repeat(64), "b".repeat(190));
        assert_eq!(Email::parse(&raw).unwrap_err().code, "email_too_long");
    }
}
