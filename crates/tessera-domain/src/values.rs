//! Small value objects: each can only hold a value that satisfies its rule.

use chrono::{DateTime, Utc};

use crate::DomainError;

fn bounded_text(
    field: &'static str,
    raw: String,
    max_chars: usize,
    allow_empty: bool,
) -> Result<String, DomainError> {
    let chars = raw.chars().count();
    if !allow_empty && raw.trim().is_empty() {
        Err(DomainError::new(field, "must not be empty"))
    } else if chars > max_chars {
        Err(DomainError::new(
            field,
            format!("must be at most {max_chars} characters"),
        ))
    } else if raw.chars().any(char::is_control) {
        Err(DomainError::new(
            field,
            "must not contain control characters",
        ))
    } else {
        Ok(raw)
    }
}

macro_rules! text_value {
    ($(#[$doc:meta])* $name:ident, $field:literal, $max:expr) => {
        $(#[$doc])*
        #[derive(Debug, Clone, PartialEq, Eq)]
        pub struct $name(String);

        impl $name {
            /// The text, as given.
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl TryFrom<String> for $name {
            type Error = DomainError;

            fn try_from(raw: String) -> Result<Self, Self::Error> {
                bounded_text($field, raw, $max, false).map(Self)
            }
        }
    };
}

text_value!(
    /// The target a program's tickets authorize (Eluvio's `objectId`): 1..256 chars.
    ObjectId, "objectId", 256
);
text_value!(
    /// A free label (of a program, an API key, a standalone ticket): 1..200 chars.
    Label, "name", 200
);
text_value!(
    /// A tenant's display name: 1..200 chars.
    TenantName, "name", 200
);
text_value!(
    /// The user a URL ticket belongs to: 1..256 chars.
    Subject, "subject", 256
);

/// Groups whose permissions a program's tickets inherit: at most 64, each 1..256 chars.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct GroupAddresses(Vec<String>);

impl GroupAddresses {
    /// The most groups a program may name.
    pub const MAX: usize = 64;

    /// The groups, in the order given.
    pub fn as_slice(&self) -> &[String] {
        &self.0
    }
}

impl TryFrom<Vec<String>> for GroupAddresses {
    type Error = DomainError;

    fn try_from(raw: Vec<String>) -> Result<Self, Self::Error> {
        if raw.len() > Self::MAX {
            return Err(DomainError::new(
                "groupAddresses",
                format!("must have at most {} entries", Self::MAX),
            ));
        }
        raw.into_iter()
            .map(|group| bounded_text("groupAddresses", group, 256, false))
            .collect::<Result<_, _>>()
            .map(Self)
    }
}

macro_rules! ranged_int {
    ($(#[$doc:meta])* $name:ident($inner:ty), $field:literal, $min:expr, $max:expr, $rule:literal) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
        pub struct $name($inner);

        impl $name {
            /// The number.
            pub fn get(self) -> $inner {
                self.0
            }
        }

        impl TryFrom<i64> for $name {
            type Error = DomainError;

            fn try_from(value: i64) -> Result<Self, Self::Error> {
                if ($min..=$max).contains(&value) {
                    Ok(Self(value as $inner))
                } else {
                    Err(DomainError::new($field, $rule))
                }
            }
        }
    };
}

ranged_int!(
    /// Eluvio's NTP class: 1..=9.
    NtpClass(u8), "ntpClass", 1, 9, "must be between 1 and 9"
);
ranged_int!(
    /// How many times one ticket may be redeemed: ≥ 1.
    RedemptionLimit(u32), "maxRedemptions", 1, i64::from(u32::MAX), "must be at least 1"
);
ranged_int!(
    /// How many tickets a program may issue; 0 means unlimited.
    MaxTickets(u32), "maxTickets", 0, i64::from(u32::MAX), "must be 0 (unlimited) or more"
);

ranged_int!(
    /// How many tickets one batch issues: 1..=1,000,000.
    BatchSize(u32), "count", 1, 1_000_000, "must be between 1 and 1000000"
);

impl NtpClass {
    /// Class 4, Eluvio's default.
    pub const DEFAULT: NtpClass = NtpClass(4);
}

impl RedemptionLimit {
    /// 100 redemptions, for a program that does not choose.
    pub const DEFAULT: RedemptionLimit = RedemptionLimit(100);
}

impl MaxTickets {
    /// No cap (0).
    pub const UNLIMITED: MaxTickets = MaxTickets(0);

    /// The cap, or `None` when the program may issue without limit.
    pub fn limit(self) -> Option<u32> {
        (self.0 > 0).then_some(self.0)
    }
}

/// When a program's tickets are redeemable: `start <= now < end`, and `start < end`.
///
/// ```
/// use tessera_domain::chrono::{Duration, TimeZone, Utc};
/// use tessera_domain::ValidityWindow;
///
/// let start = Utc.with_ymd_and_hms(2030, 6, 1, 9, 0, 0).unwrap();
/// let window = ValidityWindow::new(start, start + Duration::hours(8))?;
/// assert_eq!(window.end() - window.start(), Duration::hours(8));
/// // An empty or reversed window is refused, naming the field to fix.
/// assert_eq!(ValidityWindow::new(start, start).unwrap_err().field, "endTime");
/// # Ok::<(), tessera_domain::DomainError>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ValidityWindow {
    start: DateTime<Utc>,
    end: DateTime<Utc>,
}

/// The earliest and latest years a stored time may have: RFC 3339 needs four
/// digits, and every year in between is within what PostgreSQL can store.
const YEARS: std::ops::RangeInclusive<i32> = 1..=9999;

/// `time` as it will be stored: at microsecond precision (PostgreSQL's), so that
/// two times that differ only below a microsecond are compared as equal *before*
/// they reach the database, not after. `None` outside [`YEARS`].
fn storable(time: DateTime<Utc>) -> Option<DateTime<Utc>> {
    use chrono::{TimeDelta, Timelike};
    // chrono keeps a leap second (23:59:60) as a nanosecond count of 1e9 or more;
    // PostgreSQL stores it as the next second, 00:00:00, so do the same. Not
    // `DurationRound`: it works in i64 nanoseconds, which end in 2262.
    let nanos = time.nanosecond();
    let leap = TimeDelta::seconds(i64::from(nanos >= 1_000_000_000));
    let micros = TimeDelta::microseconds(i64::from(nanos % 1_000_000_000 / 1_000));
    let truncated = time.with_nanosecond(0)?.checked_add_signed(leap + micros)?;
    YEARS
        .contains(&chrono::Datelike::year(&truncated))
        .then_some(truncated)
}

impl ValidityWindow {
    /// The window `[start, end)`, if `end` is after `start` once both are taken
    /// to microseconds (what is stored), and both lie in the years 1..=9999.
    pub fn new(start: DateTime<Utc>, end: DateTime<Utc>) -> Result<Self, DomainError> {
        let out_of_range = |field| DomainError::new(field, "must be a time in the years 1 to 9999");
        let start = storable(start).ok_or_else(|| out_of_range("startTime"))?;
        let end = storable(end).ok_or_else(|| out_of_range("endTime"))?;
        if end > start {
            Ok(Self { start, end })
        } else {
            Err(DomainError::new("endTime", "must be after startTime"))
        }
    }

    /// The first instant tickets are redeemable.
    pub fn start(self) -> DateTime<Utc> {
        self.start
    }

    /// The first instant tickets are no longer redeemable.
    pub fn end(self) -> DateTime<Utc> {
        self.end
    }
}

/// The base of a program's ticket links: an absolute http(s) URL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UrlPrefix(String);

impl UrlPrefix {
    /// The URL, as given.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for UrlPrefix {
    type Error = DomainError;

    fn try_from(raw: String) -> Result<Self, Self::Error> {
        let rest = raw
            .strip_prefix("https://")
            .or_else(|| raw.strip_prefix("http://"));
        let host_present = rest.is_some_and(|rest| {
            let host = rest.split(['/', '?', '#']).next().unwrap_or_default();
            !host.is_empty()
        });
        if !host_present
            || raw.len() > 2048
            || raw.chars().any(|c| c.is_whitespace() || c.is_control())
        {
            return Err(DomainError::new(
                "urlPrefix",
                "must be an absolute http(s) URL of at most 2048 characters",
            ));
        }
        Ok(Self(raw))
    }
}

/// Arbitrary JSON attached to a ticket, kept as its serialized text (≤ 16 KiB).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Payload(String);

impl Payload {
    /// 16 KiB.
    pub const MAX_BYTES: usize = 16 * 1024;

    /// `json` must already be serialized JSON; only its size is judged here.
    pub fn from_json_text(json: String) -> Result<Self, DomainError> {
        if json.len() > Self::MAX_BYTES {
            Err(DomainError::new(
                "payload",
                "must be at most 16 KiB serialized",
            ))
        } else {
            Ok(Self(json))
        }
    }

    /// The serialized JSON.
    pub fn as_json_text(&self) -> &str {
        &self.0
    }
}

/// A page of a list: `count` 1..=1000 (default 10) items from `offset` ≥ 0.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PageRequest {
    count: u32,
    offset: u64,
}

impl PageRequest {
    /// The most items one page may ask for.
    pub const MAX_COUNT: i64 = 1000;

    /// A page of `count` items (default 10) from `offset` (default 0).
    pub fn new(count: Option<i64>, offset: Option<i64>) -> Result<Self, DomainError> {
        let count = count.unwrap_or(10);
        let offset = offset.unwrap_or(0);
        if !(1..=Self::MAX_COUNT).contains(&count) {
            return Err(DomainError::new("count", "must be between 1 and 1000"));
        }
        if offset < 0 {
            return Err(DomainError::new("offset", "must be 0 or more"));
        }
        Ok(Self {
            count: count as u32,
            offset: offset as u64,
        })
    }

    /// How many items the page holds at most.
    pub fn count(self) -> u32 {
        self.count
    }

    /// How many items come before the page.
    pub fn offset(self) -> u64 {
        self.offset
    }
}

impl Default for PageRequest {
    fn default() -> Self {
        Self {
            count: 10,
            offset: 0,
        }
    }
}

#[cfg(test)]
mod tests {
    use chrono::TimeZone;

    use super::*;

    #[test]
    fn object_id_needs_1_to_256_chars() {
        assert!(ObjectId::try_from(String::new()).is_err());
        assert!(ObjectId::try_from("x".repeat(257)).is_err());
        assert!(ObjectId::try_from("iq__3ax1".to_owned()).is_ok());
    }

    #[test]
    fn group_addresses_are_capped_at_64() {
        let many = vec!["0x96bb".to_owned(); 65];
        let error = GroupAddresses::try_from(many).expect_err("too many");
        assert_eq!(error.field, "groupAddresses");
        assert!(GroupAddresses::try_from(vec!["0x96bb".to_owned(); 64]).is_ok());
    }

    #[test]
    fn numeric_rules_name_their_field() {
        assert_eq!(NtpClass::try_from(0).expect_err("low").field, "ntpClass");
        assert!(NtpClass::try_from(10).is_err());
        assert_eq!(
            RedemptionLimit::try_from(0).expect_err("zero").field,
            "maxRedemptions"
        );
        assert!(MaxTickets::try_from(-1).is_err());
        assert_eq!(MaxTickets::try_from(0).expect("zero").limit(), None);
        assert_eq!(MaxTickets::try_from(5).expect("five").limit(), Some(5));
    }

    #[test]
    fn validity_window_compares_what_is_stored_and_stays_storable() {
        use chrono::TimeZone;
        let base = Utc.with_ymd_and_hms(2026, 7, 1, 0, 0, 0).unwrap();
        // Differ by 100 ns: equal at microsecond precision, so refused.
        let a = base + chrono::Duration::nanoseconds(100);
        let b = base + chrono::Duration::nanoseconds(200);
        assert_eq!(ValidityWindow::new(a, b).unwrap_err().field, "endTime");
        // Sub-microsecond digits are dropped, not rounded into the window.
        let window = ValidityWindow::new(a, base + chrono::Duration::seconds(1)).unwrap();
        assert_eq!(window.start(), base);
        let ancient = DateTime::from_timestamp_millis(-300_000_000_000_000).unwrap();
        assert_eq!(
            ValidityWindow::new(ancient, base).unwrap_err().field,
            "startTime"
        );
        let far = Utc.with_ymd_and_hms(10000, 1, 1, 0, 0, 0).unwrap();
        assert_eq!(ValidityWindow::new(base, far).unwrap_err().field, "endTime");
        // A leap second is the next day's first second, as PostgreSQL stores it.
        let leap = chrono::DateTime::parse_from_rfc3339("2026-06-30T23:59:60Z").unwrap();
        assert_eq!(
            ValidityWindow::new(leap.with_timezone(&Utc), base)
                .unwrap_err()
                .field,
            "endTime"
        );
        let last = Utc.with_ymd_and_hms(9999, 12, 31, 23, 59, 59).unwrap();
        assert!(ValidityWindow::new(base, last).is_ok());
    }

    #[test]
    fn validity_window_requires_end_after_start() {
        let start = Utc.timestamp_millis_opt(1_604_361_351_043).unwrap();
        assert!(ValidityWindow::new(start, start).is_err());
        assert_eq!(
            ValidityWindow::new(start, start - chrono::Duration::seconds(1))
                .expect_err("reversed")
                .field,
            "endTime"
        );
        assert!(ValidityWindow::new(start, start + chrono::Duration::milliseconds(1)).is_ok());
    }

    #[test]
    fn url_prefix_must_be_absolute_http() {
        assert!(UrlPrefix::try_from("https://t.example/r/".to_owned()).is_ok());
        assert!(UrlPrefix::try_from("http://localhost:8080/r/".to_owned()).is_ok());
        assert!(UrlPrefix::try_from("ftp://t.example/".to_owned()).is_err());
        assert!(UrlPrefix::try_from("https:///path".to_owned()).is_err());
        assert!(UrlPrefix::try_from("/relative".to_owned()).is_err());
        assert!(UrlPrefix::try_from("https://a b/".to_owned()).is_err());
    }

    #[test]
    fn payload_is_capped_at_16_kib() {
        assert!(Payload::from_json_text(format!("\"{}\"", "x".repeat(16 * 1024))).is_err());
        assert!(Payload::from_json_text("{\"a\":1}".to_owned()).is_ok());
    }

    #[test]
    fn page_request_defaults_and_bounds() {
        let page = PageRequest::new(None, None).expect("defaults");
        assert_eq!((page.count(), page.offset()), (10, 0));
        assert!(PageRequest::new(Some(0), None).is_err());
        assert!(PageRequest::new(Some(1001), None).is_err());
        assert!(PageRequest::new(None, Some(-1)).is_err());
        assert_eq!(
            PageRequest::new(Some(1000), Some(5)).expect("max").count(),
            1000
        );
    }
}
