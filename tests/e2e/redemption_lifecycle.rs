//! The redemption lifecycle over HTTP: a checkout (validate → hold → confirm, or
//! release), rollbacks, and holds racing redemptions over two server processes.

use serde_json::{json, Value};
use tessera_e2e::{concurrently, program_body, Client, Server, TestDatabase};

/// A tenant's admin and redeemer clients and a ticket of `uses` uses.
fn setup(server: &Server, uses: u32) -> (Client, Client, String, String, String) {
    let (_, admin_key) = server.create_tenant("Shop");
    let admin = server.client(Some(&admin_key));
    let (_, key) = admin.post("/v1/api-keys", json!({"name": "till", "role": "redeemer"}));
    let redeemer = server.client(Some(key["key"].as_str().expect("a string field")));
    let (_, program) = admin.post("/v1/programs", program_body(json!({})));
    let program_id = program["id"].as_str().expect("a string field").to_owned();
    let (status, issued) = admin.post(
        &format!("/v1/programs/{program_id}/tickets"),
        json!({"maxRedemptions": uses}),
    );
    assert_eq!(status, 201, "{issued}");
    (
        admin,
        redeemer,
        program_id,
        issued["code"].as_str().expect("a string field").to_owned(),
        issued["ticketId"]
            .as_str()
            .expect("a string field")
            .to_owned(),
    )
}

fn ticket(admin: &Client, id: &str) -> Value {
    admin.get(&format!("/v1/tickets/{id}")).1
}

#[test]
fn a_checkout_validates_holds_and_confirms_or_releases() {
    let database = TestDatabase::new();
    let server = Server::start(&database);
    let (admin, redeemer, program_id, code, ticket_id) = setup(&server, 2);
    let body = json!({"programId": program_id, "code": code});

    let (status, valid) = server
        .client(None)
        .post("/v1/redeem/validate", body.clone());
    assert_eq!(
        (status, &valid["valid"], &valid["remaining"]),
        (200, &json!(true), &json!(2)),
        "{valid}"
    );
    assert!(valid.get("accessToken").is_none() && valid.get("payload").is_none());
    assert_eq!(ticket(&admin, &ticket_id)["redemptions"], 0);

    // Hold one use; confirm it: the answer is a redemption with its token.
    let (status, hold) = redeemer.post(
        "/v1/holds",
        json!({"programId": program_id, "code": code, "ttl": 60}),
    );
    assert_eq!(
        (status, &hold["state"], &hold["remaining"]),
        (201, &json!("held"), &json!(1)),
        "{hold}"
    );
    let hold_id = hold["id"].as_str().unwrap();
    let (status, redeemed) = redeemer.post(&format!("/v1/holds/{hold_id}/confirm"), json!({}));
    assert_eq!(status, 200, "{redeemed}");
    assert!(redeemed["redemptionId"]
        .as_str()
        .unwrap()
        .starts_with("rdm_"));
    assert!(redeemed["accessToken"].as_str().is_some());
    let (status, again) = redeemer.post(&format!("/v1/holds/{hold_id}/confirm"), json!({}));
    assert_eq!(
        (status, &again["error"]["code"]),
        (409, &json!("hold_not_active"))
    );
    assert_eq!(
        redeemer.get(&format!("/v1/holds/{hold_id}")).1["state"],
        "confirmed"
    );

    // A second checkout whose payment fails: hold, then release.
    let (_, hold) = redeemer.post("/v1/holds", body.clone());
    let hold_id = hold["id"].as_str().unwrap();
    let view = ticket(&admin, &ticket_id);
    assert_eq!(
        (&view["held"], &view["remaining"]),
        (&json!(1), &json!(0)),
        "{view}"
    );
    assert_eq!(
        server.client(None).post("/v1/redeem", body.clone()).0,
        404,
        "the last use is held"
    );
    let (status, _) = redeemer.send("DELETE", &format!("/v1/holds/{hold_id}"), None);
    assert_eq!(status, 204);
    assert_eq!(
        redeemer
            .send("DELETE", &format!("/v1/holds/{hold_id}"), None)
            .0,
        204
    );
    assert_eq!(
        redeemer.get(&format!("/v1/holds/{hold_id}")).1["state"],
        "released"
    );
    assert_eq!(ticket(&admin, &ticket_id)["redemptions"], 1);
    let (status, last) = server.client(None).post("/v1/redeem", body);
    assert_eq!((status, &last["remaining"]), (200, &json!(0)), "{last}");
}

