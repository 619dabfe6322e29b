use diesel::sql_types::{Array, BigInt, Bytea, Nullable, Text, Timestamptz};
use diesel::{sql_query, OptionalExtension, PgConnection, QueryableByName, RunQueryDsl};
use serde_json::json;
use tessera_app::ports::{
    Redeemed, RedemptionAttempt, RedemptionStore, StoreError, StoreResult, TicketView,
};
use tessera_domain::{EventId, Payload, RedemptionFailure, TicketId, TicketState};

use super::programs::find as find_program;
use crate::error::{corrupt, Outcome};
use crate::events::{record, Event};
use crate::models::{TicketRow, TICKET_VIEW_COLUMNS};
use crate::PgStore;

/// The whole redemption as one statement: `tessera_redeem` (migration
/// `redeem_function`) is one conditional `UPDATE tickets … FROM programs … WHERE
/// <every rule> RETURNING` with the `ticket.redeemed` / `ticket.exhausted` events
/// inserted by the same statement, so a use is counted, and recorded, iff every
/// rule held at the instant of the write. Concurrent attempts queue on the
/// ticket's row lock and re-check the predicate against the committed row, so n
/// uses left yield at most n successes. It lives in a PL/pgSQL function because
/// PostgreSQL then plans it once per connection rather than once per call.
const REDEEM: &str = "SELECT ticket_id, payload, object_id, group_addresses, remaining \
                      FROM tessera_redeem($1, $2, $3, $4, $5, $6, $7)";

#[derive(QueryableByName)]
struct RedeemedRow {
    #[diesel(sql_type = Text)]
    ticket_id: String,
    #[diesel(sql_type = Nullable<Text>)]
    payload: Option<String>,
    #[diesel(sql_type = Text)]
    object_id: String,
    #[diesel(sql_type = Array<Text>)]
    group_addresses: Vec<String>,
    #[diesel(sql_type = BigInt)]
    remaining: i64,
}

impl RedeemedRow {
    fn into_redeemed(self) -> Outcome<Redeemed> {
        Ok(Redeemed {
            ticket_id: TicketId::parse(&self.ticket_id).map_err(|e| corrupt("ticket", e))?,
            remaining: u32::try_from(self.remaining).map_err(|e| corrupt("ticket", e))?,
            object_id: self.object_id,
            group_addresses: self.group_addresses,
            payload: self
                .payload
                .map(Payload::from_json_text)
                .transpose()
                .map_err(|e| corrupt("ticket", e))?,
        })
    }
}

fn try_redeem(conn: &mut PgConnection, attempt: &RedemptionAttempt) -> Outcome<Option<Redeemed>> {
    sql_query(REDEEM)
        .bind::<Text, _>(attempt.tenant_id.as_str())
        .bind::<Bytea, _>(&attempt.code_hash.0[..])
        .bind::<Text, _>(attempt.program_id.as_str())
        .bind::<Timestamptz, _>(attempt.now)
        .bind::<Nullable<Text>, _>(attempt.email.as_deref())
        .bind::<Text, _>(EventId::generate().as_str())
        .bind::<Text, _>(EventId::generate().as_str())
        .get_result::<RedeemedRow>(conn)
        .optional()?
        .map(RedeemedRow::into_redeemed)
        .transpose()
}

/// The ticket the attempt names, locked so the failure counters below cannot race
/// a concurrent attempt.
fn lock_ticket(
    conn: &mut PgConnection,
    attempt: &RedemptionAttempt,
) -> Outcome<Option<TicketView>> {
    sql_query(format!(
        "SELECT {TICKET_VIEW_COLUMNS} FROM tickets t \
         JOIN programs p ON p.tenant_id = t.tenant_id AND p.id = t.program_id \
         WHERE t.tenant_id = $1 AND t.code_hash = $2 AND t.program_id = $3 \
         FOR UPDATE OF t"
    ))
    .bind::<Text, _>(attempt.tenant_id.as_str())
    .bind::<Bytea, _>(&attempt.code_hash.0[..])
    .bind::<Text, _>(attempt.program_id.as_str())
    .get_result::<TicketRow>(conn)
    .optional()?
    .map(TicketRow::into_view)
    .transpose()
}

