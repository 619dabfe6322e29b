use chrono::{DateTime, Duration, Utc};

use crate::secret::random_string;
use crate::{DomainError, Label, Payload, StandaloneTicketId, TenantId};

const BASE64URL: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
/// 32 base64url characters = 192 random bits (Authen promises ≥ 160).
const TOKEN_CHARS: usize = 32;

crate::redacted::secret_string! {
    /// The opaque secret of a standalone ticket. Stored only as a keyed hash.
    pub struct StandaloneToken;
}

impl StandaloneToken {
    /// A fresh token from the CSPRNG.
    pub fn generate() -> Self {
        Self(random_string(BASE64URL, TOKEN_CHARS))
    }

    /// `None` when `raw` cannot be a token this service issued.
    pub fn parse(raw: &str) -> Option<Self> {
        (raw.len() == TOKEN_CHARS && raw.bytes().all(|b| BASE64URL.contains(&b)))
            .then(|| Self(raw.to_owned()))
    }
}

/// Seconds a standalone ticket lives; 0 means it never expires.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ttl(u32);

impl Ttl {
    /// One minute.
    pub const DEFAULT: Ttl = Ttl(60);

    /// When a ticket created at `now` expires, or `None` if it never does.
    pub fn expires_at(self, now: DateTime<Utc>) -> Option<DateTime<Utc>> {
        (self.0 > 0).then(|| now + Duration::seconds(i64::from(self.0)))
    }
}

impl TryFrom<i64> for Ttl {
    type Error = DomainError;

    fn try_from(value: i64) -> Result<Self, Self::Error> {
        u32::try_from(value)
            .map(Self)
            .map_err(|_| DomainError::new("ttl", "must be 0 (never expires) or more seconds"))
    }
}

/// How many times a standalone ticket may be used; 0 means unlimited.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Uses(u32);

impl Uses {
    /// Once.
    pub const DEFAULT: Uses = Uses(1);

    /// The number of uses allowed, or `None` when unlimited.
    pub fn limit(self) -> Option<u32> {
        (self.0 > 0).then_some(self.0)
    }
}

impl TryFrom<i64> for Uses {
    type Error = DomainError;

    fn try_from(value: i64) -> Result<Self, Self::Error> {
        u32::try_from(value)
            .map(Self)
            .map_err(|_| DomainError::new("uses", "must be 0 (unlimited) or more"))
    }
}

/// An Authen-compatible ticket: an opaque token carrying a payload, usable a
/// limited number of times until it expires. Also Tozny's registration tokens
/// (`name`, `permissions`, `totalUsesAllowed`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StandaloneTicket {
    /// The ticket's public id (not its token).
    pub id: StandaloneTicketId,
    /// The tenant that owns the ticket.
    pub tenant_id: TenantId,
    /// A free label.
    pub name: Option<Label>,
    /// A JSON object, as serialized text.
    pub permissions: Option<Payload>,
    /// Arbitrary JSON returned on each use.
    pub payload: Option<Payload>,
    /// How many uses it was created with.
    pub total_uses: Uses,
    /// `None` when unlimited.
    pub uses_left: Option<u32>,
    /// When it stops working; `None` when it never expires.
    pub expires_at: Option<DateTime<Utc>>,
    /// When it was created.
    pub created_at: DateTime<Utc>,
}

impl StandaloneTicket {
    /// Whether it can still be used at `now`: not expired and not used up.
    pub fn is_live(&self, now: DateTime<Utc>) -> bool {
        self.expires_at.is_none_or(|at| now < at) && self.uses_left != Some(0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_carry_192_bits_and_parse_back() {
        let token = StandaloneToken::generate();
        assert_eq!(token.expose_secret().len(), 32);
        assert_eq!(
            StandaloneToken::parse(token.expose_secret()),
            Some(token.clone())
        );
        assert!(!format!("{token:?}").contains(token.expose_secret()));
        assert_eq!(StandaloneToken::parse("short"), None);
        assert_eq!(StandaloneToken::parse(&"/".repeat(32)), None);
    }

    #[test]
    fn zero_ttl_never_expires_and_zero_uses_is_unlimited() {
        let now = Utc::now();
        assert_eq!(Ttl::try_from(0).unwrap().expires_at(now), None);
        assert_eq!(
            Ttl::DEFAULT.expires_at(now),
            Some(now + Duration::seconds(60))
        );
        assert!(Ttl::try_from(-1).is_err());
        assert_eq!(Uses::try_from(0).unwrap().limit(), None);
        assert_eq!(Uses::DEFAULT.limit(), Some(1));
        assert!(Uses::try_from(-3).is_err());
    }

    #[test]
    fn a_ticket_is_live_until_it_expires_or_is_used_up() {
        let now = Utc::now();
        let ticket = StandaloneTicket {
            id: StandaloneTicketId::generate(),
            tenant_id: TenantId::generate(),
            name: None,
            permissions: None,
            payload: None,
            total_uses: Uses::DEFAULT,
            uses_left: Some(1),
            expires_at: Some(now + Duration::seconds(5)),
            created_at: now,
        };
        assert!(ticket.is_live(now));
        assert!(!ticket.is_live(now + Duration::seconds(5)));
        assert!(!StandaloneTicket {
            uses_left: Some(0),
            ..ticket
        }
        .is_live(now));
    }
}
