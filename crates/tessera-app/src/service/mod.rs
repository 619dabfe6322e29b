//! [`Tessera`]: the implementation of every use case, over the outbound ports.

mod access;
mod batch;
mod import;
mod lifecycle;
mod links;
mod operator;
mod programs;
mod queued;
mod redeem;
mod standalone;
#[cfg(test)]
pub(crate) mod test_support;
#[cfg(test)]
mod tests;
mod tickets;
mod webhooks;

use std::collections::HashMap;
use std::sync::{Arc, RwLock};

use tessera_domain::{Permission, ProgramId};

use crate::ports::{
    AccessStore, Clock, HealthProbe, ProgramStore, RedemptionStore, SecretHasher, StandaloneStore,
    TicketStore, TokenSigner,
};
use crate::throttle::FailureThrottle;
use crate::usecases::Principal;
use crate::{AppError, AppResult};

pub use webhooks::{DeliverySettings, WebhookPorts, WebhookService};

/// How many times a use case draws a fresh secret after a hash collision before it
/// gives up; with ≥ 1000 codes per ticket, five collisions in a row mean a bug.
const SECRET_ATTEMPTS: usize = 5;
/// How many times an update without `If-Match` re-reads after a concurrent change.
const UPDATE_ATTEMPTS: usize = 3;

/// Limits set by the operator.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Live standalone tickets per tenant.
    pub max_standalone_tickets: u32,
    /// Failed redemptions allowed per client address per minute (×10 per program).
    pub redeem_failures_per_minute: u32,
    /// IPv6 clients share a budget per network of this prefix length.
    pub client_ipv6_prefix: u8,
    /// How long the fifth consecutive wrong email locks a ticket; doubled on each
    /// further lock.
    pub email_lock_seconds: u32,
    /// Chunks of one bulk issuance written at once, each on its own connection:
    /// PostgreSQL inserts a chunk with one CPU, so a single writer leaves the
    /// others idle.
    pub batch_writers: u8,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_standalone_tickets: 1_000_000,
            redeem_failures_per_minute: 20,
            client_ipv6_prefix: crate::throttle::DEFAULT_IPV6_PREFIX,
            email_lock_seconds: 900,
            batch_writers: 2,
        }
    }
}

/// The adapters a [`Tessera`] runs on.
#[derive(Clone)]
pub struct TesseraPorts {
    pub clock: Arc<dyn Clock>,
    pub hasher: Arc<dyn SecretHasher>,
    pub signer: Arc<dyn TokenSigner>,
    pub access: Arc<dyn AccessStore>,
    pub programs: Arc<dyn ProgramStore>,
    pub tickets: Arc<dyn TicketStore>,
    pub redemptions: Arc<dyn RedemptionStore>,
    pub lifecycle: Arc<dyn crate::ports::LifecycleStore>,
    pub standalone: Arc<dyn StandaloneStore>,
    pub health: Arc<dyn HealthProbe>,
    pub links: Arc<dyn crate::links::LinkStore>,
}

impl std::fmt::Debug for TesseraPorts {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TesseraPorts").finish_non_exhaustive()
    }
}

/// The immutable facts of a program that a redemption needs before it can hash
/// the code. Cached, because a program's tenant, alphabet and length never change.
#[derive(Debug, Clone)]
struct ProgramFacts {
    tenant_id: tessera_domain::TenantId,
    alphabet: tessera_domain::Alphabet,
    check_digit: bool,
}

/// Bounds the cache of program facts; past it the cache starts over, which only
/// costs one lookup per program.
const PROGRAM_FACTS_CAPACITY: usize = 10_000;

/// Every use case of Tessera.
pub struct Tessera {
    ports: TesseraPorts,
    limits: Limits,
    /// `None`: the id names no program (ids are random, so none can appear later).
    program_facts: RwLock<HashMap<ProgramId, Option<ProgramFacts>>>,
    throttle: FailureThrottle,
}

impl std::fmt::Debug for Tessera {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tessera")
            .field("limits", &self.limits)
            .finish_non_exhaustive()
    }
}

impl Tessera {
    pub fn new(ports: TesseraPorts, limits: Limits) -> Self {
        Self {
            ports,
            throttle: FailureThrottle::new(limits.redeem_failures_per_minute)
                .with_ipv6_prefix(limits.client_ipv6_prefix),
            limits,
            program_facts: RwLock::new(HashMap::new()),
        }
    }

    /// Shares the failure throttle's counts with the other replicas through
    /// `ledger` (see [`crate::throttle`]); without it each process counts alone.
    pub fn with_failure_ledger(mut self, ledger: Arc<dyn crate::ports::FailureLedger>) -> Self {
        self.throttle = self.throttle.with_ledger(ledger);
        self
    }
}

impl Tessera {
    /// The stored hash of a program's code: of its canonical form, so a code
    /// shown with a pattern's dashes is found however it is typed.
    fn code_hash(
        &self,
        program: &tessera_domain::Program,
        code: &tessera_domain::Code,
    ) -> crate::model::SecretHash {
        let canonical = code.canonical(program.alphabet);
        self.ports
            .hasher
            .code_hash(&program.tenant_id, canonical.as_ref().unwrap_or(code))
    }
}

/// Refuses the call unless the caller's role grants `permission`.
fn require(caller: &Principal, permission: Permission) -> AppResult<()> {
    if caller.role.allows(permission) {
        Ok(())
    } else {
        Err(AppError::Forbidden)
    }
}

impl crate::usecases::HealthUseCases for Tessera {
    fn ready(&self) -> AppResult<()> {
        self.ports.health.ping().map_err(|_| AppError::Unavailable)
    }
}
