//! The redemption lifecycle store. Holds are counted on their ticket's row
//! (`tickets.held`), so every statement that reserves, confirms or frees a use
//! decides under the ticket's row lock, as a redemption does: redemptions plus
//! holds never exceed the limit. An expired hold stays counted until a call that
//! finds its ticket full reaps it (`classify`), so expiry needs no sweeper.

use chrono::{DateTime, Utc};
use diesel::sql_types::{BigInt, Bytea, Nullable, Text, Timestamptz};
use diesel::{sql_query, OptionalExtension, PgConnection, RunQueryDsl};
use tessera_app::lifecycle::{Hold, HoldRefusal, RollbackRefusal, RolledBack, Validation};
use tessera_app::model::{Grant, RedemptionAttempt};
use tessera_app::ports::{LifecycleStore, StoreResult};
use tessera_domain::{
    ApiKeyId, EventId, HoldId, HoldState, ProgramId, RedemptionFailure, RedemptionId,
    RollbackReason, TenantId, TicketId,
};

use super::redemption::{classify, into_grant, RedeemedRow};
use crate::error::{corrupt, Outcome};
use crate::PgStore;

/// A ticket's effective limit, as `tessera_redeem` computes it.
const LIMIT: &str = "LEAST(COALESCE(t.max_redemptions, p.max_redemptions), p.max_redemptions)";

#[derive(diesel::QueryableByName)]
struct Validated {
    #[diesel(sql_type = Text)]
    ticket_id: String,
    #[diesel(sql_type = Text)]
    object_id: String,
    #[diesel(sql_type = diesel::sql_types::Array<Text>)]
    group_addresses: Vec<String>,
    #[diesel(sql_type = BigInt)]
    remaining: i64,
}

fn count(what: &str, value: i64) -> Outcome<u32> {
    u32::try_from(value.max(0)).map_err(|e| corrupt(what, e))
}

fn ticket_id(raw: &str) -> Outcome<TicketId> {
    TicketId::parse(raw).map_err(|e| corrupt("ticket", e))
}

fn try_validate(
    conn: &mut PgConnection,
    attempt: &RedemptionAttempt,
) -> Outcome<Option<Validation>> {
    let row = sql_query(
        "SELECT ticket_id, object_id, group_addresses, remaining \
         FROM tessera_validate($1, $2, $3, $4, $5)",
    )
    .bind::<Text, _>(attempt.tenant_id.as_str())
    .bind::<Bytea, _>(&attempt.code_hash.0[..])
    .bind::<Text, _>(attempt.program_id.as_str())
    .bind::<Timestamptz, _>(attempt.now)
    .bind::<Nullable<Text>, _>(attempt.email.as_deref())
    .get_result::<Validated>(conn)
    .optional()?;
    row.map(|row| {
        Ok(Validation {
            program_id: attempt.program_id.clone(),
            ticket_id: ticket_id(&row.ticket_id)?,
            object_id: row.object_id,
            group_addresses: row.group_addresses,
            remaining: count("ticket", row.remaining)?,
        })
    })
    .transpose()
}

#[derive(diesel::QueryableByName)]
struct Reserved {
    #[diesel(sql_type = Text)]
    ticket_id: String,
    #[diesel(sql_type = BigInt)]
    remaining: i64,
}

fn try_hold(
    conn: &mut PgConnection,
    attempt: &RedemptionAttempt,
    id: &HoldId,
    expires_at: DateTime<Utc>,
) -> Outcome<Option<Hold>> {
    let row = sql_query(
        "SELECT ticket_id, remaining FROM tessera_hold($1, $2, $3, $4, $5, $6, $7, $8, $9)",
    )
    .bind::<Text, _>(attempt.tenant_id.as_str())
    .bind::<Bytea, _>(&attempt.code_hash.0[..])
    .bind::<Text, _>(attempt.program_id.as_str())
    .bind::<Timestamptz, _>(attempt.now)
    .bind::<Nullable<Text>, _>(attempt.email.as_deref())
    .bind::<Text, _>(EventId::generate().as_str())
    .bind::<Text, _>(id.as_str())
    .bind::<Timestamptz, _>(expires_at)
    .bind::<Nullable<Bytea>, _>(attempt.redeemer.as_ref().map(|hash| &hash.0[..]))
    .get_result::<Reserved>(conn)
    .optional()?;
    row.map(|row| {
        Ok(Hold {
            id: id.clone(),
            program_id: attempt.program_id.clone(),
            ticket_id: ticket_id(&row.ticket_id)?,
            state: HoldState::Held,
            expires_at,
            created_at: attempt.now,
            remaining: count("ticket", row.remaining)?,
        })
    })
    .transpose()
}

