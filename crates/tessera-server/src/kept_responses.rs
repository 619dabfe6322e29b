//! Wiring of `Idempotency-Key`: the use case over the store and the sealer (its
//! key derived from the master key), and the hourly purge of expired records.
//! The purge only tidies: expiry is enforced when a key is claimed.

use std::sync::Arc;
use std::time::Duration;

use tessera_app::idempotency::{Idempotency, IdempotencyUseCases};
use tessera_crypto::{KeptResponseBox, MasterKey};
use tessera_postgres::PgStore;

use crate::clock::SystemClock;

const PURGE_EVERY: Duration = Duration::from_secs(3600);

pub(crate) fn idempotency(store: Arc<PgStore>, root: &MasterKey) -> Arc<Idempotency> {
    Arc::new(Idempotency {
        store,
        sealer: Arc::new(KeptResponseBox::derive(root)),
        clock: Arc::new(SystemClock),
    })
}

/// Purges expired records now and then every hour, on a thread of its own.
pub(crate) fn spawn_purge(idempotency: Arc<Idempotency>) {
    let spawned = std::thread::Builder::new()
        .name("idempotency-purge".to_owned())
        .spawn(move || loop {
            match idempotency.purge() {
                Ok(purged) if purged > 0 => {
                    tracing::info!(purged, "expired idempotency records purged")
                }
                Ok(_) => {}
                Err(error) => tracing::warn!(%error, "idempotency purge failed"),
            }
            std::thread::sleep(PURGE_EVERY);
        });
    if let Err(error) = spawned {
        tracing::warn!(%error, "cannot start the idempotency purge");
    }
}
