use icu_normalizer::ComposingNormalizerBorrowed;
use icu_properties::CodePointSetData;
use icu_properties::props::DefaultIgnorableCodePoint;
use validator::ValidateEmail;

use crate::error::FieldError;

/// An email address as stored: trimmed; the local part NFKC-normalised and lowercased, the
/// domain IDNA-normalised (UTS #46, to punycode); syntactically valid, at most 254 characters
/// (RFC 5321's limit on a forward path). Look-alike spellings of one mailbox (fullwidth
/// letters, upper case, a Unicode domain and its punycode) are one address; invisible and
/// control characters, which would make distinct accounts that look the same, are refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Email(String);

const MAX_CHARS: usize = 254;

impl Email {
    pub fn parse(raw: &str) -> Result<Self, FieldError> {
        let invalid = || FieldError::new("email", "invalid_email", "must be a valid email address");
        let too_long =
            || FieldError::new("email", "email_too_long", "must be at most 254 characters");
        if raw.trim().chars().count() > MAX_CHARS {
            return Err(too_long());
        }
        let normalized = normalize(raw).ok_or_else(invalid)?;
        if normalized.chars().count() > MAX_CHARS {
            return Err(too_long());
        }
        if !normalized.validate_email() {
            return Err(invalid());
        }
        Ok(Self(normalized))
    }

    /// The form used to look an account up: the same normalisation as [`Email::parse`],
    /// without judging the syntax (an invalid address simply matches nobody).
    pub fn normalize_for_lookup(raw: &str) -> String {
        normalize(raw).unwrap_or_else(|| raw.trim().to_lowercase())
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// `raw` as stored, or `None` when it holds an invisible or control character, has no `@`,
/// or its domain is no valid domain name.
fn normalize(raw: &str) -> Option<String> {
    let trimmed = raw.trim();
    let invisible = CodePointSetData::new::<DefaultIgnorableCodePoint>();
    if trimmed
        .chars()
        .any(|c| c.is_control() || invisible.contains(c))
    {
        return None;
    }
    let (local, domain) = trimmed.rsplit_once('@')?;
    let local = ComposingNormalizerBorrowed::new_nfkc()
        .normalize(local)
        .to_lowercase();
    let domain = idna::domain_to_ascii_strict(domain).ok()?;
    Some(format!("{local}@{domain}"))
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
    fn look_alike_spellings_are_one_address() {
        for raw in [
            "ada@ｅｘａｍｐｌｅ.com",
            "ａｄａ@example.com",
            "ADA@EXAMPLE.COM",
            "ada@example.com",
        ] {
            assert_eq!(
                Email::parse(raw).unwrap().as_str(),
                "ada@example.com",
                "{raw}"
            );
        }
        assert_eq!(
            Email::parse("ada@Bücher.example").unwrap().as_str(),
            "ada@xn--bcher-kva.example"
        );
        assert_eq!(
            Email::normalize_for_lookup(" ａｄａ@ＥＸＡＭＰＬＥ.com"),
            "ada@example.com"
        );
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
            "ada\u{200B}@example.com",
            "ada@exam\u{00AD}ple.com",
            "ad\u{2060}a@example.com",
            "ada@example.com\u{FEFF}x",
            "ada@ex_ample.com",
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
