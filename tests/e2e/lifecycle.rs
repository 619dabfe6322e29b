use serde_json::json;
use tessera_e2e::{program_body, Server, TestDatabase};

#[test]
fn a_program_lives_from_creation_through_exhaustion_suspension_reactivation_and_deletion() {
    let database = TestDatabase::new();
    let server = Server::start(&database);
    let (tenant_id, admin_key) = server.create_tenant("Acme Events");
    let admin = server.client(Some(&admin_key));
    let public = server.client(None);

    let (status, program) = admin.post(
        "/v1/programs",
        program_body(json!({"maxRedemptions": 2, "name": "launch"})),
    );
    assert_eq!(status, 201, "{program}");
    let program_id = program["id"].as_str().unwrap().to_owned();
    assert_eq!(program["tenantId"], tenant_id.as_str());
    assert_eq!(program["state"], "active");
    assert_eq!(program["ticketLength"], 6);
    assert_eq!(program["alphabet"], "alphanumeric");
    assert_eq!(program["version"], 1);

    let (status, issued) = admin.post(
        &format!("/v1/programs/{program_id}/tickets"),
        json!({"email": ""}),
    );
    assert_eq!(status, 201, "{issued}");
    let code = issued["code"].as_str().unwrap().to_owned();
    assert_eq!(code.len(), 6);
    assert_eq!(issued["maxRedemptions"], 2);

    let redeem =
        |code: &str| public.post("/v1/redeem", json!({"programId": program_id, "code": code}));
    let (status, first) = redeem(&code);
    assert_eq!(status, 200, "{first}");
    assert_eq!(first["objectId"], "iq__3ax1WuidvcNm8Bd2CGEnqLYScsxL");
    assert_eq!(first["remaining"], 1);
    assert!(
        first.get("programId").is_none(),
        "programId only with includeProgramId"
    );
    let (status, second) = public.post(
        "/v1/redeem",
        json!({"ntpId": program_id, "code": code, "includeProgramId": true}),
    );
    assert_eq!(status, 200, "{second}");
    assert_eq!(second["remaining"], 0);
    assert_eq!(second["programId"], program_id.as_str());
    let (status, exhausted) = redeem(&code);
    assert_eq!(
        (status, exhausted["error"]["code"].as_str()),
        (404, Some("invalid_code"))
    );

    let ticket_id = issued["ticketId"].as_str().unwrap();
    let (status, ticket) = admin.get(&format!("/v1/tickets/{ticket_id}"));
    assert_eq!(status, 200);
    assert_eq!(
        (ticket["redemptions"].as_i64(), ticket["remaining"].as_i64()),
        (Some(2), Some(0))
    );

    let (_, fresh) = admin.post(&format!("/v1/programs/{program_id}/tickets"), json!({}));
    let fresh_code = fresh["code"].as_str().unwrap().to_owned();
    let (status, suspended) = admin.post(&format!("/v1/programs/{program_id}/suspend"), json!({}));
    assert_eq!(
        (status, suspended["state"].as_str()),
        (200, Some("suspended"))
    );
    assert_eq!(
        redeem(&fresh_code).0,
        404,
        "a suspended program's tickets fail"
    );
    let (status, refused) = admin.post(&format!("/v1/programs/{program_id}/tickets"), json!({}));
    assert_eq!(
        (status, refused["error"]["code"].as_str()),
        (409, Some("program_not_active"))
    );

    let new_end = chrono_like_in_two_days();
    let (status, reactivated) = admin.send(
        "PATCH",
        &format!("/v1/programs/{program_id}"),
        Some(json!({"endTime": new_end})),
    );
    assert_eq!(
        (status, reactivated["state"].as_str()),
        (200, Some("active")),
        "{reactivated}"
    );
    assert_eq!(redeem(&fresh_code).0, 200, "reactivated by setting endTime");

    let (status, listed) = admin.get("/v1/programs?count=5");
    assert_eq!(status, 200);
    assert_eq!(
        (
            listed["total"].as_i64(),
            listed["start"].as_i64(),
            listed["end"].as_i64()
        ),
        (Some(1), Some(0), Some(1))
    );

    let (status, _) = admin.send("DELETE", &format!("/v1/programs/{program_id}"), None);
    assert_eq!(status, 204);
    assert_eq!(admin.get(&format!("/v1/programs/{program_id}")).0, 404);
    let (status, gone) = redeem(&fresh_code);
    assert_eq!(
        (status, gone["error"]["code"].as_str()),
        (404, Some("invalid_code"))
    );
}

fn chrono_like_in_two_days() -> String {
    let millis = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("the clock is after 1970")
        .as_millis()
        + 2 * 86_400_000;
    // Exercises the numeric-string time form.
    millis.to_string()
}

