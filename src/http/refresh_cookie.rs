//! The refresh token in a cookie, for browser clients (API.md, "Browser clients"): the
//! cookie itself, the `refresh_token_transport` choice, and the CSRF rules for a request
//! that carries the cookie.
//!
//! A browser attaches the cookie by itself, so a request carrying it proves nothing about
//! which page sent it. Two rules keep other sites from riding on it:
//!
//! - `Content-Type: application/json`. A cross-site `<form>` or a `no-cors` fetch can only
//!   send `application/x-www-form-urlencoded`, `multipart/form-data` or `text/plain` (or no
//!   body at all); anything else from another origin needs a CORS preflight, which only the
//!   origins in `LATCHKEY_CORS_ORIGINS` pass.
//! - When there is an `Origin` header (browsers send it on every POST), it must be the
//!   service's own origin or one of `LATCHKEY_CORS_ORIGINS`. `Origin: null` (sandboxed
//!   frames, `file:` pages, some redirects) is never either.
//!
//! "The service's own origin" is the origin whose host (and port) is the request's `Host`:
//! the one the browser addressed. Behind a proxy named in `LATCHKEY_TRUSTED_PROXIES`, the
//! host is that proxy's `X-Forwarded-Host` and the scheme must match its
//! `X-Forwarded-Proto`; from anyone else those headers are ignored, as `X-Forwarded-For`
//! is. Without a trusted proxy's word the scheme is not compared: Latchkey itself speaks
//! plain HTTP and cannot tell whether a TLS terminator sits in front of it, and a page on
//! `http://` of the same host is still another origin to the browser, held back by the
//! preflight like any other.

use std::net::IpAddr;

use actix_web::cookie::time::Duration;
use actix_web::cookie::{Cookie, SameSite};
use actix_web::http::header::{self, HeaderMap, HeaderName};
use actix_web::{HttpMessage as _, HttpRequest, mime};
use ipnet::IpNet;
use serde::de::Error as _;
use serde::{Deserialize, Deserializer};

use crate::error::Error;

/// `__Host-`: the browser accepts it only with `Secure`, `Path=/` and no `Domain`, so no
/// sibling subdomain can set or overwrite it (RFC 6265bis §4.1.3.2).
pub const COOKIE_NAME: &str = "__Host-latchkey_refresh";

/// Where the refresh token of a token response goes: `body`, its `refresh_token`; or
/// `cookie`, the `__Host-latchkey_refresh` cookie (`HttpOnly`, so no script can read it),
/// with `refresh_token` `null`.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, utoipa::ToSchema)]
#[schema(as = RefreshTokenTransport, rename_all = "lowercase")]
pub enum Transport {
    #[default]
    Body,
    Cookie,
}

/// By hand, so that a number or an array is "the field `refresh_token_transport` has the
/// wrong type or value" like any other bad value: serde_json reports a derived enum given
/// anything but a string as a JSON syntax error, which it is not.
impl<'de> Deserialize<'de> for Transport {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        match String::deserialize(deserializer)?.as_str() {
            "body" => Ok(Self::Body),
            "cookie" => Ok(Self::Cookie),
            _ => Err(D::Error::custom("expected `body` or `cookie`")),
        }
    }
}

/// The cookie holding `token`, kept by the browser for `max_age_seconds` (the rest of the
/// session's absolute lifetime).
pub fn holding(token: String, max_age_seconds: i64) -> Cookie<'static> {
    let mut cookie = base(token);
    cookie.set_max_age(Duration::seconds(max_age_seconds.max(0)));
    cookie
}

/// The same cookie, emptied and expired: the browser deletes it.
pub fn removal() -> Cookie<'static> {
    let mut cookie = base(String::new());
    cookie.set_max_age(Duration::ZERO);
    cookie
}

fn base(value: String) -> Cookie<'static> {
    Cookie::build(COOKIE_NAME, value)
        .path("/")
        .secure(true)
        .http_only(true)
        .same_site(SameSite::Strict)
        .finish()
}

/// The cookie's value, if the request carries a non-empty one. Read without percent-decoding:
/// a token of ours never holds a `%`.
pub fn presented(request: &HttpRequest) -> Option<String> {
    let cookies = request.cookies_raw().ok()?;
    cookies
        .iter()
        .find(|cookie| cookie.name() == COOKIE_NAME && !cookie.value().is_empty())
        .map(|cookie| cookie.value().to_owned())
}

