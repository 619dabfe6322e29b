use tessera_domain::{has_valid_check, CodeInput, Permission, ProgramId, RedemptionFailure};

use super::{ProgramFacts, Tessera, PROGRAM_FACTS_CAPACITY};
use crate::model::RedemptionAttempt;
use crate::usecases::{Principal, RedeemRequest, RedeemUseCases, Redemption};
use crate::{AppError, AppResult};

impl Tessera {
    /// The program's immutable facts, from the cache or the store. Unknown ids are
    /// cached too, so that an unknown program costs what an unknown code does (no
    /// extra lookup: the equal-time probe does the rest). Safe because program ids
    /// are random: an id asked for before its program existed is a 2^-117 guess.
    fn program_facts(&self, id: &ProgramId) -> AppResult<Option<ProgramFacts>> {
        if let Some(facts) = self
            .program_facts
            .read()
            .map_err(|_| AppError::Internal("program cache poisoned".to_owned()))?
            .get(id)
        {
            return Ok(facts.clone());
        }
        let facts = self.ports.programs.locate(id)?.map(|program| ProgramFacts {
            tenant_id: program.tenant_id,
            alphabet: program.alphabet,
            check_digit: program.check_digit,
        });
        let mut cache = self
            .program_facts
            .write()
            .map_err(|_| AppError::Internal("program cache poisoned".to_owned()))?;
        if cache.len() >= PROGRAM_FACTS_CAPACITY {
            cache.clear();
        }
        cache.insert(id.clone(), facts.clone());
        Ok(facts)
    }

    pub(super) fn forget_program(&self, id: &ProgramId) {
        if let Ok(mut cache) = self.program_facts.write() {
            cache.remove(id);
        }
    }

    /// The error the store's refusal `reason` answers. `ticket_not_found` tells a
    /// detailed caller that the program exists, and the facts that let the attempt
    /// reach the store may come from this process' cache while the program was
    /// deleted through another replica; so that answer is first confirmed against
    /// the store (a deleted program answers `invalid_code`, as an unknown one
    /// does). Public callers see `invalid_code` either way, in unchanged time.
    pub(super) fn refusal(
        &self,
        prepared: &Prepared<'_>,
        reason: RedemptionFailure,
    ) -> AppResult<AppError> {
        if prepared.detailed && reason == RedemptionFailure::TicketNotFound {
            let program = &prepared.attempt.program_id;
            self.forget_program(program);
            if self.program_facts(program)?.is_none() {
                return Ok(failure(false, program.as_str(), reason));
            }
        }
        Ok(prepared.fail(reason))
    }
}

/// Splits a `signedCode` (`code.signature`) into its parts; a plain code has no
/// signature. No alphabet contains `.`, so the split is unambiguous.
fn split_signed(presented: &str) -> (&str, Option<&str>) {
    match presented.split_once('.') {
        Some((code, signature)) => (code, Some(signature)),
        None => (presented, None),
    }
}

/// A redemption attempt that passed every check made before the store: what the
/// store evaluates, whether the caller sees reasons, and the throttle's ticket
/// (dropped unsettled, it counts a failure).
pub(super) struct Prepared<'a> {
    pub admission: crate::throttle::Admission<'a>,
    pub attempt: RedemptionAttempt,
    pub detailed: bool,
}

impl Prepared<'_> {
    /// The error a refusal answers: the reason for detailed callers, else
    /// `invalid_code`.
    pub fn fail(&self, reason: RedemptionFailure) -> AppError {
        failure(self.detailed, self.attempt.program_id.as_str(), reason)
    }
}

fn failure(detailed: bool, program: &str, reason: RedemptionFailure) -> AppError {
    let error = if detailed {
        AppError::Redemption(reason)
    } else {
        AppError::InvalidCode
    };
    tracing::debug!(program, error = %error, "redemption failed");
    error
}

