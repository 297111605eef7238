//! `GET /.well-known/jwks.json`: the public keys that verify access tokens.

use actix_web::http::header;
use actix_web::{HttpResponse, web};

use super::AppState;

/// A JWK Set: Ed25519 keys as `{"kty": "OKP", "crv": "Ed25519", "x", "kid", "use": "sig", "alg": "EdDSA"}`.
#[derive(utoipa::ToSchema)]
#[allow(dead_code)] // describes the document; the keys module builds it
pub struct JwkSet {
    keys: Vec<Jwk>,
}

#[derive(utoipa::ToSchema)]
#[allow(dead_code)]
pub struct Jwk {
    #[schema(examples("OKP"))]
    kty: String,
    #[schema(examples("Ed25519"))]
    crv: String,
    /// The public key, base64url without padding.
    x: String,
    kid: String,
    #[schema(rename = "use", examples("sig"))]
    use_: String,
    #[schema(examples("EdDSA"))]
    alg: String,
}

/// The public keys that verify access tokens, as a JWK Set (RFC 7517). Empty when tokens are
/// HS256 with a shared secret.
#[utoipa::path(get, path = "/.well-known/jwks.json", tag = "keys", operation_id = "getJwks",
    responses((status = 200, description = "The JWK Set.", body = JwkSet, content_type = "application/jwk-set+json")))]
pub async fn jwks(state: web::Data<AppState>) -> HttpResponse {
    HttpResponse::Ok()
        .content_type("application/jwk-set+json")
        .insert_header((header::CACHE_CONTROL, "public, max-age=300"))
        .json(state.tokens.jwks())
}
