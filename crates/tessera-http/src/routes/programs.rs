use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, HttpResponse};
use tessera_domain::{NewProgram, PageRequest, ProgramChanges};

use super::{json, program_id, versioned};
use crate::auth::Caller;
use crate::dto::common::{page_bounds, PageQuery};
use crate::dto::programs::{
    CreateProgramRequest, ProgramList, ProgramResponse, UpdateProgramRequest,
};
use crate::error::{ApiError, ErrorBody};
use crate::extract::{if_match, JsonBody};
use crate::state::{run, AppState};

fn program_response(status: StatusCode, program: &tessera_domain::Program) -> HttpResponse {
    versioned(status, program.version, &ProgramResponse::from(program))
}

/// Creates a program (admin).
#[utoipa::path(post, path = "/v1/programs", tag = "programs",
    request_body = CreateProgramRequest,
    responses(
        (status = 201, description = "The program; `ETag` is its version", body = ProgramResponse),
        (status = 400, description = "`invalid_request`, naming the field", body = ErrorBody),
        (status = 401, description = "`unauthorized`", body = ErrorBody),
        (status = 403, description = "`forbidden`", body = ErrorBody),
        (status = 413, description = "`payload_too_large`", body = ErrorBody),
    ),
    security(("apiKey" = [])))]
pub(crate) async fn create_program(
    state: web::Data<AppState>,
    caller: Caller,
    body: JsonBody<CreateProgramRequest>,
) -> Result<HttpResponse, ApiError> {
    let new = NewProgram::try_from(body.into_inner()?)?;
    let program = run(move || state.programs.create_program(&caller.0, new)).await?;
    Ok(program_response(StatusCode::CREATED, &program))
}

/// The tenant's programs, oldest first.
#[utoipa::path(get, path = "/v1/programs", tag = "programs",
    params(PageQuery),
    responses(
        (status = 200, description = "A page of programs", body = ProgramList),
        (status = 400, description = "`invalid_request`: bad count or offset", body = ErrorBody),
        (status = 401, description = "`unauthorized`", body = ErrorBody),
        (status = 403, description = "`forbidden`", body = ErrorBody),
    ),
    security(("apiKey" = [])))]
pub(crate) async fn list_programs(
    state: web::Data<AppState>,
    caller: Caller,
    query: web::Query<PageQuery>,
) -> Result<HttpResponse, ApiError> {
    let page = PageRequest::try_from(&*query)?;
    let found = run(move || state.programs.list_programs(&caller.0, page)).await?;
    let (start, end, total) = page_bounds(page, found.items.len(), found.total);
    let body = ProgramList {
        programs: found.items.iter().map(ProgramResponse::from).collect(),
        start,
        end,
        total,
    };
    Ok(json(StatusCode::OK, &body))
}

/// One program.
#[utoipa::path(get, path = "/v1/programs/{program_id}", tag = "programs",
    params(("program_id" = String, Path, description = "`prg_...`")),
    responses(
        (status = 200, description = "The program; `ETag` is its version", body = ProgramResponse),
        (status = 401, description = "`unauthorized`", body = ErrorBody),
        (status = 403, description = "`forbidden`", body = ErrorBody),
        (status = 404, description = "`not_found`", body = ErrorBody),
    ),
    security(("apiKey" = [])))]
pub(crate) async fn get_program(
    state: web::Data<AppState>,
    caller: Caller,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let id = program_id(&path)?;
    let program = run(move || state.programs.get_program(&caller.0, &id)).await?;
    Ok(program_response(StatusCode::OK, &program))
}

/// Changes some of `maxTickets, maxRedemptions, startTime, endTime, urlPrefix,
/// name` (admin); only the fields given change, `urlPrefix`/`name` `null` clear
/// them. A patch naming no field is refused with `400`. `If-Match: <version>`
/// (`"3"` and `W/"3"` accepted) makes it conditional. Setting `endTime` on a
/// suspended program reactivates it.
#[utoipa::path(patch, path = "/v1/programs/{program_id}", tag = "programs",
    params(
        ("program_id" = String, Path, description = "`prg_...`"),
        ("If-Match" = Option<String>, Header, description = "The version the change applies to"),
    ),
    request_body = UpdateProgramRequest,
    responses(
        (status = 200, description = "The changed program", body = ProgramResponse),
        (status = 400, description = "`invalid_request`", body = ErrorBody),
        (status = 401, description = "`unauthorized`", body = ErrorBody),
        (status = 403, description = "`forbidden`", body = ErrorBody),
        (status = 404, description = "`not_found`", body = ErrorBody),
        (status = 409, description = "`version_conflict`", body = ErrorBody),
    ),
    security(("apiKey" = [])))]
pub(crate) async fn update_program(
    req: HttpRequest,
    state: web::Data<AppState>,
    caller: Caller,
    path: web::Path<String>,
    body: JsonBody<UpdateProgramRequest>,
) -> Result<HttpResponse, ApiError> {
    let id = program_id(&path)?;
    let expected = if_match(&req)?;
    let changes = ProgramChanges::try_from(body.into_inner()?)?;
    let program = run(move || {
        state
            .programs
            .update_program(&caller.0, &id, changes, expected)
    })
    .await?;
    Ok(program_response(StatusCode::OK, &program))
}

/// Suspends the program (admin): its tickets then fail as if expired.
#[utoipa::path(post, path = "/v1/programs/{program_id}/suspend", tag = "programs",
    params(("program_id" = String, Path, description = "`prg_...`")),
    responses(
        (status = 200, description = "The program, `state: suspended`", body = ProgramResponse),
        (status = 401, description = "`unauthorized`", body = ErrorBody),
        (status = 403, description = "`forbidden`", body = ErrorBody),
        (status = 404, description = "`not_found`", body = ErrorBody),
    ),
    security(("apiKey" = [])))]
pub(crate) async fn suspend_program(
    state: web::Data<AppState>,
    caller: Caller,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let id = program_id(&path)?;
    let program = run(move || state.programs.suspend_program(&caller.0, &id)).await?;
    Ok(program_response(StatusCode::OK, &program))
}

/// Deletes the program and its tickets, irreversibly (admin).
#[utoipa::path(delete, path = "/v1/programs/{program_id}", tag = "programs",
    params(("program_id" = String, Path, description = "`prg_...`")),
    responses(
        (status = 204, description = "Deleted"),
        (status = 401, description = "`unauthorized`", body = ErrorBody),
        (status = 403, description = "`forbidden`", body = ErrorBody),
        (status = 404, description = "`not_found`", body = ErrorBody),
    ),
    security(("apiKey" = [])))]
pub(crate) async fn delete_program(
    state: web::Data<AppState>,
    caller: Caller,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let id = program_id(&path)?;
    run(move || state.programs.delete_program(&caller.0, &id)).await?;
    Ok(HttpResponse::NoContent().finish())
}
