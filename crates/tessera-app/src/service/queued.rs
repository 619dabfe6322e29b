//! The hot requests whose statements wait in the store's queue without holding a
//! thread (`QueuedUseCases`): a redemption (anonymous or with a key) and a
//! standalone use. The checks before the store run from memory on the caller's
//! thread — the presented key too, from the access store's cache — the store's
//! batch answers the awaited future, and only what needs the database (a key not
//! cached, a refusal's classification, a program not cached yet, a failure counted
//! through the shared ledger) goes to the blocking pool. A key is taken from memory
//! as it is known there, which may lag a delete: the statement that spends the
//! use checks the key itself (`CallerKey`), and the HTTP adapter confirms the key
//! through `AccessUseCases::authenticate` before it answers anything but a
//! success. Public failures all take
//! one path — the queued statement (or the probe's), then the rest on the
//! blocking pool — so they take one time.

use std::sync::Arc;

use tessera_domain::{Permission, PresentedApiKey, PresentedTicket, StandaloneToken};

use super::redeem::{Prepared, Reach, Screened, Stage};
use super::{require, Tessera};
use crate::throttle::Admission;
use crate::usecases::{
    Awaited, Principal, QueuedRedemption, QueuedUse, QueuedUseCases, RedeemRequest, Redemption,
};
use crate::{AppError, AppResult};

impl QueuedUseCases for Tessera {
    fn authenticate_in_memory(&self, key: &PresentedApiKey) -> Awaited<Option<Principal>> {
        let hash = self.ports.hasher.api_key_hash(key.expose_secret());
        let Some(found) = self.ports.access.find_api_key_in_memory(hash) else {
            return Box::pin(std::future::ready(None));
        };
        Box::pin(async move {
            // A store error is left to `authenticate`, which reports it.
            found.await.ok().flatten().map(Principal::from)
        })
    }

    fn redeem_queued(
        self: Arc<Self>,
        caller: Option<Principal>,
        request: RedeemRequest,
    ) -> Awaited<QueuedRedemption> {
        Box::pin(async move {
            let screened = match self.screen(caller.as_ref(), &request, Reach::MemoryOnly) {
                Ok(screened) => screened,
                // Refused before any count or lookup (over budget, mistyped).
                Err(error) => return QueuedRedemption::Done(Err(error)),
            };
            match screened {
                Screened::Deferred => QueuedRedemption::Unqueued(caller, request),
                Screened::Hopeless {
                    admission,
                    program,
                    now,
                    ..
                } => {
                    let Some(probe) = self.ports.redemptions.probe_later(&program, now) else {
                        admission.withdraw();
                        return QueuedRedemption::Unqueued(caller, request);
                    };
                    let waiting = Waiting(Some(admission));
                    let probed = probe.await;
                    // `redeem_refused` admits it again, and counts it.
                    drop(waiting);
                    match probed {
                        Ok(()) => QueuedRedemption::Refused(caller, request),
                        Err(error) => QueuedRedemption::Done(Err(error.into())),
                    }
                }
                Screened::Ready(prepared) => {
                    // A key vouched for from memory is checked by the statement.
                    let caller_key = caller.as_ref().map(Principal::key);
                    let queued = self
                        .ports
                        .redemptions
                        .redeem_later(&prepared.attempt, caller_key);
                    let Some(queued) = queued else {
                        prepared.admission.withdraw();
                        return QueuedRedemption::Unqueued(caller, request);
                    };
                    let Prepared {
                        admission,
                        attempt,
                        detailed,
                    } = prepared;
                    let mut waiting = Waiting(Some(admission));
                    let answer = queued.await;
                    let Some(admission) = waiting.0.take() else {
                        unreachable!("taken only here");
                    };
                    match answer {
                        Ok(Some(grant)) => {
                            let prepared = Prepared {
                                admission,
                                attempt,
                                detailed,
                            };
                            QueuedRedemption::Done(self.conclude(prepared, Ok(grant)))
                        }
                        Ok(None) => {
                            admission.withdraw();
                            QueuedRedemption::Refused(caller, request)
                        }
                        // Unavailable (a full queue, a lost batch): answered as is;
                        // nothing was counted, so no ledger write on this thread.
                        Err(error) => {
                            admission.withdraw();
                            QueuedRedemption::Done(Err(error.into()))
                        }
                    }
                }
            }
        })
    }

    fn redeem_refused(
        &self,
        caller: Option<Principal>,
        request: RedeemRequest,
    ) -> AppResult<Redemption> {
        let prepared = self.prepare_at(caller.as_ref(), request, Stage::AfterQueue)?;
        let outcome = self.ports.redemptions.classify_refused(&prepared.attempt)?;
        self.conclude(prepared, outcome)
    }

    fn use_standalone_queued(
        self: Arc<Self>,
        caller: Principal,
        presented: PresentedTicket,
    ) -> Awaited<QueuedUse> {
        Box::pin(async move {
            if let Err(error) = require(&caller, Permission::UseStandaloneTickets) {
                return QueuedUse::Done(Err(error));
            }
            let Some(token) = StandaloneToken::parse(presented.expose_secret()) else {
                return QueuedUse::Done(Err(AppError::NotFound));
            };
            let hash = self.ports.hasher.standalone_hash(&caller.tenant_id, &token);
            let now = self.ports.clock.now();
            let Some(queued) = self.ports.standalone.use_ticket_later(
                &caller.tenant_id,
                hash,
                now,
                caller.key_id.clone(),
            ) else {
                return QueuedUse::Unqueued(caller, presented);
            };
            QueuedUse::Done(match queued.await {
                Ok(Some(used)) => Ok(used),
                Ok(None) => Err(AppError::NotFound),
                Err(error) => Err(error.into()),
            })
        })
    }
}

/// An admission while its attempt waits for the store. Dropped with the future
/// (the client went away), the attempt is withdrawn: its outcome was never seen,
/// and counting a failure would write to the shared ledger on a thread that must
/// not block.
struct Waiting<'a>(Option<Admission<'a>>);

impl Drop for Waiting<'_> {
    fn drop(&mut self) {
        if let Some(admission) = self.0.take() {
            admission.withdraw();
        }
    }
}
