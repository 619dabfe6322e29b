//! Invariant 2: no code, ticket, API key or master key in the database or the logs.

use std::process::Command;

use serde_json::json;
use tessera_e2e::{program_body, Server, TestDatabase, MASTER_KEY, OPERATOR_TOKEN};

#[test]
fn a_database_dump_and_the_debug_logs_hold_no_secret_in_clear() {
    let database = TestDatabase::new();
    let server = Server::start_with(&database, &[("RUST_LOG", "debug")]);
    let (_, admin_key) = server.create_tenant("Secrets");
    let admin = server.client(Some(&admin_key));
    let public = server.client(None);

    let mut secrets = vec![admin_key.clone()];
    let (_, key) = admin.post("/v1/api-keys", json!({"name": "door", "role": "redeemer"}));
    secrets.push(key["key"].as_str().unwrap().to_owned());
    let (_, program) = admin.post(
        "/v1/programs",
        program_body(json!({"ticketLength": 12, "urlPrefix": "https://tickets.example.com/r/"})),
    );
    let program_id = program["id"].as_str().unwrap().to_owned();
    for _ in 0..5 {
        let (_, issued) = admin.post(
            &format!("/v1/programs/{program_id}/tickets"),
            json!({"signed": true}),
        );
        let code = issued["code"].as_str().unwrap().to_owned();
        let link = issued["link"].as_str().unwrap();
        secrets.push(
            link.trim_start_matches("https://tickets.example.com/r/")
                .to_owned(),
        );
        secrets.push(issued["signedCode"].as_str().unwrap().to_owned());
        let (status, redeemed) =
            public.post("/v1/redeem", json!({"programId": program_id, "code": code}));
        assert_eq!(status, 200);
        secrets.push(redeemed["accessToken"].as_str().unwrap().to_owned());
        secrets.push(code);
    }
    // A failed guess must not be logged either.
    let guess = "GuessGuess12";
    let (status, _) = public.post(
        "/v1/redeem",
        json!({"programId": program_id, "code": guess}),
    );
    assert_eq!(status, 404);
    secrets.push(guess.to_owned());
    for _ in 0..3 {
        let (_, created) = admin.post("/v1/tickets", json!({"uses": 3}));
        let ticket = created["ticket"].as_str().unwrap().to_owned();
        assert_eq!(
            admin.post("/v1/tickets/use", json!({"ticket": ticket})).0,
            200
        );
        secrets.push(ticket);
    }

    let dump = Command::new("pg_dump")
        .args(["--no-owner", "--data-only", database.url()])
        .output()
        .expect("pg_dump runs");
    assert!(
        dump.status.success(),
        "pg_dump failed: {}",
        String::from_utf8_lossy(&dump.stderr)
    );
    let dump = String::from_utf8_lossy(&dump.stdout);
    assert!(
        dump.contains(&program_id),
        "the dump has the data (sanity check)"
    );
    let logs = server.logs();
    assert!(
        logs.contains("DEBUG") || logs.contains("debug"),
        "debug logging was on"
    );
    for secret in secrets
        .iter()
        .map(String::as_str)
        .chain([MASTER_KEY, OPERATOR_TOKEN])
    {
        assert!(
            !dump.contains(secret),
            "the database dump contains a secret in clear"
        );
        assert!(
            !logs.contains(secret),
            "the server log contains a secret in clear"
        );
    }
}
