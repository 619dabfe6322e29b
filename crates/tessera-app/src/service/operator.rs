//! The operator's use cases: the program is found by id across tenants, then the
//! ordinary use case runs in that program's tenant.

use tessera_domain::{ApiKeyId, ProgramId, Role};

use super::Tessera;
use crate::operator::OperatorUseCases;
use crate::usecases::{BatchRequest, BatchSink, Principal};
use crate::{AppError, AppResult};

impl OperatorUseCases for Tessera {
    fn issue_operator_batch(
        &self,
        program_id: &ProgramId,
        request: BatchRequest,
        sink: &mut dyn BatchSink,
    ) -> AppResult<u32> {
        let program = self
            .ports
            .programs
            .locate(program_id)?
            .ok_or(AppError::NotFound)?;
        // The batch logic scopes every statement by its caller's tenant and checks
        // the caller's role: the operator acts in the program's tenant with the
        // admin role, under a key id that names no stored key and is never kept.
        let operator = Principal {
            tenant_id: program.tenant_id,
            key_id: ApiKeyId::generate(),
            role: Role::Admin,
        };
        self.run_batch(&operator, &program.id, request, sink)
    }
}
