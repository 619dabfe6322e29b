//! `PgStore`'s implementations of the application's store ports, one file per port.

mod access;
mod batch;
mod directory;
mod event_feed;
mod health;
mod idempotency;
mod import;
mod keys;
mod lifecycle;
mod links;
mod programs;
mod redemption;
mod refill;
mod refusal;
mod replace;
mod standalone;
mod statistics;
mod throttle;
mod tickets;
mod webhooks;

use std::sync::Arc;

use diesel::r2d2::{ConnectionManager, PooledConnection};
use diesel::{Connection, PgConnection};
use tessera_app::ports::StoreResult;

use crate::error::Outcome;
use crate::group_commit::GroupCommit;
use crate::PgPool;

pub use event_feed::PoolState;
pub(crate) use redemption::into_grant;

/// Every store port over one connection pool. Cheap to clone: the pool is shared.
#[derive(Clone)]
pub struct PgStore {
    pool: PgPool,
    /// When set, redemptions and standalone uses go through its batches.
    group_commit: Option<Arc<GroupCommit>>,
}

impl std::fmt::Debug for PgStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let state = self.pool.state();
        f.debug_struct("PgStore")
            .field("connections", &state.connections)
            .field("idle_connections", &state.idle_connections)
            .finish()
    }
}

impl PgStore {
    pub fn new(pool: PgPool) -> Self {
        Self {
            pool,
            group_commit: None,
        }
    }

    /// The same store, with redemptions and standalone uses grouped into shared
    /// statements and commits by `group_commit` (see `crate::group_commit`).
    pub fn with_group_commit(self, group_commit: Arc<GroupCommit>) -> Self {
        Self {
            group_commit: Some(group_commit),
            ..self
        }
    }

    fn connection(&self) -> Outcome<PooledConnection<ConnectionManager<PgConnection>>> {
        Ok(self.pool.get()?)
    }

    /// Runs `work` on a pooled connection, outside any explicit transaction: for
    /// single statements, which PostgreSQL commits atomically on their own.
    pub(crate) fn with_conn<T>(
        &self,
        work: impl FnOnce(&mut PgConnection) -> Outcome<T>,
    ) -> StoreResult<T> {
        let mut conn = self.connection()?;
        Ok(work(&mut conn)?)
    }

    /// Runs `work` in one transaction, rolled back on any error.
    pub(crate) fn in_transaction<T>(
        &self,
        work: impl FnOnce(&mut PgConnection) -> Outcome<T>,
    ) -> StoreResult<T> {
        let mut pooled = self.connection()?;
        let conn: &mut PgConnection = &mut pooled;
        Ok(conn.transaction(work)?)
    }
}

/// A `LIMIT`/`OFFSET` pair from a page request, as SQL bigints.
pub(crate) fn limit_offset(page: tessera_domain::PageRequest) -> (i64, i64) {
    (
        i64::from(page.count()),
        i64::try_from(page.offset()).unwrap_or(i64::MAX),
    )
}
