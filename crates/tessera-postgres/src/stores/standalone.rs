use chrono::{DateTime, Utc};
use diesel::sql_types::{BigInt, Bytea, Text, Timestamptz};
use diesel::{
    sql_query, BoolExpressionMethods, ExpressionMethods, OptionalExtension, PgConnection, QueryDsl,
    RunQueryDsl, SelectableHelper,
};
use tessera_app::model::{Page, SecretHash, StandaloneDeletion, StandaloneUse, UsesLeft};
use tessera_app::ports::{Later, StandaloneStore, StoreError, StoreResult};
use tessera_domain::{ApiKeyId, PageRequest, StandaloneTicket, TenantId};

use super::limit_offset;
use crate::error::Outcome;
use crate::models::{total, StandaloneRow, StandaloneUseRow};
use crate::schema::{standalone_tickets, tenant_counters};
use crate::PgStore;

diesel::define_sql_function! {
    /// The standalone use (migration `standalone_use_function`): uses left (NULL:
    /// unlimited) and payload, or no row when nothing live matches.
    fn tessera_use_standalone(
        tenant_id: Text,
        token_hash: Bytea,
        now: Timestamptz,
    ) -> Record<(Nullable<BigInt>, Nullable<Text>)>;
}

/// The tenant's counter row always equals its number of standalone_tickets rows:
/// every insert raises it and every delete lowers it in the same transaction.
fn adjust_counter(conn: &mut PgConnection, tenant: &TenantId, delta: i64) -> Outcome<()> {
    diesel::update(tenant_counters::table.filter(tenant_counters::tenant_id.eq(tenant.as_str())))
        .set(tenant_counters::live_standalone.eq(tenant_counters::live_standalone + delta))
        .execute(conn)?;
    Ok(())
}

/// Takes one place under the cap, or reports that there is none.
fn claim_place(conn: &mut PgConnection, tenant: &TenantId, cap: u32) -> Outcome<bool> {
    // Hand-written: the conditional counter UPDATE is what enforces the cap.
    let claimed = sql_query(
        "UPDATE tenant_counters SET live_standalone = live_standalone + 1 \
         WHERE tenant_id = $1 AND live_standalone < $2",
    )
    .bind::<Text, _>(tenant.as_str())
    .bind::<BigInt, _>(i64::from(cap))
    .execute(conn)?;
    Ok(claimed == 1)
}

/// Deletes the tenant's expired tickets and frees their places. Rows that a
/// concurrent use or delete holds are skipped rather than waited for: that
/// transaction locks the counter after the row, and waiting here (counter held,
/// row wanted) could deadlock with it.
fn purge_expired(conn: &mut PgConnection, tenant: &TenantId, now: DateTime<Utc>) -> Outcome<()> {
    // Hand-written: the point is the `FOR UPDATE SKIP LOCKED` subquery.
    let purged = sql_query(
        "DELETE FROM standalone_tickets WHERE tenant_id = $1 AND id IN ( \
             SELECT id FROM standalone_tickets \
             WHERE tenant_id = $1 AND expires_at <= $2 \
             FOR UPDATE SKIP LOCKED)",
    )
    .bind::<Text, _>(tenant.as_str())
    .bind::<Timestamptz, _>(now)
    .execute(conn)?;
    if purged > 0 {
        adjust_counter(conn, tenant, -i64::try_from(purged).unwrap_or(i64::MAX))?;
    }
    Ok(())
}

fn insert_ticket(
    conn: &mut PgConnection,
    ticket: &StandaloneTicket,
    hash: SecretHash,
) -> Outcome<()> {
    diesel::insert_into(standalone_tickets::table)
        .values((
            standalone_tickets::tenant_id.eq(ticket.tenant_id.as_str()),
            standalone_tickets::id.eq(ticket.id.as_str()),
            standalone_tickets::token_hash.eq(&hash.0[..]),
            standalone_tickets::name.eq(ticket.name.as_ref().map(|name| name.as_str())),
            standalone_tickets::permissions
                .eq(ticket.permissions.as_ref().map(|p| p.as_json_text())),
            standalone_tickets::payload.eq(ticket.payload.as_ref().map(|p| p.as_json_text())),
            standalone_tickets::total_uses.eq(i64::from(ticket.total_uses.limit().unwrap_or(0))),
            standalone_tickets::uses_left.eq(ticket.uses_left.map(i64::from)),
            standalone_tickets::expires_at.eq(ticket.expires_at),
            standalone_tickets::created_at.eq(ticket.created_at),
        ))
        .execute(conn)?;
    Ok(())
}

