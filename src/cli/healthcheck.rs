//! `latchkey healthcheck`: asks a running server for `GET /healthz` and succeeds on a `200`.
//!
//! It is the container image's `HEALTHCHECK` (the runtime image has no curl), so it opens no
//! database, reads no setting but `LATCHKEY_BIND`, and speaks just enough HTTP/1.1 over a
//! `TcpStream` to read one status line: the binary carries no HTTP client for this.

use std::io::{self, ErrorKind, Read as _, Write as _};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, TcpStream, ToSocketAddrs as _};
use std::time::{Duration, Instant};

/// How long the whole check may take: resolving aside, connecting, asking and reading the
/// status line.
pub const TIMEOUT: Duration = Duration::from_secs(3);

/// Longer than any status line a server sends; a peer that sends more is not answering HTTP.
const MAX_STATUS_LINE: usize = 1024;

/// Where a server listening on `bind` answers `/healthz`: a wildcard address (`0.0.0.0`,
/// `::`) is reached over loopback.
pub fn url_for_bind(bind: SocketAddr) -> String {
    let ip = match bind.ip() {
        IpAddr::V4(ip) if ip.is_unspecified() => IpAddr::V4(Ipv4Addr::LOCALHOST),
        IpAddr::V6(ip) if ip.is_unspecified() => IpAddr::V6(Ipv6Addr::LOCALHOST),
        ip => ip,
    };
    format!("http://{}/healthz", SocketAddr::new(ip, bind.port()))
}

/// `Ok` when `url` (`http://HOST[:PORT][/PATH]`) answers `200` within `timeout`; otherwise
/// one line saying what happened instead.
pub fn check(url: &str, timeout: Duration) -> Result<(), String> {
    let target = Target::parse(url)?;
    let status_line = target
        .status_line(Instant::now() + timeout)
        .map_err(|error| match error.kind() {
            ErrorKind::WouldBlock | ErrorKind::TimedOut => {
                format!("{url}: no answer within {} s", timeout.as_secs_f32())
            }
            _ => format!("{url}: {error}"),
        })?;
    match status_code(&status_line) {
        Some(200) => Ok(()),
        Some(_) => Err(format!("{url} answered {status_line}")),
        None if status_line.is_empty() => Err(format!("{url} closed the connection unanswered")),
        None => Err(format!("{url} did not answer HTTP: {status_line:?}")),
    }
}

/// The parts of an `http://` URL that a GET needs.
#[derive(Debug, PartialEq, Eq)]
struct Target<'a> {
    /// `HOST[:PORT]` as written, for the `Host` header.
    authority: &'a str,
    host: &'a str,
    port: u16,
    path: String,
}

impl<'a> Target<'a> {
    fn parse(url: &'a str) -> Result<Self, String> {
        let invalid = || format!("{url:?} is not a URL like http://127.0.0.1:8080/healthz");
        let rest = url.strip_prefix("http://").ok_or_else(invalid)?;
        let (authority, path) = match rest.split_once('/') {
            Some((authority, path)) => (authority, format!("/{path}")),
            None => (rest, "/".to_owned()),
        };
        let (host, port) = match authority.strip_prefix('[') {
            // An IPv6 literal: [::1] or [::1]:8080.
            Some(bracketed) => match bracketed.split_once(']') {
                Some((host, "")) => (host, None),
                Some((host, port)) => (host, Some(port.strip_prefix(':').ok_or_else(invalid)?)),
                None => return Err(invalid()),
            },
            None => match authority.split_once(':') {
                Some((host, port)) => (host, Some(port)),
                None => (authority, None),
            },
        };
        let port = match port {
            Some(port) => port.parse().map_err(|_| invalid())?,
            None => 80,
        };
        if host.is_empty() || host.contains(['@', ' ']) {
            return Err(invalid());
        }
        Ok(Self {
            authority,
            host,
            port,
            path,
        })
    }

