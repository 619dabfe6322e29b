use serde::{Deserialize, Deserializer, Serialize, Serializer};
use tessera_domain::{ExposeSecret, PageRequest, Payload};
use utoipa::{IntoParams, ToSchema};

use crate::error::ApiError;

/// `?count&offset`: `count` 1..1000 (default 10), `offset` ≥ 0 (default 0).
#[derive(Debug, Clone, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct PageQuery {
    /// Items per page, 1..1000; default 10.
    #[param(value_type = Option<i64>, minimum = 1, maximum = 1000)]
    pub count: Option<String>,
    /// Items to skip, ≥ 0; default 0.
    #[param(value_type = Option<i64>, minimum = 0)]
    pub offset: Option<String>,
}

impl TryFrom<&PageQuery> for PageRequest {
    type Error = ApiError;

    fn try_from(query: &PageQuery) -> Result<Self, ApiError> {
        fn integer(field: &str, raw: Option<&String>) -> Result<Option<i64>, ApiError> {
            raw.map(|raw| {
                raw.trim()
                    .parse::<i64>()
                    .map_err(|_| ApiError::invalid(format!("{field}: must be an integer")))
            })
            .transpose()
        }
        let count = integer("count", query.count.as_ref())?;
        let offset = integer("offset", query.offset.as_ref())?;
        Ok(PageRequest::new(count, offset)?)
    }
}

/// `start`, `end` (= start + items returned) and `total` of a page.
pub(crate) fn page_bounds(page: PageRequest, returned: usize, total: u64) -> (u64, u64, u64) {
    let start = page.offset();
    (start, start + returned as u64, total)
}

/// Stored JSON (a ticket's payload, a standalone ticket's permissions) written out
/// as is, without building a `serde_json::Value`; `null` when absent.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct RawJson(pub Option<Payload>);

impl Serialize for RawJson {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match &self.0 {
            None => serializer.serialize_none(),
            Some(payload) => {
                let raw: &serde_json::value::RawValue =
                    serde_json::from_str(payload.as_json_text())
                        .map_err(serde::ser::Error::custom)?;
                raw.serialize(serializer)
            }
        }
    }
}

/// JSON given by a client, kept as its serialized text; `null` means none. Over
/// 16 KiB serialized → `413 payload_too_large`.
pub(crate) fn payload(
    field: &str,
    value: Option<serde_json::Value>,
) -> Result<Option<Payload>, ApiError> {
    match value {
        None | Some(serde_json::Value::Null) => Ok(None),
        Some(value) => Payload::from_json_text(value.to_string())
            .map(Some)
            .map_err(|_| {
                ApiError::payload_too_large(format!("{field}: must be at most 16 KiB serialized"))
            }),
    }
}

/// For PATCH fields: absent → `None`, `null` → `Some(None)`, a value → `Some(Some(v))`.
pub(crate) fn present<'de, D, T>(deserializer: D) -> Result<Option<Option<T>>, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de>,
{
    Option::<T>::deserialize(deserializer).map(Some)
}

/// A PATCH field that may be absent but not `null`.
pub(crate) fn not_null<T>(field: &str, value: Option<Option<T>>) -> Result<Option<T>, ApiError> {
    match value {
        None => Ok(None),
        Some(None) => Err(ApiError::invalid(format!("{field}: must not be null"))),
        Some(Some(value)) => Ok(Some(value)),
    }
}

/// `204`-less success bodies such as `{"status": "ok"}`.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct StatusBody {
    #[schema(example = "ok")]
    pub status: &'static str,
}

/// Writes a secret in clear into a response body: the one way a secret leaves
/// the process, used only on the fields that exist to hand it over once (an issued
/// code, a new API key, an access token). Greppable: `send_secret`.
pub(crate) fn send_secret<S: Serializer, T: ExposeSecret>(
    secret: &T,
    serializer: S,
) -> Result<S::Ok, S::Error> {
    serializer.serialize_str(secret.expose_secret())
}

/// [`send_secret`] for an optional secret (`null` when absent).
pub(crate) fn send_optional_secret<S: Serializer, T: ExposeSecret>(
    secret: &Option<T>,
    serializer: S,
) -> Result<S::Ok, S::Error> {
    match secret {
        Some(secret) => serializer.serialize_str(secret.expose_secret()),
        None => serializer.serialize_none(),
    }
}
