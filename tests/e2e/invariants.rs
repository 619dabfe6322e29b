//! Invariants 1 and 6 of docs/architecture.md ("Where each invariant is enforced")
//! under real concurrency, several processes and restarts.

use serde_json::json;
use tessera_e2e::{concurrently, program_body, Server, TestDatabase};

#[test]
fn sixty_four_concurrent_redemptions_anonymous_and_keyed_over_two_processes_give_exactly_one_success(
) {
    let database = TestDatabase::new();
    // All 64 clients share 127.0.0.1: lift the failure throttle, which is not under test here.
    let unthrottled = [("TESSERA_REDEEM_FAILURES_PER_MINUTE", "100000")];
    let first = Server::start_with(&database, &unthrottled);
    let second = Server::start_with(&database, &unthrottled);
    let (_, admin_key) = first.create_tenant("Concurrency");
    let admin = first.client(Some(&admin_key));
    let (_, program) = admin.post("/v1/programs", program_body(json!({})));
    let program_id = program["id"].as_str().unwrap().to_owned();
    let (_, issued) = admin.post(
        &format!("/v1/programs/{program_id}/tickets"),
        json!({"maxRedemptions": 1}),
    );
    let code = issued["code"].as_str().unwrap().to_owned();

    // Half anonymous, half with the tenant's key, over both processes.
    let clients = [
        first.client(None),
        second.client(None),
        first.client(Some(&admin_key)),
        second.client(Some(&admin_key)),
    ];
    // Each process learns the program and the key first (a wrong code), so that
    // all 64 redemptions take the queued path (awaited on the HTTP worker; only a
    // program or key not cached yet runs on the blocking pool).
    for client in &clients {
        let (status, _) = client.post(
            "/v1/redeem",
            json!({"programId": program_id, "code": "WRONGCODE1"}),
        );
        assert_eq!(status, 404);
    }
    let answers = concurrently(64, move |index| {
        let (status, body) =
            clients[index % 4].post("/v1/redeem", json!({"programId": program_id, "code": code}));
        (index % 4 >= 2, status, body["error"]["code"].clone())
    });
    let granted = answers.iter().filter(|(_, status, _)| *status == 200);
    assert_eq!(granted.count(), 1, "{answers:?}");
    // Every other attempt failed as its caller sees failures: anonymous ones as
    // `invalid_code`, the tenant's as the reason.
    let refused = answers.iter().filter(|(keyed, status, code)| match keyed {
        false => (*status, code.clone()) == (404, json!("invalid_code")),
        true => (*status, code.clone()) == (409, json!("ticket_exhausted")),
    });
    assert_eq!(refused.count(), 63, "{answers:?}");

    let (_, ticket) = second.client(Some(&admin_key)).get(&format!(
        "/v1/tickets/{}",
        issued["ticketId"].as_str().unwrap()
    ));
    assert_eq!(ticket["redemptions"], 1);
}

#[test]
fn a_program_capped_at_twenty_issues_exactly_twenty_under_sixty_concurrent_requests() {
    let database = TestDatabase::new();
    let server = Server::start(&database);
    let (_, admin_key) = server.create_tenant("Cap");
    let admin = server.client(Some(&admin_key));
    let (_, program) = admin.post("/v1/programs", program_body(json!({"maxTickets": 20})));
    let program_id = program["id"].as_str().unwrap().to_owned();

    let path = format!("/v1/programs/{program_id}/tickets");
    let client = admin.clone();
    let results = concurrently(60, move |_| client.post(&path, json!({})));
    let issued = results.iter().filter(|(status, _)| *status == 201).count();
    let refused = results
        .iter()
        .filter(|(status, body)| *status == 409 && body["error"]["code"] == "max_tickets_reached")
        .count();
    assert_eq!((issued, refused), (20, 40), "{results:?}");

    let (_, program) = admin.get(&format!("/v1/programs/{program_id}"));
    assert_eq!(program["issuedTickets"], 20);
    let (_, tickets) = admin.get(&format!("/v1/programs/{program_id}/tickets?count=100"));
    assert_eq!(tickets["total"], 20);
}

#[test]
fn a_standalone_ticket_with_five_uses_gives_exactly_five_under_fifty_concurrent_uses_over_two_processes(
) {
    let database = TestDatabase::new();
    let first = Server::start(&database);
    let second = Server::start(&database);
    let (_, admin_key) = first.create_tenant("Uses");
    let clients = [
        first.client(Some(&admin_key)),
        second.client(Some(&admin_key)),
    ];
    let (_, created) = clients[0].post("/v1/tickets", json!({"uses": 5, "ttl": 0}));
    let ticket = created["ticket"].as_str().unwrap().to_owned();
    // Each process resolves the key once (and caches it), so the 50 uses take
    // the queued path: the key from memory, the use awaited on the worker.
    for client in &clients {
        let (status, _) = client.get("/v1/tickets");
        assert_eq!(status, 200);
    }

    let results = concurrently(50, move |index| {
        clients[index % 2].post("/v1/tickets/use", json!({"ticket": ticket}))
    });
    let successes: Vec<_> = results
        .iter()
        .filter(|(status, _)| *status == 200)
        .collect();
    assert_eq!(successes.len(), 5, "{results:?}");
    let mut left: Vec<i64> = successes
        .iter()
        .map(|(_, body)| body["uses"].as_i64().unwrap())
        .collect();
    left.sort_unstable();
    assert_eq!(left, vec![0, 1, 2, 3, 4], "each use saw its own count");
    assert_eq!(
        results.iter().filter(|(status, _)| *status == 404).count(),
        45
    );
}

