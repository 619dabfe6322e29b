//! `tessera`: see [`tessera_server::main_entry`].

fn main() -> std::process::ExitCode {
    tessera_server::main_entry()
}
