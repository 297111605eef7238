//! The OpenAPI 3.1 document, generated from the handlers' annotations: `openapi.yaml` at the
//! repository root is this document (a test fails when they differ), `GET /openapi.yaml`
//! serves it and `GET /docs` renders it with Swagger UI built into the binary.
//!
//! The responses every operation of a kind shares (a bad body, a missing token, the
//! database being down) are added here once, by [`CommonResponses`], rather than repeated on
//! each handler.

use std::sync::LazyLock;

use actix_web::body::MessageBody;
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::header::{self, HeaderValue};
use actix_web::middleware::Next;
use actix_web::{HttpResponse, web};
use utoipa::openapi::header::Header;
use utoipa::openapi::path::Operation;
use utoipa::openapi::schema::{Object, Type};
use utoipa::openapi::security::{
    ApiKey, ApiKeyValue, HttpAuthScheme, HttpBuilder, SecurityRequirement, SecurityScheme,
};
use utoipa::openapi::{Content, OpenApi as Document, Ref, RefOr, Response, ResponseBuilder};
use utoipa::{Modify, OpenApi};
use utoipa_swagger_ui::{Config, SwaggerUi};

use super::{
    email, events, health, login, logout, me, mfa, page, passkeys, problem, recovery, refresh,
    refresh_cookie, sessions, signup, well_known,
};

#[derive(OpenApi)]
#[openapi(
    info(
        title = "Latchkey",
        description = "Signup, login, short-lived JWT access tokens, rotating refresh tokens, \
                       sessions and logout. Every error is an RFC 9457 problem document whose \
                       `code` is stable; each response below lists the codes it can carry.",
    ),
    paths(
        signup::signup,
        passkeys::start_signup,
        passkeys::finish_signup,
        login::login,
        mfa::login,
        passkeys::start_login,
        passkeys::finish_login,
        refresh::refresh,
        logout::logout,
        me::show,
        me::change_password,
        me::delete,
        mfa::enrol,
        mfa::confirm,
        mfa::disable,
        passkeys::start_registration,
        passkeys::finish_registration,
        passkeys::list,
        passkeys::rename,
        passkeys::delete,
        email::change,
        email::send_verification,
        events::list,
        sessions::list,
        sessions::end,
        recovery::forgot,
        recovery::reset,
        email::verify,
        well_known::jwks,
        health::healthz,
        health::readyz,
        openapi_yaml,
        docs,
        page::index,
    ),
    components(schemas(problem::Problem, crate::error::FieldError, refresh_cookie::Transport)),
    modifiers(&BearerScheme, &RefreshCookie, &CommonResponses, &OptionalBodies),
    tags(
        (name = "auth", description = "Accounts, logins and tokens"),
        (name = "account", description = "The caller's own account"),
        (name = "mfa", description = "A second factor: TOTP, and recovery codes"),
        (name = "passkeys", description = "The account's passkeys (WebAuthn), which log in without a password"),
        (name = "recovery", description = "Mailed codes: a forgotten password, a verified email"),
        (name = "sessions", description = "The caller's sessions"),
        (name = "keys", description = "Public keys for verifying access tokens offline"),
        (name = "health", description = "Liveness and readiness"),
        (name = "docs", description = "This document, and a page to explore it"),
        (name = "page", description = "A page on which a person uses the service in a browser"),
    ),
)]
struct ApiDoc;

/// The document.
pub fn document() -> Document {
    ApiDoc::openapi()
}

/// The document as YAML, rendered once.
pub fn yaml() -> &'static str {
    static YAML: LazyLock<String> = LazyLock::new(|| {
        document()
            .to_yaml()
            .expect("the OpenAPI document serialises to YAML")
    });
    &YAML
}

/// This document.
#[utoipa::path(get, path = "/openapi.yaml", tag = "docs", operation_id = "getOpenApi",
    responses((status = 200, description = "The OpenAPI 3.1 document, as YAML text.", body = String, content_type = "application/yaml")))]
pub async fn openapi_yaml() -> HttpResponse {
    HttpResponse::Ok()
        .content_type("application/yaml")
        .body(yaml())
}

/// Interactive API reference (Swagger UI, served by the binary itself, nothing from a CDN).
/// `/docs` redirects to `/docs/`, the page.
#[utoipa::path(get, path = "/docs", tag = "docs", operation_id = "getDocs",
    responses(
        (status = 200, description = "The page, once the redirect is followed.", body = String, content_type = "text/html"),
        (status = 307, description = "Redirects to `/docs/`.",
            headers(("Location" = String, description = "`/docs/`"))),
    ))]
pub async fn docs() -> HttpResponse {
    HttpResponse::TemporaryRedirect()
        .insert_header((actix_web::http::header::LOCATION, "/docs/"))
        .finish()
}

/// Swagger UI is served from the origin of the refresh cookie, so its pages get the
/// protections of the page at `/` (no framing, no sniffing, no referrer), with the policy
/// Swagger UI needs to run: its own scripts and style sheets, the inline styles it sets, its
/// `data:` images, and calls to this origin only.
pub const DOCS_CONTENT_SECURITY_POLICY: &str = "default-src 'none'; script-src 'self'; \
     style-src 'self' 'unsafe-inline'; img-src 'self' data:; font-src 'self' data:; \
     connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

