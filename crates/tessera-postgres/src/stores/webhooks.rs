//! Webhooks and their outbox. The outbox rows themselves are written by the
//! `events_webhook_outbox` trigger (migration `webhooks`), in the transaction of
//! the change whose event they carry; this file reads and advances them.

use std::collections::BTreeMap;
use std::time::Duration;

use chrono::{DateTime, Utc};
use diesel::sql_types::{Array, BigInt, Bytea, Integer, Nullable, Text, Timestamptz};
use diesel::{sql_query, QueryableByName, RunQueryDsl};
use tessera_app::model::Page;
use tessera_app::ports::{StoreError, StoreResult};
use tessera_app::webhooks::{
    AttemptFailure, Delivery, DueDelivery, SealedSecret, Webhook, WebhookStore,
};
use tessera_domain::{
    DeliveryId, DeliveryState, PageRequest, TenantId, Triggers, WebhookId, WebhookUrl,
};

use super::limit_offset;
use crate::error::{corrupt, Outcome};
use crate::models::{total, Total};
use crate::PgStore;

/// The longest `last_error` kept: a receiver's failure, not its life story.
const MAX_ERROR_LEN: usize = 500;

#[derive(Debug, QueryableByName)]
struct WebhookRow {
    #[diesel(sql_type = Text)]
    tenant_id: String,
    #[diesel(sql_type = Text)]
    id: String,
    #[diesel(sql_type = Text)]
    url: String,
    #[diesel(sql_type = Array<Text>)]
    triggers: Vec<String>,
    #[diesel(sql_type = Timestamptz)]
    created_at: DateTime<Utc>,
}

impl WebhookRow {
    fn into_model(self) -> Outcome<Webhook> {
        Ok(Webhook {
            tenant_id: TenantId::parse(&self.tenant_id).map_err(|e| corrupt("tenant id", e))?,
            id: WebhookId::parse(&self.id).map_err(|e| corrupt("webhook id", e))?,
            url: WebhookUrl::parse(&self.url).map_err(|e| corrupt("webhook url", e))?,
            triggers: Triggers::parse(&self.triggers).map_err(|e| corrupt("triggers", e))?,
            created_at: self.created_at,
        })
    }
}

#[derive(Debug, QueryableByName)]
struct DeliveryRow {
    #[diesel(sql_type = Text)]
    id: String,
    #[diesel(sql_type = Text)]
    webhook_id: String,
    #[diesel(sql_type = Text)]
    event_id: String,
    #[diesel(sql_type = Text)]
    event_type: String,
    #[diesel(sql_type = Text)]
    state: String,
    #[diesel(sql_type = Integer)]
    attempts: i32,
    #[diesel(sql_type = Nullable<Integer>)]
    last_status: Option<i32>,
    #[diesel(sql_type = Nullable<Text>)]
    last_error: Option<String>,
    #[diesel(sql_type = Nullable<Timestamptz>)]
    next_attempt_at: Option<DateTime<Utc>>,
    #[diesel(sql_type = Nullable<Timestamptz>)]
    delivered_at: Option<DateTime<Utc>>,
    #[diesel(sql_type = Timestamptz)]
    created_at: DateTime<Utc>,
}

impl DeliveryRow {
    fn into_model(self) -> Outcome<Delivery> {
        Ok(Delivery {
            id: DeliveryId::parse(&self.id).map_err(|e| corrupt("delivery id", e))?,
            webhook_id: WebhookId::parse(&self.webhook_id).map_err(|e| corrupt("webhook id", e))?,
            event_id: self.event_id,
            event_type: self.event_type,
            state: DeliveryState::parse(&self.state)
                .ok_or_else(|| corrupt("delivery state", &self.state))?,
            attempts: u32::try_from(self.attempts).map_err(|e| corrupt("attempts", e))?,
            last_status: self
                .last_status
                .map(u16::try_from)
                .transpose()
                .map_err(|e| corrupt("last status", e))?,
            last_error: self.last_error,
            next_attempt_at: self.next_attempt_at,
            delivered_at: self.delivered_at,
            created_at: self.created_at,
        })
    }
}

#[derive(Debug, QueryableByName)]
struct DueKey {
    #[diesel(sql_type = Text)]
    tenant_id: String,
    #[diesel(sql_type = Text)]
    id: String,
}

