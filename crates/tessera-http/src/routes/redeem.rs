use actix_web::http::StatusCode;
use actix_web::{web, HttpResponse};

use super::json;
use crate::auth::OptionalCaller;
use crate::dto::redeem::{RedeemRequestBody, RedeemResponse, ResolvedRedeem};
use crate::error::{ApiError, ErrorBody};
use crate::extract::JsonBody;
use crate::state::{run, AppState};

/// Redeems one use of a code. No key needed; with a key of the program's tenant
/// that may see details, failures carry their reason instead of `invalid_code`.
#[utoipa::path(post, path = "/v1/redeem", tag = "redeem",
    request_body = RedeemRequestBody,
    responses(
        (status = 200, description = "What the ticket grants", body = RedeemResponse),
        (status = 400, description = "`invalid_request`, e.g. no program named", body = ErrorBody),
        (status = 401, description = "`unauthorized`: a key was sent but is unknown", body = ErrorBody),
        (status = 404, description = "`invalid_code` (public callers), or `ticket_not_found`", body = ErrorBody),
        (status = 409, description = "`ticket_exhausted`, `ticket_revoked`, `ticket_disabled`, `ticket_locked`, `email_mismatch`, `program_suspended`, `program_not_started` or `program_ended` (callers with a key of the tenant)", body = ErrorBody),
    ),
    security((), ("apiKey" = [])))]
pub(crate) async fn redeem(
    state: web::Data<AppState>,
    caller: OptionalCaller,
    body: JsonBody<RedeemRequestBody>,
) -> Result<HttpResponse, ApiError> {
    let resolved = ResolvedRedeem::try_from(body.into_inner()?)?;
    let include_program_id = resolved.include_program_id;
    let redemption = run(move || state.redeem.redeem(caller.0, resolved.request)).await?;
    Ok(json(
        StatusCode::OK,
        &RedeemResponse::new(redemption, include_program_id),
    ))
}
