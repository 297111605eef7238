//! Parsed types that cannot hold bad values. Handlers turn request fields into these once;
//! every rule of `API.md` about what a field may contain lives here.

mod common_passwords;
mod email;
mod password;
mod username;

pub use common_passwords::warm_up as load_common_passwords;
pub use email::Email;
pub use password::NewPassword;
pub use username::Username;
