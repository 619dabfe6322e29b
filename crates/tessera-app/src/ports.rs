//! Outbound ports: what the use cases need from the world. Synchronous by design;
//! the HTTP adapter runs use cases on a blocking pool. The one exception is the
//! redemption hot path: a store with a queue of its own (group commit) may also
//! answer later ([`Later`]), so that waiting for the batch parks no thread.
//!
//! Every store method that takes a `TenantId` MUST scope its reads and writes to
//! that tenant: another tenant's row is reported exactly like a missing one.

use std::future::Future;
use std::pin::Pin;

use chrono::{DateTime, Utc};
#[cfg(any(test, feature = "mocks"))]
use mockall::automock;
use tessera_domain::{
    ApiKeyId, Code, EventType, LinkToken, PageRequest, Program, ProgramId, RedemptionFailure,
    StandaloneTicket, StandaloneToken, TenantId, TicketId, TicketState,
};
use tessera_domain::{HoldId, RedemptionId, RollbackReason};
use thiserror::Error;

use crate::model::{
    AccessToken, ApiKey, CallerKey, Grant, ImportOutcome, ImportSource, NewTicket, Page,
    RedemptionAttempt, SecretHash, SharedFailure, StandaloneDeletion, StandaloneUse, Tenant,
    TicketChanges, TicketView,
};
use crate::throttle::FailureSubject;

/// How a store failed. Each method's documentation says which variants it MUST
/// use for which situation; anything else is `Unavailable` or `Internal`.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum StoreError {
    #[error("not found")]
    NotFound,
    #[error("stored version differs from the expected one")]
    VersionConflict,
    #[error("ticket cap reached")]
    MaxTicketsReached,
    #[error("program not active")]
    ProgramNotActive,
    #[error("subject already has an active ticket")]
    SubjectHasActiveTicket,
    /// A keyed hash that must be unique already exists; nothing was written.
    #[error("duplicate secret hash")]
    DuplicateSecret,
    /// A ticket's code hash already exists in the tenant (`tickets_code_hash_unique`);
    /// nothing was written. For a generated code: retry with a fresh one; for a
    /// chosen or imported code: `code_taken`.
    #[error("code already in the tenant")]
    CodeTaken,
    #[error("database unavailable: {0}")]
    Unavailable(String),
    #[error("database error: {0}")]
    Internal(String),
}

pub type StoreResult<T> = Result<T, StoreError>;

/// Ed25519 signatures by keys derived from the master key. Implementations MUST
/// NOT touch storage: signatures are checked before any database lookup.
#[cfg_attr(any(test, feature = "mocks"), automock)]
pub trait TokenSigner: Send + Sync {
    /// A JWT (`alg: EdDSA`, `kid`) carrying what `grant` grants, issued at
    /// `issued_at`, signed by the current key.
    fn access_token(&self, grant: &Grant, issued_at: DateTime<Utc>) -> AccessToken;
    /// The unpadded base64url signature, by the current key, of the UTF-8 bytes
    /// `tessera-code-v1:<programId>:<code>`.
    fn sign_code(&self, program: &ProgramId, code: &Code) -> String;
    /// Whether `signature` is a valid signature of `code` for `program` by any
    /// published key.
    fn verify_code(&self, program: &ProgramId, code: &str, signature: &str) -> bool;
}

/// What time it is. A port so tests can stand still.
#[cfg_attr(any(test, feature = "mocks"), automock)]
pub trait Clock: Send + Sync {
    fn now(&self) -> DateTime<Utc>;
}

/// Keyed hashing of secrets. Implementations MUST be deterministic for a given
/// master key and MUST NOT be invertible without it.
#[cfg_attr(any(test, feature = "mocks"), automock)]
pub trait SecretHasher: Send + Sync {
    /// The hash a program ticket's code is stored and found by; scoped by tenant,
    /// so codes are unique per tenant.
    fn code_hash(&self, tenant: &TenantId, code: &Code) -> SecretHash;
    fn api_key_hash(&self, presented_key: &str) -> SecretHash;
    fn standalone_hash(&self, tenant: &TenantId, token: &StandaloneToken) -> SecretHash;
    fn link_hash(&self, token: &LinkToken) -> SecretHash;
    /// The key a `redeemerId` is counted under: not a secret, but possibly
    /// personal data, so it is stored only hashed. Scoped by tenant.
    fn redeemer_hash(&self, tenant: &TenantId, redeemer: &str) -> SecretHash;
}

