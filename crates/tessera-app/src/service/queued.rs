//! The anonymous redemption whose statement waits in the store's queue without
//! holding a thread (`QueuedRedeemUseCases`): the checks before the store run
//! from memory on the caller's thread, the store's batch answers the awaited
//! future, and only what needs the database (a refusal's classification, a
//! program not cached yet, a failure counted through the shared ledger) goes to
//! the blocking pool. Public failures all take one path — the queued statement
//! (or the probe's), then the rest on the blocking pool — so they take one time.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use super::redeem::{Prepared, Reach, Screened, Stage};
use super::Tessera;
use crate::throttle::Admission;
use crate::usecases::{QueuedRedeemUseCases, QueuedRedemption, RedeemRequest, Redemption};
use crate::AppResult;

impl QueuedRedeemUseCases for Tessera {
    fn redeem_queued(
        self: Arc<Self>,
        request: RedeemRequest,
    ) -> Pin<Box<dyn Future<Output = QueuedRedemption> + Send>> {
        Box::pin(async move {
            let screened = match self.screen(None, &request, Reach::MemoryOnly) {
                Ok(screened) => screened,
                // Refused before any count or lookup (over budget, mistyped).
                Err(error) => return QueuedRedemption::Done(Err(error)),
            };
            match screened {
                Screened::Deferred => QueuedRedemption::Unqueued(request),
                Screened::Hopeless {
                    admission,
                    program,
                    now,
                    ..
                } => {
                    let Some(probe) = self.ports.redemptions.probe_later(&program, now) else {
                        admission.withdraw();
                        return QueuedRedemption::Unqueued(request);
                    };
                    let waiting = Waiting(Some(admission));
                    let probed = probe.await;
                    // `redeem_refused` admits it again, and counts it.
                    drop(waiting);
                    match probed {
                        Ok(()) => QueuedRedemption::Refused(request),
                        Err(error) => QueuedRedemption::Done(Err(error.into())),
                    }
                }
                Screened::Ready(prepared) => {
                    let Some(queued) = self.ports.redemptions.redeem_later(&prepared.attempt)
                    else {
                        prepared.admission.withdraw();
                        return QueuedRedemption::Unqueued(request);
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
                            QueuedRedemption::Refused(request)
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

    fn redeem_refused(&self, request: RedeemRequest) -> AppResult<Redemption> {
        let prepared = self.prepare_at(None, request, Stage::AfterQueue)?;
        let outcome = self.ports.redemptions.classify_refused(&prepared.attempt)?;
        self.conclude(prepared, outcome)
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
