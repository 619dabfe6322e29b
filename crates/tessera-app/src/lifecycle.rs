//! The data model of the redemption lifecycle (validate, hold, confirm, release,
//! roll back), which its use cases and its store port exchange.

use chrono::{DateTime, Utc};
use tessera_domain::{HoldId, HoldState, ProgramId, RedemptionFailure, RedemptionId, TicketId};

/// What a successful validation tells: the ticket would redeem now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Validation {
    pub program_id: ProgramId,
    pub ticket_id: TicketId,
    pub object_id: String,
    pub group_addresses: Vec<String>,
    /// Uses left now (live holds count as used).
    pub remaining: u32,
}

/// A hold as stored, with its state as of the read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Hold {
    pub id: HoldId,
    pub program_id: ProgramId,
    pub ticket_id: TicketId,
    pub state: HoldState,
    pub expires_at: DateTime<Utc>,
    pub created_at: DateTime<Utc>,
    /// The ticket's uses left, counting live holds (this one included) as used.
    pub remaining: u32,
}

/// Why a hold could not be confirmed or released.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HoldRefusal {
    /// No such hold in the tenant.
    NotFound,
    /// Expired, released or already confirmed (confirm); confirmed (release).
    NotActive,
    /// The hold was live but its ticket or program no longer redeems (confirm).
    Failure(RedemptionFailure),
}

/// A rollback that gave its use back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RolledBack {
    pub redemption_id: RedemptionId,
    pub ticket_id: TicketId,
    pub remaining: u32,
    pub rolled_back_at: DateTime<Utc>,
}

/// Why a rollback gave nothing back.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RollbackRefusal {
    NotFound,
    AlreadyRolledBack,
    NotAllowed,
}
