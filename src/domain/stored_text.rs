//! Values kept in the database as text: identifiers, and the fixed vocabularies of events and
//! revocation reasons. Each maps to `TEXT` on both backends through diesel, so that a row
//! carries the type, not a string that could be swapped with another.

/// Stores a type with an `as_str` as `TEXT` on both backends; `$read` makes the value of a
/// text read back.
macro_rules! stored_as_text {
    ($name:ident, |$text:ident| $read:expr) => {
        impl<DB> diesel::serialize::ToSql<diesel::sql_types::Text, DB> for $name
        where
            DB: diesel::backend::Backend,
            str: diesel::serialize::ToSql<diesel::sql_types::Text, DB>,
        {
            fn to_sql<'b>(
                &'b self,
                out: &mut diesel::serialize::Output<'b, '_, DB>,
            ) -> diesel::serialize::Result {
                self.as_str().to_sql(out)
            }
        }

        impl<DB> diesel::deserialize::FromSql<diesel::sql_types::Text, DB> for $name
        where
            DB: diesel::backend::Backend,
            String: diesel::deserialize::FromSql<diesel::sql_types::Text, DB>,
        {
            fn from_sql(bytes: DB::RawValue<'_>) -> diesel::deserialize::Result<Self> {
                let $text = String::from_sql(bytes)?;
                $read
            }
        }
    };
}

/// An identifier: a UUIDv7 in canonical text, so that ids sort in creation order. Its own
/// type, so that a user id cannot be passed where a session id is meant.
macro_rules! text_id {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(
            Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord,
            diesel::expression::AsExpression, diesel::deserialize::FromSqlRow,
        )]
        #[diesel(sql_type = diesel::sql_types::Text)]
        pub struct $name(String);

        impl $name {
            /// A new, unique id.
            pub fn generate() -> Self {
                Self(uuid::Uuid::now_v7().to_string())
            }

            pub fn as_str(&self) -> &str {
                &self.0
            }

            /// An id as a client writes it (a path segment): any spelling of a UUID, read
            /// canonically; anything else names nothing.
            pub fn parse(text: &str) -> Option<Self> {
                uuid::Uuid::try_parse(text)
                    .ok()
                    .map(|id| Self(id.to_string()))
            }
        }

        /// An id as a token's claim or a stored row gives it.
        impl From<String> for $name {
            fn from(id: String) -> Self {
                Self(id)
            }
        }

        impl From<$name> for String {
            fn from(id: $name) -> Self {
                id.0
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(&self.0)
            }
        }

        stored_as_text!($name, |text| Ok(Self(text)));
    };
}

