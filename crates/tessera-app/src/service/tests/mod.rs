//! Unit tests of every use case of [`super::Tessera`], against mocks of its ports.

mod access;
mod batch;
mod batch_writers;
mod codes;
mod health;
mod lifecycle;
mod links;
mod lock_state;
mod operator;
mod programs;
mod queued;
mod queued_keyed;
mod redeem;
mod replace;
mod standalone;
mod throttling;
mod tickets;
mod webhooks;
