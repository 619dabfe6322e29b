use tessera_domain::{
    PageRequest, Permission, PresentedTicket, StandaloneTicket, StandaloneTicketId, StandaloneToken,
};

use super::{require, Tessera, SECRET_ATTEMPTS};
use crate::model::{Page, StandaloneDeletion, StandaloneUse};
use crate::ports::StoreError;
use crate::usecases::{DeleteOutcome, NewStandalone, Principal, StandaloneUseCases};
use crate::{AppError, AppResult};

impl StandaloneUseCases for Tessera {
    fn create_standalone(
        &self,
        caller: &Principal,
        new: NewStandalone,
    ) -> AppResult<StandaloneToken> {
        require(caller, Permission::IssueTickets)?;
        let now = self.ports.clock.now();
        let ticket = StandaloneTicket {
            id: StandaloneTicketId::generate(),
            tenant_id: caller.tenant_id.clone(),
            name: new.name,
            permissions: new.permissions,
            payload: new.payload,
            total_uses: new.uses,
            uses_left: new.uses.limit(),
            expires_at: new.ttl.expires_at(now),
            created_at: now,
        };
        for _ in 0..SECRET_ATTEMPTS {
            let token = StandaloneToken::generate();
            let hash = self.ports.hasher.standalone_hash(&caller.tenant_id, &token);
            match self.ports.standalone.create(
                &ticket,
                hash,
                self.limits.max_standalone_tickets,
                now,
            ) {
                Ok(()) => return Ok(token),
                Err(StoreError::DuplicateSecret) => continue,
                Err(other) => return Err(other.into()),
            }
        }
        Err(StoreError::DuplicateSecret.into())
    }

    fn use_standalone(
        &self,
        caller: &Principal,
        presented: &PresentedTicket,
    ) -> AppResult<StandaloneUse> {
        require(caller, Permission::UseStandaloneTickets)?;
        let token = StandaloneToken::parse(presented.expose_secret()).ok_or(AppError::NotFound)?;
        let hash = self.ports.hasher.standalone_hash(&caller.tenant_id, &token);
        self.ports
            .standalone
            .use_ticket(&caller.tenant_id, hash, self.ports.clock.now())?
            .ok_or(AppError::NotFound)
    }

    fn delete_standalone(
        &self,
        caller: &Principal,
        presented: &PresentedTicket,
    ) -> AppResult<DeleteOutcome> {
        require(caller, Permission::IssueTickets)?;
        let nothing = DeleteOutcome {
            uses: None,
            deleted: 0,
        };
        let Some(token) = StandaloneToken::parse(presented.expose_secret()) else {
            return Ok(nothing);
        };
        let hash = self.ports.hasher.standalone_hash(&caller.tenant_id, &token);
        let deleted =
            self.ports
                .standalone
                .delete(&caller.tenant_id, hash, self.ports.clock.now())?;
        Ok(match deleted {
            StandaloneDeletion::NothingLive => nothing,
            StandaloneDeletion::Deleted(left) => DeleteOutcome {
                uses: left.count(),
                deleted: 1,
            },
        })
    }

    fn list_standalone(
        &self,
        caller: &Principal,
        page: PageRequest,
    ) -> AppResult<Page<StandaloneTicket>> {
        require(caller, Permission::IssueTickets)?;
        Ok(self
            .ports
            .standalone
            .list(&caller.tenant_id, page, self.ports.clock.now())?)
    }
}
