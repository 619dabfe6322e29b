//! Email locks that expire and double (issue 16), and the equal-time probe, on the
//! real schema.
#![allow(clippy::unwrap_used)]

mod common;

use chrono::Duration;
use common::{at, attempt_at, events, fixture, Count, EMAIL_LOCK_SECONDS};
use diesel::sql_types::Text;
use diesel::{sql_query, QueryableByName, RunQueryDsl};
use serde_json::json;
use tessera_app::events::EventStore;
use tessera_app::ports::{RedemptionStore, TicketStore};
use tessera_domain::{
    Program, RedemptionFailure, TenantId, TicketId, TicketState, ValidityWindow,
    EMAIL_MISMATCHES_BEFORE_LOCK,
};
use tessera_postgres::{PgStore, PROBE_TENANT};

const RIGHT: &str = "ann@example.com";
const WRONG: &str = "bob@example.com";

fn bound_ticket(store: &PgStore) -> (TenantId, Program, TicketId) {
    let tenant = common::tenant(store);
    let program = common::program(store, &tenant, |new| {
        new.max_redemptions = common::limit(100);
        // Open for the months the doubled locks take.
        new.window = ValidityWindow::new(at(-100), at(100_000_000)).unwrap();
    });
    let id = common::issue(store, &program, "code", |t| {
        t.email = Some(common::email(RIGHT));
    });
    (tenant, program, id)
}

/// Five wrong emails at `when`; the last one locks.
fn lock_at(store: &PgStore, program: &Program, when: chrono::DateTime<chrono::Utc>) {
    for _ in 0..EMAIL_MISMATCHES_BEFORE_LOCK {
        assert_eq!(
            store
                .redeem(&attempt_at(program, "code", Some(WRONG), when))
                .unwrap(),
            Err(RedemptionFailure::EmailMismatch)
        );
    }
}

#[derive(QueryableByName)]
struct EventData {
    #[diesel(sql_type = diesel::sql_types::Jsonb)]
    data: serde_json::Value,
}

/// The data of the tenant's `ticket.locked` events, oldest first.
fn lock_events(f: &common::Fixture, tenant: &TenantId) -> Vec<serde_json::Value> {
    let mut conn = f.db.pool().get().unwrap();
    // Hand-written: reads what the refusal statement wrote, independently of it.
    sql_query(
        "SELECT data FROM events WHERE tenant_id = $1 AND type = 'ticket.locked' \
         ORDER BY created_at",
    )
    .bind::<Text, _>(tenant.as_str())
    .load::<EventData>(&mut conn)
    .unwrap()
    .into_iter()
    .map(|row| row.data)
    .collect()
}

#[test]
fn a_lock_lasts_the_configured_time_then_doubles_on_the_next_lock() {
    let f = fixture();
    let (tenant, program, id) = bound_ticket(&f.store);
    let base = Duration::seconds(i64::from(EMAIL_LOCK_SECONDS));
    let redeem = |when, email| {
        f.store
            .redeem(&attempt_at(&program, "code", Some(email), when))
            .unwrap()
    };

    lock_at(&f.store, &program, at(0));
    let locked = TicketStore::get(&f.store, &tenant, &id).unwrap().ticket;
    assert_eq!(locked.state, TicketState::Locked);
    assert_eq!(locked.locked_until, Some(at(0) + base));
    let just_before = at(0) + base - Duration::milliseconds(1);
    assert_eq!(
        redeem(just_before, RIGHT),
        Err(RedemptionFailure::TicketLocked)
    );
    assert_eq!(locked.state_at(just_before), TicketState::Locked);
    assert_eq!(locked.state_at(at(0) + base), TicketState::Active);

    // Expired: a wrong email starts a new count at one (no instant relock) …
    let later = at(0) + base;
    assert_eq!(redeem(later, WRONG), Err(RedemptionFailure::EmailMismatch));
    let view = TicketStore::get(&f.store, &tenant, &id).unwrap().ticket;
    assert_eq!((view.state, view.failed_attempts), (TicketState::Active, 1));
    // … and four more lock it again, for twice as long.
    for _ in 1..EMAIL_MISMATCHES_BEFORE_LOCK {
        assert_eq!(redeem(later, WRONG), Err(RedemptionFailure::EmailMismatch));
    }
    let relocked = TicketStore::get(&f.store, &tenant, &id).unwrap().ticket;
    assert_eq!(relocked.locked_until, Some(later + base * 2));
    assert_eq!(
        events(&f.db.pool(), &tenant, "ticket.locked"),
        2,
        "one event per lock"
    );
    assert_eq!(
        lock_events(&f, &tenant),
        [
            json!({ "failedAttempts": 5, "lockedUntil": at(0) + base }),
            json!({ "failedAttempts": 5, "lockedUntil": later + base * 2 }),
        ],
        "each lock's event carries its count and its end, as the API writes times"
    );

    // After the doubled lock, the owner redeems; a success ends the series.
    let free = later + base * 2;
    assert!(redeem(free, RIGHT).is_ok());
    lock_at(&f.store, &program, free);
    let third = TicketStore::get(&f.store, &tenant, &id).unwrap().ticket;
    assert_eq!(third.locked_until, Some(free + base), "back to the base");
}

