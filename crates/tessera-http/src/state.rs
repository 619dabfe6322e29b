use std::fmt;
use std::net::IpAddr;
use std::sync::Arc;

use tessera_app::events::EventUseCases;
use tessera_app::usecases::{
    AccessUseCases, HealthUseCases, ProgramUseCases, RedeemUseCases, StandaloneUseCases,
    TicketUseCases,
};
use tessera_app::webhooks::WebhookUseCases;
use tessera_app::AppResult;
use tessera_domain::OperatorToken;

use crate::admission::Admission;
use crate::error::ApiError;

/// The use cases the routes call, and the adapter's settings.
#[derive(Clone)]
pub struct AppState {
    pub access: Arc<dyn AccessUseCases>,
    pub programs: Arc<dyn ProgramUseCases>,
    pub tickets: Arc<dyn TicketUseCases>,
    pub redeem: Arc<dyn RedeemUseCases>,
    /// Redemptions and standalone uses awaited without a blocking-pool thread
    /// (the store's group commit answers a future, and a key known to this
    /// process is resolved from memory); `None`: they run on the blocking pool.
    pub queued: Option<Arc<dyn tessera_app::usecases::QueuedUseCases>>,
    pub lifecycle: Arc<dyn tessera_app::usecases::LifecycleUseCases>,
    pub idempotency: Arc<dyn tessera_app::idempotency::IdempotencyUseCases>,
    pub standalone: Arc<dyn StandaloneUseCases>,
    pub health: Arc<dyn HealthUseCases>,
    /// Link pages and the code form.
    pub links: Arc<dyn tessera_app::links::LinkUseCases>,
    pub webhooks: Arc<dyn WebhookUseCases>,
    pub events: Arc<dyn EventUseCases>,
    pub settings: HttpSettings,
}

impl fmt::Debug for AppState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AppState")
            .field("settings", &self.settings)
            .finish_non_exhaustive()
    }
}

#[derive(Clone)]
pub struct HttpSettings {
    /// Enables `POST /v1/tenants` for `Authorization: Bearer <this>`; unset → 404.
    pub operator_token: Option<OperatorToken>,
    /// The largest request body accepted; larger → `413 payload_too_large`.
    pub body_limit_bytes: usize,
    /// Peers whose `X-Forwarded-For` is believed when finding a client's address.
    pub trusted_proxies: Vec<IpAddr>,
    /// The JSON Web Key Set served at `/.well-known/jwks.json`, rendered once.
    pub jwks_json: Arc<str>,
    /// The OpenAPI document served at `/openapi.json`, rendered once at startup
    /// with [`crate::openapi_document`].
    pub openapi_json: Arc<str>,
    /// How many requests may be in flight, overall and per client (load shedding).
    pub admission: Arc<Admission>,
    /// Samples the database pool (idle, in use) for `/metrics`; `None`: not shown.
    pub pool_sampler: Option<crate::metrics::PoolSampler>,
}

impl HttpSettings {
    pub const DEFAULT_BODY_LIMIT_BYTES: usize = 64 * 1024;
}

impl Default for HttpSettings {
    fn default() -> Self {
        Self {
            operator_token: None,
            body_limit_bytes: Self::DEFAULT_BODY_LIMIT_BYTES,
            trusted_proxies: Vec::new(),
            jwks_json: Arc::from(r#"{"keys":[]}"#),
            // An empty document: whoever serves the API renders the real one.
            openapi_json: Arc::from("{}"),
            admission: Admission::unbounded(),
            pool_sampler: None,
        }
    }
}

// Hand-written so the operator token never reaches a log line.
impl fmt::Debug for HttpSettings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HttpSettings")
            .field("operator_token", &self.operator_token)
            .field("body_limit_bytes", &self.body_limit_bytes)
            .field("trusted_proxies", &self.trusted_proxies)
            .finish_non_exhaustive()
    }
}

/// Runs a (synchronous, database-bound) use case on actix's blocking pool.
pub(crate) async fn run<T, F>(use_case: F) -> Result<T, ApiError>
where
    F: FnOnce() -> AppResult<T> + Send + 'static,
    T: Send + 'static,
{
    match actix_web::web::block(use_case).await {
        Ok(result) => result.map_err(ApiError::from),
        Err(error) => Err(ApiError::internal(format!(
            "the blocking pool failed to run a use case: {error}"
        ))),
    }
}
