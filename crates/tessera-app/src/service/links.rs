//! [`LinkUseCases`] for [`Tessera`]: link pages and the code form.

use tessera_domain::{LinkToken, ProgramId, TicketState};

use super::Tessera;
use crate::links::{CodeForm, LinkRedeemRequest, LinkUseCases, LinkView, LinkedTicket};
use crate::model::RedemptionAttempt;
use crate::usecases::Redemption;
use crate::{AppError, AppResult};

impl Tessera {
    fn linked(&self, token: &LinkToken) -> AppResult<Option<LinkedTicket>> {
        Ok(self
            .ports
            .links
            .find_by_link(token.tenant(), self.ports.hasher.link_hash(token))?)
    }
}

impl LinkUseCases for Tessera {
    fn view_link(&self, token: &LinkToken) -> AppResult<LinkView> {
        let now = self.ports.clock.now();
        let LinkedTicket { view, program, .. } = self.linked(token)?.ok_or(AppError::NotFound)?;
        let remaining = view.remaining();
        // A link that can never be redeemed again is gone, as far as a visitor can
        // tell; one that may work later (not started, suspended, locked, disabled)
        // still shows, and its button fails with the one message.
        if view.ticket.state == TicketState::Revoked
            || remaining == 0
            || now >= program.window.end()
        {
            return Err(AppError::NotFound);
        }
        Ok(LinkView {
            program_id: program.id,
            program_name: program.name.map(|name| name.as_str().to_owned()),
            object_id: program.object_id.as_str().to_owned(),
            remaining,
            valid_from: program.window.start(),
            valid_until: program.window.end(),
            not_yet_valid: now < program.window.start(),
            email_required: view.ticket.email.is_some(),
            url_prefix: program.url_prefix,
        })
    }

    fn redeem_link(&self, request: LinkRedeemRequest) -> AppResult<Redemption> {
        let now = self.ports.clock.now();
        // Resolving the link only reads an immutable mapping; nothing is evaluated
        // before the throttle admits the attempt.
        let linked = match &request.token {
            Some(token) => self.linked(token)?,
            None => None,
        };
        // Every return below but a success counts as a failure of the client when
        // this drops — and of the program once the attempt joined it.
        let mut admission =
            self.throttle
                .admit(request.client, None, now)
                .map_err(|retry_after_seconds| AppError::TooManyAttempts {
                    retry_after_seconds,
                })?;
        // An unknown link names no program: it spends only its sender's budget.
        let Some(linked) = linked else {
            tracing::debug!("link redemption failed: unknown link");
            return Err(AppError::InvalidCode);
        };
        self.throttle
            .join_program(&mut admission, &linked.program.id)
            .map_err(|retry_after_seconds| AppError::TooManyAttempts {
                retry_after_seconds,
            })?;
        let attempt = RedemptionAttempt {
            tenant_id: linked.program.tenant_id.clone(),
            program_id: linked.program.id.clone(),
            code_hash: linked.code_hash,
            email: request
                .email
                .map(|email| email.trim().to_lowercase())
                .filter(|email| !email.is_empty()),
            now,
            // A page has no redeemerId: a ticket with a per-redeemer share
            // refuses it (`redeemer_required`), as the API would.
            redeemer: None,
            email_lock_seconds: self.limits.email_lock_seconds,
            shared_failure: admission.shared_failure(),
        };
        // The same conditional statement, events and classification as a code.
        let grant = match self.ports.redemptions.redeem(&attempt)? {
            Ok(grant) => grant,
            Err(reason) => {
                tracing::debug!(program = %attempt.program_id, reason = reason.code(), "link redemption failed");
                return Err(AppError::InvalidCode);
            }
        };
        admission.succeeded();
        tracing::debug!(program = %grant.program_id, ticket = %grant.ticket_id, remaining = grant.remaining, "redeemed by link");
        let access_token = self.ports.signer.access_token(&grant, now);
        Ok(Redemption {
            grant,
            access_token,
        })
    }

    fn code_form(&self, program: &ProgramId) -> AppResult<CodeForm> {
        let program = self
            .ports
            .programs
            .locate(program)?
            .ok_or(AppError::NotFound)?;
        Ok(CodeForm {
            program_id: program.id,
            program_name: program.name.map(|name| name.as_str().to_owned()),
            object_id: program.object_id.as_str().to_owned(),
        })
    }
}