/// What the CSRF check needs to know about the deployment.
pub struct Allowed<'a> {
    /// `LATCHKEY_CORS_ORIGINS`.
    pub origins: &'a [String],
    /// `LATCHKEY_TRUSTED_PROXIES`: whose `X-Forwarded-Host` and `-Proto` are believed.
    pub trusted_proxies: &'a [IpNet],
}

/// Refuses, with `403 csrf_rejected`, a request carrying the cookie that another site could
/// have made: see the module documentation.
pub fn check_csrf(request: &HttpRequest, allowed: &Allowed<'_>) -> Result<(), Error> {
    if !is_plain_json(request) {
        return Err(Error::CsrfRejected);
    }
    let mut origins = request.headers().get_all(header::ORIGIN);
    let Some(origin) = origins.next() else {
        return Ok(());
    };
    // A browser sends one Origin; two are not a browser's request, and not to be guessed at.
    if origins.next().is_some() {
        return Err(Error::CsrfRejected);
    }
    let origin = origin.to_str().map_err(|_| Error::CsrfRejected)?;
    let peer = request.peer_addr().map(|peer| peer.ip());
    let own = Own::of(request.headers(), peer, allowed.trusted_proxies);
    if is_allowed_origin(origin, &own, allowed.origins) {
        Ok(())
    } else {
        tracing::warn!(
            origin,
            "refresh with the cookie from a foreign origin refused"
        );
        Err(Error::CsrfRejected)
    }
}

/// `application/json`, with parameters or not. Not `application/*+json`, which the JSON
/// bodies otherwise accept: the contract names this one type, and nothing is lost by that.
fn is_plain_json(request: &HttpRequest) -> bool {
    matches!(request.mime_type(), Ok(Some(mime))
        if mime.type_() == mime::APPLICATION && mime.subtype() == mime::JSON && mime.suffix().is_none())
}

/// The service's own origin as this request addressed it.
#[derive(Debug)]
struct Own<'a> {
    /// `host[:port]`, as the `Host` header (or a trusted proxy's `X-Forwarded-Host`) says.
    authority: Option<&'a str>,
    /// Known only from a trusted proxy's `X-Forwarded-Proto`.
    scheme: Option<&'a str>,
}

impl<'a> Own<'a> {
    fn of(headers: &'a HeaderMap, peer: Option<IpAddr>, trusted: &[IpNet]) -> Self {
        let from_proxy = peer.is_some_and(|peer| trusted.iter().any(|net| net.contains(&peer)));
        let forwarded = |name: &'static str| {
            from_proxy
                .then(|| last_value(headers, HeaderName::from_static(name)))
                .flatten()
        };
        let host = || {
            headers
                .get(header::HOST)
                .and_then(|value| value.to_str().ok())
                .map(str::trim)
        };
        Self {
            authority: forwarded("x-forwarded-host").or_else(host),
            scheme: forwarded("x-forwarded-proto"),
        }
    }
}

/// The last entry of a possibly repeated, comma-separated header: the one our nearest
/// (trusted) proxy wrote; entries left of it may come from the client.
fn last_value(headers: &HeaderMap, name: HeaderName) -> Option<&str> {
    headers
        .get_all(name)
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(','))
        .map(str::trim)
        .rfind(|entry| !entry.is_empty())
}

fn is_allowed_origin(origin: &str, own: &Own<'_>, listed: &[String]) -> bool {
    // The configured origins are `scheme://host[:port]` (config.rs), as browsers serialise
    // an Origin, so equal strings are equal origins; hosts compare ignoring case.
    if listed
        .iter()
        .any(|allowed| allowed.eq_ignore_ascii_case(origin))
    {
        return true;
    }
    let Some((scheme, authority)) = origin.split_once("://") else {
        return false; // `null`, or not an origin at all
    };
    let scheme = scheme.to_ascii_lowercase();
    if !matches!(scheme.as_str(), "http" | "https") || authority.is_empty() {
        return false;
    }
    if own
        .scheme
        .is_some_and(|own_scheme| !own_scheme.eq_ignore_ascii_case(&scheme))
    {
        return false;
    }
    own.authority.is_some_and(|own_authority| {
        normalized(own_authority, &scheme) == normalized(authority, &scheme)
    })
}

