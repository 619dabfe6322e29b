//! Times at the edge. Input: an RFC 3339 string, or Unix epoch milliseconds as a
//! JSON integer or a numeric string. Output: RFC 3339 UTC with milliseconds.

use std::fmt;

use chrono::{DateTime, NaiveDate, SecondsFormat, Utc};
use serde::de::{self, Visitor};
use serde::{Deserialize, Deserializer, Serializer};
use utoipa::ToSchema;

/// `2026-11-02T23:55:51.043Z`.
pub fn format(time: DateTime<Utc>) -> String {
    time.to_rfc3339_opts(SecondsFormat::Millis, true)
}

pub fn serialize<S: Serializer>(time: &DateTime<Utc>, serializer: S) -> Result<S::Ok, S::Error> {
    serializer.serialize_str(&format(*time))
}

pub fn serialize_opt<S: Serializer>(
    time: &Option<DateTime<Utc>>,
    serializer: S,
) -> Result<S::Ok, S::Error> {
    match time {
        Some(time) => serialize(time, serializer),
        None => serializer.serialize_none(),
    }
}

fn from_millis(millis: i64) -> Option<DateTime<Utc>> {
    DateTime::from_timestamp_millis(millis)
}

/// Parses the string forms: RFC 3339, a bare date (midnight UTC, as JavaScript
/// reads it), or epoch milliseconds.
pub fn parse_str(raw: &str) -> Option<DateTime<Utc>> {
    let raw = raw.trim();
    if !raw.is_empty()
        && raw
            .bytes()
            .enumerate()
            .all(|(i, b)| b.is_ascii_digit() || (i == 0 && b == b'-'))
    {
        return raw.parse::<i64>().ok().and_then(from_millis);
    }
    if let Ok(time) = DateTime::parse_from_rfc3339(raw) {
        return Some(time.with_timezone(&Utc));
    }
    NaiveDate::parse_from_str(raw, "%Y-%m-%d")
        .ok()
        .and_then(|date| date.and_hms_opt(0, 0, 0))
        .map(|naive| naive.and_utc())
}

const EXPECTED: &str = "an RFC 3339 time or Unix epoch milliseconds";

/// A time as a client may send it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct InputTime(pub DateTime<Utc>);

impl<'de> Deserialize<'de> for InputTime {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct TimeVisitor;

        impl Visitor<'_> for TimeVisitor {
            type Value = InputTime;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(EXPECTED)
            }

            fn visit_i64<E: de::Error>(self, millis: i64) -> Result<InputTime, E> {
                from_millis(millis)
                    .map(InputTime)
                    .ok_or_else(|| E::custom(format!("expected {EXPECTED} within range")))
            }

            fn visit_u64<E: de::Error>(self, millis: u64) -> Result<InputTime, E> {
                i64::try_from(millis)
                    .map_err(|_| E::custom(format!("expected {EXPECTED} within range")))
                    .and_then(|millis| self.visit_i64(millis))
            }

            fn visit_str<E: de::Error>(self, raw: &str) -> Result<InputTime, E> {
                parse_str(raw)
                    .map(InputTime)
                    .ok_or_else(|| E::custom(format!("expected {EXPECTED}")))
            }
        }

        deserializer.deserialize_any(TimeVisitor)
    }
}

/// The OpenAPI picture of [`InputTime`].
#[derive(serde::Serialize, ToSchema)]
#[serde(untagged)]
#[schema(
    description = "An RFC 3339 time (\"2026-11-02T23:55:51.043Z\"), or Unix epoch milliseconds as an integer or a numeric string (\"1604361351043\")."
)]
#[allow(dead_code)]
pub enum TimeInput {
    Rfc3339(String),
    EpochMillis(i64),
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_three_input_forms_agree() {
        let expected = from_millis(1_604_361_351_043).expect("in range");
        assert_eq!(parse_str("2020-11-03T00:55:51.043+01:00"), Some(expected));
        assert_eq!(parse_str("1604361351043"), Some(expected));
        let parsed: InputTime = serde_json::from_str("1604361351043").expect("number");
        assert_eq!(parsed.0, expected);
        assert_eq!(format(expected), "2020-11-02T23:55:51.043Z");
    }

    #[test]
    fn floats_garbage_and_out_of_range_are_refused() {
        assert!(serde_json::from_str::<InputTime>("1.5").is_err());
        assert!(serde_json::from_str::<InputTime>("true").is_err());
        assert!(serde_json::from_str::<InputTime>("\"soon\"").is_err());
        assert!(serde_json::from_str::<InputTime>("\"\"").is_err());
        assert!(serde_json::from_str::<InputTime>("18446744073709551615").is_err());
        assert!(serde_json::from_str::<InputTime>("\"99999999999999999999\"").is_err());
    }
}
