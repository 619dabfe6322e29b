//! The redemption lifecycle's use cases. Validation and holds go through the same
//! checks as a redemption (`Tessera::prepare`: throttle, signature, program,
//! code shape) and count their failures alike; confirm, release and rollback
//! name a hold or a redemption of the caller's tenant.

use tessera_domain::{HoldId, HoldTtl, Permission, RedemptionId, RollbackReason};

use super::{require, Tessera};
use crate::lifecycle::{Hold, HoldRefusal, RollbackRefusal, RolledBack, Validation};
use crate::usecases::{LifecycleUseCases, Principal, RedeemRequest, Redemption};
use crate::{AppError, AppResult};

impl LifecycleUseCases for Tessera {
    fn validate(&self, caller: Option<Principal>, request: RedeemRequest) -> AppResult<Validation> {
        let prepared = self.prepare(caller.as_ref(), request)?;
        match self.ports.lifecycle.validate(&prepared.attempt)? {
            Ok(validation) => {
                prepared.admission.succeeded();
                Ok(validation)
            }
            Err(reason) => Err(self.refusal(&prepared, reason)?),
        }
    }

    fn hold(&self, caller: &Principal, request: RedeemRequest, ttl: HoldTtl) -> AppResult<Hold> {
        require(caller, Permission::RedeemWithDetails)?;
        let prepared = self.prepare(Some(caller), request)?;
        // A key of another tenant holds nothing there: its attempt fails like a
        // public one, so program ids of other tenants stay unconfirmed.
        if prepared.attempt.tenant_id != caller.tenant_id {
            return Err(AppError::InvalidCode);
        }
        let id = HoldId::generate();
        let expires_at = ttl.expires_at(prepared.attempt.now);
        match self
            .ports
            .lifecycle
            .hold(&prepared.attempt, &id, expires_at)?
        {
            Ok(hold) => {
                prepared.admission.succeeded();
                Ok(hold)
            }
            Err(reason) => Err(self.refusal(&prepared, reason)?),
        }
    }

    fn confirm_hold(&self, caller: &Principal, id: &HoldId) -> AppResult<Redemption> {
        require(caller, Permission::RedeemWithDetails)?;
        let now = self.ports.clock.now();
        match self.ports.lifecycle.confirm(&caller.tenant_id, id, now)? {
            Ok(grant) => {
                let access_token = self.ports.signer.access_token(&grant, now);
                Ok(Redemption {
                    grant,
                    access_token,
                })
            }
            Err(refusal) => Err(hold_refused(refusal)),
        }
    }

    fn release_hold(&self, caller: &Principal, id: &HoldId) -> AppResult<()> {
        require(caller, Permission::RedeemWithDetails)?;
        let now = self.ports.clock.now();
        self.ports
            .lifecycle
            .release(&caller.tenant_id, id, now)?
            .map_err(hold_refused)
    }

    fn get_hold(&self, caller: &Principal, id: &HoldId) -> AppResult<Hold> {
        require(caller, Permission::RedeemWithDetails)?;
        let now = self.ports.clock.now();
        self.ports
            .lifecycle
            .get_hold(&caller.tenant_id, id, now)?
            .ok_or(AppError::NotFound)
    }

    fn rollback(
        &self,
        caller: &Principal,
        id: &RedemptionId,
        reason: Option<RollbackReason>,
    ) -> AppResult<RolledBack> {
        require(caller, Permission::RedeemWithDetails)?;
        let now = self.ports.clock.now();
        self.ports
            .lifecycle
            .rollback(&caller.tenant_id, id, &caller.key_id, reason, now)?
            .map_err(|refusal| match refusal {
                RollbackRefusal::NotFound => AppError::NotFound,
                RollbackRefusal::AlreadyRolledBack => AppError::AlreadyRolledBack,
                RollbackRefusal::NotAllowed => AppError::RollbackNotAllowed,
            })
    }
}

fn hold_refused(refusal: HoldRefusal) -> AppError {
    match refusal {
        HoldRefusal::NotFound => AppError::NotFound,
        HoldRefusal::NotActive => AppError::HoldNotActive,
        // The caller holds a key of the hold's tenant: it may see the reason.
        HoldRefusal::Failure(reason) => AppError::Redemption(reason),
    }
}
