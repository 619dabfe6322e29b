//! The commands: wiring the adapters around the use cases.

use std::sync::Arc;

use actix_web::{App, HttpServer};
use tessera_app::usecases::AccessUseCases;
use tessera_app::{Limits, Tessera, TesseraPorts};
use tessera_crypto::{load_or_create_master_key, Keyring, MasterKey, Signer};
use tessera_domain::TenantName;
use tessera_http::{AppState, HttpSettings};
use tessera_postgres::{PgPool, PgStore};
use thiserror::Error;

use crate::clock::SystemClock;
use crate::settings::Settings;

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
    let pool = tessera_postgres::connect(&settings.database_url, settings.db_pool_size)?;
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

/// Every use case, over the database `store` and keys derived from the master key,
/// and the signer they sign with (whose JWKS the HTTP adapter serves).
fn tessera_on(
    settings: &Settings,
    store: Arc<PgStore>,
) -> Result<(Tessera, Arc<Signer>), CommandError> {
    let master = master_key(settings)?;
    let signer = Arc::new(signer(settings, &master));
    let ports = TesseraPorts {
        clock: Arc::new(SystemClock),
        hasher: Arc::new(Keyring::derive(&master)),
        signer: signer.clone(),
        access: store.clone(),
        programs: store.clone(),
        tickets: store.clone(),
        redemptions: store.clone(),
        standalone: store.clone(),
        health: store,
    };
    let limits = Limits {
        max_standalone_tickets: settings.max_standalone_tickets,
        redeem_failures_per_minute: settings.redeem_failures_per_minute,
        client_ipv6_prefix: settings.client_ipv6_prefix,
        email_lock_seconds: settings.email_lock_seconds,
    };
    Ok((Tessera::new(ports, limits), signer))
}

pub(crate) fn tessera(
    settings: &Settings,
    pool: PgPool,
) -> Result<(Tessera, Arc<Signer>), CommandError> {
    tessera_on(settings, Arc::new(PgStore::new(pool)))
}

pub fn migrate(settings: &Settings) -> Result<(), CommandError> {
    prepared_pool(settings).map(|_| ())
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

pub fn serve(settings: Settings) -> Result<(), CommandError> {
    let pool = prepared_pool(&settings)?;
    let (tessera, signer) = tessera(&settings, pool)?;
    let tessera = Arc::new(tessera);
    let state = AppState {
        access: tessera.clone(),
        programs: tessera.clone(),
        tickets: tessera.clone(),
        redeem: tessera.clone(),
        standalone: tessera.clone(),
        health: tessera,
        settings: HttpSettings {
            operator_token: settings.operator_token.clone(),
            body_limit_bytes: settings.body_limit_bytes,
            trusted_proxies: settings.trusted_proxies.clone(),
            jwks_json: Arc::from(signer.jwks_json()),
            openapi_json: Arc::from(tessera_http::openapi_document()),
        },
    };
    let bind = settings.bind;
    actix_web::rt::System::new().block_on(async move {
        let server =
            HttpServer::new(move || App::new().configure(tessera_http::configure(state.clone())));
        let server = match settings.http_workers {
            Some(workers) => server.workers(workers as usize),
            None => server,
        };
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
            trusted_proxies = ?settings.trusted_proxies,
            client_ipv6_prefix = settings.client_ipv6_prefix,
            email_lock_seconds = settings.email_lock_seconds,
            "tessera is serving"
        );
        server
            .run()
            .await
            .map_err(|error| CommandError::Failed(format!("server stopped: {error}")))
    })
}
