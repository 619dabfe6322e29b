//! The commands: wiring the adapters around the use cases.

use std::sync::Arc;

use actix_web::{App, HttpServer};
use tessera_app::ports::AccessStore;
use tessera_app::usecases::{AccessUseCases, QueuedUseCases};
use tessera_app::{DeliverySettings, Limits, Tessera, TesseraPorts, WebhookPorts, WebhookService};
use tessera_crypto::envelope::{self, OpenedWith, RootStatus};
use tessera_crypto::{load_or_create_master_key, Keyring, MasterKey, Signer, WebhookKeys};
use tessera_domain::TenantName;
use tessera_http::{AppState, HttpSettings};
use tessera_postgres::{
    BatchKind, CachedAccess, GroupCommit, GroupCommitSettings, PgPool, PgStore,
};
use thiserror::Error;

use crate::clock::SystemClock;
use crate::settings::{Settings, ThrottleScope};

#[derive(Debug, Error)]
pub enum CommandError {
    #[error("database: {0}")]
    Database(#[from] tessera_postgres::SetupError),
    #[error("master key file {path}: {source}")]
    MasterKey {
        path: String,
        source: std::io::Error,
    },
    #[error("{0}")]
    BadArgument(String),
    #[error("{0}")]
    Failed(String),
    #[error("cannot serve on {bind}: {source}")]
    Bind {
        bind: String,
        source: std::io::Error,
    },
}

impl CommandError {
    pub fn exit_code(&self) -> u8 {
        match self {
            CommandError::BadArgument(_) => 2,
            _ => 1,
        }
    }
}

fn master_key(settings: &Settings) -> Result<MasterKey, CommandError> {
    if let Some(key) = &settings.master_key {
        return Ok(key.clone());
    }
    let path = &settings.master_key_file;
    let (key, created) =
        load_or_create_master_key(path).map_err(|source| CommandError::MasterKey {
            path: path.display().to_string(),
            source,
        })?;
    if created {
        tracing::warn!(
            path = %path.display(),
            "TESSERA_MASTER_KEY is not set: generated a master key into the file; back it up, \
             every stored code and key hash depends on it"
        );
    }
    Ok(key)
}

pub(crate) fn prepared_pool(settings: &Settings) -> Result<PgPool, CommandError> {
    if tessera_postgres::ensure_database(&settings.database_url)? {
        tracing::info!("created the database");
    }
    let pool = tessera_postgres::connect_with_timeout(
        &settings.database_url,
        settings.db_pool_size,
        std::time::Duration::from_millis(u64::from(settings.statement_timeout_ms)),
    )?;
    let applied = tessera_postgres::run_migrations(&pool)?;
    if !applied.is_empty() {
        tracing::info!(migrations = ?applied, "applied migrations");
    }
    Ok(pool)
}

/// The signer of access tokens and codes, with keys derived from the master key.
fn signer(settings: &Settings, master: &MasterKey) -> Signer {
    Signer::new(
        master,
        settings.signing_key_version,
        settings.public_url.clone(),
        settings.token_ttl_seconds,
    )
}

/// How API keys are resolved. With the cache, authenticated requests resolve
/// their key without a statement once it is known, and deletes reach every
/// replica's cache through the api_keys trigger's notices (docs/architecture.md).
/// Without it (`TESSERA_API_KEY_CACHE=off`, for Citus, where those notices never
/// reach the coordinator), every request asks the database.
fn access_store(settings: &Settings, store: &Arc<PgStore>) -> Arc<dyn AccessStore> {
    if settings.api_key_cache {
        Arc::new(CachedAccess::new((**store).clone(), &settings.database_url))
    } else {
        store.clone()
    }
}

/// Every use case, over the database `store` and keys derived from the master key,
/// and the signer they sign with (whose JWKS the HTTP adapter serves).
fn tessera_on(
    settings: &Settings,
    store: Arc<PgStore>,
    root: &MasterKey,
) -> Result<(Tessera, Arc<Signer>), CommandError> {
    let signer = Arc::new(signer(settings, root));
    let ports = TesseraPorts {
        clock: Arc::new(SystemClock),
        hasher: Arc::new(Keyring::derive(root)),
        signer: signer.clone(),
        access: access_store(settings, &store),
        programs: store.clone(),
        tickets: store.clone(),
        redemptions: Arc::new(crate::history::MeteredRedemptions(store.clone())),
        lifecycle: store.clone(),
        standalone: store.clone(),
        health: store.clone(),
        links: store.clone(),
    };
    let limits = Limits {
        max_standalone_tickets: settings.max_standalone_tickets,
        redeem_failures_per_minute: settings.redeem_failures_per_minute,
        client_ipv6_prefix: settings.client_ipv6_prefix,
        email_lock_seconds: settings.email_lock_seconds,
        batch_writers: settings.batch_writers,
    };
    let tessera = Tessera::new(ports, limits);
    let tessera = match settings.throttle_scope {
        ThrottleScope::Shared => tessera.with_failure_ledger(store),
        ThrottleScope::Process => tessera,
    };
    Ok((tessera, signer))
}

pub(crate) fn tessera(
    settings: &Settings,
    pool: PgPool,
) -> Result<(Tessera, Arc<Signer>), CommandError> {
    let store = Arc::new(PgStore::new(pool));
    let root = open_root_key(settings, &store)?;
    tessera_on(settings, store, &root)
}

/// The root key every other key derives from: the master key only wraps it.
fn open_root_key(settings: &Settings, store: &PgStore) -> Result<MasterKey, CommandError> {
    root_key(settings, store, &master_key(settings)?)
}

/// The root key, opened from its envelope in the database (or created there at the
/// very first start) with the master key, or the previous one during a rotation.
fn root_key(
    settings: &Settings,
    store: &PgStore,
    master: &MasterKey,
) -> Result<MasterKey, CommandError> {
    let previous = settings.master_key_previous.as_ref();
    let (root, status) = envelope::root_key(store, master, previous, chrono::Utc::now())
        .map_err(|error| CommandError::Failed(format!("root key: {error}")))?;
    match status {
        RootStatus::Created { inherited: true } => tracing::info!(
            "wrapped the root key under the master key (the data's keys are unchanged)"
        ),
        RootStatus::Created { inherited: false } => {
            tracing::info!("created this database's root key, wrapped under the master key")
        }
        RootStatus::Opened(OpenedWith::Previous) => tracing::warn!(
            "the root key is still wrapped under TESSERA_MASTER_KEY_PREVIOUS: \
             run `tessera keys rotate` to finish the rotation"
        ),
        RootStatus::Opened(OpenedWith::Current) => {}
    }
    Ok(root)
}

/// `tessera keys rotate`: re-wraps the root key under the current master key.
pub fn rotate_keys(settings: &Settings) -> Result<(), CommandError> {
    let store = PgStore::new(prepared_pool(settings)?);
    let master = master_key(settings)?;
    let previous = settings.master_key_previous.as_ref();
    let outcome = envelope::rotate(&store, &master, previous, chrono::Utc::now())
        .map_err(|error| CommandError::Failed(format!("cannot rotate: {error}")))?;
    let (rotated, message) = match outcome {
        envelope::Rotation::Rewrapped => (
            true,
            "the root key is now wrapped under the current master key; \
             TESSERA_MASTER_KEY_PREVIOUS can be removed once every replica runs with the new key",
        ),
        envelope::Rotation::AlreadyCurrent => (
            false,
            "the root key was already wrapped under the current master key",
        ),
    };
    println!(
        "{}",
        serde_json::json!({ "rotated": rotated, "message": message })
    );
    Ok(())
}

pub fn migrate(settings: &Settings) -> Result<(), CommandError> {
    let store = Arc::new(PgStore::new(prepared_pool(settings)?));
    // This and next month's event partitions, so a fresh database has them.
    crate::history::maintain_once(
        crate::history::event_service(settings, Arc::new(SystemClock), store).as_ref(),
    );
    Ok(())
}

pub fn create_tenant(settings: &Settings, name: String) -> Result<(), CommandError> {
    let name = TenantName::try_from(name)
        .map_err(|error| CommandError::BadArgument(format!("--{error}")))?;
    let (tessera, _) = tessera(settings, prepared_pool(settings)?)?;
    let created = tessera
        .create_tenant(name)
        .map_err(|error| CommandError::Failed(format!("cannot create the tenant: {error}")))?;
    let document =
        serde_json::to_string_pretty(&tessera_http::CreatedTenantResponse::from(&created))
            .map_err(|error| CommandError::Failed(format!("cannot print the tenant: {error}")))?;
    println!("{document}");
    Ok(())
}

/// The webhook use cases and delivery worker, over the same database.
fn webhooks(
    settings: &Settings,
    pool: PgPool,
    root: &MasterKey,
) -> Result<WebhookService, CommandError> {
    let ports = WebhookPorts {
        clock: Arc::new(SystemClock),
        store: Arc::new(PgStore::new(pool)),
        crypto: Arc::new(WebhookKeys::derive(root)),
        transport: Arc::new(crate::webhook_transport::UreqTransport::new(
            settings.webhook_allow_private,
        )),
    };
    let delivery = DeliverySettings {
        retry_base: std::time::Duration::from_millis(u64::from(settings.webhook_retry_base_ms)),
        // Longer than an attempt can take, so a live attempt is never duplicated.
        lease: crate::webhook_transport::DELIVERY_TIMEOUT * 6,
        ..DeliverySettings::default()
    };
    Ok(WebhookService::new(ports, delivery))
}

/// Samples the webhook outbox for `tessera_webhook_deliveries_pending` every few
/// seconds: one indexed count, off the request path.
fn spawn_pending_gauge(webhooks: Arc<WebhookService>) {
    const EVERY: std::time::Duration = std::time::Duration::from_secs(5);
    let sampler = std::thread::Builder::new()
        .name("webhook-gauge".to_owned())
        .spawn(move || loop {
            match webhooks.pending_deliveries() {
                Ok(pending) => tessera_http::metrics::set_webhook_deliveries_pending(pending),
                Err(error) => tracing::debug!(%error, "cannot count pending deliveries"),
            }
            std::thread::sleep(EVERY);
        });
    if let Err(error) = sampler {
        tracing::warn!(%error, "cannot start the webhook gauge; it stays at 0");
    }
}

/// The executors that group concurrent redemptions and standalone uses into one
/// statement and commit, on connections of their own; `None` when turned off.
fn group_commit(settings: &Settings) -> Result<Option<Arc<GroupCommit>>, CommandError> {
    if settings.group_commit_executors == 0 {
        return Ok(None);
    }
    let pool = tessera_postgres::connect_with_timeout(
        &settings.database_url,
        settings.group_commit_executors,
        std::time::Duration::from_millis(u64::from(settings.statement_timeout_ms)),
    )?;
    let group = GroupCommit::start(
        pool,
        GroupCommitSettings {
            executors: settings.group_commit_executors as usize,
            max_batch: settings.group_commit_max_batch as usize,
            queue_capacity: settings.group_commit_queue as usize,
        },
        Some(Arc::new(|kind: BatchKind, size| {
            tessera_http::metrics::record_group_commit_batch(kind.as_str(), size);
        })),
    )
    .map_err(|error| CommandError::Failed(format!("cannot start the group commit: {error}")))?;
    Ok(Some(Arc::new(group)))
}

pub fn serve(settings: Settings) -> Result<(), CommandError> {
    let pool = prepared_pool(&settings)?;
    tessera_http::metrics::install();
    let group = group_commit(&settings)?;
    // With a group commit, anonymous redemptions await its answer on the HTTP
    // worker instead of parking a blocking-pool thread on it.
    let queued = group.is_some();
    let store = match group {
        Some(group) => PgStore::new(pool.clone()).with_group_commit(group),
        None => PgStore::new(pool.clone()),
    };
    let store = Arc::new(store);
    let root = open_root_key(&settings, &store)?;
    let webhooks = Arc::new(webhooks(&settings, pool, &root)?);
    let (tessera, signer) = tessera_on(&settings, store.clone(), &root)?;
    let idempotency = crate::kept_responses::idempotency(store.clone(), &root);
    crate::kept_responses::spawn_purge(idempotency.clone());
    let tessera = Arc::new(tessera);
    let events = crate::history::event_service(&settings, Arc::new(SystemClock), store.clone());
    crate::history::spawn_maintenance(
        events.clone(),
        std::time::Duration::from_secs(u64::from(settings.event_maintenance_seconds)),
    );
    crate::webhook_worker::start(webhooks.clone(), settings.webhook_workers).map_err(|error| {
        CommandError::Failed(format!("cannot start the webhook worker: {error}"))
    })?;
    spawn_pending_gauge(webhooks.clone());
    let state = AppState {
        access: tessera.clone(),
        programs: tessera.clone(),
        tickets: tessera.clone(),
        redeem: tessera.clone(),
        queued: queued.then(|| tessera.clone() as Arc<dyn QueuedUseCases>),
        lifecycle: tessera.clone(),
        idempotency,
        standalone: tessera.clone(),
        health: tessera.clone(),
        links: tessera,
        webhooks,
        events,
        settings: HttpSettings {
            operator_token: settings.operator_token.clone(),
            body_limit_bytes: settings.body_limit_bytes,
            trusted_proxies: settings.trusted_proxies.clone(),
            jwks_json: Arc::from(signer.jwks_json()),
            openapi_json: Arc::from(tessera_http::openapi_document()),
            admission: tessera_http::Admission::new(
                settings.max_in_flight as usize,
                settings.max_in_flight_per_client as usize,
            ),
            pool_sampler: Some(Arc::new(move || {
                let state = store.pool_state();
                (state.idle, state.in_use)
            })),
        },
    };
    let bind = settings.bind;
    actix_web::rt::System::new().block_on(async move {
        let server =
            HttpServer::new(move || App::new().configure(tessera_http::configure(state.clone())));
        let workers = settings.http_workers.map_or_else(
            || std::thread::available_parallelism().map_or(1, usize::from),
            |workers| workers as usize,
        );
        // actix counts connections per worker; the setting is for the process.
        let server = server
            .workers(workers)
            .max_connections((settings.max_connections as usize).div_ceil(workers).max(1));
        let server = server.bind(bind).map_err(|source| CommandError::Bind {
            bind: bind.to_string(),
            source,
        })?;
        tracing::info!(
            %bind,
            public_url = %settings.public_url,
            token_ttl_seconds = settings.token_ttl_seconds,
            signing_key_version = settings.signing_key_version,
            signing_kid = signer.current_kid(),
            redeem_failures_per_minute = settings.redeem_failures_per_minute,
            throttle_scope = ?settings.throttle_scope,
            trusted_proxies = ?settings.trusted_proxies,
            webhook_workers = settings.webhook_workers,
            webhook_allow_private = settings.webhook_allow_private,
            client_ipv6_prefix = settings.client_ipv6_prefix,
            email_lock_seconds = settings.email_lock_seconds,
            batch_writers = settings.batch_writers,
            group_commit_executors = settings.group_commit_executors,
            group_commit_max_batch = settings.group_commit_max_batch,
            "tessera is serving"
        );
        server
            .run()
            .await
            .map_err(|error| CommandError::Failed(format!("server stopped: {error}")))
    })
}
