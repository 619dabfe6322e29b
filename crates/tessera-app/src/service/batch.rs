//! Bulk issuance: reserve the whole count against the cap at once, then write and
//! hand out the tickets chunk by chunk, each chunk committed before it is shown.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::mpsc;

use tessera_domain::{Code, NewTicketSpec, Permission, Program, ProgramId, Ticket};

use super::{require, Tessera, SECRET_ATTEMPTS};
use crate::model::NewTicket;
use crate::usecases::{BatchRequest, BatchSink, IssuedCode, Principal};
use crate::{AppError, AppResult};

/// Tickets per chunk: large enough to amortise a round trip, small enough to
/// stream steadily and keep memory flat for a million-ticket batch.
pub const BATCH_CHUNK: usize = 5_000;

impl Tessera {
    fn new_batch_ticket(
        &self,
        program: &Program,
        request: &BatchRequest,
        now: chrono::DateTime<chrono::Utc>,
    ) -> (NewTicket, Code) {
        let code = program.generate_code();
        let spec = NewTicketSpec {
            max_redemptions: request.max_redemptions,
            payload: request.payload.clone(),
            ..NewTicketSpec::default()
        };
        let ticket = Ticket::new_active(program, spec, now);
        let new = NewTicket {
            code_hash: self.code_hash(program, &code),
            // Batch tickets carry no link: a link per ticket would need its own
            // secret column in the CSV, which the batch format does not have.
            link_hash: None,
            ticket,
        };
        (new, code)
    }

    /// Writes one chunk into `issued`, drawing fresh codes for any that collided.
    /// On error, `issued` holds the tickets of the chunk that were written.
    fn write_chunk(
        &self,
        program: &Program,
        request: &BatchRequest,
        size: usize,
        now: chrono::DateTime<chrono::Utc>,
        issued: &mut Vec<IssuedCode>,
    ) -> AppResult<()> {
        let (mut tickets, mut codes): (Vec<NewTicket>, Vec<Code>) = (0..size)
            .map(|_| self.new_batch_ticket(program, request, now))
            .unzip();
        for _ in 0..SECRET_ATTEMPTS {
            let skipped = self.ports.tickets.insert_reserved(&tickets)?;
            let mut retry = (Vec::new(), Vec::new());
            for (index, (ticket, code)) in tickets.into_iter().zip(codes).enumerate() {
                if skipped.contains(&index) {
                    let (fresh, fresh_code) = self.new_batch_ticket(program, request, now);
                    retry.0.push(fresh);
                    retry.1.push(fresh_code);
                } else {
                    issued.push(IssuedCode {
                        ticket_id: ticket.ticket.id,
                        code,
                    });
                }
            }
            (tickets, codes) = retry;
            if tickets.is_empty() {
                return Ok(());
            }
        }
        Err(AppError::Internal(
            "batch codes collided repeatedly".to_owned(),
        ))
    }
}

/// What writing one chunk came to: its tickets, written and committed, or the
/// error that stopped it with the tickets of the chunk written before it.
type Written = Result<Vec<IssuedCode>, (AppError, Vec<IssuedCode>)>;

/// A batch's progress as its chunks come back.
struct Progress<'s> {
    sink: &'s mut dyn BatchSink,
    /// Tickets written (delivered or not: their places are taken either way).
    written: u32,
    failure: Option<AppError>,
    receiver_left: bool,
}

impl Progress<'_> {
    /// Counts a chunk and hands it to the sink; whether the batch goes on.
    fn settle(&mut self, outcome: Written, program: &ProgramId, count: u32) -> bool {
        match outcome {
            Ok(chunk) => {
                self.written += chunk.len() as u32;
                if self.going_on() && !self.sink.accept(&chunk) {
                    tracing::warn!(program = %program, written = self.written, count, "batch receiver went away; stopping");
                    self.receiver_left = true;
                }
            }
            Err((error, chunk)) => {
                self.written += chunk.len() as u32;
                self.failure.get_or_insert(error);
            }
        }
        self.going_on()
    }

    fn going_on(&self) -> bool {
        self.failure.is_none() && !self.receiver_left
    }
}

