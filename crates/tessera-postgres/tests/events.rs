//! The event history through the `EventStore` port on a real database: feed
//! paging (alone and under concurrent writers), filters, tenant isolation,
//! partitions and retention, and stats whether or not events are rolled up.
#![allow(clippy::unwrap_used)]
mod common;

use std::collections::HashSet;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use chrono::{Duration, TimeZone, Utc};
use common::{at, attempt, fixture, issue, program, tenant, Count};
use diesel::sql_types::{Text, Timestamptz};
use diesel::{sql_query, QueryableByName, RunQueryDsl};
use tessera_app::events::{EventLimit, EventQuery, EventStore, StatsInterval, StatsRange};
use tessera_app::ports::{RedemptionStore, StoreError, TicketStore};
use tessera_domain::{EventId, EventType, TenantId};
use tessera_postgres::{PgPool, PgStore};

fn query(after: Option<EventId>, limit: i64) -> EventQuery {
    EventQuery {
        after,
        limit: EventLimit::new(Some(limit)).unwrap(),
        kind: None,
        program: None,
    }
}

/// The tenant's events, paging `limit` at a time from the start, following the
/// feed until `expected` events came. The feed shows an event once every
/// transaction older than it has ended, in any database of the cluster (other
/// suites run meanwhile), so a follower may have to ask again, as clients do.
fn page_through(store: &PgStore, tenant: &TenantId, limit: i64, expected: usize) -> Vec<EventId> {
    let mut seen: Vec<EventId> = Vec::new();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    loop {
        let page = EventStore::list(store, tenant, &query(seen.last().cloned(), limit)).unwrap();
        let more = page.next.is_some();
        seen.extend(page.events.into_iter().map(|e| e.id));
        if !more && seen.len() >= expected {
            return seen;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "only {} of {expected} events",
            seen.len()
        );
        if !more {
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
    }
}

#[derive(QueryableByName)]
struct Id {
    #[diesel(sql_type = Text)]
    id: String,
}

fn all_ids(pool: &PgPool, tenant: &TenantId) -> HashSet<String> {
    let mut conn = pool.get().unwrap();
    sql_query("SELECT id FROM events WHERE tenant_id = $1")
        .bind::<Text, _>(tenant.as_str())
        .load::<Id>(&mut conn)
        .unwrap()
        .into_iter()
        .map(|row| row.id)
        .collect()
}

#[test]
fn paging_returns_every_event_once_oldest_first() {
    let f = fixture();
    let tenant = tenant(&f.store);
    let program = program(&f.store, &tenant, |_| {});
    let tickets: Vec<_> = (0..6)
        .map(|i| issue(&f.store, &program, &format!("code{i}"), |_| {}))
        .collect();
    f.store.revoke(&tenant, &tickets[0], at(20)).unwrap();
    let ids = page_through(&f.store, &tenant, 2, 8);
    assert_eq!(ids.len(), 8, "program.created, 6 issued, 1 revoked");
    let unique: HashSet<_> = ids.iter().map(|id| id.as_str().to_owned()).collect();
    assert_eq!(unique, all_ids(&f.db.pool(), &tenant));
    let first = EventStore::list(&f.store, &tenant, &query(None, 1)).unwrap();
    assert_eq!(first.events[0].kind, EventType::ProgramCreated);
    let whole = EventStore::list(&f.store, &tenant, &query(None, 1000)).unwrap();
    assert_eq!(whole.next, None, "nothing follows the last page");
    assert_eq!(whole.events.last().unwrap().kind, EventType::TicketRevoked);
}

#[test]
fn paging_while_others_write_skips_nothing_and_repeats_nothing() {
    let f = fixture();
    let store = PgStore::new(f.db.pool_with_size(8));
    let tenant = tenant(&store);
    let program = program(&store, &tenant, |_| {});
    let done = Arc::new(AtomicBool::new(false));
    let writers: Vec<_> = (0..4)
        .map(|w| {
            let (store, program) = (store.clone(), program.clone());
            std::thread::spawn(move || {
                for i in 0..60 {
                    issue(&store, &program, &format!("w{w}-{i}"), |_| {});
                }
            })
        })
        .collect();
    let reader = {
        let (store, tenant, done) = (store.clone(), tenant.clone(), done.clone());
        std::thread::spawn(move || {
            let mut seen = Vec::new();
            let mut after = None;
            loop {
                let finished = done.load(Ordering::SeqCst);
                let page = EventStore::list(&store, &tenant, &query(after.clone(), 7)).unwrap();
                if let Some(last) = page.events.last() {
                    after = Some(last.id.clone());
                }
                seen.extend(page.events.into_iter().map(|e| e.id.as_str().to_owned()));
                // 1 program.created + 4 x 60 issued, once all are visible.
                if finished && page.next.is_none() && seen.len() >= 241 {
                    return seen;
                }
                if page.next.is_none() {
                    std::thread::sleep(std::time::Duration::from_millis(5));
                }
            }
        })
    };
    for writer in writers {
        writer.join().unwrap();
    }
    done.store(true, Ordering::SeqCst);
    let seen = reader.join().unwrap();
    let unique: HashSet<_> = seen.iter().cloned().collect();
    assert_eq!(unique.len(), seen.len(), "an event came twice");
    assert_eq!(
        unique,
        all_ids(&f.db.pool(), &tenant),
        "an event was skipped"
    );
    assert_eq!(seen.len(), 241);
}

#[test]
fn filters_by_type_and_program_and_stays_in_the_tenant() {
    let f = fixture();
    let tenant = tenant(&f.store);
    let other = common::tenant(&f.store);
    let first = program(&f.store, &tenant, |_| {});
    let second = program(&f.store, &tenant, |_| {});
    let foreign = program(&f.store, &other, |_| {});
    issue(&f.store, &first, "a1", |_| {});
    issue(&f.store, &second, "b1", |_| {});
    issue(&f.store, &foreign, "c1", |_| {});
    page_through(&f.store, &tenant, 100, 4);
    page_through(&f.store, &other, 100, 2);
    let mut q = query(None, 100);
    q.kind = Some(EventType::TicketIssued);
    let issued = EventStore::list(&f.store, &tenant, &q).unwrap().events;
    assert_eq!(issued.len(), 2);
    q.program = Some(second.id.clone());
    let only = EventStore::list(&f.store, &tenant, &q).unwrap().events;
    assert_eq!(only.len(), 1);
    assert_eq!(only[0].program_id.as_ref(), Some(&second.id));
    q.program = Some(foreign.id.clone());
    assert!(EventStore::list(&f.store, &tenant, &q)
        .unwrap()
        .events
        .is_empty());
    // Another tenant's event is no cursor here.
    let theirs = EventStore::list(&f.store, &other, &query(None, 1))
        .unwrap()
        .events[0]
        .id
        .clone();
    assert_eq!(
        EventStore::list(&f.store, &tenant, &query(Some(theirs), 10)),
        Err(StoreError::NotFound)
    );
}

fn partitions(pool: &PgPool, name: &str) -> i64 {
    let mut conn = pool.get().unwrap();
    sql_query(
        "SELECT count(*) AS n FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid \
         WHERE i.inhparent = 'events'::regclass AND c.relname = $1",
    )
    .bind::<Text, _>(name)
    .get_result::<Count>(&mut conn)
    .unwrap()
    .n
}

#[test]
fn retention_drops_old_partitions_and_keeps_current_ones() {
    let f = fixture();
    let pool = f.db.pool();
    let tenant = tenant(&f.store);
    let old = Utc.with_ymd_and_hms(2020, 1, 15, 12, 0, 0).unwrap();
    assert_eq!(
        f.store.ensure_partition(old).unwrap().as_deref(),
        Some("events_2020_01")
    );
    assert_eq!(f.store.ensure_partition(old).unwrap(), None, "made once");
    let mut conn = pool.get().unwrap();
    sql_query(
        "INSERT INTO events (tenant_id, id, type, created_at) \
         VALUES ($1, $2, 'program.created', $3), ($1, $4, 'program.created', now())",
    )
    .bind::<Text, _>(tenant.as_str())
    .bind::<Text, _>(EventId::generate().as_str())
    .bind::<Timestamptz, _>(old)
    .bind::<Text, _>(EventId::generate().as_str())
    .execute(&mut conn)
    .unwrap();
    let now = Utc::now();
    f.store.ensure_partition(now).unwrap();
    let current = now.format("events_%Y_%m").to_string();
    let dropped = f
        .store
        .drop_partitions_before(now - Duration::days(90))
        .unwrap();
    assert!(
        dropped.contains(&"events_2020_01".to_owned()),
        "{dropped:?}"
    );
    assert!(!dropped.contains(&current));
    assert_eq!(partitions(&pool, "events_2020_01"), 0);
    assert_eq!(partitions(&pool, &current), 1);
    assert_eq!(all_ids(&pool, &tenant).len(), 1, "the recent event stays");
}

/// Finished deliveries older than the retention go with their events; a pending
/// one stays, however old, until it finishes.
#[test]
fn retention_deletes_finished_deliveries_past_it_and_keeps_pending_ones() {
    let f = fixture();
    let pool = f.db.pool();
    let tenant = tenant(&f.store);
    let mut conn = pool.get().unwrap();
    sql_query(
        "INSERT INTO webhooks (tenant_id, id, url, triggers, secret_ciphertext, created_at) \
         VALUES ($1, 'whk_1', 'https://example.com/hook', ARRAY['*'], '\\x00', now())",
    )
    .bind::<Text, _>(tenant.as_str())
    .execute(&mut conn)
    .unwrap();
    let old = Utc::now() - Duration::days(200);
    for (id, state, created) in [
        ("dlv_old_done", "delivered", old),
        ("dlv_old_failed", "failed", old),
        ("dlv_old_pending", "pending", old),
        ("dlv_new_done", "delivered", Utc::now()),
    ] {
        sql_query(
            "INSERT INTO webhook_deliveries (tenant_id, id, webhook_id, event_id, event_type, \
               payload, state, next_attempt_at, created_at) \
             VALUES ($1, $2, 'whk_1', 'evt_x', 'program.created', '{}', $3, \
               CASE WHEN $3 = 'pending' THEN now() END, $4)",
        )
        .bind::<Text, _>(tenant.as_str())
        .bind::<Text, _>(id)
        .bind::<Text, _>(state)
        .bind::<Timestamptz, _>(created)
        .execute(&mut conn)
        .unwrap();
    }
    f.store
        .drop_partitions_before(Utc::now() - Duration::days(90))
        .unwrap();
    #[derive(QueryableByName)]
    struct Id {
        #[diesel(sql_type = Text)]
        id: String,
    }
    let mut left: Vec<String> =
        sql_query("SELECT id FROM webhook_deliveries WHERE tenant_id = $1 ORDER BY id")
            .bind::<Text, _>(tenant.as_str())
            .load::<Id>(&mut conn)
            .unwrap()
            .into_iter()
            .map(|row| row.id)
            .collect();
    left.sort();
    assert_eq!(left, ["dlv_new_done", "dlv_old_pending"]);
}

#[test]
fn a_late_partition_takes_the_rows_the_default_one_caught() {
    let f = fixture();
    let tenant = tenant(&f.store);
    let program = program(&f.store, &tenant, |_| {});
    issue(&f.store, &program, "x", |_| {});
    // The fixtures' clock is in 2030: those rows sit in the default partition.
    let before = page_through(&f.store, &tenant, 10, 2);
    let created = f.store.ensure_partition(at(0)).unwrap();
    assert!(created.is_some());
    assert_eq!(page_through(&f.store, &tenant, 10, 2), before);
}

fn rolled_up(pool: &PgPool, tenant: &TenantId) -> i64 {
    let mut conn = pool.get().unwrap();
    sql_query("SELECT coalesce(sum(n), 0)::bigint AS n FROM event_rollups WHERE tenant_id = $1")
        .bind::<Text, _>(tenant.as_str())
        .get_result::<Count>(&mut conn)
        .unwrap()
        .n
}

#[test]
fn stats_count_the_same_before_and_after_the_rollup() {
    let f = fixture();
    let tenant = tenant(&f.store);
    let program = program(&f.store, &tenant, |_| {});
    issue(&f.store, &program, "s1", |_| {});
    issue(&f.store, &program, "s2", |_| {});
    f.store
        .redeem(&attempt(&program, "s1", None))
        .unwrap()
        .unwrap();
    assert!(f
        .store
        .redeem(&attempt(&program, "nope", None))
        .unwrap()
        .is_err());
    f.store
        .record_batch(&tenant, &program.id, 40, at(11))
        .unwrap();
    let range =
        StatsRange::new(Some(at(-3600)), Some(at(3600)), StatsInterval::Hour, at(0)).unwrap();
    let totals = |store: &PgStore| {
        let mut counts = store.stats(&tenant, &program.id, &range).unwrap();
        counts.sort_by_key(|c| (c.kind, c.reason.clone()));
        counts
            .into_iter()
            .map(|c| (c.kind, c.reason, c.count))
            .collect::<Vec<_>>()
    };
    let live = totals(&f.store);
    assert!(
        live.contains(&(EventType::TicketIssued, None, 2)),
        "{live:?}"
    );
    assert!(
        live.contains(&(EventType::TicketBatchIssued, None, 40)),
        "{live:?}"
    );
    assert!(
        live.contains(&(EventType::TicketRedeemed, None, 1)),
        "{live:?}"
    );
    assert!(
        live.contains(&(
            EventType::TicketRedemptionFailed,
            Some("ticket_not_found".into()),
            1
        )),
        "{live:?}"
    );
    // A rollup reaches an event once every older transaction of the cluster has
    // ended; until then the stats count it from the tail, after it from the rollup.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while rolled_up(&f.db.pool(), &tenant) < 44 {
        f.store.roll_up().unwrap();
        assert_eq!(totals(&f.store), live, "counted once while rolling up");
        assert!(std::time::Instant::now() < deadline, "never rolled up");
    }
    f.store.roll_up().unwrap();
    assert_eq!(totals(&f.store), live, "rolled up, counted once");
    issue(&f.store, &program, "s3", |_| {});
    let after = totals(&f.store);
    assert!(
        after.contains(&(EventType::TicketIssued, None, 3)),
        "{after:?}"
    );
}