/// Records a failed attempt on an existing ticket: its time, and for a wrong email
/// one more consecutive failure, locking the ticket at the limit.
fn count_failure(
    conn: &mut PgConnection,
    attempt: &RedemptionAttempt,
    view: &TicketView,
    reason: RedemptionFailure,
) -> Outcome<()> {
    let ticket = &view.ticket;
    let (failed_attempts, state) = if reason == RedemptionFailure::EmailMismatch {
        ticket.after_email_mismatch()
    } else {
        (ticket.failed_attempts, ticket.state)
    };
    let locks = state == TicketState::Locked && ticket.state != TicketState::Locked;
    sql_query(
        "UPDATE tickets SET last_failed_at = $3, failed_attempts = $4, state = $5, \
         version = version + $6 WHERE tenant_id = $1 AND id = $2",
    )
    .bind::<Text, _>(attempt.tenant_id.as_str())
    .bind::<Text, _>(ticket.id.as_str())
    .bind::<Timestamptz, _>(attempt.now)
    .bind::<BigInt, _>(i64::from(failed_attempts))
    .bind::<Text, _>(state.as_str())
    // Locking is a change of state, which admins edit under optimistic locking.
    .bind::<BigInt, _>(i64::from(locks))
    .execute(conn)?;
    if locks {
        record(
            conn,
            Event {
                tenant: &attempt.tenant_id,
                kind: "ticket.locked",
                at: attempt.now,
                program: Some(&attempt.program_id),
                ticket: Some(&ticket.id),
                data: json!({ "failedAttempts": failed_attempts }),
            },
        )?;
    }
    Ok(())
}

fn record_failure(
    conn: &mut PgConnection,
    attempt: &RedemptionAttempt,
    ticket: Option<&TicketId>,
    reason: RedemptionFailure,
) -> Outcome<()> {
    record(
        conn,
        Event {
            tenant: &attempt.tenant_id,
            kind: "ticket.redemption_failed",
            at: attempt.now,
            program: Some(&attempt.program_id),
            ticket,
            data: json!({ "reason": reason.code() }),
        },
    )
}

/// Rounds of "refused, yet the locked rows say redeemable" before giving up: only
/// a change committed between the UPDATE and the lock causes one.
const CLASSIFY_ROUNDS: usize = 3;

/// Why the conditional UPDATE matched nothing, with the failure written down.
fn classify(
    conn: &mut PgConnection,
    attempt: &RedemptionAttempt,
) -> Outcome<Result<Redeemed, RedemptionFailure>> {
    for _ in 0..CLASSIFY_ROUNDS {
        let program = find_program(conn, &attempt.tenant_id, &attempt.program_id)?;
        let view = lock_ticket(conn, attempt)?;
        let (Some(program), Some(view)) = (program, view) else {
            record_failure(conn, attempt, None, RedemptionFailure::TicketNotFound)?;
            return Ok(Err(RedemptionFailure::TicketNotFound));
        };
        match view
            .ticket
            .check_redeemable(&program, attempt.now, attempt.email.as_deref())
        {
            Err(reason) => {
                count_failure(conn, attempt, &view, reason)?;
                record_failure(conn, attempt, Some(&view.ticket.id), reason)?;
                return Ok(Err(reason));
            }
            // Became redeemable after the UPDATE looked: try again, now under lock.
            Ok(()) => {
                if let Some(redeemed) = try_redeem(conn, attempt)? {
                    return Ok(Ok(redeemed));
                }
            }
        }
    }
    Err(
        StoreError::Internal("redemption state kept changing during classification".to_owned())
            .into(),
    )
}

impl RedemptionStore for PgStore {
    fn redeem(
        &self,
        attempt: &RedemptionAttempt,
    ) -> StoreResult<Result<Redeemed, RedemptionFailure>> {
        self.with_conn(|conn| {
            // The hot path: one statement, committed on its own.
            if let Some(redeemed) = try_redeem(conn, attempt)? {
                return Ok(Ok(redeemed));
            }
            diesel::Connection::transaction(conn, |conn| classify(conn, attempt))
        })
    }
}
