//! `Idempotency-Key`: the first request with a key runs and its answer is kept,
//! sealed, for 24 hours; the same key again replays that answer. The HTTP adapter
//! calls this only for requests that send a key, so others cost nothing.

use std::sync::Arc;

use chrono::Duration;
#[cfg(any(test, feature = "mocks"))]
use mockall::automock;

use crate::ports::{Begun, Clock, IdempotencyStore, ResponseSealer};
use crate::{AppError, AppResult};

/// How long a kept answer is replayed.
pub const KEPT_FOR_HOURS: i64 = 24;
/// A claim whose request has run this long without finishing is taken to belong
/// to a process that died, and is claimed afresh.
pub const STALE_AFTER_SECONDS: i64 = 60;

/// What a request with an idempotency key should do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Claim {
    /// Run it, then `finish` (or `abandon`).
    Run,
    /// Answer this instead: the first request's status and body.
    Replay {
        status: u16,
        body: Vec<u8>,
    },
    InFlight,
    Mismatch,
}

/// The idempotency use cases. `scope` is a tenant id (or, for a public
/// redemption, a program id); `key_hash` and `fingerprint` are SHA-256 digests of
/// the key and of method, path and body.
#[cfg_attr(any(test, feature = "mocks"), automock)]
pub trait IdempotencyUseCases: Send + Sync {
    fn begin(&self, scope: &str, key_hash: [u8; 32], fingerprint: [u8; 32]) -> AppResult<Claim>;
    fn finish(&self, scope: &str, key_hash: [u8; 32], status: u16, body: &[u8]) -> AppResult<()>;
    fn abandon(&self, scope: &str, key_hash: [u8; 32]) -> AppResult<()>;
    /// Deletes expired records; how many.
    fn purge(&self) -> AppResult<u64>;
}

/// The implementation over the store and the sealer.
pub struct Idempotency {
    pub store: Arc<dyn IdempotencyStore>,
    pub sealer: Arc<dyn ResponseSealer>,
    pub clock: Arc<dyn Clock>,
}

impl std::fmt::Debug for Idempotency {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Idempotency").finish_non_exhaustive()
    }
}

/// The sealed body's associated data: it opens only in its own record.
fn context(scope: &str, key_hash: &[u8; 32]) -> Vec<u8> {
    let mut context = scope.as_bytes().to_vec();
    context.push(0);
    context.extend_from_slice(key_hash);
    context
}

impl IdempotencyUseCases for Idempotency {
    fn begin(&self, scope: &str, key_hash: [u8; 32], fingerprint: [u8; 32]) -> AppResult<Claim> {
        let now = self.clock.now();
        let begun = self.store.begin(
            scope,
            key_hash,
            fingerprint,
            now,
            now - Duration::seconds(STALE_AFTER_SECONDS),
            now + Duration::hours(KEPT_FOR_HOURS),
        )?;
        Ok(match begun {
            Begun::New => Claim::Run,
            Begun::InFlight => Claim::InFlight,
            Begun::Mismatch => Claim::Mismatch,
            Begun::Replay { status, sealed } => Claim::Replay {
                status,
                body: self
                    .sealer
                    .open(&context(scope, &key_hash), &sealed)
                    .ok_or_else(|| {
                        AppError::Internal("a kept response does not open".to_owned())
                    })?,
            },
        })
    }

    fn finish(&self, scope: &str, key_hash: [u8; 32], status: u16, body: &[u8]) -> AppResult<()> {
        let sealed = self.sealer.seal(&context(scope, &key_hash), body);
        Ok(self.store.finish(scope, key_hash, status, sealed)?)
    }

    fn abandon(&self, scope: &str, key_hash: [u8; 32]) -> AppResult<()> {
        Ok(self.store.abandon(scope, key_hash)?)
    }

    fn purge(&self) -> AppResult<u64> {
        Ok(self.store.purge(self.clock.now())?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ports::{MockClock, MockIdempotencyStore, MockResponseSealer};

    fn with(store: MockIdempotencyStore, sealer: MockResponseSealer) -> Idempotency {
        let mut clock = MockClock::new();
        clock.expect_now().returning(chrono::Utc::now);
        Idempotency {
            store: Arc::new(store),
            sealer: Arc::new(sealer),
            clock: Arc::new(clock),
        }
    }

    #[test]
    fn a_kept_answer_is_opened_in_its_own_context_and_kept_a_day() {
        let mut store = MockIdempotencyStore::new();
        store
            .expect_begin()
            .withf(|_, _, _, now, stale, expires| {
                *expires - *now == Duration::hours(24) && *now - *stale == Duration::seconds(60)
            })
            .returning(|_, _, _, _, _, _| {
                Ok(Begun::Replay {
                    status: 201,
                    sealed: b"sealed".to_vec(),
                })
            });
        let mut sealer = MockResponseSealer::new();
        sealer
            .expect_open()
            .withf(|context, sealed| context.starts_with(b"ten_a\0") && sealed == b"sealed")
            .returning(|_, _| Some(b"{}".to_vec()));
        let claim = with(store, sealer)
            .begin("ten_a", [1; 32], [2; 32])
            .unwrap();
        assert_eq!(
            claim,
            Claim::Replay {
                status: 201,
                body: b"{}".to_vec()
            }
        );
    }

    #[test]
    fn a_body_that_does_not_open_is_an_internal_error_not_a_replay() {
        let mut store = MockIdempotencyStore::new();
        store.expect_begin().returning(|_, _, _, _, _, _| {
            Ok(Begun::Replay {
                status: 200,
                sealed: vec![],
            })
        });
        let mut sealer = MockResponseSealer::new();
        sealer.expect_open().returning(|_, _| None);
        assert!(matches!(
            with(store, sealer).begin("ten_a", [1; 32], [2; 32]),
            Err(AppError::Internal(_))
        ));
    }
}
