//! Outbound ports: what the use cases need from the world. Synchronous by design;
//! the HTTP adapter runs use cases on a blocking pool.
//!
//! Every store method that takes a `TenantId` MUST scope its reads and writes to
//! that tenant: another tenant's row is reported exactly like a missing one.

use std::fmt;

use chrono::{DateTime, Utc};
#[cfg(any(test, feature = "mocks"))]
use mockall::automock;
use tessera_domain::{
    ApiKeyId, Code, Label, LinkToken, PageRequest, Payload, Program, ProgramId, RedemptionFailure,
    RedemptionLimit, Role, StandaloneTicket, StandaloneToken, TenantId, TenantName, Ticket,
    TicketId, TicketState,
};
use thiserror::Error;

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
    #[error("database unavailable: {0}")]
    Unavailable(String),
    #[error("database error: {0}")]
    Internal(String),
}

pub type StoreResult<T> = Result<T, StoreError>;

/// A keyed hash (HMAC-SHA-256) of a secret: what the database stores instead of it.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct SecretHash(pub [u8; 32]);

impl fmt::Debug for SecretHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SecretHash({:02x}{:02x}…)", self.0[0], self.0[1])
    }
}

/// One page of a list and the size of the whole list.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Page<T> {
    pub items: Vec<T>,
    pub total: u64,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tenant {
    pub id: TenantId,
    pub name: TenantName,
    pub created_at: DateTime<Utc>,
}

/// An API key as stored: everything but the secret.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiKey {
    pub id: ApiKeyId,
    pub tenant_id: TenantId,
    pub name: Label,
    pub role: Role,
    pub created_at: DateTime<Utc>,
}

/// A ticket with the program limit it is redeemed under, which `remaining` needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TicketView {
    pub ticket: Ticket,
    pub program_limit: RedemptionLimit,
}

impl TicketView {
    pub fn remaining(&self) -> u32 {
        tessera_domain::effective_limit(self.ticket.max_redemptions, self.program_limit)
            .saturating_sub(self.ticket.redemptions)
    }
}

/// A ticket about to be issued, with the hashes of its secrets.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewTicket {
    pub ticket: Ticket,
    pub code_hash: SecretHash,
    pub link_hash: Option<SecretHash>,
}

/// One redemption attempt, as the store evaluates it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RedemptionAttempt {
    pub tenant_id: TenantId,
    pub program_id: ProgramId,
    pub code_hash: SecretHash,
    /// The presented email, trimmed and lower-cased; `None` when none was given.
    pub email: Option<String>,
    pub now: DateTime<Utc>,
}

/// What a successful redemption grants.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Redeemed {
    pub ticket_id: TicketId,
    pub remaining: u32,
    pub object_id: String,
    pub group_addresses: Vec<String>,
    pub payload: Option<Payload>,
}

/// The result of using a standalone ticket.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StandaloneUse {
    /// Uses left, `None` when unlimited.
    pub uses_left: Option<u32>,
    pub payload: Option<Payload>,
}

/// The claims of an access token handed out by a successful redemption.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AccessClaims {
    pub ticket_id: TicketId,
    pub tenant_id: TenantId,
    pub program_id: ProgramId,
    pub object_id: String,
    pub group_addresses: Vec<String>,
    pub issued_at: DateTime<Utc>,
}

/// A signed access token and how long it stays valid.
#[derive(Clone, PartialEq, Eq)]
pub struct AccessToken {
    pub token: String,
    pub expires_in_seconds: u32,
}

impl fmt::Debug for AccessToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "AccessToken(<redacted>, expires in {}s)",
            self.expires_in_seconds
        )
    }
}

/// Ed25519 signatures by keys derived from the master key. Implementations MUST
/// NOT touch storage: signatures are checked before any database lookup.
#[cfg_attr(any(test, feature = "mocks"), automock)]
pub trait TokenSigner: Send + Sync {
    /// A JWT (`alg: EdDSA`, `kid`) carrying the claims, signed by the current key.
    fn access_token(&self, claims: &AccessClaims) -> AccessToken;
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
    /// The key whose secret hashes to `key_hash`, if it exists and is not deleted.
    fn find_api_key(&self, key_hash: SecretHash) -> StoreResult<Option<ApiKey>>;
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
    /// The program with this id in whichever tenant holds it: the one lookup not
    /// scoped by tenant, because a public redemption names only the program.
    fn locate(&self, id: &ProgramId) -> StoreResult<Option<Program>>;
    /// The tenant's programs, oldest first.
    fn list(&self, tenant: &TenantId, page: PageRequest) -> StoreResult<Page<Program>>;
    /// Writes `updated`'s mutable fields (name, maxTickets, maxRedemptions, window,
    /// urlPrefix, state, version, updatedAt) iff the stored version is
    /// `updated.version - 1`, with a `program.updated` or `program.suspended` event
    /// (`event_type`). Returns the stored program (its `issuedTickets` is the
    /// store's). MUST return `NotFound` when missing, `VersionConflict` when the
    /// stored version differs.
    fn update(&self, updated: &Program, event_type: &'static str) -> StoreResult<Program>;
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
    /// `active` also clears `failedAttempts`. Writes `ticket.state_changed`.
    /// MUST return `NotFound` or `VersionConflict`.
    fn set_state(
        &self,
        tenant: &TenantId,
        id: &TicketId,
        state: TicketState,
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
    /// Records a finished batch: one `ticket.batch_issued` event with its count.
    fn record_batch(
        &self,
        tenant: &TenantId,
        program: &ProgramId,
        count: u32,
        now: DateTime<Utc>,
    ) -> StoreResult<()>;
}

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
    fn redeem(
        &self,
        attempt: &RedemptionAttempt,
    ) -> StoreResult<Result<Redeemed, RedemptionFailure>>;
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
    /// Deletes a live ticket, returning its uses left (`Some(None)` = unlimited);
    /// `None` when there was no live ticket.
    fn delete(
        &self,
        tenant: &TenantId,
        token_hash: SecretHash,
        now: DateTime<Utc>,
    ) -> StoreResult<Option<Option<u32>>>;
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
