//! `GET /`: the page on which a person uses the service in a browser (sign up, log in, with
//! a second factor too, see who they are and their sessions, end one, set up or turn off
//! TOTP, add and use passkeys, log out), calling the API as any single-page
//! app would, with the refresh token in the `__Host-latchkey_refresh` cookie where its
//! script cannot read it. Its files are `web/`, compiled into the binary: nothing is read
//! from disk or loaded from another origin at run time.

use std::sync::LazyLock;

use actix_web::http::header::{self, HeaderValue};
use actix_web::{HttpRequest, HttpResponse, HttpResponseBuilder, web};
use sha2::{Digest as _, Sha256};

use crate::error::Error;

/// The page may load its own script and style sheet and call its own origin, and
/// nothing else: no inline script or style, no framing, no form posts. Trusted Types with no
/// policy closes the DOM's string-to-HTML sinks (`innerHTML` and the like, and `DOMParser`),
/// which the script does not use. `blob:` images are the QR code of a new authenticator key:
/// the API's SVG, which the script turns into a `blob:` URL of this origin (only this
/// origin's scripts can make one) and shows in an `<img>`, where an SVG runs no script and
/// loads nothing. Not `data:`: injected markup could carry one, where a `blob:` URL needs
/// this origin's script.
pub const CONTENT_SECURITY_POLICY: &str = "default-src 'none'; script-src 'self'; \
     style-src 'self'; img-src 'self' blob:; connect-src 'self'; base-uri 'none'; \
     form-action 'none'; frame-ancestors 'none'; require-trusted-types-for 'script'; \
     trusted-types 'none'";

/// Versioned asset URLs (`?v=` and the content's digest) never change meaning, so browsers
/// keep them; the page itself is revalidated on every load, so a new binary's page brings
/// its new assets at once.
const CACHE_PAGE: &str = "no-cache";
const CACHE_VERSIONED: &str = "public, max-age=31536000, immutable";

struct File {
    content_type: &'static str,
    body: String,
    /// The first 16 hex digits of the SHA-256 of the body: its ETag and its `?v=` version.
    version: String,
}

impl File {
    fn new(content_type: &'static str, body: String) -> Self {
        let digest = Sha256::digest(body.as_bytes());
        let version = format!("{digest:x}")[..16].to_owned();
        Self {
            content_type,
            body,
            version,
        }
    }

    fn etag(&self) -> String {
        format!("\"{}\"", self.version)
    }
}

struct Site {
    page: File,
    /// By name, as in `/assets/{name}`.
    assets: Vec<(&'static str, File)>,
}

/// The files, with the page's references to its assets rewritten to versioned URLs.
static SITE: LazyLock<Site> = LazyLock::new(|| {
    let assets = vec![
        (
            "app.js",
            File::new(
                "text/javascript; charset=utf-8",
                include_str!("../../web/app.js").to_owned(),
            ),
        ),
        (
            "style.css",
            File::new(
                "text/css; charset=utf-8",
                include_str!("../../web/style.css").to_owned(),
            ),
        ),
    ];
    let mut html = include_str!("../../web/index.html").to_owned();
    for (name, file) in &assets {
        html = html.replace(
            &format!("\"/assets/{name}\""),
            &format!("\"/assets/{name}?v={}\"", file.version),
        );
    }
    Site {
        page: File::new("text/html; charset=utf-8", html),
        assets,
    }
});

/// The page (sign up, log in, your account and sessions, log out), served by the binary.
#[utoipa::path(get, path = "/", tag = "page", operation_id = "getPage",
    responses(
        (status = 200, description = "The page, HTML. Its script and style sheet are \
            under `/assets/`; a strict `Content-Security-Policy` lets it load nothing else.",
            body = String, content_type = "text/html",
            headers(
                ("Content-Security-Policy" = String, description = "Only the page's own assets and API."),
                ("Cache-Control" = String, description = "`no-cache`: revalidate with the `ETag`."),
                ("ETag" = String, description = "The version of the page."),
            )),
        (status = 304, description = "Not modified: `If-None-Match` names the current `ETag`."),
    ))]
pub async fn index(request: HttpRequest) -> HttpResponse {
    serve(&request, &SITE.page, CACHE_PAGE)
}

/// The page's script and style sheet. Not in the OpenAPI document: they are the page's
/// parts, not an interface.
pub async fn asset(request: HttpRequest, name: web::Path<String>) -> Result<HttpResponse, Error> {
    let file = SITE
        .assets
        .iter()
        .find(|(known, _)| *known == name.as_str())
        .map(|(_, file)| file)
        .ok_or(Error::NotFound)?;
    let wanted = format!("v={}", file.version);
    let versioned = request.query_string().split('&').any(|pair| pair == wanted);
    Ok(serve(
        &request,
        file,
        if versioned {
            CACHE_VERSIONED
        } else {
            CACHE_PAGE
        },
    ))
}

fn serve(request: &HttpRequest, file: &File, cache_control: &'static str) -> HttpResponse {
    let etag = file.etag();
    let fresh = request
        .headers()
        .get(header::IF_NONE_MATCH)
        .and_then(|value| value.to_str().ok())
        .is_some_and(|value| matches_etag(value, &etag));
    if fresh {
        return with_headers(HttpResponse::NotModified(), cache_control, &etag).finish();
    }
    with_headers(HttpResponse::Ok(), cache_control, &etag)
        .content_type(file.content_type)
        .body(file.body.clone())
}

fn with_headers(
    mut response: HttpResponseBuilder,
    cache_control: &'static str,
    etag: &str,
) -> HttpResponseBuilder {
    response
        .insert_header((header::CACHE_CONTROL, cache_control))
        .insert_header((header::CONTENT_SECURITY_POLICY, CONTENT_SECURITY_POLICY))
        .insert_header((header::X_CONTENT_TYPE_OPTIONS, "nosniff"))
        .insert_header((header::REFERRER_POLICY, "no-referrer"))
        .insert_header((header::X_FRAME_OPTIONS, "DENY"))
        .insert_header(("Cross-Origin-Opener-Policy", "same-origin"))
        .insert_header((
            header::ETAG,
            HeaderValue::from_str(etag).expect("a hex digest in quotes is a header value"),
        ));
    response
}

/// `If-None-Match` (RFC 9110 §13.1.2): `*`, or a list of entity tags compared weakly.
fn matches_etag(if_none_match: &str, etag: &str) -> bool {
    if_none_match
        .split(',')
        .map(|tag| tag.trim())
        .any(|tag| tag == "*" || tag.trim_start_matches("W/") == etag)
}

pub fn routes(config: &mut web::ServiceConfig) {
    config
        .service(super::resource("/", "GET, HEAD").route(super::get().to(index)))
        .service(super::resource("/assets/{name}", "GET, HEAD").route(super::get().to(asset)));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_page_links_every_asset_by_its_version() {
        for (name, file) in &SITE.assets {
            let link = format!("\"/assets/{name}?v={}\"", file.version);
            assert!(SITE.page.body.contains(&link), "{link} is not in the page");
        }
    }

    #[test]
    fn if_none_match_is_compared_weakly_and_in_lists() {
        let etag = "\"0123456789abcdef\"";
        for header in [
            etag,
            "W/\"0123456789abcdef\"",
            "\"x\", \"0123456789abcdef\"",
            "*",
        ] {
            assert!(matches_etag(header, etag), "{header}");
        }
        for header in ["\"x\"", "0123456789abcdef", ""] {
            assert!(!matches_etag(header, etag), "{header}");
        }
    }
}
