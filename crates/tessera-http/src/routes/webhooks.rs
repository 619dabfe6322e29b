//! `/v1/webhooks`: subscriptions to events, and their deliveries (admin).

use actix_web::http::StatusCode;
use actix_web::{web, HttpResponse};
use tessera_domain::{DeliveryId, PageRequest, WebhookId};

use super::json;
use crate::auth::Caller;
use crate::dto::common::{page_bounds, PageQuery, StatusBody};
use crate::dto::webhooks::{
    CreateWebhookRequest, CreatedWebhookResponse, DeliveryList, DeliveryResponse, WebhookList,
    WebhookResponse,
};
use crate::error::{ApiError, ErrorBody};
use crate::extract::JsonBody;
use crate::state::{run, AppState};

// A malformed id cannot name anything that exists: 404, without a lookup.
fn webhook_id(raw: &str) -> Result<WebhookId, ApiError> {
    WebhookId::parse(raw).map_err(|_| ApiError::not_found())
}

fn delivery_id(raw: &str) -> Result<DeliveryId, ApiError> {
    DeliveryId::parse(raw).map_err(|_| ApiError::not_found())
}

/// Subscribes a URL to event types (admin). The answer holds the signing secret,
/// shown this once.
#[utoipa::path(post, path = "/v1/webhooks", tag = "webhooks",
    request_body = CreateWebhookRequest,
    responses(
        (status = 201, description = "The webhook and its `secret` (shown once)", body = CreatedWebhookResponse),
        (status = 400, description = "`invalid_request`: a bad `url` or `triggers`", body = ErrorBody),
        (status = 401, description = "`unauthorized`", body = ErrorBody),
        (status = 403, description = "`forbidden`", body = ErrorBody),
    ),
    security(("apiKey" = [])))]
pub(crate) async fn create_webhook(
    state: web::Data<AppState>,
    caller: Caller,
    body: JsonBody<CreateWebhookRequest>,
) -> Result<HttpResponse, ApiError> {
    let (url, triggers) = body.into_inner()?.try_into()?;
    let created = run(move || state.webhooks.create_webhook(&caller.0, url, triggers)).await?;
    Ok(json(
        StatusCode::CREATED,
        &CreatedWebhookResponse::from(&created),
    ))
}

/// The tenant's webhooks, oldest first, without secrets (admin).
#[utoipa::path(get, path = "/v1/webhooks", tag = "webhooks",
    responses(
        (status = 200, description = "The webhooks", body = WebhookList),
        (status = 401, description = "`unauthorized`", body = ErrorBody),
        (status = 403, description = "`forbidden`", body = ErrorBody),
    ),
    security(("apiKey" = [])))]
pub(crate) async fn list_webhooks(
    state: web::Data<AppState>,
    caller: Caller,
) -> Result<HttpResponse, ApiError> {
    let webhooks = run(move || state.webhooks.list_webhooks(&caller.0)).await?;
    let body = WebhookList {
        webhooks: webhooks.iter().map(WebhookResponse::from).collect(),
    };
    Ok(json(StatusCode::OK, &body))
}

/// Deletes a webhook: nothing more is sent to it, and its pending deliveries are
/// marked `failed` (admin).
#[utoipa::path(delete, path = "/v1/webhooks/{webhook_id}", tag = "webhooks",
    params(("webhook_id" = String, Path, description = "`whk_...`")),
    responses(
        (status = 204, description = "Deleted"),
        (status = 401, description = "`unauthorized`", body = ErrorBody),
        (status = 403, description = "`forbidden`", body = ErrorBody),
        (status = 404, description = "`not_found`", body = ErrorBody),
    ),
    security(("apiKey" = [])))]
pub(crate) async fn delete_webhook(
    state: web::Data<AppState>,
    caller: Caller,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let id = webhook_id(&path)?;
    run(move || state.webhooks.delete_webhook(&caller.0, &id)).await?;
    Ok(HttpResponse::NoContent().finish())
}

/// The webhook's deliveries, newest first (admin).
#[utoipa::path(get, path = "/v1/webhooks/{webhook_id}/deliveries", tag = "webhooks",
    params(("webhook_id" = String, Path, description = "`whk_...`"), PageQuery),
    responses(
        (status = 200, description = "A page of deliveries", body = DeliveryList),
        (status = 400, description = "`invalid_request`: bad `count` or `offset`", body = ErrorBody),
        (status = 401, description = "`unauthorized`", body = ErrorBody),
        (status = 403, description = "`forbidden`", body = ErrorBody),
        (status = 404, description = "`not_found`", body = ErrorBody),
    ),
    security(("apiKey" = [])))]
pub(crate) async fn list_deliveries(
    state: web::Data<AppState>,
    caller: Caller,
    path: web::Path<String>,
    query: web::Query<PageQuery>,
) -> Result<HttpResponse, ApiError> {
    let id = webhook_id(&path)?;
    let page = PageRequest::try_from(&*query)?;
    let found = run(move || state.webhooks.list_deliveries(&caller.0, &id, page)).await?;
    let (start, end, total) = page_bounds(page, found.items.len(), found.total);
    let body = DeliveryList {
        deliveries: found.items.iter().map(DeliveryResponse::from).collect(),
        start,
        end,
        total,
    };
    Ok(json(StatusCode::OK, &body))
}

/// Attempts a delivery again at once, whatever its state: a failed one becomes
/// pending again, a delivered one is delivered again (admin).
#[utoipa::path(post, path = "/v1/webhooks/{webhook_id}/deliveries/{delivery_id}/retry",
    tag = "webhooks",
    params(
        ("webhook_id" = String, Path, description = "`whk_...`"),
        ("delivery_id" = String, Path, description = "`dlv_...`"),
    ),
    responses(
        (status = 202, description = "Due now", body = StatusBody),
        (status = 401, description = "`unauthorized`", body = ErrorBody),
        (status = 403, description = "`forbidden`", body = ErrorBody),
        (status = 404, description = "`not_found`", body = ErrorBody),
    ),
    security(("apiKey" = [])))]
pub(crate) async fn retry_delivery(
    state: web::Data<AppState>,
    caller: Caller,
    path: web::Path<(String, String)>,
) -> Result<HttpResponse, ApiError> {
    let (webhook, delivery) = path.into_inner();
    let webhook = webhook_id(&webhook)?;
    let delivery = delivery_id(&delivery)?;
    run(move || {
        state
            .webhooks
            .retry_delivery(&caller.0, &webhook, &delivery)
    })
    .await?;
    Ok(json(
        StatusCode::ACCEPTED,
        &StatusBody { status: "pending" },
    ))
}
