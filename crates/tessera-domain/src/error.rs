use thiserror::Error;

/// A value or a change that the domain's rules refuse. `field` names the
/// offending input in the API's camelCase, so the HTTP layer can quote it.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[error("{field}: {message}")]
pub struct DomainError {
    /// The offending input's name, such as `ticketLength` or `endTime`.
    pub field: &'static str,
    /// What the rule requires, for people: "must be between 4 and 64".
    pub message: String,
}

impl DomainError {
    /// The refusal of `field`, explained by `message`.
    pub fn new(field: &'static str, message: impl Into<String>) -> Self {
        Self {
            field,
            message: message.into(),
        }
    }
}
