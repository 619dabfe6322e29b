use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use tessera_app::webhooks::{CreatedWebhook, Delivery, Webhook};
use tessera_domain::{Triggers, WebhookSecret, WebhookUrl};
use utoipa::ToSchema;

use super::common::send_secret;
use crate::error::ApiError;
use crate::time;

/// `POST /v1/webhooks` (admin).
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct CreateWebhookRequest {
    /// An absolute `http` or `https` URL, without credentials or fragment.
    #[schema(example = "https://hooks.example.com/tessera")]
    pub url: String,
    /// Event types to send, at least one (see the event types in docs/api.md).
    #[schema(example = json!(["ticket.redeemed", "ticket.redemption_failed"]))]
    pub triggers: Vec<String>,
}

impl TryFrom<CreateWebhookRequest> for (WebhookUrl, Triggers) {
    type Error = ApiError;

    fn try_from(body: CreateWebhookRequest) -> Result<Self, ApiError> {
        Ok((
            WebhookUrl::parse(&body.url)?,
            Triggers::parse(&body.triggers)?,
        ))
    }
}

/// A webhook, without its secret.
#[derive(Debug, Clone, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct WebhookResponse {
    #[schema(example = "whk_1pBVYWGtVktUCSn8uVP6")]
    pub id: String,
    pub url: String,
    pub triggers: Vec<&'static str>,
    #[serde(serialize_with = "time::serialize")]
    #[schema(value_type = String, format = DateTime)]
    pub created_at: DateTime<Utc>,
}

impl From<&Webhook> for WebhookResponse {
    fn from(webhook: &Webhook) -> Self {
        Self {
            id: webhook.id.to_string(),
            url: webhook.url.as_str().to_owned(),
            triggers: webhook
                .triggers
                .kinds()
                .iter()
                .map(|k| k.as_str())
                .collect(),
            created_at: webhook.created_at,
        }
    }
}

/// A new webhook with its signing `secret`, shown this once.
#[derive(Debug, Clone, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct CreatedWebhookResponse {
    pub id: String,
    pub url: String,
    pub triggers: Vec<&'static str>,
    /// Verifies `Tessera-Signature` (docs/api.md). Never shown again.
    #[serde(serialize_with = "send_secret")]
    #[schema(value_type = String, example = "whsec_...")]
    pub secret: WebhookSecret,
    #[serde(serialize_with = "time::serialize")]
    #[schema(value_type = String, format = DateTime)]
    pub created_at: DateTime<Utc>,
}

impl From<&CreatedWebhook> for CreatedWebhookResponse {
    fn from(created: &CreatedWebhook) -> Self {
        let listed = WebhookResponse::from(&created.webhook);
        Self {
            id: listed.id,
            url: listed.url,
            triggers: listed.triggers,
            secret: created.secret.clone(),
            created_at: listed.created_at,
        }
    }
}

#[derive(Debug, Clone, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct WebhookList {
    pub webhooks: Vec<WebhookResponse>,
}

/// One delivery of one event to the webhook.
#[derive(Debug, Clone, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct DeliveryResponse {
    #[schema(example = "dlv_1pBVYWGtVktUCSn8uVP6")]
    pub id: String,
    pub event_id: String,
    #[schema(example = "ticket.redeemed")]
    pub event_type: String,
    /// `pending`, `delivered` or `failed`.
    #[schema(example = "pending")]
    pub state: &'static str,
    pub attempts: u32,
    /// The receiver's last HTTP status, if it answered.
    pub last_status: Option<u16>,
    /// Why the last attempt failed (`refused: …` when the SSRF guard stopped it).
    pub last_error: Option<String>,
    #[serde(serialize_with = "time::serialize_opt")]
    #[schema(value_type = Option<String>, format = DateTime)]
    pub next_attempt_at: Option<DateTime<Utc>>,
    #[serde(serialize_with = "time::serialize_opt")]
    #[schema(value_type = Option<String>, format = DateTime)]
    pub delivered_at: Option<DateTime<Utc>>,
    #[serde(serialize_with = "time::serialize")]
    #[schema(value_type = String, format = DateTime)]
    pub created_at: DateTime<Utc>,
}

impl From<&Delivery> for DeliveryResponse {
    fn from(delivery: &Delivery) -> Self {
        Self {
            id: delivery.id.to_string(),
            event_id: delivery.event_id.clone(),
            event_type: delivery.event_type.clone(),
            state: delivery.state.as_str(),
            attempts: delivery.attempts,
            last_status: delivery.last_status,
            last_error: delivery.last_error.clone(),
            next_attempt_at: delivery.next_attempt_at,
            delivered_at: delivery.delivered_at,
            created_at: delivery.created_at,
        }
    }
}

/// A page of deliveries, newest first.
#[derive(Debug, Clone, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct DeliveryList {
    pub deliveries: Vec<DeliveryResponse>,
    pub start: u64,
    pub end: u64,
    pub total: u64,
}
