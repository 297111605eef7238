//! `GET /.well-known/jwks.json`: the public keys that verify access tokens.

use actix_web::http::header;
use actix_web::{HttpResponse, web};

use super::AppState;
use crate::auth::keys::JwkSet;

/// The public keys that verify access tokens, as a JWK Set (RFC 7517). Empty when tokens are
/// HS256 with a shared secret.
#[utoipa::path(get, path = "/.well-known/jwks.json", tag = "keys", operation_id = "getJwks",
    responses((status = 200, description = "The JWK Set.", body = JwkSet, content_type = "application/jwk-set+json")))]
pub async fn jwks(state: web::Data<AppState>) -> HttpResponse {
    HttpResponse::Ok()
        .content_type("application/jwk-set+json")
        .insert_header((header::CACHE_CONTROL, "public, max-age=300"))
        .json(state.auth.tokens.jwks())
}
