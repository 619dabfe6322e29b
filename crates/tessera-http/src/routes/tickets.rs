use actix_web::http::header::{
    ContentDisposition, DispositionParam, DispositionType, CACHE_CONTROL, CONTENT_TYPE,
};
use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, HttpResponse};
use tessera_app::model::TicketChanges;
use tessera_app::usecases::{BatchRequest, IssueRequest};
use tessera_domain::PageRequest;

use super::{json, program_id, ticket_id, versioned};
use crate::auth::Caller;
use crate::batch::{self, CsvBody, Message};
use crate::dto::common::{page_bounds, PageQuery};
use crate::dto::tickets::{
    IssueBatchRequest, IssueTicketRequest, IssuedTicketResponse, TicketList, TicketResponse,
    UpdateTicketRequest,
};
use crate::error::{ApiError, ErrorBody};
use crate::extract::{if_match, JsonBody};
use crate::state::{run, AppState};

/// Issues one ticket (issuer). The `code` (and, with `signed: true`, the
/// `signedCode`) is shown in this answer only.
#[utoipa::path(post, path = "/v1/programs/{program_id}/tickets", tag = "tickets",
    params(("program_id" = String, Path, description = "`prg_...`")),
    request_body = IssueTicketRequest,
    responses(
        (status = 201, description = "The ticket with its code", body = IssuedTicketResponse),
        (status = 400, description = "`invalid_request`, naming the field", body = ErrorBody),
        (status = 401, description = "`unauthorized`", body = ErrorBody),
        (status = 403, description = "`forbidden`", body = ErrorBody),
        (status = 404, description = "`not_found`", body = ErrorBody),
        (status = 409, description = "`program_not_active`, `max_tickets_reached`, `subject_has_active_ticket` or `code_taken` (a chosen `code` already in the tenant)", body = ErrorBody),
        (status = 413, description = "`payload_too_large`: payload over 16 KiB", body = ErrorBody),
    ),
    security(("apiKey" = [])))]
pub(crate) async fn issue_ticket(
    state: web::Data<AppState>,
    caller: Caller,
    path: web::Path<String>,
    body: JsonBody<IssueTicketRequest>,
) -> Result<HttpResponse, ApiError> {
    let program = program_id(&path)?;
    let request = IssueRequest::try_from(body.into_inner()?)?;
    let issued = run(move || state.tickets.issue_ticket(&caller.0, &program, request)).await?;
    Ok(json(
        StatusCode::CREATED,
        &IssuedTicketResponse::from(&issued),
    ))
}

/// Issues `count` tickets at once (issuer), all or nothing against `maxTickets`,
/// streamed as `text/csv`: the line `ticketId,code`, then one `<ticketId>,<code>`
/// line per ticket (lines end with `\n`). Codes are shown in this answer only.
/// Errors found before any ticket exists (unknown program, role, program not
/// active, cap reached) are JSON errors; a failure after the stream started cuts
/// the response short (no final chunk), so a complete response is all the
/// tickets. Tickets already streamed then exist; the rest of the reservation is
/// given back.
#[utoipa::path(post, path = "/v1/programs/{program_id}/tickets/batch", tag = "tickets",
    params(("program_id" = String, Path, description = "`prg_...`")),
    request_body = IssueBatchRequest,
    responses(
        (status = 200, description = "The tickets with their codes, as CSV", content_type = "text/csv", body = String,
            headers(("Content-Disposition" = String, description = "`attachment; filename=\"<programId>-tickets.csv\"`")),
            example = json!("ticketId,code\ntkt_3xK9mQ2vTn8pLw4R,7KQ2XM\n")),
        (status = 400, description = "`invalid_request`, naming the field (e.g. `count` outside 1..1000000)", body = ErrorBody),
        (status = 401, description = "`unauthorized`", body = ErrorBody),
        (status = 403, description = "`forbidden`", body = ErrorBody),
        (status = 404, description = "`not_found`", body = ErrorBody),
        (status = 409, description = "`program_not_active` or `max_tickets_reached` (the whole batch does not fit; nothing was issued)", body = ErrorBody),
        (status = 413, description = "`payload_too_large`: payload over 16 KiB", body = ErrorBody),
    ),
    security(("apiKey" = [])))]
pub(crate) async fn issue_batch(
    state: web::Data<AppState>,
    caller: Caller,
    path: web::Path<String>,
    body: JsonBody<IssueBatchRequest>,
) -> Result<HttpResponse, ApiError> {
    let program = program_id(&path)?;
    let request = BatchRequest::try_from(body.into_inner()?)?;
    let mut rx = {
        let program = program.clone();
        batch::start(program.clone(), move |sink| {
            state
                .tickets
                .issue_batch(&caller.0, &program, request, sink)
        })
    };
    // Nothing is answered before the reservation is known to hold.
    let first = match rx.recv().await {
        Some(Message::Failed(error)) => return Err(error.into()),
        Some(first) => first,
        None => return Err(ApiError::internal("the batch ended without an outcome")),
    };
    let disposition = ContentDisposition {
        disposition: DispositionType::Attachment,
        parameters: vec![DispositionParam::Filename(format!("{program}-tickets.csv"))],
    };
    Ok(HttpResponse::Ok()
        .insert_header((CONTENT_TYPE, "text/csv"))
        .insert_header(disposition)
        .insert_header((CACHE_CONTROL, "no-store"))
        .body(CsvBody::new(program, first, rx)))
}