/// Tenants and their API keys.
#[cfg_attr(any(test, feature = "mocks"), automock)]
pub trait AccessStore: Send + Sync {
    /// Creates the tenant and its first admin key in one transaction.
    fn create_tenant(
        &self,
        tenant: &Tenant,
        admin_key: &ApiKey,
        key_hash: SecretHash,
    ) -> StoreResult<()>;
    /// MUST return `DuplicateSecret` when `key_hash` already exists.
    fn insert_api_key(&self, key: &ApiKey, key_hash: SecretHash) -> StoreResult<()>;
    /// The key whose secret hashes to `key_hash`, if it exists and is not deleted,
    /// in `tenant`: the tenant the presented key names. `None` for a key made
    /// before keys named their tenant, which the store routes through its
    /// directory of such keys.
    fn find_api_key(
        &self,
        tenant: Option<TenantId>,
        key_hash: SecretHash,
    ) -> StoreResult<Option<ApiKey>>;
    /// The key as this process's memory knows it, without blocking the caller's
    /// thread and without asking the database: it MAY still be a key deleted a
    /// moment ago (memory hears of deletes later), so what it vouches for MUST
    /// only spend a use through a statement that checks the key
    /// ([`CallerKey`](crate::model::CallerKey) of `redeem_later`, `use_ticket_later`),
    /// and a refusal MUST be answered only after `find_api_key` confirmed the key.
    /// Resolves `None` when memory does not know the key; returns no [`Later`] when
    /// the store keeps no such cache.
    fn find_api_key_in_memory(&self, key_hash: SecretHash) -> Option<Later<Option<ApiKey>>>;
    /// The tenant's keys, oldest first.
    fn list_api_keys(&self, tenant: &TenantId) -> StoreResult<Vec<ApiKey>>;
    /// MUST return `NotFound` when the tenant has no such key.
    fn delete_api_key(&self, tenant: &TenantId, id: &ApiKeyId) -> StoreResult<()>;
}

/// Programs. Every change writes its event in the same transaction.
#[cfg_attr(any(test, feature = "mocks"), automock)]
pub trait ProgramStore: Send + Sync {
    /// Stores a new program and a `program.created` event.
    fn insert(&self, program: &Program) -> StoreResult<()>;
    /// MUST return `NotFound` when the tenant has no such program.
    fn get(&self, tenant: &TenantId, id: &ProgramId) -> StoreResult<Program>;
    /// The program with this id in whichever tenant holds it: a public redemption
    /// names only the program, so the store finds its tenant first (a directory).
    fn locate(&self, id: &ProgramId) -> StoreResult<Option<Program>>;
    /// The tenant's programs, oldest first.
    fn list(&self, tenant: &TenantId, page: PageRequest) -> StoreResult<Page<Program>>;
    /// Writes `updated`'s mutable fields (name, maxTickets, maxRedemptions, window,
    /// urlPrefix, allowRollback, state, version, updatedAt) iff the stored version is
    /// `updated.version - 1`, with a `program.updated` or `program.suspended` event
    /// (`event`). Returns the stored program (its `issuedTickets` is the
    /// store's). MUST return `NotFound` when missing, `VersionConflict` when the
    /// stored version differs.
    fn update(&self, updated: &Program, event: EventType) -> StoreResult<Program>;
    /// Deletes the program and its tickets, writing `program.deleted`.
    /// MUST return `NotFound` when missing.
    fn delete(&self, tenant: &TenantId, id: &ProgramId, now: DateTime<Utc>) -> StoreResult<()>;
}