#[test]
fn a_redeemer_key_learns_why_a_redemption_failed_and_wrong_emails_lock_the_ticket() {
    let database = TestDatabase::new();
    let server = Server::start(&database);
    let (tenant_id, admin_key) = server.create_tenant("Detail");
    let admin = server.client(Some(&admin_key));
    let (status, key) = admin.post("/v1/api-keys", json!({"name": "door", "role": "redeemer"}));
    assert_eq!(status, 201, "{key}");
    let redeemer = server.client(Some(key["key"].as_str().unwrap()));

    let (_, program) = admin.post(
        "/v1/programs",
        program_body(json!({"alphabet": "humane", "ticketLength": 8})),
    );
    let program_id = program["id"].as_str().unwrap();
    let (_, issued) = admin.post(
        &format!("/v1/programs/{program_id}/tickets"),
        json!({"email": "Ann@Example.com", "payload": {"seat": "12A"}}),
    );
    let code = issued["code"].as_str().unwrap().to_lowercase();
    let issuer = format!("/otp/ntp/{tenant_id}/{program_id}");

    for attempt in 1..=5 {
        let (status, body) = redeemer.post(
            "/v1/redeem",
            json!({"issuer": issuer, "code": code, "email": "bob@example.com"}),
        );
        assert_eq!(status, 409, "attempt {attempt}: {body}");
        assert_eq!(body["error"]["code"], "email_mismatch");
    }
    let (status, locked) = redeemer.post(
        "/v1/redeem",
        json!({"issuer": issuer, "code": code, "email": "ann@example.com"}),
    );
    assert_eq!(
        (status, locked["error"]["code"].as_str()),
        (409, Some("ticket_locked"))
    );

    let ticket_path = format!("/v1/tickets/{}", issued["ticketId"].as_str().unwrap());
    let (_, ticket) = admin.get(&ticket_path);
    assert_eq!(ticket["state"], "locked");
    let (status, unlocked) = admin.send("PATCH", &ticket_path, Some(json!({"state": "active"})));
    assert_eq!(
        (status, unlocked["state"].as_str()),
        (200, Some("active")),
        "{unlocked}"
    );

    let (status, redeemed) = redeemer.post(
        "/v1/redeem",
        json!({"tenantId": tenant_id, "programId": program_id, "code": code, "email": "ANN@example.com"}),
    );
    assert_eq!(
        status, 200,
        "humane codes ignore case; emails too: {redeemed}"
    );
    assert_eq!(redeemed["payload"], json!({"seat": "12A"}));

    let (status, unknown) = redeemer.post(
        "/v1/redeem",
        json!({"programId": program_id, "code": "ZZZZZZZZ"}),
    );
    assert_eq!(
        (status, unknown["error"]["code"].as_str()),
        (404, Some("ticket_not_found"))
    );
}

#[test]
fn standalone_tickets_are_created_used_listed_and_deleted() {
    let database = TestDatabase::new();
    let server = Server::start(&database);
    let (_, admin_key) = server.create_tenant("Authen");
    let admin = server.client(Some(&admin_key));

    let (status, created) = admin.post(
        "/v1/tickets",
        json!({"uses": 2, "ttl": 50, "payload": {"user_id": 9001}, "name": "sso"}),
    );
    assert_eq!(status, 201, "{created}");
    let ticket = created["ticket"].as_str().unwrap().to_owned();
    assert!(ticket.len() >= 27, "≥ 160 bits");

    let (status, used) = admin.post("/v1/tickets/use", json!({"ticket": ticket}));
    assert_eq!((status, used["uses"].as_i64()), (200, Some(1)), "{used}");
    assert_eq!(used["payload"], json!({"user_id": 9001}));

    let (status, listed) = admin.get("/v1/tickets");
    assert_eq!(status, 200);
    assert_eq!(listed["total"], 1);
    assert_eq!(listed["tickets"][0]["totalUsesAllowed"], 2);
    assert_eq!(listed["tickets"][0]["uses"], 1);
    assert!(
        !listed.to_string().contains(&ticket),
        "lists never show the secret"
    );

    let (status, deleted) = admin.post("/v1/tickets/delete", json!({"ticket": ticket}));
    assert_eq!((status, deleted), (200, json!({"uses": 1, "deleted": 1})));
    let (status, again) = admin.post("/v1/tickets/delete", json!({"ticket": ticket}));
    assert_eq!((status, again), (200, json!({"uses": null, "deleted": 0})));
    let (status, gone) = admin.post("/v1/tickets/use", json!({"ticket": ticket}));
    assert_eq!(
        (status, gone["error"]["code"].as_str()),
        (404, Some("ticket_not_found"))
    );
}

#[test]
fn api_keys_can_be_listed_and_a_deleted_key_stops_at_once() {
    let database = TestDatabase::new();
    let server = Server::start(&database);
    let (_, admin_key) = server.create_tenant("Keys");
    let admin = server.client(Some(&admin_key));
    let (_, issuer) = admin.post("/v1/api-keys", json!({"name": "ci", "role": "issuer"}));
    let issuer_key = issuer["key"].as_str().unwrap();
    let issuer_client = server.client(Some(issuer_key));

    assert_eq!(issuer_client.get("/v1/programs").0, 200);
    let (status, forbidden) = issuer_client.post("/v1/programs", program_body(json!({})));
    assert_eq!(
        (status, forbidden["error"]["code"].as_str()),
        (403, Some("forbidden"))
    );

    let (_, keys) = admin.get("/v1/api-keys");
    assert_eq!(keys["apiKeys"].as_array().map(Vec::len), Some(2));
    assert!(!keys.to_string().contains(issuer_key));

    let (status, _) = admin.send(
        "DELETE",
        &format!("/v1/api-keys/{}", issuer["id"].as_str().unwrap()),
        None,
    );
    assert_eq!(status, 204);
    let (status, body) = issuer_client.get("/v1/programs");
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (401, Some("unauthorized"))
    );
}

#[test]
fn operations_endpoints_answer() {
    let database = TestDatabase::new();
    let server = Server::start(&database);
    let public = server.client(None);
    assert_eq!(public.get("/healthz").0, 200);
    assert_eq!(public.get("/readyz").0, 200);
    let (status, openapi) = public.get("/openapi.json");
    assert_eq!(status, 200);
    assert!(openapi["openapi"].as_str().unwrap().starts_with("3."));
    assert!(openapi["paths"]["/v1/redeem"].is_object());
    assert!(
        openapi["paths"]["/v1/programs/{program_id}"].is_object()
            || openapi["paths"]["/v1/programs/{id}"].is_object()
    );
}
