//! Why a conditional statement refused an attempt, written down in one further
//! statement: `tessera_refuse` (migration `refusal_in_one_statement`) reads the
//! program and the ticket, names the reason, counts a wrong email towards the
//! lock, writes the failure event and adds the failure to the shared throttle
//! counts — one round trip and one commit, for an unknown code as for a known one.

use chrono::{DateTime, Utc};
use diesel::{PgConnection, RunQueryDsl};
use tessera_app::model::{RedemptionAttempt, SecretHash};
use tessera_app::ports::StoreError;
use tessera_domain::{EventId, ProgramId, RedemptionFailure, EMAIL_MISMATCHES_BEFORE_LOCK};

use crate::error::{corrupt, Outcome};

/// Each earlier lock in a row doubles the next one, up to 2^16 times the base
/// (900 s × 65536 ≈ 1.9 years: a ceiling nobody reaches by accident).
const MAX_LOCK_DOUBLINGS: u32 = 16;

/// The lock ends a wrong email can set, `now + email_lock_seconds × 2^k` for
/// k = 0..=MAX_LOCK_DOUBLINGS: the statement picks the one for the ticket's
/// earlier locks. Computed here: Citus refuses timestamptz + interval (STABLE)
/// on columns and in CASE.
fn lock_ends(attempt: &RedemptionAttempt) -> Vec<DateTime<Utc>> {
    (0..=MAX_LOCK_DOUBLINGS)
        .map(|doublings| {
            attempt.now
                + chrono::Duration::seconds(i64::from(attempt.email_lock_seconds) << doublings)
        })
        .collect()
}

// The SQL function's parameters are its contract, so the generated Rust function
// has as many.
#[allow(clippy::too_many_arguments)]
mod sql {
    use diesel::sql_types::*;

    diesel::define_sql_function! {
        /// `tessera_refuse` (migration `refusal_in_one_statement`). Called through
        /// the query builder, the call is a cached prepared statement, and
        /// PL/pgSQL caches the plans inside: nothing is parsed or planned per refusal.
        fn tessera_refuse(
            tenant_id: Text,
            code_hash: Bytea,
            program_id: Text,
            now: Timestamptz,
            email: Nullable<Text>,
            redeemer_key: Nullable<Bytea>,
            lock_ends: Array<Timestamptz>,
            lock_ends_json: Jsonb,
            mismatches_before_lock: Integer,
            failed_event_id: Text,
            locked_event_id: Text,
            subjects: Array<Text>,
            minute: BigInt,
        ) -> Record<(Nullable<Text>, Nullable<Array<Integer>>)>;
    }
}

/// The refusal of `attempt`, written down: `Some(reason)`, or `None` when the
/// rows say it would now succeed (a change committed meanwhile; nothing was
/// written, and the caller runs its statement again). A shared failure the
/// attempt carries is counted by the same statement and its counts reported.
fn refuse(
    conn: &mut PgConnection,
    attempt: &RedemptionAttempt,
) -> Outcome<Option<RedemptionFailure>> {
    let ends = lock_ends(attempt);
    let (subjects, minute) = attempt
        .shared_failure
        .as_ref()
        .map_or((Vec::new(), 0), |shared| (shared.keys(), shared.minute));
    let (reason, failure_counts): (Option<String>, Option<Vec<i32>>) =
        diesel::select(sql::tessera_refuse(
            attempt.tenant_id.as_str(),
            &attempt.code_hash.0[..],
            attempt.program_id.as_str(),
            attempt.now,
            attempt.email.as_deref(),
            attempt.redeemer.as_ref().map(|hash| &hash.0[..]),
            &ends,
            serde_json::json!(ends),
            i32::try_from(EMAIL_MISMATCHES_BEFORE_LOCK).unwrap_or(i32::MAX),
            EventId::generate().as_str(),
            EventId::generate().as_str(),
            &subjects,
            minute,
        ))
        .get_result(conn)?;
    let Some(reason) = reason else {
        return Ok(None);
    };
    if let (Some(shared), Some(counts)) = (&attempt.shared_failure, failure_counts) {
        let counts = counts
            .into_iter()
            .map(|count| u32::try_from(count).map_err(|e| corrupt("throttle count", e)))
            .collect::<Outcome<Vec<u32>>>()?;
        shared.counted(counts);
    }
    RedemptionFailure::parse(&reason)
        .map(Some)
        .ok_or_else(|| corrupt("refusal", format!("unknown reason {reason:?}")))
}

/// Rounds of "refused, yet the rows read say redeemable" before giving up: only
/// a change committed concurrently causes one.
const CLASSIFY_ROUNDS: usize = 3;

/// Why the conditional statement `retry` (a redemption, a hold, a validation)
/// matched nothing, with the failure written down; `retry` runs again when the
/// rows say it should have matched. Each call is its own statement: no
/// transaction is held open across the round trips.
///
/// The reason is `Ticket::check_redeemable`'s then `check_redeemer`'s, which
/// `tessera_refusal_reason` mirrors (pinned by `tests/rules_agree.rs`); holds,
/// which the domain's check does not see, are reaped and counted by the function.
pub(crate) fn classify<T>(
    conn: &mut PgConnection,
    attempt: &RedemptionAttempt,
    retry: impl Fn(&mut PgConnection) -> Outcome<Option<T>>,
) -> Outcome<Result<T, RedemptionFailure>> {
    for _ in 0..CLASSIFY_ROUNDS {
        if let Some(reason) = refuse(conn, attempt)? {
            return Ok(Err(reason));
        }
        // Became redeemable after the statement looked: try again.
        if let Some(done) = retry(conn)? {
            return Ok(Ok(done));
        }
    }
    Err(
        StoreError::Internal("redemption state kept changing during classification".to_owned())
            .into(),
    )
}

/// The attempt a probe makes: under the probe tenant, so nothing can match.
pub(crate) fn probe_attempt(
    program: &ProgramId,
    now: DateTime<Utc>,
    shared_failure: Option<tessera_app::model::SharedFailure>,
) -> RedemptionAttempt {
    RedemptionAttempt {
        tenant_id: crate::events::probe_tenant(),
        program_id: program.clone(),
        code_hash: SecretHash([0; 32]),
        email: None,
        now,
        redeemer: None,
        // Never read: nothing matches, so no wrong email is counted.
        email_lock_seconds: 1,
        shared_failure,
    }
}

/// What a probe reports when a ticket answered it: nothing ever should (the
/// probe tenant holds none).
pub(crate) fn probe_matched() -> crate::error::Failure {
    StoreError::Internal("a probe matched a ticket".to_owned()).into()
}

/// The refusal of a probe: what an unknown code's costs, statement for statement.
pub(crate) fn refuse_probe(conn: &mut PgConnection, attempt: &RedemptionAttempt) -> Outcome<()> {
    match refuse(conn, attempt)? {
        Some(RedemptionFailure::TicketNotFound) => Ok(()),
        _ => Err(probe_matched()),
    }
}
