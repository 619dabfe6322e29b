//! The redemption lifecycle: validate a code, hold a use while a payment runs,
//! confirm or release the hold, roll a redemption back.

use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, HttpResponse};
use tessera_domain::{HoldId, RedemptionId, RollbackReason};

use super::json;
use crate::auth::{Caller, OptionalCaller};
use crate::client_addr::client_address;
use crate::dto::lifecycle::{
    HoldRequestBody, HoldResponse, RollbackRequestBody, RollbackResponse, ValidationResponse,
};
use crate::dto::redeem::{RedeemRequestBody, RedeemResponse, ResolvedRedeem};
use crate::error::{ApiError, ErrorBody};
use crate::extract::{parse_json, JsonBody};
use crate::state::{run, AppState};

fn hold_id(raw: &str) -> Result<HoldId, ApiError> {
    HoldId::parse(raw).map_err(|_| ApiError::not_found())
}

/// Checks every rule of `/v1/redeem` at this instant without consuming a use: no
/// payload, no access token, no event. Failures answer, and count, as `/v1/redeem`'s.
#[utoipa::path(post, path = "/v1/redeem/validate", tag = "redeem",
    request_body = RedeemRequestBody,
    responses(
        (status = 200, description = "The code would redeem now", body = ValidationResponse),
        (status = 400, description = "`invalid_request`", body = ErrorBody),
        (status = 404, description = "`invalid_code` or `ticket_not_found`", body = ErrorBody),
        (status = 409, description = "a redeem failure reason (callers with a key of the tenant)", body = ErrorBody),
        (status = 429, description = "`too_many_attempts`", body = ErrorBody),
    ),
    security((), ("apiKey" = [])))]
pub(crate) async fn validate(
    req: HttpRequest,
    state: web::Data<AppState>,
    caller: OptionalCaller,
    body: JsonBody<RedeemRequestBody>,
) -> Result<HttpResponse, ApiError> {
    let mut resolved = ResolvedRedeem::try_from(body.into_inner()?)?;
    resolved.request.client = client_address(&req, &state.settings.trusted_proxies);
    let include = resolved.include_program_id;
    let valid = run(move || state.lifecycle.validate(caller.0, resolved.request)).await?;
    Ok(json(
        StatusCode::OK,
        &ValidationResponse::new(valid, include),
    ))
}

/// Reserves one use of a code for `ttl` seconds (redeemer): redemptions plus live
/// holds never exceed the ticket's limit. An expired hold frees its use by itself.
#[utoipa::path(post, path = "/v1/holds", tag = "redeem",
    request_body = HoldRequestBody,
    responses(
        (status = 201, description = "The hold", body = HoldResponse),
        (status = 400, description = "`invalid_request`, e.g. `ttl` out of 1..3600", body = ErrorBody),
        (status = 401, description = "`unauthorized`", body = ErrorBody),
        (status = 403, description = "`forbidden`", body = ErrorBody),
        (status = 404, description = "`invalid_code` or `ticket_not_found`", body = ErrorBody),
        (status = 409, description = "a redeem failure reason; `ticket_exhausted` when every use is redeemed or held", body = ErrorBody),
        (status = 429, description = "`too_many_attempts`", body = ErrorBody),
    ),
    security(("apiKey" = [])))]
pub(crate) async fn create_hold(
    req: HttpRequest,
    state: web::Data<AppState>,
    caller: Caller,
    body: JsonBody<HoldRequestBody>,
) -> Result<HttpResponse, ApiError> {
    let (mut resolved, ttl) = <(ResolvedRedeem, _)>::try_from(body.into_inner()?)?;
    resolved.request.client = client_address(&req, &state.settings.trusted_proxies);
    let hold = run(move || state.lifecycle.hold(&caller.0, resolved.request, ttl)).await?;
    Ok(json(StatusCode::CREATED, &HoldResponse::from(hold)))
}

/// The hold, with `state` as of now (redeemer, admin).
#[utoipa::path(get, path = "/v1/holds/{hold_id}", tag = "redeem",
    params(("hold_id" = String, Path, description = "`hld_...`")),
    responses(
        (status = 200, description = "The hold", body = HoldResponse),
        (status = 401, description = "`unauthorized`", body = ErrorBody),
        (status = 403, description = "`forbidden`", body = ErrorBody),
        (status = 404, description = "`not_found`", body = ErrorBody),
    ),
    security(("apiKey" = [])))]
