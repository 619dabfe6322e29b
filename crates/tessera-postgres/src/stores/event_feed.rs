//! The event history read back: the feed, the stats and the maintenance of the
//! history's partitions and rollups (functions of migration event_partitions).
//! Hand-written SQL: the feed's horizon, row comparisons and the stats' union are
//! the point of these statements, and `tx` (xid8) has no diesel type.

use chrono::{DateTime, Utc};
use diesel::pg::Pg;
use diesel::query_builder::BoxedSqlQuery;
use diesel::sql_types::{BigInt, Jsonb, Nullable, Text, Timestamptz};
use diesel::{sql_query, OptionalExtension, QueryableByName, RunQueryDsl};
use tessera_app::events::{EventPage, EventQuery, EventRecord, EventStore, StatsCount, StatsRange};
use tessera_app::ports::{StoreError, StoreResult};
use tessera_domain::{EventId, EventType, ProgramId, TenantId, TicketId};

use crate::error::{corrupt, Outcome};
use crate::PgStore;

#[derive(QueryableByName)]
struct Cursor {
    #[diesel(sql_type = Text)]
    tx: String,
    #[diesel(sql_type = BigInt)]
    seq: i64,
}

#[derive(QueryableByName)]
struct EventRow {
    #[diesel(sql_type = Text)]
    id: String,
    #[diesel(sql_type = Text)]
    kind: String,
    #[diesel(sql_type = Timestamptz)]
    created_at: DateTime<Utc>,
    #[diesel(sql_type = Nullable<Text>)]
    program_id: Option<String>,
    #[diesel(sql_type = Nullable<Text>)]
    ticket_id: Option<String>,
    #[diesel(sql_type = Jsonb)]
    data: serde_json::Value,
}

impl EventRow {
    fn into_record(self) -> Outcome<EventRecord> {
        Ok(EventRecord {
            id: EventId::parse(&self.id).map_err(|e| corrupt("event", e))?,
            kind: self.kind.parse().map_err(|e| corrupt("event", e))?,
            created_at: self.created_at,
            program_id: self
                .program_id
                .map(|id| ProgramId::parse(&id))
                .transpose()
                .map_err(|e| corrupt("event", e))?,
            ticket_id: self
                .ticket_id
                .map(|id| TicketId::parse(&id))
                .transpose()
                .map_err(|e| corrupt("event", e))?,
            data: self.data,
        })
    }
}

#[derive(QueryableByName)]
struct CountRow {
    #[diesel(sql_type = Timestamptz)]
    bucket: DateTime<Utc>,
    #[diesel(sql_type = Text)]
    kind: String,
    #[diesel(sql_type = Text)]
    reason: String,
    #[diesel(sql_type = BigInt)]
    n: i64,
}

#[derive(QueryableByName)]
struct Name {
    #[diesel(sql_type = Nullable<Text>)]
    name: Option<String>,
}

#[derive(QueryableByName)]
struct Horizon {
    #[diesel(sql_type = Text)]
    horizon: String,
}

#[derive(QueryableByName)]
struct Rows {
    #[diesel(sql_type = BigInt)]
    n: i64,
}

#[derive(QueryableByName)]
struct TenantRow {
    #[diesel(sql_type = Text)]
    id: String,
}

/// The event types the stats count; must match `tessera_roll_up_events`.
const COUNTED: &str = "('ticket.issued', 'ticket.batch_issued', 'ticket.batch_imported', \
                       'ticket.redeemed', 'ticket.redemption_failed')";

