//! The contract as an artefact: `openapi.yaml` is exactly what the code generates, the
//! binary prints it without a database, the server serves it and an offline `/docs`, and
//! every documented operation exists and answers with a documented status.

use std::process::Command;

use reqwest::{Method, StatusCode};

use crate::support::{Backend, TestApp};

const REGENERATE: &str = "openapi.yaml is stale: run `cargo run -- openapi > openapi.yaml`";

#[test]
fn the_committed_document_is_the_generated_one() {
    let committed = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/openapi.yaml"))
        .expect("openapi.yaml at the repository root");
    assert!(committed == latchkey::http::openapi::yaml(), "{REGENERATE}");
}

#[test]
fn the_binary_prints_it_without_touching_a_database() {
    let output = Command::new(env!("CARGO_BIN_EXE_latchkey"))
        .arg("openapi")
        .env("DATABASE_URL", "postgres://nobody@127.0.0.1:1/none")
        .env("LATCHKEY_ACCESS_TTL", "not a duration")
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert_eq!(
        String::from_utf8(output.stdout).unwrap(),
        latchkey::http::openapi::yaml()
    );
}

#[test]
fn it_is_openapi_3_1_with_the_bearer_scheme() {
    let yaml = latchkey::http::openapi::yaml();
    assert!(yaml.starts_with("openapi: 3.1.0\n"));
    let document = latchkey::http::openapi::document();
    let components = document.components.unwrap();
    assert!(components.security_schemes.contains_key("bearer"));
    for schema in ["Problem", "FieldError", "TokenResponse", "User", "Session"] {
        assert!(components.schemas.contains_key(schema), "{schema}");
    }
}

#[test]
fn every_path_of_the_contract_is_documented() {
    let document = latchkey::http::openapi::document();
    let documented: Vec<String> = document
        .paths
        .paths
        .iter()
        .flat_map(|(path, item)| {
            [
                ("GET", &item.get),
                ("POST", &item.post),
                ("DELETE", &item.delete),
            ]
            .into_iter()
            .filter(|(_, operation)| operation.is_some())
            .map(move |(method, _)| format!("{method} {path}"))
        })
        .collect();
    for expected in [
        "POST /signup",
        "POST /login",
        "POST /refresh",
        "POST /logout",
        "GET /me",
        "POST /me/password",
        "DELETE /me",
        "GET /me/events",
        "GET /sessions",
        "DELETE /sessions/{id}",
        "GET /.well-known/jwks.json",
        "GET /healthz",
        "GET /readyz",
        "GET /openapi.yaml",
        "GET /docs",
        "GET /",
    ] {
        assert!(
            documented.contains(&expected.to_owned()),
            "{expected} is missing"
        );
    }
    // Not part of the public API: it answers on the metrics listener only.
    assert!(
        !documented
            .iter()
            .any(|operation| operation.ends_with(" /metrics")),
        "{documented:?}"
    );
}

backend_tests!(
    serves_the_document_and_offline_docs,
    documented_operations_answer_with_documented_statuses,
);

async fn serves_the_document_and_offline_docs(backend: Backend) {
    let app = TestApp::spawn(backend).await;

    let response = app
        .client
        .get(app.url("/openapi.yaml"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(response.headers()["content-type"], "application/yaml");
    assert_eq!(
        response.text().await.unwrap(),
        latchkey::http::openapi::yaml()
    );

    let redirect = app.client.get(app.url("/docs")).send().await.unwrap();
    assert!(redirect.status().is_redirection());
    assert_eq!(redirect.headers()["location"], "/docs/");

    let page = app.client.get(app.url("/docs/")).send().await.unwrap();
    assert_eq!(page.status(), StatusCode::OK);
    assert_docs_headers(&page);
    let html = page.text().await.unwrap();
    let assets: Vec<&str> = html
        .split(['"', '\''])
        .filter(|part| part.ends_with(".js") || part.ends_with(".css"))
        .collect();
    assert!(assets.len() >= 3, "{html}");
    for asset in assets {
        assert!(!asset.contains("//"), "{asset} is not served by the binary");
        let url = app.url(&format!("/docs/{}", asset.trim_start_matches("./")));
        let response = app.client.get(&url).send().await.unwrap();
        assert_eq!(response.status(), StatusCode::OK, "{url}");
        assert_docs_headers(&response);
        if asset.ends_with("initializer.js") {
            let script = response.text().await.unwrap();
            assert!(script.contains("/openapi.yaml"), "{script}");
            assert!(!script.contains("https://"), "{script}");
        }
    }
}

/// The attack: `/docs` shares the refresh cookie's origin but had none of the page's
/// protections, so it could be framed (clickjacking) and its assets sniffed. Every response
/// under `/docs` now carries them.
fn assert_docs_headers(response: &reqwest::Response) {
    let headers = response.headers();
    let url = response.url();
    assert_eq!(
        headers["content-security-policy"],
        latchkey::http::openapi::DOCS_CONTENT_SECURITY_POLICY,
        "{url}"
    );
    let policy = headers["content-security-policy"].to_str().unwrap();
    assert!(policy.contains("frame-ancestors 'none'"), "{url}");
    assert!(!policy.contains("unsafe-eval"), "{url}");
    assert_eq!(headers["x-frame-options"], "DENY", "{url}");
    assert_eq!(headers["x-content-type-options"], "nosniff", "{url}");
}

/// A request with neither body nor token reaches every documented operation and gets one of
/// its documented statuses: the routes exist where the document says they do.
async fn documented_operations_answer_with_documented_statuses(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let document = latchkey::http::openapi::document();
    for (path, item) in &document.paths.paths {
        let operations = [
            (Method::GET, &item.get),
            (Method::POST, &item.post),
            (Method::DELETE, &item.delete),
        ];
        for (method, operation) in operations {
            let Some(operation) = operation else { continue };
            let concrete = path.replace("{id}", &uuid::Uuid::now_v7().to_string());
            let response = app.send(method.clone(), &concrete, None, None).await;
            let status = response.status().as_u16().to_string();
            assert!(
                operation.responses.responses.contains_key(&status),
                "{method} {path} answered {status}, which is not documented"
            );
        }
    }
}
