use actix_web::http::header::{CACHE_CONTROL, CONTENT_TYPE};
use actix_web::{web, HttpResponse};

use crate::dto::common::StatusBody;
use crate::error::{ApiError, ErrorBody};
use crate::state::{run, AppState};

/// The process is alive.
#[utoipa::path(get, path = "/healthz", tag = "operations",
    responses((status = 200, description = "Alive", body = StatusBody)))]
pub(crate) async fn healthz() -> HttpResponse {
    HttpResponse::Ok().json(StatusBody { status: "ok" })
}

/// The database answers.
#[utoipa::path(get, path = "/readyz", tag = "operations",
    responses(
        (status = 200, description = "Ready", body = StatusBody),
        (status = 503, description = "`unavailable`: the database does not answer; `Retry-After` set", body = ErrorBody),
    ))]
pub(crate) async fn readyz(state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    run(move || state.health.ready()).await?;
    Ok(HttpResponse::Ok().json(StatusBody { status: "ok" }))
}

/// This document.
#[utoipa::path(get, path = "/openapi.json", tag = "operations",
    responses((status = 200, description = "The OpenAPI 3 document", content_type = "application/json")))]
pub(crate) async fn openapi_json(state: web::Data<AppState>) -> HttpResponse {
    HttpResponse::Ok()
        .insert_header((CONTENT_TYPE, "application/json"))
        .body(state.settings.openapi_json.to_string())
}

/// The public keys (JWK Set, Ed25519 `OKP` keys with `kid`) that verify access
/// tokens and signed codes.
#[utoipa::path(get, path = "/.well-known/jwks.json", tag = "operations",
    responses((status = 200, description = "The JSON Web Key Set; cacheable for 5 minutes", content_type = "application/json",
        headers(("Cache-Control" = String, description = "`public, max-age=300`")),
        example = json!({"keys": [{"kty": "OKP", "crv": "Ed25519", "kid": "...", "x": "...", "alg": "EdDSA", "use": "sig"}]}))))]
pub(crate) async fn jwks(state: web::Data<AppState>) -> HttpResponse {
    HttpResponse::Ok()
        .insert_header((CONTENT_TYPE, "application/json"))
        .insert_header((CACHE_CONTROL, "public, max-age=300"))
        .body(state.settings.jwks_json.to_string())
}
