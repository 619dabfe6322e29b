//! The event history end to end: every event type a change of today's API makes,
//! read back through `GET /v1/events`; paging; stats; `/metrics`; JSON logs with
//! request ids; and retention dropping an old partition from the server itself.
#![allow(clippy::unwrap_used)] // test helpers may unwrap, like the tests

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use diesel::sql_types::{BigInt, Text};
use diesel::{sql_query, QueryableByName, RunQueryDsl};
use serde_json::{json, Value};
use tessera_e2e::{program_body, Client, Server, TestDatabase};

/// Follows the feed from the start, `limit` at a time, until at least `expected`
/// events came: an event shows once every older transaction has ended.
fn feed(admin: &Client, query: &str, limit: u32, expected: usize) -> Vec<Value> {
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut events: Vec<Value> = Vec::new();
    loop {
        let after = events
            .last()
            .map(|e| format!("&after={}", e["id"].as_str().unwrap()))
            .unwrap_or_default();
        let (status, page) = admin.get(&format!("/v1/events?limit={limit}{query}{after}"));
        assert_eq!(status, 200, "{page}");
        let batch = page["events"].as_array().unwrap().clone();
        assert!(batch.len() <= limit as usize);
        let more = !page["next"].is_null();
        if more {
            assert_eq!(page["next"], batch.last().unwrap()["id"]);
        }
        events.extend(batch);
        if !more && events.len() >= expected {
            return events;
        }
        assert!(
            Instant::now() < deadline,
            "only {} of {expected}",
            events.len()
        );
        if !more {
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

fn of_type<'a>(events: &'a [Value], kind: &str) -> Vec<&'a Value> {
    events.iter().filter(|e| e["type"] == kind).collect()
}

#[test]
fn every_event_type_of_todays_api_is_emitted_by_the_change_it_names() {
    let database = TestDatabase::new();
    let server = Server::start(&database);
    let (_, admin_key) = server.create_tenant("Events");
    let admin = server.client(Some(&admin_key));
    let public = server.client(None);

    let (_, program) = admin.post("/v1/programs", program_body(json!({"maxRedemptions": 1})));
    let program_id = program["id"].as_str().unwrap().to_owned();
    let program_path = format!("/v1/programs/{program_id}");
    let (status, _) = admin.send("PATCH", &program_path, Some(json!({"name": "renamed"})));
    assert_eq!(status, 200);
    let issue = |body: Value| {
        let (status, issued) = admin.post(&format!("{program_path}/tickets"), body);
        assert_eq!(status, 201, "{issued}");
        (
            issued["ticketId"].as_str().unwrap().to_owned(),
            issued["code"].as_str().unwrap().to_owned(),
        )
    };
    let (redeemed_id, redeemed_code) = issue(json!({}));
    let (locked_id, locked_code) = issue(json!({"email": "ann@example.com"}));
    let (updated_id, _) = issue(json!({}));
    let (revoked_id, _) = issue(json!({}));
    let answer = admin.post_with(
        &format!("{program_path}/tickets/batch"),
        &[],
        &json!({"count": 3}),
    );
    assert_eq!(answer.status, 200, "{}", answer.text);

    let redeem = |body: Value| public.post("/v1/redeem", body);
    assert_eq!(
        redeem(json!({"programId": program_id, "code": redeemed_code})).0,
        200
    );
    assert_eq!(
        redeem(json!({"programId": program_id, "code": redeemed_code})).0,
        404
    );
    for _ in 0..5 {
        redeem(json!({"programId": program_id, "code": locked_code, "email": "bob@example.com"}));
    }
    let (status, _) = admin.send(
        "PATCH",
        &format!("/v1/tickets/{updated_id}"),
        Some(json!({"state": "disabled"})),
    );
    assert_eq!(status, 200);
    assert_eq!(
        admin
            .send("DELETE", &format!("/v1/tickets/{revoked_id}"), None)
            .0,
        204
    );
    assert_eq!(
        admin.post(&format!("{program_path}/suspend"), json!({})).0,
        200
    );
    assert_eq!(admin.send("DELETE", &program_path, None).0, 204);

    // 1 created + 1 updated + 4 issued + 1 batch + redeemed + exhausted + 1 failed
    // (exhausted) + 5 failed (email) + locked + updated + revoked + suspended + deleted.
    let events = feed(&admin, "", 4, 20);
    assert_eq!(events.len(), 20, "{events:#?}");
    let types: BTreeSet<&str> = events.iter().map(|e| e["type"].as_str().unwrap()).collect();
    for kind in [
        "program.created",
        "program.updated",
        "program.suspended",
        "program.deleted",
        "ticket.issued",
        "ticket.batch_issued",
        "ticket.updated",
        "ticket.redeemed",
        "ticket.redemption_failed",
        "ticket.exhausted",
        "ticket.revoked",
        "ticket.locked",
    ] {
        assert!(types.contains(kind), "{kind} missing: {types:?}");
    }
    let ids: BTreeSet<&str> = events.iter().map(|e| e["id"].as_str().unwrap()).collect();
    assert_eq!(ids.len(), events.len(), "an event came twice");
    assert_eq!(events[0]["type"], "program.created");
    assert_eq!(events[19]["type"], "program.deleted");
    assert!(events.iter().all(|e| e["programId"] == program_id.as_str()));
    let ticket_of = |kind: &str| of_type(&events, kind)[0]["ticketId"].clone();
    assert_eq!(ticket_of("ticket.redeemed"), redeemed_id.as_str());
    assert_eq!(ticket_of("ticket.exhausted"), redeemed_id.as_str());
    assert_eq!(ticket_of("ticket.locked"), locked_id.as_str());
    assert_eq!(ticket_of("ticket.updated"), updated_id.as_str());
    assert_eq!(ticket_of("ticket.revoked"), revoked_id.as_str());
    assert_eq!(
        of_type(&events, "ticket.batch_issued")[0]["data"]["count"],
        3
    );
    let reasons: Vec<&str> = of_type(&events, "ticket.redemption_failed")
        .iter()
        .map(|e| e["data"]["reason"].as_str().unwrap())
        .collect();
    assert_eq!(
        reasons.iter().filter(|r| **r == "ticket_exhausted").count(),
        1,
        "{reasons:?}"
    );
    assert_eq!(
        reasons.iter().filter(|r| **r == "email_mismatch").count(),
        5,
        "{reasons:?}"
    );
    assert!(events
        .iter()
        .all(|e| e["createdAt"].as_str().unwrap().ends_with('Z')));

    // Filters, and the codes nowhere in the history.
    let failed = feed(&admin, "&type=ticket.redemption_failed", 100, 6);
    assert_eq!(failed.len(), 6);
    let text = serde_json::to_string(&events).unwrap();
    assert!(!text.contains(&redeemed_code) && !text.contains(&locked_code));
    let (status, body) = admin.get("/v1/events?type=ticket.nope");
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (400, Some("invalid_request"))
    );
}

