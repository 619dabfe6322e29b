//! Group commit (issue 12, point 3): redemptions and standalone uses batched into
//! one statement and one commit keep invariants 1 and 6.
//!
//! Batches are made deterministic, not hoped for: a test holds a row lock on a
//! "blocker" ticket, so the single executor's current batch waits on it while the
//! members under test queue up; once they are all queued the lock is released and
//! the executor takes them as one batch (the observer records each batch's size).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
#[path = "../common/mod.rs"]
mod common;
mod queued;
mod redeem_batch;
mod standalone_batch;

use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use common::{attempt, fixture, hash, limit, now, Count, Fixture};
use diesel::sql_types::Text;
use diesel::{sql_query, Connection, PgConnection, RunQueryDsl};
use tessera_app::model::{Grant, RedemptionAttempt, StandaloneUse, UsesLeft};
use tessera_app::ports::{RedemptionStore, StandaloneStore, StoreError, StoreResult, TicketStore};
use tessera_domain::{
    Program, RedemptionFailure, StandaloneTicket, StandaloneTicketId, TenantId, TicketId, Uses,
};
use tessera_postgres::{BatchKind, GroupCommit, GroupCommitSettings, PgStore};

/// The heavy tests open many connections: one at a time.
static ONE_AT_A_TIME: Mutex<()> = Mutex::new(());

struct Grouped {
    _guard: MutexGuard<'static, ()>,
    f: Fixture,
    store: PgStore,
    group: Arc<GroupCommit>,
    batches: Arc<Mutex<Vec<(BatchKind, usize)>>>,
}

fn grouped(executors: usize, max_batch: usize, queue_capacity: usize) -> Grouped {
    let guard = ONE_AT_A_TIME
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    let f = fixture();
    let batches = Arc::new(Mutex::new(Vec::new()));
    let seen = batches.clone();
    let group = Arc::new(
        GroupCommit::start(
            f.db.pool_with_size(u32::try_from(executors).unwrap()),
            GroupCommitSettings {
                executors,
                max_batch,
                queue_capacity,
            },
            Some(Arc::new(move |kind, size| {
                seen.lock().unwrap().push((kind, size))
            })),
        )
        .unwrap(),
    );
    let store = PgStore::new(f.db.pool_with_size(32)).with_group_commit(group.clone());
    Grouped {
        _guard: guard,
        f,
        store,
        group,
        batches,
    }
}

impl Grouped {
    fn batches(&self) -> Vec<(BatchKind, usize)> {
        self.batches.lock().unwrap().clone()
    }

    fn sizes(&self) -> Vec<usize> {
        self.batches().into_iter().map(|(_, size)| size).collect()
    }
}

