//! Request logging: method, matched route pattern (never the raw path: URL
//! tickets carry secrets in it), status and latency. Never bodies or headers.

use std::time::Instant;

use actix_web::body::MessageBody;
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::middleware::Next;

pub(crate) async fn log_request<B: MessageBody + 'static>(
    req: ServiceRequest,
    next: Next<B>,
) -> Result<ServiceResponse<B>, actix_web::Error> {
    let started = Instant::now();
    let method = req.method().clone();
    let result = next.call(req).await;
    let latency_ms = started.elapsed().as_secs_f64() * 1000.0;
    match &result {
        Ok(response) => {
            let route = response.request().match_pattern();
            tracing::info!(
                target: "tessera_http::request",
                method = %method,
                route = route.as_deref().unwrap_or("<unmatched>"),
                status = response.status().as_u16(),
                latency_ms,
                "request"
            );
        }
        Err(error) => {
            tracing::info!(
                target: "tessera_http::request",
                method = %method,
                route = "<unmatched>",
                status = error.as_response_error().status_code().as_u16(),
                latency_ms,
                "request"
            );
        }
    }
    result
}
