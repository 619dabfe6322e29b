use chrono::{DateTime, Utc};
use tessera_domain::{has_valid_check, CodeInput, Permission, ProgramId, RedemptionFailure};

use super::{ProgramFacts, Tessera, PROGRAM_FACTS_CAPACITY};
use crate::model::{RedemptionAttempt, SharedFailure};
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

    /// The program's facts if this process already knows them (`None`: not
    /// cached), without touching the store.
    pub(super) fn cached_program_facts(&self, id: &ProgramId) -> Option<Option<ProgramFacts>> {
        self.program_facts.read().ok()?.get(id).cloned()
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
        self.prepare_at(caller, request, Stage::Whole)
    }

    /// The equal-time probe of an attempt that no code can match: whole, or its
    /// rest when its first statement already ran through the store's queue.
    pub(super) fn probe(
        &self,
        program: &ProgramId,
        now: DateTime<Utc>,
        stage: Stage,
        shared: Option<SharedFailure>,
    ) -> AppResult<()> {
        match stage {
            Stage::Whole => self.ports.redemptions.probe(program, now, shared)?,
            Stage::AfterQueue => self.ports.redemptions.probe_refused(program, now, shared)?,
        }
        Ok(())
    }

    /// [`Self::prepare`], for an attempt at `stage`.
    pub(super) fn prepare_at(
        &self,
        caller: Option<&Principal>,
        request: RedeemRequest,
        stage: Stage,
    ) -> AppResult<Prepared<'_>> {
        match self.screen(caller, &request, Reach::Store)? {
            Screened::Ready(prepared) => Ok(prepared),
            Screened::Hopeless {
                mut admission,
                program,
                now,
                error,
            } => {
                let shared = admission.shared_failure();
                self.probe(&program, now, stage, shared)?;
                // Dropped unsettled: counted as the client's failure.
                drop(admission);
                Err(error)
            }
            Screened::Deferred => Err(AppError::Internal(
                "a check deferred although the store may be reached".to_owned(),
            )),
        }
    }

    /// The checks before the store. With [`Reach::MemoryOnly`] a check that needs
    /// the store (a program not cached, a failure whose count is shared through
    /// the ledger) or a wait (the program's slow lane) is not made: the attempt is
    /// withdrawn, nothing counted, and [`Screened::Deferred`] returned.
    pub(super) fn screen(
        &self,
        caller: Option<&Principal>,
        request: &RedeemRequest,
        reach: Reach,
    ) -> AppResult<Screened<'_>> {
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
        let memory_only = reach == Reach::MemoryOnly;
        let counted = |error: AppError| {
            tracing::debug!(program = ?named, error = %error, "redemption failed");
            error
        };

        let Some(program_id) = named else {
            if memory_only {
                return Ok(Screened::deferred(admission));
            }
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
            if memory_only {
                return Ok(Screened::deferred(admission));
            }
            return Err(counted(AppError::InvalidCode));
        }
        let facts = match reach {
            Reach::Store => self.program_facts(program_id)?,
            Reach::MemoryOnly => match self.cached_program_facts(program_id) {
                Some(facts) => facts,
                None => {
                    return Ok(Screened::deferred(admission));
                }
            },
        };
        let facts = facts.filter(|facts| {
            request
                .tenant_id
                .as_ref()
                .is_none_or(|named| *named == facts.tenant_id)
        });
        // An unknown program, or one of another tenant, fails like an unknown code
        // for everyone, in the time an unknown code takes: telling them apart would
        // reveal which program ids exist.
        let Some(facts) = facts else {
            return Ok(Screened::Hopeless {
                admission,
                program: program_id.clone(),
                now,
                error: counted(AppError::InvalidCode),
            });
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
            return Ok(Screened::Hopeless {
                admission,
                program: program_id.clone(),
                now,
                error: failure(
                    detailed,
                    program_id.as_str(),
                    RedemptionFailure::TicketNotFound,
                ),
            });
        };
        if facts.check_digit && !has_valid_check(facts.alphabet, code.expose_secret()) {
            // Public arithmetic, refused before any lookup: not a failed attempt.
            admission.succeeded();
            return Err(AppError::MistypedCode);
        }
        // Only now can the attempt be a guess at the program's codes. A key of the
        // program's tenant is never held back by (nor spends) the public budget.
        if !tenant_caller {
            if memory_only {
                if !self.throttle.join_program_now(&mut admission, program_id) {
                    return Ok(Screened::deferred(admission));
                }
            } else {
                self.throttle
                    .join_program(&mut admission, program_id)
                    .map_err(|retry_after_seconds| AppError::TooManyAttempts {
                        retry_after_seconds,
                    })?;
            }
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
                .as_deref()
                .map(|email| email.trim().to_lowercase())
                .filter(|email| !email.is_empty()),
            now,
            redeemer,
            email_lock_seconds: self.limits.email_lock_seconds,
            // Only a path that classifies a refusal counts it in the store: the
            // queued statement never does (its refusals come back through
            // `redeem_refused`, which prepares the attempt again), so the hot
            // path builds none.
            shared_failure: match reach {
                Reach::Store => admission.shared_failure(),
                Reach::MemoryOnly => None,
            },
        };
        Ok(Screened::Ready(Prepared {
            admission,
            attempt,
            detailed,
        }))
    }
}

/// How far the checks before the store may reach.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Reach {
    /// The store, and a wait in the program's slow lane: on the blocking pool.
    Store,
    /// This process' memory only: on a thread that must not block.
    MemoryOnly,
}

/// Where the checks before the store leave an attempt.
pub(super) enum Screened<'a> {
    /// For the store's statement.
    Ready(Prepared<'a>),
    /// No code can match it (an unknown program, another tenant's, a code no code
    /// of the program looks like): it takes the probe's time, then fails with
    /// `error`, counted as its client's failure only.
    Hopeless {
        admission: crate::throttle::Admission<'a>,
        program: ProgramId,
        now: DateTime<Utc>,
        error: AppError,
    },
    /// [`Reach::MemoryOnly`] could not decide it; withdrawn, nothing counted.
    Deferred,
}

impl<'a> Screened<'a> {
    /// Withdraws the attempt (nothing counted) and defers it.
    fn deferred(admission: crate::throttle::Admission<'a>) -> Self {
        admission.withdraw();
        Self::Deferred
    }
}

/// How much of a redemption already ran when it is prepared.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Stage {
    /// Nothing: the store's statement (or the probe's) is still to run.
    Whole,
    /// Its statement ran through the store's queue and refused
    /// (`QueuedUseCases::redeem_refused`): only the rest is left.
    AfterQueue,
}

impl Tessera {
    /// The store's answer to a prepared attempt, as `redeem` answers it.
    pub(super) fn conclude(
        &self,
        prepared: Prepared<'_>,
        outcome: Result<crate::model::Grant, RedemptionFailure>,
    ) -> AppResult<Redemption> {
        let grant = match outcome {
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

impl RedeemUseCases for Tessera {
    fn redeem(&self, caller: Option<Principal>, request: RedeemRequest) -> AppResult<Redemption> {
        let prepared = self.prepare(caller.as_ref(), request)?;
        let outcome = self.ports.redemptions.redeem(&prepared.attempt)?;
        self.conclude(prepared, outcome)
    }
}