#[test]
fn paging_under_concurrent_issuance_returns_each_event_once() {
    let database = TestDatabase::new();
    let server = Server::start(&database);
    let (_, admin_key) = server.create_tenant("Busy");
    let admin = server.client(Some(&admin_key));
    let (_, program) = admin.post("/v1/programs", program_body(json!({})));
    let path = format!("/v1/programs/{}/tickets", program["id"].as_str().unwrap());
    let writers: Vec<_> = (0..4)
        .map(|_| {
            let (admin, path) = (admin.clone(), path.clone());
            std::thread::spawn(move || {
                for _ in 0..40 {
                    assert_eq!(admin.post(&path, json!({})).0, 201);
                }
            })
        })
        .collect();
    // Read while they write, with small pages, then to the end.
    let early = feed(&admin, "", 3, 1);
    for writer in writers {
        writer.join().unwrap();
    }
    let mut events = early.clone();
    let rest = {
        let deadline = Instant::now() + Duration::from_secs(30);
        let mut rest: Vec<Value> = Vec::new();
        loop {
            let last = rest.last().or(events.last()).unwrap()["id"]
                .as_str()
                .unwrap()
                .to_owned();
            let (_, page) = admin.get(&format!("/v1/events?limit=7&after={last}"));
            rest.extend(page["events"].as_array().unwrap().iter().cloned());
            if early.len() + rest.len() >= 161 && page["next"].is_null() {
                break rest;
            }
            assert!(Instant::now() < deadline);
        }
    };
    events.extend(rest);
    let ids: BTreeSet<&str> = events.iter().map(|e| e["id"].as_str().unwrap()).collect();
    assert_eq!(ids.len(), events.len(), "an event came twice");
    assert_eq!(events.len(), 161, "1 program.created + 160 ticket.issued");
}

