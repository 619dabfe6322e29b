//! A per-process cache of resolved API keys, as a decorator of the `AccessStore`
//! port (issue 12): an authenticated request runs no lookup statement once its key
//! is known, and the application layer does not know there is a cache.
//!
//! A deleted key must be refused at once by every process. Migration
//! `api_key_notify` NOTIFYs `tessera_api_keys` when a transaction that deleted or
//! changed keys commits; each process holds one listener connection, and any
//! notice empties its cache. "At once" is exact, not "soon": before a lookup
//! trusts the cache, the listener completes a round trip (`SELECT $1`) that began
//! after the lookup did. PostgreSQL signals the listening backends inside the
//! deleting commit and a backend sends what it was signalled before it answers
//! the next query, so every delete acknowledged before the lookup began is in
//! hand. One round trip serves every lookup waiting when it starts (32 concurrent
//! requests share one), and it is an empty query on an idle connection: no
//! blocking-pool hop, no pooled connection, no table read.
//!
//! The hot paths do without even that round trip (`find_api_key_in_memory`): they
//! take the key as cached, and the statement that spends the use checks that the
//! key still exists (`CallerKey`); anything but a success is answered only once
//! `find_api_key` confirmed the key, which also empties a cache that missed a
//! notice.
//!
//! Correctness over speed: while the listener is lost (its round trip failed), the
//! cache is empty and bypassed, every lookup reads the database, and a new listener
//! is tried at most once a second; a new listener starts from an empty cache, since
//! notices sent while none listened are gone. Only keys found are cached, keyed by
//! the key's hash (never the key): a key created a moment ago is found at once.

use std::collections::HashMap;
use std::sync::{Condvar, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use diesel::sql_types::Integer;
use diesel::{sql_query, Connection, IntoSql, PgConnection, RunQueryDsl};
use tessera_app::model::{ApiKey, SecretHash, Tenant};
use tessera_app::ports::{AccessStore, Later, StoreResult};
use tessera_domain::{ApiKeyId, TenantId};

use crate::PgStore;

/// The channel migration `api_key_notify` notifies.
const CHANNEL: &str = "tessera_api_keys";
/// The listener's `application_name` in `pg_stat_activity`.
pub const LISTENER_NAME: &str = "tessera_api_key_listener";
/// How long a lost listener waits before the next attempt to listen again.
const RECONNECT_EVERY: Duration = Duration::from_secs(1);
/// Keys cached at most; past it the cache starts over (only valid keys enter).
const MAX_ENTRIES: usize = 10_000;

struct State {
    /// `None` while a round trip has it, or while it is lost.
    listener: Option<PgConnection>,
    /// The last round trip succeeded: the cache may be trusted.
    listening: bool,
    next_attempt: Instant,
    entries: HashMap<[u8; 32], ApiKey>,
    /// Raised by every emptying: a lookup that read the database before an
    /// emptying must not put back what it read.
    generation: u64,
    /// Round trips started and completed; one is in flight iff they differ.
    started: u64,
    completed: u64,
}

impl State {
    fn empty(&mut self) {
        self.entries.clear();
        self.generation += 1;
    }
}

/// What one round trip of the listener found.
enum Round {
    Synced { noticed: bool },
    Lost,
    Listening,
    NotListening,
}

/// One round trip of `listener` (or, when it is lost and `may_connect`, a new
/// listener), outside the lock: every notice committed before it began has been
/// received when it ends.
fn round_trip(
    listener: Option<PgConnection>,
    url: &str,
    may_connect: bool,
) -> (Option<PgConnection>, Round) {
    let Some(mut conn) = listener else {
        if !may_connect {
            return (None, Round::NotListening);
        }
        return match listen(url) {
            Ok(conn) => (Some(conn), Round::Listening),
            Err(error) => {
                tracing::warn!(%error, "cannot listen for API-key changes");
                (None, Round::NotListening)
            }
        };
    };
    // `SELECT $1` through the query builder, which diesel prepares once and
    // caches (a `sql_query` string is parsed every time): its answer comes after
    // every notice due.
    if let Err(error) = diesel::select(1.into_sql::<Integer>()).get_result::<i32>(&mut conn) {
        tracing::warn!(%error, "the API-key listener is lost; the cache is off until it is back");
        return (None, Round::Lost);
    }
    let mut noticed = false;
    for notice in conn.notifications_iter() {
        match notice {
            Ok(_) => noticed = true,
            Err(error) => {
                tracing::warn!(%error, "the API-key listener is lost; the cache is off until it is back");
                return (None, Round::Lost);
            }
        }
    }
    (Some(conn), Round::Synced { noticed })
}

fn listen(url: &str) -> diesel::ConnectionResult<PgConnection> {
    let mut conn = PgConnection::establish(url)?;
    // Hand-written: utility statements. The name tells operators (and the tests)
    // which backend is the listener.
    for statement in [
        format!("SET application_name = '{LISTENER_NAME}'"),
        format!("LISTEN {CHANNEL}"),
    ] {
        sql_query(statement)
            .execute(&mut conn)
            .map_err(|error| diesel::ConnectionError::BadConnection(error.to_string()))?;
    }
    Ok(conn)
}

/// [`PgStore`]'s `AccessStore` with the key cache in front of `find_api_key`;
/// every other method is the store's, and a delete empties this process's cache
/// itself without waiting for its notice.
pub struct CachedAccess {
    store: PgStore,
    url: String,
    state: Mutex<State>,
    /// Wakes the lookups waiting for a round trip to complete.
    round_done: Condvar,
}

impl std::fmt::Debug for CachedAccess {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let state = self.lock();
        f.debug_struct("CachedAccess")
            .field("listening", &state.listening)
            .field("entries", &state.entries.len())
            .finish_non_exhaustive()
    }
}

