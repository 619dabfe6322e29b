//! Webhooks end to end: signed deliveries to a real receiver on loopback, only for
//! the webhook's triggers; retries; a delivery pending across `kill -9`; two
//! replicas delivering each event once; and the SSRF guard.

use std::collections::HashSet;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use hmac::{Hmac, Mac};
use serde_json::{json, Value};
use sha2::Sha256;
use tessera_e2e::receiver::{Received, Receiver};
use tessera_e2e::{free_port, program_body, Client, Server, TestDatabase};

const ALLOW_PRIVATE: (&str, &str) = ("TESSERA_WEBHOOK_ALLOW_PRIVATE", "true");
/// Test-only: retries after tens of milliseconds instead of seconds.
const FAST_RETRIES: (&str, &str) = ("TESSERA_WEBHOOK_RETRY_BASE_MS", "50");
const WAIT: Duration = Duration::from_secs(30);

/// The receiver's check, written independently of the server's code: parse
/// `t=…,v1=…`, recompute HMAC-SHA-256 over `"<t>.<body>"`, compare in constant
/// time, and refuse a timestamp more than five minutes off.
fn signature_is_valid(secret: &str, received: &Received) -> bool {
    let Some(header) = received.signature.as_deref() else {
        return false;
    };
    let mut timestamp = None;
    let mut signature = None;
    for part in header.split(',') {
        match part.split_once('=') {
            Some(("t", value)) => timestamp = value.parse::<i64>().ok(),
            Some(("v1", value)) => signature = decode_hex(value),
            _ => {}
        }
    }
    let (Some(timestamp), Some(signature)) = (timestamp, signature) else {
        return false;
    };
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("after 1970")
        .as_secs() as i64;
    if (now - timestamp).abs() > 300 {
        return false;
    }
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).expect("as expected");
    mac.update(format!("{timestamp}.{}", received.body).as_bytes());
    mac.verify_slice(&signature).is_ok()
}

fn decode_hex(text: &str) -> Option<Vec<u8>> {
    (0..text.len())
        .step_by(2)
        .map(|i| {
            text.get(i..i + 2)
                .and_then(|pair| u8::from_str_radix(pair, 16).ok())
        })
        .collect()
}

/// A tenant's admin client and a program of it.
fn tenant_with_program(server: &Server) -> (Client, String) {
    let (admin_key, program) = tenant_key_and_program(server);
    (server.client(Some(&admin_key)), program)
}

/// A tenant's admin key and a program of it.
fn tenant_key_and_program(server: &Server) -> (String, String) {
    let (_, admin_key) = server.create_tenant("Hooks");
    let admin = server.client(Some(&admin_key));
    let (status, program) = admin.post("/v1/programs", program_body(json!({})));
    assert_eq!(status, 201, "{program}");
    (
        admin_key,
        program["id"].as_str().expect("as expected").to_owned(),
    )
}

/// Creates a webhook; returns (id, secret).
fn webhook(admin: &Client, url: &str, triggers: &[&str]) -> (String, String) {
    let (status, created) = admin.post("/v1/webhooks", json!({"url": url, "triggers": triggers}));
    assert_eq!(status, 201, "{created}");
    (
        created["id"].as_str().expect("as expected").to_owned(),
        created["secret"].as_str().expect("as expected").to_owned(),
    )
}

fn deliveries(admin: &Client, webhook: &str) -> Vec<Value> {
    let (status, page) = admin.get(&format!("/v1/webhooks/{webhook}/deliveries?count=1000"));
    assert_eq!(status, 200, "{page}");
    page["deliveries"].as_array().expect("as expected").clone()
}

