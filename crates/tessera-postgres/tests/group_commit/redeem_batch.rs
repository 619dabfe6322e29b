//! The set-based redemption batch (`tessera_redeem_batch`): it judges the uses a
//! ticket has left as the latest committed redemption or hold left them, not as
//! the statement's snapshot saw them; a member it refuses takes no use from the
//! next member of the same ticket; and members that name a redeemer go through
//! the per-member statement in the same batch. Members are queued one at a
//! time, so a batch holds them in the order written.

use tessera_app::model::RedemptionAttempt;
use tessera_domain::{Program, RedemptionFailure, TenantId, TicketId};

use super::common::{self, attempt, email, hash, limit};
use super::{
    count, grouped, joined, queue_attempts_behind, redemptions_of, wait_for_the_batch_on_its_lock,
    Blocker, Grouped, Redeemed,
};

/// The remaining count of each success, in the members' order (`None`: refused).
fn remaining(results: &[Redeemed]) -> Vec<Option<u32>> {
    results
        .iter()
        .map(|result| match result {
            Ok(Ok(grant)) => Some(grant.remaining),
            Ok(Err(_)) => None,
            Err(error) => panic!("the store failed: {error:?}"),
        })
        .collect()
}

struct Arranged {
    g: Grouped,
    tenant: TenantId,
    program: Program,
    blocker: TicketId,
}

fn arranged() -> Arranged {
    let g = grouped(1, 16, 1024);
    let tenant = common::tenant(&g.store);
    let program = common::program(&g.store, &tenant, |_| {});
    let blocker = common::issue(&g.store, &program, "blocker", |_| {});
    Arranged {
        g,
        tenant,
        program,
        blocker,
    }
}

impl Arranged {
    /// Queues `attempts` as one batch behind the blocker's, releases the blocker,
    /// then runs `meanwhile` (if any: the batch waits on the lock it holds) before
    /// the answers are collected.
    fn one_batch(
        &self,
        attempts: Vec<RedemptionAttempt>,
        meanwhile: Option<Blocker>,
    ) -> Vec<Redeemed> {
        let first = Blocker::ticket(&self.g.f, &self.tenant, &self.blocker);
        let expected = attempts.len();
        let (blocked, queued) =
            queue_attempts_behind(&self.g, attempt(&self.program, "blocker", None), attempts);
        first.release();
        assert!(matches!(blocked.join().unwrap(), Ok(Ok(_))));
        if let Some(other) = meanwhile {
            wait_for_the_batch_on_its_lock(&self.g, "tessera_redeem_batch");
            other.commit();
        }
        let results = joined(queued);
        assert_eq!(self.g.sizes()[..2], [1, expected], "one batch");
        results
    }
}

#[test]
fn a_redemption_committed_while_the_batch_waits_for_the_ticket_is_counted() {
    let a = arranged();
    let three = common::issue(&a.g.store, &a.program, "three", |t| {
        t.max_redemptions = Some(limit(3))
    });
    // Another session counts two of the three uses and holds the row: the
    // batch's snapshot still sees three left when it starts.
    let mut other = Blocker::ticket(&a.g.f, &a.tenant, &three);
    other.run(&format!(
        "UPDATE tickets SET redemptions = redemptions + 2 WHERE id = '{}'",
        three.as_str()
    ));
    let attempts = vec![attempt(&a.program, "three", None); 2];
    let results = a.one_batch(attempts, Some(other));
    assert_eq!(remaining(&results), vec![Some(0), None], "{results:?}");
    assert_eq!(
        results[1].clone().unwrap(),
        Err(RedemptionFailure::TicketExhausted)
    );
    assert_eq!(redemptions_of(&a.g, &a.tenant, &three), 3);
    let pool = a.g.f.db.pool();
    assert_eq!(common::events(&pool, &a.tenant, "ticket.exhausted"), 1);
}

#[test]
fn a_hold_taken_while_the_batch_waits_for_the_ticket_leaves_it_nothing() {
    let a = arranged();
    let once = common::issue(&a.g.store, &a.program, "once", |t| {
        t.max_redemptions = Some(limit(1))
    });
    let mut other = Blocker::ticket(&a.g.f, &a.tenant, &once);
    other.run(&format!(
        "UPDATE tickets SET held = held + 1 WHERE id = '{}'",
        once.as_str()
    ));
    let results = a.one_batch(vec![attempt(&a.program, "once", None)], Some(other));
    assert_eq!(remaining(&results), vec![None], "{results:?}");
    assert_eq!(redemptions_of(&a.g, &a.tenant, &once), 0);
}

#[test]
fn a_ticket_deleted_while_the_batch_waits_for_it_is_not_redeemed() {
    let a = arranged();
    let gone = common::issue(&a.g.store, &a.program, "gone", |_| {});
    let mut other = Blocker::ticket(&a.g.f, &a.tenant, &gone);
    other.run(&format!(
        "DELETE FROM tickets WHERE id = '{}'",
        gone.as_str()
    ));
    let results = a.one_batch(vec![attempt(&a.program, "gone", None); 2], Some(other));
    assert_eq!(remaining(&results), vec![None, None], "{results:?}");
    assert_eq!(count(&a.g, "SELECT count(*) AS n FROM redemptions"), 1);
}

#[test]
fn a_member_refused_for_its_email_takes_no_use_from_the_next() {
    let a = arranged();
    let bound = common::issue(&a.g.store, &a.program, "bound", |t| {
        t.max_redemptions = Some(limit(1));
        t.email = Some(email("ann@example.com"));
    });
    let attempts = vec![
        attempt(&a.program, "bound", Some("bob@example.com")),
        attempt(&a.program, "bound", Some("ann@example.com")),
        attempt(&a.program, "bound", Some("ann@example.com")),
    ];
    let results = a.one_batch(attempts, None);
    // The first is refused for its email and the second still finds the one
    // use. (Each refusal is classified after the batch committed, against the
    // ticket as it is then: used up, which the domain checks before the email.)
    assert_eq!(
        remaining(&results),
        vec![None, Some(0), None],
        "{results:?}"
    );
    assert_eq!(redemptions_of(&a.g, &a.tenant, &bound), 1);
}