#[test]
fn an_expired_lock_redeems_and_a_lock_from_before_expiry_existed_stays() {
    let f = fixture();
    let (_tenant, program, _id) = bound_ticket(&f.store);
    lock_at(&f.store, &program, at(0));
    let after = at(0) + Duration::seconds(i64::from(EMAIL_LOCK_SECONDS));
    assert!(f
        .store
        .redeem(&attempt_at(&program, "code", Some(RIGHT), after))
        .unwrap()
        .is_ok());

    // A lock with no end (set by an older release and never migrated) holds.
    let (_, program, _) = bound_ticket(&f.store);
    let _forever = common::issue(&f.store, &program, "other", |t| {
        t.state = TicketState::Locked;
    });
    let far = at(1_000_000);
    assert_eq!(
        f.store
            .redeem(&attempt_at(&program, "other", None, far))
            .unwrap(),
        Err(RedemptionFailure::TicketLocked)
    );
}

fn count(store: &common::Fixture, sql: &str, tenant: &str) -> i64 {
    let mut conn = store.db.pool().get().unwrap();
    sql_query(sql)
        .bind::<Text, _>(tenant)
        .get_result::<Count>(&mut conn)
        .unwrap()
        .n
}

#[test]
fn the_probe_does_an_unknown_code_s_work_and_leaves_nothing_past_maintenance() {
    let f = fixture();
    let (tenant, program, _id) = bound_ticket(&f.store);
    let others = "SELECT count(*) AS n FROM events WHERE tenant_id <> $1";
    let before = count(&f, others, PROBE_TENANT);
    for _ in 0..3 {
        f.store.probe(&program.id, at(0), None).unwrap();
    }
    // Written under the probe tenant, as a real failure writes its event (and
    // commits it); no other tenant has any.
    let probes = "SELECT count(*) AS n FROM events WHERE tenant_id = $1";
    assert_eq!(count(&f, probes, PROBE_TENANT), 3);
    assert_eq!(
        count(&f, others, PROBE_TENANT),
        before,
        "no event of a tenant"
    );
    // Event maintenance forgets them, with retention.
    EventStore::drop_partitions_before(&f.store, at(-1_000_000_000)).unwrap();
    assert_eq!(
        count(&f, probes, PROBE_TENANT),
        0,
        "maintenance deletes the probe's events"
    );
    assert_eq!(count(&f, others, PROBE_TENANT), before, "and nothing else");
    assert_eq!(
        count(
            &f,
            "SELECT count(*) AS n FROM tickets WHERE tenant_id = $1 AND redemptions > 0",
            tenant.as_str()
        ),
        0
    );
}

