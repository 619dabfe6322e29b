//! [`EventService`]: the events feed, stats and history maintenance over the
//! [`EventStore`] port. Apart from [`crate::Tessera`] so that it plugs in
//! without changing the ports every other use case runs on.

use std::sync::Arc;

use chrono::{DateTime, Duration, DurationRound, Utc};
use tessera_domain::{EventType, Permission, ProgramId};

use crate::events::{
    EventPage, EventQuery, EventStore, EventUseCases, MaintenanceReport, ProgramStats, StatsBucket,
    StatsRange,
};
use crate::ports::{Clock, ProgramStore};
use crate::usecases::Principal;
use crate::{AppError, AppResult};

pub struct EventService {
    clock: Arc<dyn Clock>,
    programs: Arc<dyn ProgramStore>,
    events: Arc<dyn EventStore>,
    retention: Duration,
}

impl std::fmt::Debug for EventService {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EventService")
            .field("retention", &self.retention)
            .finish_non_exhaustive()
    }
}

impl EventService {
    /// Events older than `retention_days` are dropped by [`EventUseCases::maintain`].
    pub fn new(
        clock: Arc<dyn Clock>,
        programs: Arc<dyn ProgramStore>,
        events: Arc<dyn EventStore>,
        retention_days: u32,
    ) -> Self {
        Self {
            clock,
            programs,
            events,
            retention: Duration::days(i64::from(retention_days)),
        }
    }
}

fn require(caller: &Principal, permission: Permission) -> AppResult<()> {
    if caller.role.allows(permission) {
        Ok(())
    } else {
        Err(AppError::Forbidden)
    }
}

impl EventUseCases for EventService {
    fn list_events(&self, caller: &Principal, query: EventQuery) -> AppResult<EventPage> {
        require(caller, Permission::ReadEvents)?;
        self.events
            .list(&caller.tenant_id, &query)
            .map_err(|error| match error {
                // The cursor names no event of this tenant (never existed, another
                // tenant's, or dropped by retention): the request is what is wrong.
                crate::ports::StoreError::NotFound => {
                    AppError::Invalid(tessera_domain::DomainError::new(
                        "after",
                        "is not an event of this tenant (it may be past the retention period)",
                    ))
                }
                other => other.into(),
            })
    }

    fn program_stats(
        &self,
        caller: &Principal,
        program: &ProgramId,
        range: StatsRange,
    ) -> AppResult<ProgramStats> {
        require(caller, Permission::ReadPrograms)?;
        // Another tenant's program answers 404, like one that never existed.
        self.programs.get(&caller.tenant_id, program)?;
        let counts = self.events.stats(&caller.tenant_id, program, &range)?;
        let mut stats = ProgramStats {
            buckets: range
                .bucket_starts()
                .map(|start| StatsBucket {
                    start,
                    ..StatsBucket::default()
                })
                .collect(),
            ..ProgramStats::default()
        };
        let width = range.interval().width();
        for count in counts {
            let Some(bucket) = count
                .bucket
                .duration_trunc(width)
                .ok()
                .and_then(|start| stats.buckets.iter_mut().find(|b| b.start == start))
            else {
                continue;
            };
            match count.kind {
                EventType::TicketIssued
                | EventType::TicketBatchIssued
                | EventType::TicketBatchImported => {
                    bucket.issued += count.count;
                    stats.issued += count.count;
                }
                EventType::TicketRedeemed => {
                    bucket.redeemed += count.count;
                    stats.redeemed += count.count;
                }
                EventType::TicketRedemptionFailed => {
                    bucket.failed += count.count;
                    stats.failed += count.count;
                    let reason = count.reason.unwrap_or_else(|| "unknown".to_owned());
                    *stats.failed_by_reason.entry(reason).or_default() += count.count;
                }
                _ => {}
            }
        }
        Ok(stats)
    }

    fn maintain(&self) -> AppResult<MaintenanceReport> {
        let now = self.clock.now();
        let mut report = MaintenanceReport::default();
        // Next month's partition exists before the first event needs it.
        for at in [now, now + Duration::days(31)] {
            if let Some(name) = self.events.ensure_partition(at)? {
                report.partitions_created.push(name);
            }
        }
        report.partitions_dropped = self.events.drop_partitions_before(now - self.retention)?;
        report.rollup_rows = self.events.roll_up()?;
        Ok(report)
    }

    fn now(&self) -> DateTime<Utc> {
        self.clock.now()
    }
}

#[cfg(test)]
#[path = "events_service_tests.rs"]
mod tests;
