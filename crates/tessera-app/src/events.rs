//! The event history as integrators read it: the events feed, per-program stats
//! computed from the events, and the maintenance that keeps the history's time
//! partitions (created ahead, dropped past retention) and its stats rollups.
//! Types, the outbound port and the inbound use cases live here; the
//! implementation is [`crate::events_service::EventService`].

use chrono::{DateTime, Duration, DurationRound, Utc};
#[cfg(any(test, feature = "mocks"))]
use mockall::automock;
use tessera_domain::{DomainError, EventId, EventType, ProgramId, TenantId, TicketId};

use crate::ports::StoreResult;
use crate::usecases::Principal;
use crate::AppResult;

/// One recorded event, as the feed returns it.
#[derive(Debug, Clone, PartialEq)]
pub struct EventRecord {
    pub id: EventId,
    pub kind: EventType,
    pub created_at: DateTime<Utc>,
    pub program_id: Option<ProgramId>,
    pub ticket_id: Option<TicketId>,
    pub data: serde_json::Value,
}

/// How many events one page holds: 1..=1000, default 100.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EventLimit(u32);

impl EventLimit {
    pub const DEFAULT: EventLimit = EventLimit(100);

    pub fn new(raw: Option<i64>) -> Result<Self, DomainError> {
        match raw {
            None => Ok(Self::DEFAULT),
            Some(n @ 1..=1000) => Ok(Self(n as u32)),
            Some(_) => Err(DomainError::new("limit", "must be between 1 and 1000")),
        }
    }

    pub fn get(self) -> u32 {
        self.0
    }
}

/// A request for a page of the feed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EventQuery {
    /// Only events after this one (in feed order); `None`: from the oldest.
    pub after: Option<EventId>,
    pub limit: EventLimit,
    pub kind: Option<EventType>,
    pub program: Option<ProgramId>,
}

/// A page of the feed, oldest first; `next` is set when more events already
/// follow (it is the id of the last event of the page).
#[derive(Debug, Clone, PartialEq)]
pub struct EventPage {
    pub events: Vec<EventRecord>,
    pub next: Option<EventId>,
}

/// The width of a stats bucket.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StatsInterval {
    Hour,
    Day,
}

impl StatsInterval {
    pub fn parse(raw: Option<&str>) -> Result<Self, DomainError> {
        match raw {
            None | Some("hour") => Ok(Self::Hour),
            Some("day") => Ok(Self::Day),
            Some(_) => Err(DomainError::new("interval", "must be hour or day")),
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Hour => "hour",
            Self::Day => "day",
        }
    }

    pub fn width(self) -> Duration {
        match self {
            Self::Hour => Duration::hours(1),
            Self::Day => Duration::days(1),
        }
    }

    /// The longest range one query may cover.
    fn max_span(self) -> Duration {
        match self {
            Self::Hour => Duration::days(31),
            Self::Day => Duration::days(400),
        }
    }
}

/// A checked stats range: whole buckets (UTC), `from` rounded down to its
/// bucket's start and `to` up to its bucket's end, within the interval's span.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StatsRange {
    from: DateTime<Utc>,
    to: DateTime<Utc>,
    interval: StatsInterval,
}

impl StatsRange {
    /// `from`/`to` default to the 24 hours before `now`.
    pub fn new(
        from: Option<DateTime<Utc>>,
        to: Option<DateTime<Utc>>,
        interval: StatsInterval,
        now: DateTime<Utc>,
    ) -> Result<Self, DomainError> {
        let to = to.unwrap_or(now);
        let from = from.unwrap_or(to - Duration::hours(24));
        if to <= from {
            return Err(DomainError::new("to", "must be after from"));
        }
        if to - from > interval.max_span() {
            let days = interval.max_span().num_days();
            return Err(DomainError::new(
                "to",
                format!(
                    "must be at most {days} days after from with interval={}",
                    interval.as_str()
                ),
            ));
        }
        let width = interval.width();
        let out_of_range = || DomainError::new("from", "is out of range");
        let start = from.duration_trunc(width).map_err(|_| out_of_range())?;
        let end_floor = to.duration_trunc(width).map_err(|_| out_of_range())?;
        let end = if end_floor == to {
            to
        } else {
            end_floor + width
        };
        Ok(Self {
            from: start,
            to: end,
            interval,
        })
    }

