//! Codes people bring, over HTTP against the real binary: a shared promo code
//! with a per-redeemer limit across two processes, patterns and check
//! characters, chosen codes taken, the import and the refill.

use serde_json::{json, Value};
use tessera_e2e::{concurrently, program_body, Server, TestDatabase};

const UNTHROTTLED: [(&str, &str); 1] = [("TESSERA_REDEEM_FAILURES_PER_MINUTE", "100000")];

fn program(admin: &tessera_e2e::Client, extra: Value) -> String {
    let (status, program) = admin.post("/v1/programs", program_body(extra));
    assert_eq!(status, 201, "{program}");
    program["id"].as_str().expect("a program id").to_owned()
}

#[test]
fn a_shared_promo_code_gives_each_of_twenty_redeemers_one_use_of_ten_across_two_processes() {
    let database = TestDatabase::new();
    let first = Server::start_with(&database, &UNTHROTTLED);
    let second = Server::start_with(&database, &UNTHROTTLED);
    let (_, key) = first.create_tenant("Festival");
    let admin = first.client(Some(&key));
    let program_id = program(&admin, json!({"alphabet": "humane", "maxRedemptions": 10}));
    let (status, issued) = admin.post(
        &format!("/v1/programs/{program_id}/tickets"),
        json!({"code": "summer-25", "perRedeemerLimit": 1}),
    );
    assert_eq!(status, 201, "{issued}");
    assert_eq!(issued["code"], "SUMMER25");
    // The same code again is taken, decided by the unique index.
    let (status, again) = admin.post(
        &format!("/v1/programs/{program_id}/tickets"),
        json!({"code": "SUMMER 25"}),
    );
    assert_eq!(
        (status, again["error"]["code"].clone()),
        (409, json!("code_taken"))
    );

    let clients = [first.client(None), second.client(None)];
    let pid = program_id.clone();
    let statuses = concurrently(20, move |i| {
        clients[i % 2]
            .post(
                "/v1/redeem",
                json!({"programId": pid, "code": "Summer25", "redeemerId": format!("fan-{i}")}),
            )
            .0
    });
    assert_eq!(
        statuses.iter().filter(|s| **s == 200).count(),
        10,
        "{statuses:?}"
    );

    // One redeemer, twenty times at once, on a fresh one-per-redeemer code.
    admin.post(
        &format!("/v1/programs/{program_id}/tickets"),
        json!({"code": "WINTER26", "perRedeemerLimit": 1}),
    );
    let clients = [first.client(None), second.client(None)];
    let pid = program_id.clone();
    let statuses = concurrently(20, move |i| {
        clients[i % 2]
            .post(
                "/v1/redeem",
                json!({"programId": pid, "code": "WINTER26", "redeemerId": "same-fan"}),
            )
            .0
    });
    assert_eq!(
        statuses.iter().filter(|s| **s == 200).count(),
        1,
        "{statuses:?}"
    );

    // A key of the tenant learns why.
    let redeemer = admin
        .post("/v1/api-keys", json!({"name": "door", "role": "redeemer"}))
        .1;
    let door = first.client(redeemer["key"].as_str());
    let (status, body) = door.post(
        "/v1/redeem",
        json!({"programId": program_id, "code": "WINTER26"}),
    );
    assert_eq!(
        (status, body["error"]["code"].clone()),
        (409, json!("redeemer_required"))
    );
    let (status, body) = door.post(
        "/v1/redeem",
        json!({"programId": program_id, "code": "WINTER26", "redeemerId": "same-fan"}),
    );
    assert_eq!(
        (status, body["error"]["code"].clone()),
        (409, json!("redeemer_limit_reached"))
    );
}

#[test]
fn a_patterned_code_with_a_check_character_redeems_however_typed_and_a_typo_is_mistyped() {
    let database = TestDatabase::new();
    let server = Server::start(&database);
    let (_, key) = server.create_tenant("Retail");
    let admin = server.client(Some(&key));
    let (status, body) = admin.post(
        "/v1/programs",
        program_body(
            json!({"alphabet": "humane", "codePattern": "TSR-####-####", "ticketLength": 6}),
        ),
    );
    assert_eq!(status, 400, "{body}");
    let program_id = program(
        &admin,
        json!({"alphabet": "humane", "codePattern": "TSR-####-####", "checkDigit": true}),
    );
    let (_, shown) = admin.get(&format!("/v1/programs/{program_id}"));
    assert_eq!(
        (shown["ticketLength"].clone(), shown["checkDigit"].clone()),
        (json!(8), json!(true))
    );
    let (_, issued) = admin.post(
        &format!("/v1/programs/{program_id}/tickets"),
        json!({"maxRedemptions": 5}),
    );
    let code = issued["code"].as_str().unwrap().to_owned();
    assert!(code.starts_with("TSR-") && code.len() == 14, "{code}");

    // A typo in the last random character: refused as mistyped, for everyone.
    let mut typo: Vec<char> = code.chars().collect();
    let at = typo.len() - 2;
    typo[at] = if typo[at] == '7' { '8' } else { '7' };
    let typo: String = typo.into_iter().collect();
    let public = server.client(None);
    for _ in 0..30 {
        let (status, body) =
            public.post("/v1/redeem", json!({"programId": program_id, "code": typo}));
        assert_eq!(
            (status, body["error"]["message"].clone()),
            (404, json!("The code is mistyped."))
        );
    }
    // Thirty typos later the address is not throttled: they were not counted.
    let lower = code.to_lowercase().replace('-', " ");
    let (status, body) = public.post(
        "/v1/redeem",
        json!({"programId": program_id, "code": lower}),
    );
    assert_eq!(status, 200, "{body}");
    let (status, _) = public.post(
        "/v1/redeem",
        json!({"programId": program_id, "code": code.replace('-', "")}),
    );
    assert_eq!(status, 200);
}

