//! Import of codes people already hold (`POST /v1/programs/{id}/tickets/import`):
//! rows are validated and hashed as they stream in, handed to the store chunk by
//! chunk inside ONE transaction, and committed only if every row was valid, no
//! code repeats (in the file or the tenant) and the count fits `maxTickets`.

use std::collections::HashSet;

use tessera_domain::{
    DomainError, Email, NewTicketSpec, Permission, Program, ProgramId, RedemptionLimit, Subject,
    Ticket,
};

use super::batch::BATCH_CHUNK;
use super::{require, Tessera};
use crate::model::{ImportOutcome, ImportStep, NewTicket};
use crate::usecases::{ImportRow, Principal, RowError};
use crate::{AppError, AppResult};

/// The most rows an import may hold.
pub const MAX_IMPORT_ROWS: u64 = 1_000_000;
/// Line numbers an error names at most.
const LINES_NAMED: usize = 10;

fn join(lines: &[u64]) -> String {
    let lines: Vec<String> = lines.iter().map(u64::to_string).collect();
    lines.join(", ")
}

/// One valid row as a ticket; the error names the field, never the value of a code.
fn ticket_of(
    program: &Program,
    row: &ImportRow,
    now: chrono::DateTime<chrono::Utc>,
) -> Result<(tessera_domain::Code, Ticket), DomainError> {
    let code = program.chosen_code(row.code.expose_secret())?;
    let spec = NewTicketSpec {
        email: row
            .email
            .as_deref()
            .filter(|email| !email.trim().is_empty())
            .map(Email::parse)
            .transpose()?,
        subject: row.subject.clone().map(Subject::try_from).transpose()?,
        max_redemptions: row
            .max_redemptions
            .map(RedemptionLimit::try_from)
            .transpose()?,
        ..NewTicketSpec::default()
    };
    Ok((code, Ticket::new_active(program, spec, now)))
}

/// What reading the rows found besides tickets.
#[derive(Default)]
struct Findings {
    invalid: Vec<u64>,
    first_problem: Option<String>,
    repeated: Vec<u64>,
    rows: u64,
    too_many: bool,
}

impl Tessera {
    pub(super) fn run_import(
        &self,
        caller: &Principal,
        program_id: &ProgramId,
        rows: &mut dyn Iterator<Item = Result<ImportRow, RowError>>,
    ) -> AppResult<u32> {
        require(caller, Permission::IssueTickets)?;
        let tenant = &caller.tenant_id;
        let program = self.ports.programs.get(tenant, program_id)?;
        let now = self.ports.clock.now();
        if !program.is_issuing(now) {
            return Err(AppError::ProgramNotActive);
        }
        // 32 bytes per row: 32 MB for a million codes, to find repeats in the file.
        let mut seen = HashSet::new();
        let mut found = Findings::default();
        let mut next = || {
            let mut chunk = Vec::with_capacity(BATCH_CHUNK);
            for row in &mut *rows {
                found.rows += 1;
                if found.rows > MAX_IMPORT_ROWS {
                    found.too_many = true;
                    return ImportStep::Abort;
                }
                let parsed = row
                    .map_err(|error| (error.line, error.problem))
                    .and_then(|row| {
                        ticket_of(&program, &row, now)
                            .map(|ticket| (row.line, ticket))
                            .map_err(|error| (row.line, error.to_string()))
                    });
                match parsed {
                    Err((line, problem)) => {
                        found.invalid.push(line);
                        found.first_problem.get_or_insert(problem);
                        if found.invalid.len() == LINES_NAMED {
                            return ImportStep::Abort;
                        }
                    }
                    Ok((line, (code, ticket))) => {
                        let code_hash = self.code_hash(&program, &code);
                        if !seen.insert(code_hash.0) {
                            found.repeated.push(line);
                            if found.repeated.len() == LINES_NAMED {
                                return ImportStep::Abort;
                            }
                            continue;
                        }
                        if found.invalid.is_empty() {
                            let new = NewTicket {
                                ticket,
                                code_hash,
                                link_hash: None,
                            };
                            chunk.push((line, new));
                        }
                    }
                }
                if chunk.len() == BATCH_CHUNK {
                    return ImportStep::Chunk(chunk);
                }
            }
            if !found.invalid.is_empty() || !found.repeated.is_empty() {
                ImportStep::Abort
            } else if !chunk.is_empty() {
                ImportStep::Chunk(chunk)
            } else {
                ImportStep::Done
            }
        };
        let outcome = self
            .ports
            .tickets
            .import(tenant, program_id, now, &mut next)?;
        if found.too_many {
            return Err(DomainError::new(
                "csv",
                format!("an import holds at most {MAX_IMPORT_ROWS} rows"),
            )
            .into());
        }
        if !found.invalid.is_empty() {
            return Err(DomainError::new(
                "csv",
                format!(
                    "invalid rows on lines {} (the first: {})",
                    join(&found.invalid),
                    found.first_problem.unwrap_or_default()
                ),
            )
            .into());
        }
        match outcome {
            ImportOutcome::Imported(count) => Ok(count),
            ImportOutcome::RolledBack { mut taken } => {
                taken.extend(found.repeated);
                taken.sort_unstable();
                taken.truncate(LINES_NAMED);
                if taken.is_empty() {
                    Err(AppError::Internal(
                        "an import was rolled back without a reason".to_owned(),
                    ))
                } else {
                    Err(AppError::CodeTaken { lines: taken })
                }
            }
        }
    }
}