/// Tickets of programs.
#[cfg_attr(any(test, feature = "mocks"), automock)]
pub trait TicketStore: Send + Sync {
    /// In one transaction: raises the program's `issuedTickets` by one iff the
    /// program is active, has not ended at `now` and stays within `maxTickets`;
    /// inserts the ticket; writes `ticket.issued`. Writes nothing on failure.
    /// MUST return `NotFound` (no such program in the tenant), `ProgramNotActive`,
    /// `MaxTicketsReached`, `SubjectHasActiveTicket` (one-per-subject program) or
    /// `DuplicateSecret` (the code's or link's hash exists: retry with a fresh code).
    fn issue(&self, new: &NewTicket, now: DateTime<Utc>) -> StoreResult<()>;
    /// As `issue`, but in a one-active-per-subject program first revokes the
    /// subject's active ticket (if any), writing `ticket.revoked`, in the same
    /// transaction: concurrent replacements for one subject leave exactly one
    /// active ticket. In other programs, or without a subject, it is `issue`.
    fn issue_replacing(&self, new: &NewTicket, now: DateTime<Utc>) -> StoreResult<()>;
    /// MUST return `NotFound` when the tenant has no such ticket.
    fn get(&self, tenant: &TenantId, id: &TicketId) -> StoreResult<TicketView>;
    /// The program's tickets, oldest first. MUST return `NotFound` when the tenant
    /// has no such program.
    fn list(
        &self,
        tenant: &TenantId,
        program: &ProgramId,
        page: PageRequest,
    ) -> StoreResult<Page<TicketView>>;
    /// Sets the state iff the stored version is `expected_version`; setting
    /// `active` also clears `failedAttempts`. Writes `ticket.updated`.
    /// MUST return `NotFound` or `VersionConflict`.
    fn set_state(
        &self,
        tenant: &TenantId,
        id: &TicketId,
        state: TicketState,
        expected_version: i64,
        now: DateTime<Utc>,
    ) -> StoreResult<TicketView>;
    /// Applies `changes` (state and/or own limit) iff the stored version is
    /// `expected_version`, one version later; setting `active` also clears
    /// `failedAttempts`. Writes `ticket.updated` with what changed.
    /// MUST return `NotFound` or `VersionConflict`.
    fn update_ticket(
        &self,
        tenant: &TenantId,
        id: &TicketId,
        changes: TicketChanges,
        expected_version: i64,
        now: DateTime<Utc>,
    ) -> StoreResult<TicketView>;
    /// Revokes the ticket at once, writing `ticket.revoked`; revoking a revoked
    /// ticket changes nothing. MUST return `NotFound` when missing.
    fn revoke(&self, tenant: &TenantId, id: &TicketId, now: DateTime<Utc>) -> StoreResult<()>;
    /// Reserves `count` tickets of the program's cap at once, all or nothing:
    /// raises `issuedTickets` by `count` iff the program is active, has not ended
    /// at `now` and stays within `maxTickets`. Returns the program after the
    /// reservation. MUST return `NotFound`, `ProgramNotActive` or
    /// `MaxTicketsReached`, writing nothing.
    fn reserve(
        &self,
        tenant: &TenantId,
        program: &ProgramId,
        count: u32,
        now: DateTime<Utc>,
    ) -> StoreResult<Program>;
    /// Inserts tickets whose places were reserved, in one transaction, skipping
    /// those whose code or link hash already exists. Returns the indices (into
    /// `tickets`) of the skipped ones, so the caller can retry them with fresh
    /// secrets. Writes no per-ticket event (see `record_batch`).
    fn insert_reserved(&self, tickets: &[NewTicket]) -> StoreResult<Vec<usize>>;
    /// Gives back `count` reserved places that were not used (a batch that
    /// stopped early), so the cap counts only tickets that exist.
    fn release(&self, tenant: &TenantId, program: &ProgramId, count: u32) -> StoreResult<()>;
    /// Imports tickets in ONE transaction, all or nothing: pulls `next` until
    /// `Done` or `Abort`, inserting each chunk and noting the lines whose code
    /// hash is already in the tenant (`tickets_code_hash_unique`, which also
    /// makes a concurrent import holding the same code wait, then lose). Commits
    /// only after `Done` with no taken code, raising `issuedTickets` by the count
    /// with the conditional counter update and writing one
    /// `ticket.batch_imported` event. MUST return `NotFound`, `ProgramNotActive`
    /// or `MaxTicketsReached` (writing nothing) when the counter update refuses.
    fn import(
        &self,
        tenant: &TenantId,
        program: &ProgramId,
        now: DateTime<Utc>,
        next: &mut dyn ImportSource,
    ) -> StoreResult<ImportOutcome>;
    /// Records a finished batch: one `ticket.batch_issued` event with its count.
    fn record_batch(
        &self,
        tenant: &TenantId,
        program: &ProgramId,
        count: u32,
        now: DateTime<Utc>,
    ) -> StoreResult<()>;
}

