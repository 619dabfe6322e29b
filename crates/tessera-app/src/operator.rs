//! The operator's inbound port: what the `tessera` command line does on behalf of
//! whoever runs the server, with no API key. It reaches across tenants, so only
//! the operator's own tools call it, never an HTTP route.

#[cfg(any(test, feature = "mocks"))]
use mockall::automock;
use tessera_domain::ProgramId;

use crate::usecases::{BatchRequest, BatchSink};
use crate::AppResult;

#[cfg_attr(any(test, feature = "mocks"), automock)]
pub trait OperatorUseCases: Send + Sync {
    /// Issues a batch of `program`, in whichever tenant holds it, exactly as
    /// [`crate::usecases::TicketUseCases::issue_batch`] does for an admin of that
    /// tenant: all or nothing against `maxTickets`, handed to `sink` chunk by chunk
    /// as each chunk commits. `NotFound` when no tenant has such a program.
    fn issue_operator_batch(
        &self,
        program: &ProgramId,
        request: BatchRequest,
        sink: &mut dyn BatchSink,
    ) -> AppResult<u32>;
}
