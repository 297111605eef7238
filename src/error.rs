//! The one error type of the service. Each variant is a distinct answer a client can get;
//! `http::problem` maps it to a status, a stable `code` and an RFC 9457 body.

use diesel::result::{DatabaseErrorKind, Error as DieselError};

/// One failing field of a `422`. The message describes the rule, never the submitted value.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, utoipa::ToSchema)]
pub struct FieldError {
    pub field: &'static str,
    pub code: &'static str,
    pub message: &'static str,
}

impl FieldError {
    pub const fn new(field: &'static str, code: &'static str, message: &'static str) -> Self {
        Self {
            field,
            code,
            message,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The body is not JSON or has the wrong shape; the text names the place, not the value.
    #[error("malformed request: {0}")]
    MalformedRequest(String),
    #[error("unsupported media type")]
    UnsupportedMediaType,
    #[error("payload too large")]
    PayloadTooLarge,
    /// The client took too long to send its body.
    #[error("request timeout")]
    RequestTimeout,
    #[error("validation failed")]
    Validation(Vec<FieldError>),
    #[error("not found")]
    NotFound,
    #[error("method not allowed")]
    MethodNotAllowed { allow: &'static str },
    #[error("email taken")]
    EmailTaken,
    #[error("username taken")]
    UsernameTaken,
    #[error("invalid credentials")]
    InvalidCredentials,
    #[error("account disabled")]
    AccountDisabled,
    /// The right password for an account whose email is not verified, with
    /// `LATCHKEY_REQUIRE_VERIFIED_EMAIL` on.
    #[error("email not verified")]
    EmailNotVerified,
    /// The right password for an account with a second factor: the login goes on at
    /// `POST /login/mfa` with this token.
    #[error("second factor required")]
    MfaRequired { mfa_token: secrecy::SecretString },
    /// An `mfa_token` that is unknown, used, expired, or ended by too many wrong codes.
    #[error("invalid mfa token")]
    InvalidMfaToken,
    /// A TOTP code or recovery code that is wrong, or used already.
    #[error("invalid mfa code")]
    InvalidMfaCode,
    #[error("mfa already enabled")]
    MfaAlreadyEnabled,
    #[error("mfa not enabled")]
    MfaNotEnabled,
    /// A confirmation with no enrolment started.
    #[error("no mfa enrolment pending")]
    MfaNotPending,
    /// A passkey ceremony that is unknown, used, expired, or was started for something else.
    #[error("invalid ceremony")]
    InvalidCeremony,
    /// A credential the relying party refused at registration; says why.
    #[error("invalid passkey: {0}")]
    InvalidPasskey(String),
    #[error("passkey registered already")]
    PasskeyExists,
    #[error("too many passkeys")]
    TooManyPasskeys,
    /// Removing this passkey would leave the account no way in.
    #[error("last credential")]
    LastCredential,
    /// WebAuthn is not configured: the public URL names no domain.
    #[error("passkeys unavailable")]
    PasskeysUnavailable,
    /// A mailed code that is wrong, used, expired or out of tries (or an unknown email).
    #[error("invalid code")]
    InvalidCode,
    /// A new verification code for an address that is verified already.
    #[error("email already verified")]
    EmailAlreadyVerified,
    /// Too many failed logins for the account or the client address.
    #[error("too many attempts")]
    TooManyAttempts { retry_after: u64 },
    #[error("invalid refresh token")]
    InvalidRefreshToken,
    #[error("refresh token reused")]
    RefreshTokenReused,
    /// A request carrying the refresh cookie that another site could have sent.
    #[error("cross-site request refused")]
    CsrfRejected,
    #[error("missing bearer token")]
    MissingToken,
    #[error("invalid bearer token")]
    InvalidToken,
    /// The database cannot be reached or is overloaded: the client may retry.
    #[error("service unavailable")]
    Unavailable(#[source] anyhow::Error),
    /// Anything unexpected. Logged with its cause; the client learns nothing about it.
    #[error("internal error")]
    Internal(#[source] anyhow::Error),
}

impl Error {
    pub fn internal(error: impl Into<anyhow::Error>) -> Self {
        Self::Internal(error.into())
    }
}

impl From<DieselError> for Error {
    fn from(error: DieselError) -> Self {
        if is_unavailable(&error) {
            Self::Unavailable(error.into())
        } else {
            Self::Internal(error.into())
        }
    }
}

impl From<r2d2::Error> for Error {
    /// The pool gives up only when no connection could be had in time.
    fn from(error: r2d2::Error) -> Self {
        Self::Unavailable(error.into())
    }
}

/// Errors that say "the database is not there right now" rather than "this query is wrong".
fn is_unavailable(error: &DieselError) -> bool {
    match error {
        DieselError::DatabaseError(kind, info) => match kind {
            DatabaseErrorKind::ClosedConnection | DatabaseErrorKind::UnableToSendCommand => true,
            DatabaseErrorKind::Unknown => {
                let message = info.message();
                // SQLite under write contention past its busy timeout; PostgreSQL shutting down.
                message.contains("database is locked")
                    || message.contains("terminating connection")
                    || message.contains("the database system is")
            }
            _ => false,
        },
        // The connection died under a COMMIT, so the ROLLBACK after it failed too.
        DieselError::RollbackErrorOnCommit { commit_error, .. } => is_unavailable(commit_error),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn database_error(kind: DatabaseErrorKind, message: &str) -> DieselError {
        DieselError::DatabaseError(kind, Box::new(message.to_owned()))
    }

    #[test]
    fn a_connection_lost_mid_query_or_mid_commit_is_unavailable() {
        let lost = || {
            database_error(
                DatabaseErrorKind::ClosedConnection,
                "server closed the connection unexpectedly",
            )
        };
        let cases = [
            lost(),
            database_error(
                DatabaseErrorKind::UnableToSendCommand,
                "no connection to the server",
            ),
            DieselError::RollbackErrorOnCommit {
                rollback_error: Box::new(lost()),
                commit_error: Box::new(lost()),
            },
        ];
        for error in cases {
            assert!(matches!(Error::from(error), Error::Unavailable(_)));
        }
        let wrong = database_error(DatabaseErrorKind::Unknown, "syntax error");
        assert!(matches!(Error::from(wrong), Error::Internal(_)));
    }
}
