//! The command line: tenant creation, migrations and bad settings.

use serde_json::Value;
use tessera_e2e::{run_cli, Server, TestDatabase};

#[test]
fn tenant_create_prints_exactly_one_json_document_with_a_working_admin_key() {
    let database = TestDatabase::new();
    let output = run_cli(&database, &["tenant", "create", "--name", "Acme"], &[]);
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let document: Value =
        serde_json::from_slice(&output.stdout).expect("stdout is one JSON document");
    assert_eq!(document["tenant"]["name"], "Acme");
    assert!(document["tenant"]["id"]
        .as_str()
        .unwrap()
        .starts_with("ten_"));
    assert_eq!(document["apiKey"]["role"], "admin");
    let key = document["apiKey"]["key"].as_str().unwrap();

    let server = Server::start(&database);
    let (status, programs) = server.client(Some(key)).get("/v1/programs");
    assert_eq!((status, programs["total"].as_i64()), (200, Some(0)));
}

#[test]
fn a_bad_setting_stops_the_program_with_one_line_naming_it_and_exit_code_2() {
    let database = TestDatabase::new();
    for (variable, value) in [
        ("TESSERA_BIND", "nowhere"),
        ("TESSERA_TOKEN_TTL", "-5"),
        ("TESSERA_MASTER_KEY", "tooshort"),
    ] {
        let output = run_cli(&database, &["serve"], &[(variable, value)]);
        assert_eq!(output.status.code(), Some(2), "{variable}={value}");
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(stderr.trim().lines().count(), 1, "one line: {stderr}");
        assert!(stderr.contains(variable), "names {variable}: {stderr}");
    }
}

#[test]
fn migrate_is_idempotent_and_help_lists_the_commands() {
    let database = TestDatabase::new();
    for _ in 0..2 {
        let output = run_cli(&database, &["migrate"], &[]);
        assert!(
            output.status.success(),
            "{}",
            String::from_utf8_lossy(&output.stderr)
        );
    }
    let help = run_cli(&database, &["--help"], &[]);
    let text = String::from_utf8_lossy(&help.stdout);
    for command in ["serve", "migrate", "tenant"] {
        assert!(text.contains(command), "--help mentions {command}: {text}");
    }
}

#[test]
fn serve_creates_a_missing_database() {
    let template = TestDatabase::new();
    let missing = format!("{}_fresh", template.name());
    let url = template.url().replace(template.name(), &missing);
    let output = run_cli(&template, &["migrate"], &[("DATABASE_URL", &url)]);
    let created = output.status.success();
    // Clean up before asserting, so a failure leaves nothing behind.
    let drop = std::process::Command::new("psql")
        .args([
            template.url(),
            "-c",
            &format!("DROP DATABASE IF EXISTS {missing} WITH (FORCE)"),
        ])
        .output();
    assert!(created, "{}", String::from_utf8_lossy(&output.stderr));
    assert!(
        drop.is_ok_and(|out| out.status.success()),
        "the created database existed and was dropped"
    );
}

#[test]
fn tickets_issue_writes_a_private_csv_whose_codes_redeem_and_never_overwrites() {
    let database = TestDatabase::new();
    let server = Server::start(&database);
    let (_, admin_key) = server.create_tenant("Bulk");
    let admin = server.client(Some(&admin_key));
    let (_, program) = admin.post(
        "/v1/programs",
        tessera_e2e::program_body(serde_json::json!({"maxTickets": 3000})),
    );
    let program_id = program["id"].as_str().unwrap();
    let out = std::env::temp_dir().join(format!("tessera-e2e-bulk-{}.csv", program_id));
    let out_arg = out.to_str().unwrap();

    let args = [
        "tickets",
        "issue",
        "--program",
        program_id,
        "--count",
        "2500",
        "--out",
        out_arg,
    ];
    let output = run_cli(&database, &args, &[]);
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let csv = std::fs::read_to_string(&out).expect("the CSV exists");
    let mut lines = csv.lines();
    assert_eq!(lines.next(), Some("ticketId,code"));
    let rows: Vec<(&str, &str)> = lines
        .map(|line| line.split_once(',').expect("two columns"))
        .collect();
    assert_eq!(rows.len(), 2500);
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&out)
            .expect("metadata")
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600, "the file holds secrets");
    }
    let (status, redeemed) = server.client(None).post(
        "/v1/redeem",
        serde_json::json!({"programId": program_id, "code": rows[1234].1}),
    );
    assert_eq!(
        (status, redeemed["ticketId"].as_str()),
        (200, Some(rows[1234].0)),
        "{redeemed}"
    );
    assert_eq!(
        admin.get(&format!("/v1/programs/{program_id}")).1["issuedTickets"],
        2500
    );

    // Never overwrites, and never issues past the cap (all or nothing).
    let again = run_cli(&database, &args, &[]);
    assert_eq!(
        again.status.code(),
        Some(2),
        "{}",
        String::from_utf8_lossy(&again.stderr)
    );
    std::fs::remove_file(&out).expect("cleanup");
    let over = run_cli(&database, &args, &[]);
    assert_eq!(
        over.status.code(),
        Some(1),
        "2,500 more would pass maxTickets 3,000"
    );
    assert!(
        !out.exists(),
        "no file is left behind when nothing was issued"
    );
    assert_eq!(
        admin.get(&format!("/v1/programs/{program_id}")).1["issuedTickets"],
        2500
    );
}

#[test]
fn tickets_issue_for_an_unknown_program_fails_and_leaves_no_file() {
    let database = TestDatabase::new();
    let out = std::env::temp_dir().join(format!(
        "tessera-e2e-unknown-{}-{}.csv",
        database.name(),
        std::process::id()
    ));
    let program = "prg_11111111111111111111";
    let args = [
        "tickets",
        "issue",
        "--program",
        program,
        "--count",
        "10",
        "--out",
        out.to_str().unwrap(),
    ];
    let output = run_cli(&database, &args, &[]);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains(&format!("no program {program}")),
        "{stderr}"
    );
    assert!(!out.exists(), "no file is left behind");
}
