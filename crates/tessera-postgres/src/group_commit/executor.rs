//! An executor thread: takes what is queued, runs it as one statement per kind,
//! answers each member once.

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc::Receiver;
use std::sync::{Arc, Mutex, PoisonError};

use diesel::connection::SimpleConnection;
use diesel::r2d2::{ConnectionManager, PooledConnection};
use diesel::result::{DatabaseErrorKind, Error as DieselError};
use diesel::PgConnection;
use tessera_app::model::{Grant, StandaloneUse, UsesLeft};

use super::statements::{redeem_batch, use_batch, RedeemColumns, RedeemStatement, UseColumns};
use super::{
    unavailable, BatchKind, BatchObserver, Job, RedeemJob, UseJob, EXECUTOR_PLANNER_SETTINGS,
};
use crate::error::{corrupt, is_connection_loss, Failure, Outcome};
use crate::models::StandaloneUseRow;
use crate::stores::into_grant;
use crate::PgPool;

pub(super) struct Executor {
    pub pool: PgPool,
    pub connection: Option<PooledConnection<ConnectionManager<PgConnection>>>,
    pub receiver: Arc<Mutex<Receiver<Job>>>,
    pub queued: Arc<AtomicUsize>,
    pub max_batch: usize,
    pub observer: Option<BatchObserver>,
}

/// A queued request that can be answered once.
trait Member {
    type Answer;
    fn answer(self, outcome: Outcome<Self::Answer>);
}

impl Member for RedeemJob {
    type Answer = Option<Grant>;
    fn answer(self, outcome: Outcome<Option<Grant>>) {
        self.reply.send(outcome);
    }
}

impl Member for UseJob {
    type Answer = Option<StandaloneUse>;
    fn answer(self, outcome: Outcome<Option<StandaloneUse>>) {
        self.reply.send(outcome);
    }
}

/// Whether the server reported an error for the statement itself: then the
/// statement (autocommitted) was rolled back and running its members again cannot
/// count a use twice. A lost connection may have lost the COMMIT's answer, not the
/// COMMIT; a timeout would only time out again; any other failure (a row that does
/// not decode) came after the commit.
fn rolled_back_by_server(error: &DieselError) -> bool {
    match error {
        DieselError::DatabaseError(DatabaseErrorKind::ClosedConnection, _) => false,
        DieselError::DatabaseError(_, info) => {
            let message = info.message();
            !is_connection_loss(message) && !message.contains("statement timeout")
        }
        _ => false,
    }
}

/// How a batch (or one member of it) is run: its answers in the members' order.
type Evaluate<M> =
    fn(&mut PgConnection, &[M]) -> Result<Vec<Outcome<<M as Member>::Answer>>, DieselError>;

/// Runs `members` as one statement through `evaluate`, answering each once. When
/// the server refused that statement, each member is run alone through `alone`:
/// a statement the server cannot run for a batch (Citus refuses some multi-row
/// modifying CTEs) still answers its members one by one.
fn execute<M: Member>(
    conn: &mut PgConnection,
    members: Vec<M>,
    evaluate: Evaluate<M>,
    alone: Evaluate<M>,
) -> bool {
    let error = match evaluate(conn, &members) {
        Ok(answers) => {
            for (member, answer) in members.into_iter().zip(answers) {
                member.answer(answer);
            }
            return true;
        }
        Err(error) => error,
    };
    if members.len() > 1 && rolled_back_by_server(&error) {
        tracing::warn!(
            members = members.len(),
            error = %Failure::from(error).0,
            "a group commit batch was refused; running its members one by one"
        );
        let mut healthy = true;
        for member in members {
            match alone(conn, std::slice::from_ref(&member)) {
                Ok(mut answers) => match answers.pop() {
                    Some(answer) => member.answer(answer),
                    None => member.answer(Err(corrupt("batch", "no answer"))),
                },
                Err(error) => {
                    healthy &= rolled_back_by_server(&error);
                    member.answer(Err(error.into()));
                }
            }
        }
        return healthy;
    }
    let failure = Failure::from(error).0;
    tracing::warn!(members = members.len(), error = %failure, "a group commit batch failed");
    for member in members {
        member.answer(Err(failure.clone().into()));
    }
    false
}

