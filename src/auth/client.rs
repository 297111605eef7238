//! Who is on the other end of a request, as an account's sessions and events show it.

/// The client that opened a session or caused an event: shown in the session list and the
/// security events, never used to decide anything.
#[derive(Debug, Clone, Default)]
pub struct ClientInfo {
    pub user_agent: Option<String>,
    pub ip: Option<std::net::IpAddr>,
}
