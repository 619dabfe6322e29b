//! Secrets as types. Every value that would let its holder redeem, authenticate or
//! forge is a newtype whose `Debug` and `Display` print a fixed redaction, so a
//! `tracing` field, a `{:?}` in a panic or an error message can never leak it. The
//! clear text is reached only through `expose_secret()`, one greppable call at each
//! place that must send or hash it.

/// What `Debug` and `Display` print for every secret.
pub const REDACTED: &str = "<redacted>";

/// The one way to a secret's clear text, shared by every secret type so adapters
/// can send any of them the same way (e.g. a serializer for response fields).
pub trait ExposeSecret {
    /// The clear text; every call is a place to audit.
    fn expose_secret(&self) -> &str;
}

/// Defines a secret newtype over `String` with redacting `Debug` and `Display`
/// and an `expose_secret()` accessor. Constructors are the defining module's
/// business (a generated code, a parsed token, whatever a caller presented).
macro_rules! secret_string {
    ($(#[$meta:meta])* $vis:vis struct $name:ident;) => {
        $(#[$meta])*
        #[derive(Clone, PartialEq, Eq)]
        $vis struct $name(String);

        impl $name {
            /// The clear text. Call it only where the secret must leave the
            /// process (a response, once) or be hashed: every call is a place
            /// to audit.
            pub fn expose_secret(&self) -> &str {
                &self.0
            }
        }

        impl $crate::redacted::ExposeSecret for $name {
            fn expose_secret(&self) -> &str {
                &self.0
            }
        }

        impl ::std::fmt::Debug for $name {
            fn fmt(&self, f: &mut ::std::fmt::Formatter<'_>) -> ::std::fmt::Result {
                write!(f, "{}({})", stringify!($name), $crate::redacted::REDACTED)
            }
        }

        impl ::std::fmt::Display for $name {
            fn fmt(&self, f: &mut ::std::fmt::Formatter<'_>) -> ::std::fmt::Result {
                f.write_str($crate::redacted::REDACTED)
            }
        }
    };
}
pub(crate) use secret_string;

/// A secret a caller presented, exactly as received: anything may be presented,
/// so these construct from any string and deserialize from a JSON string.
macro_rules! presented_secret {
    ($(#[$meta:meta])* $vis:vis struct $name:ident;) => {
        $crate::redacted::secret_string! { $(#[$meta])* $vis struct $name; }

        impl $name {
            /// Wraps what the caller sent.
            pub fn new(raw: impl Into<String>) -> Self {
                Self(raw.into())
            }
        }

        impl<'de> ::serde::Deserialize<'de> for $name {
            fn deserialize<D: ::serde::Deserializer<'de>>(de: D) -> Result<Self, D::Error> {
                String::deserialize(de).map(Self)
            }
        }
    };
}

presented_secret! {
    /// A code or `signedCode` as a caller presented it for redemption, before it is
    /// known to name any ticket.
    pub struct PresentedCode;
}

presented_secret! {
    /// A bearer API key as presented in an `Authorization` header.
    pub struct PresentedApiKey;
}

presented_secret! {
    /// A standalone ticket as presented to `/v1/tickets/use` or `/delete`.
    pub struct PresentedTicket;
}

presented_secret! {
    /// The operator's bearer token (`TESSERA_OPERATOR_TOKEN`), which may create
    /// tenants: configured once, compared in constant time, never printed.
    pub struct OperatorToken;
}

secret_string! {
    /// A ticket's code followed by `.` and its Ed25519 signature: accepted wherever
    /// a code is, so it is as secret as the code.
    pub struct SignedCode;
}

impl SignedCode {
    /// `code.signature`, as issued.
    pub fn join(code: &crate::Code, signature: &str) -> Self {
        Self(format!("{}.{signature}", code.expose_secret()))
    }
}

secret_string! {
    /// A URL ticket's link: the program's `urlPrefix` followed by the link token.
    pub struct TicketLink;
}

impl TicketLink {
    /// `prefix` + `token`.
    pub fn join(prefix: &crate::UrlPrefix, token: &crate::LinkToken) -> Self {
        Self(format!("{}{}", prefix.as_str(), token.expose_secret()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Alphabet, Code, LinkToken, TicketLength, UrlPrefix};

    fn assert_redacted(debug: String, display: String, clear: &str) {
        assert!(!debug.contains(clear), "Debug leaks: {debug}");
        assert!(!display.contains(clear), "Display leaks: {display}");
        assert!(debug.contains(REDACTED));
        assert_eq!(display, REDACTED);
    }

    #[test]
    fn presented_secrets_are_redacted() {
        let code = PresentedCode::new("SeCrEt42");
        assert_redacted(format!("{code:?}"), code.to_string(), "SeCrEt42");
        assert_eq!(code.expose_secret(), "SeCrEt42");
        let key = PresentedApiKey::new("tsk_abcdef");
        assert_redacted(format!("{key:?}"), key.to_string(), "tsk_abcdef");
        let ticket = PresentedTicket::new("opaque-ticket-value");
        assert_redacted(format!("{ticket:?}"), ticket.to_string(), "opaque-ticket");
    }

    #[test]
    fn issued_secrets_are_redacted() {
        let code = Code::generate(Alphabet::Alphanumeric, TicketLength::DEFAULT);
        assert_redacted(format!("{code:?}"), code.to_string(), code.expose_secret());
        let link = LinkToken::generate(&crate::TenantId::generate());
        assert_redacted(format!("{link:?}"), link.to_string(), link.expose_secret());
        let ticket = crate::StandaloneToken::generate();
        assert_redacted(
            format!("{ticket:?}"),
            ticket.to_string(),
            ticket.expose_secret(),
        );
        let key = crate::ApiKeySecret::generate(&crate::TenantId::generate());
        assert_redacted(format!("{key:?}"), key.to_string(), key.expose_secret());
        let operator = OperatorToken::new("an-operator-token-0123");
        assert_redacted(
            format!("{operator:?}"),
            operator.to_string(),
            "operator-token",
        );
    }

    #[test]
    fn presented_secrets_deserialize_from_json_strings() {
        let code: PresentedCode = serde_json::from_str("\"AB12CD\"").expect("a string");
        assert_eq!(code.expose_secret(), "AB12CD");
        assert!(serde_json::from_str::<PresentedCode>("12").is_err());
    }

    #[test]
    fn signed_codes_are_redacted() {
        let code = Code::generate(Alphabet::Alphanumeric, TicketLength::DEFAULT);
        let signed = SignedCode::join(&code, "c2lnbmF0dXJl");
        assert_eq!(
            signed.expose_secret(),
            format!("{}.c2lnbmF0dXJl", code.expose_secret())
        );
        assert_redacted(
            format!("{signed:?}"),
            signed.to_string(),
            code.expose_secret(),
        );
        assert!(!format!("{signed:?}").contains("c2lnbmF0dXJl"));
    }

    #[test]
    fn links_are_redacted() {
        let token = LinkToken::generate(&crate::TenantId::generate());
        let prefix = UrlPrefix::try_from("https://t.example/r/".to_owned()).expect("a URL");
        let link = TicketLink::join(&prefix, &token);
        assert!(link.expose_secret().starts_with("https://t.example/r/"));
        assert_redacted(format!("{link:?}"), link.to_string(), token.expose_secret());
    }
}
