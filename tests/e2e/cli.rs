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