/// The program's tickets, oldest first.
#[utoipa::path(get, path = "/v1/programs/{program_id}/tickets", tag = "tickets",
    params(("program_id" = String, Path, description = "`prg_...`"), PageQuery),
    responses(
        (status = 200, description = "A page of tickets", body = TicketList),
        (status = 400, description = "`invalid_request`: bad count or offset", body = ErrorBody),
        (status = 401, description = "`unauthorized`", body = ErrorBody),
        (status = 403, description = "`forbidden`", body = ErrorBody),
        (status = 404, description = "`not_found`", body = ErrorBody),
    ),
    security(("apiKey" = [])))]
pub(crate) async fn list_tickets(
    state: web::Data<AppState>,
    caller: Caller,
    path: web::Path<String>,
    query: web::Query<PageQuery>,
) -> Result<HttpResponse, ApiError> {
    let program = program_id(&path)?;
    let page = PageRequest::try_from(&*query)?;
    let found = run(move || state.tickets.list_tickets(&caller.0, &program, page)).await?;
    let (start, end, total) = page_bounds(page, found.items.len(), found.total);
    let body = TicketList {
        tickets: found.items.iter().map(TicketResponse::from).collect(),
        start,
        end,
        total,
    };
    Ok(json(StatusCode::OK, &body))
}

/// One ticket (never its code).
#[utoipa::path(get, path = "/v1/tickets/{ticket_id}", tag = "tickets",
    params(("ticket_id" = String, Path, description = "`tkt_...`")),
    responses(
        (status = 200, description = "The ticket; `ETag` is its version", body = TicketResponse),
        (status = 401, description = "`unauthorized`", body = ErrorBody),
        (status = 403, description = "`forbidden`", body = ErrorBody),
        (status = 404, description = "`not_found`", body = ErrorBody),
    ),
    security(("apiKey" = [])))]
pub(crate) async fn get_ticket(
    state: web::Data<AppState>,
    caller: Caller,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let id = ticket_id(&path)?;
    let view = run(move || state.tickets.get_ticket(&caller.0, &id)).await?;
    Ok(versioned(
        StatusCode::OK,
        view.ticket.version,
        &TicketResponse::from(&view),
    ))
}

/// Unlocks / re-enables (`active`) or disables a ticket, and/or refills it with a
/// new `maxRedemptions` of its own (admin), in one versioned change; `If-Match`
/// honoured.
#[utoipa::path(patch, path = "/v1/tickets/{ticket_id}", tag = "tickets",
    params(
        ("ticket_id" = String, Path, description = "`tkt_...`"),
        ("If-Match" = Option<String>, Header, description = "The version the change applies to"),
    ),
    request_body = UpdateTicketRequest,
    responses(
        (status = 200, description = "The ticket", body = TicketResponse),
        (status = 400, description = "`invalid_request`", body = ErrorBody),
        (status = 401, description = "`unauthorized`", body = ErrorBody),
        (status = 403, description = "`forbidden`", body = ErrorBody),
        (status = 404, description = "`not_found`", body = ErrorBody),
        (status = 409, description = "`version_conflict`", body = ErrorBody),
    ),
    security(("apiKey" = [])))]
pub(crate) async fn update_ticket(
    req: HttpRequest,
    state: web::Data<AppState>,
    caller: Caller,
    path: web::Path<String>,
    body: JsonBody<UpdateTicketRequest>,
) -> Result<HttpResponse, ApiError> {
    let id = ticket_id(&path)?;
    let expected = if_match(&req)?;
    let changes = TicketChanges::try_from(body.into_inner()?)?;
    let view = run(move || {
        state
            .tickets
            .update_ticket(&caller.0, &id, changes, expected)
    })
    .await?;
    Ok(versioned(
        StatusCode::OK,
        view.ticket.version,
        &TicketResponse::from(&view),
    ))
}

/// Revokes a ticket at once (issuer).
#[utoipa::path(delete, path = "/v1/tickets/{ticket_id}", tag = "tickets",
    params(("ticket_id" = String, Path, description = "`tkt_...`")),
    responses(
        (status = 204, description = "Revoked"),
        (status = 401, description = "`unauthorized`", body = ErrorBody),
        (status = 403, description = "`forbidden`", body = ErrorBody),
        (status = 404, description = "`not_found`", body = ErrorBody),
    ),
    security(("apiKey" = [])))]
pub(crate) async fn revoke_ticket(
    state: web::Data<AppState>,
    caller: Caller,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let id = ticket_id(&path)?;
    run(move || state.tickets.revoke_ticket(&caller.0, &id)).await?;
    Ok(HttpResponse::NoContent().finish())
}
