//! End-to-end: the real `tessera` program, over HTTP, against a real PostgreSQL.
//! Each test has its own database cloned from the migrated template.

mod abuse;
mod backup;
mod browser;
mod cli;
mod codes;
mod events;
mod hostile;
mod idempotency;
mod invariants;
mod isolation;
mod key_cache;
mod lifecycle;
mod overload;
mod pages;
mod redemption_lifecycle;
mod replicas;
mod rotation;
mod secrets;
mod security;
mod webhooks;

/// The harness runs the binary cargo built for this suite, whichever way it finds
/// it.
#[test]
fn the_harness_runs_the_binary_cargo_built() {
    let built = std::fs::canonicalize(env!("CARGO_BIN_EXE_tessera-e2e-server"))
        .expect("cargo built the server before the tests");
    for found in [tessera_e2e::binary(), tessera_e2e::binary_beside_tests()] {
        assert_eq!(
            std::fs::canonicalize(&found).ok(),
            Some(built.clone()),
            "{}",
            found.display()
        );
    }
}
