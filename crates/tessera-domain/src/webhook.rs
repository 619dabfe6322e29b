//! Webhooks: where events are pushed, which ones, with what secret, and the rules
//! of delivery (the retry schedule and which addresses may never be called).

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::time::Duration;

use crate::redacted::secret_string;
use crate::secret::{random_string, BASE58};
use crate::{DomainError, EventType};

/// The longest URL accepted: more is a mistake, not a receiver.
const MAX_URL_LEN: usize = 2048;

/// An absolute `http` or `https` URL without credentials or fragment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WebhookUrl {
    text: String,
    https: bool,
    host: String,
    port: u16,
}

impl WebhookUrl {
    /// Parses `raw`; errors name the `url` field.
    pub fn parse(raw: &str) -> Result<Self, DomainError> {
        let bad = |why: &str| DomainError::new("url", why.to_owned());
        if raw.len() > MAX_URL_LEN {
            return Err(bad("must be at most 2048 characters"));
        }
        if raw
            .bytes()
            .any(|b| b.is_ascii_whitespace() || b.is_ascii_control())
        {
            return Err(bad("must not contain spaces or control characters"));
        }
        let (https, rest) = if let Some(rest) = strip_prefix_ignore_case(raw, "https://") {
            (true, rest)
        } else if let Some(rest) = strip_prefix_ignore_case(raw, "http://") {
            (false, rest)
        } else {
            return Err(bad("must be an absolute http:// or https:// URL"));
        };
        if raw.contains('#') {
            return Err(bad("must not have a fragment"));
        }
        let authority = rest.split(['/', '?']).next().unwrap_or_default();
        if authority.contains('@') {
            // Credentials in a URL would be stored and listed in clear.
            return Err(bad("must not carry credentials (user:password@)"));
        }
        let (host, port) = split_host_port(authority).ok_or_else(|| bad("has no valid host"))?;
        let port = match port {
            Some(port) => port,
            None if https => 443,
            None => 80,
        };
        Ok(Self {
            text: raw.to_owned(),
            https,
            host: host.to_ascii_lowercase(),
            port,
        })
    }

    /// The URL as given.
    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// Whether the scheme is `https`.
    pub fn is_https(&self) -> bool {
        self.https
    }

    /// The host to resolve: a name, or an IP address (IPv6 without brackets).
    pub fn host(&self) -> &str {
        &self.host
    }

    /// The port, explicit or the scheme's default.
    pub fn port(&self) -> u16 {
        self.port
    }
}

fn strip_prefix_ignore_case<'a>(raw: &'a str, prefix: &str) -> Option<&'a str> {
    raw.get(..prefix.len())
        .filter(|head| head.eq_ignore_ascii_case(prefix))
        .map(|_| &raw[prefix.len()..])
}

fn split_host_port(authority: &str) -> Option<(&str, Option<u16>)> {
    let (host, port) = if let Some(bracketed) = authority.strip_prefix('[') {
        let (host, after) = bracketed.split_once(']')?;
        host.parse::<Ipv6Addr>().ok()?;
        (host, after.strip_prefix(':'))
    } else {
        match authority.rsplit_once(':') {
            Some((host, port)) => (host, Some(port)),
            None => (authority, None),
        }
    };
    let host_ok = !host.is_empty()
        && (host.contains(':')
            || host
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.'));
    if !host_ok {
        return None;
    }
    let port = match port {
        None => None,
        Some(digits) => Some(digits.parse::<u16>().ok().filter(|port| *port != 0)?),
    };
    Some((host, port))
}

/// The event types a webhook is sent: at least one, each once, in the API's order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Triggers(Vec<EventType>);

impl Triggers {
    /// Parses event type names; an unknown name or an empty list names `triggers`.
    pub fn parse<S: AsRef<str>>(names: &[S]) -> Result<Self, DomainError> {
        let mut kinds = Vec::with_capacity(names.len());
        for name in names {
            let kind = name.as_ref().parse::<EventType>().map_err(|_| {
                DomainError::new(
                    "triggers",
                    format!("{:?} is not an event type", name.as_ref()),
                )
            })?;
            kinds.push(kind);
        }
        if kinds.is_empty() {
            return Err(DomainError::new(
                "triggers",
                "must name at least one event type",
            ));
        }
        kinds.sort();
        kinds.dedup();
        Ok(Self(kinds))
    }

    /// The event types.
    pub fn kinds(&self) -> &[EventType] {
        &self.0
    }

    /// Whether events of `kind` are sent.
    pub fn contains(&self, kind: EventType) -> bool {
        self.0.contains(&kind)
    }
}

secret_string! {
    /// A webhook's signing secret: shown once at creation, stored only sealed under
    /// a key derived from the master key.
    pub struct WebhookSecret;
}

impl WebhookSecret {
    /// The prefix lets secret scanners recognise a leaked secret.
    pub const PREFIX: &'static str = "whsec_";

    /// `whsec_` and 43 base58 characters ≈ 252 random bits.
    pub fn generate() -> Self {
        Self(format!("{}{}", Self::PREFIX, random_string(BASE58, 43)))
    }

    /// A secret read back from its sealed form.
    pub fn from_opened(clear: String) -> Self {
        Self(clear)
    }
}

/// Where a delivery stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeliveryState {
    /// Not yet delivered; attempted when due.
    Pending,
    /// A 2xx answer was received.
    Delivered,
    /// Given up after the retry horizon.
    Failed,
}

