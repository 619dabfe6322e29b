use chrono::{DateTime, Utc};
use diesel::sql_types::{BigInt, Bytea, Nullable, Text, Timestamptz};
use diesel::{sql_query, OptionalExtension, PgConnection, QueryableByName, RunQueryDsl};
use tessera_app::model::{Page, SecretHash, StandaloneDeletion, StandaloneUse, UsesLeft};
use tessera_app::ports::{StandaloneStore, StoreError, StoreResult};
use tessera_domain::{PageRequest, StandaloneTicket, TenantId};

use super::limit_offset;
use crate::error::Outcome;
use crate::models::{StandaloneRow, StandaloneUseRow, Total};
use crate::PgStore;

/// The tenant's counter row always equals its number of standalone_tickets rows:
/// every insert raises it and every delete lowers it in the same transaction.
fn adjust_counter(conn: &mut PgConnection, tenant: &TenantId, delta: i64) -> Outcome<()> {
    sql_query(
        "UPDATE tenant_counters SET live_standalone = live_standalone + $2 WHERE tenant_id = $1",
    )
    .bind::<Text, _>(tenant.as_str())
    .bind::<BigInt, _>(delta)
    .execute(conn)?;
    Ok(())
}

/// Takes one place under the cap, or reports that there is none.
fn claim_place(conn: &mut PgConnection, tenant: &TenantId, cap: u32) -> Outcome<bool> {
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
    sql_query(
        "INSERT INTO standalone_tickets (tenant_id, id, token_hash, name, permissions, payload, \
         total_uses, uses_left, expires_at, created_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
    )
    .bind::<Text, _>(ticket.tenant_id.as_str())
    .bind::<Text, _>(ticket.id.as_str())
    .bind::<Bytea, _>(&hash.0[..])
    .bind::<Nullable<Text>, _>(ticket.name.as_ref().map(|name| name.as_str()))
    .bind::<Nullable<Text>, _>(ticket.permissions.as_ref().map(|p| p.as_json_text()))
    .bind::<Nullable<Text>, _>(ticket.payload.as_ref().map(|p| p.as_json_text()))
    .bind::<BigInt, _>(i64::from(ticket.total_uses.limit().unwrap_or(0)))
    .bind::<Nullable<BigInt>, _>(ticket.uses_left.map(i64::from))
    .bind::<Nullable<Timestamptz>, _>(ticket.expires_at)
    .bind::<Timestamptz, _>(ticket.created_at)
    .execute(conn)?;
    Ok(())
}

#[derive(QueryableByName)]
struct Removed {
    #[diesel(sql_type = Nullable<BigInt>)]
    uses_left: Option<i64>,
    #[diesel(sql_type = Nullable<Timestamptz>)]
    expires_at: Option<DateTime<Utc>>,
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
            sql_query(
                "INSERT INTO tenant_counters (tenant_id, live_standalone) VALUES ($1, 0) \
                 ON CONFLICT (tenant_id) DO NOTHING",
            )
            .bind::<Text, _>(tenant.as_str())
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
        self.in_transaction(|conn| {
            // NULL - 1 is NULL: an unlimited ticket stays unlimited.
            let used = sql_query(
                "UPDATE standalone_tickets SET uses_left = uses_left - 1 \
                 WHERE tenant_id = $1 AND token_hash = $2 \
                 AND (expires_at IS NULL OR expires_at > $3) \
                 AND (uses_left IS NULL OR uses_left > 0) \
                 RETURNING uses_left, payload",
            )
            .bind::<Text, _>(tenant.as_str())
            .bind::<Bytea, _>(&token_hash.0[..])
            .bind::<Timestamptz, _>(now)
            .get_result::<StandaloneUseRow>(conn)
            .optional()?;
            let Some(used) = used else {
                return Ok(None);
            };
            let uses_left = used.uses_left()?;
            if uses_left == Some(0) {
                sql_query(
                    "DELETE FROM standalone_tickets WHERE tenant_id = $1 AND token_hash = $2",
                )
                .bind::<Text, _>(tenant.as_str())
                .bind::<Bytea, _>(&token_hash.0[..])
                .execute(conn)?;
                adjust_counter(conn, tenant, -1)?;
            }
            Ok(Some(StandaloneUse {
                uses_left: uses_left.map_or(UsesLeft::Unlimited, UsesLeft::Left),
                payload: used.into_payload()?,
            }))
        })
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
            let removed = sql_query(
                "DELETE FROM standalone_tickets WHERE tenant_id = $1 AND token_hash = $2 \
                 RETURNING uses_left, expires_at",
            )
            .bind::<Text, _>(tenant.as_str())
            .bind::<Bytea, _>(&token_hash.0[..])
            .get_result::<Removed>(conn)
            .optional()?;
            let Some(removed) = removed else {
                return Ok(StandaloneDeletion::NothingLive);
            };
            adjust_counter(conn, tenant, -1)?;
            if removed.expires_at.is_some_and(|at| at <= now) {
                return Ok(StandaloneDeletion::NothingLive);
            }
            let uses_left = removed
                .uses_left
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
            let items = sql_query(
                "SELECT * FROM standalone_tickets \
                 WHERE tenant_id = $1 AND (expires_at IS NULL OR expires_at > $2) \
                 ORDER BY created_at, id LIMIT $3 OFFSET $4",
            )
            .bind::<Text, _>(tenant.as_str())
            .bind::<Timestamptz, _>(now)
            .bind::<BigInt, _>(limit)
            .bind::<BigInt, _>(offset)
            .load::<StandaloneRow>(conn)?
            .into_iter()
            .map(StandaloneRow::into_domain)
            .collect::<Outcome<Vec<_>>>()?;
            let total = sql_query(
                "SELECT count(*) AS total FROM standalone_tickets \
                 WHERE tenant_id = $1 AND (expires_at IS NULL OR expires_at > $2)",
            )
            .bind::<Text, _>(tenant.as_str())
            .bind::<Timestamptz, _>(now)
            .get_result::<Total>(conn)?;
            Ok(Page {
                items,
                total: total.get(),
            })
        })
    }
}