#[derive(diesel::QueryableByName)]
struct Confirmed {
    #[diesel(sql_type = Text)]
    ticket_id: String,
    #[diesel(sql_type = Text)]
    program_id: String,
    #[diesel(sql_type = Nullable<Text>)]
    payload: Option<String>,
    #[diesel(sql_type = Text)]
    object_id: String,
    #[diesel(sql_type = diesel::sql_types::Array<Text>)]
    group_addresses: Vec<String>,
    #[diesel(sql_type = BigInt)]
    remaining: i64,
}

/// Claims the live hold (its row lock decides: a second confirm finds it no longer
/// `held`) and turns its reserved use into a redemption in the same statement;
/// the ticket's and program's states are checked as the claim reads them.
fn try_confirm(
    conn: &mut PgConnection,
    tenant: &TenantId,
    id: &HoldId,
    now: DateTime<Utc>,
    redemption: &RedemptionId,
) -> Outcome<Option<Confirmed>> {
    let statement = format!(
        "WITH claimed AS ( \
           UPDATE holds h SET state = 'confirmed', redemption_id = $3 \
           FROM tickets t, programs p \
           WHERE h.tenant_id = $1 AND h.id = $2 AND h.state = 'held' AND h.expires_at > $4 \
             AND t.tenant_id = h.tenant_id AND t.id = h.ticket_id \
             AND p.tenant_id = t.tenant_id AND p.id = t.program_id \
             AND p.state = 'active' AND t.state NOT IN ('revoked', 'disabled') \
           RETURNING h.ticket_id, h.id AS hold_id, h.redeemer_key \
         ), redeemed AS ( \
           UPDATE tickets t SET redemptions = t.redemptions + 1, held = t.held - 1, \
             failed_attempts = 0, last_redeemed_at = $4 \
           FROM programs p, claimed c \
           WHERE t.tenant_id = $1 AND t.id = c.ticket_id \
             AND p.tenant_id = t.tenant_id AND p.id = t.program_id \
           RETURNING t.id AS ticket_id, t.program_id, t.payload, p.object_id, p.group_addresses, \
             GREATEST(0, {LIMIT} - t.redemptions - t.held) AS remaining, c.redeemer_key \
         ), logged AS ( \
           INSERT INTO events (tenant_id, id, type, created_at, program_id, ticket_id, data) \
           SELECT $1, $5, 'ticket.redeemed', $4, r.program_id, r.ticket_id, \
             jsonb_build_object('remaining', r.remaining, 'redemptionId', $3::text, 'holdId', $2::text) \
           FROM redeemed r \
           UNION ALL \
           SELECT $1, $6, 'ticket.exhausted', $4, r.program_id, r.ticket_id, '{{}}'::jsonb \
           FROM redeemed r WHERE r.remaining = 0 \
         ), recorded AS ( \
           INSERT INTO redemptions (tenant_id, id, program_id, ticket_id, created_at, redeemer_key) \
           SELECT $1, $3, r.program_id, r.ticket_id, $4, r.redeemer_key FROM redeemed r \
         ) \
         SELECT ticket_id, program_id, payload, object_id, group_addresses, remaining FROM redeemed"
    );
    Ok(sql_query(statement)
        .bind::<Text, _>(tenant.as_str())
        .bind::<Text, _>(id.as_str())
        .bind::<Text, _>(redemption.as_str())
        .bind::<Timestamptz, _>(now)
        .bind::<Text, _>(EventId::generate().as_str())
        .bind::<Text, _>(EventId::generate().as_str())
        .get_result::<Confirmed>(conn)
        .optional()?)
}

#[derive(diesel::QueryableByName)]
struct HoldFacts {
    #[diesel(sql_type = Text)]
    state: String,
    #[diesel(sql_type = Timestamptz)]
    expires_at: DateTime<Utc>,
    #[diesel(sql_type = Text)]
    ticket_state: String,
    #[diesel(sql_type = Text)]
    program_state: String,
}

