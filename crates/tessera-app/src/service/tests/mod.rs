//! Unit tests of every use case of [`super::Tessera`], against mocks of its ports.

mod access;
mod batch;
mod health;
mod lock_state;
mod operator;
mod programs;
mod redeem;
mod standalone;
mod throttling;
mod tickets;
