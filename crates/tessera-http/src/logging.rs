//! Request logging: method, matched route pattern (never the raw path: URL
//! tickets carry secrets in it), status, latency and the request id. Never bodies
//! or headers. The same middleware counts the request in the metrics.
//!
//! Every request has an id, returned as `X-Request-Id` and logged with it (and
//! with any line logged inside the request's span): a well-formed incoming
//! `X-Request-Id` (1 to 64 of `A-Z a-z 0-9 - _ .`, as a proxy sets it) is kept,
//! anything else is replaced by one of ours.

use std::collections::hash_map::RandomState;
use std::hash::{BuildHasher, Hasher};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::OnceLock;
use std::time::Instant;

use actix_web::body::MessageBody;
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::header::{HeaderName, HeaderValue};
use actix_web::middleware::Next;
use tracing::Instrument;

pub(crate) const REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

fn well_formed(id: &str) -> bool {
    (1..=64).contains(&id.len())
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_' || b == b'.')
}

/// A process-random prefix and a counter: unique across replicas and requests
/// (request ids identify, they are no secret).
fn new_request_id() -> String {
    static PREFIX: OnceLock<u64> = OnceLock::new();
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let prefix = *PREFIX.get_or_init(|| RandomState::new().build_hasher().finish());
    format!(
        "req_{prefix:016x}{:08x}",
        NEXT.fetch_add(1, Ordering::Relaxed)
    )
}

fn request_id(req: &ServiceRequest) -> String {
    req.headers()
        .get(&REQUEST_ID)
        .and_then(|value| value.to_str().ok())
        .filter(|id| well_formed(id))
        .map_or_else(new_request_id, str::to_owned)
}

pub(crate) async fn log_request<B: MessageBody + 'static>(
    req: ServiceRequest,
    next: Next<B>,
) -> Result<ServiceResponse<B>, actix_web::Error> {
    let started = Instant::now();
    let method = req.method().clone();
    let id = request_id(&req);
    let span = tracing::info_span!("request", request_id = %id);
    let mut result = next.call(req).instrument(span.clone()).await;
    let elapsed = started.elapsed();
    let latency_ms = elapsed.as_secs_f64() * 1000.0;
    let _entered = span.enter();
    match &mut result {
        Ok(response) => {
            let route = response.request().match_pattern();
            let route = route.as_deref().unwrap_or("<unmatched>");
            let status = response.status().as_u16();
            crate::metrics::record_request(route, status, elapsed);
            tracing::info!(
                target: "tessera_http::request",
                method = %method,
                route,
                status,
                latency_ms,
                request_id = %id,
                "request"
            );
            if let Ok(value) = HeaderValue::from_str(&id) {
                response.headers_mut().insert(REQUEST_ID, value);
            }
        }
        Err(error) => {
            let status = error.as_response_error().status_code().as_u16();
            crate::metrics::record_request("<unmatched>", status, elapsed);
            tracing::info!(
                target: "tessera_http::request",
                method = %method,
                route = "<unmatched>",
                status,
                latency_ms,
                request_id = %id,
                "request"
            );
        }
    }
    result
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn incoming_ids_are_kept_only_when_well_formed() {
        assert!(well_formed("abc-123_x.y"));
        assert!(!well_formed(""));
        assert!(!well_formed("has space"));
        assert!(!well_formed(&"a".repeat(65)));
        let (a, b) = (new_request_id(), new_request_id());
        assert_ne!(a, b);
        assert!(well_formed(&a));
    }
}
