/// What an API key may do within its tenant.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Role {
    /// Everything in the tenant.
    Admin,
    /// Read programs; issue, list and revoke tickets; create, list and delete
    /// standalone tickets.
    Issuer,
    /// Redeem with detailed errors; use standalone tickets.
    Redeemer,
}

/// The actions that roles are granted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Permission {
    /// Create, list and delete API keys.
    ManageKeys,
    /// Create and change programs.
    ManagePrograms,
    /// Set a ticket's state (unlock, disable, re-enable).
    ManageTicketState,
    /// Read the event history (no use case asks for it yet).
    ReadEvents,
    /// Create, list and delete webhooks; list and retry their deliveries.
    ManageWebhooks,
    /// Read and list programs.
    ReadPrograms,
    /// Issue, read, list and revoke tickets; create, list and delete
    /// standalone tickets.
    IssueTickets,
    /// Redeem and learn why a redemption failed, not only `invalid_code`.
    RedeemWithDetails,
    /// Use standalone tickets.
    UseStandaloneTickets,
}

impl Role {
    /// The role's name in the API: `admin`, `issuer` or `redeemer`.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Admin => "admin",
            Role::Issuer => "issuer",
            Role::Redeemer => "redeemer",
        }
    }

    /// The role named `raw` (as `as_str` writes it), if any.
    pub fn parse(raw: &str) -> Option<Self> {
        match raw {
            "admin" => Some(Role::Admin),
            "issuer" => Some(Role::Issuer),
            "redeemer" => Some(Role::Redeemer),
            _ => None,
        }
    }

    /// Whether the role is granted `permission`.
    pub fn allows(self, permission: Permission) -> bool {
        use Permission::*;
        match self {
            Role::Admin => true,
            Role::Issuer => matches!(permission, ReadPrograms | IssueTickets),
            Role::Redeemer => matches!(permission, RedeemWithDetails | UseStandaloneTickets),
        }
    }
}

crate::redacted::secret_string! {
    /// An API key's secret, shown once at creation. Stored only as a keyed hash.
    pub struct ApiKeySecret;
}

impl ApiKeySecret {
    /// The prefix lets secret scanners recognise a leaked key.
    pub const PREFIX: &'static str = "tsk_";

    /// Wraps a key `generate` (crate::routing) made.
    pub(crate) fn from_routed(raw: String) -> Self {
        Self(raw)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roles_grant_what_the_api_promises() {
        assert!(Role::Admin.allows(Permission::ManageKeys));
        assert!(Role::Issuer.allows(Permission::IssueTickets));
        assert!(Role::Issuer.allows(Permission::ReadPrograms));
        assert!(!Role::Issuer.allows(Permission::ManagePrograms));
        assert!(!Role::Issuer.allows(Permission::UseStandaloneTickets));
        assert!(Role::Redeemer.allows(Permission::RedeemWithDetails));
        assert!(!Role::Redeemer.allows(Permission::ReadPrograms));
    }

    #[test]
    fn role_names_round_trip() {
        for role in [Role::Admin, Role::Issuer, Role::Redeemer] {
            assert_eq!(Role::parse(role.as_str()), Some(role));
        }
        assert_eq!(Role::parse("root"), None);
    }

    #[test]
    fn secrets_are_prefixed_unique_and_redacted() {
        let tenant = crate::TenantId::generate();
        let key = ApiKeySecret::generate(&tenant);
        assert!(key.expose_secret().starts_with("tsk_"));
        assert_ne!(key, ApiKeySecret::generate(&tenant));
        assert!(!format!("{key:?}").contains(key.expose_secret()));
    }
}
