//! End-to-end: the real `tessera` binary, over HTTP, against a real PostgreSQL.
//! Each test has its own database cloned from the migrated template.

mod cli;
mod hostile;
mod invariants;
mod isolation;
mod lifecycle;
mod secrets;
mod security;
