//! Inbound ports: the use cases the adapters call. [`crate::Tessera`] implements
//! them; the HTTP adapter's tests use their mocks.

#[cfg(any(test, feature = "mocks"))]
use mockall::automock;
use std::net::IpAddr;

use tessera_domain::{
    ApiKeyId, ApiKeySecret, BatchSize, Code, Email, Label, NewProgram, PageRequest, Payload,
    PresentedApiKey, PresentedCode, PresentedTicket, Program, ProgramChanges, ProgramId,
    RedeemerId, RedemptionLimit, Role, SignedCode, StandaloneTicket, StandaloneToken, Subject,
    TenantId, TenantName, TicketId, TicketLink, TicketState, Ttl, Uses,
};

use crate::model::{
    AccessToken, ApiKey, Grant, Page, StandaloneUse, Tenant, TicketChanges, TicketView,
};
use crate::AppResult;

/// Who is calling: the tenant and role of the API key presented.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Principal {
    pub tenant_id: TenantId,
    pub key_id: ApiKeyId,
    pub role: Role,
}

impl From<ApiKey> for Principal {
    fn from(key: ApiKey) -> Self {
        Self {
            tenant_id: key.tenant_id,
            key_id: key.id,
            role: key.role,
        }
    }
}

impl Principal {
    /// The key a queued statement checks for this caller.
    pub fn key(&self) -> crate::model::CallerKey {
        crate::model::CallerKey {
            tenant_id: self.tenant_id.clone(),
            key_id: self.key_id.clone(),
        }
    }
}

/// A new API key with its secret, which is shown this once.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CreatedKey {
    pub key: ApiKey,
    pub secret: ApiKeySecret,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CreatedTenant {
    pub tenant: Tenant,
    pub admin_key: CreatedKey,
}

#[cfg_attr(any(test, feature = "mocks"), automock)]
pub trait AccessUseCases: Send + Sync {
    /// The principal for a presented bearer key; `Unauthorized` when unknown.
    fn authenticate(&self, presented_key: &PresentedApiKey) -> AppResult<Principal>;
    /// A new tenant with a first admin key (operator action).
    fn create_tenant(&self, name: TenantName) -> AppResult<CreatedTenant>;
    fn create_api_key(&self, caller: &Principal, name: Label, role: Role) -> AppResult<CreatedKey>;
    fn list_api_keys(&self, caller: &Principal) -> AppResult<Vec<ApiKey>>;
    fn delete_api_key(&self, caller: &Principal, id: &ApiKeyId) -> AppResult<()>;
}

#[cfg_attr(any(test, feature = "mocks"), automock)]
pub trait ProgramUseCases: Send + Sync {
    fn create_program(&self, caller: &Principal, new: NewProgram) -> AppResult<Program>;
    fn get_program(&self, caller: &Principal, id: &ProgramId) -> AppResult<Program>;
    fn list_programs(&self, caller: &Principal, page: PageRequest) -> AppResult<Page<Program>>;
    /// Applies `changes`; with `if_match`, only if the program is at that version.
    fn update_program(
        &self,
        caller: &Principal,
        id: &ProgramId,
        changes: ProgramChanges,
        if_match: Option<i64>,
    ) -> AppResult<Program>;
    fn suspend_program(&self, caller: &Principal, id: &ProgramId) -> AppResult<Program>;
    fn delete_program(&self, caller: &Principal, id: &ProgramId) -> AppResult<()>;
}

/// What an issuer asks for when issuing one ticket.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct IssueRequest {
    pub email: Option<Email>,
    pub max_redemptions: Option<RedemptionLimit>,
    pub subject: Option<Subject>,
    pub payload: Option<Payload>,
    /// Also return the code signed (`signedCode`), verifiable offline.
    pub signed: bool,
    /// In a one-active-per-subject program, revoke the subject's active ticket
    /// and issue this one atomically, instead of `SubjectHasActiveTicket`.
    pub replace: bool,
    /// A code the issuer chose instead of a generated one, exactly as sent; the
    /// program's alphabet normalises it (`Program::chosen_code`).
    pub code: Option<PresentedCode>,
    /// Uses each distinct `redeemerId` may have.
    pub per_redeemer_limit: Option<RedemptionLimit>,
}