/// Declares a fieldless enum with the text of each variant beside it, written once; and
/// `as_str`, `parse`, `ALL`, `Display`, and its storage as text on both backends. A text read
/// back that names no variant is an error.
macro_rules! text_enum {
    (
        $(#[$meta:meta])*
        pub enum $name:ident {
            $($(#[$variant_meta:meta])* $variant:ident => $text:literal,)*
        }
    ) => {
        $(#[$meta])*
        #[derive(
            Debug, Clone, Copy, PartialEq, Eq,
            diesel::expression::AsExpression, diesel::deserialize::FromSqlRow,
        )]
        #[diesel(sql_type = diesel::sql_types::Text)]
        pub enum $name {
            $($(#[$variant_meta])* $variant,)*
        }

        impl $name {
            /// Every variant, in declaration order.
            pub const ALL: &[Self] = &[$(Self::$variant),*];

            pub fn as_str(self) -> &'static str {
                match self {
                    $(Self::$variant => $text,)*
                }
            }

            pub fn parse(text: &str) -> Option<Self> {
                match text {
                    $($text => Some(Self::$variant),)*
                    _ => None,
                }
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.as_str())
            }
        }

        stored_as_text!($name, |text| {
            Self::parse(&text).ok_or_else(|| format!("{text:?} is no {}", stringify!($name)).into())
        });
    };
}

text_id!(
    /// The id of an account.
    UserId
);

text_id!(
    /// The id of a session; an access token's `sid`.
    SessionId
);

text_id!(
    /// The id of a passkey (not its WebAuthn credential id).
    PasskeyId
);

text_enum! {
    /// What happened to an account. The `type` of an event in `GET /me/events`.
    pub enum EventKind {
        /// The account was created; `session_id` is its first session.
        Signup => "signup",
        /// A successful login; `session_id` is the new session.
        Login => "login",
        /// A wrong password for this account.
        LoginFailed => "login_failed",
        /// A login refused by throttling (at most one such event per login window).
        LockedOut => "locked_out",
        /// A retired refresh token came back: `session_id` is the session revoked for it.
        RefreshReused => "refresh_reused",
        /// The session `session_id` logged out (scope `local` or `global`).
        Logout => "logout",
        /// The session `session_id` was ended by another session of the user (logout with
        /// scope `others` or `global`, `DELETE /sessions/{id}`, a password change) or by an
        /// operator.
        SessionRevoked => "session_revoked",
        /// The password was changed from the session `session_id`.
        PasswordChanged => "password_changed",
        /// A password reset was asked for (`POST /password/forgot`): recorded when its mail
        /// is prepared.
        PasswordResetRequested => "password_reset_requested",
        /// The password was replaced with a mailed code; every session ended.
        PasswordReset => "password_reset",
        /// The account proved it holds its email address.
        EmailVerified => "email_verified",
        /// A change of email was asked for from the session `session_id`.
        EmailChangeRequested => "email_change_requested",
        /// The new address was proven, and replaced the old one.
        EmailChanged => "email_changed",
        /// A wrong one-time code was tried for this account's address (a password reset or
        /// an email verification).
        CodeFailed => "code_failed",
        /// A TOTP factor was confirmed, and logins ask for its codes from now on.
        MfaEnabled => "mfa_enabled",
        /// The TOTP factor was removed (its recovery codes with it).
        MfaDisabled => "mfa_disabled",
        /// A wrong TOTP or recovery code for this account (at login, confirming or
        /// disabling the factor).
        MfaFailed => "mfa_failed",
        /// A recovery code was used up (at login, or to disable the factor).
        RecoveryCodeUsed => "recovery_code_used",
        /// A passkey was registered from the session `session_id`.
        PasskeyAdded => "passkey_added",
        /// A passkey was removed from the session `session_id`.
        PasskeyRemoved => "passkey_removed",
        /// A login with a passkey; `session_id` is the new session.
        PasskeyLogin => "passkey_login",
        /// A passkey of this account was refused at login (a wrong signature or origin, no
        /// user verification).
        PasskeyFailed => "passkey_failed",
    }
}

impl serde::Serialize for EventKind {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.as_str())
    }
}

/// The names of [`EventKind::ALL`], as the API publishes them.
impl utoipa::PartialSchema for EventKind {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        utoipa::openapi::schema::ObjectBuilder::new()
            .schema_type(utoipa::openapi::schema::Type::String)
            .description(Some(
                "What happened. The `type` of an event in `GET /me/events`.",
            ))
            .enum_values(Some(Self::ALL.iter().map(|kind| kind.as_str())))
            .into()
    }
}

impl utoipa::ToSchema for EventKind {
    fn name() -> std::borrow::Cow<'static, str> {
        "SecurityEventType".into()
    }
}

text_enum! {
    /// Why a session was revoked, as recorded in `sessions.revoked_reason`.
    pub enum RevokeReason {
        Logout => "logout",
        LogoutOthers => "logout_others",
        LogoutGlobal => "logout_global",
        EndedByUser => "ended_by_user",
        PasswordChanged => "password_changed",
        /// The password was reset with a mailed code.
        PasswordReset => "password_reset",
        RefreshTokenReused => "refresh_token_reused",
        AccountDisabled => "account_disabled",
        RevokedByOperator => "revoked_by_operator",
        /// The account opened more than `LATCHKEY_MAX_SESSIONS` sessions: the oldest ended.
        SessionLimit => "session_limit",
    }
}

