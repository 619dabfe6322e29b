//! Tessera's application layer: the use cases (inbound ports, implemented by
//! [`Tessera`]) and the outbound ports they drive (repositories, clock, hasher).
//! Depends on the domain only; adapters plug in from outside.

pub mod batch_csv;
mod error;
pub mod events;
pub mod events_service;
pub mod idempotency;
pub mod lifecycle;
pub mod links;
pub mod model;
pub mod operator;
pub mod ports;
mod service;
pub mod slow_lane;
pub mod throttle;
pub mod usecases;
pub mod webhooks;

pub use error::{AppError, AppResult};
pub use operator::OperatorUseCases;
pub use service::{DeliverySettings, WebhookPorts, WebhookService};
pub use service::{Limits, Tessera, TesseraPorts};