    pub fn from(&self) -> DateTime<Utc> {
        self.from
    }

    pub fn to(&self) -> DateTime<Utc> {
        self.to
    }

    pub fn interval(&self) -> StatsInterval {
        self.interval
    }

    /// Every bucket start in the range, oldest first.
    pub fn bucket_starts(&self) -> impl Iterator<Item = DateTime<Utc>> + '_ {
        let width = self.interval.width();
        std::iter::successors(Some(self.from), move |start| Some(*start + width))
            .take_while(move |start| *start < self.to)
    }
}

/// One counted group, as the store aggregates it: the bucket it falls in, the
/// event type, the failure reason (`ticket.redemption_failed` only) and how
/// many tickets or attempts it counts (a batch counts its size).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StatsCount {
    pub bucket: DateTime<Utc>,
    pub kind: EventType,
    pub reason: Option<String>,
    pub count: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct StatsBucket {
    pub start: DateTime<Utc>,
    pub issued: u64,
    pub redeemed: u64,
    pub failed: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ProgramStats {
    pub issued: u64,
    pub redeemed: u64,
    pub failed: u64,
    pub failed_by_reason: std::collections::BTreeMap<String, u64>,
    pub buckets: Vec<StatsBucket>,
}

/// What one maintenance round did, for the server's log.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct MaintenanceReport {
    pub partitions_created: Vec<String>,
    pub partitions_dropped: Vec<String>,
    pub rollup_rows: u64,
}

/// The event history in the store.
#[cfg_attr(any(test, feature = "mocks"), automock)]
pub trait EventStore: Send + Sync {
    /// The tenant's events after `query.after` in feed order, filtered by type and
    /// program, at most `limit`; only events whose transaction, and every earlier
    /// one, has ended, so that paging returns each committed event exactly once.
    /// MUST return `NotFound` when `after` names no event of the tenant.
    fn list(&self, tenant: &TenantId, query: &EventQuery) -> StoreResult<EventPage>;
    /// The program's issuance, redemption and failure counts per bucket of `range`
    /// (buckets without events are left out).
    fn stats(
        &self,
        tenant: &TenantId,
        program: &ProgramId,
        range: &StatsRange,
    ) -> StoreResult<Vec<StatsCount>>;
    /// Creates the partition holding `at` unless it exists; its name if created.
    fn ensure_partition(&self, at: DateTime<Utc>) -> StoreResult<Option<String>>;
    /// Drops the partitions (and default-partition rows) wholly older than
    /// `before`, with their stats rollups, and deletes the finished (delivered or
    /// failed) webhook deliveries created before it; the dropped partitions' names.
    fn drop_partitions_before(&self, before: DateTime<Utc>) -> StoreResult<Vec<String>>;
    /// Rolls every tenant's not-yet-counted events up into the stats' hourly
    /// counts; how many rollup rows were written.
    fn roll_up(&self) -> StoreResult<u64>;
}

#[cfg_attr(any(test, feature = "mocks"), automock)]
pub trait EventUseCases: Send + Sync {
    /// A page of the caller's tenant's events (admin).
    fn list_events(&self, caller: &Principal, query: EventQuery) -> AppResult<EventPage>;
    /// A program's stats over `range` (admin, issuer); `NotFound` for a program
    /// of another tenant.
    fn program_stats(
        &self,
        caller: &Principal,
        program: &ProgramId,
        range: StatsRange,
    ) -> AppResult<ProgramStats>;
    /// Keeps the history in shape: the current and next month's partitions exist,
    /// partitions older than the retention are gone, stats are rolled up.
    fn maintain(&self) -> AppResult<MaintenanceReport>;
    /// What time it is for the use cases (stats' default range).
    fn now(&self) -> DateTime<Utc>;
}