/// A freshly issued ticket, with its code: the only time the code is shown.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IssuedTicket {
    pub ticket_id: TicketId,
    pub program_id: ProgramId,
    pub code: Code,
    pub email: Option<Email>,
    pub subject: Option<Subject>,
    /// The effective limit: min(the ticket's, the program's).
    pub max_redemptions: u32,
    pub link: Option<TicketLink>,
    /// `code.signature`, when asked for.
    pub signed_code: Option<SignedCode>,
}

/// What an issuer asks for when issuing many tickets at once.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BatchRequest {
    pub count: BatchSize,
    pub max_redemptions: Option<RedemptionLimit>,
    pub payload: Option<Payload>,
}

/// Where a batch's tickets go as soon as they are committed.
pub trait BatchSink {
    /// Takes one committed chunk; `false` when the receiver is gone, which stops
    /// the batch.
    fn accept(&mut self, chunk: &[IssuedCode]) -> bool;
}

impl<F: FnMut(&[IssuedCode]) -> bool> BatchSink for F {
    fn accept(&mut self, chunk: &[IssuedCode]) -> bool {
        self(chunk)
    }
}

/// One ticket of a batch, with its code (shown this once).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IssuedCode {
    pub ticket_id: TicketId,
    pub code: Code,
}

#[cfg_attr(any(test, feature = "mocks"), automock)]
pub trait TicketUseCases: Send + Sync {
    fn issue_ticket(
        &self,
        caller: &Principal,
        program: &ProgramId,
        request: IssueRequest,
    ) -> AppResult<IssuedTicket>;
    /// Issues `request.count` tickets, all or nothing against `maxTickets`, handing
    /// them to `sink` chunk by chunk as each chunk commits (`sink` returns `false`
    /// when the receiver is gone, which stops the batch). Returns how many were
    /// issued: fewer than asked only when the sink stopped the batch, in which
    /// case the unused places are given back to the cap.
    fn issue_batch(
        &self,
        caller: &Principal,
        program: &ProgramId,
        request: BatchRequest,
        sink: &mut dyn BatchSink,
    ) -> AppResult<u32>;
    /// Imports `rows` as tickets, all or nothing (see `service/import.rs`):
    /// `Invalid` naming up to 10 bad lines, `CodeTaken` naming up to 10 lines
    /// whose code repeats one earlier in the file or one in the tenant,
    /// `MaxTicketsReached`. Returns how many were imported.
    fn import_tickets(
        &self,
        caller: &Principal,
        program: &ProgramId,
        rows: &mut dyn Iterator<Item = Result<ImportRow, RowError>>,
    ) -> AppResult<u32>;
    fn get_ticket(&self, caller: &Principal, id: &TicketId) -> AppResult<TicketView>;
    fn list_tickets(
        &self,
        caller: &Principal,
        program: &ProgramId,
        page: PageRequest,
    ) -> AppResult<Page<TicketView>>;
    /// Unlocks, re-enables or disables; with `if_match`, only at that version.
    fn set_ticket_state(
        &self,
        caller: &Principal,
        id: &TicketId,
        state: TicketState,
        if_match: Option<i64>,
    ) -> AppResult<TicketView>;
    /// Changes the state and/or the ticket's own limit (a refill) in one versioned
    /// write; with `if_match`, only at that version.
    fn update_ticket(
        &self,
        caller: &Principal,
        id: &TicketId,
        changes: TicketChanges,
        if_match: Option<i64>,
    ) -> AppResult<TicketView>;
    fn revoke_ticket(&self, caller: &Principal, id: &TicketId) -> AppResult<()>;
}

/// One data row of an import, with its CSV line (the header is line 1). Values
/// as read; the use case parses them against the program.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImportRow {
    pub line: u64,
    pub code: PresentedCode,
    pub email: Option<String>,
    pub max_redemptions: Option<i64>,
    pub subject: Option<String>,
}

