use std::sync::Arc;

use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, HttpResponse};

use super::json;
use crate::auth::{confirm, resolve, OptionalPresentedKey};
use crate::client_addr::client_address;
use crate::dto::redeem::{RedeemRequestBody, RedeemResponse, ResolvedRedeem};
use crate::error::{ApiError, ErrorBody};
use crate::extract::JsonBody;
use crate::state::{run, AppState};
use tessera_app::usecases::{
    Principal, QueuedRedemption, QueuedUseCases, RedeemRequest, Redemption,
};
use tessera_domain::PresentedApiKey;

/// Redeems one use of a code (or of a `signedCode`, as issued). No key needed;
/// with a key of the program's tenant that may see details, failures carry their
/// reason instead of `invalid_code`. Failed attempts are throttled per client
/// address (the peer, or from `X-Forwarded-For` when the peer is a trusted proxy)
/// and, for attempts that could be a code of it, per program: past the client's
/// limit → `429 too_many_attempts` with `Retry-After`, and the attempt is not
/// evaluated; past the program's, public attempts wait their turn (3 a second) and
/// get `429` only when that queue is full. The answer carries an access token (JWT,
/// EdDSA) verifiable with `/.well-known/jwks.json`.
#[utoipa::path(post, path = "/v1/redeem", tag = "redeem",
    request_body = RedeemRequestBody,
    responses(
        (status = 200, description = "What the ticket grants, with an access token", body = RedeemResponse),
        (status = 400, description = "`invalid_request`, e.g. no program named", body = ErrorBody),
        (status = 401, description = "`unauthorized`: a key was sent but is unknown", body = ErrorBody),
        (status = 404, description = "`invalid_code` (public callers, and any malformed program or tenant id), or `ticket_not_found`", body = ErrorBody),
        (status = 409, description = "`ticket_exhausted`, `ticket_revoked`, `ticket_disabled`, `ticket_locked`, `email_mismatch`, `program_suspended`, `program_not_started` or `program_ended` (callers with a key of the tenant)", body = ErrorBody),
        (status = 429, description = "`too_many_attempts`: too many failed redemptions from this client or for this program; the attempt was not evaluated", body = ErrorBody,
            headers(("Retry-After" = u32, description = "Seconds to wait before retrying"))),
    ),
    security((), ("apiKey" = [])))]
pub(crate) async fn redeem(
    req: HttpRequest,
    state: web::Data<AppState>,
    key: OptionalPresentedKey,
    body: JsonBody<RedeemRequestBody>,
) -> Result<HttpResponse, ApiError> {
    let client = client_address(&req, &state.settings.trusted_proxies);
    let resolved = body.into_inner().and_then(ResolvedRedeem::try_from);
    if let Some(queue) = state.queued.clone() {
        // Anonymous, or with a key this process knows: awaited on this worker.
        let caller = match &key.0 {
            None => Some(None),
            Some(key) => queue.authenticate_in_memory(key).await.map(Some),
        };
        if let Some(caller) = caller {
            let mut resolved = match resolved {
                Ok(resolved) => resolved,
                Err(error) => {
                    confirm(&state, key.0).await?;
                    return Err(error);
                }
            };
            resolved.request.client = client;
            let include_program_id = resolved.include_program_id;
            let redemption = redeem_queued(&state, queue, key.0, caller, resolved.request).await?;
            return Ok(json(
                StatusCode::OK,
                &RedeemResponse::new(redemption, include_program_id),
            ));
        }
    }
    // One blocking-pool hop: the key (as before, an unknown key is refused before
    // a malformed body is), then the redemption.
    let (redemption, include_program_id) = run(move || {
        let caller = key.0.map(|key| resolve(&state, &key)).transpose()?;
        let mut resolved = match resolved {
            Ok(resolved) => resolved,
            Err(error) => return Ok(Err(error)),
        };
        resolved.request.client = client;
        let include_program_id = resolved.include_program_id;
        Ok(Ok((
            state.redeem.redeem(caller, resolved.request)?,
            include_program_id,
        )))
    })
    .await??;
    Ok(json(
        StatusCode::OK,
        &RedeemResponse::new(redemption, include_program_id),
    ))
}

/// A redemption through the store's queue, awaited on this worker: no
/// blocking-pool thread waits for the batch. A refusal (or an attempt the queue
/// cannot take) finishes on the blocking pool, where the database may be read.
/// A key taken from memory may have been deleted since: the statement checks it
/// before it spends a use, and every other answer waits for the key to be
/// confirmed (`resolve`), so a deleted key is `401`, never a reason.
async fn redeem_queued(
    state: &web::Data<AppState>,
    queue: Arc<dyn QueuedUseCases>,
    presented: Option<PresentedApiKey>,
    caller: Option<Principal>,
    request: RedeemRequest,
) -> Result<Redemption, ApiError> {
    match queue.clone().redeem_queued(caller, request).await {
        QueuedRedemption::Done(Ok(redemption)) => Ok(redemption),
        QueuedRedemption::Done(Err(error)) => {
            confirm(state, presented).await?;
            Err(error.into())
        }
        QueuedRedemption::Refused(_, request) => {
            let state = state.clone();
            run(move || queue.redeem_refused(confirmed(&state, presented)?, request)).await
        }
        QueuedRedemption::Unqueued(_, request) => {
            let state = state.clone();
            run(move || state.redeem.redeem(confirmed(&state, presented)?, request)).await
        }
    }
}

/// The caller a presented key names, confirmed by the access store (on the
/// blocking pool): `None` for an anonymous request.
fn confirmed(
    state: &AppState,
    presented: Option<PresentedApiKey>,
) -> tessera_app::AppResult<Option<Principal>> {
    presented.map(|key| resolve(state, &key)).transpose()
}