/// An answer a store gives later, from its own threads: awaited where the caller
/// runs (an HTTP worker), so the wait holds no thread. Runtime-agnostic (std only).
pub type Later<T> = Pin<Box<dyn Future<Output = StoreResult<T>> + Send>>;

/// The redemption hot path.
#[cfg_attr(any(test, feature = "mocks"), automock)]
pub trait RedemptionStore: Send + Sync {
    /// Counts one use iff every rule holds, atomically (a conditional write, never
    /// read-decide-write), resetting the ticket's consecutive failures and writing
    /// `ticket.redeemed` (and `ticket.exhausted` on the last use) in the same
    /// transaction. Otherwise classifies why (`RedemptionFailure`), writes
    /// `ticket.redemption_failed` with the reason, and on `EmailMismatch` counts a
    /// failed attempt (stamping `lastFailedAt`), locking the ticket at the fifth
    /// (`ticket.locked`). Other failures MUST NOT write to the ticket, so that a
    /// known code failing a rule costs, and takes, what an unknown code does.
    /// With `attempt.shared_failure`, a refusal MUST also add the failure to the
    /// shared throttle counts (as `FailureLedger::add_failures` does) in the
    /// statement that records it, and report the counts through
    /// `SharedFailure::counted`; a success MUST NOT touch them.
    fn redeem(&self, attempt: &RedemptionAttempt) -> StoreResult<Result<Grant, RedemptionFailure>>;

    /// Does the work `redeem` does for an unknown code of `program` at `now` — the
    /// same statements, the same reads, a failure event written and committed —
    /// so that an attempt refused before any lookup takes the time of an unknown
    /// code. It runs under the store's own probe tenant, which no tenant is: it
    /// MUST change nothing any tenant can see, and what it writes MUST be gone
    /// after event maintenance. With `shared`, the failure is added to the shared
    /// throttle counts as `redeem` adds a refused attempt's.
    fn probe(
        &self,
        program: &ProgramId,
        now: DateTime<Utc>,
        shared: Option<SharedFailure>,
    ) -> StoreResult<()>;

    /// `redeem`'s conditional statement, queued for the store's own threads and
    /// answered once its batch committed: `Some(grant)` for a counted use, `None`
    /// when the statement refused — then nothing was written and the caller MUST
    /// finish with [`Self::classify_refused`]. Returns no [`Later`] when the store
    /// has no queue (the caller then uses `redeem`). With a `caller_key`, the
    /// statement MUST refuse (write nothing, `None`) unless that key exists in
    /// its own snapshot.
    fn redeem_later(
        &self,
        attempt: &RedemptionAttempt,
        caller_key: Option<CallerKey>,
    ) -> Option<Later<Option<Grant>>>;

    /// The rest of `redeem` once its statement refused: classifies and records the
    /// failure exactly as `redeem` does, running the statement again when the rows
    /// read say it would now match (a concurrent change), so it MAY still succeed.
    fn classify_refused(
        &self,
        attempt: &RedemptionAttempt,
    ) -> StoreResult<Result<Grant, RedemptionFailure>>;

    /// `probe`'s first statement through the queue, as `redeem_later` runs
    /// `redeem`'s: the caller finishes with [`Self::probe_refused`]. No [`Later`]
    /// when the store has no queue.
    fn probe_later(&self, program: &ProgramId, now: DateTime<Utc>) -> Option<Later<()>>;

    /// The rest of `probe` after `probe_later`: what `classify_refused` does for
    /// an unknown code, statement for statement, `shared` counted as `probe` does.
    fn probe_refused(
        &self,
        program: &ProgramId,
        now: DateTime<Utc>,
        shared: Option<SharedFailure>,
    ) -> StoreResult<()>;
}