#[test]
fn stats_count_issuance_redemptions_and_failures_by_reason() {
    let database = TestDatabase::new();
    // Maintenance every second: stats must agree whether or not rolled up yet.
    let server = Server::start_with(&database, &[("TESSERA_EVENT_MAINTENANCE_SECONDS", "1")]);
    let (_, admin_key) = server.create_tenant("Stats");
    let admin = server.client(Some(&admin_key));
    let (_, program) = admin.post("/v1/programs", program_body(json!({"maxRedemptions": 1})));
    let program_id = program["id"].as_str().unwrap().to_owned();
    let (_, issued) = admin.post(&format!("/v1/programs/{program_id}/tickets"), json!({}));
    let code = issued["code"].as_str().unwrap().to_owned();
    let answer = admin.post_with(
        &format!("/v1/programs/{program_id}/tickets/batch"),
        &[],
        &json!({"count": 10}),
    );
    assert_eq!(answer.status, 200);
    let public = server.client(None);
    public.post("/v1/redeem", json!({"programId": program_id, "code": code}));
    public.post("/v1/redeem", json!({"programId": program_id, "code": code}));
    public.post(
        "/v1/redeem",
        json!({"programId": program_id, "code": "NOPE99"}),
    );
    let stats_path = format!("/v1/programs/{program_id}/stats");
    let expected = |stats: &Value| {
        assert_eq!(stats["issued"], 11, "{stats}");
        assert_eq!(stats["redeemed"], 1, "{stats}");
        assert_eq!(stats["failed"], 2, "{stats}");
        assert_eq!(
            stats["failedByReason"],
            json!({"ticket_exhausted": 1, "ticket_not_found": 1})
        );
        let buckets = stats["buckets"].as_array().unwrap();
        assert!((24..=25).contains(&buckets.len()), "{}", buckets.len());
        let sum: u64 = buckets.iter().map(|b| b["issued"].as_u64().unwrap()).sum();
        assert_eq!(sum, 11);
    };
    let (status, stats) = admin.get(&stats_path);
    assert_eq!(status, 200, "{stats}");
    expected(&stats);
    std::thread::sleep(Duration::from_millis(2500));
    expected(&admin.get(&stats_path).1);
    let (status, daily) = admin.get(&format!("{stats_path}?interval=day"));
    assert_eq!(status, 200);
    assert_eq!(daily["issued"], 11);
    let (status, body) = admin.get(&format!(
        "{stats_path}?interval=hour&from=2026-01-01T00:00:00Z&to=2026-03-01T00:00:00Z"
    ));
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (400, Some("invalid_request"))
    );
    let (_, other_key) = server.create_tenant("Other");
    let (status, _) = server.client(Some(&other_key)).get(&stats_path);
    assert_eq!(status, 404, "another tenant's program");
}

#[test]
fn metrics_hold_the_listed_names_by_route_pattern_and_no_secret() {
    let database = TestDatabase::new();
    let server = Server::start_with(&database, &[("TESSERA_LOG_FORMAT", "json")]);
    let (_, admin_key) = server.create_tenant("Metrics");
    let admin = server.client(Some(&admin_key));
    let (_, program) = admin.post("/v1/programs", program_body(json!({})));
    let program_id = program["id"].as_str().unwrap().to_owned();
    let (_, issued) = admin.post(&format!("/v1/programs/{program_id}/tickets"), json!({}));
    let code = issued["code"].as_str().unwrap().to_owned();
    let ticket_id = issued["ticketId"].as_str().unwrap().to_owned();
    let public = server.client(None);
    assert_eq!(
        public
            .post("/v1/redeem", json!({"programId": program_id, "code": code}))
            .0,
        200
    );
    public.post(
        "/v1/redeem",
        json!({"programId": program_id, "code": "WRONG1"}),
    );
    admin.get(&format!("/v1/tickets/{ticket_id}"));
    let answer = public.exchange("GET", "/metrics", &[("X-Request-Id", "scrape-1")], b"");
    assert_eq!(answer.status, 200);
    assert!(
        answer.content_type.starts_with("text/plain"),
        "{}",
        answer.content_type
    );
    let text = answer.text;
    for name in [
        "tessera_http_requests_total{route=\"/v1/redeem\",status=\"200\"}",
        "tessera_http_request_duration_seconds_bucket{route=\"/v1/redeem\"",
        "tessera_redemptions_total{outcome=\"redeemed\"} 1",
        "tessera_redemptions_total{outcome=\"ticket_not_found\"} 1",
        "tessera_db_pool_connections{state=\"idle\"}",
        "tessera_db_pool_connections{state=\"in_use\"}",
        "tessera_group_commit_batch_size_count{kind=\"redemptions\"}",
        "tessera_webhook_deliveries_pending 0",
        "process_cpu_seconds_total",
        "process_resident_memory_bytes",
        "route=\"/v1/tickets/{ticket_id}\"",
    ] {
        assert!(text.contains(name), "{name} missing:\n{text}");
    }
    for secret in [&code, &admin_key, &ticket_id, &program_id] {
        assert!(
            !text.contains(secret.as_str()),
            "{secret} in /metrics:\n{text}"
        );
    }

    // JSON logs: one object per line, each request with its id, also returned.
    let logs = server.logs();
    let lines: Vec<Value> = logs
        .lines()
        .filter(|line| !line.trim().is_empty())
        .map(|line| serde_json::from_str(line).unwrap_or_else(|_| panic!("not JSON: {line}")))
        .collect();
    let requests: Vec<&Value> = lines
        .iter()
        .filter(|l| l["fields"]["message"] == "request")
        .collect();
    assert!(requests.len() >= 5, "{logs}");
    assert!(
        requests
            .iter()
            .all(|l| l["fields"]["request_id"].is_string()),
        "{logs}"
    );
    let health = ureq::get(&format!("{}/healthz", server.base_url))
        .call()
        .unwrap()
        .header("X-Request-Id")
        .expect("X-Request-Id")
        .to_owned();
    std::thread::sleep(Duration::from_millis(200));
    assert!(
        server.logs().contains(&health),
        "the returned id is the logged one"
    );
    assert!(!logs.contains(&code) && !logs.contains(&admin_key));
}

