//! [`WebhookService`]: the webhook use cases and one step of the delivery worker.

use std::hash::{BuildHasher, Hasher};
use std::sync::Arc;
use std::time::Duration;

use tessera_domain::{
    retry_delay, DeliveryId, PageRequest, Permission, Triggers, WebhookId, WebhookSecret,
    WebhookUrl, RETRY_HORIZON,
};

use super::require;
use crate::model::Page;
use crate::ports::Clock;
use crate::usecases::Principal;
use crate::webhooks::{
    AttemptFailure, CreatedWebhook, Delivery, DueDelivery, TransportError, Webhook, WebhookCrypto,
    WebhookStore, WebhookTransport, WebhookUseCases,
};
use crate::{AppError, AppResult};

/// How the worker paces deliveries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DeliverySettings {
    /// The first retry's nominal wait; doubled per attempt (docs/api.md).
    pub retry_base: Duration,
    /// How long a claim keeps other replicas off a delivery: longer than the
    /// transport's timeout, so a live attempt is never duplicated.
    pub lease: Duration,
    /// Deliveries claimed at once by one worker thread.
    pub batch: u32,
}

impl Default for DeliverySettings {
    fn default() -> Self {
        Self {
            retry_base: Duration::from_secs(5),
            lease: Duration::from_secs(60),
            batch: 4,
        }
    }
}

/// The adapters webhooks run on.
#[derive(Clone)]
pub struct WebhookPorts {
    pub clock: Arc<dyn Clock>,
    pub store: Arc<dyn WebhookStore>,
    pub crypto: Arc<dyn WebhookCrypto>,
    pub transport: Arc<dyn WebhookTransport>,
}

impl std::fmt::Debug for WebhookPorts {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WebhookPorts").finish_non_exhaustive()
    }
}

/// The webhook use cases and the delivery worker's work.
#[derive(Debug, Clone)]
pub struct WebhookService {
    ports: WebhookPorts,
    settings: DeliverySettings,
}

impl WebhookService {
    pub fn new(ports: WebhookPorts, settings: DeliverySettings) -> Self {
        Self { ports, settings }
    }

    /// One round of the worker: claims due deliveries and attempts each. Returns
    /// how many were attempted (0: nothing was due). Never holds a database
    /// transaction while it waits for a receiver.
    pub fn deliver_due(&self) -> AppResult<usize> {
        let claimed = self
            .ports
            .store
            .claim_due(self.settings.batch, self.settings.lease)?;
        for due in &claimed {
            self.attempt(due)?;
        }
        Ok(claimed.len())
    }

    /// Pending deliveries over every tenant, for the metrics gauge.
    pub fn pending_deliveries(&self) -> AppResult<u64> {
        Ok(self.ports.store.pending_deliveries()?)
    }

    fn attempt(&self, due: &DueDelivery) -> AppResult<()> {
        let store = &self.ports.store;
        let outcome = self.send(due);
        match outcome {
            Ok(status) if (200..300).contains(&status) => {
                store.record_delivered(&due.tenant_id, &due.id, status)?;
            }
            other => {
                let failure = match other {
                    Ok(status) => AttemptFailure {
                        status: Some(status),
                        error: format!("the receiver answered {status}"),
                    },
                    Err(error) => AttemptFailure {
                        status: None,
                        error: error.to_string(),
                    },
                };
                tracing::info!(
                    delivery = %due.id,
                    attempts = due.attempts,
                    error = %failure.error,
                    "webhook delivery failed"
                );
                let retry_in = retry_delay(due.attempts, self.settings.retry_base, jitter());
                store.record_failure(&due.tenant_id, &due.id, &failure, retry_in, RETRY_HORIZON)?;
            }
        }
        Ok(())
    }

    fn send(&self, due: &DueDelivery) -> Result<u16, TransportError> {
        let url = WebhookUrl::parse(&due.url)
            .map_err(|error| TransportError::Failed(format!("stored URL is invalid: {error}")))?;
        let secret = self.ports.crypto.open(&due.sealed_secret).ok_or_else(|| {
            TransportError::Failed(
                "the webhook's secret cannot be opened with this master key".to_owned(),
            )
        })?;
        let timestamp = self.ports.clock.now().timestamp();
        let signature = self
            .ports
            .crypto
            .signature_header(&secret, timestamp, &due.payload);
        self.ports.transport.post(&url, &due.payload, &signature)
    }
}

/// A number in `[0, 1)` that differs per call: std's `RandomState` is keyed from
/// the OS's randomness, which is plenty to spread retries (nothing secret here).
fn jitter() -> f64 {
    let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
    hasher.write_u8(0);
    (hasher.finish() >> 11) as f64 / (1u64 << 53) as f64
}

impl WebhookUseCases for WebhookService {
    fn create_webhook(
        &self,
        caller: &Principal,
        url: WebhookUrl,
        triggers: Triggers,
    ) -> AppResult<CreatedWebhook> {
        require(caller, Permission::ManageWebhooks)?;
        let webhook = Webhook {
            tenant_id: caller.tenant_id.clone(),
            id: WebhookId::generate(),
            url,
            triggers,
            created_at: self.ports.clock.now(),
        };
        let secret = WebhookSecret::generate();
        let sealed = self.ports.crypto.seal(&secret);
        self.ports.store.insert_webhook(&webhook, &sealed)?;
        Ok(CreatedWebhook { webhook, secret })
    }

    fn list_webhooks(&self, caller: &Principal) -> AppResult<Vec<Webhook>> {
        require(caller, Permission::ManageWebhooks)?;
        Ok(self.ports.store.list_webhooks(&caller.tenant_id)?)
    }

    fn delete_webhook(&self, caller: &Principal, id: &WebhookId) -> AppResult<()> {
        require(caller, Permission::ManageWebhooks)?;
        let now = self.ports.clock.now();
        Ok(self
            .ports
            .store
            .delete_webhook(&caller.tenant_id, id, now)?)
    }

    fn list_deliveries(
        &self,
        caller: &Principal,
        webhook: &WebhookId,
        page: PageRequest,
    ) -> AppResult<Page<Delivery>> {
        require(caller, Permission::ManageWebhooks)?;
        Ok(self
            .ports
            .store
            .list_deliveries(&caller.tenant_id, webhook, page)?)
    }

    fn retry_delivery(
        &self,
        caller: &Principal,
        webhook: &WebhookId,
        delivery: &DeliveryId,
    ) -> AppResult<()> {
        require(caller, Permission::ManageWebhooks)?;
        self.ports
            .store
            .retry_delivery(&caller.tenant_id, webhook, delivery)
            .map_err(AppError::from)
    }
}
