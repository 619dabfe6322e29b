//! Tessera's domain: programs, tickets, standalone tickets and API keys, with the
//! rules that govern them and the value objects that make invalid states
//! unrepresentable. Pure: no I/O, no database, no web framework.
//!
#![doc = include_str!("../README.md")]
#![warn(missing_docs)]

mod api_key;
mod check;
mod code;
mod email;
mod error;
mod event;
mod hold;
mod id;
mod pattern;
mod program;
mod redacted;
mod redemption;
mod routing;
mod secret;
mod standalone;
mod ticket;
mod values;
mod webhook;

pub use api_key::{ApiKeySecret, Permission, Role};
pub use check::{check_character, has_valid_check};
pub use code::{Alphabet, Code, CodeInput, TicketLength};
pub use email::Email;
pub use error::DomainError;
pub use event::EventType;
pub use hold::{HoldState, HoldTtl, RollbackReason};
pub use id::{
    ApiKeyId, DeliveryId, EventId, LinkToken, ProgramId, StandaloneTicketId, TenantId, TicketId,
    WebhookId,
};
pub use id::{HoldId, RedemptionId};
pub use pattern::CodePattern;
pub use program::{NewProgram, Program, ProgramChanges, ProgramState};
pub use redacted::{
    ExposeSecret, OperatorToken, PresentedApiKey, PresentedCode, PresentedTicket, SignedCode,
    TicketLink, REDACTED,
};
pub use redemption::{
    effective_limit, RedeemerId, RedemptionFailure, EMAIL_MISMATCHES_BEFORE_LOCK,
};
pub use standalone::{StandaloneTicket, StandaloneToken, Ttl, Uses};
pub use ticket::{NewTicketSpec, Ticket, TicketState};
pub use values::{
    BatchSize, GroupAddresses, Label, MaxTickets, NtpClass, ObjectId, PageRequest, Payload,
    RedemptionLimit, Subject, TenantName, UrlPrefix, ValidityWindow,
};
pub use webhook::{
    is_forbidden_address, retry_delay, DeliveryState, Triggers, WebhookSecret, WebhookUrl,
    RETRY_CAP, RETRY_HORIZON,
};

/// The chrono crate whose `DateTime<Utc>` this crate's API takes and returns,
/// re-exported so a reuser needs no chrono dependency of a matching version.
pub use chrono;