/// Lock order: every batch locks its tickets sorted by (tenant, hash), so two
/// batches never wait for each other in a cycle. The sort is stable: the same
/// code twice keeps its arrival order.
fn sort_by_key<M>(members: &mut [M], key: impl Fn(&M) -> (&str, &[u8])) {
    members.sort_by(|a, b| key(a).cmp(&key(b)));
}

/// The position `ord` (1-based) names in a batch of `len`.
fn position(ord: i64, len: usize) -> Outcome<usize> {
    usize::try_from(ord)
        .ok()
        .and_then(|ord| ord.checked_sub(1))
        .filter(|index| *index < len)
        .ok_or_else(|| corrupt("batch position", ord))
}

fn redeem_set_based(
    conn: &mut PgConnection,
    members: &[RedeemJob],
) -> Result<Vec<Outcome<Option<Grant>>>, DieselError> {
    evaluate_redemptions(conn, members, RedeemStatement::SetBased)
}

fn redeem_per_member(
    conn: &mut PgConnection,
    members: &[RedeemJob],
) -> Result<Vec<Outcome<Option<Grant>>>, DieselError> {
    evaluate_redemptions(conn, members, RedeemStatement::PerMember)
}

fn evaluate_redemptions(
    conn: &mut PgConnection,
    members: &[RedeemJob],
    statement: RedeemStatement,
) -> Result<Vec<Outcome<Option<Grant>>>, DieselError> {
    let mut columns = RedeemColumns::default();
    for job in members {
        let attempt = &job.attempt;
        columns.tenant_id.push(attempt.tenant_id.as_str());
        columns.code_hash.push(&attempt.code_hash.0[..]);
        columns.program_id.push(attempt.program_id.as_str());
        columns.now.push(attempt.now);
        columns.email.push(attempt.email.as_deref());
        columns
            .redeemed_event_id
            .push(job.redeemed_event_id.as_str());
        columns
            .exhausted_event_id
            .push(job.exhausted_event_id.as_str());
        columns.redemption_id.push(job.redemption_id.as_str());
        columns
            .redeemer_key
            .push(attempt.redeemer.as_ref().map(|hash| &hash.0[..]));
        let key = job.caller_key.as_ref();
        columns
            .caller_key_tenant
            .push(key.map(|key| key.tenant_id.as_str()));
        columns
            .caller_key_id
            .push(key.map(|key| key.key_id.as_str()));
    }
    let rows = redeem_batch(conn, &columns, statement)?;
    let mut answers: Vec<Outcome<Option<Grant>>> = members.iter().map(|_| Ok(None)).collect();
    for (ord, row) in rows {
        match position(ord, members.len()) {
            Ok(index) => {
                let job = &members[index];
                let attempt = &job.attempt;
                answers[index] = into_grant(
                    &attempt.tenant_id,
                    &attempt.program_id,
                    job.redemption_id.clone(),
                    row,
                )
                .map(Some);
            }
            Err(failure) => {
                return Ok(members
                    .iter()
                    .map(|_| Err(failure.0.clone().into()))
                    .collect())
            }
        }
    }
    Ok(answers)
}

fn evaluate_uses(
    conn: &mut PgConnection,
    members: &[UseJob],
) -> Result<Vec<Outcome<Option<StandaloneUse>>>, DieselError> {
    let mut columns = UseColumns::default();
    for job in members {
        columns.tenant_id.push(job.tenant.as_str());
        columns.token_hash.push(&job.token_hash.0[..]);
        columns.now.push(job.now);
        columns.caller_key_id.push(
            job.caller_key
                .as_ref()
                .map(tessera_domain::ApiKeyId::as_str),
        );
    }
    let rows = use_batch(conn, &columns)?;
    let mut answers: Vec<Outcome<Option<StandaloneUse>>> =
        members.iter().map(|_| Ok(None)).collect();
    for (ord, uses_left, payload) in rows {
        match position(ord, members.len()) {
            Ok(index) => answers[index] = standalone_use(StandaloneUseRow { uses_left, payload }),
            Err(failure) => {
                return Ok(members
                    .iter()
                    .map(|_| Err(failure.0.clone().into()))
                    .collect())
            }
        }
    }
    Ok(answers)
}

