//! `GET /` (API.md): the page and its assets come from the binary, with their content types,
//! caching and security headers; they load nothing from elsewhere and hold no inline code
//! (which the Content-Security-Policy would refuse anyway), and the script keeps tokens out
//! of web storage. What the page does in a browser is `.ci/e2e.sh`'s part.
//!
//! The page needs no database, so these run on SQLite only.

use reqwest::header::{
    ALLOW, CACHE_CONTROL, CONTENT_SECURITY_POLICY, CONTENT_TYPE, ETAG, IF_NONE_MATCH,
    REFERRER_POLICY, X_CONTENT_TYPE_OPTIONS,
};
use reqwest::{Method, Response, StatusCode};

use crate::support::{Backend, TestApp, assert_problem};

const DIRECTIVES: &[&str] = &[
    "default-src 'none'",
    "script-src 'self'",
    "style-src 'self'",
    "connect-src 'self'",
    // blob: for the QR code of a new authenticator key (src/http/page.rs).
    "img-src 'self' blob:",
    "base-uri 'none'",
    "form-action 'none'",
    "frame-ancestors 'none'",
];

/// The page's asset URLs, as its HTML links them.
fn asset_links(html: &str) -> Vec<String> {
    html.split('"')
        .filter(|part| part.starts_with("/assets/"))
        .map(str::to_owned)
        .collect()
}

fn header(response: &Response, name: impl reqwest::header::AsHeaderName) -> &str {
    response
        .headers()
        .get(name)
        .and_then(|value| value.to_str().ok())
        .unwrap_or_default()
}

/// The headers every file of the page carries.
fn assert_secured(response: &Response, what: &str) {
    let policy = header(response, CONTENT_SECURITY_POLICY);
    for directive in DIRECTIVES {
        assert!(
            policy.split(';').any(|part| part.trim() == *directive),
            "{what}: `{directive}` missing from {policy}"
        );
    }
    assert!(!policy.contains("unsafe"), "{what}: {policy}");
    assert!(!policy.contains("http"), "{what}: {policy}");
    assert_eq!(
        header(response, X_CONTENT_TYPE_OPTIONS),
        "nosniff",
        "{what}"
    );
    assert_eq!(header(response, REFERRER_POLICY), "no-referrer", "{what}");
    assert!(!header(response, ETAG).is_empty(), "{what}");
}

async fn get(app: &TestApp, path: &str) -> Response {
    app.client.get(app.url(path)).send().await.unwrap()
}

#[actix_web::test]
async fn the_page_and_its_assets_come_with_their_types_and_security_headers() {
    let app = TestApp::spawn(Backend::Sqlite).await;

    let page = get(&app, "/").await;
    assert_eq!(page.status(), StatusCode::OK);
    assert_eq!(header(&page, CONTENT_TYPE), "text/html; charset=utf-8");
    assert_eq!(header(&page, CACHE_CONTROL), "no-cache");
    assert_secured(&page, "/");
    let html = page.text().await.unwrap();
    assert!(html.starts_with("<!doctype html>"), "{html}");

    let links = asset_links(&html);
    assert_eq!(links.len(), 2, "one script and one style sheet: {links:?}");
    for link in links {
        let (path, version) = link.split_once("?v=").expect("a versioned link");
        let expected_type = match path.rsplit_once('.').map(|(_, extension)| extension) {
            Some("js") => "text/javascript; charset=utf-8",
            Some("css") => "text/css; charset=utf-8",
            other => panic!("unexpected asset {link} ({other:?})"),
        };

        // Versioned: cached for good, as the version changes with the content.
        let asset = get(&app, &link).await;
        assert_eq!(asset.status(), StatusCode::OK, "{link}");
        assert_eq!(header(&asset, CONTENT_TYPE), expected_type, "{link}");
        assert_eq!(
            header(&asset, CACHE_CONTROL),
            "public, max-age=31536000, immutable",
            "{link}"
        );
        assert_eq!(header(&asset, ETAG), format!("\"{version}\""), "{link}");
        assert_secured(&asset, &link);

        // Unversioned, or another version: revalidated every time.
        for stale in [path.to_owned(), format!("{path}?v=0000000000000000")] {
            let asset = get(&app, &stale).await;
            assert_eq!(asset.status(), StatusCode::OK, "{stale}");
            assert_eq!(header(&asset, CACHE_CONTROL), "no-cache", "{stale}");
        }
    }
}

