//! Request-body, query and path extraction with the API's error format.

use std::future::Future;
use std::pin::Pin;

use actix_web::error::{JsonPayloadError, PayloadError};
use actix_web::{dev, web, FromRequest, HttpMessage, HttpRequest};
use serde::de::DeserializeOwned;
use serde_json::error::Category;

use crate::error::ApiError;

/// How long a JSON body may take to arrive once its headers have.
pub(crate) const BODY_READ_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

/// A JSON request body, read up to the configured limit and deserialized with the
/// offending field's path in any error message.
///
/// Extraction itself never fails: the handler calls [`JsonBody::into_inner`] after
/// authentication, so an unauthenticated caller gets `401` whatever its body.
#[derive(Debug)]
pub struct JsonBody<T>(Result<T, ApiError>);

impl<T> JsonBody<T> {
    pub fn into_inner(self) -> Result<T, ApiError> {
        self.0
    }
}

impl<T: DeserializeOwned + 'static> FromRequest for JsonBody<T> {
    type Error = ApiError;
    type Future = Pin<Box<dyn Future<Output = Result<Self, ApiError>>>>;

    fn from_request(req: &HttpRequest, payload: &mut dev::Payload) -> Self::Future {
        if let Err(error) = check_content_type(req) {
            return Box::pin(async move { Ok(JsonBody(Err(error))) });
        }
        let body = web::Bytes::from_request(req, payload);
        Box::pin(async move {
            // A client that stops in the middle of its body must not hold the
            // connection, its buffer and its admission place indefinitely.
            let parsed = match actix_web::rt::time::timeout(BODY_READ_TIMEOUT, body).await {
                Ok(Ok(bytes)) => parse_json(&bytes),
                Ok(Err(error)) => Err(body_read_error(&error)),
                Err(_elapsed) => Err(ApiError::request_timeout()),
            };
            Ok(JsonBody(parsed))
        })
    }
}

/// A body without `Content-Type` is read as JSON; any other media type than
/// `application/json` (or `+json`) is refused with `415`.
fn check_content_type(req: &HttpRequest) -> Result<(), ApiError> {
    if req
        .headers()
        .get(actix_web::http::header::CONTENT_TYPE)
        .is_none()
    {
        return Ok(());
    }
    match req.mime_type() {
        Ok(Some(mime))
            if mime.subtype() == "json" || mime.suffix().is_some_and(|s| s == "json") =>
        {
            Ok(())
        }
        _ => Err(unsupported_media_type()),
    }
}

fn unsupported_media_type() -> ApiError {
    ApiError::new(
        actix_web::http::StatusCode::UNSUPPORTED_MEDIA_TYPE,
        "unsupported_media_type",
        "Content-Type: the request body must be application/json.",
    )
}

fn too_large() -> ApiError {
    ApiError::payload_too_large("The request body is larger than the server accepts.")
}

fn body_read_error(error: &actix_web::Error) -> ApiError {
    match error.as_error::<PayloadError>() {
        Some(PayloadError::Overflow) => too_large(),
        _ => ApiError::invalid("The request body could not be read."),
    }
}

/// Deserializes `bytes` as one JSON document, naming the field at fault.
pub(crate) fn parse_json<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    match bytes.iter().find(|b| !b.is_ascii_whitespace()) {
        None => return Err(ApiError::invalid("A JSON request body is required.")),
        // Every body is an object; serde would otherwise read a struct from an array.
        Some(b'{') => {}
        Some(_) => return Err(ApiError::invalid("The request body must be a JSON object.")),
    }
    let mut deserializer = serde_json::Deserializer::from_slice(bytes);
    let value = serde_path_to_error::deserialize(&mut deserializer).map_err(describe)?;
    deserializer.end().map_err(|error| {
        ApiError::invalid(format!("The request body is not valid JSON: {error}."))
    })?;
    Ok(value)
}

fn describe(error: serde_path_to_error::Error<serde_json::Error>) -> ApiError {
    let path = error.path().to_string();
    let inner = error.into_inner();
    match inner.classify() {
        Category::Data if path != "." => ApiError::invalid(format!("{path}: {inner}")),
        Category::Data => ApiError::invalid(format!("{inner}")),
        Category::Syntax | Category::Eof | Category::Io => {
            ApiError::invalid(format!("The request body is not valid JSON: {inner}."))
        }
    }
}

