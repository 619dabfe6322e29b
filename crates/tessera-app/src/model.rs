//! The application's data model: what use cases and ports exchange. Kept apart
//! from the outbound ports (`ports`) and the inbound use cases (`usecases`), which
//! both speak it.

use std::fmt;

use chrono::{DateTime, Utc};
use tessera_domain::{
    ApiKeyId, Label, Payload, ProgramId, RedemptionLimit, Role, TenantId, TenantName, Ticket,
    TicketId,
};

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
    /// Live holds: uses reserved, not yet redeemed.
    pub held: u32,
}

impl TicketView {
    /// Uses left, live holds counting as used.
    pub fn remaining(&self) -> u32 {
        tessera_domain::effective_limit(self.ticket.max_redemptions, self.program_limit)
            .saturating_sub(self.ticket.redemptions)
            .saturating_sub(self.held)
    }
}

/// A ticket about to be issued, with the hashes of its secrets.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewTicket {
    pub ticket: Ticket,
    pub code_hash: SecretHash,
    pub link_hash: Option<SecretHash>,
}

/// An admin's change to a ticket (`PATCH /v1/tickets/{id}`): its state, its own
/// limit (a refill), or both, in one versioned write.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct TicketChanges {
    pub state: Option<tessera_domain::TicketState>,
    /// The ticket's own limit; the effective one stays min(this, the program's).
    pub max_redemptions: Option<RedemptionLimit>,
}

/// One step of an import, as the store pulls it (see `TicketStore::import`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ImportStep {
    /// The next tickets, each with the CSV line it came from.
    Chunk(Vec<(u64, NewTicket)>),
    /// Every row was read and valid.
    Done,
    /// A row was invalid: write nothing.
    Abort,
}

/// Where the store pulls an import's steps from (the use case validating rows).
pub trait ImportSource {
    fn next_step(&mut self) -> ImportStep;
}

impl<F: FnMut() -> ImportStep> ImportSource for F {
    fn next_step(&mut self) -> ImportStep {
        self()
    }
}

/// How an import ended in the store.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ImportOutcome {
    /// Committed: this many tickets and one `ticket.batch_imported` event.
    Imported(u32),
    /// Rolled back (the source aborted, or a code was taken): `taken` names the
    /// first lines (up to 10) whose code is already in the tenant.
    RolledBack { taken: Vec<u64> },
}

/// The API key a queued request was vouched for by from this process's memory,
/// which may not have heard of its delete yet: the statement that spends the use
/// checks, in its own snapshot, that this key still exists, so a key whose delete
/// was acknowledged before the request began never spends one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CallerKey {
    pub tenant_id: tessera_domain::TenantId,
    pub key_id: tessera_domain::ApiKeyId,
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
    /// The keyed hash of the presented `redeemerId`, if any: what per-redeemer
    /// limits count under.
    pub redeemer: Option<SecretHash>,
    /// How long a fifth consecutive wrong email locks the ticket (doubled for each
    /// earlier lock): the operator's `TESSERA_EMAIL_LOCK_SECONDS`.
    pub email_lock_seconds: u32,
    /// The failure the throttle counts if the store refuses the attempt, for the
    /// store to add to the replicas' shared counts in the statement that records
    /// the refusal; `None`: the throttle counts it itself (or only per process).
    pub shared_failure: Option<SharedFailure>,
}

/// A failure to add to the shared throttle counts (`FailureLedger::add_failures`)
/// in the store's refusal statement instead of a statement of its own: the
/// subjects, the minute, and where the store reports each subject's count over
/// every replica, which the throttle then adopts. Clones share that report.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SharedFailure {
    pub subjects: Vec<crate::throttle::FailureSubject>,
    /// Seconds since the epoch / 60.
    pub minute: i64,
    counts: std::sync::Arc<std::sync::OnceLock<Vec<u32>>>,
}

impl SharedFailure {
    pub fn new(subjects: Vec<crate::throttle::FailureSubject>, minute: i64) -> Self {
        Self {
            subjects,
            minute,
            counts: std::sync::Arc::default(),
        }
    }

    /// The subjects' names in the shared store, in order.
    pub fn keys(&self) -> Vec<String> {
        self.subjects
            .iter()
            .map(crate::throttle::FailureSubject::key)
            .collect()
    }

    /// The store added the failure: `counts` are the subjects' failures in the
    /// minute over every replica, in the order of `subjects`. Only the first
    /// report counts (a failure is added once).
    pub fn counted(&self, counts: Vec<u32>) {
        let _ = self.counts.set(counts);
    }

    /// What the store reported, if it added the failure (one count per subject).
    pub fn reported(&self) -> Option<&[u32]> {
        self.counts
            .get()
            .map(Vec::as_slice)
            .filter(|counts| counts.len() == self.subjects.len())
    }
}

/// What a successful redemption grants: built once from the store's row, then
/// answered to the caller and signed into the access token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Grant {
    pub tenant_id: TenantId,
    pub program_id: ProgramId,
    pub ticket_id: TicketId,
    /// The redemption this grant is, which may be rolled back once.
    pub redemption_id: tessera_domain::RedemptionId,
    /// Uses left after this one.
    pub remaining: u32,
    /// The program's target object: the token's `aud` and `obj`.
    pub object_id: String,
    pub group_addresses: Vec<String>,
    pub payload: Option<Payload>,
}

/// Uses a standalone ticket has left.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UsesLeft {
    /// Created with `uses: 0`: it never runs out.
    Unlimited,
    Left(u32),
}

impl UsesLeft {
    /// The API's form: a count, or `null` when unlimited.
    pub fn count(self) -> Option<u32> {
        match self {
            UsesLeft::Unlimited => None,
            UsesLeft::Left(n) => Some(n),
        }
    }
}

/// The result of using a standalone ticket.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StandaloneUse {
    pub uses_left: UsesLeft,
    pub payload: Option<Payload>,
}

/// What deleting a standalone ticket found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StandaloneDeletion {
    /// There was no live ticket with that secret.
    NothingLive,
    /// A live ticket was deleted; it had these uses left.
    Deleted(UsesLeft),
}

/// A signed access token and how long it stays valid. A bearer secret: `Debug`
/// redacts it, and the token is reached only through `expose_secret()`.
#[derive(Clone, PartialEq, Eq)]
pub struct AccessToken {
    token: String,
    expires_in_seconds: u32,
}

impl AccessToken {
    pub fn new(token: String, expires_in_seconds: u32) -> Self {
        Self {
            token,
            expires_in_seconds,
        }
    }

    /// The JWT itself; call only to send it.
    pub fn expose_secret(&self) -> &str {
        &self.token
    }

    pub fn expires_in_seconds(&self) -> u32 {
        self.expires_in_seconds
    }
}

impl tessera_domain::ExposeSecret for AccessToken {
    fn expose_secret(&self) -> &str {
        &self.token
    }
}

impl fmt::Debug for AccessToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "AccessToken({}, expires in {}s)",
            tessera_domain::REDACTED,
            self.expires_in_seconds
        )
    }
}

impl fmt::Display for AccessToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(tessera_domain::REDACTED)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn access_tokens_are_redacted() {
        let token = AccessToken::new("eyJhbGciOiJFZERTQSJ9.e30.c2ln".to_owned(), 60);
        assert!(!format!("{token:?}").contains("eyJ"));
        assert_eq!(token.to_string(), tessera_domain::REDACTED);
        assert_eq!(token.expose_secret(), "eyJhbGciOiJFZERTQSJ9.e30.c2ln");
    }
}