#[actix_web::test]
async fn the_page_revalidates_and_answers_head() {
    let app = TestApp::spawn(Backend::Sqlite).await;
    let page = get(&app, "/").await;
    let etag = header(&page, ETAG).to_owned();

    let again = app
        .client
        .get(app.url("/"))
        .header(IF_NONE_MATCH, &etag)
        .send()
        .await
        .unwrap();
    assert_eq!(again.status(), StatusCode::NOT_MODIFIED);
    assert_eq!(header(&again, ETAG), etag);
    assert_eq!(header(&again, CACHE_CONTROL), "no-cache");

    let changed = app
        .client
        .get(app.url("/"))
        .header(IF_NONE_MATCH, "\"0000000000000000\"")
        .send()
        .await
        .unwrap();
    assert_eq!(changed.status(), StatusCode::OK);

    let head = app.client.head(app.url("/")).send().await.unwrap();
    assert_eq!(head.status(), StatusCode::OK);
    assert_eq!(header(&head, CONTENT_TYPE), "text/html; charset=utf-8");
    assert!(head.bytes().await.unwrap().is_empty());
}

#[actix_web::test]
async fn other_methods_are_not_allowed_and_unknown_assets_are_not_found() {
    let app = TestApp::spawn(Backend::Sqlite).await;
    for (method, path) in [
        (Method::POST, "/"),
        (Method::DELETE, "/"),
        (Method::PUT, "/"),
        (Method::POST, "/assets/app.js"),
    ] {
        let response = app.send(method.clone(), path, None, None).await;
        assert_eq!(header(&response, ALLOW), "GET, HEAD", "{method} {path}");
        assert_problem(
            response,
            StatusCode::METHOD_NOT_ALLOWED,
            "method_not_allowed",
        )
        .await;
    }
    for path in [
        "/assets/nope.js",
        "/assets/",
        "/assets/app.js/x",
        "/index.html",
    ] {
        let response = get(&app, path).await;
        assert_problem(response, StatusCode::NOT_FOUND, "not_found").await;
    }
}

/// Everything the page loads comes from this service: no URL with a scheme or a
/// protocol-relative one in any file, no inline script, style or event handler.
#[actix_web::test]
async fn the_page_loads_nothing_from_elsewhere_and_has_no_inline_code() {
    let app = TestApp::spawn(Backend::Sqlite).await;
    let html = get(&app, "/").await.text().await.unwrap();
    let mut files = vec![("/".to_owned(), html.clone())];
    for link in asset_links(&html) {
        let text = get(&app, &link).await.text().await.unwrap();
        files.push((link, text));
    }
    for (name, text) in &files {
        for scheme in [
            "http://",
            "https://",
            "http:",
            "https:",
            "data:",
            "javascript:",
        ] {
            assert!(
                !text.to_lowercase().contains(scheme),
                "{name} names `{scheme}`"
            );
        }
        // A protocol-relative URL starts a quoted string or a CSS url().
        for opening in ["\"//", "'//", "`//", "(//", "url("] {
            assert!(!text.contains(opening), "{name} contains `{opening}`");
        }
        assert!(!text.contains("@import"), "{name} imports");
    }

    let lower = html.to_lowercase();
    for tag in lower
        .split('<')
        .skip(1)
        .filter_map(|tag| tag.split('>').next())
    {
        let mut words = tag.split_whitespace();
        let name = words.next().unwrap_or_default();
        assert_ne!(name, "style", "an inline style sheet");
        if name == "script" {
            assert!(tag.contains(" src=\"/assets/"), "an inline script: <{tag}>");
        }
        for attribute in words {
            assert!(!attribute.starts_with("style="), "an inline style: <{tag}>");
            assert!(!attribute.starts_with("on"), "an event handler: <{tag}>");
        }
    }
}

