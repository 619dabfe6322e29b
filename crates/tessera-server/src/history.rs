//! Wiring for the event history and the metrics: the events use cases over the
//! store, the periodic maintenance thread (partitions ahead, retention, stats
//! rollups) that every replica runs (the SQL serialises them), and the
//! redemption-outcome counter as a decorator of the redemption store, where the
//! real failure reason is known even for public callers (who see `invalid_code`).

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};

use tessera_app::events::EventUseCases;
use tessera_app::events_service::EventService;
use tessera_app::model::{Grant, RedemptionAttempt, SharedFailure};
use tessera_app::ports::{Clock, Later, RedemptionStore, StoreResult};
use tessera_domain::{ProgramId, RedemptionFailure};
use tessera_postgres::PgStore;

use crate::settings::Settings;

/// Counts each evaluated redemption by outcome, then answers as the store did.
pub(crate) struct MeteredRedemptions(pub Arc<dyn RedemptionStore>);

impl RedemptionStore for MeteredRedemptions {
    fn redeem(&self, attempt: &RedemptionAttempt) -> StoreResult<Result<Grant, RedemptionFailure>> {
        let outcome = self.0.redeem(attempt);
        if let Ok(result) = &outcome {
            tessera_http::metrics::record_redemption(result.as_ref().map(|_| ()).map_err(|f| *f));
        }
        outcome
    }

    /// An equal-time probe is not a redemption: not counted.
    fn probe(
        &self,
        program: &ProgramId,
        now: DateTime<Utc>,
        shared: Option<SharedFailure>,
    ) -> StoreResult<()> {
        self.0.probe(program, now, shared)
    }

    /// A success is counted when it is known; a refusal is counted (with its
    /// reason) by `classify_refused`, which finishes it.
    fn redeem_later(
        &self,
        attempt: &RedemptionAttempt,
        caller_key: Option<tessera_app::model::CallerKey>,
    ) -> Option<Later<Option<Grant>>> {
        let queued = self.0.redeem_later(attempt, caller_key)?;
        Some(Box::pin(async move {
            let outcome = queued.await;
            if let Ok(Some(_)) = &outcome {
                tessera_http::metrics::record_redemption(Ok(()));
            }
            outcome
        }))
    }

    fn classify_refused(
        &self,
        attempt: &RedemptionAttempt,
    ) -> StoreResult<Result<Grant, RedemptionFailure>> {
        let outcome = self.0.classify_refused(attempt);
        if let Ok(result) = &outcome {
            tessera_http::metrics::record_redemption(result.as_ref().map(|_| ()).map_err(|f| *f));
        }
        outcome
    }

    fn probe_later(&self, program: &ProgramId, now: DateTime<Utc>) -> Option<Later<()>> {
        self.0.probe_later(program, now)
    }

    fn probe_refused(
        &self,
        program: &ProgramId,
        now: DateTime<Utc>,
        shared: Option<SharedFailure>,
    ) -> StoreResult<()> {
        self.0.probe_refused(program, now, shared)
    }
}

pub(crate) fn event_service(
    settings: &Settings,
    clock: Arc<dyn Clock>,
    store: Arc<PgStore>,
) -> Arc<EventService> {
    Arc::new(EventService::new(
        clock,
        store.clone(),
        store,
        settings.event_retention_days,
    ))
}

/// One maintenance round, logged; a failure is logged and retried next round.
pub(crate) fn maintain_once(events: &dyn EventUseCases) {
    match events.maintain() {
        Ok(report) => {
            if !report.partitions_created.is_empty() || !report.partitions_dropped.is_empty() {
                tracing::info!(
                    created = ?report.partitions_created,
                    dropped = ?report.partitions_dropped,
                    "event partitions maintained"
                );
            }
            tracing::debug!(rollup_rows = report.rollup_rows, "event stats rolled up");
        }
        Err(error) => tracing::warn!(%error, "event maintenance failed; retrying next round"),
    }
}

/// Runs [`maintain_once`] now and then every `every`, on a thread of its own so a
/// slow round never holds up a request.
pub(crate) fn spawn_maintenance(events: Arc<EventService>, every: Duration) {
    let spawned = std::thread::Builder::new()
        .name("tessera-maintenance".to_owned())
        .spawn(move || loop {
            maintain_once(events.as_ref());
            std::thread::sleep(every);
        });
    if let Err(error) = spawned {
        tracing::error!(%error, "cannot start the event maintenance thread");
    }
}