/// Why a confirm claimed nothing; `None` when the rows say it should have.
fn confirm_refusal(
    conn: &mut PgConnection,
    tenant: &TenantId,
    id: &HoldId,
    now: DateTime<Utc>,
) -> Outcome<Option<HoldRefusal>> {
    let facts = sql_query(
        "SELECT h.state, h.expires_at, t.state AS ticket_state, p.state AS program_state \
         FROM holds h JOIN tickets t ON t.tenant_id = h.tenant_id AND t.id = h.ticket_id \
         JOIN programs p ON p.tenant_id = t.tenant_id AND p.id = t.program_id \
         WHERE h.tenant_id = $1 AND h.id = $2",
    )
    .bind::<Text, _>(tenant.as_str())
    .bind::<Text, _>(id.as_str())
    .get_result::<HoldFacts>(conn)
    .optional()?;
    let Some(facts) = facts else {
        return Ok(Some(HoldRefusal::NotFound));
    };
    let state = HoldState::parse(&facts.state).ok_or_else(|| corrupt("hold", "unknown state"))?;
    Ok(if state.at(facts.expires_at, now) != HoldState::Held {
        Some(HoldRefusal::NotActive)
    } else if facts.program_state != "active" {
        Some(HoldRefusal::Failure(RedemptionFailure::ProgramSuspended))
    } else if facts.ticket_state == "revoked" {
        Some(HoldRefusal::Failure(RedemptionFailure::TicketRevoked))
    } else if facts.ticket_state == "disabled" {
        Some(HoldRefusal::Failure(RedemptionFailure::TicketDisabled))
    } else {
        None
    })
}

#[derive(diesel::QueryableByName)]
struct StateOnly {
    #[diesel(sql_type = Text)]
    state: String,
}

#[derive(diesel::QueryableByName)]
struct HoldRow {
    #[diesel(sql_type = Text)]
    id: String,
    #[diesel(sql_type = Text)]
    program_id: String,
    #[diesel(sql_type = Text)]
    ticket_id: String,
    #[diesel(sql_type = Text)]
    state: String,
    #[diesel(sql_type = Timestamptz)]
    expires_at: DateTime<Utc>,
    #[diesel(sql_type = Timestamptz)]
    created_at: DateTime<Utc>,
    #[diesel(sql_type = BigInt)]
    remaining: i64,
}

#[derive(diesel::QueryableByName)]
struct GivenBack {
    #[diesel(sql_type = Text)]
    ticket_id: String,
    #[diesel(sql_type = BigInt)]
    remaining: i64,
}

#[derive(diesel::QueryableByName)]
struct RedemptionFacts {
    #[diesel(sql_type = Nullable<Timestamptz>)]
    rolled_back_at: Option<DateTime<Utc>>,
    #[diesel(sql_type = diesel::sql_types::Bool)]
    allow_rollback: bool,
}

/// Rounds of "claimed nothing, yet the rows say it should have": only a change
/// committed concurrently causes one.
const ROUNDS: usize = 3;

impl LifecycleStore for PgStore {
    fn validate(
        &self,
        attempt: &RedemptionAttempt,
    ) -> StoreResult<Result<Validation, RedemptionFailure>> {
        self.with_conn(|conn| {
            if let Some(valid) = try_validate(conn, attempt)? {
                return Ok(Ok(valid));
            }
            // No transaction around it: each refusal and each retry commits on
            // its own (a refusal without waiting for the flush, a hold as usual).
            classify(conn, attempt, |conn| try_validate(conn, attempt))
        })
    }

    fn hold(
        &self,
        attempt: &RedemptionAttempt,
        id: &HoldId,
        expires_at: DateTime<Utc>,
    ) -> StoreResult<Result<Hold, RedemptionFailure>> {
        self.with_conn(|conn| {
            if let Some(hold) = try_hold(conn, attempt, id, expires_at)? {
                return Ok(Ok(hold));
            }
            classify(conn, attempt, |conn| {
                try_hold(conn, attempt, id, expires_at)
            })
        })
    }

    fn confirm(
        &self,
        tenant: &TenantId,
        id: &HoldId,
        now: DateTime<Utc>,
    ) -> StoreResult<Result<Grant, HoldRefusal>> {
        self.with_conn(|conn| {
            for _ in 0..ROUNDS {
                let redemption = RedemptionId::generate();
                if let Some(row) = try_confirm(conn, tenant, id, now, &redemption)? {
                    let program =
                        ProgramId::parse(&row.program_id).map_err(|e| corrupt("ticket", e))?;
                    let redeemed: RedeemedRow = (
                        row.ticket_id,
                        row.payload,
                        row.object_id,
                        row.group_addresses,
                        row.remaining,
                    );
                    return Ok(Ok(into_grant(tenant, &program, redemption, redeemed)?));
                }
                if let Some(refusal) = confirm_refusal(conn, tenant, id, now)? {
                    return Ok(Err(refusal));
                }
            }
            Err(tessera_app::ports::StoreError::Internal(
                "hold kept changing during confirmation".to_owned(),
            )
            .into())
        })
    }

