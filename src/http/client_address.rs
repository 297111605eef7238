//! Who the client is: the socket peer, or, when the peer is a trusted proxy, the address
//! that proxy put in `X-Forwarded-For`. Anyone can send that header, so it is believed only
//! from the proxies named in `LATCHKEY_TRUSTED_PROXIES`, and only back to the first hop that
//! is not one of them.

use std::net::IpAddr;

use ipnet::IpNet;

/// Walks `X-Forwarded-For` from the right (the hop nearest to us) past trusted proxies; the
/// first untrusted address is the client. An entry that is not an address stops the walk at
/// the last hop that could be checked.
pub fn client_address<'a>(
    peer: IpAddr,
    forwarded_for: impl Iterator<Item = &'a str>,
    trusted: &[IpNet],
) -> IpAddr {
    let is_trusted = |address: &IpAddr| trusted.iter().any(|net| net.contains(address));
    if !is_trusted(&peer) {
        return peer;
    }
    // Several headers read as one list, in order.
    let hops: Vec<&str> = forwarded_for.flat_map(|value| value.split(',')).collect();
    let mut client = peer;
    for hop in hops.iter().rev() {
        match hop.trim().parse::<IpAddr>() {
            Ok(address) => {
                client = address;
                if !is_trusted(&client) {
                    break;
                }
            }
            Err(_) => break,
        }
    }
    client
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(text: &str) -> IpAddr {
        text.parse().unwrap()
    }

    fn nets(list: &[&str]) -> Vec<IpNet> {
        list.iter().map(|n| n.parse().unwrap()).collect()
    }

    #[test]
    fn an_untrusted_peer_is_the_client_whatever_it_claims() {
        let headers = ["203.0.113.9"];
        let client = client_address(
            ip("198.51.100.1"),
            headers.into_iter(),
            &nets(&["10.0.0.0/8"]),
        );
        assert_eq!(client, ip("198.51.100.1"));
    }

    #[test]
    fn a_trusted_proxy_names_the_client() {
        let headers = ["203.0.113.9"];
        let client = client_address(ip("10.0.0.2"), headers.into_iter(), &nets(&["10.0.0.0/8"]));
        assert_eq!(client, ip("203.0.113.9"));
    }

    #[test]
    fn spoofed_entries_left_of_the_client_are_ignored() {
        // The client sent "1.2.3.4" itself; our proxy appended the address it saw.
        let headers = ["1.2.3.4, 203.0.113.9", "10.0.0.3"];
        let trusted = nets(&["10.0.0.0/8"]);
        let client = client_address(ip("10.0.0.2"), headers.into_iter(), &trusted);
        assert_eq!(client, ip("203.0.113.9"));
    }

    #[test]
    fn garbage_stops_at_the_last_checked_hop() {
        let headers = ["not-an-ip"];
        let client = client_address(ip("10.0.0.2"), headers.into_iter(), &nets(&["10.0.0.0/8"]));
        assert_eq!(client, ip("10.0.0.2"));
        let none: [&str; 0] = [];
        let client = client_address(ip("10.0.0.2"), none.into_iter(), &nets(&["10.0.0.0/8"]));
        assert_eq!(client, ip("10.0.0.2"));
    }
}
