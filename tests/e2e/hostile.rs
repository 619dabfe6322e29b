//! Invariant 5: bad input gets a clear 4xx JSON error and changes nothing.

use serde_json::{json, Value};
use tessera_e2e::{program_body, Server, TestDatabase};

fn assert_client_error(
    status: u16,
    body: &Value,
    expected_status: u16,
    expected_code: &str,
    what: &str,
) {
    assert_eq!(status, expected_status, "{what}: {body}");
    assert_eq!(body["error"]["code"], expected_code, "{what}: {body}");
    assert!(
        body["error"]["message"]
            .as_str()
            .is_some_and(|m| !m.is_empty()),
        "{what}: a human message"
    );
}

#[test]
fn malformed_mistyped_unknown_and_oversized_bodies_are_refused_and_change_nothing() {
    let database = TestDatabase::new();
    let server = Server::start(&database);
    let (_, admin_key) = server.create_tenant("Hostile");
    let admin = server.client(Some(&admin_key));
    let (_, program) = admin.post("/v1/programs", program_body(json!({"maxTickets": 5})));
    let program_id = program["id"].as_str().unwrap().to_owned();
    let json_header = [("Content-Type", "application/json")];

    let raw_cases: Vec<(&str, String, Vec<u8>, u16, &str)> = vec![
        (
            "POST",
            "/v1/programs".into(),
            b"{\"objectId\": ".to_vec(),
            400,
            "invalid_request",
        ),
        (
            "POST",
            "/v1/programs".into(),
            b"[]".to_vec(),
            400,
            "invalid_request",
        ),
        (
            "POST",
            "/v1/programs".into(),
            b"\xff\xfe".to_vec(),
            400,
            "invalid_request",
        ),
        (
            "POST",
            format!("/v1/programs/{program_id}/tickets"),
            b"{\"email\": 5}".to_vec(),
            400,
            "invalid_request",
        ),
        (
            "POST",
            "/v1/redeem".into(),
            b"null".to_vec(),
            400,
            "invalid_request",
        ),
        (
            "POST",
            "/v1/tickets".into(),
            b"{\"uses\": \"many\"}".to_vec(),
            400,
            "invalid_request",
        ),
    ];
    for (method, path, body, status, code) in raw_cases {
        let (got, answer) = admin.send_raw(method, &path, &json_header, &body);
        assert_client_error(
            got,
            &answer,
            status,
            code,
            &format!("{method} {path} {:?}", String::from_utf8_lossy(&body)),
        );
    }

    let json_cases: Vec<(&str, String, Value, &str)> = vec![
        (
            "/v1/programs",
            String::new(),
            program_body(json!({"objectid": "typo"})),
            "unknown field",
        ),
        (
            "/v1/programs",
            String::new(),
            program_body(json!({"ntpClass": 10})),
            "ntpClass out of range",
        ),
        (
            "/v1/programs",
            String::new(),
            program_body(json!({"ticketLength": 3})),
            "ticketLength too short",
        ),
        (
            "/v1/programs",
            String::new(),
            program_body(json!({"maxTickets": 100000, "ticketLength": 4, "alphabet": "numeric"})),
            "code space",
        ),
        (
            "/v1/programs",
            String::new(),
            program_body(
                json!({"startTime": "2030-01-02T00:00:00Z", "endTime": "2030-01-01T00:00:00Z"}),
            ),
            "endTime before startTime",
        ),
        (
            "/v1/programs",
            String::new(),
            program_body(json!({"startTime": "yesterday"})),
            "unparseable time",
        ),
        (
            "/v1/programs",
            String::new(),
            program_body(json!({"maxRedemptions": 1.5})),
            "float for an integer",
        ),
        (
            "/v1/programs",
            String::new(),
            program_body(json!({"alphabet": "emoji"})),
            "unknown alphabet",
        ),
        (
            "/v1/programs",
            String::new(),
            program_body(json!({"urlPrefix": "javascript:alert(1)"})),
            "bad url",
        ),
        (
            "/v1/programs",
            String::new(),
            json!({"objectId": "x"}),
            "missing times",
        ),
        (
            "/v1/programs/",
            program_id.clone() + "/tickets",
            json!({"email": "not-an-email"}),
            "bad email",
        ),
        (
            "/v1/programs/",
            program_id.clone() + "/tickets",
            json!({"maxRedemptions": 0}),
            "zero redemptions",
        ),
        (
            "/v1/programs/",
            program_id.clone() + "/tickets",
            json!({"codes": 3}),
            "unknown ticket field",
        ),
        (
            "/v1/redeem",
            String::new(),
            json!({"code": "abcdef"}),
            "no program named",
        ),
        (
            "/v1/api-keys",
            String::new(),
            json!({"name": "x", "role": "root"}),
            "unknown role",
        ),
        (
            "/v1/tickets",
            String::new(),
            json!({"ttl": -1}),
            "negative ttl",
        ),
        (
            "/v1/tickets",
            String::new(),
            json!({"permissions": [1, 2]}),
            "permissions not an object",
        ),
    ];
    for (prefix, suffix, body, what) in json_cases {
        let (status, answer) = admin.post(&format!("{prefix}{suffix}"), body);
        assert_client_error(status, &answer, 400, "invalid_request", what);
    }

    let huge = format!("{{\"objectId\": \"{}\"}}", "x".repeat(70 * 1024));
    let (status, answer) = admin.send_raw("POST", "/v1/programs", &json_header, huge.as_bytes());
    assert_client_error(
        status,
        &answer,
        413,
        "payload_too_large",
        "body over 64 KiB",
    );
    let big_payload = json!({"payload": "y".repeat(17 * 1024)});
    let (status, answer) = admin.post(&format!("/v1/programs/{program_id}/tickets"), big_payload);
    assert_client_error(
        status,
        &answer,
        413,
        "payload_too_large",
        "payload over 16 KiB",
    );

    let (status, answer) = admin.get("/v1/programs?count=1001");
    assert_client_error(status, &answer, 400, "invalid_request", "count over 1000");
    let (status, answer) = admin.get("/v1/programs?offset=-1");
    assert_client_error(status, &answer, 400, "invalid_request", "negative offset");
    let (status, answer) = admin.send_raw(
        "PATCH",
        &format!("/v1/programs/{program_id}"),
        &[("Content-Type", "application/json"), ("If-Match", "abc")],
        b"{}",
    );
    assert_client_error(
        status,
        &answer,
        400,
        "invalid_request",
        "non-numeric If-Match",
    );
    let (status, answer) = admin.send_raw(
        "PATCH",
        &format!("/v1/programs/{program_id}"),
        &[("Content-Type", "application/json"), ("If-Match", "7")],
        b"{\"name\": \"x\"}",
    );
    assert_client_error(status, &answer, 409, "version_conflict", "stale If-Match");
    let (status, answer) = server
        .client(Some("tsk_not-a-real-key"))
        .get("/v1/programs");
    assert_client_error(status, &answer, 401, "unauthorized", "unknown key");
    let (status, answer) = server.client(None).get("/v1/programs");
    assert_client_error(status, &answer, 401, "unauthorized", "missing key");
    let (status, answer) = admin.get("/v1/nowhere");
    assert_client_error(status, &answer, 404, "not_found", "unknown route");

    // Nothing changed: the program is as created, with no tickets, keys or standalone tickets.
    let (_, after) = admin.get(&format!("/v1/programs/{program_id}"));
    assert_eq!(after["version"], 1);
    assert_eq!(after["issuedTickets"], 0);
    assert!(after["name"].is_null());
    let (_, programs) = admin.get("/v1/programs");
    assert_eq!(programs["total"], 1);
    let (_, tickets) = admin.get(&format!("/v1/programs/{program_id}/tickets"));
    assert_eq!(tickets["total"], 0);
    let (_, keys) = admin.get("/v1/api-keys");
    assert_eq!(keys["apiKeys"].as_array().map(Vec::len), Some(1));
    let (_, standalone) = admin.get("/v1/tickets");
    assert_eq!(standalone["total"], 0);
    assert!(
        !server.logs().contains("panicked"),
        "no panic in the server log"
    );
}