/// Claims those of `ids` that are still due, in one tenant, by one conditional
/// UPDATE: the predicate decides. A replica that claims a row first moves its
/// `next_attempt_at` (the lease); another one's UPDATE of that row waits for the
/// row lock, re-checks `next_attempt_at <= now()` against the moved value and
/// leaves it. The row locks last only while the statement runs.
fn claim_in_tenant(
    conn: &mut diesel::PgConnection,
    tenant: &str,
    ids: &[String],
    lease: Duration,
) -> Outcome<Vec<DueDelivery>> {
    sql_query(
        "UPDATE webhook_deliveries d \
         SET attempts = d.attempts + 1, \
             next_attempt_at = now() + $3 * interval '1 millisecond' \
         FROM webhooks w \
         WHERE d.tenant_id = $1 AND d.id = ANY ($2) \
           AND d.state = 'pending' AND d.next_attempt_at <= now() \
           AND w.tenant_id = d.tenant_id AND w.id = d.webhook_id \
         RETURNING d.tenant_id, d.id, w.url, d.payload::text AS payload, d.attempts, \
                   w.secret_ciphertext",
    )
    .bind::<Text, _>(tenant)
    .bind::<Array<Text>, _>(ids)
    .bind::<BigInt, _>(millis(lease))
    .load::<DueRow>(conn)?
    .into_iter()
    .map(DueRow::into_model)
    .collect()
}

#[derive(Debug, QueryableByName)]
struct DueRow {
    #[diesel(sql_type = Text)]
    tenant_id: String,
    #[diesel(sql_type = Text)]
    id: String,
    #[diesel(sql_type = Text)]
    url: String,
    #[diesel(sql_type = Text)]
    payload: String,
    #[diesel(sql_type = Integer)]
    attempts: i32,
    #[diesel(sql_type = Bytea)]
    secret_ciphertext: Vec<u8>,
}

impl DueRow {
    fn into_model(self) -> Outcome<DueDelivery> {
        Ok(DueDelivery {
            tenant_id: TenantId::parse(&self.tenant_id).map_err(|e| corrupt("tenant id", e))?,
            id: DeliveryId::parse(&self.id).map_err(|e| corrupt("delivery id", e))?,
            url: self.url,
            payload: self.payload,
            attempts: u32::try_from(self.attempts).map_err(|e| corrupt("attempts", e))?,
            sealed_secret: SealedSecret(self.secret_ciphertext),
        })
    }
}

fn millis(duration: Duration) -> i64 {
    i64::try_from(duration.as_millis()).unwrap_or(i64::MAX)
}

/// Whether the tenant has this live webhook.
fn webhook_exists(
    conn: &mut diesel::PgConnection,
    tenant: &TenantId,
    id: &WebhookId,
) -> Outcome<bool> {
    let found = sql_query(
        "SELECT count(*) AS total FROM webhooks \
         WHERE tenant_id = $1 AND id = $2 AND deleted_at IS NULL",
    )
    .bind::<Text, _>(tenant.as_str())
    .bind::<Text, _>(id.as_str())
    .get_result::<Total>(conn)?;
    Ok(found.total > 0)
}

fn truncated(text: &str) -> &str {
    match text.char_indices().nth(MAX_ERROR_LEN) {
        Some((end, _)) => &text[..end],
        None => text,
    }
}

impl WebhookStore for PgStore {
    fn insert_webhook(&self, webhook: &Webhook, secret: &SealedSecret) -> StoreResult<()> {
        let triggers: Vec<&str> = webhook
            .triggers
            .kinds()
            .iter()
            .map(|k| k.as_str())
            .collect();
        self.with_conn(|conn| {
            sql_query(
                "INSERT INTO webhooks (tenant_id, id, url, triggers, secret_ciphertext, created_at) \
                 VALUES ($1, $2, $3, $4, $5, $6)",
            )
            .bind::<Text, _>(webhook.tenant_id.as_str())
            .bind::<Text, _>(webhook.id.as_str())
            .bind::<Text, _>(webhook.url.as_str())
            .bind::<Array<Text>, _>(&triggers)
            .bind::<Bytea, _>(&secret.0)
            .bind::<Timestamptz, _>(webhook.created_at)
            .execute(conn)?;
            Ok(())
        })
    }