/// A row the adapter could not read (bad CSV, a non-integer `maxRedemptions`).
/// `problem` names the column, never a code.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RowError {
    pub line: u64,
    pub problem: String,
}

/// A redemption request, after the HTTP edge resolved which program it names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RedeemRequest {
    /// `None` when the caller named a program id that cannot exist (malformed):
    /// it fails, and counts, like an unknown program.
    pub program_id: Option<ProgramId>,
    /// When the caller named the tenant too (`tenantId` or `issuer`): it must match.
    pub tenant_id: Option<TenantId>,
    /// The code (or `signedCode`) exactly as presented.
    pub code: PresentedCode,
    pub email: Option<String>,
    /// Who redeems, for tickets with a per-redeemer limit.
    pub redeemer_id: Option<RedeemerId>,
    /// The client's address, for throttling failed attempts; `None` when unknown.
    pub client: Option<IpAddr>,
}

/// A successful redemption: what it grants, and the token that proves it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Redemption {
    pub grant: Grant,
    pub access_token: AccessToken,
}

#[cfg_attr(any(test, feature = "mocks"), automock)]
pub trait RedeemUseCases: Send + Sync {
    /// Redeems one use. Failure is `InvalidCode`, or `Redemption(reason)` when the
    /// caller holds a key of the program's tenant that may see details;
    /// `TooManyAttempts` when the client or the program is over its failure
    /// budget, in which case the attempt is not evaluated.
    fn redeem(&self, caller: Option<Principal>, request: RedeemRequest) -> AppResult<Redemption>;
}

/// Where a redemption given to [`QueuedUseCases::redeem_queued`] ended up.
#[derive(Debug)]
pub enum QueuedRedemption {
    /// Answered: the redemption, or an error that needed no store (a client over
    /// its budget, a mistyped check character) or that the store reported.
    Done(AppResult<Redemption>),
    /// The queued statement refused: finish with
    /// [`QueuedUseCases::redeem_refused`] on the blocking pool (it classifies,
    /// records and counts the failure). Nothing was counted yet.
    Refused(Option<Principal>, RedeemRequest),
    /// Not for the queue (a program not yet cached, a program past its budget, a
    /// store without a queue, a request no code can match before the program
    /// is known): run [`RedeemUseCases::redeem`] on the blocking pool. Nothing
    /// was counted or written.
    Unqueued(Option<Principal>, RedeemRequest),
}

/// Where a standalone use given to [`QueuedUseCases::use_standalone_queued`]
/// ended up.
#[derive(Debug)]
pub enum QueuedUse {
    /// Answered, as [`StandaloneUseCases::use_standalone`] answers.
    Done(AppResult<StandaloneUse>),
    /// The store has no queue: run `use_standalone` on the blocking pool.
    Unqueued(Principal, PresentedTicket),
}

/// A future the queued use cases return: awaited on the caller's thread (an HTTP
/// worker), it never blocks it.
pub type Awaited<T> = std::pin::Pin<Box<dyn std::future::Future<Output = T> + Send>>;

/// The hot requests whose statements wait in the store's queue without holding a
/// thread: the work before the store is done from memory on the caller's thread,
/// and only what needs the database first (a key not cached, a refusal's
/// classification) goes to the blocking pool. Every answer, count and event is
/// that of the blocking use case it stands for.
pub trait QueuedUseCases: Send + Sync {
    /// The caller a presented key names, as this process's memory knows it —
    /// which may lag a delete: a use is then spent only by a statement that checks
    /// the key, and the caller MUST confirm the key with
    /// `AccessUseCases::authenticate` before answering anything but a success.
    /// `None` when memory does not know the key: then `authenticate` on the
    /// blocking pool.
    fn authenticate_in_memory(&self, key: &PresentedApiKey) -> Awaited<Option<Principal>>;

