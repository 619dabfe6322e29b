//! Secrets that name their tenant, so the store finds the tenant before the row
//! (a database distributed by tenant routes on it). A routed secret reads
//! `<tenant part>_<secret>`, the tenant part being the tenant id without `ten_`.
//! Tenant ids are public (they appear in issuer strings and program objects), so
//! carrying one in clear gives nothing away; the secret part alone is random.

use crate::secret::{random_string, BASE58};
use crate::{ApiKeySecret, LinkToken, PresentedApiKey, TenantId};

/// Between the tenant part and the secret: not a base58 character, so the two
/// parts never blur and a secret of the older, unrouted shape never has it.
const SEPARATOR: char = '_';

/// `<tenant part>_<random>`.
fn routed(tenant: &TenantId, random_chars: usize) -> String {
    let part = &tenant.as_str()[TenantId::PREFIX.len()..];
    format!("{part}{SEPARATOR}{}", random_string(BASE58, random_chars))
}

/// The tenant named by `raw` = `<tenant part>_<rest>`, when the part is a tenant id.
fn tenant_of(raw: &str) -> Option<TenantId> {
    let (part, _) = raw.split_once(SEPARATOR)?;
    TenantId::parse(&format!("{}{part}", TenantId::PREFIX)).ok()
}

/// Random characters of an API key's secret part: ≈ 234 bits.
const API_KEY_RANDOM_CHARS: usize = 40;
/// Random characters of a link token's secret part: ≈ 187 bits.
pub(crate) const LINK_RANDOM_CHARS: usize = 32;

impl ApiKeySecret {
    /// `tsk_<tenant part>_<40 base58>`: the prefix lets secret scanners recognise a
    /// leaked key, the tenant part routes it.
    pub fn generate(tenant: &TenantId) -> Self {
        Self::from_routed(format!(
            "{}{}",
            Self::PREFIX,
            routed(tenant, API_KEY_RANDOM_CHARS)
        ))
    }
}

impl PresentedApiKey {
    /// The tenant the key names; `None` for a key made before keys were routed
    /// (`tsk_` and 40 base58 characters) or for anything that is no key at all.
    pub fn tenant(&self) -> Option<TenantId> {
        self.expose_secret()
            .strip_prefix(ApiKeySecret::PREFIX)
            .and_then(tenant_of)
    }
}

impl LinkToken {
    /// A fresh `<tenant part>_<32 base58>` token from the CSPRNG.
    pub fn generate(tenant: &TenantId) -> Self {
        Self::from_routed(routed(tenant, LINK_RANDOM_CHARS))
    }

    /// The tenant the token names; `None` for a token made before links were
    /// routed (32 base58 characters, found through a directory instead).
    pub fn tenant(&self) -> Option<TenantId> {
        tenant_of(self.expose_secret())
    }

    /// Accepts exactly the shapes `generate` produces, now and before.
    pub fn parse(raw: &str) -> Result<Self, crate::DomainError> {
        let base58 = |s: &str, len: usize| s.len() == len && s.bytes().all(|b| BASE58.contains(&b));
        let routed = raw.split_once(SEPARATOR).is_some_and(|(part, secret)| {
            tenant_of(raw).is_some() && !part.is_empty() && base58(secret, LINK_RANDOM_CHARS)
        });
        if routed || base58(raw, LINK_RANDOM_CHARS) {
            Ok(Self::from_routed(raw.to_owned()))
        } else {
            Err(crate::DomainError::new("linkToken", "is not a link token"))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn api_keys_name_their_tenant_and_older_keys_name_none() {
        let tenant = TenantId::generate();
        let key = ApiKeySecret::generate(&tenant);
        assert!(key.expose_secret().starts_with("tsk_"));
        assert_eq!(key.expose_secret().len(), 4 + 20 + 1 + 40);
        assert_eq!(
            PresentedApiKey::new(key.expose_secret()).tenant(),
            Some(tenant.clone())
        );
        assert_ne!(key, ApiKeySecret::generate(&tenant));
        let older = format!("tsk_{}", random_string(BASE58, 40));
        assert_eq!(PresentedApiKey::new(older).tenant(), None);
        assert_eq!(PresentedApiKey::new("tsk_nope_x").tenant(), None);
        assert_eq!(PresentedApiKey::new("").tenant(), None);
    }

    #[test]
    fn link_tokens_name_their_tenant_and_older_tokens_still_parse() {
        let tenant = TenantId::generate();
        let token = LinkToken::generate(&tenant);
        assert_eq!(token.tenant(), Some(tenant));
        assert_eq!(LinkToken::parse(token.expose_secret()), Ok(token.clone()));
        let older = random_string(BASE58, LINK_RANDOM_CHARS);
        let parsed = LinkToken::parse(&older).expect("a link made before routing");
        assert_eq!(parsed.tenant(), None);
        assert!(LinkToken::parse(&format!("{older}x")).is_err());
        assert!(LinkToken::parse(&format!("nope_{older}")).is_err());
        let short = &token.expose_secret()[..token.expose_secret().len() - 1];
        assert!(LinkToken::parse(short).is_err());
    }
}