/// Waits for `condition` (what the test waits for is a state, not a duration;
/// the deadline only turns a hang into a failure).
fn wait_until(what: &str, condition: impl Fn() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while !condition() {
        assert!(Instant::now() < deadline, "never happened: {what}");
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// A session holding a row lock until it is released (rolled back).
struct Blocker {
    conn: PgConnection,
}

impl Blocker {
    fn lock(f: &Fixture, statement: &str, tenant: &TenantId, id: &str) -> Self {
        let mut conn = PgConnection::establish(f.db.url()).unwrap();
        sql_query("BEGIN").execute(&mut conn).unwrap();
        sql_query(statement)
            .bind::<Text, _>(tenant.as_str())
            .bind::<Text, _>(id)
            .execute(&mut conn)
            .unwrap();
        Self { conn }
    }

    fn ticket(f: &Fixture, tenant: &TenantId, ticket: &TicketId) -> Self {
        Self::lock(
            f,
            "SELECT 1 FROM tickets WHERE tenant_id = $1 AND id = $2 FOR UPDATE",
            tenant,
            ticket.as_str(),
        )
    }

    fn standalone(f: &Fixture, tenant: &TenantId, ticket: &StandaloneTicketId) -> Self {
        Self::lock(
            f,
            "SELECT 1 FROM standalone_tickets WHERE tenant_id = $1 AND id = $2 FOR UPDATE",
            tenant,
            ticket.as_str(),
        )
    }

    fn release(mut self) {
        sql_query("ROLLBACK").execute(&mut self.conn).unwrap();
    }

    /// Runs `statement` in the blocker's open transaction.
    fn run(&mut self, statement: &str) {
        sql_query(statement).execute(&mut self.conn).unwrap();
    }

    /// Commits what the blocker did, releasing its locks.
    fn commit(mut self) {
        sql_query("COMMIT").execute(&mut self.conn).unwrap();
    }
}

type Redeemed = StoreResult<Result<Grant, RedemptionFailure>>;

fn redeem_in_background(g: &Grouped, program: &Program, code: &str) -> JoinHandle<Redeemed> {
    redeem_attempt_in_background(g, attempt(program, code, None))
}

fn redeem_attempt_in_background(g: &Grouped, attempt: RedemptionAttempt) -> JoinHandle<Redeemed> {
    let store = g.store.clone();
    std::thread::spawn(move || store.redeem(&attempt))
}

fn use_in_background(g: &Grouped, tenant: &TenantId, token: &str) -> JoinHandle<Used> {
    let (store, tenant, token) = (g.store.clone(), tenant.clone(), hash(token));
    std::thread::spawn(move || store.use_ticket(&tenant, token, now()))
}

/// Starts the blocker's redemption, waits until the executor took it (and is
/// stuck on the lock), then queues `codes` behind it and waits until all are queued.
fn queue_behind(
    g: &Grouped,
    program: &Program,
    blocker_code: &str,
    codes: &[&str],
) -> (JoinHandle<Redeemed>, Vec<JoinHandle<Redeemed>>) {
    let attempts = codes.iter().map(|code| attempt(program, code, None));
    queue_attempts_behind(g, attempt(program, blocker_code, None), attempts.collect())
}

/// [`queue_behind`] for attempts of any kind (emails, redeemers, programs).
fn queue_attempts_behind(
    g: &Grouped,
    blocker: RedemptionAttempt,
    attempts: Vec<RedemptionAttempt>,
) -> (JoinHandle<Redeemed>, Vec<JoinHandle<Redeemed>>) {
    let blocked = redeem_attempt_in_background(g, blocker);
    wait_until("the executor took the blocked batch", || {
        g.batches().len() == 1 && g.group.queued() == 0
    });
    // One at a time, so the queue (and the batch, for the same code) keeps
    // the order of `attempts`.
    let queued: Vec<_> = attempts
        .into_iter()
        .enumerate()
        .map(|(index, attempt)| {
            let handle = redeem_attempt_in_background(g, attempt);
            wait_until("the member is queued", || g.group.queued() == index + 1);
            handle
        })
        .collect();
    (blocked, queued)
}

type Used = StoreResult<Option<StandaloneUse>>;

/// [`queue_behind`] for standalone uses: the blocker's use first (its row held
/// by a [`Blocker`]), then `tokens` queued behind it.
fn uses_behind(
    g: &Grouped,
    tenant: &TenantId,
    blocker_token: &str,
    tokens: &[&str],
) -> (JoinHandle<Used>, Vec<JoinHandle<Used>>) {
    let blocked = use_in_background(g, tenant, blocker_token);
    wait_until("the executor took the blocked batch", || {
        g.batches().len() == 1 && g.group.queued() == 0
    });
    let queued: Vec<_> = tokens
        .iter()
        .map(|token| use_in_background(g, tenant, token))
        .collect();
    wait_until("every use is queued", || g.group.queued() == tokens.len());
    (blocked, queued)
}

fn joined<T>(handles: Vec<JoinHandle<T>>) -> Vec<T> {
    handles.into_iter().map(|h| h.join().unwrap()).collect()
}

fn redemptions_of(g: &Grouped, tenant: &TenantId, ticket: &TicketId) -> u32 {
    TicketStore::get(&g.store, tenant, ticket)
        .unwrap()
        .ticket
        .redemptions
}

fn execute(g: &Grouped, statement: &str) {
    let mut conn = g.f.db.pool().get().unwrap();
    sql_query(statement).execute(&mut conn).unwrap();
}

fn count(g: &Grouped, query: &str) -> i64 {
    let mut conn = g.f.db.pool().get().unwrap();
    sql_query(query).get_result::<Count>(&mut conn).unwrap().n
}

#[test]
fn sixty_four_parallel_redemptions_of_a_one_use_ticket_batched_give_exactly_one_success() {
    let g = grouped(1, 16, 1024);
    let tenant = common::tenant(&g.store);
    let program = common::program(&g.store, &tenant, |_| {});
    let id = common::issue(&g.store, &program, "code", |t| {
        t.max_redemptions = Some(limit(1))
    });
    // The ticket itself is the blocker: the first batch waits on it while the
    // other attempts queue, so they reach the database in batches of 16.
    let blocker = Blocker::ticket(&g.f, &tenant, &id);
    let attempts: Vec<_> = (0..64)
        .map(|_| redeem_in_background(&g, &program, "code"))
        .collect();
    wait_until("one batch runs and the rest is queued", || {
        let sizes = g.sizes();
        sizes.len() == 1 && sizes[0] + g.group.queued() == 64
    });
    blocker.release();
    let results = joined(attempts);

    let successes = results.iter().filter(|r| matches!(r, Ok(Ok(_)))).count();
    let exhausted = results
        .iter()
        .filter(|r| matches!(r, Ok(Err(RedemptionFailure::TicketExhausted))))
        .count();
    assert_eq!((successes, exhausted), (1, 63), "{results:?}");
    assert_eq!(redemptions_of(&g, &tenant, &id), 1);
    let pool = g.f.db.pool();
    assert_eq!(common::events(&pool, &tenant, "ticket.redeemed"), 1);
    assert_eq!(common::events(&pool, &tenant, "ticket.exhausted"), 1);
    assert!(
        g.sizes().contains(&16),
        "at least 48 attempts queued behind the first batch: {:?}",
        g.sizes()
    );
    assert_eq!(g.sizes().iter().sum::<usize>(), 64);
}

#[test]
fn sixty_four_racing_redemptions_over_two_executors_give_exactly_one_success() {
    let g = grouped(2, 16, 1024);
    let tenant = common::tenant(&g.store);
    let program = common::program(&g.store, &tenant, |_| {});
    let id = common::issue(&g.store, &program, "code", |t| {
        t.max_redemptions = Some(limit(1))
    });
    let barrier = Arc::new(std::sync::Barrier::new(64));
    let attempts: Vec<_> = (0..64)
        .map(|_| {
            let (store, attempt, barrier) = (
                g.store.clone(),
                attempt(&program, "code", None),
                barrier.clone(),
            );
            std::thread::spawn(move || {
                barrier.wait();
                store.redeem(&attempt).unwrap()
            })
        })
        .collect();
    let results = joined(attempts);
    assert_eq!(results.iter().filter(|r| r.is_ok()).count(), 1);
    assert_eq!(redemptions_of(&g, &tenant, &id), 1);
    assert_eq!(
        g.sizes().iter().sum::<usize>(),
        64,
        "all went through the batches"
    );
}

#[test]
fn the_same_code_twice_in_one_batch_is_redeemed_only_as_often_as_it_has_uses() {
    let g = grouped(1, 16, 1024);
    let tenant = common::tenant(&g.store);
    let program = common::program(&g.store, &tenant, |_| {});
    let blocker_id = common::issue(&g.store, &program, "blocker", |_| {});
    let once = common::issue(&g.store, &program, "once", |t| {
        t.max_redemptions = Some(limit(1))
    });
    let twice = common::issue(&g.store, &program, "twice", |t| {
        t.max_redemptions = Some(limit(2))
    });
    let blocker = Blocker::ticket(&g.f, &tenant, &blocker_id);
    let codes = ["once", "twice", "once", "twice", "twice"];
    let (blocked, queued) = queue_behind(&g, &program, "blocker", &codes);
    blocker.release();
    assert!(matches!(blocked.join().unwrap(), Ok(Ok(_))));
    let results = joined(queued);
    assert_eq!(g.sizes(), vec![1, 5], "the five went in one batch");

    let outcome = |code: &str| -> Vec<Result<u32, RedemptionFailure>> {
        let mut found: Vec<_> = codes
            .iter()
            .zip(&results)
            .filter(|(c, _)| **c == code)
            .map(|(_, r)| r.clone().unwrap().map(|grant| grant.remaining))
            .collect();
        found.sort_by_key(|r| format!("{r:?}"));
        found
    };
    assert_eq!(
        outcome("once"),
        vec![Err(RedemptionFailure::TicketExhausted), Ok(0)]
    );
    assert_eq!(
        outcome("twice"),
        vec![Err(RedemptionFailure::TicketExhausted), Ok(0), Ok(1)],
        "each success saw the uses the earlier member left"
    );
    assert_eq!(redemptions_of(&g, &tenant, &once), 1);
    assert_eq!(redemptions_of(&g, &tenant, &twice), 2);
    let pool = g.f.db.pool();
    assert_eq!(common::events(&pool, &tenant, "ticket.redeemed"), 4);
}

pub(crate) fn standalone(tenant: &TenantId, uses: i64) -> StandaloneTicket {
    let uses = Uses::try_from(uses).unwrap();
    StandaloneTicket {
        id: StandaloneTicketId::generate(),
        tenant_id: tenant.clone(),
        name: None,
        permissions: None,
        payload: None,
        total_uses: uses,
        uses_left: uses.limit(),
        expires_at: None,
        created_at: now(),
    }
}

#[test]
fn the_same_standalone_ticket_twice_in_one_batch_is_used_only_as_often_as_it_has_uses() {
    let g = grouped(1, 16, 1024);
    let tenant = common::tenant(&g.store);
    let blocker_ticket = standalone(&tenant, 5);
    g.store
        .create(&blocker_ticket, hash("blocker"), 100, now())
        .unwrap();
    for (token, uses) in [("once", 1), ("twice", 2)] {
        g.store
            .create(&standalone(&tenant, uses), hash(token), 100, now())
            .unwrap();
    }
    let live = "SELECT live_standalone AS n FROM tenant_counters";
    assert_eq!(count(&g, live), 3);

    let blocker = Blocker::standalone(&g.f, &tenant, &blocker_ticket.id);
    let tokens = ["once", "twice", "once", "twice", "twice"];
    let (blocked, queued) = uses_behind(&g, &tenant, "blocker", &tokens);
    blocker.release();
    assert!(matches!(blocked.join().unwrap(), Ok(Some(_))));
    let results = joined(queued);
    assert_eq!(
        g.batches(),
        vec![
            (BatchKind::StandaloneUses, 1),
            (BatchKind::StandaloneUses, 5)
        ]
    );

    let outcome = |token: &str| -> Vec<Option<UsesLeft>> {
        let mut found: Vec<_> = tokens
            .iter()
            .zip(&results)
            .filter(|(t, _)| **t == token)
            .map(|(_, r)| r.clone().unwrap().map(|used| used.uses_left))
            .collect();
        found.sort_by_key(|left| format!("{left:?}"));
        found
    };
    assert_eq!(outcome("once"), vec![None, Some(UsesLeft::Left(0))]);
    assert_eq!(
        outcome("twice"),
        vec![None, Some(UsesLeft::Left(0)), Some(UsesLeft::Left(1))]
    );
    // Both used up, deleted, and the counter lowered once for each.
    assert_eq!(count(&g, "SELECT count(*) AS n FROM standalone_tickets"), 1);
    assert_eq!(count(&g, live), 1);
}

#[test]
fn a_batch_whose_commit_fails_acknowledges_nothing() {
    let g = grouped(1, 16, 1024);
    let tenant = common::tenant(&g.store);
    let program = common::program(&g.store, &tenant, |_| {});
    let blocker_id = common::issue(&g.store, &program, "blocker", |_| {});
    let ids: Vec<_> = ["a", "b", "c"]
        .iter()
        .map(|code| common::issue(&g.store, &program, code, |_| {}))
        .collect();
    // Test-only: a deferred constraint trigger refuses every COMMIT that
    // redeemed a ticket, after the statement itself succeeded.
    execute(
        &g,
        "CREATE FUNCTION refuse_commit() RETURNS trigger LANGUAGE plpgsql AS \
         $$ BEGIN RAISE EXCEPTION 'refused at commit'; END $$",
    );
    execute(
        &g,
        "CREATE CONSTRAINT TRIGGER refuse_commit AFTER UPDATE ON tickets \
         DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION refuse_commit()",
    );
    let blocker = Blocker::ticket(&g.f, &tenant, &blocker_id);
    let (blocked, queued) = queue_behind(&g, &program, "blocker", &["a", "b", "c"]);
    blocker.release();
    let mut results = joined(queued);
    results.push(blocked.join().unwrap());
    assert_eq!(g.sizes(), vec![1, 3]);
    for result in &results {
        assert!(
            matches!(result, Err(StoreError::Internal(message)) if message.contains("refused at commit")),
            "{result:?}"
        );
    }
    for id in ids.iter().chain([&blocker_id]) {
        assert_eq!(redemptions_of(&g, &tenant, id), 0);
    }
    let pool = g.f.db.pool();
    assert_eq!(common::events(&pool, &tenant, "ticket.redeemed"), 0);
    assert_eq!(count(&g, "SELECT count(*) AS n FROM redemptions"), 0);

    // The executor goes on once commits succeed again.
    execute(&g, "DROP TRIGGER refuse_commit ON tickets");
    let redeemed = g.store.redeem(&attempt(&program, "a", None)).unwrap();
    assert_eq!(redeemed.map(|grant| grant.ticket_id), Ok(ids[0].clone()));
}

#[test]
fn a_member_whose_statement_raises_fails_alone() {
    let g = grouped(1, 16, 1024);
    let tenant = common::tenant(&g.store);
    let program = common::program(&g.store, &tenant, |_| {});
    let blocker_id = common::issue(&g.store, &program, "blocker", |_| {});
    let good = common::issue(&g.store, &program, "good", |_| {});
    let poisoned = common::issue(&g.store, &program, "poisoned", |_| {});
    let other = common::issue(&g.store, &program, "other", |_| {});
    execute(
        &g,
        &format!(
            "CREATE FUNCTION poison() RETURNS trigger LANGUAGE plpgsql AS \
             $$ BEGIN IF NEW.id = '{}' THEN RAISE EXCEPTION 'poisoned member'; END IF; \
             RETURN NEW; END $$",
            poisoned.as_str()
        ),
    );
    execute(
        &g,
        "CREATE TRIGGER poison BEFORE UPDATE ON tickets FOR EACH ROW EXECUTE FUNCTION poison()",
    );
    let blocker = Blocker::ticket(&g.f, &tenant, &blocker_id);
    let codes = ["good", "poisoned", "other"];
    let (blocked, queued) = queue_behind(&g, &program, "blocker", &codes);
    blocker.release();
    assert!(matches!(blocked.join().unwrap(), Ok(Ok(_))));
    let results = joined(queued);
    assert_eq!(g.sizes(), vec![1, 3]);
    assert!(matches!(&results[0], Ok(Ok(grant)) if grant.ticket_id == good));
    assert!(
        matches!(&results[1], Err(StoreError::Internal(m)) if m.contains("poisoned member")),
        "{:?}",
        results[1]
    );
    assert!(matches!(&results[2], Ok(Ok(grant)) if grant.ticket_id == other));
    assert_eq!(redemptions_of(&g, &tenant, &good), 1);
    assert_eq!(redemptions_of(&g, &tenant, &poisoned), 0);
    assert_eq!(redemptions_of(&g, &tenant, &other), 1);
}

/// How many statements naming `function` wait for a lock now.
fn statements_waiting_on_a_lock(g: &Grouped, function: &str) -> i64 {
    count(
        g,
        &format!(
            "SELECT count(*) AS n FROM pg_stat_activity WHERE datname = current_database() \
             AND wait_event_type = 'Lock' AND query LIKE '%{function}%'"
        ),
    )
}

/// Waits until a batch statement of `function` waits for a row lock.
fn wait_for_the_batch_on_its_lock(g: &Grouped, function: &str) {
    wait_until("a batch waits on the ticket's lock", || {
        statements_waiting_on_a_lock(g, function) == 1
    });
}

/// Waits until the second batch (of two) waits on a row lock, then kills its
/// connection: the batch is in flight and uncommitted when it dies.
fn kill_the_batch_of_two_on_its_lock(g: &Grouped) {
    wait_until("the batch of two waits on its lock", || {
        g.sizes() == vec![1, 2] && statements_waiting_on_a_lock(g, "tessera_redeem") == 1
    });
    execute(
        g,
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity \
         WHERE datname = current_database() AND wait_event_type = 'Lock' \
         AND query LIKE '%tessera_redeem%'",
    );
}

#[test]
fn a_batch_whose_connection_is_killed_answers_unavailable_and_commits_nothing() {
    let g = grouped(1, 16, 1024);
    let tenant = common::tenant(&g.store);
    let program = common::program(&g.store, &tenant, |_| {});
    let first = common::issue(&g.store, &program, "first", |_| {});
    let locked = common::issue(&g.store, &program, "locked", |_| {});
    // First batch: [first], stuck on `first`. Second batch: [locked, zzz-other]
    // stuck on `locked` (codes sort by hash, so which one waits differs; either
    // way the batch is in flight and uncommitted when its connection dies).
    let first_blocker = Blocker::ticket(&g.f, &tenant, &first);
    let second_blocker = Blocker::ticket(&g.f, &tenant, &locked);
    let other = common::issue(&g.store, &program, "other", |_| {});
    let (blocked, queued) = queue_behind(&g, &program, "first", &["locked", "other"]);
    first_blocker.release();
    assert!(matches!(blocked.join().unwrap(), Ok(Ok(_))));
    kill_the_batch_of_two_on_its_lock(&g);
    let results = joined(queued);
    second_blocker.release();
    for result in &results {
        assert!(
            matches!(result, Err(StoreError::Unavailable(_))),
            "{result:?}"
        );
    }
    assert_eq!(redemptions_of(&g, &tenant, &locked), 0);
    assert_eq!(redemptions_of(&g, &tenant, &other), 0);

    // A fresh connection serves the next batch.
    let redeemed = g.store.redeem(&attempt(&program, "other", None)).unwrap();
    assert_eq!(redeemed.map(|grant| grant.ticket_id), Ok(other));
}

#[test]
fn a_full_queue_is_answered_unavailable_at_once() {
    let g = grouped(1, 1, 1);
    let tenant = common::tenant(&g.store);
    let program = common::program(&g.store, &tenant, |_| {});
    let blocker_id = common::issue(&g.store, &program, "blocker", |_| {});
    common::issue(&g.store, &program, "waits", |_| {});
    common::issue(&g.store, &program, "refused", |_| {});
    let blocker = Blocker::ticket(&g.f, &tenant, &blocker_id);
    let (blocked, queued) = queue_behind(&g, &program, "blocker", &["waits"]);
    let refused = g.store.redeem(&attempt(&program, "refused", None));
    assert!(
        matches!(&refused, Err(StoreError::Unavailable(m)) if m.contains("queue is full")),
        "{refused:?}"
    );
    blocker.release();
    assert!(matches!(blocked.join().unwrap(), Ok(Ok(_))));
    assert!(matches!(joined(queued).as_slice(), [Ok(Ok(_))]));
    assert_eq!(
        count(&g, "SELECT count(*) AS n FROM redemptions"),
        2,
        "the refused attempt wrote nothing"
    );
}
