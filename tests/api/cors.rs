//! Cross-origin access (`LATCHKEY_CORS_ORIGINS`), tested with real preflight requests.

use reqwest::{Method, Response, StatusCode};

use crate::support::{Backend, TestApp, assert_problem};

const APP_ORIGIN: &str = "https://app.example.com";
const OTHER_ORIGIN: &str = "https://evil.example.net";

backend_tests!(
    no_origin_gets_cross_origin_access_by_default,
    listed_origins_get_preflights_answered,
    other_origins_get_nothing,
    cors_headers_answer_only_listed_origins,
);

async fn preflight(app: &TestApp, path: &str, origin: &str, method: &str) -> Response {
    app.client
        .request(Method::OPTIONS, app.url(path))
        .header("Origin", origin)
        .header("Access-Control-Request-Method", method)
        .header(
            "Access-Control-Request-Headers",
            "authorization, content-type",
        )
        .send()
        .await
        .unwrap()
}

fn allow_origin(response: &Response) -> Option<&str> {
    response
        .headers()
        .get("access-control-allow-origin")
        .map(|value| value.to_str().unwrap())
}

async fn no_origin_gets_cross_origin_access_by_default(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let response = preflight(&app, "/login", APP_ORIGIN, "POST").await;
    assert_eq!(allow_origin(&response), None);
    assert!(!response.status().is_server_error());
}

async fn listed_origins_get_preflights_answered(backend: Backend) {
    let origins = format!("{APP_ORIGIN}, http://localhost:5173");
    let app = TestApp::spawn_with(backend, &[("LATCHKEY_CORS_ORIGINS", &origins)]).await;

    for (path, method) in [
        ("/login", "POST"),
        ("/me", "GET"),
        ("/sessions/x", "DELETE"),
    ] {
        let response = preflight(&app, path, APP_ORIGIN, method).await;
        assert_eq!(response.status(), StatusCode::OK, "{method} {path}");
        assert_eq!(allow_origin(&response), Some(APP_ORIGIN));
        let headers = response.headers();
        let methods = headers["access-control-allow-methods"].to_str().unwrap();
        assert!(methods.contains(method), "{methods}");
        let allowed = headers["access-control-allow-headers"]
            .to_str()
            .unwrap()
            .to_lowercase();
        assert!(allowed.contains("authorization") && allowed.contains("content-type"));
        assert_eq!(headers["access-control-allow-credentials"], "true");
        assert!(headers.contains_key("access-control-max-age"));
    }
    let second = preflight(&app, "/login", "http://localhost:5173", "POST").await;
    assert_eq!(allow_origin(&second), Some("http://localhost:5173"));

    // The actual request carries the header too, and exposes the auth challenge.
    let response = app
        .client
        .get(app.url("/me"))
        .header("Origin", APP_ORIGIN)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(allow_origin(&response), Some(APP_ORIGIN));
    let exposed = response.headers()["access-control-expose-headers"]
        .to_str()
        .unwrap();
    assert!(
        exposed.to_lowercase().contains("www-authenticate"),
        "{exposed}"
    );
}

async fn other_origins_get_nothing(backend: Backend) {
    let app = TestApp::spawn_with(backend, &[("LATCHKEY_CORS_ORIGINS", APP_ORIGIN)]).await;

    let response = preflight(&app, "/login", OTHER_ORIGIN, "POST").await;
    assert_eq!(allow_origin(&response), None);
    assert!(
        !response
            .headers()
            .contains_key("access-control-allow-credentials")
    );
    assert_problem(response, StatusCode::BAD_REQUEST, "cors_rejected").await;

    // A lookalike origin is not the listed one.
    let lookalike = preflight(&app, "/login", "https://app.example.com.evil.net", "POST").await;
    assert_eq!(allow_origin(&lookalike), None);

    // Served, but without CORS headers the browser keeps the answer from the page.
    let response = app
        .client
        .get(app.url("/healthz"))
        .header("Origin", OTHER_ORIGIN)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(allow_origin(&response), None);
}

/// The attack: every response carried `Access-Control-Allow-Credentials: true` and the
/// exposed headers, whatever its origin, telling any site how the service is configured.
/// They now answer only a listed origin.
async fn cors_headers_answer_only_listed_origins(backend: Backend) {
    let app = TestApp::spawn_with(backend, &[("LATCHKEY_CORS_ORIGINS", APP_ORIGIN)]).await;
    let cors_headers = |response: &Response| -> Vec<String> {
        response
            .headers()
            .keys()
            .map(|name| name.as_str().to_owned())
            .filter(|name| name.starts_with("access-control-"))
            .collect()
    };
    for origin in [None, Some(OTHER_ORIGIN)] {
        for path in ["/healthz", "/me", "/nowhere"] {
            let mut request = app.client.get(app.url(path));
            if let Some(origin) = origin {
                request = request.header("Origin", origin);
            }
            let response = request.send().await.unwrap();
            assert_eq!(
                cors_headers(&response),
                Vec::<String>::new(),
                "{path} from {origin:?}"
            );
        }
    }
    let response = app
        .client
        .get(app.url("/healthz"))
        .header("Origin", APP_ORIGIN)
        .send()
        .await
        .unwrap();
    assert_eq!(allow_origin(&response), Some(APP_ORIGIN));
    let headers = response.headers();
    assert_eq!(headers["access-control-allow-credentials"], "true");
    let exposed = headers["access-control-expose-headers"].to_str().unwrap();
    assert!(exposed.contains("retry-after"), "{exposed}");
}
