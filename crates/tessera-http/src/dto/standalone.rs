use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use tessera_app::model::StandaloneUse;
use tessera_app::usecases::{DeleteOutcome, NewStandalone};
use tessera_domain::{Label, PresentedTicket, StandaloneTicket, StandaloneToken, Ttl, Uses};
use utoipa::ToSchema;

use super::common::{payload, send_secret, RawJson};
use crate::error::ApiError;
use crate::time;

/// `POST /v1/tickets`.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct CreateStandaloneRequest {
    /// Seconds ≥ 0; default 60; 0 = never expires.
    pub ttl: Option<i64>,
    /// ≥ 0; default 1; 0 = unlimited.
    pub uses: Option<i64>,
    /// Any JSON, ≤ 16 KiB serialized; returned by `use`.
    #[schema(value_type = Option<Value>)]
    pub payload: Option<serde_json::Value>,
    /// A label (registration tokens).
    pub name: Option<String>,
    /// A JSON object (registration tokens).
    #[schema(value_type = Option<Object>)]
    pub permissions: Option<serde_json::Value>,
}

impl TryFrom<CreateStandaloneRequest> for NewStandalone {
    type Error = ApiError;

    fn try_from(body: CreateStandaloneRequest) -> Result<Self, ApiError> {
        let permissions = match body.permissions {
            None | Some(serde_json::Value::Null) => None,
            Some(object @ serde_json::Value::Object(_)) => Some(object),
            Some(_) => return Err(ApiError::invalid("permissions: must be a JSON object")),
        };
        Ok(NewStandalone {
            ttl: body
                .ttl
                .map(Ttl::try_from)
                .transpose()?
                .unwrap_or(Ttl::DEFAULT),
            uses: body
                .uses
                .map(Uses::try_from)
                .transpose()?
                .unwrap_or(Uses::DEFAULT),
            payload: payload("payload", body.payload)?,
            name: body.name.map(Label::try_from).transpose()?,
            permissions: payload("permissions", permissions)?,
        })
    }
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct CreatedStandaloneResponse {
    /// The opaque ticket: a secret, shown this once.
    #[serde(serialize_with = "send_secret")]
    #[schema(value_type = String)]
    pub ticket: StandaloneToken,
}

/// `POST /v1/tickets/use` and `POST /v1/tickets/delete`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct StandaloneTicketRequest {
    #[schema(value_type = String)]
    pub ticket: PresentedTicket,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct UsedStandaloneResponse {
    /// Uses left, or `null` when unlimited.
    pub uses: Option<u32>,
    #[schema(value_type = Option<Value>)]
    pub payload: RawJson,
}

impl From<StandaloneUse> for UsedStandaloneResponse {
    fn from(used: StandaloneUse) -> Self {
        Self {
            uses: used.uses_left.count(),
            payload: RawJson(used.payload),
        }
    }
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct DeletedStandaloneResponse {
    /// Uses the deleted ticket had left; `null` when unlimited or none was deleted.
    pub uses: Option<u32>,
    /// 1, or 0 when there was no such live ticket.
    pub deleted: u32,
}

impl From<DeleteOutcome> for DeletedStandaloneResponse {
    fn from(outcome: DeleteOutcome) -> Self {
        Self {
            uses: outcome.uses,
            deleted: outcome.deleted,
        }
    }
}

/// A live standalone ticket, without its secret.
#[derive(Debug, Clone, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct StandaloneResponse {
    pub id: String,
    pub name: Option<String>,
    #[schema(value_type = Option<Object>)]
    pub permissions: RawJson,
    /// Uses left, or `null` when unlimited.
    pub uses: Option<u32>,
    /// The `uses` it was created with; 0 = unlimited.
    pub total_uses_allowed: u32,
    #[serde(serialize_with = "time::serialize_opt")]
    #[schema(value_type = Option<String>, format = DateTime)]
    pub expires_at: Option<DateTime<Utc>>,
    #[serde(serialize_with = "time::serialize")]
    #[schema(value_type = String, format = DateTime)]
    pub created_at: DateTime<Utc>,
}

impl From<StandaloneTicket> for StandaloneResponse {
    fn from(ticket: StandaloneTicket) -> Self {
        Self {
            id: ticket.id.to_string(),
            name: ticket.name.map(|name| name.as_str().to_owned()),
            permissions: RawJson(ticket.permissions),
            uses: ticket.uses_left,
            total_uses_allowed: ticket.total_uses.limit().unwrap_or(0),
            expires_at: ticket.expires_at,
            created_at: ticket.created_at,
        }
    }
}

/// `GET /v1/tickets`.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct StandaloneList {
    pub tickets: Vec<StandaloneResponse>,
    pub start: u64,
    pub end: u64,
    pub total: u64,
}