    /// Sends the GET and reads the first line of the answer, all before `deadline`.
    fn status_line(&self, deadline: Instant) -> io::Result<String> {
        let mut stream = self.connect(deadline)?;
        stream.set_write_timeout(Some(remaining(deadline)?))?;
        let request = format!(
            "GET {} HTTP/1.1\r\nHost: {}\r\nUser-Agent: latchkey-healthcheck\r\n\
             Connection: close\r\n\r\n",
            self.path, self.authority
        );
        stream.write_all(request.as_bytes())?;

        let mut answer = Vec::new();
        let mut chunk = [0; 256];
        while !answer.contains(&b'\n') && answer.len() <= MAX_STATUS_LINE {
            // Renewed before every read, so that a server trickling bytes still cannot hold
            // the check past its deadline.
            stream.set_read_timeout(Some(remaining(deadline)?))?;
            match stream.read(&mut chunk)? {
                0 => break,
                read => answer.extend_from_slice(&chunk[..read]),
            }
        }
        let line = answer.split(|&byte| byte == b'\n').next().unwrap_or(&[]);
        Ok(String::from_utf8_lossy(line).trim_end().to_owned())
    }

    fn connect(&self, deadline: Instant) -> io::Result<TcpStream> {
        let mut last_error = None;
        for address in (self.host, self.port).to_socket_addrs()? {
            match TcpStream::connect_timeout(&address, remaining(deadline)?) {
                Ok(stream) => return Ok(stream),
                Err(error) => last_error = Some(error),
            }
        }
        Err(last_error.unwrap_or_else(|| {
            io::Error::new(ErrorKind::NotFound, format!("{} has no address", self.host))
        }))
    }
}

/// The time left before `deadline`; none left is a timeout (and a zero timeout would be
/// refused by the socket calls anyway).
fn remaining(deadline: Instant) -> io::Result<Duration> {
    deadline
        .checked_duration_since(Instant::now())
        .filter(|left| !left.is_zero())
        .ok_or_else(|| ErrorKind::TimedOut.into())
}

/// The code of an HTTP/1.x status line such as `HTTP/1.1 200 OK`.
fn status_code(line: &str) -> Option<u16> {
    let mut parts = line.splitn(3, ' ');
    let version = parts.next()?;
    let code = parts.next()?;
    if version.starts_with("HTTP/1.") && code.len() == 3 {
        code.parse().ok()
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_wildcard_bind_is_checked_over_loopback() {
        let url = |bind: &str| url_for_bind(bind.parse().unwrap());
        assert_eq!(url("0.0.0.0:8080"), "http://127.0.0.1:8080/healthz");
        assert_eq!(url("[::]:8080"), "http://[::1]:8080/healthz");
        assert_eq!(url("10.1.2.3:9000"), "http://10.1.2.3:9000/healthz");
        assert_eq!(url("[fd00::7]:80"), "http://[fd00::7]:80/healthz");
    }

    #[test]
    fn urls_name_host_port_and_path() {
        let target = |url| Target::parse(url).unwrap();
        let t = target("http://127.0.0.1:8080/healthz");
        assert_eq!(
            (t.authority, t.host, t.port),
            ("127.0.0.1:8080", "127.0.0.1", 8080)
        );
        assert_eq!(t.path, "/healthz");
        let t = target("http://[::1]:9000/a/b?c=d");
        assert_eq!((t.host, t.port, t.path.as_str()), ("::1", 9000, "/a/b?c=d"));
        let t = target("http://localhost");
        assert_eq!((t.host, t.port, t.path.as_str()), ("localhost", 80, "/"));
        assert_eq!(target("http://[::1]/").port, 80);
        for bad in [
            "https://127.0.0.1/healthz",
            "127.0.0.1:8080",
            "http://",
            "http://:8080/",
            "http://host:port/",
            "http://host:99999/",
            "http://[::1/",
            "http://[::1]x/",
            "http://user@host/",
        ] {
            assert!(Target::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn only_an_http_status_line_has_a_code() {
        assert_eq!(status_code("HTTP/1.1 200 OK"), Some(200));
        assert_eq!(status_code("HTTP/1.0 503 Service Unavailable"), Some(503));
        assert_eq!(status_code("HTTP/1.1 204"), Some(204));
        for bad in [
            "",
            "SSH-2.0-OpenSSH_9.2",
            "HTTP/1.1 2000 OK",
            "HTTP/1.1 OK",
            "200",
        ] {
            assert_eq!(status_code(bad), None, "{bad:?}");
        }
    }
}
