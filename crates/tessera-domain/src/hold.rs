//! Values of the redemption lifecycle: how long a hold lives, the states a hold
//! goes through, and why a redemption was rolled back.

use chrono::{DateTime, Duration, Utc};

use crate::DomainError;

/// Seconds a hold reserves its use: 1..=3600, 300 by default.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HoldTtl(u32);

impl HoldTtl {
    /// Five minutes: long enough for a card payment, short enough that an
    /// abandoned checkout gives the use back soon.
    pub const DEFAULT: HoldTtl = HoldTtl(300);
    /// The longest hold: an hour.
    pub const MAX_SECONDS: u32 = 3600;

    /// When a hold made at `now` stops reserving its use.
    pub fn expires_at(self, now: DateTime<Utc>) -> DateTime<Utc> {
        now + Duration::seconds(i64::from(self.0))
    }

    /// The lifetime in seconds.
    pub fn seconds(self) -> u32 {
        self.0
    }
}

impl TryFrom<i64> for HoldTtl {
    type Error = DomainError;

    fn try_from(value: i64) -> Result<Self, Self::Error> {
        u32::try_from(value)
            .ok()
            .filter(|seconds| (1..=Self::MAX_SECONDS).contains(seconds))
            .map(Self)
            .ok_or_else(|| DomainError::new("ttl", "must be 1..3600 seconds"))
    }
}

/// Where a hold is in its life. `Held` past its expiry is `Expired`, whether or
/// not a store has written that down yet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HoldState {
    /// Reserving its use.
    Held,
    /// Its use became a redemption.
    Confirmed,
    /// Its use was given back by a release.
    Released,
    /// Its time ran out; its use is free again.
    Expired,
}

impl HoldState {
    /// The API's name of the state.
    pub fn as_str(self) -> &'static str {
        match self {
            HoldState::Held => "held",
            HoldState::Confirmed => "confirmed",
            HoldState::Released => "released",
            HoldState::Expired => "expired",
        }
    }

    /// The state named `raw`, if any.
    pub fn parse(raw: &str) -> Option<Self> {
        [
            HoldState::Held,
            HoldState::Confirmed,
            HoldState::Released,
            HoldState::Expired,
        ]
        .into_iter()
        .find(|state| state.as_str() == raw)
    }

    /// The state as of `now`: a stored `held` whose time is up is expired.
    pub fn at(self, expires_at: DateTime<Utc>, now: DateTime<Utc>) -> Self {
        match self {
            HoldState::Held if expires_at <= now => HoldState::Expired,
            other => other,
        }
    }
}

/// Why a redemption was rolled back: free text, at most 200 characters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RollbackReason(String);

impl RollbackReason {
    /// The longest reason accepted.
    pub const MAX_CHARS: usize = 200;

    /// The reason as given.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for RollbackReason {
    type Error = DomainError;

    fn try_from(value: String) -> Result<Self, Self::Error> {
        if value.chars().count() <= Self::MAX_CHARS {
            Ok(Self(value))
        } else {
            Err(DomainError::new("reason", "must be at most 200 characters"))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hold_ttls_are_one_second_to_an_hour() {
        assert!(HoldTtl::try_from(0).is_err());
        assert!(HoldTtl::try_from(3601).is_err());
        assert!(HoldTtl::try_from(-5).is_err());
        assert_eq!(HoldTtl::try_from(3600).unwrap().seconds(), 3600);
        let now = Utc::now();
        assert_eq!(
            HoldTtl::try_from(1).unwrap().expires_at(now),
            now + Duration::seconds(1)
        );
    }

    #[test]
    fn a_held_hold_past_its_expiry_reads_as_expired() {
        let now = Utc::now();
        assert_eq!(HoldState::Held.at(now, now), HoldState::Expired);
        assert_eq!(
            HoldState::Held.at(now + Duration::seconds(1), now),
            HoldState::Held
        );
        assert_eq!(HoldState::Confirmed.at(now, now), HoldState::Confirmed);
        for state in ["held", "confirmed", "released", "expired"] {
            assert_eq!(HoldState::parse(state).unwrap().as_str(), state);
        }
        assert_eq!(HoldState::parse("gone"), None);
    }

    #[test]
    fn reasons_are_capped_at_200_characters() {
        assert!(RollbackReason::try_from("é".repeat(200)).is_ok());
        assert_eq!(
            RollbackReason::try_from("x".repeat(201)).unwrap_err().field,
            "reason"
        );
    }
}