/// The redemption lifecycle. Every decision is a conditional statement on the
/// ticket's (or hold's, or redemption's) row, as for `RedemptionStore::redeem`:
/// redemptions plus live holds never exceed a ticket's limit, whatever the
/// concurrency and however many processes share the database.
#[cfg_attr(any(test, feature = "mocks"), automock)]
pub trait LifecycleStore: Send + Sync {
    /// Evaluates `redeem`'s rules at `attempt.now`, live holds counting as used,
    /// and writes nothing on success. Failures are classified, written and
    /// counted exactly as `redeem`'s are.
    fn validate(
        &self,
        attempt: &RedemptionAttempt,
    ) -> StoreResult<Result<crate::lifecycle::Validation, RedemptionFailure>>;
    /// Reserves one use iff `redeem` would count one, atomically, storing hold
    /// `id` live until `expires_at` and writing `ticket.held`. Failures as `redeem`'s.
    fn hold(
        &self,
        attempt: &RedemptionAttempt,
        id: &HoldId,
        expires_at: DateTime<Utc>,
    ) -> StoreResult<Result<crate::lifecycle::Hold, RedemptionFailure>>;
    /// Turns a live hold into a redemption (with `ticket.redeemed`), all or
    /// nothing. MUST return `NotFound` for an unknown hold, `NotActive` for one
    /// expired, released or confirmed at `now`, `Failure(reason)` when its ticket
    /// is revoked or disabled or its program suspended.
    fn confirm(
        &self,
        tenant: &TenantId,
        id: &HoldId,
        now: DateTime<Utc>,
    ) -> StoreResult<Result<Grant, crate::lifecycle::HoldRefusal>>;
    /// Frees a held use (`ticket.hold_released` when it was live). Releasing an
    /// expired or released hold succeeds and changes nothing that counts. MUST
    /// return `NotFound` for an unknown hold, `NotActive` for a confirmed one.
    fn release(
        &self,
        tenant: &TenantId,
        id: &HoldId,
        now: DateTime<Utc>,
    ) -> StoreResult<Result<(), crate::lifecycle::HoldRefusal>>;
    /// The hold with its state as of `now`; `None` when the tenant has none.
    fn get_hold(
        &self,
        tenant: &TenantId,
        id: &HoldId,
        now: DateTime<Utc>,
    ) -> StoreResult<Option<crate::lifecycle::Hold>>;
    /// Gives the redemption's use back exactly once, iff its program allows
    /// rollbacks at `now`, writing `ticket.redemption_rolled_back` with `by` and
    /// `reason`. MUST return `NotFound`, `AlreadyRolledBack` or `NotAllowed`.
    fn rollback(
        &self,
        tenant: &TenantId,
        id: &RedemptionId,
        by: &ApiKeyId,
        reason: Option<RollbackReason>,
        now: DateTime<Utc>,
    ) -> StoreResult<Result<crate::lifecycle::RolledBack, crate::lifecycle::RollbackRefusal>>;
}

/// Authenticated encryption of the responses kept for idempotent replays, under
/// a key derived from the master key. `open` MUST return `None` for a body sealed
/// under another key or `context`, or altered.
#[cfg_attr(any(test, feature = "mocks"), automock)]
pub trait ResponseSealer: Send + Sync {
    fn seal(&self, context: &[u8], plain: &[u8]) -> Vec<u8>;
    fn open(&self, context: &[u8], sealed: &[u8]) -> Option<Vec<u8>>;
}

/// What claiming an idempotency key found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Begun {
    /// The key is new (or its record expired): the caller runs the request.
    New,
    /// The first request finished: its status and sealed body.
    Replay { status: u16, sealed: Vec<u8> },
    /// The first request is still running.
    InFlight,
    /// The key was used with another method, path or body.
    Mismatch,
}

/// Idempotency records, keyed by (scope, SHA-256 of the key). The claim MUST be
/// decided by the database (a unique key), so that of concurrent first requests
/// with one key exactly one gets `New`.
#[cfg_attr(any(test, feature = "mocks"), automock)]
pub trait IdempotencyStore: Send + Sync {
    /// Claims the key for a request with `fingerprint`, kept until `expires_at`; a
    /// record that expired by `now`, or whose request has run since before
    /// `stale_before` without finishing (a crashed process), is claimed afresh.
    fn begin(
        &self,
        scope: &str,
        key_hash: [u8; 32],
        fingerprint: [u8; 32],
        now: DateTime<Utc>,
        stale_before: DateTime<Utc>,
        expires_at: DateTime<Utc>,
    ) -> StoreResult<Begun>;
    /// Keeps the finished request's status and sealed body.
    fn finish(
        &self,
        scope: &str,
        key_hash: [u8; 32],
        status: u16,
        sealed: Vec<u8>,
    ) -> StoreResult<()>;
    /// Forgets a claim whose answer is not kept (429, 5xx, a failure).
    fn abandon(&self, scope: &str, key_hash: [u8; 32]) -> StoreResult<()>;
    /// Deletes the records expired by `now`; how many.
    fn purge(&self, now: DateTime<Utc>) -> StoreResult<u64>;
}

