use std::fmt;

use crate::redacted::secret_string;
use crate::secret::{random_string, BASE58};
use crate::DomainError;

/// Ids start with the creation time in milliseconds, as 8 base58 digits (good
/// until the year 6000), so new rows land at the right edge of every B-tree
/// index instead of all over it: bulk issuance writes ~2× faster that way.
const ID_TIME_CHARS: usize = 8;
/// 12 base58 characters carry log2(58^12) ≈ 70.3 random bits (docs/api.md: ≈ 70, at least 64).
const ID_RANDOM_CHARS: usize = 12;
const ID_CHARS: usize = ID_TIME_CHARS + ID_RANDOM_CHARS;

/// The current time in milliseconds as fixed-width base58, most significant first.
fn time_prefix() -> String {
    let millis = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |elapsed| elapsed.as_millis());
    let mut digits = [BASE58[0]; ID_TIME_CHARS];
    let mut rest = millis;
    for digit in digits.iter_mut().rev() {
        *digit = BASE58[(rest % 58) as usize];
        rest /= 58;
    }
    digits.iter().map(|&b| char::from(b)).collect()
}

macro_rules! public_id {
    ($(#[$doc:meta])* $name:ident, $prefix:literal, $field:literal) => {
        $(#[$doc])*
        #[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub struct $name(String);

        impl $name {
            /// What every id of this kind starts with, so that ids of different
            /// kinds can never be mistaken for one another.
            pub const PREFIX: &'static str = $prefix;

            /// A fresh, unguessable id.
            pub fn generate() -> Self {
                Self(format!("{}{}{}", $prefix, time_prefix(), random_string(BASE58, ID_RANDOM_CHARS)))
            }

            /// Accepts exactly the shape `generate` produces; anything else is an
            /// id that cannot exist, so callers can answer 404 without a lookup.
            pub fn parse(raw: &str) -> Result<Self, DomainError> {
                let well_formed = raw
                    .strip_prefix($prefix)
                    .is_some_and(|rest| rest.len() == ID_CHARS && rest.bytes().all(|b| BASE58.contains(&b)));
                if well_formed {
                    Ok(Self(raw.to_owned()))
                } else {
                    Err(DomainError::new($field, concat!("must be an id starting with ", $prefix)))
                }
            }

            /// The id as text, prefix included.
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }
    };
}

public_id!(
    /// A tenant: the unit of isolation.
    TenantId, "ten_", "tenantId"
);
public_id!(
    /// A program (an Eluvio NTP instance).
    ///
    /// Every id type works alike: a prefix naming its kind, 8 base58 characters
    /// of creation time (so ids sort by age) and 12 random ones. Ids are public,
    /// not secrets, so `Debug` shows them.
    ///
    /// ```
    /// use tessera_domain::{ProgramId, TicketId};
    ///
    /// let id = ProgramId::generate();
    /// assert!(id.as_str().starts_with(ProgramId::PREFIX));
    /// assert_eq!(id.as_str().len(), "prg_".len() + 20);
    /// assert_eq!(ProgramId::parse(id.as_str()), Ok(id.clone()));
    /// assert_eq!(id.to_string(), id.as_str());
    /// // An id of another kind, or of another shape, is refused without a lookup.
    /// assert!(ProgramId::parse(TicketId::generate().as_str()).is_err());
    /// assert_eq!(ProgramId::parse("prg_nope").unwrap_err().field, "programId");
    /// ```
    ProgramId, "prg_", "programId"
);
public_id!(
    /// A ticket of a program.
    TicketId, "tkt_", "ticketId"
);
public_id!(
    /// An API key's public id (not the secret).
    ApiKeyId, "key_", "id"
);
public_id!(
    /// A standalone (Authen-compatible) ticket's public id (not the secret).
    StandaloneTicketId, "stk_", "id"
);
public_id!(
    /// An event in the append-only history.
    EventId, "evt_", "eventId"
);
public_id!(
    /// A webhook: a URL that is sent the events it subscribes to.
    WebhookId, "whk_", "id"
);
public_id!(
    /// One delivery of one event to one webhook (generated in SQL by the outbox
    /// trigger, in the same shape).
    DeliveryId, "dlv_", "deliveryId"
);
public_id!(
    /// A hold: one use of a ticket reserved until it is confirmed, released or expires.
    HoldId, "hld_", "holdId"
);
public_id!(
    /// One successful redemption, which may be rolled back once.
    RedemptionId, "rdm_", "redemptionId"
);

secret_string! {
    /// The opaque token of a URL ticket's link: a bearer secret, stored only hashed.
    pub struct LinkToken;
}

impl LinkToken {
    /// Wraps a token `generate` or `parse` (crate::routing) has checked.
    pub(crate) fn from_routed(raw: String) -> Self {
        Self(raw)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_ids_parse_back_and_carry_their_prefix() {
        let id = ProgramId::generate();
        assert!(id.as_str().starts_with("prg_"));
        assert_eq!(ProgramId::parse(id.as_str()), Ok(id));
    }

    #[test]
    fn ids_of_another_type_or_shape_are_refused() {
        let ticket = TicketId::generate();
        assert!(ProgramId::parse(ticket.as_str()).is_err());
        assert!(ProgramId::parse("prg_short").is_err());
        assert!(
            ProgramId::parse("prg_0000000000000000").is_err(),
            "0 is not base58"
        );
        assert!(ProgramId::parse("").is_err());
    }

    #[test]
    fn ids_sort_by_creation_time() {
        let first = TicketId::generate();
        std::thread::sleep(std::time::Duration::from_millis(2));
        let second = TicketId::generate();
        assert!(
            first.as_str()[..12] < second.as_str()[..12],
            "{first} < {second}"
        );
    }

    #[test]
    fn two_generated_ids_differ() {
        assert_ne!(TenantId::generate(), TenantId::generate());
    }

    #[test]
    fn link_tokens_are_redacted_in_debug_output() {
        let token = LinkToken::generate(&crate::TenantId::generate());
        assert!(!format!("{token:?}").contains(token.expose_secret()));
    }
}
