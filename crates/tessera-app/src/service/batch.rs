//! Bulk issuance: reserve the whole count against the cap at once, then write and
//! hand out the tickets chunk by chunk, each chunk committed before it is shown.

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

impl Tessera {
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
        let mut issued: u32 = 0;
        while issued < count {
            let size = BATCH_CHUNK.min((count - issued) as usize);
            let mut chunk = Vec::with_capacity(size);
            if let Err(error) = self.write_chunk(&program, &request, size, now, &mut chunk) {
                // Tickets written before the failure exist: they keep their places
                // and are recorded.
                let written = issued + chunk.len() as u32;
                self.give_back(tenant, program_id, count - written);
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
            issued += chunk.len() as u32;
            if !sink.accept(&chunk) {
                tracing::warn!(program = %program_id, issued, count, "batch receiver went away; stopping");
                self.give_back(tenant, program_id, count - issued);
                break;
            }
        }
        self.ports
            .tickets
            .record_batch(tenant, program_id, issued, now)?;
        Ok(issued)
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