/// Values that pass JSON parsing but that PostgreSQL cannot store, or that become
/// equal once stored, are refused at the edge with a 400 naming the field — never a
/// 500 from the database.
#[test]
fn values_the_database_cannot_hold_are_refused_at_the_edge() {
    let database = TestDatabase::new();
    let server = Server::start(&database);
    let (_, admin_key) = server.create_tenant("Edges");
    let admin = server.client(Some(&admin_key));
    let public = server.client(None);
    let (_, program) = admin.post("/v1/programs", program_body(json!({})));
    let program_id = program["id"].as_str().unwrap().to_owned();

    let window_cases = [
        (json!({"startTime": -300_000_000_000_000_i64}), "startTime"),
        (json!({"endTime": 300_000_000_000_000_i64}), "endTime"),
        (
            json!({"startTime": "2026-06-30T23:59:60Z", "endTime": "2026-07-01T00:00:00Z"}),
            "endTime",
        ),
        (
            json!({"startTime": "2026-07-01T00:00:00.0000001Z", "endTime": "2026-07-01T00:00:00.0000002Z"}),
            "endTime",
        ),
    ];
    for (times, field) in &window_cases {
        let (status, body) = admin.post("/v1/programs", program_body(times.clone()));
        assert_client_error(
            status,
            &body,
            400,
            "invalid_request",
            &format!("create {times}"),
        );
        assert!(
            body["error"]["message"].as_str().unwrap().contains(field),
            "{body}"
        );
        let (status, body) = admin.send(
            "PATCH",
            &format!("/v1/programs/{program_id}"),
            Some(times.clone()),
        );
        assert_client_error(
            status,
            &body,
            400,
            "invalid_request",
            &format!("patch {times}"),
        );
    }

    let (status, body) = public.post(
        "/v1/redeem",
        json!({"programId": program_id, "code": "ABCDEF", "email": "x\u{0000}"}),
    );
    assert_client_error(status, &body, 400, "invalid_request", "NUL in email");
    assert!(
        body["error"]["message"].as_str().unwrap().contains("email"),
        "{body}"
    );
    for field in ["subject", "email"] {
        let (status, body) = admin.post(
            &format!("/v1/programs/{program_id}/tickets"),
            json!({ field: "a\u{0000}b@example.com" }),
        );
        assert_client_error(status, &body, 400, "invalid_request", field);
    }
    let (status, body) = admin.post("/v1/programs", program_body(json!({"name": "tab\there"})));
    assert_client_error(
        status,
        &body,
        400,
        "invalid_request",
        "control character in name",
    );

    // Nothing was created or changed, and the server logged no error for any of it.
    let (_, listed) = admin.get("/v1/programs");
    assert_eq!(listed["total"], 1);
    let (_, again) = admin.get(&format!("/v1/programs/{program_id}"));
    assert_eq!(again["version"], program["version"]);
    let log = std::fs::read_to_string(&server.log_path).unwrap();
    assert!(!log.contains("ERROR"), "{log}");
}
