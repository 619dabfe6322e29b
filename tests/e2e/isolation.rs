//! Invariant 4: another tenant's ids answer 404, like ids that never existed.

use serde_json::json;
use tessera_e2e::{program_body, Server, TestDatabase};

#[test]
fn another_tenants_ids_answer_404_everywhere() {
    let database = TestDatabase::new();
    let server = Server::start(&database);
    let (tenant_a, key_a) = server.create_tenant("A");
    let (_, key_b) = server.create_tenant("B");
    let a = server.client(Some(&key_a));
    let b = server.client(Some(&key_b));

    let (_, program) = a.post("/v1/programs", program_body(json!({})));
    let program_id = program["id"].as_str().unwrap().to_owned();
    let (_, issued) = a.post(&format!("/v1/programs/{program_id}/tickets"), json!({}));
    let ticket_id = issued["ticketId"].as_str().unwrap().to_owned();
    let code = issued["code"].as_str().unwrap().to_owned();
    let (_, a_keys) = a.get("/v1/api-keys");
    let a_key_id = a_keys["apiKeys"][0]["id"].as_str().unwrap().to_owned();

    let attempts: Vec<(&str, String, Option<serde_json::Value>)> = vec![
        ("GET", format!("/v1/programs/{program_id}"), None),
        (
            "PATCH",
            format!("/v1/programs/{program_id}"),
            Some(json!({"name": "mine"})),
        ),
        (
            "POST",
            format!("/v1/programs/{program_id}/suspend"),
            Some(json!({})),
        ),
        ("DELETE", format!("/v1/programs/{program_id}"), None),
        (
            "POST",
            format!("/v1/programs/{program_id}/tickets"),
            Some(json!({})),
        ),
        ("GET", format!("/v1/programs/{program_id}/tickets"), None),
        ("GET", format!("/v1/tickets/{ticket_id}"), None),
        (
            "PATCH",
            format!("/v1/tickets/{ticket_id}"),
            Some(json!({"state": "disabled"})),
        ),
        ("DELETE", format!("/v1/tickets/{ticket_id}"), None),
        ("DELETE", format!("/v1/api-keys/{a_key_id}"), None),
    ];
    for (method, path, body) in attempts {
        let (status, answer) = b.send(method, &path, body.clone());
        assert_eq!(status, 404, "{method} {path} by tenant B: {answer}");
        assert_eq!(answer["error"]["code"], "not_found");
        let never = path
            .replace(&program_id, "prg_11111111111111111111")
            .replace(&ticket_id, "tkt_11111111111111111111");
        let (never_status, never_answer) = b.send(method, &never, body);
        assert_eq!(
            (never_status, never_answer["error"]["code"].clone()),
            (404, json!("not_found"))
        );
    }

    // B's key gets no details about A's program: the public answer, nothing more.
    let (status, answer) = b.post(
        "/v1/redeem",
        json!({"tenantId": tenant_a, "programId": program_id, "code": "zzzzzz"}),
    );
    assert_eq!(
        (status, answer["error"]["code"].as_str()),
        (404, Some("invalid_code"))
    );

    // Nothing B tried changed A's data.
    let (_, program_after) = a.get(&format!("/v1/programs/{program_id}"));
    assert_eq!(program_after["version"], 1);
    assert_eq!(program_after["state"], "active");
    assert_eq!(program_after["issuedTickets"], 1);
    let (_, ticket_after) = a.get(&format!("/v1/tickets/{ticket_id}"));
    assert_eq!(ticket_after["state"], "active");
    let (status, _) = server
        .client(None)
        .post("/v1/redeem", json!({"programId": program_id, "code": code}));
    assert_eq!(status, 200);
    assert_eq!(a.get("/v1/api-keys").0, 200, "A's key still works");
}
