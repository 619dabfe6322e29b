//! Three `tessera serve` processes on one database, driven round-robin as a load
//! balancer would (issue 14, point 6): the invariants hold across them, one
//! address gets one failure budget over all three, and a program created or
//! deleted through one replica is so on the others at once.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde_json::{json, Value};
use tessera_e2e::{concurrently, program_body, Client, Server, TestDatabase};

const BUDGET: usize = 20;

/// Three replicas behind "a proxy" (loopback is trusted, so each request names its
/// client in `X-Forwarded-For`) with a budget of [`BUDGET`] failures a minute.
fn three_replicas(database: &TestDatabase) -> Vec<Server> {
    let env = [
        ("TESSERA_REDEEM_FAILURES_PER_MINUTE", "20"),
        ("TESSERA_TRUSTED_PROXIES", "127.0.0.1"),
    ];
    (0..3).map(|_| Server::start_with(database, &env)).collect()
}

fn clients(replicas: &[Server], key: Option<&str>) -> Vec<Client> {
    replicas.iter().map(|server| server.client(key)).collect()
}

fn text(value: &Value) -> String {
    value.as_str().expect("a string field").to_owned()
}

/// POSTs `body` as from client address `client`: (status, body).
fn post_from(client: &Client, path: &str, address: &str, body: &Value) -> (u16, Value) {
    let answer = client.post_with(path, &[("X-Forwarded-For", address)], body);
    (answer.status, answer.json())
}

fn new_program(admin: &Client, extra: Value) -> String {
    let (status, program) = admin.post("/v1/programs", program_body(extra));
    assert_eq!(status, 201, "{program}");
    text(&program["id"])
}

/// Issues a ticket of `program` with `fields`: (ticket id, code).
fn issue(admin: &Client, program: &str, fields: Value) -> (String, String) {
    let (status, issued) = admin.post(&format!("/v1/programs/{program}/tickets"), fields);
    assert_eq!(status, 201, "{issued}");
    (text(&issued["ticketId"]), text(&issued["code"]))
}

#[test]
fn three_replicas_keep_every_invariant_under_round_robin_load() {
    let database = TestDatabase::new();
    let replicas = three_replicas(&database);
    let (_, admin_key) = replicas[0].create_tenant("Replicas");
    let admins = clients(&replicas, Some(&admin_key));
    let (_, key) = admins[1].post("/v1/api-keys", json!({"name": "till", "role": "redeemer"}));
    let redeemers = clients(&replicas, Some(&text(&key["key"])));
    let publics = clients(&replicas, None);

    // No over-issuance: 30 issues of a program capped at 7, spread over three.
    let capped = new_program(&admins[0], json!({"maxTickets": 7}));
    let path = format!("/v1/programs/{capped}/tickets");
    let issuers = admins.clone();
    let statuses = concurrently(30, move |n| issuers[n % 3].post(&path, json!({})).0);
    assert_eq!(
        statuses.iter().filter(|s| **s == 201).count(),
        7,
        "{statuses:?}"
    );
    assert_eq!(
        statuses.iter().filter(|s| **s == 409).count(),
        23,
        "{statuses:?}"
    );
    assert_eq!(
        admins[2].get(&format!("/v1/programs/{capped}")).1["issuedTickets"],
        7
    );

    // No over-redemption, holds included: 30 redemptions and holds of a ticket of
    // three uses, each from its own address, over three replicas.
    let program = new_program(&admins[0], json!({}));
    let (ticket, code) = issue(&admins[1], &program, json!({"maxRedemptions": 3}));
    let body = json!({"programId": program, "code": code});
    let (public, holders) = (publics.clone(), redeemers.clone());
    let statuses = concurrently(30, move |n| {
        let address = format!("198.51.100.{n}");
        if n % 2 == 0 {
            post_from(&public[n % 3], "/v1/redeem", &address, &body).0
        } else {
            post_from(&holders[n % 3], "/v1/holds", &address, &body).0
        }
    });
    let redeemed = statuses.iter().filter(|s| **s == 200).count();
    let held = statuses.iter().filter(|s| **s == 201).count();
    assert_eq!(redeemed + held, 3, "{statuses:?}");
    let (_, view) = admins[2].get(&format!("/v1/tickets/{ticket}"));
    assert_eq!(
        view["redemptions"].as_u64(),
        Some(redeemed as u64),
        "{view}"
    );
    assert_eq!(view["held"].as_u64(), Some(held as u64), "{view}");
    assert_eq!(view["remaining"], 0, "{view}");

    // Per-redeemer limits: one redeemer's share of 2 of a ticket of 10, raced.
    let (ticket, code) = issue(
        &admins[2],
        &program,
        json!({"maxRedemptions": 10, "perRedeemerLimit": 2}),
    );
    let body = json!({"programId": program, "code": code, "redeemerId": "alice"});
    let tills = redeemers.clone();
    let answers = concurrently(24, move |n| {
        post_from(
            &tills[n % 3],
            "/v1/redeem",
            &format!("198.51.100.{}", 100 + n),
            &body,
        )
    });
    let redeemed = answers.iter().filter(|(status, _)| *status == 200).count();
    let limited = answers
        .iter()
        .filter(|(status, body)| {
            *status == 409 && body["error"]["code"] == "redeemer_limit_reached"
        })
        .count();
    assert_eq!((redeemed, limited), (2, 22), "{answers:?}");
    assert_eq!(
        admins[0].get(&format!("/v1/tickets/{ticket}")).1["redemptions"],
        2
    );
}

