//! `GET /.well-known/jwks.json`: the public keys that verify access tokens.

use actix_web::http::header;
use actix_web::{HttpResponse, web};

use super::AppState;

pub async fn jwks(state: web::Data<AppState>) -> HttpResponse {
    HttpResponse::Ok()
        .content_type("application/jwk-set+json")
        .insert_header((header::CACHE_CONTROL, "public, max-age=300"))
        .json(state.tokens.jwks())
}