/// Builds the page statement with only the predicates the query uses, so that
/// each one can be an index condition (a `$n IS NULL OR …` predicate cannot).
fn page_query(
    tenant: &TenantId,
    query: &EventQuery,
    cursor: Option<Cursor>,
) -> BoxedSqlQuery<'static, Pg, diesel::query_builder::SqlQuery> {
    let mut text = String::from(
        "SELECT id, type AS kind, created_at, program_id, ticket_id, data FROM events \
         WHERE tenant_id = $1 AND tx < (SELECT pg_snapshot_xmin(pg_current_snapshot()))",
    );
    let mut n = 1;
    let mut next = || {
        n += 1;
        n
    };
    if cursor.is_some() {
        let (a, b) = (next(), next());
        text.push_str(&format!(" AND (tx, seq) > (${a}::text::xid8, ${b})"));
    }
    if query.kind.is_some() {
        text.push_str(&format!(" AND type = ${}", next()));
    }
    if query.program.is_some() {
        text.push_str(&format!(" AND program_id = ${}", next()));
    }
    text.push_str(&format!(" ORDER BY tx, seq LIMIT ${}", next()));
    let mut statement = sql_query(text)
        .into_boxed::<Pg>()
        .bind::<Text, _>(tenant.as_str().to_owned());
    if let Some(cursor) = cursor {
        statement = statement
            .bind::<Text, _>(cursor.tx)
            .bind::<BigInt, _>(cursor.seq);
    }
    if let Some(kind) = query.kind {
        statement = statement.bind::<Text, _>(kind.as_str());
    }
    if let Some(program) = &query.program {
        statement = statement.bind::<Text, _>(program.as_str().to_owned());
    }
    // One more than asked: whether it exists tells if the page has a `next`.
    statement.bind::<BigInt, _>(i64::from(query.limit.get()) + 1)
}

impl EventStore for PgStore {
    fn list(&self, tenant: &TenantId, query: &EventQuery) -> StoreResult<EventPage> {
        self.with_conn(|conn| {
            let cursor = match &query.after {
                None => None,
                Some(after) => Some(
                    sql_query(
                        "SELECT tx::text AS tx, seq FROM events WHERE tenant_id = $1 AND id = $2",
                    )
                    .bind::<Text, _>(tenant.as_str())
                    .bind::<Text, _>(after.as_str())
                    .get_result::<Cursor>(conn)
                    .optional()?
                    .ok_or(StoreError::NotFound)?,
                ),
            };
            let rows = page_query(tenant, query, cursor).load::<EventRow>(conn)?;
            let limit = query.limit.get() as usize;
            let more = rows.len() > limit;
            let events = rows
                .into_iter()
                .take(limit)
                .map(EventRow::into_record)
                .collect::<Outcome<Vec<_>>>()?;
            let next = if more {
                events.last().map(|event| event.id.clone())
            } else {
                None
            };
            Ok(EventPage { events, next })
        })
    }

    fn stats(
        &self,
        tenant: &TenantId,
        program: &ProgramId,
        range: &StatsRange,
    ) -> StoreResult<Vec<StatsCount>> {
        let mut pooled = self.connection()?;
        let conn: &mut diesel::PgConnection = &mut pooled;
        // One snapshot for the horizon, the rollups and the tail, so an event is
        // counted once even while a rollup commits meanwhile.
        let rows = conn
            .build_transaction()
            .repeatable_read()
            .read_only()
            .run(|conn| {
                let horizon = sql_query(
                    "SELECT horizon::text AS horizon FROM event_rollup_horizons WHERE tenant_id = $1",
                )
                .bind::<Text, _>(tenant.as_str())
                .get_result::<Horizon>(conn)
                .optional()?
                .map_or_else(|| "0".to_owned(), |h| h.horizon);
                // The tail's horizon is bound as a value so the planner sees it and
                // reads only the (tenant, program, tx) index entries above it.
                sql_query(format!(
                    "SELECT date_trunc($6, bucket AT TIME ZONE 'UTC') AT TIME ZONE 'UTC' AS bucket, \
                            type AS kind, reason, sum(n)::bigint AS n FROM ( \
                       SELECT bucket, type, reason, n FROM event_rollups \
                       WHERE tenant_id = $1 AND program_id = $2 AND bucket >= $3 AND bucket < $4 \
                       UNION ALL \
                       SELECT date_trunc('hour', created_at AT TIME ZONE 'UTC') AT TIME ZONE 'UTC', \
                              type, coalesce(data->>'reason', ''), \
                              CASE WHEN type IN ('ticket.batch_issued', 'ticket.batch_imported') \
                                   THEN coalesce((data->>'count')::bigint, 0) ELSE 1 END \
                       FROM events \
                       WHERE tenant_id = $1 AND program_id = $2 AND tx >= $5::text::xid8 \
                         AND created_at >= $3 AND created_at < $4 AND type IN {COUNTED} \
                     ) AS counted GROUP BY 1, 2, 3"
                ))
                .bind::<Text, _>(tenant.as_str())
                .bind::<Text, _>(program.as_str())
                .bind::<Timestamptz, _>(range.from())
                .bind::<Timestamptz, _>(range.to())
                .bind::<Text, _>(horizon)
                .bind::<Text, _>(range.interval().as_str())
                .load::<CountRow>(conn)
            })
            .map_err(crate::error::Failure::from)?;
        rows.into_iter()
            .map(|row| {
                let kind: EventType = row.kind.parse().map_err(|e| corrupt("event", e))?;
                Ok(StatsCount {
                    bucket: row.bucket,
                    kind,
                    reason: (!row.reason.is_empty()).then_some(row.reason),
                    count: u64::try_from(row.n).map_err(|e| corrupt("stats", e))?,
                })
            })
            .collect::<Outcome<Vec<_>>>()
            .map_err(StoreError::from)
    }

