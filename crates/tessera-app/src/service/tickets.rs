use tessera_domain::{
    effective_limit, LinkToken, NewTicketSpec, PageRequest, Permission, ProgramId, SignedCode,
    Ticket, TicketId, TicketLink, TicketState,
};

use super::{require, Tessera, SECRET_ATTEMPTS, UPDATE_ATTEMPTS};
use crate::model::{NewTicket, Page, TicketChanges, TicketView};
use crate::ports::StoreError;
use crate::usecases::{
    BatchRequest, BatchSink, ImportRow, IssueRequest, IssuedTicket, Principal, RowError,
    TicketUseCases,
};
use crate::{AppError, AppResult};

impl TicketUseCases for Tessera {
    fn issue_ticket(
        &self,
        caller: &Principal,
        program_id: &ProgramId,
        request: IssueRequest,
    ) -> AppResult<IssuedTicket> {
        require(caller, Permission::IssueTickets)?;
        let tenant = &caller.tenant_id;
        let program = self.ports.programs.get(tenant, program_id)?;
        let now = self.ports.clock.now();
        // Fail early with the precise reason; the store re-checks both atomically.
        if !program.is_issuing(now) {
            return Err(AppError::ProgramNotActive);
        }
        if !program.has_room_for(1) {
            return Err(AppError::MaxTicketsReached);
        }
        // A chosen code is parsed once; a generated one is drawn afresh per attempt.
        let chosen = request
            .code
            .as_ref()
            .map(|raw| program.chosen_code(raw.expose_secret()))
            .transpose()?;
        for _ in 0..SECRET_ATTEMPTS {
            let code = chosen.clone().unwrap_or_else(|| program.generate_code());
            let link_token = program
                .url_prefix
                .as_ref()
                .map(|_| LinkToken::generate(tenant));
            let spec = NewTicketSpec {
                email: request.email.clone(),
                subject: request.subject.clone(),
                max_redemptions: request.max_redemptions,
                per_redeemer_limit: request.per_redeemer_limit,
                payload: request.payload.clone(),
            };
            let ticket = Ticket::new_active(&program, spec, now);
            let new = NewTicket {
                code_hash: self.code_hash(&program, &code),
                link_hash: link_token
                    .as_ref()
                    .map(|token| self.ports.hasher.link_hash(token)),
                ticket,
            };
            let issued = if request.replace {
                self.ports.tickets.issue_replacing(&new, now)
            } else {
                self.ports.tickets.issue(&new, now)
            };
            match issued {
                Ok(()) => {
                    let link = program
                        .url_prefix
                        .as_ref()
                        .zip(link_token)
                        .map(|(prefix, token)| TicketLink::join(prefix, &token));
                    return Ok(IssuedTicket {
                        ticket_id: new.ticket.id,
                        program_id: program.id.clone(),
                        email: new.ticket.email,
                        subject: new.ticket.subject,
                        max_redemptions: effective_limit(
                            request.max_redemptions,
                            program.max_redemptions,
                        ),
                        link,
                        signed_code: request.signed.then(|| {
                            let signature = self.ports.signer.sign_code(&program.id, &code);
                            SignedCode::join(&code, &signature)
                        }),
                        code,
                    });
                }
                // The unique index, not a prior read, says a chosen code is taken.
                Err(StoreError::CodeTaken) if chosen.is_some() => {
                    return Err(AppError::CodeTaken { lines: Vec::new() })
                }
                Err(StoreError::DuplicateSecret | StoreError::CodeTaken) => continue,
                Err(other) => return Err(other.into()),
            }
        }
        Err(StoreError::DuplicateSecret.into())
    }

    fn issue_batch(
        &self,
        caller: &Principal,
        program: &ProgramId,
        request: BatchRequest,
        sink: &mut dyn BatchSink,
    ) -> AppResult<u32> {
        self.run_batch(caller, program, request, sink)
    }

    fn import_tickets(
        &self,
        caller: &Principal,
        program: &ProgramId,
        rows: &mut dyn Iterator<Item = Result<ImportRow, RowError>>,
    ) -> AppResult<u32> {
        self.run_import(caller, program, rows)
    }

    fn get_ticket(&self, caller: &Principal, id: &TicketId) -> AppResult<TicketView> {
        require(caller, Permission::IssueTickets)?;
        let view = self.ports.tickets.get(&caller.tenant_id, id)?;
        Ok(as_of(view, self.ports.clock.now()))
    }

    fn list_tickets(
        &self,
        caller: &Principal,
        program: &ProgramId,
        page: PageRequest,
    ) -> AppResult<Page<TicketView>> {
        require(caller, Permission::IssueTickets)?;
        let mut page = self.ports.tickets.list(&caller.tenant_id, program, page)?;
        let now = self.ports.clock.now();
        page.items = page
            .items
            .into_iter()
            .map(|view| as_of(view, now))
            .collect();
        Ok(page)
    }

    fn set_ticket_state(
        &self,
        caller: &Principal,
        id: &TicketId,
        state: TicketState,
        if_match: Option<i64>,
    ) -> AppResult<TicketView> {
        require(caller, Permission::ManageTicketState)?;
        let tenant = &caller.tenant_id;
        for _ in 0..UPDATE_ATTEMPTS {
            let current = self.ports.tickets.get(tenant, id)?;
            if if_match.is_some_and(|expected| expected != current.ticket.version) {
                return Err(AppError::VersionConflict);
            }
            let target = current.ticket.state.admin_transition(state)?;
            let now = self.ports.clock.now();
            match self
                .ports
                .tickets
                .set_state(tenant, id, target, current.ticket.version, now)
            {
                Err(StoreError::VersionConflict) if if_match.is_none() => continue,
                result => return Ok(as_of(result?, now)),
            }
        }
        Err(AppError::VersionConflict)
    }

    fn update_ticket(
        &self,
        caller: &Principal,
        id: &TicketId,
        changes: TicketChanges,
        if_match: Option<i64>,
    ) -> AppResult<TicketView> {
        require(caller, Permission::ManageTicketState)?;
        let tenant = &caller.tenant_id;
        for _ in 0..UPDATE_ATTEMPTS {
            let current = self.ports.tickets.get(tenant, id)?;
            if if_match.is_some_and(|expected| expected != current.ticket.version) {
                return Err(AppError::VersionConflict);
            }
            let state = changes
                .state
                .map(|target| current.ticket.state.admin_transition(target))
                .transpose()?;
            if state.is_none() && current.ticket.state == TicketState::Revoked {
                return Err(tessera_domain::DomainError::new(
                    "maxRedemptions",
                    "a revoked ticket cannot be refilled",
                )
                .into());
            }
            let checked = TicketChanges { state, ..changes };
            let now = self.ports.clock.now();
            match self
                .ports
                .tickets
                .update_ticket(tenant, id, checked, current.ticket.version, now)
            {
                Err(StoreError::VersionConflict) if if_match.is_none() => continue,
                result => return Ok(result?),
            }
        }
        Err(AppError::VersionConflict)
    }

    fn revoke_ticket(&self, caller: &Principal, id: &TicketId) -> AppResult<()> {
        require(caller, Permission::IssueTickets)?;
        Ok(self
            .ports
            .tickets
            .revoke(&caller.tenant_id, id, self.ports.clock.now())?)
    }
}

/// The view as a caller sees it at `now`: a lock whose time is up reads `active`
/// although the row still says `locked` (it is rewritten by the next attempt).
fn as_of(mut view: TicketView, now: chrono::DateTime<chrono::Utc>) -> TicketView {
    view.ticket.state = view.ticket.state_at(now);
    view
}
