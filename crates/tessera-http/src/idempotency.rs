//! `Idempotency-Key` on the endpoints the contract lists, as a middleware in
//! front of their handlers. A request without the header, or to another route,
//! passes straight through: no lookup, no database round trip. With it, the
//! first request runs and its answer is kept (sealed, by the use case) unless it
//! is a `429` or a `5xx`; a repeat with the same method, path and body replays it
//! with `Idempotent-Replayed: true`; another body → `422 idempotency_key_reused`;
//! while the first runs → `409 idempotency_in_progress`.

use actix_web::body::{to_bytes, BoxBody, MessageBody};
use actix_web::dev::{Payload, ServiceRequest, ServiceResponse};
use actix_web::http::header::{HeaderValue, CACHE_CONTROL, CONTENT_TYPE};
use actix_web::http::{Method, StatusCode};
use actix_web::middleware::Next;
use actix_web::{web, HttpResponse, ResponseError};
use serde::Deserialize;
use sha2::{Digest, Sha256};
use tessera_app::idempotency::Claim;
use tessera_domain::PresentedApiKey;

use crate::error::ApiError;
use crate::state::{run, AppState};

pub const IDEMPOTENCY_KEY: &str = "Idempotency-Key";
pub const REPLAYED: &str = "Idempotent-Replayed";

/// The POST routes that honour the header; `*` is one path segment.
const ROUTES: [&str; 8] = [
    "/v1/redeem",
    "/v1/holds",
    "/v1/holds/*/confirm",
    "/v1/redemptions/*/rollback",
    "/v1/programs",
    "/v1/programs/*/tickets",
    "/v1/tickets",
    "/v1/tickets/use",
];

fn honoured(path: &str) -> bool {
    let segments: Vec<&str> = path.split('/').collect();
    ROUTES.iter().any(|route| {
        let pattern: Vec<&str> = route.split('/').collect();
        pattern.len() == segments.len()
            && pattern
                .iter()
                .zip(&segments)
                .all(|(p, s)| *p == "*" && !s.is_empty() || p == s)
    })
}

/// 1..255 visible ASCII characters.
fn valid_key(key: &[u8]) -> bool {
    (1..=255).contains(&key.len()) && key.iter().all(|b| (0x21..=0x7e).contains(b))
}

fn digest(parts: &[&[u8]]) -> [u8; 32] {
    let mut hash = Sha256::new();
    for part in parts {
        hash.update((part.len() as u64).to_be_bytes());
        hash.update(part);
    }
    hash.finalize().into()
}

/// The program a public redemption names: its scope when no key is sent.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct NamedProgram {
    #[serde(alias = "ntpId")]
    program_id: Option<String>,
    issuer: Option<String>,
}

fn public_scope(body: &[u8]) -> Option<String> {
    let named: NamedProgram = serde_json::from_slice(body).ok()?;
    let program = match named.issuer {
        Some(issuer) => issuer.trim().rsplit('/').next()?.to_owned(),
        None => named.program_id?,
    };
    Some(format!("public:{program}"))
}

fn bearer(req: &ServiceRequest) -> Option<PresentedApiKey> {
    let value = req
        .headers()
        .get(actix_web::http::header::AUTHORIZATION)?
        .to_str()
        .ok()?
        .trim();
    let (scheme, token) = value.split_once(' ')?;
    let token = token.trim();
    (scheme.eq_ignore_ascii_case("bearer") && !token.is_empty())
        .then(|| PresentedApiKey::new(token))
}

fn answer(req: ServiceRequest, response: HttpResponse) -> ServiceResponse<BoxBody> {
    req.into_response(response)
}

