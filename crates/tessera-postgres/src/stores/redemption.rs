use chrono::{DateTime, Utc};
use diesel::sql_types::{Array, BigInt, Nullable, Text, Timestamptz};
use diesel::{
    sql_query, ExpressionMethods, OptionalExtension, PgConnection, QueryDsl, RunQueryDsl,
    SelectableHelper,
};
use serde_json::json;
use tessera_app::model::{CallerKey, Grant, RedemptionAttempt, SecretHash, TicketView};
use tessera_app::ports::{Later, RedemptionStore, StoreError, StoreResult};
use tessera_domain::{
    EventId, EventType, Payload, RedemptionFailure, TicketId, TicketState,
    EMAIL_MISMATCHES_BEFORE_LOCK,
};
use tessera_domain::{ProgramId, RedemptionId, TenantId};

use super::programs::find as find_program;
use super::tickets::ticket_views;
use crate::error::{corrupt, Outcome};
use crate::events::{record, Event};
use crate::models::TicketRow;
use crate::schema::{redeemer_uses, tickets};
use crate::PgStore;

// The SQL function's parameters are its contract (one per rule input), so the
// generated Rust function has as many.
#[allow(clippy::too_many_arguments)]
mod sql {
    use diesel::sql_types::*;

    diesel::define_sql_function! {
        /// The whole redemption as one statement: `tessera_redeem` (migration
        /// `redeem_function`) is one conditional `UPDATE tickets … FROM programs … WHERE
        /// <every rule> RETURNING` with the `ticket.redeemed` / `ticket.exhausted`
        /// events inserted by the same statement, so a use is counted, and recorded,
        /// iff every rule held at the instant of the write. Concurrent attempts queue
        /// on the ticket's row lock and re-check the predicate against the committed
        /// row, so n uses left yield at most n successes. Called through Diesel's query
        /// builder, the call is a cached prepared statement, and PL/pgSQL caches the
        /// plan of the statement inside: nothing is parsed or planned per redemption.
        ///
        /// Its predicates are the rules of `Ticket::check_redeemable` (and
        /// `Program::check_redeemable`), which [`super::classify`] runs to say why it refused.
        /// The migration cannot be edited once released, so this is where the two are
        /// named together; `tests/rules_agree.rs` checks that they agree on every
        /// combination of program state, window, ticket state, limit and email.
        fn tessera_redeem(
            tenant_id: Text,
            code_hash: Bytea,
            program_id: Text,
            now: Timestamptz,
            email: Nullable<Text>,
            redeemed_event_id: Text,
            exhausted_event_id: Text,
            redemption_id: Text,
            redeemer_key: Nullable<Bytea>,
        ) -> Record<(Text, Nullable<Text>, Text, Array<Text>, BigInt)>;
    }
}
use sql::tessera_redeem;

/// What `tessera_redeem` returns: ticket id, payload, object id, groups, remaining.
pub(crate) type RedeemedRow = (String, Option<String>, String, Vec<String>, i64);

/// The grant, built once from the statement's row and the attempt it answers.
pub(crate) fn into_grant(
    tenant_id: &TenantId,
    program_id: &ProgramId,
    redemption_id: RedemptionId,
    (ticket_id, payload, object_id, group_addresses, remaining): RedeemedRow,
) -> Outcome<Grant> {
    Ok(Grant {
        tenant_id: tenant_id.clone(),
        program_id: program_id.clone(),
        ticket_id: TicketId::parse(&ticket_id).map_err(|e| corrupt("ticket", e))?,
        redemption_id,
        remaining: u32::try_from(remaining).map_err(|e| corrupt("ticket", e))?,
        object_id,
        group_addresses,
        payload: payload
            .map(Payload::from_json_text)
            .transpose()
            .map_err(|e| corrupt("ticket", e))?,
    })
}