impl DeliveryState {
    /// The API's name.
    pub fn as_str(self) -> &'static str {
        match self {
            DeliveryState::Pending => "pending",
            DeliveryState::Delivered => "delivered",
            DeliveryState::Failed => "failed",
        }
    }

    /// The state named `raw`, if any.
    pub fn parse(raw: &str) -> Option<Self> {
        match raw {
            "pending" => Some(DeliveryState::Pending),
            "delivered" => Some(DeliveryState::Delivered),
            "failed" => Some(DeliveryState::Failed),
            _ => None,
        }
    }
}

/// No wait between attempts is longer than this.
pub const RETRY_CAP: Duration = Duration::from_secs(3600);
/// A delivery still failing this long after its event is marked `failed`.
pub const RETRY_HORIZON: Duration = Duration::from_secs(24 * 3600);

/// How long to wait after the `attempts`-th failed attempt (1 for the first):
/// `base × 2^(attempts−1)`, capped at [`RETRY_CAP`], of which a random half is
/// kept ("equal jitter": `jitter` in `[0, 1)` picks where in the upper half), so
/// replicas retrying a dead receiver spread out. With the default base of 5 s the
/// first retry comes 2.5–5 s after the failure.
pub fn retry_delay(attempts: u32, base: Duration, jitter: f64) -> Duration {
    let doublings = attempts.saturating_sub(1).min(31);
    let nominal = base
        .checked_mul(1u32 << doublings)
        .unwrap_or(RETRY_CAP)
        .min(RETRY_CAP);
    let half = nominal / 2;
    half + half.mul_f64(jitter.clamp(0.0, 1.0))
}

/// Whether a webhook must never be sent to `address`: loopback, private,
/// link-local, carrier-grade NAT, unspecified, broadcast, multicast, documentation
/// and reserved ranges, and IPv6 forms that embed such an IPv4 address.
pub fn is_forbidden_address(address: IpAddr) -> bool {
    match address {
        IpAddr::V4(v4) => forbidden_v4(v4),
        IpAddr::V6(v6) => forbidden_v6(v6),
    }
}

fn forbidden_v4(ip: Ipv4Addr) -> bool {
    let [a, b, c, _] = ip.octets();
    ip.is_loopback()
        || ip.is_private()
        || ip.is_link_local()
        || ip.is_unspecified()
        || ip.is_broadcast()
        || ip.is_multicast()
        || ip.is_documentation()
        || a == 0 // "this network"
        || (a == 100 && (64..128).contains(&b)) // carrier-grade NAT, 100.64/10
        || (a == 192 && b == 0 && c == 0) // IETF protocol assignments
        || (a == 198 && (b == 18 || b == 19)) // benchmarking, 198.18/15
        || a >= 240 // reserved
}

