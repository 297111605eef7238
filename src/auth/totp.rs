//! TOTP (RFC 6238) as authenticator apps compute it: HMAC-SHA-1, 6 digits, 30-second steps;
//! `totp-rs` does the maths. A code is accepted for the step it was made in, or one step
//! either side (clock drift, a code typed as it turned over), and only for a step later than
//! the newest one already used, so that no code is accepted twice.

use qrcode::QrCode;
use qrcode::render::svg;
use subtle::ConstantTimeEq;
use totp_rs::{Algorithm, TOTP};
use zeroize::Zeroizing;

use crate::error::Error;

pub const DIGITS: usize = 6;
pub const STEP_SECONDS: u64 = 30;
/// Steps of drift accepted either side of the current one.
const DRIFT_STEPS: u64 = 1;
/// 160 bits, the length RFC 4226 recommends (the HMAC-SHA-1 output size).
const SECRET_BYTES: usize = 20;

/// A TOTP secret, wiped from memory when dropped.
pub struct TotpSecret(Zeroizing<Vec<u8>>);

/// What an authenticator app needs to make the codes of a secret.
pub struct Provisioning {
    /// The secret in base32 (RFC 4648, no padding), for typing in by hand.
    pub secret: Zeroizing<String>,
    /// The `otpauth://totp/` URI that the QR code holds.
    pub otpauth_uri: Zeroizing<String>,
    /// The QR code of the URI, as an SVG document.
    pub qr_svg: String,
}

impl TotpSecret {
    /// A fresh random secret.
    pub fn generate() -> Result<Self, Error> {
        let mut bytes = Zeroizing::new(vec![0u8; SECRET_BYTES]);
        getrandom::fill(bytes.as_mut()).map_err(Error::internal)?;
        Ok(Self(bytes))
    }

    pub fn from_bytes(bytes: Zeroizing<Vec<u8>>) -> Self {
        Self(bytes)
    }

    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }

    /// The secret for an app: labelled `issuer:account` in it.
    pub fn provisioning(&self, issuer: &str, account: &str) -> Result<Provisioning, Error> {
        let totp = self.totp(issuer, account);
        let otpauth_uri = Zeroizing::new(totp.get_url());
        let qr_svg = QrCode::new(otpauth_uri.as_bytes())
            .map_err(Error::internal)?
            .render::<svg::Color<'_>>()
            .min_dimensions(200, 200)
            .quiet_zone(true)
            .build();
        Ok(Provisioning {
            secret: Zeroizing::new(totp.get_secret_base32()),
            otpauth_uri,
            qr_svg,
        })
    }

    /// The step whose code `typed` is, among the current one (at `unix_time`) and its
    /// neighbours, and later than `used_step`; `None` if it is none of them.
    pub fn step_of(&self, typed: &str, unix_time: u64, used_step: Option<i64>) -> Option<i64> {
        let typed = read_code(typed)?;
        let totp = self.totp("", "");
        let now = unix_time / STEP_SECONDS;
        let mut found = None;
        // Every candidate is computed and compared in constant time: how long the check
        // takes says nothing about which step, if any, matched.
        for step in now.saturating_sub(DRIFT_STEPS)..=now + DRIFT_STEPS {
            let Ok(signed) = i64::try_from(step) else {
                continue;
            };
            let code = Zeroizing::new(totp.generate(step * STEP_SECONDS));
            let matches: bool = code.as_bytes().ct_eq(typed.as_bytes()).into();
            if matches && used_step.is_none_or(|used| signed > used) && found.is_none() {
                found = Some(signed);
            }
        }
        found
    }

    fn totp(&self, issuer: &str, account: &str) -> TOTP {
        // Unchecked: the secret is ours (160 bits), and a ':' in the label is percent-encoded
        // by `get_url`, where the checked constructor would refuse it.
        TOTP::new_unchecked(
            Algorithm::SHA1,
            DIGITS,
            0,
            STEP_SECONDS,
            self.0.to_vec(),
            (!issuer.is_empty()).then(|| issuer.to_owned()),
            account.to_owned(),
        )
    }
}

/// A typed code: six digits, spaces ignored (apps show `123 456`). Bounded before any work.
fn read_code(typed: &str) -> Option<Zeroizing<String>> {
    if typed.len() > 4 * DIGITS {
        return None;
    }
    let code: Zeroizing<String> =
        Zeroizing::new(typed.chars().filter(|c| !c.is_whitespace()).collect());
    (code.len() == DIGITS && code.bytes().all(|b| b.is_ascii_digit())).then_some(code)
}

/// Whether `typed` has the shape of a TOTP code (rather than of a recovery code).
pub fn looks_like_code(typed: &str) -> bool {
    read_code(typed).is_some()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// RFC 6238, appendix B: the SHA-1 secret, and codes at its times (the last 6 digits of
    /// its 8-digit values).
    fn rfc_secret() -> TotpSecret {
        TotpSecret::from_bytes(Zeroizing::new(b"12345678901234567890".to_vec()))
    }

    #[test]
    fn codes_are_those_of_rfc_6238() {
        let secret = rfc_secret();
        for (time, code) in [
            (59, "287082"),
            (1_111_111_109, "081804"),
            (1_234_567_890, "005924"),
            (2_000_000_000, "279037"),
        ] {
            let step = (time / STEP_SECONDS) as i64;
            assert_eq!(secret.step_of(code, time, None), Some(step), "at {time}");
        }
    }

    #[test]
    fn one_step_of_drift_either_side_and_no_step_twice() {
        let secret = rfc_secret();
        let time = 1_111_111_109; // step 37037036, code 081804
        assert_eq!(secret.step_of("081804", time + 30, None), Some(37_037_036));
        assert_eq!(secret.step_of("081804", time - 30, None), Some(37_037_036));
        assert_eq!(
            secret.step_of("081804", time + 60, None),
            None,
            "two steps late"
        );
        assert_eq!(secret.step_of("081804", time, Some(37_037_036)), None);
        assert_eq!(secret.step_of("081804", time, Some(37_037_037)), None);
        assert_eq!(
            secret.step_of("081804", time, Some(37_037_035)),
            Some(37_037_036)
        );
        assert_eq!(secret.step_of("081 804", time, None), Some(37_037_036));
        for wrong in ["081805", "81804", "0818041", "O81804", "", "０８１８０４"] {
            assert_eq!(secret.step_of(wrong, time, None), None, "{wrong:?}");
        }
        assert_eq!(secret.step_of(&" ".repeat(100_000), time, None), None);
    }

    #[test]
    fn provisioning_gives_the_secret_its_uri_and_a_qr_code() {
        let secret = rfc_secret();
        let given = secret.provisioning("Latchkey", "ada@example.com").unwrap();
        assert_eq!(*given.secret, "GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ");
        assert_eq!(
            *given.otpauth_uri,
            "otpauth://totp/Latchkey:ada%40example.com?secret=GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ\
             &issuer=Latchkey"
        );
        assert!(given.qr_svg.contains("<svg"), "{}", given.qr_svg);
        let odd = secret.provisioning("My App", "a:b@example.com").unwrap();
        assert!(
            odd.otpauth_uri
                .starts_with("otpauth://totp/My%20App:a%3Ab%40example.com?")
        );
        assert!(looks_like_code("123 456"));
        assert!(!looks_like_code("ABCDE-FGHJK"));
    }
}