pub(crate) async fn get_hold(
    state: web::Data<AppState>,
    caller: Caller,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let id = hold_id(&path)?;
    let hold = run(move || state.lifecycle.get_hold(&caller.0, &id)).await?;
    Ok(json(StatusCode::OK, &HoldResponse::from(hold)))
}

/// Turns a live hold into a redemption (redeemer): the `/v1/redeem` answer.
#[utoipa::path(post, path = "/v1/holds/{hold_id}/confirm", tag = "redeem",
    params(("hold_id" = String, Path, description = "`hld_...`")),
    responses(
        (status = 200, description = "The redemption, with its access token", body = RedeemResponse),
        (status = 401, description = "`unauthorized`", body = ErrorBody),
        (status = 403, description = "`forbidden`", body = ErrorBody),
        (status = 404, description = "`not_found`", body = ErrorBody),
        (status = 409, description = "`hold_not_active` (expired, released or confirmed), `ticket_revoked`, `ticket_disabled` or `program_suspended`", body = ErrorBody),
    ),
    security(("apiKey" = [])))]
pub(crate) async fn confirm_hold(
    state: web::Data<AppState>,
    caller: Caller,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let id = hold_id(&path)?;
    let redemption = run(move || state.lifecycle.confirm_hold(&caller.0, &id)).await?;
    Ok(json(
        StatusCode::OK,
        &RedeemResponse::new(redemption, false),
    ))
}

/// Frees a held use (redeemer). An expired or released hold → `204` too.
#[utoipa::path(delete, path = "/v1/holds/{hold_id}", tag = "redeem",
    params(("hold_id" = String, Path, description = "`hld_...`")),
    responses(
        (status = 204, description = "The use is free again"),
        (status = 401, description = "`unauthorized`", body = ErrorBody),
        (status = 403, description = "`forbidden`", body = ErrorBody),
        (status = 404, description = "`not_found`", body = ErrorBody),
        (status = 409, description = "`hold_not_active`: the hold was confirmed", body = ErrorBody),
    ),
    security(("apiKey" = [])))]
pub(crate) async fn release_hold(
    state: web::Data<AppState>,
    caller: Caller,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let id = hold_id(&path)?;
    run(move || state.lifecycle.release_hold(&caller.0, &id)).await?;
    Ok(HttpResponse::NoContent().finish())
}

/// Gives a redemption's use back, once (redeemer, admin). The body is optional.
#[utoipa::path(post, path = "/v1/redemptions/{redemption_id}/rollback", tag = "redeem",
    params(("redemption_id" = String, Path, description = "`rdm_...`")),
    request_body(content = Option<RollbackRequestBody>),
    responses(
        (status = 200, description = "The use was given back", body = RollbackResponse),
        (status = 400, description = "`invalid_request`, e.g. `reason` over 200 characters", body = ErrorBody),
        (status = 401, description = "`unauthorized`", body = ErrorBody),
        (status = 403, description = "`forbidden`", body = ErrorBody),
        (status = 404, description = "`not_found`", body = ErrorBody),
        (status = 409, description = "`already_rolled_back` or `rollback_not_allowed`", body = ErrorBody),
    ),
    security(("apiKey" = [])))]
pub(crate) async fn rollback(
    state: web::Data<AppState>,
    caller: Caller,
    path: web::Path<String>,
    body: web::Bytes,
) -> Result<HttpResponse, ApiError> {
    let id = RedemptionId::parse(&path).map_err(|_| ApiError::not_found())?;
    let request: RollbackRequestBody = if body.iter().all(u8::is_ascii_whitespace) {
        RollbackRequestBody::default()
    } else {
        parse_json(&body)?
    };
    let reason = Option::<RollbackReason>::try_from(request)?;
    let done = run(move || state.lifecycle.rollback(&caller.0, &id, reason)).await?;
    Ok(json(StatusCode::OK, &RollbackResponse::from(done)))
}