fn try_redeem(conn: &mut PgConnection, attempt: &RedemptionAttempt) -> Outcome<Option<Grant>> {
    let redemption_id = RedemptionId::generate();
    diesel::select(tessera_redeem(
        attempt.tenant_id.as_str(),
        &attempt.code_hash.0[..],
        attempt.program_id.as_str(),
        attempt.now,
        attempt.email.as_deref(),
        EventId::generate().as_str(),
        EventId::generate().as_str(),
        redemption_id.as_str(),
        attempt.redeemer.as_ref().map(|hash| &hash.0[..]),
    ))
    .get_result::<RedeemedRow>(conn)
    .optional()?
    .map(|row| into_grant(&attempt.tenant_id, &attempt.program_id, redemption_id, row))
    .transpose()
}

/// The ticket the attempt names. Read without a lock: a failure that is not a
/// wrong email writes nothing to the ticket, so an unknown code and a known code
/// that fails a rule cost the same (one read, one event) and take the same time.
///
/// The ticket is found by its unique (tenant, code hash) alone and its program
/// compared afterwards: a `program_id` condition in the statement lets the planner
/// walk the program's tickets on `tickets_by_program` when the statistics have not
/// seen the program yet (migration `program_id_as_filter`, tests/plans.rs).
fn find_ticket(
    conn: &mut PgConnection,
    attempt: &RedemptionAttempt,
) -> Outcome<Option<TicketView>> {
    let found = ticket_views()
        .filter(tickets::tenant_id.eq(attempt.tenant_id.as_str()))
        .filter(tickets::code_hash.eq(&attempt.code_hash.0[..]))
        .select(TicketRow::as_select())
        .get_result(conn)
        .optional()?
        .map(TicketRow::into_view)
        .transpose()?;
    Ok(found.filter(|view| view.ticket.program_id == attempt.program_id))
}

diesel::define_sql_function! {
    /// Expires the ticket's holds whose time is up and returns how many it still
    /// counts (migration `redemption_lifecycle`).
    fn tessera_reap_holds(tenant_id: Text, ticket_id: Text, now: Timestamptz) -> BigInt;
}

/// Reaps the ticket's expired holds; the live holds it still counts.
fn reap_holds(
    conn: &mut PgConnection,
    attempt: &RedemptionAttempt,
    ticket: &TicketId,
) -> Outcome<u32> {
    let held = diesel::select(tessera_reap_holds(
        attempt.tenant_id.as_str(),
        ticket.as_str(),
        attempt.now,
    ))
    .get_result::<i64>(conn)?;
    u32::try_from(held).map_err(|e| corrupt("ticket", e))
}

/// How many uses the attempt's redeemer has had of `ticket`; `None` when the
/// attempt names no redeemer. Read only while classifying a refusal.
fn redeemer_uses(
    conn: &mut PgConnection,
    attempt: &RedemptionAttempt,
    ticket: &TicketId,
) -> Outcome<Option<u32>> {
    let Some(key) = attempt.redeemer else {
        return Ok(None);
    };
    let uses: Option<i64> = redeemer_uses::table
        .filter(redeemer_uses::tenant_id.eq(attempt.tenant_id.as_str()))
        .filter(redeemer_uses::ticket_id.eq(ticket.as_str()))
        .filter(redeemer_uses::redeemer_key.eq(&key.0[..]))
        .select(redeemer_uses::uses)
        .get_result(conn)
        .optional()?;
    Ok(Some(
        u32::try_from(uses.unwrap_or(0)).map_err(|e| corrupt("redeemer uses", e))?,
    ))
}

#[derive(diesel::QueryableByName)]
struct CountedFailure {
    #[diesel(sql_type = BigInt)]
    failed_attempts: i64,
    #[diesel(sql_type = Text)]
    state: String,
    #[diesel(sql_type = Nullable<Timestamptz>)]
    locked_until: Option<chrono::DateTime<chrono::Utc>>,
}

/// Each earlier lock in a row doubles the next one, up to 2^16 times the base
/// (900 s × 65536 ≈ 1.9 years: a ceiling nobody reaches by accident).
const MAX_LOCK_DOUBLINGS: i32 = 16;

