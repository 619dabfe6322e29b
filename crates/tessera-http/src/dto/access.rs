use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use tessera_app::model::{ApiKey, Tenant};
use tessera_app::usecases::{CreatedKey, CreatedTenant};
use tessera_domain::{ApiKeySecret, Label, Role, TenantName};
use utoipa::ToSchema;

use super::common::send_secret;
use crate::error::ApiError;
use crate::time;

/// `POST /v1/tenants` (operator token).
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct CreateTenantRequest {
    pub name: String,
}

impl TryFrom<CreateTenantRequest> for TenantName {
    type Error = ApiError;

    fn try_from(body: CreateTenantRequest) -> Result<Self, ApiError> {
        Ok(TenantName::try_from(body.name)?)
    }
}

/// `POST /v1/api-keys` (admin).
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct CreateApiKeyRequest {
    pub name: String,
    /// `admin`, `issuer` or `redeemer`.
    #[schema(example = "issuer")]
    pub role: String,
}

impl TryFrom<CreateApiKeyRequest> for (Label, Role) {
    type Error = ApiError;

    fn try_from(body: CreateApiKeyRequest) -> Result<Self, ApiError> {
        let name = Label::try_from(body.name)?;
        let role = Role::parse(&body.role)
            .ok_or_else(|| ApiError::invalid("role: must be one of admin, issuer, redeemer"))?;
        Ok((name, role))
    }
}

#[derive(Debug, Clone, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct TenantResponse {
    pub id: String,
    pub name: String,
    #[serde(serialize_with = "time::serialize")]
    #[schema(value_type = String, format = DateTime)]
    pub created_at: DateTime<Utc>,
}

impl From<&Tenant> for TenantResponse {
    fn from(tenant: &Tenant) -> Self {
        Self {
            id: tenant.id.to_string(),
            name: tenant.name.as_str().to_owned(),
            created_at: tenant.created_at,
        }
    }
}

/// An API key without its secret.
#[derive(Debug, Clone, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ApiKeyResponse {
    pub id: String,
    pub name: String,
    #[schema(example = "issuer")]
    pub role: &'static str,
    #[serde(serialize_with = "time::serialize")]
    #[schema(value_type = String, format = DateTime)]
    pub created_at: DateTime<Utc>,
}

impl From<&ApiKey> for ApiKeyResponse {
    fn from(key: &ApiKey) -> Self {
        Self {
            id: key.id.to_string(),
            name: key.name.as_str().to_owned(),
            role: key.role.as_str(),
            created_at: key.created_at,
        }
    }
}

/// A new API key with its secret `key`, shown this once.
#[derive(Debug, Clone, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct CreatedApiKeyResponse {
    pub id: String,
    pub name: String,
    pub role: &'static str,
    /// The secret: send it as `Authorization: Bearer <key>`. Never shown again.
    #[serde(serialize_with = "send_secret")]
    #[schema(value_type = String)]
    pub key: ApiKeySecret,
    #[serde(serialize_with = "time::serialize")]
    #[schema(value_type = String, format = DateTime)]
    pub created_at: DateTime<Utc>,
}

impl From<&CreatedKey> for CreatedApiKeyResponse {
    fn from(created: &CreatedKey) -> Self {
        Self {
            id: created.key.id.to_string(),
            name: created.key.name.as_str().to_owned(),
            role: created.key.role.as_str(),
            key: created.secret.clone(),
            created_at: created.key.created_at,
        }
    }
}

#[derive(Debug, Clone, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ApiKeyList {
    pub api_keys: Vec<ApiKeyResponse>,
}

/// `{"tenant": {...}, "apiKey": {...}}`: the answer of `POST /v1/tenants`, and what
/// `tessera tenant create` prints.
#[derive(Debug, Clone, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct CreatedTenantResponse {
    pub tenant: TenantResponse,
    pub api_key: CreatedApiKeyResponse,
}

impl From<&CreatedTenant> for CreatedTenantResponse {
    fn from(created: &CreatedTenant) -> Self {
        Self {
            tenant: TenantResponse::from(&created.tenant),
            api_key: CreatedApiKeyResponse::from(&created.admin_key),
        }
    }
}

/// The JSON document of a created tenant, identical over HTTP and in the CLI.
pub fn created_tenant_json(created: &CreatedTenant) -> serde_json::Value {
    // Serializing plain strings cannot fail; `Null` would only mask a bug.
    serde_json::to_value(CreatedTenantResponse::from(created)).unwrap_or_default()
}
