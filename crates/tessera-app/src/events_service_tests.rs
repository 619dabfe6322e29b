#![allow(clippy::unwrap_used)]

use std::sync::Arc;

use chrono::{DateTime, TimeZone, Utc};
use tessera_domain::{ApiKeyId, EventId, EventType, ProgramId, Role, TenantId};

use super::*;
use crate::events::{EventLimit, MockEventStore, StatsCount, StatsInterval};
use crate::ports::{MockClock, MockProgramStore, StoreError};

fn at(y: i32, m: u32, d: u32, h: u32, min: u32) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(y, m, d, h, min, 0).unwrap()
}

fn caller(role: Role) -> Principal {
    Principal {
        tenant_id: TenantId::generate(),
        key_id: ApiKeyId::generate(),
        role,
    }
}

fn service(programs: MockProgramStore, events: MockEventStore, now: DateTime<Utc>) -> EventService {
    let mut clock = MockClock::new();
    clock.expect_now().return_const(now);
    EventService::new(Arc::new(clock), Arc::new(programs), Arc::new(events), 90)
}

fn query() -> EventQuery {
    EventQuery {
        after: None,
        limit: EventLimit::DEFAULT,
        kind: None,
        program: None,
    }
}

#[test]
fn only_admins_read_the_feed() {
    let svc = service(
        MockProgramStore::new(),
        MockEventStore::new(),
        at(2026, 1, 1, 0, 0),
    );
    for role in [Role::Issuer, Role::Redeemer] {
        assert_eq!(
            svc.list_events(&caller(role), query()),
            Err(AppError::Forbidden)
        );
    }
}

#[test]
fn an_unknown_cursor_is_a_bad_request_naming_after() {
    let mut events = MockEventStore::new();
    events
        .expect_list()
        .returning(|_, _| Err(StoreError::NotFound));
    let svc = service(MockProgramStore::new(), events, at(2026, 1, 1, 0, 0));
    let mut q = query();
    q.after = Some(EventId::generate());
    match svc.list_events(&caller(Role::Admin), q) {
        Err(AppError::Invalid(error)) => assert_eq!(error.field, "after"),
        other => panic!("expected invalid after, got {other:?}"),
    }
}

#[test]
fn stats_of_another_tenants_program_are_not_found() {
    let mut programs = MockProgramStore::new();
    programs
        .expect_get()
        .returning(|_, _| Err(StoreError::NotFound));
    let svc = service(programs, MockEventStore::new(), at(2026, 1, 1, 0, 0));
    let range = StatsRange::new(None, None, StatsInterval::Hour, at(2026, 1, 1, 0, 0)).unwrap();
    assert_eq!(
        svc.program_stats(&caller(Role::Issuer), &ProgramId::generate(), range),
        Err(AppError::NotFound)
    );
}

