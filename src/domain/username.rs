use crate::error::FieldError;

/// 3 to 32 characters of `A-Z a-z 0-9 _ . -`. The spelling is kept; uniqueness ignores case.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Username(String);

impl Username {
    pub fn parse(raw: &str) -> Result<Self, FieldError> {
        let allowed = |c: char| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-');
        if (3..=32).contains(&raw.len()) && raw.chars().all(allowed) {
            Ok(Self(raw.to_owned()))
        } else {
            Err(FieldError::new(
                "username",
                "invalid_username",
                "must be 3 to 32 characters of letters, digits, '_', '.' and '-'",
            ))
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_the_allowed_alphabet() {
        for raw in ["ada", "Ada_Lovelace-1815.x", &"a".repeat(32)] {
            assert!(Username::parse(raw).is_ok(), "{raw}");
        }
    }

    #[test]
    fn rejects_bad_length_and_characters() {
        for raw in ["ab", &"a".repeat(33), "ada lovelace", "adä", "ada@home", ""] {
            assert!(Username::parse(raw).is_err(), "{raw}");
        }
    }
}