#[test]
fn a_rollback_gives_the_use_back_once_and_respects_allow_rollback() {
    let database = TestDatabase::new();
    let server = Server::start(&database);
    let (admin, redeemer, program_id, code, ticket_id) = setup(&server, 1);
    let (_, redeemed) = server
        .client(None)
        .post("/v1/redeem", json!({"programId": program_id, "code": code}));
    let redemption_id = redeemed["redemptionId"].as_str().unwrap().to_owned();
    let path = format!("/v1/redemptions/{redemption_id}/rollback");

    let (status, back) = redeemer.post(&path, json!({"reason": "refund"}));
    assert_eq!((status, &back["remaining"]), (200, &json!(1)), "{back}");
    let (status, twice) = redeemer.post(&path, json!({}));
    assert_eq!(
        (status, &twice["error"]["code"]),
        (409, &json!("already_rolled_back"))
    );
    let view = ticket(&admin, &ticket_id);
    assert_eq!(
        (&view["redemptions"], &view["remaining"]),
        (&json!(0), &json!(1))
    );

    // The use is redeemable again; with allowRollback off, it stays spent.
    let (_, redeemed) = server
        .client(None)
        .post("/v1/redeem", json!({"programId": program_id, "code": code}));
    let (status, patched) = admin.send(
        "PATCH",
        &format!("/v1/programs/{program_id}"),
        Some(json!({"allowRollback": false})),
    );
    assert_eq!(
        (status, &patched["allowRollback"]),
        (200, &json!(false)),
        "{patched}"
    );
    let path = format!(
        "/v1/redemptions/{}/rollback",
        redeemed["redemptionId"].as_str().unwrap()
    );
    let (status, refused) = redeemer.post(&path, json!({}));
    assert_eq!(
        (status, &refused["error"]["code"]),
        (409, &json!("rollback_not_allowed"))
    );
    assert_eq!(ticket(&admin, &ticket_id)["redemptions"], 1);

    // Another tenant's key cannot see the redemption.
    let (_, other_key) = server.create_tenant("Other");
    let stranger = server.client(Some(&other_key));
    assert_eq!(stranger.post(&path, json!({})).0, 404);
}

#[test]
fn holds_and_redemptions_racing_over_two_processes_never_exceed_the_limit() {
    let database = TestDatabase::new();
    let unthrottled = [("TESSERA_REDEEM_FAILURES_PER_MINUTE", "100000")];
    let first = Server::start_with(&database, &unthrottled);
    let second = Server::start_with(&database, &unthrottled);
    let (admin, _, program_id, code, ticket_id) = setup(&first, 3);
    let (_, key) = admin.post("/v1/api-keys", json!({"name": "till", "role": "redeemer"}));
    let key = key["key"].as_str().unwrap();
    let holders = [first.client(Some(key)), second.client(Some(key))];
    let redeemers = [first.client(None), second.client(None)];
    let body = json!({"programId": program_id, "code": code});
    let statuses = concurrently(40, move |index| {
        let process = index / 2 % 2;
        if index % 2 == 0 {
            redeemers[process].post("/v1/redeem", body.clone()).0
        } else {
            holders[process].post("/v1/holds", body.clone()).0
        }
    });
    let redeemed = statuses.iter().filter(|s| **s == 200).count() as u64;
    let held = statuses.iter().filter(|s| **s == 201).count() as u64;
    assert_eq!(redeemed + held, 3, "{statuses:?}");
    let view = ticket(&admin, &ticket_id);
    assert_eq!(view["redemptions"].as_u64(), Some(redeemed), "{view}");
    assert_eq!(view["held"].as_u64(), Some(held), "{view}");
    assert_eq!(view["remaining"], 0, "{view}");
}

/// A redeemer's share comes back with the ticket's use when its hold is released
/// or its redemption rolled back, whichever process does it: two processes on one
/// database, the share of one redeemer moved back and forth between them.
#[test]
fn a_redeemers_share_comes_back_on_release_and_rollback_across_processes() {
    let database = TestDatabase::new();
    let (first, second) = (Server::start(&database), Server::start(&database));
    let (_, admin_key) = first.create_tenant("Festival");
    let admin = first.client(Some(&admin_key));
    let (_, key) = admin.post("/v1/api-keys", json!({"name": "gate", "role": "redeemer"}));
    let key = key["key"].as_str().expect("a string field");
    let (one, two) = (first.client(Some(key)), second.client(Some(key)));
    let (_, program) = admin.post("/v1/programs", program_body(json!({})));
    let program_id = program["id"].as_str().expect("a string field");
    let (status, issued) = admin.post(
        &format!("/v1/programs/{program_id}/tickets"),
        json!({"code": "FANS-ONLY", "maxRedemptions": 100, "perRedeemerLimit": 1}),
    );
    assert_eq!(status, 201, "{issued}");
    let body = json!({"programId": program_id, "code": "FANS-ONLY", "redeemerId": "fan-1"});

    let (status, hold) = one.post("/v1/holds", body.clone());
    assert_eq!(status, 201, "{hold}");
    let (status, refused) = two.post("/v1/redeem", body.clone());
    assert_eq!(
        (status, refused["error"]["code"].as_str()),
        (409, Some("redeemer_limit_reached")),
        "{refused}"
    );
    let hold_id = hold["id"].as_str().expect("a string field");
    assert_eq!(
        two.send("DELETE", &format!("/v1/holds/{hold_id}"), None).0,
        204
    );

    let (status, redeemed) = one.post("/v1/redeem", body.clone());
    assert_eq!(status, 200, "{redeemed}");
    assert_eq!(two.post("/v1/redeem", body.clone()).0, 409);
    let redemption = redeemed["redemptionId"].as_str().expect("a string field");
    let path = format!("/v1/redemptions/{redemption}/rollback");
    let (status, back) = two.post(&path, json!({"reason": "refund"}));
    assert_eq!(status, 200, "{back}");
    assert_eq!(one.post(&path, json!({})).0, 409);

    // Exactly one use of the share came back: one more redemption, then refused.
    assert_eq!(one.post("/v1/redeem", body.clone()).0, 200);
    assert_eq!(two.post("/v1/redeem", body).0, 409);
    let view = ticket(&admin, issued["ticketId"].as_str().expect("a string field"));
    assert_eq!(
        (view["redemptions"].as_u64(), view["held"].as_u64()),
        (Some(1), Some(0)),
        "{view}"
    );
}