/// The page keeps the access token in memory and never handles the refresh token: it asks
/// for the cookie transport, and nothing touches web storage.
#[actix_web::test]
async fn the_script_keeps_tokens_out_of_storage_and_reach() {
    let app = TestApp::spawn(Backend::Sqlite).await;
    let html = get(&app, "/").await.text().await.unwrap();
    let script_link = asset_links(&html)
        .into_iter()
        .find(|link| link.contains(".js"))
        .expect("a script");
    let script = get(&app, &script_link).await.text().await.unwrap();
    for storage in [
        "localStorage.",
        "sessionStorage.",
        "indexedDB.",
        "document.cookie",
    ] {
        assert!(!script.contains(storage), "the script uses {storage}");
    }
    assert!(script.contains("refresh_token_transport: \"cookie\""));
    // The field itself appears nowhere: only the transport option and the error codes do.
    let without_known_words = [
        "refresh_token_transport",
        "invalid_refresh_token",
        "refresh_token_reused",
    ]
    .iter()
    .fold(script.clone(), |text, word| text.replace(word, ""));
    assert!(
        !without_known_words.contains("refresh_token"),
        "the script reads or sends a refresh token"
    );
}

/// Every input has a label and is described by the slot its error appears in (the script
/// puts field errors into `#{id}-error`), and the page carries the steps of the mailed codes:
/// asking for a reset, setting the new password, confirming an address, the banner that asks
/// for the code, and the change of address. What they do is `.ci/e2e.sh`'s part.
#[actix_web::test]
async fn every_input_is_labelled_and_the_steps_of_the_mailed_codes_are_there() {
    let app = TestApp::spawn(Backend::Sqlite).await;
    let html = get(&app, "/").await.text().await.unwrap();
    let ids: Vec<&str> = html
        .split("<input ")
        .skip(1)
        .filter_map(|tag| tag.split("id=\"").nth(1)?.split('"').next())
        .collect();
    assert!(ids.len() >= 12, "{ids:?}");
    for id in &ids {
        assert!(
            html.contains(&format!("<label for=\"{id}\"")),
            "#{id} has no label"
        );
        assert!(
            html.contains(&format!("<p class=\"field-error\" id=\"{id}-error\"></p>")),
            "#{id} has no error slot"
        );
        let tag = html
            .split(&format!("id=\"{id}\""))
            .nth(1)
            .and_then(|rest| rest.split('>').next())
            .unwrap_or_default();
        assert!(
            tag.contains(&format!("{id}-error")),
            "#{id} is not described by its error"
        );
    }
    for form in [
        "forgot-form",
        "reset-form",
        "confirm-form",
        "verify-form",
        "change-form",
        "change-confirm-form",
    ] {
        assert!(html.contains(&format!("<form id=\"{form}\"")), "no #{form}");
    }
    assert!(
        html.contains("id=\"verify-banner\""),
        "no verification banner"
    );
    assert!(html.contains("Forgot your password?"));
}

/// The second factor's steps are there: the login's code step (a 6-digit field that phones
/// fill from a text or an app, and a recovery code), setting it up, the recovery codes
/// shown once, and turning it off. What they do is `.ci/e2e.sh`'s part.
#[actix_web::test]
async fn the_steps_of_the_second_factor_are_there() {
    let app = TestApp::spawn(Backend::Sqlite).await;
    let html = get(&app, "/").await.text().await.unwrap();
    for form in [
        "mfa-login-form",
        "mfa-setup-form",
        "mfa-enrol-form",
        "mfa-disable-form",
    ] {
        assert!(html.contains(&format!("<form id=\"{form}\"")), "no #{form}");
    }
    assert!(
        html.contains("id=\"mfa-codes\""),
        "no place for the recovery codes"
    );
    let code_input = html
        .split("id=\"mfa-login-code\"")
        .nth(1)
        .and_then(|rest| rest.split('>').next())
        .expect("the login's code field");
    assert!(code_input.contains("inputmode=\"numeric\""), "{code_input}");
    assert!(
        code_input.contains("autocomplete=\"one-time-code\""),
        "{code_input}"
    );
    assert!(html.contains("Use a recovery code instead"));
}