/// Standalone (Authen-compatible) tickets.
#[cfg_attr(any(test, feature = "mocks"), automock)]
pub trait StandaloneStore: Send + Sync {
    /// Inserts the ticket iff the tenant has fewer than `cap` live standalone
    /// tickets, counted atomically (expired ones are purged first when the cap is
    /// hit). MUST return `MaxTicketsReached` or `DuplicateSecret`.
    fn create(
        &self,
        ticket: &StandaloneTicket,
        token_hash: SecretHash,
        cap: u32,
        now: DateTime<Utc>,
    ) -> StoreResult<()>;
    /// Consumes one use atomically iff the ticket exists, has not expired and has
    /// uses left; a ticket whose last use this was is deleted. `None` otherwise.
    fn use_ticket(
        &self,
        tenant: &TenantId,
        token_hash: SecretHash,
        now: DateTime<Utc>,
    ) -> StoreResult<Option<StandaloneUse>>;
    /// `use_ticket` queued for the store's own threads and answered once its
    /// batch committed (never a use that was not). The statement MUST refuse
    /// (spend nothing, `None`) unless the caller's key `caller_key` of `tenant`
    /// exists in its own snapshot. Returns no [`Later`] when the store has no
    /// queue (the caller then uses `use_ticket`).
    fn use_ticket_later(
        &self,
        tenant: &TenantId,
        token_hash: SecretHash,
        now: DateTime<Utc>,
        caller_key: ApiKeyId,
    ) -> Option<Later<Option<StandaloneUse>>>;
    /// Deletes a live ticket, telling what it had left; `NothingLive` when there
    /// was no live ticket with that hash.
    fn delete(
        &self,
        tenant: &TenantId,
        token_hash: SecretHash,
        now: DateTime<Utc>,
    ) -> StoreResult<StandaloneDeletion>;
    /// The tenant's live tickets, oldest first.
    fn list(
        &self,
        tenant: &TenantId,
        page: PageRequest,
        now: DateTime<Utc>,
    ) -> StoreResult<Page<StandaloneTicket>>;
}

/// Whether the database answers.
#[cfg_attr(any(test, feature = "mocks"), automock)]
pub trait HealthProbe: Send + Sync {
    fn ping(&self) -> StoreResult<()>;
}

/// Where the deployment's wrapped root key is kept (see `tessera-crypto`'s
/// `envelope`). The envelope is opaque here: sealed bytes, never a key.
#[cfg_attr(any(test, feature = "mocks"), automock)]
pub trait KeyEnvelopeStore: Send + Sync {
    /// The stored envelope; `None` before the first start.
    fn load_envelope(&self) -> StoreResult<Option<Vec<u8>>>;
    /// Stores `envelope` iff none is stored yet. MUST return `false`, writing
    /// nothing, when another process stored one first (the caller reads it).
    fn create_envelope(&self, envelope: &[u8], now: DateTime<Utc>) -> StoreResult<bool>;
    /// Replaces the envelope iff the stored one is still `expected`, in one
    /// conditional statement. MUST return `false` otherwise.
    fn replace_envelope(
        &self,
        expected: &[u8],
        envelope: &[u8],
        now: DateTime<Utc>,
    ) -> StoreResult<bool>;
    /// Whether any tenant exists: a database with data and no envelope predates
    /// envelopes, and its keys were derived from the master key itself.
    fn holds_data(&self) -> StoreResult<bool>;
}

/// The failed-redemption counts every replica shares, so that one budget holds
/// across them (see [`crate::throttle`]). Written only when an attempt fails:
/// a successful redemption never reaches it.
#[cfg_attr(any(test, feature = "mocks"), automock)]
pub trait FailureLedger: Send + Sync {
    /// Adds one failure to each of `subjects` in `minute` (seconds since the epoch
    /// / 60) and returns, in the order of `subjects`, each one's failures in that
    /// minute over all replicas — in one atomic statement, so concurrent failures
    /// on several replicas are all counted and each sees a count including its own.
    fn add_failures(&self, subjects: &[FailureSubject], minute: i64) -> StoreResult<Vec<u32>>;
    /// Forgets every count of a minute before `minute`; returns how many went.
    fn forget_before(&self, minute: i64) -> StoreResult<u64>;
}

impl std::fmt::Debug for dyn FailureLedger {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("FailureLedger")
    }
}