impl CachedAccess {
    /// Caches in front of `store`; listens on its own connection to `database_url`
    /// (the first lookup connects it).
    pub fn new(store: PgStore, database_url: &str) -> Self {
        Self {
            store,
            url: database_url.to_owned(),
            state: Mutex::new(State {
                listener: None,
                listening: false,
                next_attempt: Instant::now(),
                entries: HashMap::new(),
                generation: 0,
                started: 0,
                completed: 0,
            }),
            round_done: Condvar::new(),
        }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // The state is a cache: after a panic elsewhere it is still a valid one.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The state once a round trip that began after this call has completed.
    fn synced(&self) -> MutexGuard<'_, State> {
        let mut state = self.lock();
        let needed = state.started + 1;
        loop {
            if state.completed >= needed {
                return state;
            }
            if state.started > state.completed {
                state = self
                    .round_done
                    .wait(state)
                    .unwrap_or_else(PoisonError::into_inner);
                continue;
            }
            state.started += 1;
            let round = state.started;
            let listener = state.listener.take();
            let may_connect = listener.is_none() && Instant::now() >= state.next_attempt;
            if may_connect {
                state.next_attempt = Instant::now() + RECONNECT_EVERY;
            }
            drop(state);
            let (listener, outcome) = round_trip(listener, &self.url, may_connect);
            state = self.lock();
            state.listener = listener;
            match outcome {
                Round::Synced { noticed } => {
                    state.listening = true;
                    if noticed {
                        state.empty();
                    }
                }
                // A new listener missed what was sent before it listened.
                Round::Listening | Round::Lost => {
                    state.listening = matches!(outcome, Round::Listening);
                    state.empty();
                }
                Round::NotListening => state.listening = false,
            }
            state.completed = round;
            self.round_done.notify_all();
        }
    }

    /// Whether the listener is connected (and the cache therefore in use).
    pub fn is_listening(&self) -> bool {
        self.synced().listening
    }
}

impl AccessStore for CachedAccess {
    fn create_tenant(
        &self,
        tenant: &Tenant,
        admin_key: &ApiKey,
        key_hash: SecretHash,
    ) -> StoreResult<()> {
        self.store.create_tenant(tenant, admin_key, key_hash)
    }

    fn insert_api_key(&self, key: &ApiKey, key_hash: SecretHash) -> StoreResult<()> {
        self.store.insert_api_key(key, key_hash)
    }

    /// Cached by the key's hash alone: the hash covers the whole presented key,
    /// its tenant part included, so one hash names one tenant's key.
    fn find_api_key(
        &self,
        tenant: Option<TenantId>,
        key_hash: SecretHash,
    ) -> StoreResult<Option<ApiKey>> {
        let generation = {
            let state = self.synced();
            if state.listening {
                if let Some(key) = state.entries.get(&key_hash.0) {
                    return Ok(Some(key.clone()));
                }
            }
            state.generation
        };
        let found = self.store.find_api_key(tenant, key_hash)?;
        if let Some(key) = &found {
            let mut state = self.lock();
            // An emptying since the read keeps it out; a delete committed after
            // the read is noticed by the next lookup's round trip, before it
            // trusts the cache.
            if state.listening && state.generation == generation {
                if state.entries.len() >= MAX_ENTRIES {
                    state.empty();
                }
                state.entries.insert(key_hash.0, key.clone());
            }
        }
        Ok(found)
    }

    /// The cached key as it is, with no round trip: it may be a key whose delete
    /// this process has not heard of yet, which is the port's contract — the
    /// statement that spends a use checks the key, and a refusal is answered
    /// only after `find_api_key` (with its round trip) confirmed it. A key not
    /// cached, or a cache that is off (the listener lost), is `None`.
    fn find_api_key_in_memory(&self, key_hash: SecretHash) -> Option<Later<Option<ApiKey>>> {
        let found = {
            let state = self.lock();
            state
                .listening
                .then(|| state.entries.get(&key_hash.0).cloned())
                .flatten()
        };
        Some(Box::pin(std::future::ready(Ok(found))))
    }

    fn list_api_keys(&self, tenant: &TenantId) -> StoreResult<Vec<ApiKey>> {
        self.store.list_api_keys(tenant)
    }

    fn delete_api_key(&self, tenant: &TenantId, id: &ApiKeyId) -> StoreResult<()> {
        let deleted = self.store.delete_api_key(tenant, id);
        self.lock().empty();
        deleted
    }
}
