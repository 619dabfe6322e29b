//! Tessera's HTTP adapter (actix-web): the REST API of docs/api.md, its DTOs and their
//! conversion into domain values, the mapping of every application error to one
//! status and error code, API-key authentication, request logging and the OpenAPI
//! document served at `/openapi.json`.
//!
//! Every use case runs on actix's blocking pool (`web::block`): the ports are
//! synchronous. The exceptions are `POST /v1/redeem` and `POST /v1/tickets/use`
//! when the state has a `queued`: the key (if any) is resolved from the process's
//! memory and the statement awaited on the worker (the store's group commit
//! answers a future); only a key not known yet or a refusal goes to the blocking
//! pool. Bulk issuance runs there too and streams its CSV back through a bounded
//! channel (see `batch`). This crate never depends on a database driver.

mod admission;
mod auth;
mod batch;
mod client_addr;
pub mod dto;
mod error;
mod extract;
mod idempotency;
mod logging;
pub mod metrics;
mod openapi;
mod pages;
mod routes;
mod state;
mod time;

pub use admission::Admission;
pub use dto::access::{created_tenant_json, CreatedTenantResponse};
pub use error::{ApiError, ErrorBody, ErrorDetail};
pub use openapi::{openapi_document, ApiDoc};
pub use state::{AppState, HttpSettings};

use actix_web::web;

/// Everything mounted: `/v1/...`, `/healthz`, `/readyz`, `/openapi.json`,
/// `/.well-known/jwks.json`, a JSON 404 for unknown routes and a JSON 405 for known
/// routes with another method, and request logging (method, matched route pattern,
/// status, latency).
///
/// ```ignore
/// HttpServer::new(move || App::new().configure(tessera_http::configure(state.clone())))
/// ```
pub fn configure(state: AppState) -> impl FnOnce(&mut web::ServiceConfig) + Clone {
    move |cfg: &mut web::ServiceConfig| {
        let limit = state.settings.body_limit_bytes;
        cfg.app_data(web::Data::new(state))
            .app_data(web::PayloadConfig::new(limit))
            .app_data(extract::json_config(limit))
            .app_data(extract::query_config())
            .app_data(extract::path_config());
        cfg.service(
            routes::scope()
                .wrap(actix_web::middleware::from_fn(idempotency::idempotent))
                .wrap(actix_web::middleware::from_fn(admission::admit))
                .wrap(actix_web::middleware::from_fn(logging::log_request))
                .default_service(web::to(routes::not_found)),
        );
    }
}
