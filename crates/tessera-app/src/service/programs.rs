use tessera_domain::{
    EventType, NewProgram, PageRequest, Permission, Program, ProgramChanges, ProgramId,
};

use super::{require, Tessera, UPDATE_ATTEMPTS};
use crate::model::Page;
use crate::ports::StoreError;
use crate::usecases::{Principal, ProgramUseCases};
use crate::{AppError, AppResult};

impl Tessera {
    /// Reads, changes and conditionally writes a program. With `if_match` a stale
    /// version is the caller's conflict; without it a concurrent change is ours, so
    /// we re-read and try again.
    fn change_program(
        &self,
        caller: &Principal,
        id: &ProgramId,
        if_match: Option<i64>,
        event: EventType,
        change: impl Fn(&Program) -> AppResult<Program>,
    ) -> AppResult<Program> {
        require(caller, Permission::ManagePrograms)?;
        for _ in 0..UPDATE_ATTEMPTS {
            let current = self.ports.programs.get(&caller.tenant_id, id)?;
            if if_match.is_some_and(|expected| expected != current.version) {
                return Err(AppError::VersionConflict);
            }
            let updated = change(&current)?;
            match self.ports.programs.update(&updated, event) {
                Err(StoreError::VersionConflict) if if_match.is_none() => continue,
                result => return Ok(result?),
            }
        }
        Err(AppError::VersionConflict)
    }
}

impl ProgramUseCases for Tessera {
    fn create_program(&self, caller: &Principal, new: NewProgram) -> AppResult<Program> {
        require(caller, Permission::ManagePrograms)?;
        let program = Program::create(
            ProgramId::generate(),
            caller.tenant_id.clone(),
            new,
            self.ports.clock.now(),
        )?;
        self.ports.programs.insert(&program)?;
        Ok(program)
    }

    fn get_program(&self, caller: &Principal, id: &ProgramId) -> AppResult<Program> {
        require(caller, Permission::ReadPrograms)?;
        Ok(self.ports.programs.get(&caller.tenant_id, id)?)
    }

    fn list_programs(&self, caller: &Principal, page: PageRequest) -> AppResult<Page<Program>> {
        require(caller, Permission::ReadPrograms)?;
        Ok(self.ports.programs.list(&caller.tenant_id, page)?)
    }

    fn update_program(
        &self,
        caller: &Principal,
        id: &ProgramId,
        changes: ProgramChanges,
        if_match: Option<i64>,
    ) -> AppResult<Program> {
        let now = self.ports.clock.now();
        self.change_program(caller, id, if_match, EventType::ProgramUpdated, |current| {
            Ok(current.apply(changes.clone(), now)?)
        })
    }

    fn suspend_program(&self, caller: &Principal, id: &ProgramId) -> AppResult<Program> {
        let now = self.ports.clock.now();
        self.change_program(caller, id, None, EventType::ProgramSuspended, |current| {
            Ok(current.suspended(now))
        })
    }

    fn delete_program(&self, caller: &Principal, id: &ProgramId) -> AppResult<()> {
        require(caller, Permission::ManagePrograms)?;
        self.ports
            .programs
            .delete(&caller.tenant_id, id, self.ports.clock.now())?;
        self.forget_program(id);
        Ok(())
    }
}