#[test]
fn an_import_is_all_or_nothing_and_names_lines_never_codes() {
    let database = TestDatabase::new();
    let server = Server::start(&database);
    let (_, key) = server.create_tenant("Partner");
    let admin = server.client(Some(&key));
    let program_id = program(&admin, json!({"maxTickets": 5}));
    let path = format!("/v1/programs/{program_id}/tickets/import");
    let csv = |body: &str| {
        admin.send_raw(
            "POST",
            &path,
            &[("Content-Type", "text/csv")],
            body.as_bytes(),
        )
    };

    let (status, body) = csv("code,email\nCARD0001,\nCARD-0002,ann@example.com\nCARD0001,\n");
    assert_eq!(
        (status, body["error"]["code"].clone()),
        (409, json!("code_taken")),
        "{body}"
    );
    let message = body["error"]["message"].as_str().unwrap();
    assert!(
        message.contains('4') && !message.contains("CARD"),
        "{message}"
    );
    let (status, body) = csv("code,maxRedemptions\nCARD0001,2\nab,1\nCARD0003,zero\n");
    assert_eq!(status, 400, "{body}");
    let message = body["error"]["message"].as_str().unwrap();
    assert!(
        message.contains("3, 4") && !message.contains("CARD"),
        "{message}"
    );
    let (status, _) = csv("email\nann@example.com\n");
    assert_eq!(status, 400);
    let (status, _) = csv("code\nA1\nA2\nA3\nA4\nA5\nA6\n"
        .replace('A', "CODE")
        .as_str());
    assert_eq!(status, 409, "six rows do not fit maxTickets 5");
    let (_, listed) = admin.get(&format!("/v1/programs/{program_id}/tickets"));
    assert_eq!(listed["total"], 0, "nothing was written");

    let (status, body) =
        csv("code,email,maxRedemptions\nCARD0001,,1\nCARD-0002,ann@example.com,\n");
    assert_eq!(
        (status, body.clone()),
        (201, json!({"imported": 2})),
        "{body}"
    );
    let (status, _) = server.client(None).post(
        "/v1/redeem",
        json!({"programId": program_id, "code": "CARD0002", "email": "ann@example.com"}),
    );
    assert_eq!(status, 200);
    // Again: every code is now in the tenant.
    let (status, body) = csv("code\nNEW00001\nCARD0001\n");
    assert_eq!(
        (status, body["error"]["code"].clone()),
        (409, json!("code_taken")),
        "{body}"
    );
    let (status, body) = admin.send_raw(
        "POST",
        &path,
        &[("Content-Type", "application/json")],
        b"{}",
    );
    assert_eq!(status, 415, "{body}");
}

#[test]
fn a_refill_raises_a_used_up_ticket_and_is_versioned() {
    let database = TestDatabase::new();
    let server = Server::start(&database);
    let (_, key) = server.create_tenant("Refill");
    let admin = server.client(Some(&key));
    let program_id = program(&admin, json!({"maxRedemptions": 10}));
    let (_, issued) = admin.post(
        &format!("/v1/programs/{program_id}/tickets"),
        json!({"maxRedemptions": 1}),
    );
    let (id, code) = (
        issued["ticketId"].as_str().unwrap(),
        issued["code"].as_str().unwrap(),
    );
    let redeem = || {
        server
            .client(None)
            .post("/v1/redeem", json!({"programId": program_id, "code": code}))
            .0
    };
    assert_eq!(redeem(), 200);
    assert_eq!(redeem(), 404);
    let (status, ticket) = admin.send(
        "PATCH",
        &format!("/v1/tickets/{id}"),
        Some(json!({"maxRedemptions": 3})),
    );
    assert_eq!(status, 200, "{ticket}");
    assert_eq!(
        (ticket["remaining"].clone(), ticket["version"].clone()),
        (json!(2), json!(2))
    );
    assert_eq!(redeem(), 200);
    let (status, _) = admin.send("PATCH", &format!("/v1/tickets/{id}"), Some(json!({})));
    assert_eq!(status, 400);
}
