//! The API-key cache across processes (issue 12): each `tessera serve` caches the
//! keys it resolved, and a key deleted through one of them is refused by every
//! other at once.

use serde_json::json;
use tessera_e2e::{program_body, Server};
use tessera_postgres::testing::TestDatabase;

#[test]
fn a_key_deleted_through_one_server_is_refused_at_once_by_another() {
    let database = TestDatabase::new();
    let first = Server::start(&database);
    let second = Server::start(&database);
    let (_, admin_key) = first.create_tenant("Cache");
    let admin = first.client(Some(&admin_key));
    let (_, program) = admin.post("/v1/programs", program_body(json!({})));
    let program_id = program["id"].as_str().unwrap().to_owned();
    let (_, issued) = admin.post(
        &format!("/v1/programs/{program_id}/tickets"),
        json!({"maxRedemptions": 100}),
    );
    let code = issued["code"].as_str().unwrap().to_owned();
    let (status, door) = admin.post("/v1/api-keys", json!({"name": "door", "role": "redeemer"}));
    assert_eq!(status, 201, "{door}");
    let door_key = door["key"].as_str().unwrap().to_owned();
    let door_id = door["id"].as_str().unwrap().to_owned();
    let (_, standalone) = admin.post("/v1/tickets", json!({"uses": 100, "ttl": 0}));
    let ticket = standalone["ticket"].as_str().unwrap().to_owned();

    // The second server resolves the door key (and caches it) on every hot path.
    let at_second = second.client(Some(&door_key));
    for _ in 0..3 {
        let (status, body) =
            at_second.post("/v1/redeem", json!({"programId": program_id, "code": code}));
        assert_eq!(status, 200, "{body}");
        let (status, body) = at_second.post("/v1/tickets/use", json!({"ticket": ticket}));
        assert_eq!(status, 200, "{body}");
    }

    let (status, body) = admin.send("DELETE", &format!("/v1/api-keys/{door_id}"), None);
    assert!((200..300).contains(&status), "{status} {body}");

    let (status, body) =
        at_second.post("/v1/redeem", json!({"programId": program_id, "code": code}));
    assert_eq!(
        (status, body["error"]["code"].clone()),
        (401, json!("unauthorized"))
    );
    let (status, body) = at_second.post("/v1/tickets/use", json!({"ticket": ticket}));
    assert_eq!(
        (status, body["error"]["code"].clone()),
        (401, json!("unauthorized"))
    );
    // Nothing was spent by the refused calls.
    let (_, used) = admin.post("/v1/tickets/use", json!({"ticket": ticket}));
    assert_eq!(used["uses"], 96, "{used}");
}

#[test]
fn an_unknown_key_is_refused_before_a_malformed_body_on_the_hot_paths() {
    let database = TestDatabase::new();
    let server = Server::start(&database);
    let stranger = server.client(Some("not-a-key"));
    for path in ["/v1/redeem", "/v1/tickets/use"] {
        let (status, body) = stranger.post(path, json!({"unknownField": 1}));
        assert_eq!(
            (status, body["error"]["code"].clone()),
            (401, json!("unauthorized")),
            "{path}"
        );
    }
    let anonymous = server.client(None);
    let (status, body) = anonymous.post("/v1/tickets/use", json!({"ticket": "x"}));
    assert_eq!(
        (status, body["error"]["code"].clone()),
        (401, json!("unauthorized"))
    );
    let (status, body) = anonymous.post("/v1/redeem", json!({"unknownField": 1}));
    assert_eq!(
        (status, body["error"]["code"].clone()),
        (400, json!("invalid_request"))
    );
}