/// An attempt by the redeemer `who` (its keyed hash, as the use case passes it).
fn by(program: &Program, code: &str, who: &str) -> RedemptionAttempt {
    RedemptionAttempt {
        redeemer: Some(hash(&format!("redeemer:{who}"))),
        ..attempt(program, code, None)
    }
}

#[test]
fn members_that_name_a_redeemer_are_redeemed_by_the_per_member_statement_in_the_same_batch() {
    let a = arranged();
    let shared = common::issue(&a.g.store, &a.program, "shared", |t| {
        t.max_redemptions = Some(limit(3));
        t.per_redeemer_limit = Some(limit(1));
    });
    let plain = common::issue(&a.g.store, &a.program, "plain", |t| {
        t.max_redemptions = Some(limit(2))
    });
    let attempts = vec![
        by(&a.program, "shared", "ann"),
        by(&a.program, "shared", "ann"),
        by(&a.program, "shared", "bob"),
        // No redeemer for a per-redeemer ticket: refused, by either statement.
        attempt(&a.program, "shared", None),
        // A redeemer for a ticket without a share: a plain redemption.
        by(&a.program, "plain", "ann"),
        attempt(&a.program, "plain", None),
    ];
    let results = a.one_batch(attempts, None);
    // The plain members first (one statement), then those naming a redeemer.
    assert_eq!(
        remaining(&results),
        vec![Some(2), None, Some(1), None, Some(0), Some(1)],
        "{results:?}"
    );
    assert_eq!(redemptions_of(&a.g, &a.tenant, &shared), 2);
    assert_eq!(redemptions_of(&a.g, &a.tenant, &plain), 2);
    // The shares counted are those granted, and only the shared ticket's
    // records name a redeemer (the plain one has no share to count against).
    assert_eq!(
        count(
            &a.g,
            "SELECT coalesce(sum(uses), 0)::bigint AS n FROM redeemer_uses"
        ),
        2
    );
    assert_eq!(
        count(
            &a.g,
            "SELECT count(*) AS n FROM redemptions WHERE redeemer_key IS NOT NULL"
        ),
        2
    );
    assert_eq!(a.g.sizes(), vec![1, 6], "one batch of six");
}

#[derive(diesel::QueryableByName)]
struct Committing {
    #[diesel(sql_type = diesel::sql_types::Text)]
    mode: String,
    #[diesel(sql_type = diesel::sql_types::Text)]
    locker: String,
}

/// `tessera_redeem_batch` for one member of `code`, in a transaction rolled back:
/// the commit mode it leaves, and the xmax of the ticket's row (`0`: not locked).
fn batch_of_one(
    f: &common::Fixture,
    program: &Program,
    code: &str,
    email: Option<&str>,
) -> (String, String) {
    use diesel::sql_types::{Bytea, Nullable, Text, Timestamptz};
    use diesel::{sql_query, Connection, RunQueryDsl};
    let mut conn = f.db.pool().get().expect("a connection");
    conn.test_transaction(|conn| {
        // Hand-written: the function's own call, as group_commit/statements.rs makes it.
        sql_query(
            "SELECT ord FROM tessera_redeem_batch(ARRAY[$1], ARRAY[$2], ARRAY[$3], ARRAY[$4], \
             ARRAY[$5], ARRAY['evt_a'], ARRAY['evt_b'], ARRAY['rdm_a'], \
             ARRAY[NULL::text], ARRAY[NULL::text])",
        )
        .bind::<Text, _>(program.tenant_id.as_str())
        .bind::<Bytea, _>(&hash(code).0[..])
        .bind::<Text, _>(program.id.as_str())
        .bind::<Timestamptz, _>(common::now())
        .bind::<Nullable<Text>, _>(email)
        .execute(conn)?;
        let found: Committing = sql_query(
            "SELECT current_setting('synchronous_commit') AS mode, xmax::text AS locker \
             FROM tickets WHERE code_hash = $1",
        )
        .bind::<Bytea, _>(&hash(code).0[..])
        .get_result(conn)?;
        Ok::<_, diesel::result::Error>((found.mode, found.locker))
    })
}

/// A batch that grants nothing wrote row locks at most: its commit does not wait
/// for the WAL flush, so a known code refused takes an unknown code's time. A
/// used-up ticket is not even locked (nothing to flush, and a crowd asking for it
/// does not queue on its row); a batch that grants waits for the flush
/// (invariant 6).
#[test]
fn a_batch_that_grants_nothing_commits_without_waiting_for_the_flush() {
    let f = common::fixture();
    let tenant = common::tenant(&f.store);
    let program = common::program(&f.store, &tenant, |_| {});
    common::issue(&f.store, &program, "used-up", |t| {
        t.max_redemptions = Some(limit(1));
        t.redemptions = 1;
    });
    common::issue(&f.store, &program, "bound", |t| {
        t.email = Some(email("ann@example.com"))
    });
    common::issue(&f.store, &program, "redeemable", |_| {});
    assert_eq!(
        batch_of_one(&f, &program, "used-up", None),
        ("off".into(), "0".into())
    );
    let (mode, locker) = batch_of_one(&f, &program, "bound", Some("bob@example.com"));
    assert_eq!(mode, "off");
    assert_ne!(locker, "0", "a ticket a member might redeem is locked");
    assert_eq!(batch_of_one(&f, &program, "redeemable", None).0, "on");
}