    fn ensure_partition(&self, at: DateTime<Utc>) -> StoreResult<Option<String>> {
        self.in_transaction(|conn| {
            let created = sql_query("SELECT tessera_ensure_event_partition($1) AS name")
                .bind::<Timestamptz, _>(at)
                .get_result::<Name>(conn)?;
            Ok(created.name)
        })
    }

    fn drop_partitions_before(&self, before: DateTime<Utc>) -> StoreResult<Vec<String>> {
        self.in_transaction(|conn| {
            let dropped = sql_query("SELECT tessera_drop_event_partitions($1) AS name")
                .bind::<Timestamptz, _>(before)
                .load::<Name>(conn)?;
            // Hand-written like the rest of this file; not tenant-scoped on purpose:
            // retention applies to every tenant alike.
            sql_query("DELETE FROM event_rollups WHERE bucket < $1")
                .bind::<Timestamptz, _>(before)
                .execute(conn)?;
            crate::events::forget_probe_events(conn)?;
            Ok(dropped.into_iter().filter_map(|row| row.name).collect())
        })
        .and_then(|dropped| {
            self.prune_finished_deliveries(before)?;
            Ok(dropped)
        })
    }

    fn roll_up(&self) -> StoreResult<u64> {
        self.with_conn(|conn| {
            let tenants =
                sql_query("SELECT id FROM tenants ORDER BY id").load::<TenantRow>(conn)?;
            let mut written = 0u64;
            // One transaction per tenant: a big tenant does not hold the others'
            // horizon rows locked.
            for tenant in tenants {
                let rows = sql_query("SELECT tessera_roll_up_events($1) AS n")
                    .bind::<Text, _>(tenant.id)
                    .get_result::<Rows>(conn)?;
                written += u64::try_from(rows.n).unwrap_or(0);
            }
            Ok(written)
        })
    }
}

/// How many pooled connections are idle and how many are checked out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PoolState {
    pub idle: u32,
    pub in_use: u32,
}

/// Finished deliveries are deleted an hour of creation time per statement: a
/// short lock each, however long the history grew, and a plain delete by time,
/// which Citus runs on every shard (a `LIMIT` subquery it would refuse).
const PRUNE_SLICE: chrono::Duration = chrono::Duration::hours(1);

#[derive(diesel::QueryableByName)]
struct Oldest {
    #[diesel(sql_type = Nullable<Timestamptz>)]
    oldest: Option<DateTime<Utc>>,
}

impl PgStore {
    /// Deletes the finished (delivered or failed) webhook deliveries created
    /// before `before`, oldest hour first, each slice its own short transaction;
    /// pending ones stay until they finish. How many went.
    fn prune_finished_deliveries(&self, before: DateTime<Utc>) -> StoreResult<u64> {
        self.with_conn(|conn| {
            let mut pruned = 0u64;
            loop {
                let oldest = sql_query(
                    "SELECT min(created_at) AS oldest FROM webhook_deliveries \
                     WHERE state <> 'pending' AND created_at < $1",
                )
                .bind::<Timestamptz, _>(before)
                .get_result::<Oldest>(conn)?
                .oldest;
                let Some(oldest) = oldest else {
                    return Ok(pruned);
                };
                let slice_end = (oldest + PRUNE_SLICE).min(before);
                let deleted = sql_query(
                    "DELETE FROM webhook_deliveries WHERE state <> 'pending' AND created_at < $1",
                )
                .bind::<Timestamptz, _>(slice_end)
                .execute(conn)?;
                pruned += deleted as u64;
            }
        })
    }

    /// The pool's state now, for the `tessera_db_pool_connections` gauge.
    pub fn pool_state(&self) -> PoolState {
        let state = self.pool.state();
        PoolState {
            idle: state.idle_connections,
            in_use: state.connections.saturating_sub(state.idle_connections),
        }
    }
}
