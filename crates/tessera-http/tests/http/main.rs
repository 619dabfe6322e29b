//! Handler tests: the real routes against mocked use cases.

#![allow(clippy::unwrap_used)] // tests may unwrap

mod access;
mod errors;
mod event_types;
mod lifecycle;
mod logging;
mod ops;
mod programs;
mod redeem;
mod standalone;
mod support;
mod tickets;