    fn list_webhooks(&self, tenant: &TenantId) -> StoreResult<Vec<Webhook>> {
        self.with_conn(|conn| {
            sql_query(
                "SELECT tenant_id, id, url, triggers, created_at FROM webhooks \
                 WHERE tenant_id = $1 AND deleted_at IS NULL ORDER BY created_at, id",
            )
            .bind::<Text, _>(tenant.as_str())
            .load::<WebhookRow>(conn)?
            .into_iter()
            .map(WebhookRow::into_model)
            .collect()
        })
    }

    fn delete_webhook(
        &self,
        tenant: &TenantId,
        id: &WebhookId,
        now: DateTime<Utc>,
    ) -> StoreResult<()> {
        self.in_transaction(|conn| {
            // The conditional UPDATE decides: of two concurrent deletes one wins.
            let deleted = sql_query(
                "UPDATE webhooks SET deleted_at = $3 \
                 WHERE tenant_id = $1 AND id = $2 AND deleted_at IS NULL",
            )
            .bind::<Text, _>(tenant.as_str())
            .bind::<Text, _>(id.as_str())
            .bind::<Timestamptz, _>(now)
            .execute(conn)?;
            if deleted == 0 {
                return Err(StoreError::NotFound.into());
            }
            sql_query(
                "UPDATE webhook_deliveries \
                 SET state = 'failed', next_attempt_at = NULL, last_error = 'webhook deleted' \
                 WHERE tenant_id = $1 AND webhook_id = $2 AND state = 'pending'",
            )
            .bind::<Text, _>(tenant.as_str())
            .bind::<Text, _>(id.as_str())
            .execute(conn)?;
            Ok(())
        })
    }

    fn list_deliveries(
        &self,
        tenant: &TenantId,
        webhook: &WebhookId,
        page: PageRequest,
    ) -> StoreResult<Page<Delivery>> {
        let (limit, offset) = limit_offset(page);
        self.in_transaction(|conn| {
            if !webhook_exists(conn, tenant, webhook)? {
                return Err(StoreError::NotFound.into());
            }
            let rows = sql_query(
                "SELECT id, webhook_id, event_id, event_type, state, attempts, last_status, \
                        last_error, next_attempt_at, delivered_at, created_at \
                 FROM webhook_deliveries WHERE tenant_id = $1 AND webhook_id = $2 \
                 ORDER BY created_at DESC, id DESC LIMIT $3 OFFSET $4",
            )
            .bind::<Text, _>(tenant.as_str())
            .bind::<Text, _>(webhook.as_str())
            .bind::<BigInt, _>(limit)
            .bind::<BigInt, _>(offset)
            .load::<DeliveryRow>(conn)?;
            let count = sql_query(
                "SELECT count(*) AS total FROM webhook_deliveries \
                 WHERE tenant_id = $1 AND webhook_id = $2",
            )
            .bind::<Text, _>(tenant.as_str())
            .bind::<Text, _>(webhook.as_str())
            .get_result::<Total>(conn)?;
            Ok(Page {
                items: rows
                    .into_iter()
                    .map(DeliveryRow::into_model)
                    .collect::<Outcome<_>>()?,
                total: total(count.total),
            })
        })
    }

    fn retry_delivery(
        &self,
        tenant: &TenantId,
        webhook: &WebhookId,
        delivery: &DeliveryId,
    ) -> StoreResult<()> {
        self.with_conn(|conn| {
            let updated = sql_query(
                "UPDATE webhook_deliveries d \
                 SET state = 'pending', next_attempt_at = now(), delivered_at = NULL \
                 FROM webhooks w \
                 WHERE d.tenant_id = $1 AND d.webhook_id = $2 AND d.id = $3 \
                   AND w.tenant_id = d.tenant_id AND w.id = d.webhook_id \
                   AND w.deleted_at IS NULL",
            )
            .bind::<Text, _>(tenant.as_str())
            .bind::<Text, _>(webhook.as_str())
            .bind::<Text, _>(delivery.as_str())
            .execute(conn)?;
            if updated == 0 {
                return Err(StoreError::NotFound.into());
            }
            Ok(())
        })
    }

