//! The set-based standalone batch (`tessera_use_standalone_batch`): it judges the
//! uses a ticket has left as the latest committed use left them, not as the
//! statement's snapshot saw them, and spends exactly as many uses as a ticket has
//! when many race for it over several executors.

use std::sync::{Arc, Barrier};

use tessera_app::model::UsesLeft;
use tessera_app::ports::StandaloneStore;

use super::common::{self, hash, now};
use super::{
    count, grouped, joined, standalone, use_in_background, uses_behind,
    wait_for_the_batch_on_its_lock, Blocker,
};

const LIVE: &str = "SELECT live_standalone AS n FROM tenant_counters";
const TICKETS: &str = "SELECT count(*) AS n FROM standalone_tickets";

#[test]
fn a_use_committed_while_the_batch_waits_for_the_ticket_is_counted() {
    let g = grouped(1, 16, 1024);
    let tenant = common::tenant(&g.store);
    let ticket = standalone(&tenant, 3);
    g.store.create(&ticket, hash("three"), 100, now()).unwrap();
    // Another session spends two of the three uses and holds the row: the
    // batch's snapshot still sees three when it starts.
    let mut other = Blocker::standalone(&g.f, &tenant, &ticket.id);
    other.run("UPDATE standalone_tickets SET uses_left = uses_left - 2");
    let uses: Vec<_> = (0..2)
        .map(|_| use_in_background(&g, &tenant, "three"))
        .collect();
    wait_for_the_batch_on_its_lock(&g, "tessera_use_standalone_batch");
    other.commit();
    let answers: Vec<_> = joined(uses).into_iter().map(Result::unwrap).collect();
    let granted: Vec<_> = answers.iter().flatten().map(|u| u.uses_left).collect();
    assert_eq!(granted, vec![UsesLeft::Left(0)], "{answers:?}");
    assert_eq!(answers.iter().filter(|a| a.is_none()).count(), 1);
    // Used up: deleted, and its place in the tenant's count given back once.
    assert_eq!(count(&g, TICKETS), 0);
    assert_eq!(count(&g, LIVE), 0);
}

#[test]
fn a_ticket_deleted_while_the_batch_waits_for_it_is_not_used() {
    let g = grouped(1, 16, 1024);
    let tenant = common::tenant(&g.store);
    let ticket = standalone(&tenant, 3);
    g.store.create(&ticket, hash("three"), 100, now()).unwrap();
    let mut other = Blocker::standalone(&g.f, &tenant, &ticket.id);
    other.run("DELETE FROM standalone_tickets");
    other.run("UPDATE tenant_counters SET live_standalone = live_standalone - 1");
    let uses: Vec<_> = (0..2)
        .map(|_| use_in_background(&g, &tenant, "three"))
        .collect();
    wait_for_the_batch_on_its_lock(&g, "tessera_use_standalone_batch");
    other.commit();
    for answer in joined(uses) {
        assert!(matches!(answer, Ok(None)), "{answer:?}");
    }
    assert_eq!(count(&g, LIVE), 0);
}

#[test]
fn sixty_four_uses_racing_over_two_executors_spend_exactly_the_uses_a_ticket_has() {
    let g = grouped(2, 16, 1024);
    let tenant = common::tenant(&g.store);
    g.store
        .create(&standalone(&tenant, 10), hash("ten"), 100, now())
        .unwrap();
    let barrier = Arc::new(Barrier::new(64));
    let uses: Vec<_> = (0..64)
        .map(|_| {
            let (store, tenant, barrier) = (g.store.clone(), tenant.clone(), barrier.clone());
            std::thread::spawn(move || {
                barrier.wait();
                store.use_ticket(&tenant, hash("ten"), now()).unwrap()
            })
        })
        .collect();
    let answers = joined(uses);
    // Each of the ten uses granted once: every count of uses left from 9 down to 0.
    let mut left: Vec<_> = answers
        .iter()
        .flatten()
        .map(|used| match used.uses_left {
            UsesLeft::Left(n) => n,
            UsesLeft::Unlimited => panic!("a limited ticket answered unlimited"),
        })
        .collect();
    left.sort_unstable();
    assert_eq!(left, (0..10).collect::<Vec<u32>>());
    assert_eq!(answers.iter().filter(|a| a.is_none()).count(), 54);
    assert_eq!(count(&g, TICKETS), 0);
    assert_eq!(count(&g, LIVE), 0);
    assert_eq!(
        g.sizes().iter().sum::<usize>(),
        64,
        "all went through the batches"
    );
}

#[test]
fn an_unlimited_ticket_used_in_a_batch_keeps_its_row_as_it_was() {
    let g = grouped(1, 16, 1024);
    let tenant = common::tenant(&g.store);
    let blocker_ticket = standalone(&tenant, 5);
    g.store
        .create(&blocker_ticket, hash("blocker"), 100, now())
        .unwrap();
    g.store
        .create(&standalone(&tenant, 0), hash("unlimited"), 100, now())
        .unwrap();
    let version = "SELECT xmin::text::bigint AS n FROM standalone_tickets WHERE uses_left IS NULL";
    let before = count(&g, version);
    let blocker = Blocker::standalone(&g.f, &tenant, &blocker_ticket.id);
    let (blocked, uses) = uses_behind(&g, &tenant, "blocker", &["unlimited"; 5]);
    blocker.release();
    assert!(matches!(blocked.join().unwrap(), Ok(Some(_))));
    for answer in joined(uses) {
        let used = answer.unwrap().expect("an unlimited ticket is always used");
        assert_eq!(used.uses_left, UsesLeft::Unlimited);
    }
    assert_eq!(g.sizes(), vec![1, 5]);
    // The five uses wrote no new version of the row.
    assert_eq!(count(&g, version), before);
    assert_eq!(count(&g, LIVE), 2);
}
