//! `/v1/events`, `/v1/programs/{id}/stats`, `/metrics` and `X-Request-Id`
//! against mocked use cases.

use chrono::{TimeZone, Utc};
use tessera_app::events::{EventPage, EventRecord, ProgramStats, StatsBucket, StatsInterval};
use tessera_app::AppError;
use tessera_domain::{EventId, EventType};

use crate::support::*;

fn record(id: &str, kind: EventType) -> EventRecord {
    EventRecord {
        id: EventId::parse(id).unwrap(),
        kind,
        created_at: Utc.with_ymd_and_hms(2026, 12, 1, 10, 0, 0).unwrap(),
        program_id: Some(program_id()),
        ticket_id: None,
        data: serde_json::json!({"reason": "ticket_exhausted"}),
    }
}

const EVT_1: &str = "evt_33333333333333331111";
const EVT_2: &str = "evt_33333333333333332222";

#[actix_web::test]
async fn events_are_listed_with_their_cursor_and_filters_parsed() {
    let mut mocks = Mocks::new();
    mocks
        .events
        .expect_list_events()
        .returning(|caller, query| {
            assert_eq!(caller.role, tessera_domain::Role::Admin);
            assert_eq!(query.after.as_ref().map(|id| id.as_str()), Some(EVT_1));
            assert_eq!(query.limit.get(), 2);
            assert_eq!(query.kind, Some(EventType::TicketRedemptionFailed));
            assert_eq!(query.program, Some(program_id()));
            Ok(EventPage {
                events: vec![record(EVT_2, EventType::TicketRedemptionFailed)],
                next: Some(EventId::parse(EVT_2).unwrap()),
            })
        });
    let path = format!(
        "/v1/events?after={EVT_1}&limit=2&type=ticket.redemption_failed&programId={PROGRAM_ID}"
    );
    let reply = send(mocks, get(&path, ADMIN_KEY)).await;
    assert_eq!(reply.status.as_u16(), 200, "{}", reply.text);
    assert_eq!(reply.body["next"], EVT_2);
    let event = &reply.body["events"][0];
    assert_eq!(event["id"], EVT_2);
    assert_eq!(event["type"], "ticket.redemption_failed");
    assert_eq!(event["createdAt"], "2026-12-01T10:00:00.000Z");
    assert_eq!(event["programId"], PROGRAM_ID);
    assert!(event["ticketId"].is_null());
    assert_eq!(event["data"]["reason"], "ticket_exhausted");
}

#[actix_web::test]
async fn bad_event_queries_are_400_naming_the_parameter() {
    for (query, field) in [
        ("limit=0", "limit"),
        ("limit=1001", "limit"),
        ("limit=ten", "limit"),
        ("type=ticket.state_changed", "type"),
        ("after=prg_22222222222222221111", "after"),
        ("programId=nope", "programId"),
        ("colour=red", "colour"),
    ] {
        let reply = send(Mocks::new(), get(&format!("/v1/events?{query}"), ADMIN_KEY)).await;
        reply.assert_error(400, "invalid_request");
        assert!(
            reply.message().contains(field),
            "{query}: {}",
            reply.message()
        );
    }
}

#[actix_web::test]
async fn the_events_feed_is_for_admins_and_keys() {
    let mut mocks = Mocks::new();
    mocks
        .events
        .expect_list_events()
        .returning(|_, _| Err(AppError::Forbidden));
    send(mocks, get("/v1/events", ISSUER_KEY))
        .await
        .assert_error(403, "forbidden");
    send(Mocks::new(), get("/v1/events", "tsk_unknown"))
        .await
        .assert_error(401, "unauthorized");
}

#[actix_web::test]
async fn stats_answer_totals_and_buckets() {
    let now = Utc.with_ymd_and_hms(2026, 12, 2, 0, 0, 0).unwrap();
    let mut mocks = Mocks::new();
    mocks.events.expect_now().return_const(now);
    mocks
        .events
        .expect_program_stats()
        .returning(|_, program, range| {
            assert_eq!(program, &program_id());
            assert_eq!(range.interval(), StatsInterval::Day);
            assert_eq!(
                range.from(),
                Utc.with_ymd_and_hms(2026, 11, 30, 0, 0, 0).unwrap()
            );
            assert_eq!(
                range.to(),
                Utc.with_ymd_and_hms(2026, 12, 2, 0, 0, 0).unwrap()
            );
            Ok(ProgramStats {
                issued: 5,
                redeemed: 3,
                failed: 1,
                failed_by_reason: [("ticket_exhausted".to_owned(), 1)].into(),
                buckets: range
                    .bucket_starts()
                    .map(|start| StatsBucket {
                        start,
                        issued: 5,
                        redeemed: 3,
                        failed: 1,
                    })
                    .take(1)
                    .collect(),
            })
        });
    let path = format!(
        "/v1/programs/{PROGRAM_ID}/stats?from=2026-11-30T05:00:00Z&to=1796126400000&interval=day"
    );
    let reply = send(mocks, get(&path, ISSUER_KEY)).await;
    assert_eq!(reply.status.as_u16(), 200, "{}", reply.text);
    assert_eq!(reply.body["issued"], 5);
    assert_eq!(reply.body["failedByReason"]["ticket_exhausted"], 1);
    assert_eq!(
        reply.body["buckets"][0]["start"],
        "2026-11-30T00:00:00.000Z"
    );
    assert_eq!(reply.body["buckets"][0]["redeemed"], 3);
}