    /// Starts the redemption, as `RedeemUseCases::redeem` with this caller.
    fn redeem_queued(
        self: std::sync::Arc<Self>,
        caller: Option<Principal>,
        request: RedeemRequest,
    ) -> Awaited<QueuedRedemption>;

    /// Finishes an attempt answered [`QueuedRedemption::Refused`]: what `redeem`
    /// does after its statement refused, on a thread that may block.
    fn redeem_refused(
        &self,
        caller: Option<Principal>,
        request: RedeemRequest,
    ) -> AppResult<Redemption>;

    /// Starts the standalone use, as `StandaloneUseCases::use_standalone`.
    fn use_standalone_queued(
        self: std::sync::Arc<Self>,
        caller: Principal,
        presented: PresentedTicket,
    ) -> Awaited<QueuedUse>;
}

/// The redemption lifecycle: look at a code before committing to it, reserve a
/// use while a payment runs, and give a use back.
#[cfg_attr(any(test, feature = "mocks"), automock)]
pub trait LifecycleUseCases: Send + Sync {
    /// Checks every rule of `redeem` now without consuming a use. Failures answer,
    /// and count, exactly as `redeem`'s.
    fn validate(
        &self,
        caller: Option<Principal>,
        request: RedeemRequest,
    ) -> AppResult<crate::lifecycle::Validation>;
    /// Reserves one use for `ttl` (redeemer). Failures as `redeem`'s.
    fn hold(
        &self,
        caller: &Principal,
        request: RedeemRequest,
        ttl: tessera_domain::HoldTtl,
    ) -> AppResult<crate::lifecycle::Hold>;
    /// Turns a live hold into a redemption; `HoldNotActive` when it is not live.
    fn confirm_hold(
        &self,
        caller: &Principal,
        id: &tessera_domain::HoldId,
    ) -> AppResult<Redemption>;
    /// Frees a held use; `HoldNotActive` for a confirmed hold.
    fn release_hold(&self, caller: &Principal, id: &tessera_domain::HoldId) -> AppResult<()>;
    fn get_hold(
        &self,
        caller: &Principal,
        id: &tessera_domain::HoldId,
    ) -> AppResult<crate::lifecycle::Hold>;
    /// Gives a redemption's use back once; `AlreadyRolledBack`, `RollbackNotAllowed`.
    fn rollback(
        &self,
        caller: &Principal,
        id: &tessera_domain::RedemptionId,
        reason: Option<tessera_domain::RollbackReason>,
    ) -> AppResult<crate::lifecycle::RolledBack>;
}

/// What an issuer asks for when creating a standalone ticket.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewStandalone {
    pub ttl: Ttl,
    pub uses: Uses,
    pub payload: Option<Payload>,
    pub name: Option<Label>,
    pub permissions: Option<Payload>,
}

/// The answer to deleting a standalone ticket (Authen's shape).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DeleteOutcome {
    /// Uses the deleted ticket had left; `None` when unlimited or nothing was deleted.
    pub uses: Option<u32>,
    pub deleted: u32,
}

#[cfg_attr(any(test, feature = "mocks"), automock)]
pub trait StandaloneUseCases: Send + Sync {
    fn create_standalone(
        &self,
        caller: &Principal,
        new: NewStandalone,
    ) -> AppResult<StandaloneToken>;
    /// `NotFound` when unknown, expired or used up.
    fn use_standalone(
        &self,
        caller: &Principal,
        presented: &PresentedTicket,
    ) -> AppResult<StandaloneUse>;
    fn delete_standalone(
        &self,
        caller: &Principal,
        presented: &PresentedTicket,
    ) -> AppResult<DeleteOutcome>;
    fn list_standalone(
        &self,
        caller: &Principal,
        page: PageRequest,
    ) -> AppResult<Page<StandaloneTicket>>;
}

#[cfg_attr(any(test, feature = "mocks"), automock)]
pub trait HealthUseCases: Send + Sync {
    /// `Unavailable` when the database does not answer.
    fn ready(&self) -> AppResult<()>;
}
