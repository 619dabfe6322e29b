//! Request and response bodies (camelCase), and their conversion to and from the
//! domain's types. Requests become domain values through `TryFrom` at the edge.

pub mod access;
pub mod common;
pub mod events;
pub mod lifecycle;
pub mod programs;
pub mod redeem;
pub mod standalone;
pub mod tickets;
pub mod webhooks;