/// Adds the security headers of [`DOCS_CONTENT_SECURITY_POLICY`] to everything under
/// `/docs`.
pub async fn docs_headers(
    request: ServiceRequest,
    next: Next<impl MessageBody>,
) -> Result<ServiceResponse<impl MessageBody>, actix_web::Error> {
    let path = request.path();
    let is_docs = path == "/docs" || path.starts_with("/docs/");
    let mut response = next.call(request).await?;
    if is_docs {
        let headers = response.headers_mut();
        for (name, value) in [
            (
                header::CONTENT_SECURITY_POLICY,
                DOCS_CONTENT_SECURITY_POLICY,
            ),
            (header::X_FRAME_OPTIONS, "DENY"),
            (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
            (header::REFERRER_POLICY, "no-referrer"),
        ] {
            headers.insert(name, HeaderValue::from_static(value));
        }
    }
    Ok(response)
}

pub fn routes(config: &mut web::ServiceConfig) {
    config
        .service(super::resource("/openapi.yaml", "GET, HEAD").route(super::get().to(openapi_yaml)))
        .service(super::resource("/docs", "GET, HEAD").route(super::get().to(docs)))
        .service(
            SwaggerUi::new("/docs/{_:.*}")
                // The validator badge would send the document to a third-party service.
                .config(Config::from("/openapi.yaml").validator_url("none")),
        );
}

struct BearerScheme;

impl Modify for BearerScheme {
    fn modify(&self, openapi: &mut Document) {
        let scheme = HttpBuilder::new()
            .scheme(HttpAuthScheme::Bearer)
            .bearer_format("JWT")
            .description(Some("The `access_token` of a token response."))
            .build();
        openapi
            .components
            .get_or_insert_with(Default::default)
            .add_security_scheme("bearer", SecurityScheme::Http(scheme));
    }
}

/// The refresh-token cookie: a security scheme (what it is, a credential the browser sends
/// by itself) rather than a cookie parameter, which generated clients would expose as an
/// argument that no browser code can set. And the `Set-Cookie` header of the answers that
/// set or clear it.
struct RefreshCookie;

/// The operations that may set the cookie, and their success status.
const SETS_REFRESH_COOKIE: &[(&str, &str)] = &[
    ("signup", "201"),
    ("login", "200"),
    ("loginWithMfa", "200"),
    ("refresh", "200"),
];

impl Modify for RefreshCookie {
    fn modify(&self, openapi: &mut Document) {
        let scheme = ApiKeyValue::with_description(
            refresh_cookie::COOKIE_NAME,
            "The refresh token, for browser apps: set by a token response when \
             `refresh_token_transport` is `cookie` (`Path=/; Secure; HttpOnly; \
             SameSite=Strict`), sent back by the browser itself, and used by `POST /refresh` \
             when its body has no `refresh_token`.",
        );
        openapi
            .components
            .get_or_insert_with(Default::default)
            .add_security_scheme(
                "refresh_cookie",
                SecurityScheme::ApiKey(ApiKey::Cookie(scheme)),
            );
        for (_, operation) in operations_mut(openapi) {
            let id = operation.operation_id.as_deref().unwrap_or_default();
            let (status, description) = if id == "logout" {
                (
                    "204",
                    "Clears the `__Host-latchkey_refresh` cookie (empty, `Max-Age=0`) when the \
                     request carries it and its session has ended, or when the request does not \
                     carry it and the caller's own session has ended.",
                )
            } else if let Some((_, status)) = SETS_REFRESH_COOKIE.iter().find(|(op, _)| *op == id) {
                (
                    *status,
                    "With `refresh_token_transport` `cookie` (and on `/refresh` with the cookie): \
                     `__Host-latchkey_refresh=<refresh token>; Path=/; Secure; HttpOnly; \
                     SameSite=Strict; Max-Age=<seconds until the session's absolute end>`.",
                )
            } else {
                continue;
            };
            if let Some(RefOr::T(response)) = operation.responses.responses.get_mut(status) {
                response.headers.insert(
                    "Set-Cookie".to_owned(),
                    RefOr::T(string_header(description)),
                );
            }
        }
    }
}

struct CommonResponses;

/// The paths answered without the database, which therefore never answer `503`.
const WITHOUT_DATABASE: &[&str] = &[
    "/healthz",
    "/.well-known/jwks.json",
    "/openapi.yaml",
    "/docs",
    "/",
];

/// The operations that hash or check a password, and so wait in the hashing queue.
const HASHING_OPERATIONS: &[&str] = &[
    "signup",
    "login",
    "changePassword",
    "deleteMe",
    "enrolTotp",
    "disableTotp",
];

impl Modify for CommonResponses {
    fn modify(&self, openapi: &mut Document) {
        for (path, operation) in operations_mut(openapi) {
            let uses_database = !WITHOUT_DATABASE.contains(&path.as_str());
            add_common_responses(operation, uses_database);
        }
    }
}

/// Every operation of the document (the API uses GET, POST, PATCH and DELETE), with its path.
fn operations_mut(openapi: &mut Document) -> impl Iterator<Item = (&String, &mut Operation)> {
    openapi.paths.paths.iter_mut().flat_map(|(path, item)| {
        [
            &mut item.get,
            &mut item.post,
            &mut item.patch,
            &mut item.delete,
        ]
        .into_iter()
        .flatten()
        .map(move |operation| (path, operation))
    })
}

/// The `` `code` `` a response's description begins with, backticks included.
fn leading_code(description: &str) -> &str {
    let end = description[1..].find('`').map_or(0, |at| at + 2);
    &description[..end]
}

fn add_common_responses(operation: &mut Operation, uses_database: bool) {
    let responses = &mut operation.responses.responses;
    let mut add = |status: &str, response: Response| match responses.get_mut(status) {
        None => {
            responses.insert(status.to_owned(), RefOr::T(response));
        }
        // The operation's own answers with this status come first; the common one is said
        // too, unless they name its code already, so that a client learns every code it may
        // meet.
        Some(RefOr::T(own))
            if !own
                .description
                .contains(leading_code(&response.description)) =>
        {
            own.description = format!("{} Also {}", own.description, response.description);
        }
        Some(_) => {}
    };
    if operation.request_body.is_some() {
        add(
            "400",
            problem_response(
                "`malformed_request`: the body is not JSON, or JSON of the wrong shape.",
            )
            .build(),
        );
        add(
            "408",
            problem_response(
                "`request_timeout`: the body took longer than `LATCHKEY_CLIENT_TIMEOUT` to arrive.",
            )
            .build(),
        );
        add(
            "413",
            problem_response("`payload_too_large`: the body is over 64 KiB.").build(),
        );
        add(
            "415",
            problem_response(
                "`unsupported_media_type`: the body is not `application/json`, or it has a \
                 `Content-Encoding` other than `identity`.",
            )
            .build(),
        );
    }
    let bearer = SecurityRequirement::new("bearer", Vec::<String>::new());
    if operation
        .security
        .iter()
        .flatten()
        .any(|requirement| *requirement == bearer)
    {
        let challenge = string_header(
            "`Bearer` when the token is missing, `Bearer error=\"invalid_token\"` when it is not valid.",
        );
        add(
            "401",
            problem_response(
                "`missing_token`: no `Authorization: Bearer` header. `invalid_token`: the token is \
                 malformed, forged, expired or its session has ended.",
            )
            .header("WWW-Authenticate", challenge)
            .build(),
        );
    }
    let hashes = operation
        .operation_id
        .as_deref()
        .is_some_and(|id| HASHING_OPERATIONS.contains(&id));
    if uses_database {
        let unavailable = if hashes {
            "`service_unavailable`: the database cannot be reached, or too many password hashes \
             are already waiting (`LATCHKEY_HASH_QUEUE_MAX`); nothing was counted or changed, \
             retry later."
        } else {
            "`service_unavailable`: the database cannot be reached; retry later."
        };
        add(
            "503",
            problem_response(unavailable)
                .header(
                    "Retry-After",
                    integer_header("Seconds to wait before retrying."),
                )
                .build(),
        );
    }
}

/// Operations whose body may be left out. utoipa marks a body optional only by typing it
/// `Option<T>`, which also makes it `oneOf: [T, null]` and trips client generators.
struct OptionalBodies;

const OPTIONAL_BODY_OPERATIONS: &[&str] = &["logout"];

impl Modify for OptionalBodies {
    fn modify(&self, openapi: &mut Document) {
        for (_, operation) in operations_mut(openapi) {
            let optional = operation
                .operation_id
                .as_deref()
                .is_some_and(|id| OPTIONAL_BODY_OPERATIONS.contains(&id));
            if let (true, Some(RefOr::T(body))) = (optional, &mut operation.request_body) {
                body.required = Some(utoipa::openapi::Required::False);
            }
        }
    }
}

/// A response whose body is a problem document.
fn problem_response(description: &str) -> ResponseBuilder {
    ResponseBuilder::new().description(description).content(
        problem::CONTENT_TYPE,
        Content::new(Some(Ref::from_schema_name("Problem"))),
    )
}

fn string_header(description: &str) -> Header {
    described_header(Type::String, description)
}

fn integer_header(description: &str) -> Header {
    described_header(Type::Integer, description)
}

fn described_header(kind: Type, description: &str) -> Header {
    let mut header = Header::new(Object::with_type(kind));
    header.description = Some(description.to_owned());
    header
}

#[cfg(test)]
mod tests {
    #[test]
    fn every_operation_has_an_id_and_a_tag() {
        let document = super::ApiDoc::openapi();
        for (path, item) in &document.paths.paths {
            for operation in [&item.get, &item.post, &item.delete].into_iter().flatten() {
                assert!(operation.operation_id.is_some(), "{path}");
                assert!(
                    operation.tags.as_ref().is_some_and(|t| !t.is_empty()),
                    "{path}"
                );
            }
        }
    }

    use utoipa::OpenApi as _;
}
