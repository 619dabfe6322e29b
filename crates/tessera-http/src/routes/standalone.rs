use actix_web::http::StatusCode;
use actix_web::{web, HttpResponse};
use tessera_app::model::StandaloneUse;
use tessera_app::usecases::{NewStandalone, QueuedUse};
use tessera_app::AppError;
use tessera_domain::PageRequest;

use super::json;
use crate::auth::{confirm, resolve, Caller, PresentedKey};
use crate::dto::common::{page_bounds, PageQuery};
use crate::dto::standalone::{
    CreateStandaloneRequest, CreatedStandaloneResponse, DeletedStandaloneResponse, StandaloneList,
    StandaloneResponse, StandaloneTicketRequest, UsedStandaloneResponse,
};
use crate::error::{ApiError, ErrorBody};
use crate::extract::JsonBody;
use crate::state::{run, AppState};

/// Creates a standalone ticket (issuer).
#[utoipa::path(post, path = "/v1/tickets", tag = "standalone tickets",
    request_body = CreateStandaloneRequest,
    responses(
        (status = 201, description = "The opaque ticket, shown once", body = CreatedStandaloneResponse),
        (status = 400, description = "`invalid_request`", body = ErrorBody),
        (status = 401, description = "`unauthorized`", body = ErrorBody),
        (status = 403, description = "`forbidden`", body = ErrorBody),
        (status = 409, description = "`max_tickets_reached`: the tenant's live-ticket cap", body = ErrorBody),
        (status = 413, description = "`payload_too_large`", body = ErrorBody),
    ),
    security(("apiKey" = [])))]
pub(crate) async fn create_standalone(
    state: web::Data<AppState>,
    caller: Caller,
    body: JsonBody<CreateStandaloneRequest>,
) -> Result<HttpResponse, ApiError> {
    let new = NewStandalone::try_from(body.into_inner()?)?;
    let token = run(move || state.standalone.create_standalone(&caller.0, new)).await?;
    let body = CreatedStandaloneResponse { ticket: token };
    Ok(json(StatusCode::CREATED, &body))
}

/// Uses a standalone ticket once (redeemer).
#[utoipa::path(post, path = "/v1/tickets/use", tag = "standalone tickets",
    request_body = StandaloneTicketRequest,
    responses(
        (status = 200, description = "Uses left and the payload", body = UsedStandaloneResponse),
        (status = 400, description = "`invalid_request`", body = ErrorBody),
        (status = 401, description = "`unauthorized`", body = ErrorBody),
        (status = 403, description = "`forbidden`", body = ErrorBody),
        (status = 404, description = "`ticket_not_found`: unknown, expired or used up", body = ErrorBody),
    ),
    security(("apiKey" = [])))]
pub(crate) async fn use_standalone(
    state: web::Data<AppState>,
    key: PresentedKey,
    body: JsonBody<StandaloneTicketRequest>,
) -> Result<HttpResponse, ApiError> {
    let presented = body.into_inner();
    if let Some(queue) = state.queued.clone() {
        // A key this process knows: the use is awaited on this worker.
        // A key may have been deleted since memory learnt it: the statement
        // checks it before spending the use, and any other answer waits for the
        // key to be confirmed (a deleted key is `401`, not `404`).
        if let Some(caller) = queue.authenticate_in_memory(&key.0).await {
            let ticket = match presented {
                Ok(body) => body.ticket,
                Err(error) => {
                    confirm(&state, Some(key.0)).await?;
                    return Err(error);
                }
            };
            let used = match queue.use_standalone_queued(caller, ticket).await {
                QueuedUse::Done(Ok(used)) => Ok(used),
                QueuedUse::Done(Err(error)) => {
                    confirm(&state, Some(key.0)).await?;
                    Err(error)
                }
                QueuedUse::Unqueued(_, ticket) => {
                    let state = state.clone();
                    run(move || {
                        let caller = resolve(&state, &key.0)?;
                        Ok(state.standalone.use_standalone(&caller, &ticket))
                    })
                    .await?
                }
            };
            return used_answer(used);
        }
    }
    // One blocking-pool hop: the key (an unknown key is refused before a
    // malformed body is), then the use.
    let used = run(move || {
        let caller = resolve(&state, &key.0)?;
        let presented = match presented {
            Ok(body) => body.ticket,
            Err(error) => return Ok(Err(error)),
        };
        match state.standalone.use_standalone(&caller, &presented) {
            Ok(used) => Ok(Ok(Some(used))),
            Err(AppError::NotFound) => Ok(Ok(None)),
            Err(other) => Err(other),
        }
    })
    .await??;
    used_answer(used.ok_or(AppError::NotFound))
}

/// The standalone use's answer; `NotFound` is Authen's answer for an unknown,
/// expired or used-up ticket.
fn used_answer(used: tessera_app::AppResult<StandaloneUse>) -> Result<HttpResponse, ApiError> {
    match used {
        Ok(used) => Ok(json(StatusCode::OK, &UsedStandaloneResponse::from(used))),
        Err(AppError::NotFound) => Err(ApiError::new(
            StatusCode::NOT_FOUND,
            "ticket_not_found",
            "No live ticket matches: it is unknown, expired or used up.",
        )),
        Err(other) => Err(other.into()),
    }
}

/// Deletes a standalone ticket (issuer).
#[utoipa::path(post, path = "/v1/tickets/delete", tag = "standalone tickets",
    request_body = StandaloneTicketRequest,
    responses(
        (status = 200, description = "`deleted` 1, or 0 with `uses: null` when there was none", body = DeletedStandaloneResponse),
        (status = 400, description = "`invalid_request`", body = ErrorBody),
        (status = 401, description = "`unauthorized`", body = ErrorBody),
        (status = 403, description = "`forbidden`", body = ErrorBody),
    ),
    security(("apiKey" = [])))]
pub(crate) async fn delete_standalone(
    state: web::Data<AppState>,
    caller: Caller,
    body: JsonBody<StandaloneTicketRequest>,
) -> Result<HttpResponse, ApiError> {
    let presented = body.into_inner()?.ticket;
    let outcome = run(move || state.standalone.delete_standalone(&caller.0, &presented)).await?;
    Ok(json(
        StatusCode::OK,
        &DeletedStandaloneResponse::from(outcome),
    ))
}

/// The tenant's live standalone tickets, without secrets (issuer), oldest first.
#[utoipa::path(get, path = "/v1/tickets", tag = "standalone tickets",
    params(PageQuery),
    responses(
        (status = 200, description = "A page of standalone tickets", body = StandaloneList),
        (status = 400, description = "`invalid_request`: bad count or offset", body = ErrorBody),
        (status = 401, description = "`unauthorized`", body = ErrorBody),
        (status = 403, description = "`forbidden`", body = ErrorBody),
    ),
    security(("apiKey" = [])))]
pub(crate) async fn list_standalone(
    state: web::Data<AppState>,
    caller: Caller,
    query: web::Query<PageQuery>,
) -> Result<HttpResponse, ApiError> {
    let page = PageRequest::try_from(&*query)?;
    let found = run(move || state.standalone.list_standalone(&caller.0, page)).await?;
    let (start, end, total) = page_bounds(page, found.items.len(), found.total);
    let body = StandaloneList {
        tickets: found
            .items
            .into_iter()
            .map(StandaloneResponse::from)
            .collect(),
        start,
        end,
        total,
    };
    Ok(json(StatusCode::OK, &body))
}
