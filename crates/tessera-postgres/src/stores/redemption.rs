use chrono::{DateTime, Utc};
use diesel::{OptionalExtension, PgConnection, RunQueryDsl};
use tessera_app::model::{CallerKey, Grant, RedemptionAttempt, SharedFailure};
use tessera_app::ports::{Later, RedemptionStore, StoreResult};
use tessera_domain::{EventId, Payload, RedemptionFailure, TicketId};
use tessera_domain::{ProgramId, RedemptionId, TenantId};

pub(crate) use super::refusal::classify;
use super::refusal::{probe_attempt, probe_matched, refuse_probe};
use crate::error::{corrupt, Outcome};
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

impl PgStore {
    /// A refused attempt's classification: one statement, unless the rows
    /// changed meanwhile.
    fn classify_on_conn(
        &self,
        attempt: &RedemptionAttempt,
    ) -> StoreResult<Result<Grant, RedemptionFailure>> {
        self.with_conn(|conn| classify(conn, attempt, |conn| try_redeem(conn, attempt)))
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
            classify(conn, attempt, |conn| try_redeem(conn, attempt))
        })
    }

    fn probe(
        &self,
        program: &ProgramId,
        now: DateTime<Utc>,
        shared: Option<SharedFailure>,
    ) -> StoreResult<()> {
        // What `redeem` does for an unknown code, step by step, statement for
        // statement (through the group commit too when it is on, so the probe waits
        // as an attempt does), under the probe tenant: nothing can match, and its
        // failure event is written and committed like the real one's (a WAL flush),
        // then deleted by event maintenance.
        let attempt = &probe_attempt(program, now, None);
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
        self.probe_refused(program, now, shared)
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
            .redeem_later(&probe_attempt(program, now, None), None);
        Some(Box::pin(async move {
            match queued.await? {
                Some(_) => Err(probe_matched().into()),
                None => Ok(()),
            }
        }))
    }

    fn probe_refused(
        &self,
        program: &ProgramId,
        now: DateTime<Utc>,
        shared: Option<SharedFailure>,
    ) -> StoreResult<()> {
        // The classification of an unknown code: the same statement, under the
        // probe tenant.
        let attempt = &probe_attempt(program, now, shared);
        self.with_conn(|conn| refuse_probe(conn, attempt))
    }
}