    fn release(
        &self,
        tenant: &TenantId,
        id: &HoldId,
        now: DateTime<Utc>,
    ) -> StoreResult<Result<(), HoldRefusal>> {
        self.with_conn(|conn| {
            // The hold's row lock decides; the ticket's counter (and the redeemer's
            // share, when the hold claimed one) drops in the same statement, and
            // the event says so only for a hold that was live.
            let released = sql_query(
                "WITH released AS ( \
                   UPDATE holds SET state = CASE WHEN expires_at > $3 THEN 'released' ELSE 'expired' END \
                   WHERE tenant_id = $1 AND id = $2 AND state = 'held' \
                   RETURNING ticket_id, program_id, state, redeemer_key \
                 ), lowered AS ( \
                   UPDATE tickets t SET held = t.held - 1 FROM released r \
                   WHERE t.tenant_id = $1 AND t.id = r.ticket_id \
                 ), unshared AS ( \
                   UPDATE redeemer_uses u SET uses = u.uses - 1 FROM released r \
                   WHERE u.tenant_id = $1 AND u.ticket_id = r.ticket_id \
                     AND u.redeemer_key = r.redeemer_key AND u.uses > 0 \
                 ), logged AS ( \
                   INSERT INTO events (tenant_id, id, type, created_at, program_id, ticket_id, data) \
                   SELECT $1, $4, 'ticket.hold_released', $3, r.program_id, r.ticket_id, \
                     jsonb_build_object('holdId', $2::text) \
                   FROM released r WHERE r.state = 'released' \
                 ) \
                 SELECT state FROM released",
            )
            .bind::<Text, _>(tenant.as_str())
            .bind::<Text, _>(id.as_str())
            .bind::<Timestamptz, _>(now)
            .bind::<Text, _>(EventId::generate().as_str())
            .get_result::<StateOnly>(conn)
            .optional()?;
            if released.is_some() {
                return Ok(Ok(()));
            }
            let stored = sql_query("SELECT state FROM holds WHERE tenant_id = $1 AND id = $2")
                .bind::<Text, _>(tenant.as_str())
                .bind::<Text, _>(id.as_str())
                .get_result::<StateOnly>(conn)
                .optional()?;
            Ok(match stored.map(|row| row.state) {
                None => Err(HoldRefusal::NotFound),
                Some(state) if state == HoldState::Confirmed.as_str() => {
                    Err(HoldRefusal::NotActive)
                }
                // Released or expired already: releasing again changes nothing.
                Some(_) => Ok(()),
            })
        })
    }

    fn get_hold(
        &self,
        tenant: &TenantId,
        id: &HoldId,
        now: DateTime<Utc>,
    ) -> StoreResult<Option<Hold>> {
        self.with_conn(|conn| {
            // Counts live holds from `holds` rather than the ticket's counter,
            // which may still include expired holds nobody has reaped.
            let statement = format!(
                "SELECT h.id, h.program_id, h.ticket_id, h.state, h.expires_at, h.created_at, \
                   GREATEST(0, {LIMIT} - t.redemptions - (SELECT count(*) FROM holds x \
                     WHERE x.tenant_id = h.tenant_id AND x.ticket_id = h.ticket_id \
                       AND x.state = 'held' AND x.expires_at > $3))::bigint AS remaining \
                 FROM holds h JOIN tickets t ON t.tenant_id = h.tenant_id AND t.id = h.ticket_id \
                 JOIN programs p ON p.tenant_id = t.tenant_id AND p.id = t.program_id \
                 WHERE h.tenant_id = $1 AND h.id = $2"
            );
            let row = sql_query(statement)
                .bind::<Text, _>(tenant.as_str())
                .bind::<Text, _>(id.as_str())
                .bind::<Timestamptz, _>(now)
                .get_result::<HoldRow>(conn)
                .optional()?;
            row.map(|row| {
                let state =
                    HoldState::parse(&row.state).ok_or_else(|| corrupt("hold", "unknown state"))?;
                Ok(Hold {
                    id: HoldId::parse(&row.id).map_err(|e| corrupt("hold", e))?,
                    program_id: ProgramId::parse(&row.program_id)
                        .map_err(|e| corrupt("hold", e))?,
                    ticket_id: ticket_id(&row.ticket_id)?,
                    state: state.at(row.expires_at, now),
                    expires_at: row.expires_at,
                    created_at: row.created_at,
                    remaining: count("ticket", row.remaining)?,
                })
            })
            .transpose()
        })
    }