#[actix_web::test]
async fn bad_stats_ranges_are_400_and_unknown_programs_404() {
    let now = Utc.with_ymd_and_hms(2026, 12, 2, 0, 0, 0).unwrap();
    for (query, field) in [
        ("interval=week", "interval"),
        ("from=yesterday", "from"),
        ("from=2026-10-01T00:00:00Z&to=2026-12-01T00:00:00Z", "to"),
        ("from=2026-12-01T00:00:00Z&to=2026-11-01T00:00:00Z", "to"),
    ] {
        let mut mocks = Mocks::new();
        mocks.events.expect_now().return_const(now);
        let path = format!("/v1/programs/{PROGRAM_ID}/stats?{query}");
        let reply = send(mocks, get(&path, ADMIN_KEY)).await;
        reply.assert_error(400, "invalid_request");
        assert!(
            reply.message().starts_with(field),
            "{query}: {}",
            reply.message()
        );
    }
    let mut mocks = Mocks::new();
    mocks.events.expect_now().return_const(now);
    mocks
        .events
        .expect_program_stats()
        .returning(|_, _, _| Err(AppError::NotFound));
    send(
        mocks,
        get(&format!("/v1/programs/{PROGRAM_ID}/stats"), ADMIN_KEY),
    )
    .await
    .assert_error(404, "not_found");
}

#[actix_web::test]
async fn every_answer_carries_a_request_id_and_keeps_a_well_formed_one() {
    let reply = send(
        Mocks::new(),
        actix_web::test::TestRequest::get().uri("/healthz"),
    )
    .await;
    let generated = reply
        .header("x-request-id")
        .expect("a request id")
        .to_owned();
    assert!(generated.starts_with("req_"), "{generated}");
    let reply = send(
        Mocks::new(),
        actix_web::test::TestRequest::get()
            .uri("/healthz")
            .insert_header(("X-Request-Id", "lb-42.abc")),
    )
    .await;
    assert_eq!(reply.header("x-request-id"), Some("lb-42.abc"));
    let reply = send(
        Mocks::new(),
        actix_web::test::TestRequest::get()
            .uri("/healthz")
            .insert_header(("X-Request-Id", "evil\"id with spaces")),
    )
    .await;
    assert_ne!(reply.header("x-request-id"), Some("evil\"id with spaces"));
}

#[actix_web::test]
async fn metrics_list_the_names_by_route_pattern_never_by_path() {
    tessera_http::metrics::install();
    let mut mocks = Mocks::new();
    mocks
        .tickets
        .expect_get_ticket()
        .returning(|_, _| Err(AppError::NotFound));
    send(mocks, get(&format!("/v1/tickets/{TICKET_ID}"), ADMIN_KEY)).await;
    tessera_http::metrics::record_redemption(Err(
        tessera_domain::RedemptionFailure::TicketExhausted,
    ));
    tessera_http::metrics::set_webhook_deliveries_pending(3);
    tessera_http::metrics::set_allocator_sampler(|| {
        Some(tessera_http::metrics::AllocatorSample {
            allocated: 7_000_000,
            resident: 9_000_000,
        })
    });
    let mut mocks = Mocks::new();
    mocks.settings.pool_sampler = Some(std::sync::Arc::new(|| (4, 2)));
    let reply = send_raw(mocks, actix_web::test::TestRequest::get().uri("/metrics")).await;
    let text = reply.text();
    for name in [
        "tessera_http_requests_total",
        "tessera_http_request_duration_seconds_bucket",
        "tessera_redemptions_total{outcome=\"redeemed\"}",
        "tessera_redemptions_total{outcome=\"ticket_exhausted\"}",
        "tessera_db_pool_connections{state=\"idle\"} 4",
        "tessera_db_pool_connections{state=\"in_use\"} 2",
        "tessera_webhook_deliveries_pending 3",
        "process_cpu_seconds_total",
        "process_resident_memory_bytes",
        "tessera_allocator_allocated_bytes 7000000",
        "tessera_allocator_resident_bytes 9000000",
    ] {
        assert!(text.contains(name), "{name} missing:\n{text}");
    }
    assert!(text.contains("route=\"/v1/tickets/{ticket_id}\""), "{text}");
    assert!(
        !text.contains(TICKET_ID),
        "a path with an id leaked:\n{text}"
    );
}