/// A ticket issued to a subject whose ticket is locked supersedes it: the old
/// lock loses its end, so the subject never has two usable tickets once the old
/// lock would have run out; re-activating the old one meets the unique index.
#[test]
fn a_new_ticket_for_a_locked_out_subject_supersedes_the_locked_one() {
    let f = fixture();
    let tenant = common::tenant(&f.store);
    let program = common::program(&f.store, &tenant, |new| {
        new.max_redemptions = common::limit(100);
        new.one_active_per_subject = true;
        new.window = ValidityWindow::new(at(-100), at(100_000_000)).unwrap();
    });
    let old = common::issue(&f.store, &program, "code", |t| {
        t.email = Some(common::email(RIGHT));
        t.subject = Some(common::subject("ann"));
    });
    lock_at(&f.store, &program, at(0));
    let fresh = common::issue(&f.store, &program, "fresh", |t| {
        t.subject = Some(common::subject("ann"))
    });
    let superseded = TicketStore::get(&f.store, &tenant, &old).unwrap().ticket;
    assert_eq!(
        (superseded.state, superseded.locked_until),
        (TicketState::Locked, None)
    );
    let long_after = at(0) + Duration::seconds(i64::from(EMAIL_LOCK_SECONDS) * 10);
    assert_eq!(superseded.state_at(long_after), TicketState::Locked);
    assert_eq!(
        f.store
            .redeem(&attempt_at(&program, "code", Some(RIGHT), long_after))
            .unwrap(),
        Err(RedemptionFailure::TicketLocked)
    );
    assert!(f
        .store
        .redeem(&attempt_at(&program, "fresh", None, long_after))
        .unwrap()
        .is_ok());
    assert_eq!(
        f.store.set_state(
            &tenant,
            &old,
            TicketState::Active,
            superseded.version,
            long_after
        ),
        Err(tessera_app::ports::StoreError::SubjectHasActiveTicket)
    );
    let recorded = count(
        &f,
        &format!(
            "SELECT count(*) AS n FROM events WHERE tenant_id = $1 AND type = 'ticket.updated' \
             AND ticket_id = '{old}' AND data->>'supersededBy' = '{fresh}'"
        ),
        tenant.as_str(),
    );
    assert_eq!(recorded, 1);
}

/// Without a subject (or in a program without the rule) a lock keeps its end.
#[test]
fn tickets_of_other_subjects_keep_their_lock_s_end() {
    let f = fixture();
    let tenant = common::tenant(&f.store);
    let program = common::program(&f.store, &tenant, |new| {
        new.one_active_per_subject = true;
    });
    let old = common::issue(&f.store, &program, "code", |t| {
        t.email = Some(common::email(RIGHT));
        t.subject = Some(common::subject("ann"));
    });
    lock_at(&f.store, &program, at(0));
    common::issue(&f.store, &program, "other", |t| {
        t.subject = Some(common::subject("bob"))
    });
    let kept = TicketStore::get(&f.store, &tenant, &old).unwrap().ticket;
    assert!(kept.locked_until.is_some());
}

/// A lock after k earlier ones lasts base × 2^k, up to 2^16: the statement picks
/// the end from the 17 the adapter binds, and no count of earlier locks reads past
/// the last one.
#[test]
fn the_doubling_stops_at_two_to_the_sixteenth() {
    let f = fixture();
    let (tenant, program, id) = bound_ticket(&f.store);
    let base = Duration::seconds(i64::from(EMAIL_LOCK_SECONDS));
    for (earlier_locks, factor) in [(15, 1 << 15), (16, 1 << 16), (40, 1 << 16)] {
        let mut conn = f.db.pool().get().unwrap();
        sql_query(
            "UPDATE tickets SET state = 'active', locked_until = NULL, failed_attempts = 0, \
             email_locks = $3 WHERE tenant_id = $1 AND id = $2",
        )
        .bind::<Text, _>(tenant.as_str())
        .bind::<Text, _>(id.as_str())
        .bind::<diesel::sql_types::Integer, _>(earlier_locks)
        .execute(&mut conn)
        .unwrap();
        lock_at(&f.store, &program, at(0));
        let locked = TicketStore::get(&f.store, &tenant, &id).unwrap().ticket;
        assert_eq!(locked.state, TicketState::Locked, "after {earlier_locks}");
        assert_eq!(
            locked.locked_until,
            Some(at(0) + base * factor),
            "after {earlier_locks} earlier locks"
        );
    }
}