/// The lock ends a wrong email can set, `now + email_lock_seconds × 2^k` for
/// k = 0..=MAX_LOCK_DOUBLINGS: the statement picks the one for the ticket's
/// earlier locks (element k + 1, arrays start at 1).
fn lock_ends(attempt: &RedemptionAttempt) -> Vec<chrono::DateTime<chrono::Utc>> {
    (0..=MAX_LOCK_DOUBLINGS)
        .map(|doublings| {
            attempt.now
                + chrono::Duration::seconds(i64::from(attempt.email_lock_seconds) << doublings)
        })
        .collect()
}

/// Counts one more consecutive wrong email on a ticket that is active (or whose
/// lock has expired: then the count starts over at one), locking it at the limit
/// until `now + email_lock_seconds × 2^(earlier locks)`, in one conditional
/// statement (so concurrent wrong emails count exactly). `false` when the ticket
/// was no longer active: the caller classifies again.
fn count_email_mismatch(
    conn: &mut PgConnection,
    attempt: &RedemptionAttempt,
    ticket: &TicketId,
) -> Outcome<bool> {
    // Hand-written: one conditional UPDATE counts and locks, exact under
    // concurrency. `n` is the new count; SET expressions see the old row. The
    // lock's end is picked from the precomputed ends by subscript: Citus refuses
    // timestamptz + interval (STABLE) on columns and in CASE.
    const N: &str = "((CASE WHEN state = 'locked' THEN 0 ELSE failed_attempts END) + 1)";
    let counted = sql_query(format!(
        "UPDATE tickets SET failed_attempts = {N}, last_failed_at = $3, \
         state = CASE WHEN {N} >= $4 THEN 'locked' ELSE 'active' END, \
         locked_until = CASE WHEN {N} >= $4 \
             THEN ($5::timestamptz[])[LEAST(email_locks, $6) + 1] ELSE NULL END, \
         email_locks = email_locks + CASE WHEN {N} >= $4 THEN 1 ELSE 0 END, \
         version = version + CASE WHEN {N} >= $4 OR state = 'locked' THEN 1 ELSE 0 END \
         WHERE tenant_id = $1 AND id = $2 \
         AND (state = 'active' OR (state = 'locked' AND locked_until <= $3)) \
         RETURNING failed_attempts, state, locked_until"
    ))
    .bind::<Text, _>(attempt.tenant_id.as_str())
    .bind::<Text, _>(ticket.as_str())
    .bind::<Timestamptz, _>(attempt.now)
    .bind::<BigInt, _>(i64::from(EMAIL_MISMATCHES_BEFORE_LOCK))
    .bind::<Array<Timestamptz>, _>(lock_ends(attempt))
    .bind::<diesel::sql_types::Integer, _>(MAX_LOCK_DOUBLINGS)
    .get_result::<CountedFailure>(conn)
    .optional()?;
    let Some(counted) = counted else {
        return Ok(false);
    };
    // The WHERE admits only active (or expired) tickets, and an expired lock
    // restarts the count at one, so "locked" here means this update locked it:
    // the event is written exactly once per lock.
    if counted.state == TicketState::Locked.as_str() {
        record(
            conn,
            Event {
                tenant: &attempt.tenant_id,
                kind: EventType::TicketLocked,
                at: attempt.now,
                program: Some(&attempt.program_id),
                ticket: Some(ticket),
                data: json!({
                    "failedAttempts": counted.failed_attempts,
                    "lockedUntil": counted.locked_until,
                }),
            },
        )?;
    }
    Ok(true)
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
            kind: EventType::TicketRedemptionFailed,
            at: attempt.now,
            program: Some(&attempt.program_id),
            ticket,
            data: json!({ "reason": reason.code() }),
        },
    )
}

/// Rounds of "refused, yet the rows read say redeemable" (or "wrong email, yet
/// no longer active") before giving up: only a change committed concurrently
/// causes one.
const CLASSIFY_ROUNDS: usize = 3;

