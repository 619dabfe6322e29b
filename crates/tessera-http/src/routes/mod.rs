//! The route table. Resources are registered in order: fixed paths such as
//! `/v1/tickets/use` come before `/v1/tickets/{ticket_id}`.

pub(crate) mod access;
pub(crate) mod events;
pub(crate) mod import;
pub(crate) mod lifecycle;
pub(crate) mod ops;
pub(crate) mod programs;
pub(crate) mod redeem;
pub(crate) mod standalone;
pub(crate) mod tickets;
pub(crate) mod webhooks;

use actix_web::http::header::{CACHE_CONTROL, ETAG};
use actix_web::http::StatusCode;
use actix_web::{web, HttpResponse, HttpResponseBuilder, Resource, ResponseError, Scope};
use serde::Serialize;
use tessera_domain::{ApiKeyId, ProgramId, TicketId};

use crate::error::ApiError;

pub(crate) use access::*;
pub(crate) use events::*;
pub(crate) use import::*;
pub(crate) use lifecycle::*;
pub(crate) use ops::*;
pub(crate) use programs::*;
pub(crate) use redeem::*;
pub(crate) use standalone::*;
pub(crate) use tickets::*;
pub(crate) use webhooks::*;

/// A resource whose other methods answer `405` in the API's error format.
fn resource(path: &str) -> Resource {
    web::resource(path).default_service(web::to(method_not_allowed))
}

/// Every route, in one scope so the request logger wraps them all.
///
/// Routes are tried in this order, and a pattern with a `{segment}` is matched by
/// a regex: the static routes a crowd calls come first, so that a redemption or a
/// use is routed without trying every pattern above it (routing was 2 % of the
/// server's CPU under full redemption load, in `regex_lite`). No route below can
/// match their paths, so the order changes nothing else.
pub(crate) fn scope() -> Scope {
    web::scope("")
        .service(resource("/v1/redeem").route(web::post().to(redeem)))
        .service(resource("/v1/tickets/use").route(web::post().to(use_standalone)))
        .service(resource("/v1/redeem/validate").route(web::post().to(validate)))
        .service(resource("/v1/holds").route(web::post().to(create_hold)))
        .service(resource("/healthz").route(web::get().to(healthz)))
        .service(resource("/readyz").route(web::get().to(readyz)))
        .service(resource("/openapi.json").route(web::get().to(openapi_json)))
        .service(resource("/metrics").route(web::get().to(metrics)))
        .service(resource("/v1/events").route(web::get().to(list_events)))
        .service(resource("/.well-known/jwks.json").route(web::get().to(jwks)))
        .service(resource("/v1/tenants").route(web::post().to(create_tenant)))
        .service(
            resource("/v1/api-keys")
                .route(web::get().to(list_api_keys))
                .route(web::post().to(create_api_key)),
        )
        .service(resource("/v1/api-keys/{key_id}").route(web::delete().to(delete_api_key)))
        .service(
            resource("/v1/programs")
                .route(web::get().to(list_programs))
                .route(web::post().to(create_program)),
        )
        .service(
            resource("/v1/programs/{program_id}")
                .route(web::get().to(get_program))
                .route(web::patch().to(update_program))
                .route(web::delete().to(delete_program)),
        )
        .service(
            resource("/v1/programs/{program_id}/suspend").route(web::post().to(suspend_program)),
        )
        .service(resource("/v1/programs/{program_id}/stats").route(web::get().to(program_stats)))
        .service(
            resource("/v1/programs/{program_id}/tickets")
                .route(web::get().to(list_tickets))
                .route(web::post().to(issue_ticket)),
        )
        .service(
            resource("/v1/programs/{program_id}/tickets/batch").route(web::post().to(issue_batch)),
        )
        .service(
            resource("/v1/programs/{program_id}/tickets/import")
                .route(web::post().to(import_tickets)),
        )
        .service(
            resource("/v1/tickets")
                .route(web::get().to(list_standalone))
                .route(web::post().to(create_standalone)),
        )
        .service(resource("/v1/tickets/delete").route(web::post().to(delete_standalone)))
        .service(
            resource("/v1/tickets/{ticket_id}")
                .route(web::get().to(get_ticket))
                .route(web::patch().to(update_ticket))
                .route(web::delete().to(revoke_ticket)),
        )
        .configure(crate::pages::configure)
        .service(
            resource("/v1/webhooks")
                .route(web::get().to(list_webhooks))
                .route(web::post().to(create_webhook)),
        )
        .service(resource("/v1/webhooks/{webhook_id}").route(web::delete().to(delete_webhook)))
        .service(
            resource("/v1/webhooks/{webhook_id}/deliveries").route(web::get().to(list_deliveries)),
        )
        .service(
            resource("/v1/webhooks/{webhook_id}/deliveries/{delivery_id}/retry")
                .route(web::post().to(retry_delivery)),
        )
        .service(
            resource("/v1/holds/{hold_id}")
                .route(web::get().to(get_hold))
                .route(web::delete().to(release_hold)),
        )
        .service(resource("/v1/holds/{hold_id}/confirm").route(web::post().to(confirm_hold)))
        .service(
            resource("/v1/redemptions/{redemption_id}/rollback").route(web::post().to(rollback)),
        )
}

pub(crate) async fn not_found() -> HttpResponse {
    ApiError::new(StatusCode::NOT_FOUND, "not_found", "No such route.").error_response()
}

async fn method_not_allowed() -> HttpResponse {
    ApiError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        "method_not_allowed",
        "This route does not support that method.",
    )
    .error_response()
}

// A malformed id cannot name anything that exists: 404, without a lookup.
fn program_id(raw: &str) -> Result<ProgramId, ApiError> {
    ProgramId::parse(raw).map_err(|_| ApiError::not_found())
}

fn ticket_id(raw: &str) -> Result<TicketId, ApiError> {
    TicketId::parse(raw).map_err(|_| ApiError::not_found())
}

fn api_key_id(raw: &str) -> Result<ApiKeyId, ApiError> {
    ApiKeyId::parse(raw).map_err(|_| ApiError::not_found())
}

/// A JSON answer that must not be cached (it may carry a secret).
fn json<T: Serialize>(status: StatusCode, body: &T) -> HttpResponse {
    HttpResponseBuilder::new(status)
        .insert_header((CACHE_CONTROL, "no-store"))
        .json(body)
}

/// A JSON answer with the resource's version as its `ETag`.
fn versioned<T: Serialize>(status: StatusCode, version: i64, body: &T) -> HttpResponse {
    HttpResponseBuilder::new(status)
        .insert_header((ETAG, format!("\"{version}\"")))
        .insert_header((CACHE_CONTROL, "no-store"))
        .json(body)
}
