//! URL tickets and the pages people see: the use cases behind `/r/{linkToken}` and
//! the code form, and the one outbound port they add ([`LinkStore`]).
//!
//! A link is resolved to its ticket with a read of an immutable mapping (link hash
//! → tenant, program, code hash: none of them ever changes), and then redeemed
//! through [`crate::ports::RedemptionStore::redeem`] exactly like a typed code: the
//! one conditional statement (`tessera_redeem`) decides, with the same events and
//! the same failure classification. So invariant 1 has one implementation, not
//! two that could drift apart.

use std::net::IpAddr;

use chrono::{DateTime, Utc};
#[cfg(any(test, feature = "mocks"))]
use mockall::automock;
use tessera_domain::{LinkToken, Program, ProgramId, TenantId, UrlPrefix};

use crate::model::{SecretHash, TicketView};
use crate::ports::StoreResult;
use crate::usecases::Redemption;
use crate::AppResult;

/// A URL ticket found by its link, with its program and the hash its code is
/// stored by (which the redemption statement selects on).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LinkedTicket {
    pub view: TicketView,
    pub program: Program,
    pub code_hash: SecretHash,
}

/// Finding URL tickets by their link.
#[cfg_attr(any(test, feature = "mocks"), automock)]
pub trait LinkStore: Send + Sync {
    /// The ticket whose link token hashes to `link_hash`, with its program, in
    /// `tenant`: the tenant the token names. `None` for a token made before links
    /// named their tenant, which the store routes through its directory of such
    /// links. `None` when no ticket has that link. MUST NOT write anything.
    fn find_by_link(
        &self,
        tenant: Option<TenantId>,
        link_hash: SecretHash,
    ) -> StoreResult<Option<LinkedTicket>>;
}

/// What a link page shows before anything is consumed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LinkView {
    pub program_id: ProgramId,
    pub program_name: Option<String>,
    pub object_id: String,
    /// Uses left (at least 1: a used-up link is `NotFound`).
    pub remaining: u32,
    pub valid_from: DateTime<Utc>,
    pub valid_until: DateTime<Utc>,
    /// The program's window has not begun yet: the page says from when.
    pub not_yet_valid: bool,
    /// The ticket is bound to an email, which the visitor must type.
    pub email_required: bool,
    /// The program's current link base: the link is this followed by the token.
    pub url_prefix: Option<UrlPrefix>,
}

/// What the code form shows about its program.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CodeForm {
    pub program_id: ProgramId,
    pub program_name: Option<String>,
    pub object_id: String,
}

/// A press of a link page's button.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LinkRedeemRequest {
    /// `None` when the path held something that cannot be a link token: it fails,
    /// and counts, like an unknown link.
    pub token: Option<LinkToken>,
    /// The email typed on the page, as typed; `None` or blank when none.
    pub email: Option<String>,
    pub client: Option<IpAddr>,
}

#[cfg_attr(any(test, feature = "mocks"), automock)]
pub trait LinkUseCases: Send + Sync {
    /// What the link grants, without consuming anything (mail scanners and link
    /// previews fetch links). `NotFound` when the link is unknown, revoked, used up,
    /// or its program has ended or was deleted.
    fn view_link(&self, token: &LinkToken) -> AppResult<LinkView>;
    /// Redeems one use of the link's ticket, as a public caller: failure is
    /// `InvalidCode` (counted by the failed-redemption throttle like any
    /// redemption), or `TooManyAttempts` when the client or program is over its
    /// budget, in which case nothing is evaluated.
    fn redeem_link(&self, request: LinkRedeemRequest) -> AppResult<Redemption>;
    /// The program a code form redeems into. `NotFound` when unknown.
    fn code_form(&self, program: &ProgramId) -> AppResult<CodeForm>;
}