#[test]
fn stats_fill_every_bucket_and_total_by_kind_and_reason() {
    let mut events = MockEventStore::new();
    let counts = vec![
        StatsCount {
            bucket: at(2026, 1, 1, 10, 0),
            kind: EventType::TicketBatchIssued,
            reason: None,
            count: 500,
        },
        StatsCount {
            bucket: at(2026, 1, 1, 10, 0),
            kind: EventType::TicketRedeemed,
            reason: None,
            count: 7,
        },
        StatsCount {
            bucket: at(2026, 1, 1, 12, 0),
            kind: EventType::TicketRedemptionFailed,
            reason: Some("exhausted".into()),
            count: 2,
        },
        StatsCount {
            bucket: at(2026, 1, 1, 12, 0),
            kind: EventType::TicketRedemptionFailed,
            reason: Some("not_found".into()),
            count: 3,
        },
        StatsCount {
            bucket: at(2026, 1, 1, 12, 0),
            kind: EventType::TicketIssued,
            reason: None,
            count: 1,
        },
    ];
    events.expect_stats().return_once(move |_, _, _| Ok(counts));
    let mut programs = MockProgramStore::new();
    programs
        .expect_get()
        .returning(|tenant, _| Ok(crate::service::test_support::program_in(tenant.clone())));
    let svc = service(programs, events, at(2026, 1, 2, 0, 0));
    // 10:30 to 13:10 covers the hours 10, 11, 12 and 13.
    let range = StatsRange::new(
        Some(at(2026, 1, 1, 10, 30)),
        Some(at(2026, 1, 1, 13, 10)),
        StatsInterval::Hour,
        at(2026, 1, 2, 0, 0),
    )
    .unwrap();
    let stats = svc
        .program_stats(&caller(Role::Admin), &ProgramId::generate(), range)
        .unwrap();
    assert_eq!((stats.issued, stats.redeemed, stats.failed), (501, 7, 5));
    assert_eq!(stats.failed_by_reason.get("exhausted"), Some(&2));
    assert_eq!(stats.failed_by_reason.get("not_found"), Some(&3));
    let starts: Vec<_> = stats.buckets.iter().map(|b| b.start).collect();
    assert_eq!(
        starts,
        vec![
            at(2026, 1, 1, 10, 0),
            at(2026, 1, 1, 11, 0),
            at(2026, 1, 1, 12, 0),
            at(2026, 1, 1, 13, 0)
        ]
    );
    assert_eq!(
        (stats.buckets[0].issued, stats.buckets[0].redeemed),
        (500, 7)
    );
    assert_eq!(
        stats.buckets[1],
        StatsBucket {
            start: at(2026, 1, 1, 11, 0),
            ..StatsBucket::default()
        }
    );
    assert_eq!((stats.buckets[2].issued, stats.buckets[2].failed), (1, 5));
}

#[test]
fn stats_ranges_are_bounded_per_interval() {
    let now = at(2026, 6, 1, 0, 0);
    let hour = StatsRange::new(
        Some(at(2026, 1, 1, 0, 0)),
        Some(at(2026, 2, 2, 0, 0)),
        StatsInterval::Hour,
        now,
    );
    assert_eq!(hour.unwrap_err().field, "to");
    let day = StatsRange::new(
        Some(at(2026, 1, 1, 0, 0)),
        Some(at(2026, 2, 2, 0, 0)),
        StatsInterval::Day,
        now,
    )
    .unwrap();
    assert_eq!(day.bucket_starts().count(), 32);
    let backwards = StatsRange::new(
        Some(now),
        Some(at(2026, 1, 1, 0, 0)),
        StatsInterval::Day,
        now,
    );
    assert!(backwards.is_err());
    let default = StatsRange::new(None, None, StatsInterval::Hour, at(2026, 6, 1, 12, 0)).unwrap();
    assert_eq!(default.bucket_starts().count(), 24);
    assert!(StatsInterval::parse(Some("week")).is_err());
    assert!(EventLimit::new(Some(0)).is_err() && EventLimit::new(Some(1001)).is_err());
    assert_eq!(EventLimit::new(Some(1000)).unwrap().get(), 1000);
}

#[test]
fn maintenance_makes_partitions_ahead_and_drops_past_retention() {
    let now = at(2026, 12, 15, 3, 0);
    let mut events = MockEventStore::new();
    events
        .expect_ensure_partition()
        .times(2)
        .returning(|at| Ok(Some(at.format("events_%Y_%m").to_string())));
    events
        .expect_drop_partitions_before()
        .withf(move |before| *before == now - chrono::Duration::days(90))
        .returning(|_| Ok(vec!["events_2026_08".to_owned()]));
    events.expect_roll_up().returning(|| Ok(12));
    let svc = service(MockProgramStore::new(), events, now);
    let report = svc.maintain().unwrap();
    assert_eq!(
        report.partitions_created,
        vec!["events_2026_12", "events_2027_01"]
    );
    assert_eq!(report.partitions_dropped, vec!["events_2026_08"]);
    assert_eq!(report.rollup_rows, 12);
}