pub(crate) async fn idempotent(
    mut req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<BoxBody>, actix_web::Error> {
    let key = req
        .headers()
        .get(IDEMPOTENCY_KEY)
        .map(HeaderValue::as_bytes);
    let Some(key) = key.map(<[u8]>::to_vec) else {
        return Ok(next.call(req).await?.map_into_boxed_body());
    };
    if req.method() != Method::POST || !honoured(req.path()) {
        return Ok(next.call(req).await?.map_into_boxed_body());
    }
    if !valid_key(&key) {
        let error = ApiError::invalid("Idempotency-Key: must be 1..255 visible ASCII characters");
        return Ok(answer(req, error.error_response()));
    }
    let Some(state) = req.app_data::<web::Data<AppState>>().cloned() else {
        return Ok(next.call(req).await?.map_into_boxed_body());
    };
    let body = req.extract::<web::Bytes>().await?;
    req.set_payload(Payload::from(body.clone()));

    // The scope: the caller's tenant, or for a public redemption its program.
    // A request that authenticates no one is answered by its handler (401 or a
    // 400), and nothing is kept for it.
    let scope = match bearer(&req) {
        Some(presented) => {
            let access = state.clone();
            match run(move || access.access.authenticate(&presented)).await {
                Ok(principal) => principal.tenant_id.to_string(),
                Err(_) => return Ok(next.call(req).await?.map_into_boxed_body()),
            }
        }
        None if req.path() == "/v1/redeem" => match public_scope(&body) {
            Some(scope) => scope,
            None => return Ok(next.call(req).await?.map_into_boxed_body()),
        },
        None => return Ok(next.call(req).await?.map_into_boxed_body()),
    };
    let key_hash = digest(&[&key]);
    let fingerprint = digest(&[
        req.method().as_str().as_bytes(),
        req.path().as_bytes(),
        &body,
    ]);

    let uses = state.clone();
    let claim_scope = scope.clone();
    let claim = run(move || uses.idempotency.begin(&claim_scope, key_hash, fingerprint)).await;
    match claim {
        Err(error) => Ok(answer(req, error.error_response())),
        Ok(Claim::InFlight) => Ok(answer(
            req,
            ApiError::idempotency_in_progress().error_response(),
        )),
        Ok(Claim::Mismatch) => Ok(answer(
            req,
            ApiError::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "idempotency_key_reused",
                "This Idempotency-Key was used with another method, path or body.",
            )
            .error_response(),
        )),
        Ok(Claim::Replay { status, body }) => {
            let status = StatusCode::from_u16(status).unwrap_or(StatusCode::OK);
            let mut replay = HttpResponse::build(status);
            replay
                .insert_header((CONTENT_TYPE, "application/json"))
                .insert_header((CACHE_CONTROL, "no-store"))
                .insert_header((REPLAYED, "true"));
            Ok(answer(req, replay.body(body)))
        }
        Ok(Claim::Run) => {
            let outcome = next.call(req).await;
            let response = match outcome {
                Ok(response) => response,
                Err(error) => {
                    let _ = run(move || state.idempotency.abandon(&scope, key_hash)).await;
                    return Err(error);
                }
            };
            let status = response.status();
            let (request, response) = response.into_parts();
            let (head, body) = response.into_parts();
            let bytes = to_bytes(body).await.unwrap_or_default();
            let kept = bytes.clone();
            let keeper = state.clone();
            let code = status.as_u16();
            let result = if status == StatusCode::TOO_MANY_REQUESTS || status.is_server_error() {
                run(move || keeper.idempotency.abandon(&scope, key_hash)).await
            } else {
                run(move || keeper.idempotency.finish(&scope, key_hash, code, &kept)).await
            };
            // The answer was not kept: say so rather than risk a second run.
            if let Err(error) = result {
                return Ok(ServiceResponse::new(request, error.error_response()));
            }
            Ok(ServiceResponse::new(
                request,
                head.set_body(BoxBody::new(bytes)),
            ))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_listed_routes_honour_the_key() {
        for path in [
            "/v1/redeem",
            "/v1/holds/hld_x/confirm",
            "/v1/programs/prg_x/tickets",
            "/v1/tickets/use",
        ] {
            assert!(honoured(path), "{path}");
        }
        for path in [
            "/v1/redeem/validate",
            "/v1/holds//confirm",
            "/v1/programs/prg_x",
            "/v1/api-keys",
        ] {
            assert!(!honoured(path), "{path}");
        }
    }

    #[test]
    fn keys_are_one_to_255_visible_ascii_characters() {
        assert!(valid_key(b"order-1234"));
        assert!(!valid_key(b""));
        assert!(!valid_key(b"with space"));
        assert!(!valid_key(&[b'a'; 256]));
        assert!(valid_key(&[b'a'; 255]));
    }

    #[test]
    fn a_public_redemption_is_scoped_by_the_program_it_names() {
        assert_eq!(
            public_scope(br#"{"programId":"prg_a","code":"x"}"#).as_deref(),
            Some("public:prg_a")
        );
        assert_eq!(
            public_scope(br#"{"issuer":"/otp/ntp/ten_a/prg_b"}"#).as_deref(),
            Some("public:prg_b")
        );
        assert_eq!(public_scope(b"not json"), None);
    }
}
