//! `GET /healthz` (the process answers) and `GET /readyz` (and so does its database).

use actix_web::{HttpResponse, web};
use serde_json::json;

use super::AppState;
use crate::db;
use crate::error::Error;

pub async fn healthz() -> HttpResponse {
    HttpResponse::Ok().json(json!({"status": "ok"}))
}

pub async fn readyz(state: web::Data<AppState>) -> Result<HttpResponse, Error> {
    // Any failure to answer means not ready, whatever the database said.
    state
        .db
        .run(|conn| db::ping(conn).map_err(|error| Error::Unavailable(error.into())))
        .await?;
    Ok(HttpResponse::Ok().json(json!({"status": "ok", "database": state.db.backend()})))
}
