//! Tessera's PostgreSQL adapter: the diesel schema, an r2d2 connection pool, the
//! embedded migrations and [`PgStore`], which implements every store port of
//! `tessera_app::ports`. The rules that must hold under concurrency (no
//! over-redemption, ticket caps, one active ticket per subject) are enforced by
//! conditional statements and constraints in the database, never by a read and a
//! decision in Rust.

mod api_key_cache;
mod error;
mod events;
pub use events::PROBE_TENANT;
mod group_commit;
mod models;
mod schema;
mod setup;
mod stores;
#[cfg(feature = "test-support")]
pub mod testing;

pub use api_key_cache::{CachedAccess, LISTENER_NAME};
pub use group_commit::{
    BatchKind, BatchObserver, GroupCommit, GroupCommitSettings, EXECUTOR_PLANNER_SETTINGS,
};
pub use setup::{
    connect, connect_with_timeout, ensure_database, run_migrations, SetupError,
    DEFAULT_STATEMENT_TIMEOUT, MIGRATIONS,
};
pub use stores::{PgStore, PoolState};

/// The connection pool every store shares.
pub type PgPool = diesel::r2d2::Pool<diesel::r2d2::ConnectionManager<diesel::PgConnection>>;