fn forbidden_v6(ip: Ipv6Addr) -> bool {
    let segments = ip.segments();
    if let Some(v4) = ip.to_ipv4_mapped() {
        return forbidden_v4(v4);
    }
    let embedded_v4 = |high: u16, low: u16| {
        let [a, b] = high.to_be_bytes();
        let [c, d] = low.to_be_bytes();
        Ipv4Addr::new(a, b, c, d)
    };
    if segments[..6] == [0x64, 0xff9b, 0, 0, 0, 0] {
        // NAT64 reaches the embedded IPv4 address.
        return forbidden_v4(embedded_v4(segments[6], segments[7]));
    }
    if segments[0] == 0x2002 {
        // 6to4 carries an IPv4 address in bits 16..48.
        return forbidden_v4(embedded_v4(segments[1], segments[2]));
    }
    ip.is_loopback()
        || ip.is_unspecified()
        || ip.is_multicast()
        || (segments[0] & 0xfe00) == 0xfc00 // unique local, fc00::/7
        || (segments[0] & 0xffc0) == 0xfe80 // link-local, fe80::/10
        || (segments[0] & 0xffc0) == 0xfec0 // site-local (deprecated), fec0::/10
        || (segments[0] == 0x2001 && segments[1] == 0x0db8) // documentation
        || (segments[0] == 0x2001 && segments[1] == 0) // Teredo tunnels
        || segments[..6] == [0, 0, 0, 0, 0, 0] // IPv4-compatible (deprecated)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn forbidden(text: &str) -> bool {
        is_forbidden_address(text.parse().expect("an address"))
    }

    #[test]
    fn private_loopback_and_link_local_addresses_are_refused() {
        for address in [
            "127.0.0.1",
            "127.8.9.10",
            "10.1.2.3",
            "172.16.0.1",
            "172.31.255.255",
            "192.168.1.1",
            "169.254.169.254",
            "100.64.0.1",
            "100.127.255.255",
            "0.0.0.0",
            "0.1.2.3",
            "255.255.255.255",
            "224.0.0.1",
            "240.0.0.1",
            "198.18.0.1",
            "::1",
            "::",
            "fc00::1",
            "fd12:3456::1",
            "fe80::1",
            "ff02::1",
            "::ffff:127.0.0.1",
            "::ffff:10.0.0.1",
            "64:ff9b::a9fe:a9fe",
            "2002:7f00:1::",
            "::7f00:1",
        ] {
            assert!(forbidden(address), "{address} must be refused");
        }
    }

    #[test]
    fn public_addresses_are_allowed() {
        for address in [
            "8.8.8.8",
            "1.1.1.1",
            "172.32.0.1",
            "172.15.255.255",
            "100.128.0.1",
            "192.169.0.1",
            "2606:4700:4700::1111",
            "::ffff:8.8.8.8",
            "64:ff9b::808:808",
        ] {
            assert!(!forbidden(address), "{address} must be allowed");
        }
    }

    #[test]
    fn the_retry_schedule_doubles_with_jitter_and_is_capped() {
        let base = Duration::from_secs(5);
        // First retry within 10 s whatever the jitter.
        assert_eq!(retry_delay(1, base, 0.0), Duration::from_millis(2500));
        assert!(retry_delay(1, base, 0.999) < Duration::from_secs(5));
        assert_eq!(retry_delay(2, base, 0.0), Duration::from_secs(5));
        assert_eq!(retry_delay(3, base, 0.0), Duration::from_secs(10));
        assert!(retry_delay(3, base, 0.5) > retry_delay(3, base, 0.0));
        // Doubling stops at an hour, even after very many attempts.
        for attempts in [11, 12, 40, u32::MAX] {
            let delay = retry_delay(attempts, base, 0.999);
            assert!(delay <= RETRY_CAP, "{attempts}: {delay:?}");
            assert!(delay >= RETRY_CAP / 2, "{attempts}: {delay:?}");
        }
        // Out-of-range jitter is clamped, never beyond the nominal delay.
        assert_eq!(retry_delay(1, base, 7.0), base);
        assert_eq!(retry_delay(1, base, -1.0), base / 2);
    }

    #[test]
    fn urls_must_be_absolute_http_without_credentials() {
        let url = WebhookUrl::parse("https://hooks.example.com/tessera?x=1").expect("valid");
        assert_eq!(
            (url.host(), url.port(), url.is_https()),
            ("hooks.example.com", 443, true)
        );
        let url = WebhookUrl::parse("http://127.0.0.1:9000/in").expect("valid");
        assert_eq!((url.host(), url.port()), ("127.0.0.1", 9000));
        let url = WebhookUrl::parse("http://[::1]:81").expect("valid");
        assert_eq!((url.host(), url.port()), ("::1", 81));
        for bad in [
            "",
            "ftp://example.com",
            "example.com/hook",
            "/relative",
            "http://",
            "http://user:pw@example.com/",
            "http://example.com:99999/",
            "http://example.com:0/",
            "http://exa mple.com/",
            "http://example.com/#frag",
            "http://[not-v6]/",
        ] {
            let error = WebhookUrl::parse(bad).expect_err(bad);
            assert_eq!(error.field, "url", "{bad}");
        }
    }

    #[test]
    fn triggers_are_event_types_deduplicated_and_never_empty() {
        let triggers = Triggers::parse(&["ticket.redeemed", "program.created", "ticket.redeemed"])
            .expect("valid");
        assert_eq!(
            triggers.kinds(),
            &[EventType::ProgramCreated, EventType::TicketRedeemed]
        );
        assert!(triggers.contains(EventType::TicketRedeemed));
        assert!(!triggers.contains(EventType::TicketIssued));
        let unknown = Triggers::parse(&["ticket.nope"]).expect_err("unknown");
        assert_eq!(unknown.field, "triggers");
        assert!(unknown.message.contains("ticket.nope"));
        let empty: [&str; 0] = [];
        assert_eq!(
            Triggers::parse(&empty).expect_err("empty").field,
            "triggers"
        );
    }

    #[test]
    fn secrets_are_prefixed_random_and_redacted() {
        let secret = WebhookSecret::generate();
        assert!(secret.expose_secret().starts_with("whsec_"));
        assert_ne!(secret, WebhookSecret::generate());
        assert!(!format!("{secret:?} {secret}").contains(secret.expose_secret()));
        assert_eq!(DeliveryState::parse("failed"), Some(DeliveryState::Failed));
        assert_eq!(
            DeliveryState::parse(DeliveryState::Pending.as_str()),
            Some(DeliveryState::Pending)
        );
        assert_eq!(DeliveryState::parse("done"), None);
    }
}
