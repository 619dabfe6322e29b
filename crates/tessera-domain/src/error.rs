use thiserror::Error;

/// A value or a change that the domain's rules refuse. `field` names the
/// offending input in the API's camelCase, so the HTTP layer can quote it.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[error("{field}: {message}")]
pub struct DomainError {
    pub field: &'static str,
    pub message: String,
}

impl DomainError {
    pub fn new(field: &'static str, message: impl Into<String>) -> Self {
        Self {
            field,
            message: message.into(),
        }
    }
}
