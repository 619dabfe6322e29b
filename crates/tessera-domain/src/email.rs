use crate::DomainError;

/// An email address a ticket is bound to. Kept as given; compared case-insensitively.
///
/// ```
/// use tessera_domain::Email;
///
/// let email = Email::parse(" Ann@Example.com ")?;
/// assert_eq!(email.as_str(), "Ann@Example.com");
/// assert!(email.matches("ann@example.COM"));
/// assert!(!email.matches("bob@example.com"));
/// assert_eq!(Email::parse("ann@example").unwrap_err().field, "email");
/// # Ok::<(), tessera_domain::DomainError>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Email(String);

impl Email {
    /// Parses an address with one `@`, a non-empty local part and a dotted domain.
    /// Deliberately lenient beyond that: the address is compared, never mailed.
    pub fn parse(raw: &str) -> Result<Self, DomainError> {
        let raw = raw.trim();
        let invalid = || DomainError::new("email", "must be a valid email address");
        if raw.len() > 254 || raw.chars().any(|c| c.is_whitespace() || c.is_control()) {
            return Err(invalid());
        }
        let (local, domain) = raw.split_once('@').ok_or_else(invalid)?;
        let domain_ok = !domain.contains('@')
            && domain.contains('.')
            && domain.split('.').all(|label| !label.is_empty());
        if local.is_empty() || local.len() > 64 || !domain_ok {
            return Err(invalid());
        }
        Ok(Self(raw.to_owned()))
    }

    /// The address as given (trimmed).
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The form used for comparison: lower-cased.
    pub fn normalized(&self) -> String {
        self.0.to_lowercase()
    }

    /// Whether `presented` names the same mailbox.
    pub fn matches(&self, presented: &str) -> bool {
        self.0.eq_ignore_ascii_case(presented.trim())
            || self.normalized() == presented.trim().to_lowercase()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_ordinary_addresses() {
        assert_eq!(
            Email::parse(" Ann@Example.com ").expect("valid").as_str(),
            "Ann@Example.com"
        );
        assert!(Email::parse("a.b+tag@sub.example.org").is_ok());
    }

    #[test]
    fn refuses_what_is_not_an_address() {
        for bad in [
            "",
            "ann",
            "ann@",
            "@example.com",
            "ann@example",
            "a@b@c.com",
            "a b@c.com",
            "ann@example..com",
        ] {
            assert!(Email::parse(bad).is_err(), "{bad:?} should be refused");
        }
    }

    #[test]
    fn matching_ignores_case() {
        let email = Email::parse("Ann@Example.com").expect("valid");
        assert!(email.matches("ann@example.COM"));
        assert!(!email.matches("bob@example.com"));
    }
}