/// Polls the deliveries listing until `done` holds; panics after [`WAIT`].
fn wait_until(admin: &Client, webhook: &str, done: impl Fn(&[Value]) -> bool) -> Vec<Value> {
    let deadline = std::time::Instant::now() + WAIT;
    loop {
        let listed = deliveries(admin, webhook);
        if done(&listed) {
            return listed;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "gave up waiting: {listed:?}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn issue(admin: &Client, program: &str) -> (String, String) {
    let (status, issued) = admin.post(&format!("/v1/programs/{program}/tickets"), json!({}));
    assert_eq!(status, 201, "{issued}");
    (
        issued["ticketId"].as_str().expect("as expected").to_owned(),
        issued["code"].as_str().expect("as expected").to_owned(),
    )
}

#[test]
fn a_receiver_gets_signed_deliveries_only_for_its_triggers() {
    let database = TestDatabase::new();
    let server = Server::start_with(&database, &[ALLOW_PRIVATE]);
    let receiver = Receiver::start();
    let (admin, program) = tenant_with_program(&server);
    let (hook, secret) = webhook(&admin, &receiver.url("/in"), &["ticket.redeemed"]);
    let (_, listed) = admin.get("/v1/webhooks");
    assert_eq!(listed["webhooks"][0]["id"], hook.as_str());
    assert!(
        !listed.to_string().contains(&secret),
        "the secret is shown once"
    );

    let (ticket, code) = issue(&admin, &program);
    let public = server.client(None);
    let redeem =
        |code: &str| public.post("/v1/redeem", json!({"programId": program, "code": code}));
    assert_eq!(redeem(&code).0, 200);
    assert_eq!(redeem("WRONG1").0, 404, "a failure, which is not a trigger");

    let got = receiver.wait_for(1, WAIT);
    let delivered = wait_until(&admin, &hook, |d| {
        d.len() == 1 && d[0]["state"] == "delivered"
    });
    std::thread::sleep(Duration::from_millis(800)); // room for a wrong extra delivery
    let got = if receiver.received().len() > got.len() {
        receiver.received()
    } else {
        got
    };
    assert_eq!(got.len(), 1, "only ticket.redeemed is a trigger: {got:?}");
    let event = got[0].json();
    assert_eq!(event["type"], "ticket.redeemed");
    assert_eq!(event["ticketId"], ticket.as_str());
    assert_eq!(event["programId"], program.as_str());
    assert!(event["id"].as_str().unwrap().starts_with("evt_"));
    assert_eq!(got[0].path, "/in");
    assert_eq!(got[0].content_type.as_deref(), Some("application/json"));
    assert!(
        signature_is_valid(&secret, &got[0]),
        "{:?}",
        got[0].signature
    );
    assert!(
        !signature_is_valid("whsec_other", &got[0]),
        "the check can fail"
    );
    let mut forged = got[0].clone();
    forged.body = forged.body.replace("ticket.redeemed", "ticket.revoked");
    assert!(!signature_is_valid(&secret, &forged), "the body is signed");

    let listed = &delivered[0];
    assert_eq!(listed["eventId"], event["id"]);
    assert_eq!(listed["eventType"], "ticket.redeemed");
    assert_eq!(
        (listed["attempts"].as_u64(), listed["lastStatus"].as_u64()),
        (Some(1), Some(200))
    );
    assert!(listed["deliveredAt"].is_string());

    // A retry of a delivered delivery sends it again.
    let id = listed["id"].as_str().unwrap();
    let (status, _) = admin.post(
        &format!("/v1/webhooks/{hook}/deliveries/{id}/retry"),
        json!({}),
    );
    assert_eq!(status, 202);
    let again = receiver.wait_for(2, WAIT);
    assert_eq!(again[1].json()["id"], event["id"]);
    assert!(
        !server.logs().contains(&secret),
        "the secret is never logged"
    );
}

#[test]
fn a_failing_receiver_is_retried_until_it_answers() {
    let database = TestDatabase::new();
    let server = Server::start_with(&database, &[ALLOW_PRIVATE, FAST_RETRIES]);
    let receiver = Receiver::failing_first(2);
    let (admin, program) = tenant_with_program(&server);
    let (hook, secret) = webhook(&admin, &receiver.url("/flaky"), &["ticket.issued"]);
    issue(&admin, &program);

    let listed = wait_until(&admin, &hook, |d| {
        d.len() == 1 && d[0]["state"] == "delivered"
    });
    assert_eq!(listed[0]["attempts"], 3, "{listed:?}");
    assert_eq!(listed[0]["lastStatus"], 200);
    assert_eq!(listed[0]["lastError"], Value::Null);
    let got = receiver.received();
    assert_eq!(got.len(), 3);
    assert!(
        got.iter().all(|r| r.body == got[0].body),
        "the same event each time"
    );
    assert!(got.iter().all(|r| signature_is_valid(&secret, r)));
}

#[test]
fn a_delivery_pending_across_a_kill_is_delivered_after_the_restart() {
    let database = TestDatabase::new();
    let port = free_port(); // nothing listens there yet: the receiver is down
    let env = [ALLOW_PRIVATE, FAST_RETRIES];
    let server = Server::start_with(&database, &env);
    let (admin_key, program) = tenant_key_and_program(&server);
    let admin = server.client(Some(&admin_key));
    let url = format!("http://127.0.0.1:{port}/later");
    let (hook, secret) = webhook(&admin, &url, &["ticket.issued"]);
    let (ticket, _) = issue(&admin, &program);
    let failed_once = wait_until(&admin, &hook, |d| {
        d.len() == 1 && d[0]["attempts"].as_u64() >= Some(1) && d[0]["lastError"].is_string()
    });
    assert_eq!(failed_once[0]["state"], "pending", "{failed_once:?}");
    drop(server); // SIGKILL: no chance to flush anything

    let receiver = Receiver::on_port(port);
    let restarted = Server::start_with(&database, &env);
    let admin = restarted.client(Some(&admin_key));
    let listed = wait_until(&admin, &hook, |d| {
        d.len() == 1 && d[0]["state"] == "delivered"
    });
    let got = receiver.received();
    assert_eq!(got.len(), 1, "{listed:?}");
    assert_eq!(got[0].json()["ticketId"], ticket.as_str());
    assert!(signature_is_valid(&secret, &got[0]));
}

#[test]
fn two_replicas_deliver_each_event_once_per_webhook() {
    let database = TestDatabase::new();
    let first = Server::start_with(&database, &[ALLOW_PRIVATE]);
    let second = Server::start_with(&database, &[ALLOW_PRIVATE]);
    let receiver = Receiver::start();
    let other_receiver = Receiver::start();
    let (admin_key, program) = tenant_key_and_program(&first);
    let admin = first.client(Some(&admin_key));
    webhook(&admin, &receiver.url("/a"), &["ticket.issued"]);
    webhook(&admin, &other_receiver.url("/b"), &["ticket.issued"]);

    let issued = 30;
    for n in 0..issued {
        // Through both replicas, so each writes outbox rows.
        let via = if n % 2 == 0 { &first } else { &second };
        issue(&via.client(Some(&admin_key)), &program);
    }
    for target in [&receiver, &other_receiver] {
        target.wait_for(issued, WAIT);
    }
    std::thread::sleep(Duration::from_secs(2)); // room for a duplicate to show up
    for target in [&receiver, &other_receiver] {
        let got = target.received();
        let events: HashSet<String> = got
            .iter()
            .map(|r| r.json()["id"].as_str().unwrap().to_owned())
            .collect();
        assert_eq!(events.len(), issued, "every event");
        assert_eq!(got.len(), issued, "no event twice");
    }
}

#[test]
fn the_ssrf_guard_refuses_a_private_address_and_sends_nothing() {
    let database = TestDatabase::new();
    let server = Server::start(&database); // TESSERA_WEBHOOK_ALLOW_PRIVATE unset
    let receiver = Receiver::start();
    let (admin, program) = tenant_with_program(&server);
    let (hook, _) = webhook(&admin, &receiver.url("/internal"), &["ticket.issued"]);
    issue(&admin, &program);
    let listed = wait_until(&admin, &hook, |d| {
        d.len() == 1 && d[0]["lastError"].is_string()
    });
    let error = listed[0]["lastError"].as_str().unwrap();
    assert!(error.starts_with("refused"), "{error}");
    assert!(error.contains("127.0.0.1"), "{error}");
    assert_eq!(listed[0]["lastStatus"], Value::Null);
    assert!(
        receiver.received().is_empty(),
        "nothing reached the receiver"
    );
}

#[test]
fn webhooks_are_validated_admin_only_and_isolated_by_tenant() {
    let database = TestDatabase::new();
    let server = Server::start_with(&database, &[ALLOW_PRIVATE]);
    let (admin, program) = tenant_with_program(&server);
    let (hook, secret) = webhook(&admin, "https://hooks.example.com/x", &["program.updated"]);
    assert!(secret.starts_with("whsec_"));
    let (_, other_key) = server.create_tenant("Other");
    let other = server.client(Some(&other_key));

    let (status, body) = admin.post(
        "/v1/webhooks",
        json!({"url": "https://x.example", "triggers": ["nope"]}),
    );
    assert_eq!(status, 400);
    assert!(body["error"]["message"]
        .as_str()
        .unwrap()
        .contains("triggers"));
    let (status, _) = admin.post(
        "/v1/webhooks",
        json!({"url": "x.example", "triggers": ["ticket.issued"]}),
    );
    assert_eq!(status, 400);
    let (status, body) = admin.post("/v1/api-keys", json!({"name": "iss", "role": "issuer"}));
    assert_eq!(status, 201);
    let issuer = server.client(Some(body["key"].as_str().unwrap()));
    assert_eq!(issuer.get("/v1/webhooks").0, 403);

    assert_eq!(other.get(&format!("/v1/webhooks/{hook}/deliveries")).0, 404);
    assert_eq!(
        other
            .send("DELETE", &format!("/v1/webhooks/{hook}"), None)
            .0,
        404
    );
    let (_, listed) = other.get("/v1/webhooks");
    assert_eq!(listed["webhooks"], json!([]));

    // The secret is stored sealed: not in a dump.
    let (status, _) = admin.post(&format!("/v1/programs/{program}/suspend"), json!({}));
    assert_eq!(status, 200);
    let dump = std::process::Command::new("pg_dump")
        .args(["--data-only", database.url()])
        .output()
        .expect("pg_dump runs");
    let dump = String::from_utf8_lossy(&dump.stdout);
    assert!(
        dump.contains(&hook),
        "the dump has the webhook (sanity check)"
    );
    assert!(!dump.contains(&secret));

    assert_eq!(
        admin
            .send("DELETE", &format!("/v1/webhooks/{hook}"), None)
            .0,
        204
    );
    assert_eq!(admin.get(&format!("/v1/webhooks/{hook}/deliveries")).0, 404);
    assert_eq!(
        admin
            .send("DELETE", &format!("/v1/webhooks/{hook}"), None)
            .0,
        404
    );
}