impl Tessera {
    /// Everything a redemption, a validation and a hold check before the store:
    /// the throttle's admission, the signature of a `signedCode`, the program
    /// (and the tenant it names), the code's shape, and its hash.
    pub(super) fn prepare(
        &self,
        caller: Option<&Principal>,
        request: RedeemRequest,
    ) -> AppResult<Prepared<'_>> {
        let now = self.ports.clock.now();
        let client = request.client;
        let named = request.program_id.as_ref();
        // Every return below but a success counts as a failure of the client when
        // this drops — and of the program once the attempt joined it.
        let mut admission =
            self.throttle
                .admit(client, None, now)
                .map_err(|retry_after_seconds| AppError::TooManyAttempts {
                    retry_after_seconds,
                })?;
        let counted = |error: AppError| {
            tracing::debug!(program = ?named, error = %error, "redemption failed");
            error
        };

        let Some(program_id) = named else {
            return Err(counted(AppError::InvalidCode));
        };
        let (code_part, signature) = split_signed(request.code.expose_secret());
        // A forged signature is refused before any lookup (and takes the same time
        // whether the program exists or not).
        if signature.is_some_and(|signature| {
            !self
                .ports
                .signer
                .verify_code(program_id, code_part, signature)
        }) {
            return Err(counted(AppError::InvalidCode));
        }
        let facts = self.program_facts(program_id)?.filter(|facts| {
            request
                .tenant_id
                .as_ref()
                .is_none_or(|named| *named == facts.tenant_id)
        });
        // An unknown program, or one of another tenant, fails like an unknown code
        // for everyone, in the time an unknown code takes: telling them apart would
        // reveal which program ids exist.
        let Some(facts) = facts else {
            self.ports.redemptions.probe(program_id, now)?;
            return Err(counted(AppError::InvalidCode));
        };
        let tenant_caller = caller
            .as_ref()
            .is_some_and(|caller| caller.tenant_id == facts.tenant_id);
        let detailed = caller.is_some_and(|caller| {
            caller.tenant_id == facts.tenant_id && caller.role.allows(Permission::RedeemWithDetails)
        });
        // Any length 4..65 is looked up: chosen codes need not have the program's
        // length, and the throttle, not the length, is what bounds guessing.
        let Some(code) = CodeInput(code_part).canonical(facts.alphabet) else {
            // No code of the program looks like this: the program's budget is not
            // spent, and the time is an unknown program's.
            self.ports.redemptions.probe(program_id, now)?;
            return Err(failure(
                detailed,
                program_id.as_str(),
                RedemptionFailure::TicketNotFound,
            ));
        };
        if facts.check_digit && !has_valid_check(facts.alphabet, code.expose_secret()) {
            // Public arithmetic, refused before any lookup: not a failed attempt.
            admission.succeeded();
            return Err(AppError::MistypedCode);
        }
        // Only now can the attempt be a guess at the program's codes. A key of the
        // program's tenant is never held back by (nor spends) the public budget.
        if !tenant_caller {
            self.throttle
                .join_program(&mut admission, program_id)
                .map_err(|retry_after_seconds| AppError::TooManyAttempts {
                    retry_after_seconds,
                })?;
        }
        let redeemer = request.redeemer_id.as_ref().map(|id| {
            self.ports
                .hasher
                .redeemer_hash(&facts.tenant_id, id.as_str())
        });
        let attempt = RedemptionAttempt {
            code_hash: self.ports.hasher.code_hash(&facts.tenant_id, &code),
            tenant_id: facts.tenant_id,
            program_id: program_id.clone(),
            email: request
                .email
                .map(|email| email.trim().to_lowercase())
                .filter(|email| !email.is_empty()),
            now,
            redeemer,
            email_lock_seconds: self.limits.email_lock_seconds,
        };
        Ok(Prepared {
            admission,
            attempt,
            detailed,
        })
    }
}

impl RedeemUseCases for Tessera {
    fn redeem(&self, caller: Option<Principal>, request: RedeemRequest) -> AppResult<Redemption> {
        let prepared = self.prepare(caller.as_ref(), request)?;
        let grant = match self.ports.redemptions.redeem(&prepared.attempt)? {
            Ok(grant) => grant,
            Err(reason) => return Err(self.refusal(&prepared, reason)?),
        };
        let now = prepared.attempt.now;
        prepared.admission.succeeded();
        tracing::debug!(program = %grant.program_id, ticket = %grant.ticket_id, remaining = grant.remaining, "redeemed");
        let access_token = self.ports.signer.access_token(&grant, now);
        Ok(Redemption {
            grant,
            access_token,
        })
    }
}