/// For `web::Json` extractors, should any be used: the same error format.
pub(crate) fn json_config(limit: usize) -> web::JsonConfig {
    web::JsonConfig::default()
        .limit(limit)
        .error_handler(|error, _req| {
            let api = match &error {
                JsonPayloadError::OverflowKnownLength { .. }
                | JsonPayloadError::Overflow { .. } => too_large(),
                JsonPayloadError::ContentType => unsupported_media_type(),
                JsonPayloadError::Deserialize(inner) if inner.is_data() => {
                    ApiError::invalid(inner.to_string())
                }
                JsonPayloadError::Deserialize(inner) => {
                    ApiError::invalid(format!("The request body is not valid JSON: {inner}."))
                }
                _ => ApiError::invalid("The request body could not be read."),
            };
            api.into()
        })
}

pub(crate) fn query_config() -> web::QueryConfig {
    web::QueryConfig::default().error_handler(|error, _req| {
        ApiError::invalid(format!("Invalid query string: {error}.")).into()
    })
}

pub(crate) fn path_config() -> web::PathConfig {
    web::PathConfig::default()
        .error_handler(|error, _req| ApiError::invalid(format!("Invalid path: {error}.")).into())
}

/// The version an `If-Match` header names: `3`, `"3"` or `W/"3"`; `*` or no header
/// means any version.
pub(crate) fn if_match(req: &HttpRequest) -> Result<Option<i64>, ApiError> {
    let Some(value) = req.headers().get(actix_web::http::header::IF_MATCH) else {
        return Ok(None);
    };
    let invalid = || ApiError::invalid("If-Match: must be the resource's version, an integer.");
    let raw = value.to_str().map_err(|_| invalid())?.trim();
    if raw == "*" {
        return Ok(None);
    }
    let raw = raw.strip_prefix("W/").unwrap_or(raw);
    let raw = raw
        .strip_prefix('"')
        .and_then(|rest| rest.strip_suffix('"'))
        .unwrap_or(raw);
    raw.parse::<i64>().map(Some).map_err(|_| invalid())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dto::programs::CreateProgramRequest;

    fn message(body: &str) -> String {
        parse_json::<CreateProgramRequest>(body.as_bytes())
            .expect_err("refused")
            .message()
            .to_owned()
    }

    #[test]
    fn messages_name_the_field_at_fault() {
        let unknown = message(r#"{"objectId":"o","startTime":1,"endTime":2,"colour":1}"#);
        assert!(
            unknown.starts_with("colour: unknown field `colour`"),
            "{unknown}"
        );
        let missing = message(r#"{"startTime":1,"endTime":2}"#);
        assert!(missing.starts_with("missing field `objectId`"), "{missing}");
        let wrong = message(r#"{"objectId":"o","startTime":1,"endTime":2,"maxTickets":true}"#);
        assert!(
            wrong.starts_with("maxTickets: invalid type: boolean"),
            "{wrong}"
        );
        let time = message(r#"{"objectId":"o","startTime":"later","endTime":2}"#);
        assert!(
            time.starts_with("startTime: expected an RFC 3339 time"),
            "{time}"
        );
    }

    #[test]
    fn if_match_forms() {
        let req = |value: &str| {
            actix_web::test::TestRequest::default()
                .insert_header(("If-Match", value))
                .to_http_request()
        };
        assert_eq!(if_match(&req("7")), Ok(Some(7)));
        assert_eq!(if_match(&req("\"7\"")), Ok(Some(7)));
        assert_eq!(if_match(&req("W/\"7\"")), Ok(Some(7)));
        assert_eq!(if_match(&req("*")), Ok(None));
        assert!(if_match(&req("7, 8")).is_err());
        assert!(if_match(&req("\"seven\"")).is_err());
        let none = actix_web::test::TestRequest::default().to_http_request();
        assert_eq!(if_match(&none), Ok(None));
    }
}
