//! Parsed types that cannot hold bad values. Handlers turn request fields into these once;
//! every rule of `API.md` about what a field may contain lives here. And the identifiers and
//! vocabularies that the rules and the tables share, as types rather than strings.

mod common_passwords;
mod email;
mod password;
mod stored_text;
mod username;

pub use common_passwords::warm_up as load_common_passwords;
pub use email::Email;
pub use password::NewPassword;
pub use stored_text::{
    AuthMethods, CeremonyPurpose, CodePurpose, EventKind, MailKind, PasskeyId, RevokeReason,
    SessionId, UserId,
};
pub use username::Username;