#[test]
fn what_was_acknowledged_survives_a_restart() {
    let database = TestDatabase::new();
    let (program_id, code, admin_key) = {
        let server = Server::start(&database);
        let (_, admin_key) = server.create_tenant("Durable");
        let admin = server.client(Some(&admin_key));
        let (_, program) = admin.post("/v1/programs", program_body(json!({"maxRedemptions": 3})));
        let program_id = program["id"].as_str().unwrap().to_owned();
        let (_, issued) = admin.post(&format!("/v1/programs/{program_id}/tickets"), json!({}));
        let code = issued["code"].as_str().unwrap().to_owned();
        let (status, _) = server
            .client(None)
            .post("/v1/redeem", json!({"programId": program_id, "code": code}));
        assert_eq!(status, 200);
        (program_id, code, admin_key)
    };
    let restarted = Server::start(&database);
    let (status, body) = restarted
        .client(None)
        .post("/v1/redeem", json!({"programId": program_id, "code": code}));
    assert_eq!(
        (status, body["remaining"].as_i64()),
        (200, Some(1)),
        "{body}"
    );
    assert_eq!(
        restarted.client(Some(&admin_key)).get("/v1/programs").0,
        200,
        "keys survive too"
    );
}

/// One public redemption that may meet a dead server: `None` when no answer came.
fn try_redeem(base_url: &str, program_id: &str, code: &str) -> Option<(u16, serde_json::Value)> {
    let body = json!({"programId": program_id, "code": code}).to_string();
    let answer = ureq::post(&format!("{base_url}/v1/redeem"))
        .timeout(std::time::Duration::from_secs(30))
        .set("Content-Type", "application/json")
        .send_string(&body);
    let response = match answer {
        Ok(response) | Err(ureq::Error::Status(_, response)) => response,
        Err(_) => return None,
    };
    let status = response.status();
    let text = response.into_string().ok()?;
    Some((status, serde_json::from_str(&text).unwrap_or_default()))
}

#[test]
fn a_kill_under_batched_load_loses_no_acknowledged_redemption() {
    use std::collections::HashMap;
    use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
    use std::sync::{Arc, Mutex};

    const LIMIT: i64 = 100_000;
    let database = TestDatabase::new();
    // Group commit on, batches of up to 16 over two executors.
    let env = [
        ("TESSERA_GROUP_COMMIT_EXECUTORS", "2"),
        ("TESSERA_GROUP_COMMIT_MAX_BATCH", "16"),
    ];
    let server = Server::start_with(&database, &env);
    let (_, admin_key) = server.create_tenant("Kill");
    let admin = server.client(Some(&admin_key));
    let (_, program) = admin.post(
        "/v1/programs",
        program_body(json!({"maxRedemptions": LIMIT})),
    );
    let program_id = program["id"].as_str().unwrap().to_owned();
    let codes: Vec<String> = (0..8)
        .map(|_| {
            let (status, issued) =
                admin.post(&format!("/v1/programs/{program_id}/tickets"), json!({}));
            assert_eq!(status, 201, "{issued}");
            issued["code"].as_str().unwrap().to_owned()
        })
        .collect();

    // 32 clients redeem until the server dies; each 200 is an acknowledgement.
    let acknowledged: Arc<Mutex<Vec<serde_json::Value>>> = Arc::default();
    let answered = Arc::new(AtomicUsize::new(0));
    let dead = Arc::new(AtomicBool::new(false));
    let clients: Vec<_> = (0..32)
        .map(|client| {
            let (base, program_id, codes) =
                (server.base_url.clone(), program_id.clone(), codes.clone());
            let (acknowledged, answered, dead) =
                (acknowledged.clone(), answered.clone(), dead.clone());
            std::thread::spawn(move || {
                let mut n = client;
                while !dead.load(Ordering::SeqCst) {
                    n += 1;
                    match try_redeem(&base, &program_id, &codes[n % codes.len()]) {
                        Some((200, body)) => {
                            acknowledged.lock().unwrap().push(body);
                            answered.fetch_add(1, Ordering::SeqCst);
                        }
                        Some((status, body)) => panic!("{status}: {body}"),
                        None => break,
                    }
                }
            })
        })
        .collect();
    while answered.load(Ordering::SeqCst) < 300 {
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
    drop(server); // SIGKILL mid-load: batches in flight die with it
    dead.store(true, Ordering::SeqCst);
    for client in clients {
        client.join().unwrap();
    }

    let restarted = Server::start_with(&database, &env);
    let admin = restarted.client(Some(&admin_key));
    let mut lowest_remaining: HashMap<String, (i64, usize)> = HashMap::new();
    for body in acknowledged.lock().unwrap().iter() {
        let ticket = body["ticketId"].as_str().unwrap().to_owned();
        let remaining = body["remaining"].as_i64().unwrap();
        let entry = lowest_remaining.entry(ticket).or_insert((LIMIT, 0));
        *entry = (entry.0.min(remaining), entry.1 + 1);
    }
    assert!(lowest_remaining.len() > 1, "the load spread over tickets");
    for (ticket, (remaining, acks)) in lowest_remaining {
        let (status, view) = admin.get(&format!("/v1/tickets/{ticket}"));
        assert_eq!(status, 200, "{view}");
        let redemptions = view["redemptions"].as_i64().unwrap();
        // The acknowledgement that left `remaining` uses was the
        // (LIMIT - remaining)-th use: all of them, at least, are in the database.
        assert!(
            redemptions >= LIMIT - remaining && redemptions >= acks as i64,
            "{ticket}: {redemptions} in the database, {acks} acknowledged, lowest remaining {remaining}"
        );
    }
}
