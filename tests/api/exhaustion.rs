//! Slow clients cannot hold connections: a request head or body that does not arrive within
//! `LATCHKEY_CLIENT_TIMEOUT` ends the request.

use std::io::{Read as _, Write as _};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use crate::support::{Backend, TestApp};

backend_tests!(a_slow_request_head_is_cut_off, a_slow_body_gets_a_408);

fn connect(app: &TestApp) -> TcpStream {
    let address = app.address.trim_start_matches("http://");
    let stream = TcpStream::connect(address).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(15)))
        .unwrap();
    stream
}

/// Reads until the server closes the connection; returns what it said and how long it took.
fn read_until_closed(mut stream: TcpStream) -> (String, Duration) {
    let started = Instant::now();
    let mut answer = Vec::new();
    let _ = stream.read_to_end(&mut answer);
    (
        String::from_utf8_lossy(&answer).into_owned(),
        started.elapsed(),
    )
}

async fn a_slow_request_head_is_cut_off(backend: Backend) {
    let app = TestApp::spawn_with(backend, &[("LATCHKEY_CLIENT_TIMEOUT", "1")]).await;
    let mut stream = connect(&app);
    stream
        .write_all(b"POST /login HTTP/1.1\r\nHost: localhost\r\n")
        .unwrap();

    let (answer, waited) = actix_web::rt::task::spawn_blocking(move || read_until_closed(stream))
        .await
        .unwrap();

    assert!(waited < Duration::from_secs(5), "held for {waited:?}");
    assert!(
        answer.is_empty() || answer.starts_with("HTTP/1.1 408"),
        "{answer}"
    );
}

async fn a_slow_body_gets_a_408(backend: Backend) {
    let app = TestApp::spawn_with(backend, &[("LATCHKEY_CLIENT_TIMEOUT", "1")]).await;
    let mut stream = connect(&app);
    stream
        .write_all(
            b"POST /login HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\n\
              Content-Length: 100\r\n\r\n{\"email\": ",
        )
        .unwrap();

    let (answer, waited) = actix_web::rt::task::spawn_blocking(move || read_until_closed(stream))
        .await
        .unwrap();

    assert!(waited < Duration::from_secs(5), "held for {waited:?}");
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
    assert!(answer.contains("application/problem+json") && answer.contains("request_timeout"));
}

backend_tests!(oversized_headers_are_refused_without_a_server_error);

/// A header block far beyond what any client needs is refused before any handler runs.
async fn oversized_headers_are_refused_without_a_server_error(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    for (name, size) in [("X-Padding", 100 * 1024), ("Authorization", 64 * 1024)] {
        let value = if name == "Authorization" {
            format!("Bearer {}", "a".repeat(size))
        } else {
            "a".repeat(size)
        };
        let outcome = app
            .client
            .get(app.url("/me"))
            .header(name, value)
            .send()
            .await;
        // The server may answer 431/400, or close the connection: never a 5xx.
        if let Ok(response) = outcome {
            let status = response.status().as_u16();
            assert!((400..500).contains(&status), "{name}: {status}");
        }
    }
    // Many headers at once.
    let mut request = app.client.get(app.url("/healthz"));
    for i in 0..500 {
        request = request.header(format!("X-Header-{i}"), "value");
    }
    if let Ok(response) = request.send().await {
        assert!(
            !response.status().is_server_error(),
            "{}",
            response.status()
        );
    }
    // The server is still up. A new client: the shared one may hold a connection that the
    // server closed after refusing the head, and reusing it would fail (a reset), not the server.
    let health = reqwest::Client::new()
        .get(app.url("/healthz"))
        .send()
        .await
        .unwrap();
    assert_eq!(health.status().as_u16(), 200);
}