/// Why the conditional UPDATE matched nothing, with the failure written down.
/// The reason is `Ticket::check_redeemable`'s, which must refuse exactly when
/// `tessera_redeem` does (pinned by `tests/rules_agree.rs`): a rule only the SQL
/// had would end here in "kept changing" instead of a reason.
///
/// `retry` is the statement that refused (a redemption, a hold, a validation),
/// run again when the rows say it should have matched. Holds are the one rule the
/// domain's check does not see: when it says redeemable (or wrong email, which it
/// checks after exhaustion, or the redeemer's share spent, which an expired hold
/// may still claim), the ticket's expired holds are reaped and its live ones
/// counted as used before deciding.
pub(crate) fn classify<T>(
    conn: &mut PgConnection,
    attempt: &RedemptionAttempt,
    retry: impl Fn(&mut PgConnection) -> Outcome<Option<T>>,
) -> Outcome<Result<T, RedemptionFailure>> {
    for _ in 0..CLASSIFY_ROUNDS {
        let program = find_program(conn, &attempt.tenant_id, &attempt.program_id)?;
        let view = find_ticket(conn, attempt)?;
        let (Some(program), Some(view)) = (program, view) else {
            record_failure(conn, attempt, None, RedemptionFailure::TicketNotFound)?;
            return Ok(Err(RedemptionFailure::TicketNotFound));
        };
        let email = attempt.email.as_deref();
        let mut uses = redeemer_uses(conn, attempt, &view.ticket.id)?;
        let mut verdict = view
            .ticket
            .check_redeemable(&program, attempt.now, email)
            .and_then(|()| view.ticket.check_redeemer(uses));
        if matches!(
            verdict,
            Ok(())
                | Err(RedemptionFailure::EmailMismatch | RedemptionFailure::RedeemerLimitReached)
        ) {
            let held = reap_holds(conn, attempt, &view.ticket.id)?;
            // Reaping gives expired holds' redeemer shares back too.
            if verdict == Err(RedemptionFailure::RedeemerLimitReached) {
                uses = redeemer_uses(conn, attempt, &view.ticket.id)?;
                verdict = view
                    .ticket
                    .check_redeemable(&program, attempt.now, email)
                    .and_then(|()| view.ticket.check_redeemer(uses));
            }
            if held > 0 {
                let mut counted = view.ticket.clone();
                counted.redemptions = counted.redemptions.saturating_add(held);
                verdict = counted
                    .check_redeemable(&program, attempt.now, email)
                    .and_then(|()| counted.check_redeemer(uses));
            }
        }
        match verdict {
            // No email at all is not a wrong guess at it: refused, never counted
            // towards the lock (else anyone holding the code locks its owner out).
            Err(RedemptionFailure::EmailMismatch) if attempt.email.is_none() => {
                let reason = RedemptionFailure::EmailMismatch;
                record_failure(conn, attempt, Some(&view.ticket.id), reason)?;
                return Ok(Err(reason));
            }
            Err(RedemptionFailure::EmailMismatch) => {
                if count_email_mismatch(conn, attempt, &view.ticket.id)? {
                    let reason = RedemptionFailure::EmailMismatch;
                    record_failure(conn, attempt, Some(&view.ticket.id), reason)?;
                    return Ok(Err(reason));
                }
                // Locked or disabled meanwhile: classify again.
            }
            Err(reason) => {
                record_failure(conn, attempt, Some(&view.ticket.id), reason)?;
                return Ok(Err(reason));
            }
            // Became redeemable after the UPDATE looked: try again.
            Ok(()) => {
                if let Some(done) = retry(conn)? {
                    return Ok(Ok(done));
                }
            }
        }
    }
    Err(
        StoreError::Internal("redemption state kept changing during classification".to_owned())
            .into(),
    )
}

/// The attempt a probe makes: under the probe tenant, so nothing can match.
fn probe_attempt(program: &ProgramId, now: DateTime<Utc>) -> RedemptionAttempt {
    RedemptionAttempt {
        tenant_id: crate::events::probe_tenant(),
        program_id: program.clone(),
        code_hash: SecretHash([0; 32]),
        email: None,
        now,
        redeemer: None,
        // Never read: nothing matches, so no wrong email is counted.
        email_lock_seconds: 1,
    }
}

