//! `Idempotency-Key` over HTTP: retries of one request count once and replay its
//! answer; another body is refused; kept answers are sealed in the database.

use std::process::Command;

use serde_json::json;
use tessera_e2e::{concurrently, program_body, Server, TestDatabase};

#[test]
fn twenty_parallel_retries_of_one_redemption_count_one_use_and_replay_it() {
    let database = TestDatabase::new();
    let server = Server::start_with(
        &database,
        &[("TESSERA_REDEEM_FAILURES_PER_MINUTE", "100000")],
    );
    let (_, admin_key) = server.create_tenant("Retry");
    let admin = server.client(Some(&admin_key));
    let (_, program) = admin.post("/v1/programs", program_body(json!({})));
    let program_id = program["id"].as_str().unwrap().to_owned();
    let (_, issued) = admin.post(
        &format!("/v1/programs/{program_id}/tickets"),
        json!({"maxRedemptions": 5}),
    );
    let code = issued["code"].as_str().unwrap().to_owned();
    let body = json!({"programId": program_id, "code": code});

    let client = server.client(None);
    let request = body.clone();
    let answers = concurrently(20, move |_| {
        client.post_with(
            "/v1/redeem",
            &[("Idempotency-Key", "phone-retry-1")],
            &request,
        )
    });
    let ok: Vec<_> = answers.iter().filter(|a| a.status == 200).collect();
    assert!(
        answers.iter().all(|a| a.status == 200 || a.status == 409),
        "{answers:?}"
    );
    assert!(
        answers
            .iter()
            .filter(|a| a.status == 409)
            .all(|a| a.json()["error"]["code"] == "idempotency_in_progress"
                && a.retry_after.is_some())
    );
    assert_eq!(
        ok.iter().filter(|a| !a.replayed).count(),
        1,
        "one ran: {answers:?}"
    );
    let first = ok.iter().find(|a| !a.replayed).unwrap().json();
    assert!(
        ok.iter().all(|a| a.json() == first),
        "every 200 is the same answer"
    );

    // A later retry replays it; nothing more is counted.
    let again =
        server
            .client(None)
            .post_with("/v1/redeem", &[("Idempotency-Key", "phone-retry-1")], &body);
    assert_eq!((again.status, again.replayed), (200, true));
    assert_eq!(again.json()["redemptionId"], first["redemptionId"]);
    assert_eq!(again.json()["accessToken"], first["accessToken"]);
    let (_, ticket) = admin.get(&format!(
        "/v1/tickets/{}",
        issued["ticketId"].as_str().unwrap()
    ));
    assert_eq!(ticket["redemptions"], 1, "{ticket}");

    // The same key with another body is refused; without a key nothing is kept.
    let other = json!({"programId": program_id, "code": code, "email": "x@example.com"});
    let reused = server.client(None).post_with(
        "/v1/redeem",
        &[("Idempotency-Key", "phone-retry-1")],
        &other,
    );
    assert_eq!(
        (reused.status, reused.json()["error"]["code"].clone()),
        (422, json!("idempotency_key_reused"))
    );
    let plain = server.client(None).post_with("/v1/redeem", &[], &body);
    assert_eq!((plain.status, plain.replayed), (200, false));
    let (_, ticket) = admin.get(&format!(
        "/v1/tickets/{}",
        issued["ticketId"].as_str().unwrap()
    ));
    assert_eq!(ticket["redemptions"], 2, "{ticket}");
}

#[test]
fn idempotent_issuance_issues_once_and_the_dump_holds_no_code_or_token() {
    let database = TestDatabase::new();
    let server = Server::start(&database);
    let (_, admin_key) = server.create_tenant("Issue");
    let admin = server.client(Some(&admin_key));
    let (_, program) = admin.post("/v1/programs", program_body(json!({})));
    let program_id = program["id"].as_str().unwrap().to_owned();
    let path = format!("/v1/programs/{program_id}/tickets");
    let key = [("Idempotency-Key", "issue-order-77")];
    let first = admin.post_with(&path, &key, &json!({}));
    let second = admin.post_with(&path, &key, &json!({}));
    assert_eq!(
        (first.status, first.replayed, second.status, second.replayed),
        (201, false, 201, true)
    );
    assert_eq!(first.json(), second.json());
    let (_, program) = admin.get(&format!("/v1/programs/{program_id}"));
    assert_eq!(program["issuedTickets"], 1);

    // A key is scoped to its tenant: another tenant's same key runs afresh.
    let code = first.json()["code"].as_str().unwrap().to_owned();
    let redeemed = server.client(None).post_with(
        "/v1/redeem",
        &[("Idempotency-Key", "issue-order-77")],
        &json!({"programId": program_id, "code": code}),
    );
    assert_eq!(
        (redeemed.status, redeemed.replayed),
        (200, false),
        "{}",
        redeemed.text
    );
    let token = redeemed.json()["accessToken"].as_str().unwrap().to_owned();

    let dump = Command::new("pg_dump")
        .args(["--no-owner", "--data-only", database.url()])
        .output()
        .expect("pg_dump runs");
    assert!(dump.status.success());
    let dump = String::from_utf8_lossy(&dump.stdout);
    assert!(
        dump.contains("idempotency_keys"),
        "the dump has the kept answers (sanity check)"
    );
    assert!(!dump.contains(&code), "the dump holds the code in clear");
    assert!(
        !dump.contains(&token),
        "the dump holds the access token in clear"
    );
}
