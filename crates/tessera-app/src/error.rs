use tessera_domain::{DomainError, RedemptionFailure};
use thiserror::Error;

use crate::ports::StoreError;

pub type AppResult<T> = Result<T, AppError>;

/// Every way a use case can fail. The HTTP adapter maps each variant to exactly one
/// status and error code.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum AppError {
    #[error(transparent)]
    Invalid(#[from] DomainError),
    #[error("a valid API key is required")]
    Unauthorized,
    #[error("this API key's role does not allow that")]
    Forbidden,
    #[error("not found")]
    NotFound,
    /// A failed redemption as public callers see it: nothing but "invalid code".
    #[error("invalid code")]
    InvalidCode,
    /// A failed redemption with its reason, for callers holding a key of the tenant.
    #[error("{}", .0.message())]
    Redemption(RedemptionFailure),
    #[error("the program or tenant has reached its ticket cap")]
    MaxTicketsReached,
    #[error("the program is suspended or has ended")]
    ProgramNotActive,
    #[error("the resource changed since that version")]
    VersionConflict,
    #[error("this subject already has an active ticket in the program")]
    SubjectHasActiveTicket,
    /// A chosen or imported code already exists in the tenant (or, in an import,
    /// earlier in the file). `lines` names up to 10 offending lines of an import
    /// (empty for a single ticket); the codes themselves are never named.
    #[error("{}", code_taken_message(.lines))]
    CodeTaken { lines: Vec<u64> },
    /// The code's check character is wrong: refused by arithmetic before any
    /// lookup, for every caller, and not counted as a failed attempt.
    #[error("The code is mistyped.")]
    MistypedCode,
    /// Too many failed redemptions from this client or for this program; the
    /// attempt was not evaluated.
    #[error("too many failed attempts; retry in {retry_after_seconds} s")]
    TooManyAttempts { retry_after_seconds: u32 },
    #[error("the hold expired, was released or was confirmed")]
    HoldNotActive,
    #[error("this redemption was already rolled back")]
    AlreadyRolledBack,
    #[error("the program does not allow rolling back redemptions")]
    RollbackNotAllowed,
    #[error("the database is unavailable")]
    Unavailable,
    /// A bug or an unexpected store failure; the detail is for logs, not clients.
    #[error("internal error: {0}")]
    Internal(String),
}

fn code_taken_message(lines: &[u64]) -> String {
    if lines.is_empty() {
        "the code is already in use in the tenant".to_owned()
    } else {
        let lines: Vec<String> = lines.iter().map(u64::to_string).collect();
        format!(
            "codes already in the file or the tenant on lines {}",
            lines.join(", ")
        )
    }
}

impl From<StoreError> for AppError {
    fn from(error: StoreError) -> Self {
        match error {
            StoreError::NotFound => AppError::NotFound,
            StoreError::VersionConflict => AppError::VersionConflict,
            StoreError::MaxTicketsReached => AppError::MaxTicketsReached,
            StoreError::ProgramNotActive => AppError::ProgramNotActive,
            StoreError::SubjectHasActiveTicket => AppError::SubjectHasActiveTicket,
            StoreError::Unavailable(_) => AppError::Unavailable,
            StoreError::CodeTaken => AppError::CodeTaken { lines: Vec::new() },
            StoreError::DuplicateSecret => {
                AppError::Internal("secret hash collided repeatedly".to_owned())
            }
            StoreError::Internal(detail) => AppError::Internal(detail),
        }
    }
}
