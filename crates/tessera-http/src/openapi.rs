//! The OpenAPI 3 document, generated from the handlers' own annotations and DTO
//! types so it cannot drift from the routes. The server renders it once at
//! startup into [`crate::HttpSettings::openapi_json`], which `/openapi.json`
//! serves.

use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi};

use crate::routes::{
    access, events, import, lifecycle, ops, programs, redeem, standalone, tickets, webhooks,
};

#[derive(Debug, OpenApi)]
#[openapi(
    info(
        title = "Tessera",
        description = "Limited-use tickets as a service. Bodies are JSON with camelCase names. \
Errors are `{\"error\": {\"code\", \"message\"}}`. Times are accepted as RFC 3339 strings or Unix \
epoch milliseconds (number or numeric string) and returned as RFC 3339 UTC with milliseconds. \
Unknown JSON fields are refused with `400 invalid_request`; bodies over the server's limit \
(default 64 KiB) get `413 payload_too_large`; a `Content-Type` other than JSON gets \
`415 unsupported_media_type` (a body without one is read as JSON); an unknown route answers \
`404 not_found` and a known route with another method `405 method_not_allowed`; a database \
outage answers `503 unavailable` with `Retry-After`; too many failed redemptions answer \
`429 too_many_attempts` with `Retry-After`."
    ),
    paths(
        ops::healthz,
        ops::readyz,
        ops::openapi_json,
        ops::jwks,
        access::create_tenant,
        access::create_api_key,
        access::list_api_keys,
        access::delete_api_key,
        programs::create_program,
        programs::list_programs,
        programs::get_program,
        programs::update_program,
        programs::suspend_program,
        programs::delete_program,
        tickets::issue_ticket,
        tickets::issue_batch,
        import::import_tickets,
        tickets::list_tickets,
        tickets::get_ticket,
        tickets::update_ticket,
        tickets::revoke_ticket,
        redeem::redeem,
        lifecycle::validate,
        lifecycle::create_hold,
        lifecycle::get_hold,
        lifecycle::confirm_hold,
        lifecycle::release_hold,
        lifecycle::rollback,
        standalone::create_standalone,
        standalone::use_standalone,
        standalone::delete_standalone,
        standalone::list_standalone,
        webhooks::create_webhook,
        webhooks::list_webhooks,
        webhooks::delete_webhook,
        webhooks::list_deliveries,
        webhooks::retry_delivery,
        events::list_events,
        events::program_stats,
        events::metrics,
    ),
    components(schemas(crate::error::ErrorBody, crate::time::TimeInput)),
    modifiers(&SecuritySchemes),
    tags(
        (name = "programs", description = "Programs (NTP instances): the policy tickets are issued and redeemed under"),
        (name = "tickets", description = "Tickets of a program"),
        (name = "redeem", description = "Redeeming a code"),
        (name = "standalone tickets", description = "Authen-compatible opaque tickets"),
        (name = "tenants", description = "Tenants (operator)"),
        (name = "api keys", description = "API keys of a tenant"),
        (name = "webhooks", description = "Signed pushes of events, and their deliveries"),
        (name = "events", description = "The event history and the stats computed from it"),
        (name = "operations", description = "Health, the token-verification keys and this document"),
    )
)]
pub struct ApiDoc;

struct SecuritySchemes;

impl Modify for SecuritySchemes {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "apiKey",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .description(Some("A tenant's API key: `Authorization: Bearer tsk_...`"))
                    .build(),
            ),
        );
        components.add_security_scheme(
            "operatorToken",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .description(Some("The server's TESSERA_OPERATOR_TOKEN"))
                    .build(),
            ),
        );
    }
}

/// The document as JSON text. Renders it on every call: call it once.
pub fn openapi_document() -> String {
    ApiDoc::openapi()
        .to_json()
        .unwrap_or_else(|error| format!("{{\"error\": \"{error}\"}}"))
}
