use actix_web::http::header::CONTENT_TYPE;
use actix_web::http::StatusCode;
use actix_web::{web, HttpResponse};
use tessera_app::events::EventQuery;

use super::{json, program_id};
use crate::auth::Caller;
use crate::dto::events::{EventList, EventsQuery, StatsQuery, StatsResponse};
use crate::error::{ApiError, ErrorBody};
use crate::state::{run, AppState};

/// The tenant's events, oldest first (admin). Follow the feed by passing the
/// last event id you received as `after`; an event appears once every
/// transaction that began writing before it has ended, so a page never skips one
/// that commits later.
#[utoipa::path(get, path = "/v1/events", tag = "events",
    params(EventsQuery),
    responses(
        (status = 200, description = "A page of events", body = EventList),
        (status = 400, description = "`invalid_request`: bad `limit`, `type`, `programId`, or an `after` that is no event of this tenant (e.g. past retention)", body = ErrorBody),
        (status = 401, description = "`unauthorized`", body = ErrorBody),
        (status = 403, description = "`forbidden`", body = ErrorBody),
    ),
    security(("apiKey" = [])))]
pub(crate) async fn list_events(
    state: web::Data<AppState>,
    caller: Caller,
    query: web::Query<EventsQuery>,
) -> Result<HttpResponse, ApiError> {
    let query = EventQuery::try_from(&*query)?;
    let page = run(move || state.events.list_events(&caller.0, query)).await?;
    Ok(json(StatusCode::OK, &EventList::from(page)))
}

/// A program's issuance, redemption and failure counts, in hour or day buckets
/// (UTC) from its events (admin, issuer).
#[utoipa::path(get, path = "/v1/programs/{program_id}/stats", tag = "events",
    params(("program_id" = String, Path, description = "`prg_...`"), StatsQuery),
    responses(
        (status = 200, description = "Totals and buckets", body = StatsResponse),
        (status = 400, description = "`invalid_request`: bad `from`, `to` or `interval`, or a range too long for it", body = ErrorBody),
        (status = 401, description = "`unauthorized`", body = ErrorBody),
        (status = 403, description = "`forbidden`", body = ErrorBody),
        (status = 404, description = "`not_found`", body = ErrorBody),
    ),
    security(("apiKey" = [])))]
pub(crate) async fn program_stats(
    state: web::Data<AppState>,
    caller: Caller,
    path: web::Path<String>,
    query: web::Query<StatsQuery>,
) -> Result<HttpResponse, ApiError> {
    let program = program_id(&path)?;
    let range = query.range(state.events.now())?;
    let stats = run(move || state.events.program_stats(&caller.0, &program, range)).await?;
    Ok(json(StatusCode::OK, &StatsResponse::from(stats)))
}

/// Prometheus text exposition: request counts and latency by route pattern,
/// redemptions by outcome, database pool, webhook backlog, process CPU and memory.
#[utoipa::path(get, path = "/metrics", tag = "operations",
    responses((status = 200, description = "Prometheus text format 0.0.4", content_type = "text/plain")))]
pub(crate) async fn metrics(state: web::Data<AppState>) -> HttpResponse {
    let body = crate::metrics::render(state.settings.pool_sampler.as_ref());
    HttpResponse::Ok()
        .insert_header((CONTENT_TYPE, "text/plain; version=0.0.4"))
        .body(body)
}
