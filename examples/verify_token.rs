//! How another service verifies Latchkey's access tokens offline: fetch the JWK Set once
//! (and again when an unknown `kid` shows up), then check each token locally.
//!
//! ```sh
//! cargo run --example verify_token -- http://127.0.0.1:8080 "$ACCESS_TOKEN"
//! ```
//!
//! Offline verification proves the token was issued by Latchkey and has not expired; it
//! cannot see a logout that happened since. Services that must honour revocation at once ask
//! Latchkey (`GET /me`), or keep access tokens short (`LATCHKEY_ACCESS_TTL`).

use jsonwebtoken::{Algorithm, DecodingKey, Validation, decode, decode_header};
use serde::Deserialize;

#[derive(Debug, Deserialize)]
struct Claims {
    sub: String,
    sid: String,
    exp: i64,
}

#[derive(Deserialize)]
struct JwkSet {
    keys: Vec<Jwk>,
}

#[derive(Deserialize)]
struct Jwk {
    kid: String,
    kty: String,
    crv: String,
    x: String,
}

fn verify(jwks: &JwkSet, token: &str, issuer: &str, audience: &str) -> Result<Claims, String> {
    let header = decode_header(token).map_err(|e| format!("not a JWT: {e}"))?;
    // Pin everything the token could lie about: type, algorithm and key.
    if header.typ.as_deref() != Some("at+jwt") || header.alg != Algorithm::EdDSA {
        return Err("not a Latchkey access token".into());
    }
    let kid = header.kid.ok_or("no kid")?;
    let jwk = jwks
        .keys
        .iter()
        .find(|key| key.kid == kid && key.kty == "OKP" && key.crv == "Ed25519")
        .ok_or("unknown kid: fetch the JWK Set again")?;
    let key = DecodingKey::from_ed_components(&jwk.x).map_err(|e| e.to_string())?;
    let mut validation = Validation::new(Algorithm::EdDSA);
    validation.set_issuer(&[issuer]);
    validation.set_audience(&[audience]);
    validation.set_required_spec_claims(&["exp", "nbf", "iss", "aud", "sub"]);
    validation.validate_nbf = true;
    decode::<Claims>(token, &key, &validation)
        .map(|data| data.claims)
        .map_err(|e| format!("invalid token: {e}"))
}

#[actix_web::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let (Some(base_url), Some(token)) = (args.next(), args.next()) else {
        eprintln!("usage: verify_token BASE_URL ACCESS_TOKEN");
        std::process::exit(2);
    };
    let jwks: JwkSet = reqwest::get(format!("{base_url}/.well-known/jwks.json"))
        .await?
        .json()
        .await?;
    // The defaults of LATCHKEY_ISSUER and LATCHKEY_AUDIENCE.
    match verify(&jwks, &token, "latchkey", "latchkey") {
        Ok(claims) => println!(
            "valid: user {} session {} until {}",
            claims.sub, claims.sid, claims.exp
        ),
        Err(reason) => {
            println!("rejected: {reason}");
            std::process::exit(1);
        }
    }
    Ok(())
}