/// `host[:port]` lowercased, without the scheme's default port (browsers leave it out of
/// an Origin; a client may write it into `Host`).
fn normalized(authority: &str, scheme: &str) -> String {
    let authority = authority.to_ascii_lowercase();
    let default_port = if scheme == "https" { ":443" } else { ":80" };
    match authority.strip_suffix(default_port) {
        Some(host) => host.to_owned(),
        None => authority,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn own<'a>(authority: Option<&'a str>, scheme: Option<&'a str>) -> Own<'a> {
        Own { authority, scheme }
    }

    #[test]
    fn the_own_origin_is_the_addressed_host_and_port() {
        let here = own(Some("auth.example.com"), None);
        assert!(is_allowed_origin("https://auth.example.com", &here, &[]));
        assert!(is_allowed_origin("https://AUTH.example.com", &here, &[]));
        assert!(!is_allowed_origin(
            "https://auth.example.com.evil.net",
            &here,
            &[]
        ));
        assert!(!is_allowed_origin("https://evil.net", &here, &[]));
        assert!(!is_allowed_origin(
            "https://auth.example.com:8443",
            &here,
            &[]
        ));
        let local = own(Some("localhost:8080"), None);
        assert!(is_allowed_origin("http://localhost:8080", &local, &[]));
        assert!(!is_allowed_origin("http://localhost:8081", &local, &[]));
        assert!(!is_allowed_origin("http://localhost", &local, &[]));
        // The default port may be written into Host.
        let explicit = own(Some("auth.example.com:443"), None);
        assert!(is_allowed_origin(
            "https://auth.example.com",
            &explicit,
            &[]
        ));
        assert!(!is_allowed_origin(
            "http://auth.example.com",
            &explicit,
            &[]
        ));
    }

    #[test]
    fn a_trusted_proxy_names_the_scheme() {
        let proxied = own(Some("auth.example.com"), Some("https"));
        assert!(is_allowed_origin("https://auth.example.com", &proxied, &[]));
        assert!(!is_allowed_origin("http://auth.example.com", &proxied, &[]));
    }

    #[test]
    fn null_and_other_non_origins_are_refused() {
        let here = own(Some("auth.example.com"), None);
        for origin in [
            "null",
            "",
            "auth.example.com",
            "file://auth.example.com",
            "chrome-extension://auth.example.com",
            "https://",
        ] {
            assert!(!is_allowed_origin(origin, &here, &[]), "{origin:?}");
        }
        assert!(!is_allowed_origin(
            "https://auth.example.com",
            &own(None, None),
            &[]
        ));
    }

    #[test]
    fn listed_origins_are_allowed() {
        let listed = ["https://app.example.com".to_owned()];
        let here = own(Some("auth.example.com"), None);
        assert!(is_allowed_origin("https://app.example.com", &here, &listed));
        assert!(!is_allowed_origin("http://app.example.com", &here, &listed));
        assert!(!is_allowed_origin("null", &here, &listed));
    }

    #[test]
    fn forwarded_headers_count_only_from_trusted_proxies() {
        let mut headers = HeaderMap::new();
        headers.insert(header::HOST, "10.0.0.5:8080".parse().unwrap());
        headers.append(
            HeaderName::from_static("x-forwarded-host"),
            "evil.net, auth.example.com".parse().unwrap(),
        );
        headers.insert(
            HeaderName::from_static("x-forwarded-proto"),
            "https".parse().unwrap(),
        );
        let trusted: Vec<IpNet> = vec!["10.0.0.0/8".parse().unwrap()];
        let proxied = Own::of(&headers, Some("10.0.0.2".parse().unwrap()), &trusted);
        assert_eq!(proxied.authority, Some("auth.example.com"));
        assert_eq!(proxied.scheme, Some("https"));
        let direct = Own::of(&headers, Some("203.0.113.9".parse().unwrap()), &trusted);
        assert_eq!(direct.authority, Some("10.0.0.5:8080"));
        assert_eq!(direct.scheme, None);
    }

    #[test]
    fn the_cookie_has_every_attribute() {
        let text = holding("abc".to_owned(), 60).to_string();
        for part in [
            "__Host-latchkey_refresh=abc",
            "Path=/",
            "Secure",
            "HttpOnly",
            "SameSite=Strict",
            "Max-Age=60",
        ] {
            assert!(text.contains(part), "{text}");
        }
        let removal = removal().to_string();
        assert!(
            removal.starts_with("__Host-latchkey_refresh=;"),
            "{removal}"
        );
        assert!(removal.contains("Max-Age=0"), "{removal}");
    }
}
