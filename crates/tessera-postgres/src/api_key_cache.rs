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
//! pooled connection, no table read. The round trips run on a thread of their
//! own that holds the listener; a lookup either waits for its round on a condition
//! variable (`find_api_key`, on a thread that may block) or awaits it as a future
//! (`find_api_key_in_memory`, on an HTTP worker: no blocking-pool hop at all for a
//! known key).
//!
//! Correctness over speed: while the listener is lost (its round trip failed), the
//! cache is empty and bypassed, every lookup reads the database, and a new listener
//! is tried at most once a second; a new listener starts from an empty cache, since
//! notices sent while none listened are gone. Only keys found are cached, keyed by
//! the key's hash (never the key): a key created a moment ago is found at once.

use std::collections::HashMap;
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use diesel::sql_types::Integer;
use diesel::{sql_query, Connection, IntoSql, PgConnection, RunQueryDsl};
use futures_channel::oneshot;
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
    /// The last round trip asked for: the round-trip thread runs rounds until
    /// `completed` reaches it.
    wanted: u64,
    /// Lookups awaited on a thread that must not block, each with the round it
    /// waits for.
    waiting: Vec<(u64, oneshot::Sender<()>)>,
    thread: RoundTrips,
}

/// The thread that runs the round trips (started by the first lookup).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum RoundTrips {
    NotStarted,
    Running,
    /// It could not be started: the cache stays off, every lookup reads the table.
    Unavailable,
    /// The cache was dropped: the thread ends.
    Stopping,
}

impl State {
    fn empty(&mut self) {
        self.entries.clear();
        self.generation += 1;
    }

    /// Whether a lookup that began when `round` was asked for may trust the cache.
    fn trusted(&self, round: u64) -> bool {
        self.completed >= round && self.listening
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

/// What the cache and its round-trip thread share.
struct Shared {
    url: String,
    state: Mutex<State>,
    /// Wakes the round-trip thread: a round asked for, or the cache dropped.
    round_wanted: Condvar,
    /// Wakes the blocking lookups waiting for a round trip to complete.
    round_done: Condvar,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        // The state is a cache: after a panic elsewhere it is still a valid one.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Asks for a round trip that begins after this call; the round to wait for,
    /// or `None` when no round trip can run (the cache is then not to be used).
    fn ask_round(self: &Arc<Self>, state: &mut State) -> Option<u64> {
        if state.thread == RoundTrips::NotStarted {
            let shared = Arc::clone(self);
            let started = std::thread::Builder::new()
                .name("api-key-listener".to_owned())
                .spawn(move || shared.run_round_trips());
            state.thread = match started {
                Ok(_) => RoundTrips::Running,
                Err(error) => {
                    tracing::warn!(%error, "cannot start the API-key listener; the cache is off");
                    RoundTrips::Unavailable
                }
            };
        }
        if state.thread != RoundTrips::Running {
            return None;
        }
        // A round in flight began before this call: the next one is needed.
        let round = state.started + 1;
        if state.wanted < round {
            state.wanted = round;
            self.round_wanted.notify_one();
        }
        Some(round)
    }

    /// The round-trip thread: one round at a time while any is wanted, every
    /// waiter told as soon as its round completed.
    fn run_round_trips(&self) {
        let mut state = self.lock();
        loop {
            while state.thread == RoundTrips::Running && state.wanted <= state.completed {
                state = self
                    .round_wanted
                    .wait(state)
                    .unwrap_or_else(PoisonError::into_inner);
            }
            if state.thread != RoundTrips::Running {
                // Dropped untold, the awaited lookups resolve as misses.
                state.waiting.clear();
                return;
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
            let (done, waiting): (Vec<_>, Vec<_>) = std::mem::take(&mut state.waiting)
                .into_iter()
                .partition(|(needed, _)| *needed <= round);
            state.waiting = waiting;
            for (_, waiter) in done {
                // A waiter whose future was dropped is gone: nothing to tell.
                let _ = waiter.send(());
            }
        }
    }

    /// The state once a round trip that began after this call has completed (or
    /// at once when none can run: `listening` then says the cache is off).
    fn synced(self: &Arc<Self>) -> MutexGuard<'_, State> {
        let mut state = self.lock();
        let Some(round) = self.ask_round(&mut state) else {
            state.listening = false;
            return state;
        };
        while state.completed < round {
            state = self
                .round_done
                .wait(state)
                .unwrap_or_else(PoisonError::into_inner);
        }
        state
    }
}

/// [`PgStore`]'s `AccessStore` with the key cache in front of `find_api_key`;
/// every other method is the store's, and a delete empties this process's cache
/// itself without waiting for its notice.
pub struct CachedAccess {
    store: PgStore,
    shared: Arc<Shared>,
}

impl std::fmt::Debug for CachedAccess {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let state = self.shared.lock();
        f.debug_struct("CachedAccess")
            .field("listening", &state.listening)
            .field("entries", &state.entries.len())
            .finish_non_exhaustive()
    }
}

impl Drop for CachedAccess {
    fn drop(&mut self) {
        let mut state = self.shared.lock();
        if state.thread == RoundTrips::Running {
            state.thread = RoundTrips::Stopping;
            self.shared.round_wanted.notify_all();
        }
    }
}

impl CachedAccess {
    /// Caches in front of `store`; listens on its own connection to `database_url`
    /// (the first lookup starts the thread that holds it).
    pub fn new(store: PgStore, database_url: &str) -> Self {
        Self {
            store,
            shared: Arc::new(Shared {
                url: database_url.to_owned(),
                state: Mutex::new(State {
                    listener: None,
                    listening: false,
                    next_attempt: Instant::now(),
                    entries: HashMap::new(),
                    generation: 0,
                    started: 0,
                    completed: 0,
                    wanted: 0,
                    waiting: Vec::new(),
                    thread: RoundTrips::NotStarted,
                }),
                round_wanted: Condvar::new(),
                round_done: Condvar::new(),
            }),
        }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.shared.lock()
    }

    /// Whether the listener is connected (and the cache therefore in use).
    pub fn is_listening(&self) -> bool {
        self.shared.synced().listening
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
            let state = self.shared.synced();
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

    /// A hit once a round trip that began after this call completed, as
    /// `find_api_key`'s; the wait is on a future the round-trip thread answers,
    /// so the caller's thread is not held. A miss is `None`: only the table can
    /// tell an unknown key, and reading it blocks.
    fn find_api_key_in_memory(&self, key_hash: SecretHash) -> Option<Later<Option<ApiKey>>> {
        let shared = Arc::clone(&self.shared);
        let (told, done) = oneshot::channel();
        let round = {
            let mut state = shared.lock();
            let round = shared.ask_round(&mut state)?;
            state.waiting.push((round, told));
            round
        };
        Some(Box::pin(async move {
            // Only a stopped thread drops a waiter untold: the cache is off then.
            if done.await.is_err() {
                return Ok(None);
            }
            let state = shared.lock();
            Ok(state
                .trusted(round)
                .then(|| state.entries.get(&key_hash.0).cloned())
                .flatten())
        }))
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
