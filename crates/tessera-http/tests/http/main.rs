//! Handler tests: the real routes against mocked use cases.

#![allow(clippy::unwrap_used)] // tests may unwrap

mod access;
mod errors;
mod event_types;
mod events;
mod lifecycle;
mod logging;
mod ops;
mod pages;
mod programs;
mod queued;
mod redeem;
mod standalone;
mod support;
mod tickets;
mod webhooks;