impl Tessera {
    /// Claims the next chunk of the batch from `claimed` and writes it; `None`
    /// once every place is claimed.
    fn next_chunk(
        &self,
        program: &Program,
        request: &BatchRequest,
        now: chrono::DateTime<chrono::Utc>,
        claimed: &AtomicUsize,
    ) -> Option<Written> {
        let start = claimed.fetch_add(BATCH_CHUNK, Ordering::AcqRel);
        let left = (request.count.get() as usize).checked_sub(start)?;
        if left == 0 {
            return None;
        }
        let size = left.min(BATCH_CHUNK);
        let mut chunk = Vec::with_capacity(size);
        Some(
            match self.write_chunk(program, request, size, now, &mut chunk) {
                Ok(()) => Ok(chunk),
                Err(error) => Err((error, chunk)),
            },
        )
    }

    pub(super) fn run_batch(
        &self,
        caller: &Principal,
        program_id: &ProgramId,
        request: BatchRequest,
        sink: &mut dyn BatchSink,
    ) -> AppResult<u32> {
        require(caller, Permission::IssueTickets)?;
        let tenant = &caller.tenant_id;
        let count = request.count.get();
        let now = self.ports.clock.now();
        let program = self.ports.tickets.reserve(tenant, program_id, count, now)?;
        let claimed = AtomicUsize::new(0);
        let mut progress = Progress {
            sink,
            written: 0,
            failure: None,
            receiver_left: false,
        };
        let writers = usize::from(self.limits.batch_writers.max(1));
        if writers == 1 {
            while let Some(outcome) = self.next_chunk(&program, &request, now, &claimed) {
                if !progress.settle(outcome, program_id, count) {
                    break;
                }
            }
        } else {
            // Each writer claims chunks and writes them on its own connection;
            // this thread hands them to the sink in the order they committed.
            // Once the batch stops, writers finish the chunk they hold (counted,
            // not delivered) and claim no more.
            let stop = AtomicBool::new(false);
            std::thread::scope(|scope| {
                let (done, chunks) = mpsc::sync_channel::<Written>(writers);
                for _ in 0..writers {
                    let done = done.clone();
                    let (program, request, claimed, stop) = (&program, &request, &claimed, &stop);
                    scope.spawn(move || {
                        while !stop.load(Ordering::Acquire) {
                            let Some(outcome) = self.next_chunk(program, request, now, claimed)
                            else {
                                break;
                            };
                            if done.send(outcome).is_err() {
                                break;
                            }
                        }
                    });
                }
                drop(done);
                for outcome in chunks {
                    if !progress.settle(outcome, program_id, count) {
                        stop.store(true, Ordering::Release);
                    }
                }
            });
        }
        let Progress {
            written, failure, ..
        } = progress;
        self.give_back(tenant, program_id, count - written);
        if let Some(error) = failure {
            // Tickets written before the failure exist: they keep their places
            // and are recorded.
            if written > 0 {
                if let Err(record_error) = self
                    .ports
                    .tickets
                    .record_batch(tenant, program_id, written, now)
                {
                    tracing::error!(program = %program_id, written, %record_error, "could not record a failed batch's tickets");
                }
            }
            return Err(error);
        }
        self.ports
            .tickets
            .record_batch(tenant, program_id, written, now)?;
        Ok(written)
    }

    fn give_back(&self, tenant: &tessera_domain::TenantId, program: &ProgramId, unused: u32) {
        if unused == 0 {
            return;
        }
        if let Err(error) = self.ports.tickets.release(tenant, program, unused) {
            tracing::error!(program = %program, unused, %error, "could not give back unused batch places");
        }
    }
}