fn standalone_use(row: StandaloneUseRow) -> Outcome<Option<StandaloneUse>> {
    let uses_left = row.uses_left()?;
    Ok(Some(StandaloneUse {
        uses_left: uses_left.map_or(UsesLeft::Unlimited, UsesLeft::Left),
        payload: row.into_payload()?,
    }))
}

impl Executor {
    pub(super) fn run(mut self) {
        while let Some(jobs) = self.take() {
            // A panic drops the batch's replies (each caller is then answered
            // `Unavailable`) and the connection; the executor goes on.
            let ran = catch_unwind(AssertUnwindSafe(|| self.run_batch(jobs)));
            if ran.is_err() {
                self.connection = None;
            }
        }
    }

    /// Blocks for one job, then takes whatever else is queued, up to `max_batch`.
    /// `None` once every handle is dropped and the queue is empty.
    fn take(&self) -> Option<Vec<Job>> {
        let receiver = self.receiver.lock().unwrap_or_else(PoisonError::into_inner);
        let first = receiver.recv().ok()?;
        let mut jobs = vec![first];
        while jobs.len() < self.max_batch {
            match receiver.try_recv() {
                Ok(job) => jobs.push(job),
                Err(_) => break,
            }
        }
        drop(receiver);
        self.queued.fetch_sub(jobs.len(), Ordering::SeqCst);
        Some(jobs)
    }

    /// A connection of the executors' pool, with the planner settings every
    /// batch statement is planned under.
    fn connect(&self) -> Result<PooledConnection<ConnectionManager<PgConnection>>, String> {
        let mut connection = self.pool.get().map_err(|error| error.to_string())?;
        connection
            .batch_execute(EXECUTOR_PLANNER_SETTINGS)
            .map_err(|error| error.to_string())?;
        Ok(connection)
    }

    fn run_batch(&mut self, jobs: Vec<Job>) {
        let (mut redemptions, mut uses) = (Vec::new(), Vec::new());
        for job in jobs {
            match job {
                Job::Redeem(job) => redemptions.push(*job),
                Job::Use(job) => uses.push(job),
            }
        }
        if self.connection.is_none() {
            match self.connect() {
                Ok(connection) => self.connection = Some(connection),
                Err(error) => {
                    tracing::warn!(%error, "group commit executor has no connection");
                    let why = "no database connection for the group commit";
                    redemptions
                        .into_iter()
                        .for_each(|m| m.answer(Err(unavailable(why))));
                    uses.into_iter()
                        .for_each(|m| m.answer(Err(unavailable(why))));
                    return;
                }
            }
        }
        let Some(conn) = self.connection.as_mut() else {
            return;
        };
        let mut healthy = true;
        if !redemptions.is_empty() {
            sort_by_key(&mut redemptions, |job| {
                (job.attempt.tenant_id.as_str(), &job.attempt.code_hash.0[..])
            });
            if let Some(observer) = &self.observer {
                observer(BatchKind::Redemptions, redemptions.len());
            }
            // A per-redeemer share is claimed by tessera_redeem's own upsert: the
            // members that name a redeemer are a statement of their own, after
            // the others (each statement commits before its members are answered).
            let (named, plain): (Vec<_>, Vec<_>) = redemptions
                .into_iter()
                .partition(|job| job.attempt.redeemer.is_some());
            if !plain.is_empty() {
                healthy &= execute(conn, plain, redeem_set_based, redeem_per_member);
            }
            if !named.is_empty() {
                healthy &= execute(conn, named, redeem_per_member, redeem_per_member);
            }
        }
        if !uses.is_empty() {
            sort_by_key(&mut uses, |job| {
                (job.tenant.as_str(), &job.token_hash.0[..])
            });
            if let Some(observer) = &self.observer {
                observer(BatchKind::StandaloneUses, uses.len());
            }
            healthy &= execute(conn, uses, evaluate_uses, evaluate_uses);
        }
        if !healthy {
            // Start the next batch on a fresh connection: this one may be broken.
            self.connection = None;
        }
    }
}