    fn rollback(
        &self,
        tenant: &TenantId,
        id: &RedemptionId,
        by: &ApiKeyId,
        reason: Option<RollbackReason>,
        now: DateTime<Utc>,
    ) -> StoreResult<Result<RolledBack, RollbackRefusal>> {
        self.with_conn(|conn| {
            // `rolled_back_at IS NULL`, re-checked under the redemption's row
            // lock, gives the use back exactly once; the ticket's count (and the
            // redeemer's share, when the redemption claimed one) drops in the
            // same statement.
            let statement = format!(
                "WITH undone AS ( \
                   UPDATE redemptions r SET rolled_back_at = $3 FROM programs p \
                   WHERE r.tenant_id = $1 AND r.id = $2 AND r.rolled_back_at IS NULL \
                     AND p.tenant_id = r.tenant_id AND p.id = r.program_id AND p.allow_rollback \
                   RETURNING r.ticket_id, r.redeemer_key \
                 ), unshared AS ( \
                   UPDATE redeemer_uses x SET uses = x.uses - 1 FROM undone u \
                   WHERE x.tenant_id = $1 AND x.ticket_id = u.ticket_id \
                     AND x.redeemer_key = u.redeemer_key AND x.uses > 0 \
                 ), given AS ( \
                   UPDATE tickets t SET redemptions = t.redemptions - 1 FROM programs p, undone u \
                   WHERE t.tenant_id = $1 AND t.id = u.ticket_id \
                     AND p.tenant_id = t.tenant_id AND p.id = t.program_id \
                   RETURNING t.id AS ticket_id, t.program_id, \
                     GREATEST(0, {LIMIT} - t.redemptions - t.held)::bigint AS remaining \
                 ), logged AS ( \
                   INSERT INTO events (tenant_id, id, type, created_at, program_id, ticket_id, data) \
                   SELECT $1, $4, 'ticket.redemption_rolled_back', $3, g.program_id, g.ticket_id, \
                     jsonb_build_object('redemptionId', $2::text, 'by', $5::text, 'reason', $6::text, \
                       'remaining', g.remaining) \
                   FROM given g \
                 ) \
                 SELECT ticket_id, remaining FROM given"
            );
            for _ in 0..ROUNDS {
                let given = sql_query(&statement)
                    .bind::<Text, _>(tenant.as_str())
                    .bind::<Text, _>(id.as_str())
                    .bind::<Timestamptz, _>(now)
                    .bind::<Text, _>(EventId::generate().as_str())
                    .bind::<Text, _>(by.as_str())
                    .bind::<Nullable<Text>, _>(reason.as_ref().map(RollbackReason::as_str))
                    .get_result::<GivenBack>(conn)
                    .optional()?;
                if let Some(given) = given {
                    return Ok(Ok(RolledBack {
                        redemption_id: id.clone(),
                        ticket_id: ticket_id(&given.ticket_id)?,
                        remaining: count("ticket", given.remaining)?,
                        rolled_back_at: now,
                    }));
                }
                let facts = sql_query(
                    "SELECT r.rolled_back_at, p.allow_rollback FROM redemptions r \
                     JOIN programs p ON p.tenant_id = r.tenant_id AND p.id = r.program_id \
                     WHERE r.tenant_id = $1 AND r.id = $2",
                )
                .bind::<Text, _>(tenant.as_str())
                .bind::<Text, _>(id.as_str())
                .get_result::<RedemptionFacts>(conn)
                .optional()?;
                match facts {
                    None => return Ok(Err(RollbackRefusal::NotFound)),
                    Some(facts) if facts.rolled_back_at.is_some() => {
                        return Ok(Err(RollbackRefusal::AlreadyRolledBack))
                    }
                    Some(facts) if !facts.allow_rollback => {
                        return Ok(Err(RollbackRefusal::NotAllowed))
                    }
                    // A concurrent rollback that did not commit: try again.
                    Some(_) => {}
                }
            }
            Err(tessera_app::ports::StoreError::Internal(
                "redemption kept changing during rollback".to_owned(),
            )
            .into())
        })
    }
}
