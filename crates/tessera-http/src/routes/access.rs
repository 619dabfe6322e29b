use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, HttpResponse};
use tessera_domain::TenantName;

use super::{api_key_id, json};
use crate::auth::{require_operator, Caller};
use crate::dto::access::{
    ApiKeyList, ApiKeyResponse, CreateApiKeyRequest, CreateTenantRequest, CreatedApiKeyResponse,
    CreatedTenantResponse,
};
use crate::error::{ApiError, ErrorBody};
use crate::extract::JsonBody;
use crate::state::{run, AppState};

/// Creates a tenant with a first `admin` key. Needs the operator token; the
/// route answers 404 when the server has none configured.
#[utoipa::path(post, path = "/v1/tenants", tag = "tenants",
    request_body = CreateTenantRequest,
    responses(
        (status = 201, description = "The tenant and its admin key (shown once)", body = CreatedTenantResponse),
        (status = 400, description = "`invalid_request`", body = ErrorBody),
        (status = 401, description = "`unauthorized`: missing or wrong operator token", body = ErrorBody),
        (status = 404, description = "`not_found`: no operator token configured", body = ErrorBody),
    ),
    security(("operatorToken" = [])))]
pub(crate) async fn create_tenant(
    req: HttpRequest,
    state: web::Data<AppState>,
    body: JsonBody<CreateTenantRequest>,
) -> Result<HttpResponse, ApiError> {
    require_operator(&req, &state)?;
    let name = TenantName::try_from(body.into_inner()?)?;
    let created = run(move || state.access.create_tenant(name)).await?;
    Ok(json(
        StatusCode::CREATED,
        &CreatedTenantResponse::from(&created),
    ))
}

/// Creates an API key of the caller's tenant (admin).
#[utoipa::path(post, path = "/v1/api-keys", tag = "api keys",
    request_body = CreateApiKeyRequest,
    responses(
        (status = 201, description = "The key with its secret `key`, shown once", body = CreatedApiKeyResponse),
        (status = 400, description = "`invalid_request`", body = ErrorBody),
        (status = 401, description = "`unauthorized`", body = ErrorBody),
        (status = 403, description = "`forbidden`", body = ErrorBody),
    ),
    security(("apiKey" = [])))]
pub(crate) async fn create_api_key(
    state: web::Data<AppState>,
    caller: Caller,
    body: JsonBody<CreateApiKeyRequest>,
) -> Result<HttpResponse, ApiError> {
    let (name, role) = body.into_inner()?.try_into()?;
    let created = run(move || state.access.create_api_key(&caller.0, name, role)).await?;
    Ok(json(
        StatusCode::CREATED,
        &CreatedApiKeyResponse::from(&created),
    ))
}

/// The tenant's API keys, without secrets (admin).
#[utoipa::path(get, path = "/v1/api-keys", tag = "api keys",
    responses(
        (status = 200, description = "The keys, oldest first", body = ApiKeyList),
        (status = 401, description = "`unauthorized`", body = ErrorBody),
        (status = 403, description = "`forbidden`", body = ErrorBody),
    ),
    security(("apiKey" = [])))]
pub(crate) async fn list_api_keys(
    state: web::Data<AppState>,
    caller: Caller,
) -> Result<HttpResponse, ApiError> {
    let keys = run(move || state.access.list_api_keys(&caller.0)).await?;
    let body = ApiKeyList {
        api_keys: keys.iter().map(ApiKeyResponse::from).collect(),
    };
    Ok(json(StatusCode::OK, &body))
}

/// Deletes an API key; it stops working at once (admin).
#[utoipa::path(delete, path = "/v1/api-keys/{key_id}", tag = "api keys",
    params(("key_id" = String, Path, description = "The key's id, `key_...`")),
    responses(
        (status = 204, description = "Deleted"),
        (status = 401, description = "`unauthorized`", body = ErrorBody),
        (status = 403, description = "`forbidden`", body = ErrorBody),
        (status = 404, description = "`not_found`", body = ErrorBody),
    ),
    security(("apiKey" = [])))]
pub(crate) async fn delete_api_key(
    state: web::Data<AppState>,
    caller: Caller,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let id = api_key_id(&path)?;
    run(move || state.access.delete_api_key(&caller.0, &id)).await?;
    Ok(HttpResponse::NoContent().finish())
}