impl StandaloneStore for PgStore {
    fn create(
        &self,
        ticket: &StandaloneTicket,
        token_hash: SecretHash,
        cap: u32,
        now: DateTime<Utc>,
    ) -> StoreResult<()> {
        let tenant = &ticket.tenant_id;
        self.in_transaction(|conn| {
            diesel::insert_into(tenant_counters::table)
                .values((
                    tenant_counters::tenant_id.eq(tenant.as_str()),
                    tenant_counters::live_standalone.eq(0),
                ))
                .on_conflict(tenant_counters::tenant_id)
                .do_nothing()
                .execute(conn)?;
            if !claim_place(conn, tenant, cap)? {
                purge_expired(conn, tenant, now)?;
                if !claim_place(conn, tenant, cap)? {
                    return Err(StoreError::MaxTicketsReached.into());
                }
            }
            // A duplicate hash aborts the transaction, taking the claimed place back.
            insert_ticket(conn, ticket, token_hash)
        })
    }

    fn use_ticket(
        &self,
        tenant: &TenantId,
        token_hash: SecretHash,
        now: DateTime<Utc>,
    ) -> StoreResult<Option<StandaloneUse>> {
        if let Some(group) = &self.group_commit {
            // Grouped with concurrent uses into one statement and commit.
            return Ok(group.use_ticket(tenant, token_hash, now)?);
        }
        self.with_conn(|conn| {
            // One prepared statement, committed on its own (no BEGIN/COMMIT round
            // trips): the function spends the use by a conditional UPDATE and, on
            // the last one, deletes the row and frees its place, atomically.
            let used = diesel::select(tessera_use_standalone(
                tenant.as_str(),
                &token_hash.0[..],
                now,
            ))
            .get_result::<(Option<i64>, Option<String>)>(conn)
            .optional()?;
            let Some((uses_left, payload)) = used else {
                return Ok(None);
            };
            let used = StandaloneUseRow { uses_left, payload };
            let uses_left = used.uses_left()?;
            Ok(Some(StandaloneUse {
                uses_left: uses_left.map_or(UsesLeft::Unlimited, UsesLeft::Left),
                payload: used.into_payload()?,
            }))
        })
    }

    fn use_ticket_later(
        &self,
        tenant: &TenantId,
        token_hash: SecretHash,
        now: DateTime<Utc>,
        caller_key: ApiKeyId,
    ) -> Option<Later<Option<StandaloneUse>>> {
        let queued = self
            .group_commit
            .as_ref()?
            .use_ticket_later(tenant, token_hash, now, caller_key);
        Some(Box::pin(async move { Ok(queued.await?) }))
    }

    fn delete(
        &self,
        tenant: &TenantId,
        token_hash: SecretHash,
        now: DateTime<Utc>,
    ) -> StoreResult<StandaloneDeletion> {
        self.in_transaction(|conn| {
            // An expired ticket is removed too (it only holds a place), but it was
            // not live, so it is reported as absent.
            let removed: Option<(Option<i64>, Option<DateTime<Utc>>)> = diesel::delete(
                standalone_tickets::table
                    .filter(standalone_tickets::tenant_id.eq(tenant.as_str()))
                    .filter(standalone_tickets::token_hash.eq(&token_hash.0[..])),
            )
            .returning((
                standalone_tickets::uses_left,
                standalone_tickets::expires_at,
            ))
            .get_result(conn)
            .optional()?;
            let Some((uses_left, expires_at)) = removed else {
                return Ok(StandaloneDeletion::NothingLive);
            };
            adjust_counter(conn, tenant, -1)?;
            if expires_at.is_some_and(|at| at <= now) {
                return Ok(StandaloneDeletion::NothingLive);
            }
            let uses_left = uses_left
                .map(|left| {
                    u32::try_from(left).map_err(|e| crate::error::corrupt("standalone ticket", e))
                })
                .transpose()?;
            Ok(StandaloneDeletion::Deleted(
                uses_left.map_or(UsesLeft::Unlimited, UsesLeft::Left),
            ))
        })
    }

    fn list(
        &self,
        tenant: &TenantId,
        page: PageRequest,
        now: DateTime<Utc>,
    ) -> StoreResult<Page<StandaloneTicket>> {
        let (limit, offset) = limit_offset(page);
        self.in_transaction(|conn| {
            let live = || {
                standalone_tickets::expires_at
                    .is_null()
                    .or(standalone_tickets::expires_at.gt(now))
            };
            let items = standalone_tickets::table
                .filter(standalone_tickets::tenant_id.eq(tenant.as_str()))
                .filter(live())
                .order((standalone_tickets::created_at, standalone_tickets::id))
                .limit(limit)
                .offset(offset)
                .select(StandaloneRow::as_select())
                .load(conn)?
                .into_iter()
                .map(StandaloneRow::into_domain)
                .collect::<Outcome<Vec<_>>>()?;
            let count = standalone_tickets::table
                .filter(standalone_tickets::tenant_id.eq(tenant.as_str()))
                .filter(live())
                .count()
                .get_result(conn)?;
            Ok(Page {
                items,
                total: total(count),
            })
        })
    }
}
