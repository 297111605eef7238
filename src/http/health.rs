//! `GET /healthz` (the process answers) and `GET /readyz` (and so does its database).

use actix_web::{HttpResponse, web};

use super::AppState;
use crate::db;
use crate::error::Error;

#[derive(serde::Serialize, utoipa::ToSchema)]
pub struct Health {
    #[schema(examples("ok"))]
    status: &'static str,
    /// The backend, on `/readyz`: `sqlite` or `postgres`.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    database: Option<&'static str>,
}

/// Whether the process is up.
#[utoipa::path(get, path = "/healthz", tag = "health", operation_id = "healthz",
    responses((status = 200, description = "The process answers.", body = Health)))]
pub async fn healthz() -> HttpResponse {
    HttpResponse::Ok().json(Health {
        status: "ok",
        database: None,
    })
}

/// Whether the process and its database answer.
#[utoipa::path(get, path = "/readyz", tag = "health", operation_id = "readyz",
    responses((status = 200, description = "The database answers.", body = Health)))]
pub async fn readyz(state: web::Data<AppState>) -> Result<HttpResponse, Error> {
    // Any failure to answer means not ready, whatever the database said.
    state
        .auth
        .db
        .run(|conn| db::ping(conn).map_err(|error| Error::Unavailable(error.into())))
        .await?;
    Ok(HttpResponse::Ok().json(Health {
        status: "ok",
        database: Some(state.auth.db.backend().name()),
    }))
}