#[test]
fn a_program_created_or_deleted_through_one_replica_is_so_on_the_others_at_once() {
    let database = TestDatabase::new();
    let replicas = three_replicas(&database);
    let (_, admin_key) = replicas[0].create_tenant("Replicas");
    let admins = clients(&replicas, Some(&admin_key));
    let publics = clients(&replicas, None);

    // Created through replica 0, issued through 1, redeemed through 2 at once.
    let program = new_program(&admins[0], json!({}));
    let (_, code) = issue(&admins[1], &program, json!({"maxRedemptions": 5}));
    let body = json!({"programId": program, "code": code});
    let (status, redeemed) = post_from(&publics[2], "/v1/redeem", "198.51.100.1", &body);
    assert_eq!(status, 200, "{redeemed}");

    // Every replica has now looked the program up (and may keep its facts): a
    // detailed caller is told the code is unknown, not the program.
    let wrong = json!({"programId": program, "code": "Wrong9Code"});
    for admin in &admins {
        let (status, failed) = post_from(admin, "/v1/redeem", "198.51.100.2", &wrong);
        assert_eq!(
            (status, &failed["error"]["code"]),
            (404, &json!("ticket_not_found"))
        );
        assert_eq!(post_from(admin, "/v1/redeem", "198.51.100.2", &body).0, 200);
    }

    assert_eq!(
        admins[0]
            .send("DELETE", &format!("/v1/programs/{program}"), None)
            .0,
        204
    );
    for (n, admin) in admins.iter().enumerate() {
        let (status, _) = admin.get(&format!("/v1/programs/{program}"));
        assert_eq!(status, 404, "replica {n} still shows the program");
        for presented in [&body, &wrong] {
            let (status, failed) = post_from(admin, "/v1/redeem", "198.51.100.3", presented);
            assert_eq!(
                (status, &failed["error"]["code"]),
                (404, &json!("invalid_code")),
                "replica {n} answered as if the program were there"
            );
        }
        let (status, _) = admin.post(&format!("/v1/programs/{program}/tickets"), json!({}));
        assert_eq!(status, 404, "replica {n} issued for a deleted program");
    }
}

/// Sleeps into a fresh minute unless enough of this one is left for `seconds` of
/// work, so a budget window cannot turn over in the middle of a measurement.
fn within_one_minute(seconds: u64) {
    let into_minute = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("after 1970")
        .as_secs()
        % 60;
    if into_minute + seconds >= 60 {
        std::thread::sleep(Duration::from_secs(60 - into_minute));
    }
}

#[test]
fn one_address_spreading_guesses_over_three_replicas_gets_one_budget() {
    tessera_e2e::within_one_throttle_minute(std::time::Duration::from_secs(30));
    let database = TestDatabase::new();
    let replicas = three_replicas(&database);
    let (_, admin_key) = replicas[0].create_tenant("Replicas");
    let admin = replicas[0].client(Some(&admin_key));
    let publics = clients(&replicas, None);
    let program = new_program(&admin, json!({}));
    let (_, code) = issue(&admin, &program, json!({"maxRedemptions": 5}));

    within_one_minute(30);
    let answers: Vec<u16> = (0..90)
        .map(|n| {
            let guess = json!({"programId": program, "code": format!("Guess{n:04}")});
            post_from(&publics[n % 3], "/v1/redeem", "203.0.113.7", &guess).0
        })
        .collect();
    let evaluated = answers.iter().filter(|s| **s == 404).count();
    let refused = answers.iter().filter(|s| **s == 429).count();
    assert_eq!(evaluated + refused, 90, "{answers:?}");
    // The budget plus at most one per other replica (each learns the count of all
    // three with its own next failure).
    assert!(
        (BUDGET..=BUDGET + 2).contains(&evaluated),
        "{evaluated} guesses evaluated over three replicas: {answers:?}"
    );
    for (n, public) in publics.iter().enumerate() {
        let guess = json!({"programId": program, "code": "Guess9999"});
        let answer = public.post_with("/v1/redeem", &[("X-Forwarded-For", "203.0.113.7")], &guess);
        assert_eq!(
            answer.status, 429,
            "replica {n} still evaluates the address"
        );
        assert!(answer.retry_after.is_some(), "replica {n}: no Retry-After");
    }
    // Another address is untouched, on every replica.
    let body = json!({"programId": program, "code": code});
    for public in &publics {
        assert_eq!(post_from(public, "/v1/redeem", "203.0.113.8", &body).0, 200);
    }
}
