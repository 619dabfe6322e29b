//! The rules of redemption that are not a property of one entity: why an attempt
//! fails, the effective limit, and when wrong emails lock a ticket.
//!
//! The same rules are predicates of the redemption statement in the PostgreSQL
//! adapter (`tessera-postgres`, `stores/redemption.rs`); `Ticket::check_redeemable`
//! is the Rust statement of them, used to explain a refusal, and a table-driven
//! test in `tessera-postgres` pins the two together.

use crate::RedemptionLimit;

/// Consecutive wrong emails after which a ticket locks (until an admin unlocks it).
pub const EMAIL_MISMATCHES_BEFORE_LOCK: u32 = 5;

/// Why a redemption failed. Public callers only ever learn `invalid_code`; a caller
/// with a key of the tenant learns the reason.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RedemptionFailure {
    /// No ticket of the program has the code (the domain never says this
    /// itself: it is the store's answer to a code it does not hold).
    TicketNotFound,
    /// The ticket has been redeemed as many times as its effective limit allows.
    TicketExhausted,
    /// The ticket was revoked by its issuer.
    TicketRevoked,
    /// The ticket was disabled by an admin.
    TicketDisabled,
    /// The ticket locked after `EMAIL_MISMATCHES_BEFORE_LOCK` wrong emails.
    TicketLocked,
    /// The ticket is bound to an email and another one (or none) was presented.
    EmailMismatch,
    /// The program is suspended.
    ProgramSuspended,
    /// The program's validity window has not opened yet.
    ProgramNotStarted,
    /// The program's validity window has closed.
    ProgramEnded,
    /// The ticket has a per-redeemer limit and no `redeemerId` was presented.
    RedeemerRequired,
    /// The presented redeemer has used its share of the ticket.
    RedeemerLimitReached,
}

impl RedemptionFailure {
    /// The API's error code for this reason.
    pub fn code(self) -> &'static str {
        match self {
            RedemptionFailure::TicketNotFound => "ticket_not_found",
            RedemptionFailure::TicketExhausted => "ticket_exhausted",
            RedemptionFailure::TicketRevoked => "ticket_revoked",
            RedemptionFailure::TicketDisabled => "ticket_disabled",
            RedemptionFailure::TicketLocked => "ticket_locked",
            RedemptionFailure::EmailMismatch => "email_mismatch",
            RedemptionFailure::ProgramSuspended => "program_suspended",
            RedemptionFailure::ProgramNotStarted => "program_not_started",
            RedemptionFailure::ProgramEnded => "program_ended",
            RedemptionFailure::RedeemerRequired => "redeemer_required",
            RedemptionFailure::RedeemerLimitReached => "redeemer_limit_reached",
        }
    }

    /// The reason whose `code` is `raw`, if any.
    pub fn parse(raw: &str) -> Option<Self> {
        [
            RedemptionFailure::TicketNotFound,
            RedemptionFailure::TicketExhausted,
            RedemptionFailure::TicketRevoked,
            RedemptionFailure::TicketDisabled,
            RedemptionFailure::TicketLocked,
            RedemptionFailure::EmailMismatch,
            RedemptionFailure::ProgramSuspended,
            RedemptionFailure::ProgramNotStarted,
            RedemptionFailure::ProgramEnded,
            RedemptionFailure::RedeemerRequired,
            RedemptionFailure::RedeemerLimitReached,
        ]
        .into_iter()
        .find(|failure| failure.code() == raw)
    }

    /// A sentence for people explaining the reason.
    pub fn message(self) -> &'static str {
        match self {
            RedemptionFailure::TicketNotFound => "No ticket of this program has that code.",
            RedemptionFailure::TicketExhausted => "The ticket has no redemptions left.",
            RedemptionFailure::TicketRevoked => "The ticket was revoked.",
            RedemptionFailure::TicketDisabled => "The ticket is disabled.",
            RedemptionFailure::TicketLocked => "The ticket is locked after repeated wrong emails.",
            RedemptionFailure::EmailMismatch => "The email does not match the ticket's.",
            RedemptionFailure::ProgramSuspended => "The program is suspended.",
            RedemptionFailure::ProgramNotStarted => "The program has not started yet.",
            RedemptionFailure::ProgramEnded => "The program has ended.",
            RedemptionFailure::RedeemerRequired => "The ticket needs a redeemerId.",
            RedemptionFailure::RedeemerLimitReached => {
                "This redeemer has used its share of the ticket."
            }
        }
    }
}

/// Who redeems (`redeemerId`): 1..256 characters, counted against a ticket's
/// `per_redeemer_limit`.
///
/// ```
/// use tessera_domain::RedeemerId;
///
/// assert_eq!(RedeemerId::try_from("user-42".to_owned())?.as_str(), "user-42");
/// assert_eq!(RedeemerId::try_from(String::new()).unwrap_err().field, "redeemerId");
/// assert!(RedeemerId::try_from("x".repeat(257)).is_err());
/// # Ok::<(), tessera_domain::DomainError>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct RedeemerId(String);

impl RedeemerId {
    /// The id as presented.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for RedeemerId {
    type Error = crate::DomainError;

    fn try_from(raw: String) -> Result<Self, Self::Error> {
        if (1..=256).contains(&raw.chars().count()) {
            Ok(Self(raw))
        } else {
            Err(crate::DomainError::new(
                "redeemerId",
                "must be 1 to 256 characters",
            ))
        }
    }
}

/// A ticket may be redeemed min(its own limit, its program's) times: lowering the
/// program's limit applies to tickets already issued.
/// A ticket issued without a limit of its own follows its program's.
///
/// ```
/// use tessera_domain::{effective_limit, RedemptionLimit};
///
/// let program = RedemptionLimit::try_from(3)?;
/// assert_eq!(effective_limit(Some(RedemptionLimit::try_from(10)?), program), 3);
/// assert_eq!(effective_limit(Some(RedemptionLimit::try_from(2)?), program), 2);
/// assert_eq!(effective_limit(None, program), 3);
/// # Ok::<(), tessera_domain::DomainError>(())
/// ```
pub fn effective_limit(ticket: Option<RedemptionLimit>, program: RedemptionLimit) -> u32 {
    ticket.map_or(program.get(), |own| own.get().min(program.get()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn failure_codes_round_trip() {
        for failure in [
            RedemptionFailure::TicketLocked,
            RedemptionFailure::ProgramEnded,
            RedemptionFailure::RedeemerRequired,
            RedemptionFailure::RedeemerLimitReached,
        ] {
            assert_eq!(RedemptionFailure::parse(failure.code()), Some(failure));
        }
        assert_eq!(RedemptionFailure::parse("nope"), None);
    }
}
