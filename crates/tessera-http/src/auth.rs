//! `Authorization: Bearer <key>` → [`Principal`], and the operator token check.

use std::future::Future;
use std::pin::Pin;

use actix_web::http::header::AUTHORIZATION;
use actix_web::{dev, web, FromRequest, HttpRequest};
use subtle::ConstantTimeEq;
use tessera_app::usecases::Principal;
use tessera_domain::PresentedApiKey;

use crate::error::ApiError;
use crate::state::{run, AppState};

/// The bearer token of the request, if it presents one.
/// The bearer credential of `Authorization`, redacted by type from here on.
fn bearer(req: &HttpRequest) -> Option<PresentedApiKey> {
    let value = req.headers().get(AUTHORIZATION)?.to_str().ok()?.trim();
    let (scheme, token) = value.split_once(' ')?;
    let token = token.trim();
    (scheme.eq_ignore_ascii_case("bearer") && !token.is_empty())
        .then(|| PresentedApiKey::new(token))
}

fn state(req: &HttpRequest) -> Result<web::Data<AppState>, ApiError> {
    req.app_data::<web::Data<AppState>>()
        .cloned()
        .ok_or_else(|| ApiError::internal("AppState is not registered"))
}

async fn authenticate(
    state: web::Data<AppState>,
    key: PresentedApiKey,
) -> Result<Principal, ApiError> {
    run(move || state.access.authenticate(&key)).await
}

/// An authenticated caller: a missing or unknown key is `401 unauthorized`.
#[derive(Debug, Clone)]
pub struct Caller(pub Principal);

impl FromRequest for Caller {
    type Error = ApiError;
    type Future = Pin<Box<dyn Future<Output = Result<Self, ApiError>>>>;

    fn from_request(req: &HttpRequest, _: &mut dev::Payload) -> Self::Future {
        let key = bearer(req);
        let state = state(req);
        Box::pin(async move {
            let key = key.ok_or_else(ApiError::unauthorized)?;
            authenticate(state?, key).await.map(Caller)
        })
    }
}

/// A caller that may present a key (redeem): absent → `None`; present but unknown
/// → `401 unauthorized`.
#[derive(Debug, Clone)]
pub struct OptionalCaller(pub Option<Principal>);

impl FromRequest for OptionalCaller {
    type Error = ApiError;
    type Future = Pin<Box<dyn Future<Output = Result<Self, ApiError>>>>;

    fn from_request(req: &HttpRequest, _: &mut dev::Payload) -> Self::Future {
        let key = bearer(req);
        let state = state(req);
        Box::pin(async move {
            match key {
                None => Ok(OptionalCaller(None)),
                Some(key) => authenticate(state?, key)
                    .await
                    .map(|principal| OptionalCaller(Some(principal))),
            }
        })
    }
}

/// The presented key, not yet resolved: for the hot routes (redeem, standalone
/// use), which resolve it in the same blocking-pool hop as the work itself
/// ([`resolve`]) instead of one hop for the key and one for the work. Absent →
/// `401 unauthorized` at once.
pub(crate) struct PresentedKey(pub PresentedApiKey);

impl FromRequest for PresentedKey {
    type Error = ApiError;
    type Future = std::future::Ready<Result<Self, ApiError>>;

    fn from_request(req: &HttpRequest, _: &mut dev::Payload) -> Self::Future {
        std::future::ready(
            bearer(req)
                .map(PresentedKey)
                .ok_or_else(ApiError::unauthorized),
        )
    }
}

/// [`PresentedKey`] for a route that may be called without one (redeem).
pub(crate) struct OptionalPresentedKey(pub Option<PresentedApiKey>);

impl FromRequest for OptionalPresentedKey {
    type Error = ApiError;
    type Future = std::future::Ready<Result<Self, ApiError>>;

    fn from_request(req: &HttpRequest, _: &mut dev::Payload) -> Self::Future {
        std::future::ready(Ok(OptionalPresentedKey(bearer(req))))
    }
}

/// Resolves a presented key inside a use case's closure (on the blocking pool):
/// an unknown key is `401 unauthorized`, as for [`Caller`].
pub(crate) fn resolve(
    state: &AppState,
    key: &PresentedApiKey,
) -> tessera_app::AppResult<Principal> {
    state.access.authenticate(key)
}

/// Confirms a presented key (if any) on the blocking pool, with the access
/// store's full check: an unknown or deleted key is `401 unauthorized`. For
/// answers given after the key was taken from memory, which may lag a delete.
pub(crate) async fn confirm(
    state: &web::Data<AppState>,
    key: Option<PresentedApiKey>,
) -> Result<Option<Principal>, ApiError> {
    let Some(key) = key else {
        return Ok(None);
    };
    authenticate(state.clone(), key).await.map(Some)
}

/// Checks the operator token: the route does not exist (`404`) when no token is
/// configured; a missing or different token is `401`. Constant-time comparison.
pub(crate) fn require_operator(req: &HttpRequest, state: &AppState) -> Result<(), ApiError> {
    let Some(expected) = state.settings.operator_token.as_ref() else {
        return Err(ApiError::not_found());
    };
    let presented = bearer(req).ok_or_else(ApiError::unauthorized)?;
    if bool::from(
        presented
            .expose_secret()
            .as_bytes()
            .ct_eq(expected.expose_secret().as_bytes()),
    ) {
        Ok(())
    } else {
        Err(ApiError::unauthorized())
    }
}