fn probe_matched() -> crate::error::Failure {
    StoreError::Internal("a probe matched a ticket".to_owned()).into()
}

impl PgStore {
    /// A refused attempt's classification, in one transaction.
    fn classify_on_conn(
        &self,
        attempt: &RedemptionAttempt,
    ) -> StoreResult<Result<Grant, RedemptionFailure>> {
        self.with_conn(|conn| {
            diesel::Connection::transaction(conn, |conn| {
                classify(conn, attempt, |conn| try_redeem(conn, attempt))
            })
        })
    }
}

impl RedemptionStore for PgStore {
    fn redeem(&self, attempt: &RedemptionAttempt) -> StoreResult<Result<Grant, RedemptionFailure>> {
        if let Some(group) = &self.group_commit {
            // The hot path, grouped: one statement and commit shared with
            // concurrent attempts; a refusal is classified on a pooled connection.
            if let Some(redeemed) = group.redeem(attempt)? {
                return Ok(Ok(redeemed));
            }
            return self.classify_on_conn(attempt);
        }
        self.with_conn(|conn| {
            // The hot path: one statement, committed on its own.
            if let Some(redeemed) = try_redeem(conn, attempt)? {
                return Ok(Ok(redeemed));
            }
            diesel::Connection::transaction(conn, |conn| {
                classify(conn, attempt, |conn| try_redeem(conn, attempt))
            })
        })
    }

    fn probe(&self, program: &ProgramId, now: DateTime<Utc>) -> StoreResult<()> {
        // What `redeem` does for an unknown code, step by step, statement for
        // statement (through the group commit too when it is on, so the probe waits
        // as an attempt does), under the probe tenant: nothing can match, and its
        // failure event is written and committed like the real one's (a WAL flush),
        // then deleted by event maintenance.
        let attempt = &probe_attempt(program, now);
        match &self.group_commit {
            Some(group) => {
                if group.redeem(attempt)?.is_some() {
                    return Err(probe_matched().into());
                }
            }
            None => {
                if self.with_conn(|conn| try_redeem(conn, attempt))?.is_some() {
                    return Err(probe_matched().into());
                }
            }
        }
        self.probe_refused(program, now)
    }

    fn redeem_later(
        &self,
        attempt: &RedemptionAttempt,
        caller_key: Option<CallerKey>,
    ) -> Option<Later<Option<Grant>>> {
        let queued = self
            .group_commit
            .as_ref()?
            .redeem_later(attempt, caller_key);
        Some(Box::pin(async move { Ok(queued.await?) }))
    }

    fn classify_refused(
        &self,
        attempt: &RedemptionAttempt,
    ) -> StoreResult<Result<Grant, RedemptionFailure>> {
        self.classify_on_conn(attempt)
    }

    fn probe_later(&self, program: &ProgramId, now: DateTime<Utc>) -> Option<Later<()>> {
        let queued = self
            .group_commit
            .as_ref()?
            .redeem_later(&probe_attempt(program, now), None);
        Some(Box::pin(async move {
            match queued.await? {
                Some(_) => Err(probe_matched().into()),
                None => Ok(()),
            }
        }))
    }

    fn probe_refused(&self, program: &ProgramId, now: DateTime<Utc>) -> StoreResult<()> {
        // The classification of an unknown code: both reads, the event, the commit.
        let attempt = &probe_attempt(program, now);
        self.with_conn(|conn| {
            diesel::Connection::transaction(conn, |conn| {
                let program = find_program(conn, &attempt.tenant_id, &attempt.program_id)?;
                let view = find_ticket(conn, attempt)?;
                debug_assert!(program.is_none() && view.is_none());
                record_failure(conn, attempt, None, RedemptionFailure::TicketNotFound)
            })
        })
    }
}
