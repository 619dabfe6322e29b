use tessera_domain::{CodeInput, Permission, ProgramId, RedemptionFailure};

use super::{ProgramFacts, Tessera, PROGRAM_FACTS_CAPACITY};
use crate::ports::RedemptionAttempt;
use crate::usecases::{Principal, RedeemRequest, RedeemUseCases, Redemption};
use crate::{AppError, AppResult};

impl Tessera {
    /// The program's immutable facts, from the cache or the store.
    fn program_facts(&self, id: &ProgramId) -> AppResult<Option<ProgramFacts>> {
        if let Some(facts) = self
            .program_facts
            .read()
            .map_err(|_| AppError::Internal("program cache poisoned".to_owned()))?
            .get(id)
        {
            return Ok(Some(facts.clone()));
        }
        let Some(program) = self.ports.programs.locate(id)? else {
            return Ok(None);
        };
        let facts = ProgramFacts {
            tenant_id: program.tenant_id,
            alphabet: program.alphabet,
            ticket_length: program.ticket_length,
        };
        let mut cache = self
            .program_facts
            .write()
            .map_err(|_| AppError::Internal("program cache poisoned".to_owned()))?;
        if cache.len() >= PROGRAM_FACTS_CAPACITY {
            cache.clear();
        }
        cache.insert(id.clone(), facts.clone());
        Ok(Some(facts))
    }

    pub(super) fn forget_program(&self, id: &ProgramId) {
        if let Ok(mut cache) = self.program_facts.write() {
            cache.remove(id);
        }
    }
}

impl RedeemUseCases for Tessera {
    fn redeem(&self, caller: Option<Principal>, request: RedeemRequest) -> AppResult<Redemption> {
        let facts = self.program_facts(&request.program_id)?.filter(|facts| {
            request
                .tenant_id
                .as_ref()
                .is_none_or(|named| *named == facts.tenant_id)
        });
        // An unknown program, or one of another tenant, fails like an unknown code
        // for everyone: telling them apart would reveal which program ids exist.
        let Some(facts) = facts else {
            return Err(AppError::InvalidCode);
        };
        let detailed = caller.is_some_and(|caller| {
            caller.tenant_id == facts.tenant_id && caller.role.allows(Permission::RedeemWithDetails)
        });
        let fail = |reason: RedemptionFailure| {
            if detailed {
                AppError::Redemption(reason)
            } else {
                AppError::InvalidCode
            }
        };
        let Some(code) = CodeInput(&request.code).normalize(facts.alphabet, facts.ticket_length)
        else {
            return Err(fail(RedemptionFailure::TicketNotFound));
        };
        let attempt = RedemptionAttempt {
            code_hash: self.ports.hasher.code_hash(&facts.tenant_id, &code),
            tenant_id: facts.tenant_id,
            program_id: request.program_id.clone(),
            email: request
                .email
                .map(|email| email.trim().to_lowercase())
                .filter(|email| !email.is_empty()),
            now: self.ports.clock.now(),
        };
        match self.ports.redemptions.redeem(&attempt)? {
            Ok(redeemed) => {
                tracing::debug!(program = %request.program_id, ticket = %redeemed.ticket_id, remaining = redeemed.remaining, "redeemed");
                Ok(Redemption {
                    object_id: redeemed.object_id,
                    program_id: request.program_id,
                    ticket_id: redeemed.ticket_id,
                    remaining: redeemed.remaining,
                    group_addresses: redeemed.group_addresses,
                    payload: redeemed.payload,
                })
            }
            Err(reason) => {
                tracing::debug!(program = %request.program_id, reason = reason.code(), "redemption failed");
                Err(fail(reason))
            }
        }
    }
}
