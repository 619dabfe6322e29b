//! Webhooks: the use cases an admin calls, the data they exchange, and the
//! outbound ports the delivery worker drives (the store with its outbox, the
//! sealing and signing of secrets, and the HTTP transport). Implemented by
//! [`crate::WebhookService`].

use std::time::Duration;

use chrono::{DateTime, Utc};
#[cfg(any(test, feature = "mocks"))]
use mockall::automock;
use tessera_domain::{
    DeliveryId, DeliveryState, PageRequest, TenantId, Triggers, WebhookId, WebhookSecret,
    WebhookUrl,
};
use thiserror::Error;

use crate::model::Page;
use crate::ports::StoreResult;
use crate::usecases::Principal;
use crate::AppResult;

/// A webhook as stored and listed (never with its secret).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Webhook {
    pub tenant_id: TenantId,
    pub id: WebhookId,
    pub url: WebhookUrl,
    pub triggers: Triggers,
    pub created_at: DateTime<Utc>,
}

/// A new webhook with its secret, which is shown this once.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CreatedWebhook {
    pub webhook: Webhook,
    pub secret: WebhookSecret,
}

/// A webhook secret sealed by [`WebhookCrypto::seal`]: what the database holds.
#[derive(Clone, PartialEq, Eq)]
pub struct SealedSecret(pub Vec<u8>);

impl std::fmt::Debug for SealedSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "SealedSecret({} bytes)", self.0.len())
    }
}

/// One delivery of one event to one webhook, as listed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Delivery {
    pub id: DeliveryId,
    pub webhook_id: WebhookId,
    pub event_id: String,
    pub event_type: String,
    pub state: DeliveryState,
    pub attempts: u32,
    pub last_status: Option<u16>,
    pub last_error: Option<String>,
    pub next_attempt_at: Option<DateTime<Utc>>,
    pub delivered_at: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
}

/// A delivery the worker has claimed: leased to this replica until the lease
/// ends, with what it takes to send it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DueDelivery {
    pub tenant_id: TenantId,
    pub id: DeliveryId,
    /// As stored; parsed again before sending (a bad row fails the delivery).
    pub url: String,
    /// The event JSON: the exact bytes sent and signed.
    pub payload: String,
    /// Attempts so far, this one included.
    pub attempts: u32,
    pub sealed_secret: SealedSecret,
}

/// The webhook use cases (admin).
#[cfg_attr(any(test, feature = "mocks"), automock)]
pub trait WebhookUseCases: Send + Sync {
    fn create_webhook(
        &self,
        caller: &Principal,
        url: WebhookUrl,
        triggers: Triggers,
    ) -> AppResult<CreatedWebhook>;
    /// The tenant's live webhooks, oldest first.
    fn list_webhooks(&self, caller: &Principal) -> AppResult<Vec<Webhook>>;
    /// Deletes the webhook; its pending deliveries are marked `failed`.
    fn delete_webhook(&self, caller: &Principal, id: &WebhookId) -> AppResult<()>;
    /// The webhook's deliveries, newest first.
    fn list_deliveries(
        &self,
        caller: &Principal,
        webhook: &WebhookId,
        page: PageRequest,
    ) -> AppResult<Page<Delivery>>;
    /// Makes the delivery pending and due now, whatever its state.
    fn retry_delivery(
        &self,
        caller: &Principal,
        webhook: &WebhookId,
        delivery: &DeliveryId,
    ) -> AppResult<()>;
}

/// Webhooks and their outbox. Every method taking a tenant scopes to it.
#[cfg_attr(any(test, feature = "mocks"), automock)]
pub trait WebhookStore: Send + Sync {
    fn insert_webhook(&self, webhook: &Webhook, secret: &SealedSecret) -> StoreResult<()>;
    /// Live webhooks, oldest first.
    fn list_webhooks(&self, tenant: &TenantId) -> StoreResult<Vec<Webhook>>;
    /// Marks the webhook deleted and fails its pending deliveries, in one
    /// transaction. MUST return `NotFound` when the tenant has no such live webhook.
    fn delete_webhook(
        &self,
        tenant: &TenantId,
        id: &WebhookId,
        now: DateTime<Utc>,
    ) -> StoreResult<()>;
    /// Newest first. MUST return `NotFound` when the tenant has no such live webhook.
    fn list_deliveries(
        &self,
        tenant: &TenantId,
        webhook: &WebhookId,
        page: PageRequest,
    ) -> StoreResult<Page<Delivery>>;
    /// Sets the delivery `pending`, due at once. MUST return `NotFound` when the
    /// tenant's live webhook has no such delivery.
    fn retry_delivery(
        &self,
        tenant: &TenantId,
        webhook: &WebhookId,
        delivery: &DeliveryId,
    ) -> StoreResult<()>;
    /// Claims up to `limit` due pending deliveries of live webhooks, of every
    /// tenant, skipping rows another replica holds (`FOR UPDATE SKIP LOCKED`), and
    /// in the same statement counts the attempt and pushes `next_attempt_at` out
    /// by `lease`, so no other replica claims them while this one tries, and a
    /// replica that dies mid-attempt only delays them by the lease.
    fn claim_due(&self, limit: u32, lease: Duration) -> StoreResult<Vec<DueDelivery>>;
    /// Marks a pending delivery delivered with the receiver's status.
    fn record_delivered(&self, tenant: &TenantId, id: &DeliveryId, status: u16) -> StoreResult<()>;
    /// Records a failed attempt: due again after `retry_in`, or `failed` when that
    /// falls beyond `horizon` after the delivery was created.
    fn record_failure(
        &self,
        tenant: &TenantId,
        id: &DeliveryId,
        failure: &AttemptFailure,
        retry_in: Duration,
        horizon: Duration,
    ) -> StoreResult<()>;
    /// How many deliveries are pending, over every tenant (the metrics gauge).
    fn pending_deliveries(&self) -> StoreResult<u64>;
}

/// Why an attempt did not deliver.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AttemptFailure {
    /// The receiver's answer, when there was one (a non-2xx status).
    pub status: Option<u16>,
    /// For people; never holds a secret.
    pub error: String,
}

/// Sealing webhook secrets for storage and signing payloads with them, under keys
/// derived from the master key (outside the database).
#[cfg_attr(any(test, feature = "mocks"), automock)]
pub trait WebhookCrypto: Send + Sync {
    /// Authenticated encryption under a fresh nonce.
    fn seal(&self, secret: &WebhookSecret) -> SealedSecret;
    /// `None` when `sealed` was not sealed by this key (or was altered).
    fn open(&self, sealed: &SealedSecret) -> Option<WebhookSecret>;
    /// The `Tessera-Signature` header value:
    /// `t=<timestamp>,v1=<hex HMAC-SHA-256(secret, "<timestamp>.<body>")>`.
    fn signature_header(&self, secret: &WebhookSecret, timestamp: i64, body: &str) -> String;
}

/// Why the transport did not get an answer.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum TransportError {
    /// The URL resolves to an address deliveries may not go to (SSRF guard);
    /// nothing was sent.
    #[error("refused: {0}")]
    Refused(String),
    /// Resolution, connection, timeout or protocol failure.
    #[error("{0}")]
    Failed(String),
}

/// Posts a delivery: `Content-Type: application/json`, the signature header, a
/// bounded timeout, no redirects followed. Returns the receiver's status.
#[cfg_attr(any(test, feature = "mocks"), automock)]
pub trait WebhookTransport: Send + Sync {
    fn post(&self, url: &WebhookUrl, body: &str, signature: &str) -> Result<u16, TransportError>;
}
