//! `GET /v1/events` and `GET /v1/programs/{id}/stats`: query strings parsed into
//! the application's checked types, and the answers.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use tessera_app::events::{
    EventLimit, EventPage, EventQuery, EventRecord, ProgramStats, StatsBucket, StatsInterval,
    StatsRange,
};
use tessera_domain::{EventId, EventType, ProgramId};
use utoipa::{IntoParams, ToSchema};

use crate::error::ApiError;
use crate::time;

/// `?after&limit&type&programId`.
#[derive(Debug, Clone, Default, Deserialize, IntoParams)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
#[into_params(parameter_in = Query)]
pub struct EventsQuery {
    /// An event id (`evt_...`): only events after it in feed order.
    pub after: Option<String>,
    /// Events per page, 1..1000; default 100.
    #[param(value_type = Option<i64>, minimum = 1, maximum = 1000)]
    pub limit: Option<String>,
    /// Only events of this type (see the event types).
    #[serde(rename = "type")]
    #[param(rename = "type")]
    pub kind: Option<String>,
    /// Only events of this program (`prg_...`); another tenant's program matches nothing.
    pub program_id: Option<String>,
}

impl TryFrom<&EventsQuery> for EventQuery {
    type Error = ApiError;

    fn try_from(query: &EventsQuery) -> Result<Self, ApiError> {
        let limit = query
            .limit
            .as_deref()
            .map(|raw| {
                raw.trim()
                    .parse::<i64>()
                    .map_err(|_| ApiError::invalid("limit: must be an integer"))
            })
            .transpose()?;
        Ok(EventQuery {
            after: query
                .after
                .as_deref()
                .map(|raw| {
                    EventId::parse(raw).map_err(|_| ApiError::invalid("after: must be an event id"))
                })
                .transpose()?,
            limit: EventLimit::new(limit)?,
            kind: query
                .kind
                .as_deref()
                .map(|raw| raw.parse::<EventType>())
                .transpose()?,
            program: query
                .program_id
                .as_deref()
                .map(|raw| {
                    ProgramId::parse(raw)
                        .map_err(|_| ApiError::invalid("programId: must be a program id"))
                })
                .transpose()?,
        })
    }
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct EventResponse {
    pub id: String,
    /// One of the event types.
    #[serde(rename = "type")]
    #[schema(rename = "type")]
    pub kind: &'static str,
    #[serde(serialize_with = "time::serialize")]
    #[schema(value_type = String, format = DateTime)]
    pub created_at: DateTime<Utc>,
    pub program_id: Option<String>,
    pub ticket_id: Option<String>,
    /// What the type records, e.g. `{"reason": "ticket_exhausted"}` or `{"count": 1000}`.
    #[schema(value_type = Object)]
    pub data: serde_json::Value,
}

impl From<EventRecord> for EventResponse {
    fn from(event: EventRecord) -> Self {
        Self {
            id: event.id.as_str().to_owned(),
            kind: event.kind.as_str(),
            created_at: event.created_at,
            program_id: event.program_id.map(|id| id.as_str().to_owned()),
            ticket_id: event.ticket_id.map(|id| id.as_str().to_owned()),
            data: event.data,
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct EventList {
    pub events: Vec<EventResponse>,
    /// Pass as `after` for the next page; `null` when no more events follow yet.
    pub next: Option<String>,
}

impl From<EventPage> for EventList {
    fn from(page: EventPage) -> Self {
        Self {
            events: page.events.into_iter().map(EventResponse::from).collect(),
            next: page.next.map(|id| id.as_str().to_owned()),
        }
    }
}

/// `?from&to&interval`.
#[derive(Debug, Clone, Default, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct StatsQuery {
    /// A time (RFC 3339 or epoch ms); default 24 h before `to`. Rounded down to its bucket.
    #[param(value_type = Option<String>)]
    pub from: Option<String>,
    /// A time; default now. Rounded up to the end of its bucket.
    #[param(value_type = Option<String>)]
    pub to: Option<String>,
    /// `hour` (default; at most 31 days) or `day` (at most 400 days).
    pub interval: Option<String>,
}

impl StatsQuery {
    pub(crate) fn range(&self, now: DateTime<Utc>) -> Result<StatsRange, ApiError> {
        let at = |field: &str, raw: Option<&str>| {
            raw.map(|raw| {
                time::parse_str(raw).ok_or_else(|| {
                    ApiError::invalid(format!(
                        "{field}: must be an RFC 3339 time or Unix epoch milliseconds"
                    ))
                })
            })
            .transpose()
        };
        let interval = StatsInterval::parse(self.interval.as_deref())?;
        Ok(StatsRange::new(
            at("from", self.from.as_deref())?,
            at("to", self.to.as_deref())?,
            interval,
            now,
        )?)
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct BucketResponse {
    #[serde(serialize_with = "time::serialize")]
    #[schema(value_type = String, format = DateTime)]
    pub start: DateTime<Utc>,
    pub issued: u64,
    pub redeemed: u64,
    pub failed: u64,
}

impl From<StatsBucket> for BucketResponse {
    fn from(bucket: StatsBucket) -> Self {
        Self {
            start: bucket.start,
            issued: bucket.issued,
            redeemed: bucket.redeemed,
            failed: bucket.failed,
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct StatsResponse {
    /// Tickets issued (one per `ticket.issued`, a batch's or import's count).
    pub issued: u64,
    pub redeemed: u64,
    pub failed: u64,
    /// Failed redemptions per reason, e.g. `{"ticket_exhausted": 3}`.
    pub failed_by_reason: BTreeMap<String, u64>,
    /// Every bucket of the range, oldest first, empty ones included.
    pub buckets: Vec<BucketResponse>,
}

impl From<ProgramStats> for StatsResponse {
    fn from(stats: ProgramStats) -> Self {
        Self {
            issued: stats.issued,
            redeemed: stats.redeemed,
            failed: stats.failed,
            failed_by_reason: stats.failed_by_reason,
            buckets: stats
                .buckets
                .into_iter()
                .map(BucketResponse::from)
                .collect(),
        }
    }
}
