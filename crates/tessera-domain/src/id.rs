use std::fmt;

use crate::secret::random_string;
use crate::DomainError;

/// Bitcoin's base58: no 0/O/I/l, so ids survive being read aloud or retyped.
const BASE58: &[u8] = b"123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz";
/// 16 base58 characters carry log2(58^16) ≈ 93.7 random bits (spec: ≥ 64).
const ID_RANDOM_CHARS: usize = 16;

macro_rules! public_id {
    ($(#[$doc:meta])* $name:ident, $prefix:literal, $field:literal) => {
        $(#[$doc])*
        #[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub struct $name(String);

        impl $name {
            pub const PREFIX: &'static str = $prefix;

            /// A fresh, unguessable id.
            pub fn generate() -> Self {
                Self(format!("{}{}", $prefix, random_string(BASE58, ID_RANDOM_CHARS)))
            }

            /// Accepts exactly the shape `generate` produces; anything else is an
            /// id that cannot exist, so callers can answer 404 without a lookup.
            pub fn parse(raw: &str) -> Result<Self, DomainError> {
                let well_formed = raw
                    .strip_prefix($prefix)
                    .is_some_and(|rest| rest.len() == ID_RANDOM_CHARS && rest.bytes().all(|b| BASE58.contains(&b)));
                if well_formed {
                    Ok(Self(raw.to_owned()))
                } else {
                    Err(DomainError::new($field, concat!("must be an id starting with ", $prefix)))
                }
            }

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

/// The opaque token of a URL ticket's link. A secret: stored only as a keyed hash.
#[derive(Clone, PartialEq, Eq)]
pub struct LinkToken(String);

/// 32 base58 characters ≈ 187 random bits: links are long-lived bearer secrets.
const LINK_TOKEN_CHARS: usize = 32;

impl LinkToken {
    pub fn generate() -> Self {
        Self(random_string(BASE58, LINK_TOKEN_CHARS))
    }

    pub fn parse(raw: &str) -> Result<Self, DomainError> {
        if raw.len() == LINK_TOKEN_CHARS && raw.bytes().all(|b| BASE58.contains(&b)) {
            Ok(Self(raw.to_owned()))
        } else {
            Err(DomainError::new("linkToken", "is not a link token"))
        }
    }

    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for LinkToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("LinkToken(<redacted>)")
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
    fn two_generated_ids_differ() {
        assert_ne!(TenantId::generate(), TenantId::generate());
    }

    #[test]
    fn link_tokens_are_redacted_in_debug_output() {
        let token = LinkToken::generate();
        assert!(!format!("{token:?}").contains(token.expose()));
    }
}