text_enum! {
    /// How a session's login proved who it was (`sessions.amr`): the RFC 8176 methods an
    /// access token's `amr` claim lists, space-separated.
    pub enum AuthMethods {
        /// A password.
        Password => "pwd",
        /// A password and a one-time password (a TOTP code or a recovery code).
        PasswordAndOtp => "pwd otp",
        /// A passkey: a key held by an authenticator, which verified the user (RFC 8176
        /// "hwk", proof of possession of a hardware-secured key).
        Passkey => "hwk",
    }
}

impl AuthMethods {
    /// The `amr` claim.
    pub fn amr(self) -> Vec<&'static str> {
        self.as_str().split(' ').collect()
    }
}

text_enum! {
    /// What a mailed one-time code is for (`one_time_codes.purpose`).
    pub enum CodePurpose {
        /// Choosing a new password (`POST /password/reset`).
        PasswordReset => "password_reset",
        /// Proving the account's address (`POST /email/verify`).
        EmailVerification => "email_verification",
        /// Proving a new address before it replaces the account's (`POST /email/verify`).
        EmailChange => "email_change",
    }
}

text_enum! {
    /// What a passkey ceremony is for (`webauthn_ceremonies.purpose`): it is finished only
    /// as that.
    pub enum CeremonyPurpose {
        /// Adding a passkey to the account (`POST /me/passkeys/register/*`).
        Register => "register",
        /// Logging in with a passkey (`POST /login/passkey/*`).
        Login => "login",
        /// Signing up with a passkey (`POST /signup/passkey/*`).
        Signup => "signup",
    }
}

text_enum! {
    /// What a message in the outbox is (`outbox.kind`).
    pub enum MailKind {
        /// A password reset code, for whoever holds the address: the outbox finds the account
        /// (if any) and issues the code when it prepares the message.
        PasswordReset => "password_reset",
        /// Notice that the password was reset.
        PasswordChanged => "password_changed",
        /// A code that verifies the account's address.
        EmailVerification => "email_verification",
        /// A code that verifies a new address, sent to it.
        EmailChange => "email_change",
        /// Notice, to the old address, that a change to the new one was asked for.
        EmailChangeRequested => "email_change_requested",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_text_reads_back_as_its_variant() {
        for kind in EventKind::ALL {
            assert_eq!(EventKind::parse(kind.as_str()), Some(*kind));
        }
        for reason in RevokeReason::ALL {
            assert_eq!(RevokeReason::parse(reason.as_str()), Some(*reason));
        }
        for purpose in CodePurpose::ALL {
            assert_eq!(CodePurpose::parse(purpose.as_str()), Some(*purpose));
        }
        for kind in MailKind::ALL {
            assert_eq!(MailKind::parse(kind.as_str()), Some(*kind));
        }
        for methods in AuthMethods::ALL {
            assert_eq!(AuthMethods::parse(methods.as_str()), Some(*methods));
        }
        assert_eq!(AuthMethods::PasswordAndOtp.amr(), ["pwd", "otp"]);
        assert_eq!(EventKind::parse("Login"), None);
        assert_eq!(
            serde_json::to_string(&EventKind::SessionRevoked).unwrap(),
            r#""session_revoked""#
        );
    }

    #[test]
    fn session_ids_are_read_canonically() {
        let id = "0193A0B4-7C2D-7000-8000-000000000001";
        assert_eq!(
            SessionId::parse(id).map(String::from),
            Some(id.to_lowercase())
        );
        assert_eq!(SessionId::parse("not-a-uuid"), None);
        assert_eq!(SessionId::parse(""), None);
    }
}
