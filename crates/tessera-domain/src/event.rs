use std::fmt;
use std::str::FromStr;

use crate::DomainError;

/// Declares the event vocabulary once: the variant, its wire name, and the list
/// of all of them, so the three can never drift apart.
macro_rules! event_types {
    ($($(#[$meta:meta])* $variant:ident => $name:literal,)+) => {
        /// What happened, as recorded in the event history, sent to webhooks and
        /// counted by the stats. The names are the API's (docs/api.md, *Events*).
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub enum EventType {
            $($(#[$meta])* $variant,)+
        }

        impl EventType {
            /// Every event type, in the order the API lists them.
            pub const ALL: &'static [EventType] = &[$(EventType::$variant,)+];

            /// The wire name, e.g. `ticket.redeemed`.
            pub const fn as_str(self) -> &'static str {
                match self {
                    $(EventType::$variant => $name,)+
                }
            }
        }
    };
}

event_types! {
    /// A program was created.
    ProgramCreated => "program.created",
    /// A program's settings changed (including reactivation by a new `endTime`).
    ProgramUpdated => "program.updated",
    /// A program was suspended.
    ProgramSuspended => "program.suspended",
    /// A program and its tickets were deleted.
    ProgramDeleted => "program.deleted",
    /// One ticket was issued.
    TicketIssued => "ticket.issued",
    /// A batch of tickets was issued (one event per batch, with its count).
    TicketBatchIssued => "ticket.batch_issued",
    /// A CSV of chosen codes was imported (one event per import, with its count).
    TicketBatchImported => "ticket.batch_imported",
    /// A ticket's state or own limit was changed by an admin.
    TicketUpdated => "ticket.updated",
    /// One use of a ticket was redeemed.
    TicketRedeemed => "ticket.redeemed",
    /// A redemption failed, with its reason.
    TicketRedemptionFailed => "ticket.redemption_failed",
    /// A ticket's last use was redeemed.
    TicketExhausted => "ticket.exhausted",
    /// A ticket was revoked (deleted by its issuer, or replaced).
    TicketRevoked => "ticket.revoked",
    /// A ticket was locked after repeated wrong emails.
    TicketLocked => "ticket.locked",
    /// A use of a ticket was held.
    TicketHeld => "ticket.held",
    /// A hold was released and its use freed.
    TicketHoldReleased => "ticket.hold_released",
    /// A redemption was rolled back and its use given back.
    TicketRedemptionRolledBack => "ticket.redemption_rolled_back",
}

impl fmt::Display for EventType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for EventType {
    type Err = DomainError;

    fn from_str(raw: &str) -> Result<Self, Self::Err> {
        EventType::ALL
            .iter()
            .copied()
            .find(|kind| kind.as_str() == raw)
            .ok_or_else(|| DomainError::new("type", "is not an event type"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_and_are_distinct() {
        let mut seen = std::collections::HashSet::new();
        for kind in EventType::ALL {
            assert_eq!(kind.as_str().parse::<EventType>(), Ok(*kind));
            assert!(seen.insert(kind.as_str()), "{kind} twice");
        }
        assert!("ticket.state_changed".parse::<EventType>().is_err());
    }
}