#[derive(QueryableByName)]
struct Count {
    #[diesel(sql_type = BigInt)]
    n: i64,
}

fn partition_count(database: &TestDatabase, name: &str) -> i64 {
    let mut conn = database.pool().get().unwrap();
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
fn the_server_drops_partitions_past_retention_and_keeps_current_ones() {
    let database = TestDatabase::new();
    {
        let mut conn = database.pool().get().unwrap();
        sql_query("SELECT tessera_ensure_event_partition('2021-03-10T00:00:00Z')")
            .execute(&mut conn)
            .unwrap();
        sql_query(
            "INSERT INTO events (tenant_id, id, type, created_at) \
             VALUES ('ten_old', 'evt_old', 'program.created', '2021-03-10T00:00:00Z')",
        )
        .execute(&mut conn)
        .unwrap();
    }
    assert_eq!(partition_count(&database, "events_2021_03"), 1);
    let server = Server::start_with(&database, &[("TESSERA_EVENT_RETENTION_DAYS", "30")]);
    let deadline = Instant::now() + Duration::from_secs(30);
    while partition_count(&database, "events_2021_03") == 1 {
        assert!(Instant::now() < deadline, "not dropped:\n{}", server.logs());
        std::thread::sleep(Duration::from_millis(100));
    }
    let mut conn = database.pool().get().unwrap();
    let current: Vec<String> = ["0 days", "31 days"]
        .iter()
        .map(|ahead| {
            #[derive(QueryableByName)]
            struct Name {
                #[diesel(sql_type = Text)]
                name: String,
            }
            sql_query(format!(
                "SELECT 'events_' || to_char((now() + interval '{ahead}') AT TIME ZONE 'UTC', 'YYYY_MM') AS name"
            ))
            .get_result::<Name>(&mut conn)
            .unwrap()
            .name
        })
        .collect();
    for name in &current {
        assert_eq!(partition_count(&database, name), 1, "{name} must exist");
    }
    assert!(
        server.logs().contains("events_2021_03"),
        "the drop is logged"
    );
}

#[test]
fn two_processes_maintaining_at_once_keep_feed_and_stats_exact() {
    let database = TestDatabase::new();
    let fast = [("TESSERA_EVENT_MAINTENANCE_SECONDS", "1")];
    let first = Server::start_with(&database, &fast);
    let second = Server::start_with(&database, &fast);
    let (_, admin_key) = first.create_tenant("Two");
    let (_, program) = first
        .client(Some(&admin_key))
        .post("/v1/programs", program_body(json!({})));
    let path = format!("/v1/programs/{}/tickets", program["id"].as_str().unwrap());
    let writers: Vec<_> = [&first, &second]
        .iter()
        .map(|server| {
            let (admin, path) = (server.client(Some(&admin_key)), path.clone());
            std::thread::spawn(move || {
                for _ in 0..30 {
                    assert_eq!(admin.post(&path, json!({})).0, 201);
                    std::thread::sleep(Duration::from_millis(30));
                }
            })
        })
        .collect();
    for writer in writers {
        writer.join().unwrap();
    }
    for server in [&first, &second] {
        let admin = server.client(Some(&admin_key));
        let events = feed(&admin, "", 9, 61);
        let ids: BTreeSet<&str> = events.iter().map(|e| e["id"].as_str().unwrap()).collect();
        assert_eq!((events.len(), ids.len()), (61, 61));
        let stats_path = format!("/v1/programs/{}/stats", program["id"].as_str().unwrap());
        let (status, stats) = admin.get(&stats_path);
        assert_eq!(
            (status, stats["issued"].as_u64()),
            (200, Some(60)),
            "{stats}"
        );
    }
}