    fn claim_due(&self, limit: u32, lease: Duration) -> StoreResult<Vec<DueDelivery>> {
        self.with_conn(|conn| {
            // Cross-tenant by nature: one worker serves every tenant, so the
            // candidates are read without a tenant (the webhook_deliveries_pending
            // index) and without a lock: Citus plans no FOR UPDATE across shards.
            let candidates = sql_query(
                "SELECT tenant_id, id FROM webhook_deliveries \
                 WHERE state = 'pending' AND next_attempt_at <= now() \
                 ORDER BY next_attempt_at LIMIT $1",
            )
            .bind::<BigInt, _>(i64::from(limit))
            .load::<DueKey>(conn)?;
            let mut by_tenant: BTreeMap<String, Vec<String>> = BTreeMap::new();
            for key in candidates {
                by_tenant.entry(key.tenant_id).or_default().push(key.id);
            }
            let mut claimed = Vec::new();
            for (tenant, ids) in by_tenant {
                claimed.extend(claim_in_tenant(conn, &tenant, &ids, lease)?);
            }
            Ok(claimed)
        })
    }

    fn record_delivered(&self, tenant: &TenantId, id: &DeliveryId, status: u16) -> StoreResult<()> {
        self.with_conn(|conn| {
            sql_query(
                "UPDATE webhook_deliveries \
                 SET state = 'delivered', delivered_at = now(), next_attempt_at = NULL, \
                     last_status = $3, last_error = NULL \
                 WHERE tenant_id = $1 AND id = $2 AND state = 'pending'",
            )
            .bind::<Text, _>(tenant.as_str())
            .bind::<Text, _>(id.as_str())
            .bind::<Integer, _>(i32::from(status))
            .execute(conn)?;
            Ok(())
        })
    }

    fn record_failure(
        &self,
        tenant: &TenantId,
        id: &DeliveryId,
        failure: &AttemptFailure,
        retry_in: Duration,
        horizon: Duration,
    ) -> StoreResult<()> {
        self.with_conn(|conn| {
            // Past the horizon the delivery fails for good; otherwise it is due
            // again after the back-off (which also ends this replica's lease).
            // Two conditional statements whose predicates exclude each other,
            // rather than one with `CASE WHEN now() …`: Citus refuses non-immutable
            // functions inside CASE. "now + retry > created_at + horizon" is asked
            // as `created_at < cutoff`, the cutoff computed from now() alone: Citus
            // refuses STABLE arithmetic (timestamptz + interval) on a column in an
            // UPDATE, but evaluates a column-free now() expression itself. The
            // database's clock stays the one clock, as for the claim's lease.
            let retry = "now() + $5 * interval '1 millisecond'";
            let cutoff = "now() + ($5 - $6) * interval '1 millisecond'";
            let statements = [
                format!(
                    "UPDATE webhook_deliveries \
                     SET last_status = $3, last_error = $4, state = 'failed', next_attempt_at = NULL \
                     WHERE tenant_id = $1 AND id = $2 AND state = 'pending' AND created_at < {cutoff}"
                ),
                format!(
                    "UPDATE webhook_deliveries \
                     SET last_status = $3, last_error = $4, next_attempt_at = {retry} \
                     WHERE tenant_id = $1 AND id = $2 AND state = 'pending' AND created_at >= {cutoff}"
                ),
            ];
            for statement in statements {
                let updated = sql_query(statement)
                    .bind::<Text, _>(tenant.as_str())
                    .bind::<Text, _>(id.as_str())
                    .bind::<Nullable<Integer>, _>(failure.status.map(i32::from))
                    .bind::<Text, _>(truncated(&failure.error))
                    .bind::<BigInt, _>(millis(retry_in))
                    .bind::<BigInt, _>(millis(horizon))
                    .execute(conn)?;
                if updated > 0 {
                    break;
                }
            }
            Ok(())
        })
    }

    fn pending_deliveries(&self) -> StoreResult<u64> {
        self.with_conn(|conn| {
            // Cross-tenant on purpose (a process-wide gauge); an index-only count
            // over the partial webhook_deliveries_pending index.
            let count = sql_query(
                "SELECT count(*) AS total FROM webhook_deliveries WHERE state = 'pending'",
            )
            .get_result::<Total>(conn)?;
            Ok(total(count.total))
        })
    }
}
