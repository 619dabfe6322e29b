//! The backup drill: a database dumped with `pg_dump` and restored into a new one
//! serves every ticket issued before the dump, given the same master key — and does
//! not start with another key, which is why the master key must be backed up with
//! the data (docs/operations.md, *Backups*).

use std::process::Command;

use serde_json::json;
use tessera_e2e::{program_body, run_cli, Server, TestDatabase};

fn run(command: &mut Command) {
    let output = command.output().expect("the PostgreSQL client tools run");
    assert!(
        output.status.success(),
        "{command:?} failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
}

#[test]
fn a_restored_dump_redeems_every_ticket_issued_before_it() {
    let original = TestDatabase::new();
    let server = Server::start(&original);
    let (_, admin_key) = server.create_tenant("Backed up");
    let admin = server.client(Some(&admin_key));
    let (_, program) = admin.post(
        "/v1/programs",
        program_body(json!({"maxRedemptions": 2, "urlPrefix": "https://t.example/r/"})),
    );
    let program_id = program["id"].as_str().unwrap().to_owned();
    let mut codes = Vec::new();
    for n in 0..10 {
        let body = if n % 2 == 0 {
            json!({})
        } else {
            json!({ "email": format!("guest{n}@example.com") })
        };
        let (status, issued) = admin.post(&format!("/v1/programs/{program_id}/tickets"), body);
        assert_eq!(status, 201, "{issued}");
        let email = (n % 2 == 1).then(|| format!("guest{n}@example.com"));
        codes.push((issued["code"].as_str().unwrap().to_owned(), email));
    }
    let batch = admin.exchange(
        "POST",
        &format!("/v1/programs/{program_id}/tickets/batch"),
        &[("Content-Type", "application/json")],
        br#"{"count": 25}"#,
    );
    assert_eq!(batch.status, 200, "{}", batch.text);
    let csv = batch.text;
    codes.extend(
        csv.lines()
            .skip(1)
            .map(|row| (row.split(',').nth(1).unwrap().to_owned(), None)),
    );
    assert_eq!(codes.len(), 35);
    let redeem = |client: &tessera_e2e::Client, (code, email): &(String, Option<String>)| {
        let mut body = json!({"programId": program_id, "code": code});
        if let Some(email) = email {
            body["email"] = json!(email);
        }
        client.post("/v1/redeem", body)
    };
    // One use of the first ticket before the dump: one left after the restore.
    let public = server.client(None);
    assert_eq!(redeem(&public, &codes[0]).0, 200);

    let dump = std::env::temp_dir().join(format!("tessera-drill-{}.dump", original.name()));
    run(Command::new("pg_dump")
        .args(["--format=custom", "--no-owner", "--file"])
        .arg(&dump)
        .arg(original.url()));
    drop(server);

    let restored = TestDatabase::empty();
    run(Command::new("pg_restore")
        .args(["--no-owner", "--exit-on-error", "--dbname", restored.url()])
        .arg(&dump));
    let _ = std::fs::remove_file(&dump);

    // Another master key cannot open the root key every other key derives from:
    // the server refuses to start rather than answer "invalid" to every code.
    let wrong_key = run_cli(
        &restored,
        &["serve"],
        &[(
            "TESSERA_MASTER_KEY",
            "b3RoZXItbWFzdGVyLWtleS0zMi1ieXRlcy1sb25nISE=",
        )],
    );
    assert_eq!(wrong_key.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&wrong_key.stderr);
    assert!(stderr.contains("root key"), "{stderr}");

    // The same master key: everything issued before the dump redeems.
    let server = Server::start(&restored);
    let public = server.client(None);
    for (n, ticket) in codes.iter().enumerate() {
        let (status, body) = redeem(&public, ticket);
        assert_eq!(status, 200, "ticket {n} after the restore: {body}");
        let expected_left = if n == 0 { 0 } else { 1 };
        assert_eq!(body["remaining"], expected_left, "ticket {n}");
    }
    assert_eq!(
        redeem(&public, &codes[0]).0,
        404,
        "the use spent before the dump stays spent"
    );
    let admin = server.client(Some(&admin_key));
    let (status, listed) = admin.get(&format!("/v1/programs/{program_id}"));
    assert_eq!(status, 200, "the admin key survives the restore: {listed}");
    assert_eq!(listed["issuedTickets"], 35);
    let (status, _) = admin.post(&format!("/v1/programs/{program_id}/tickets"), json!({}));
    assert_eq!(status, 201, "the restored database issues new tickets");
}
