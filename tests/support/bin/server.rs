//! The `tessera` program, built as a binary of this package so that cargo builds
//! it before the end-to-end tests run (a plain `cargo test` is enough) and tells
//! them where it is (`CARGO_BIN_EXE_tessera-e2e-server`).

fn main() -> std::process::ExitCode {
    tessera_server::main_entry()
}
