//! tessera-domain stands alone: a crate outside this workspace that depends on
//! it by path, and on nothing else, builds offline, runs against it, and pulls
//! in none of the service's heavy dependencies.
//!
//! The downstream crate is written to a temporary folder with its own empty
//! `[workspace]` (so no workspace above the folder claims it) and a copy of
//! this workspace's `Cargo.lock` (so it resolves to the versions the workspace
//! was built with, which `~/.cargo/registry` therefore holds: `--offline`
//! works on a fresh clone once the workspace's dependencies have been fetched,
//! which building or testing the workspace does). It builds into a
//! target folder of its own beside this test's binary, kept between runs to stay
//! fast; cargo holds a lock on the workspace's target folder while tests run, so
//! sharing that one would deadlock.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{SystemTime, UNIX_EPOCH};

/// A program a reuser might write: only `tessera_domain` is in its Cargo.toml,
/// chrono comes through the crate's re-export.
const DOWNSTREAM_MAIN: &str = r#"
use tessera_domain::chrono::{Duration, TimeZone, Utc};
use tessera_domain::{
    effective_limit, Alphabet, Code, CodeInput, DomainError, GroupAddresses, MaxTickets,
    NewProgram, NtpClass, ObjectId, Program, ProgramId, RedemptionLimit, TenantId, TicketLength,
    ValidityWindow,
};

fn main() -> Result<(), DomainError> {
    let eight = TicketLength::try_from(8)?;
    let code = Code::generate(Alphabet::Humane, eight);
    let typed = code.expose_secret().to_lowercase();
    let read = CodeInput(&typed).normalize(Alphabet::Humane, eight);
    println!("typed back in lower case: {}", read == Some(code));

    let four = TicketLength::try_from(4)?;
    println!("10 tickets fit 4 digits: {}", Alphabet::Numeric.fits(four, MaxTickets::try_from(10)?));
    println!("11 tickets fit 4 digits: {}", Alphabet::Numeric.fits(four, MaxTickets::try_from(11)?));

    let start = Utc.with_ymd_and_hms(2030, 6, 1, 9, 0, 0).unwrap();
    let new = NewProgram {
        name: None,
        object_id: ObjectId::try_from("iq__downstream".to_owned())?,
        group_addresses: GroupAddresses::default(),
        ntp_class: NtpClass::DEFAULT,
        max_tickets: MaxTickets::try_from(10)?,
        max_redemptions: RedemptionLimit::try_from(2)?,
        window: ValidityWindow::new(start, start + Duration::hours(1))?,
        ticket_length: four,
        alphabet: Alphabet::Numeric,
        url_prefix: None,
        one_active_per_subject: false,
        allow_rollback: true,
        code_pattern: None,
        check_digit: false,
    };
    let program = Program::create(ProgramId::generate(), TenantId::generate(), new, start)?;
    let before = program.check_redeemable(start - Duration::seconds(1));
    println!("a second before the start: {}", before.map_or_else(|f| f.code(), |()| "ok"));
    let during = program.check_redeemable(start);
    println!("at the start: {}", during.map_or_else(|f| f.code(), |()| "ok"));
    let limit = effective_limit(Some(RedemptionLimit::try_from(5)?), program.max_redemptions);
    println!("a 5-use ticket of a 2-use program: {limit} uses");
    Ok(())
}
"#;

const EXPECTED_OUTPUT: &str = "\
typed back in lower case: true
10 tickets fit 4 digits: true
11 tickets fit 4 digits: false
a second before the start: program_not_started
at the start: ok
a 5-use ticket of a 2-use program: 2 uses
";

/// The service's dependencies, none of which the domain may bring in.
const FORBIDDEN: [&str; 4] = ["diesel", "actix", "r2d2", "tokio"];

/// A temporary folder, removed when dropped (also when the test fails).
struct TempDir(PathBuf);

impl TempDir {
    fn new() -> Self {
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |elapsed| elapsed.subsec_nanos());
        let path = std::env::temp_dir().join(format!(
            "tessera-domain-downstream-{}-{nanos}",
            std::process::id()
        ));
        fs::create_dir_all(path.join("src")).expect("create the temporary crate");
        Self(path)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.0);
    }
}

fn cargo(dir: &Path, args: &[&str]) -> Output {
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let output = Command::new(cargo)
        .args(args)
        .arg("--offline")
        .current_dir(dir)
        // The downstream crate has a target folder of its own (see the top).
        .env("CARGO_TARGET_DIR", downstream_target_dir())
        .output()
        .expect("cargo runs");
    assert!(
        output.status.success(),
        "cargo {args:?} failed:\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    output
}

/// `<target>/<profile>/tessera-domain-downstream`, beside this test's binary
/// (which is `<target>/<profile>/deps/downstream-<hash>`).
fn downstream_target_dir() -> PathBuf {
    let exe = std::env::current_exe().expect("the test binary's path");
    let profile_dir = exe
        .parent()
        .and_then(Path::parent)
        .expect("the test binary lives in <target>/<profile>/deps");
    profile_dir.join("tessera-domain-downstream")
}

fn write_downstream_crate(dir: &Path) {
    let domain = Path::new(env!("CARGO_MANIFEST_DIR"));
    let manifest = format!(
        "[package]\n\
         name = \"downstream\"\n\
         version = \"0.0.0\"\n\
         edition = \"2021\"\n\
         publish = false\n\
         \n\
         [dependencies]\n\
         tessera-domain = {{ path = {path:?} }}\n\
         \n\
         # Not a member of any workspace above this folder.\n\
         [workspace]\n",
        path = domain.display().to_string(),
    );
    fs::write(dir.join("Cargo.toml"), manifest).expect("write Cargo.toml");
    fs::write(dir.join("src/main.rs"), DOWNSTREAM_MAIN).expect("write main.rs");
    // The workspace's lock file, or, in a packaged copy of this crate, its own.
    let lock = domain
        .ancestors()
        .map(|folder| folder.join("Cargo.lock"))
        .find(|lock| lock.is_file())
        .expect("a Cargo.lock in or above the crate: build the workspace first");
    fs::copy(&lock, dir.join("Cargo.lock")).expect("copy the Cargo.lock");
}

#[test]
fn a_crate_depending_on_tessera_domain_alone_builds_offline_and_runs() {
    let dir = TempDir::new();
    write_downstream_crate(&dir.0);

    let run = cargo(&dir.0, &["run", "--quiet"]);
    assert_eq!(String::from_utf8_lossy(&run.stdout), EXPECTED_OUTPUT);

    let tree = cargo(
        &dir.0,
        &["tree", "--prefix", "none", "--edges", "normal,build"],
    );
    let tree = String::from_utf8_lossy(&tree.stdout);
    let crates: Vec<&str> = tree
        .lines()
        .filter_map(|line| line.split_whitespace().next())
        .collect();
    for needed in [
        "downstream",
        "tessera-domain",
        "chrono",
        "rand",
        "serde",
        "thiserror",
    ] {
        assert!(crates.contains(&needed), "{needed} missing from\n{tree}");
    }
    for name in &crates {
        assert!(
            !FORBIDDEN
                .iter()
                .any(|forbidden| name.starts_with(forbidden)),
            "{name} is in the domain's dependency tree:\n{tree}"
        );
    }
}
