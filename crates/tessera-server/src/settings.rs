//! The server's configuration, read once from the environment (and an optional
//! `.env` file) and passed down; no crate below reads the environment itself.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;

use tessera_crypto::MasterKey;
use tessera_domain::OperatorToken;
use thiserror::Error;

/// A setting the server cannot start with. The message names the variable and
/// never echoes a secret's value.
#[derive(Debug, Error)]
#[error("{variable}: {message}")]
pub struct SettingsError {
    pub variable: &'static str,
    pub message: String,
}

fn invalid(variable: &'static str, message: impl Into<String>) -> SettingsError {
    SettingsError {
        variable,
        message: message.into(),
    }
}

#[derive(Debug, Clone)]
pub struct Settings {
    pub database_url: String,
    pub bind: SocketAddr,
    pub public_url: String,
    /// `None`: use (or create) the key file.
    pub master_key: Option<MasterKey>,
    pub master_key_file: PathBuf,
    pub operator_token: Option<OperatorToken>,
    pub token_ttl_seconds: u32,
    /// The signing key version N: N signs, N and N-1 are published and accepted.
    /// Rotate by bumping it, no more often than every `TESSERA_TOKEN_TTL`.
    pub signing_key_version: u32,
    pub redeem_failures_per_minute: u32,
    pub max_standalone_tickets: u32,
    pub trusted_proxies: Vec<IpAddr>,
    /// IPv6 clients share one failure budget per network of this prefix.
    pub client_ipv6_prefix: u8,
    /// How long five wrong emails lock a ticket (doubled per further lock).
    pub email_lock_seconds: u32,
    pub db_pool_size: u32,
    /// HTTP worker threads (event loops); `None`: one per CPU.
    pub http_workers: Option<u32>,
    pub body_limit_bytes: usize,
}

pub const DEFAULT_DATABASE_URL: &str = "postgres://postgres@127.0.0.1:5432/tessera";

impl Settings {
    /// Reads the process environment, after loading `.env` if present (variables
    /// already set win).
    pub fn from_env() -> Result<Self, SettingsError> {
        if let Err(error) = dotenvy::dotenv() {
            if !error.not_found() {
                return Err(invalid(".env", format!("cannot be read: {error}")));
            }
        }
        Self::from_map(&std::env::vars().collect())
    }

    pub fn from_map(env: &HashMap<String, String>) -> Result<Self, SettingsError> {
        let get = |name: &str| env.get(name).map(|v| v.trim()).filter(|v| !v.is_empty());

        let database_url = get("DATABASE_URL")
            .unwrap_or(DEFAULT_DATABASE_URL)
            .to_owned();
        if !(database_url.starts_with("postgres://") || database_url.starts_with("postgresql://")) {
            return Err(invalid("DATABASE_URL", "must be a postgres:// URL"));
        }
        let bind: SocketAddr = get("TESSERA_BIND")
            .unwrap_or("127.0.0.1:8080")
            .parse()
            .map_err(|_| invalid("TESSERA_BIND", "must be an address such as 127.0.0.1:8080"))?;
        let public_url = match get("TESSERA_PUBLIC_URL") {
            Some(url) if url.starts_with("http://") || url.starts_with("https://") => {
                url.trim_end_matches('/').to_owned()
            }
            Some(_) => {
                return Err(invalid(
                    "TESSERA_PUBLIC_URL",
                    "must be an absolute http(s) URL",
                ))
            }
            None => format!("http://{bind}"),
        };
        let master_key = get("TESSERA_MASTER_KEY")
            .map(|encoded| {
                MasterKey::from_base64(encoded)
                    .map_err(|error| invalid("TESSERA_MASTER_KEY", error.to_string()))
            })
            .transpose()?;
        let master_key_file =
            PathBuf::from(get("TESSERA_MASTER_KEY_FILE").unwrap_or(".tessera/master.key"));
        let operator_token = get("TESSERA_OPERATOR_TOKEN").map(OperatorToken::new);
        if operator_token
            .as_ref()
            .is_some_and(|token| token.expose_secret().len() < 16)
        {
            return Err(invalid(
                "TESSERA_OPERATOR_TOKEN",
                "must be at least 16 characters",
            ));
        }
        let trusted_proxies = get("TESSERA_TRUSTED_PROXIES")
            .map(|list| {
                list.split(',')
                    .map(|ip| ip.trim().parse::<IpAddr>())
                    .collect::<Result<Vec<_>, _>>()
                    .map_err(|_| {
                        invalid(
                            "TESSERA_TRUSTED_PROXIES",
                            "must be a comma-separated list of IP addresses",
                        )
                    })
            })
            .transpose()?
            .unwrap_or_default();

        Ok(Self {
            database_url,
            bind,
            public_url,
            master_key,
            master_key_file,
            operator_token,
            token_ttl_seconds: number(get, "TESSERA_TOKEN_TTL", 3600, 1..=31_536_000)?,
            signing_key_version: number(get, "TESSERA_SIGNING_KEY_VERSION", 1, 1..=1000)?,
            redeem_failures_per_minute: number(
                get,
                "TESSERA_REDEEM_FAILURES_PER_MINUTE",
                20,
                1..=1_000_000,
            )?,
            max_standalone_tickets: number(
                get,
                "TESSERA_MAX_STANDALONE_TICKETS",
                1_000_000,
                1..=u32::MAX,
            )?,
            trusted_proxies,
            client_ipv6_prefix: u8::try_from(number(
                get,
                "TESSERA_CLIENT_IPV6_PREFIX",
                64,
                16..=128,
            )?)
            .unwrap_or(64),
            email_lock_seconds: number(get, "TESSERA_EMAIL_LOCK_SECONDS", 900, 1..=31_536_000)?,
            db_pool_size: number(get, "TESSERA_DB_POOL_SIZE", 16, 1..=1000)?,
            http_workers: get("TESSERA_HTTP_WORKERS")
                .map(|_| number(get, "TESSERA_HTTP_WORKERS", 1, 1..=256))
                .transpose()?,
            body_limit_bytes: number(
                get,
                "TESSERA_BODY_LIMIT",
                64 * 1024,
                1024..=16 * 1024 * 1024,
            )? as usize,
        })
    }
}

fn number<'a>(
    get: impl Fn(&str) -> Option<&'a str>,
    variable: &'static str,
    default: u32,
    range: std::ops::RangeInclusive<u32>,
) -> Result<u32, SettingsError> {
    let Some(raw) = get(variable) else {
        return Ok(default);
    };
    raw.parse::<u32>()
        .ok()
        .filter(|value| range.contains(value))
        .ok_or_else(|| {
            invalid(
                variable,
                format!(
                    "must be a whole number from {} to {}",
                    range.start(),
                    range.end()
                ),
            )
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(pairs: &[(&str, &str)]) -> Result<Settings, SettingsError> {
        Settings::from_map(
            &pairs
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        )
    }

    #[test]
    fn defaults_match_the_api_reference() {
        let s = settings(&[]).expect("defaults are valid");
        assert_eq!(s.database_url, DEFAULT_DATABASE_URL);
        assert_eq!(s.bind.to_string(), "127.0.0.1:8080");
        assert_eq!(s.public_url, "http://127.0.0.1:8080");
        assert_eq!(s.token_ttl_seconds, 3600);
        assert_eq!(s.signing_key_version, 1);
        assert_eq!(s.redeem_failures_per_minute, 20);
        assert_eq!(s.max_standalone_tickets, 1_000_000);
        assert!(s.master_key.is_none());
        assert!(s.operator_token.is_none());
        assert!(s.trusted_proxies.is_empty());
        assert_eq!(s.body_limit_bytes, 65536);
        assert_eq!(s.client_ipv6_prefix, 64);
        assert_eq!(s.email_lock_seconds, 900);
    }

    #[test]
    fn each_bad_setting_is_named() {
        for (variable, value) in [
            ("TESSERA_BIND", "nowhere"),
            ("TESSERA_TOKEN_TTL", "0"),
            ("TESSERA_TOKEN_TTL", "soon"),
            ("TESSERA_MASTER_KEY", "c2hvcnQ="),
            ("TESSERA_MASTER_KEY", "not base64!"),
            ("TESSERA_TRUSTED_PROXIES", "10.0.0.1,nope"),
            ("DATABASE_URL", "mysql://x"),
            ("TESSERA_PUBLIC_URL", "example.com"),
            ("TESSERA_OPERATOR_TOKEN", "short"),
            ("TESSERA_SIGNING_KEY_VERSION", "0"),
            ("TESSERA_SIGNING_KEY_VERSION", "1001"),
            ("TESSERA_SIGNING_KEY_VERSION", "two"),
            ("TESSERA_REDEEM_FAILURES_PER_MINUTE", "0"),
            ("TESSERA_CLIENT_IPV6_PREFIX", "129"),
            ("TESSERA_CLIENT_IPV6_PREFIX", "8"),
            ("TESSERA_EMAIL_LOCK_SECONDS", "0"),
            ("TESSERA_EMAIL_LOCK_SECONDS", "forever"),
        ] {
            let error = settings(&[(variable, value)]).expect_err(value);
            assert_eq!(error.variable, variable);
        }
    }

    #[test]
    fn a_bad_master_key_is_not_echoed() {
        let error =
            settings(&[("TESSERA_MASTER_KEY", "c2VjcmV0LXNlY3JldA==")]).expect_err("16 bytes");
        assert!(!error.to_string().contains("c2VjcmV0LXNlY3JldA=="));
    }

    #[test]
    fn values_are_read() {
        let key = MasterKey([7; 32]).to_base64();
        let s = settings(&[
            ("TESSERA_BIND", "0.0.0.0:9000"),
            ("TESSERA_PUBLIC_URL", "https://tickets.example.com/"),
            ("TESSERA_MASTER_KEY", &key),
            ("TESSERA_TRUSTED_PROXIES", "10.0.0.1, ::1"),
            ("TESSERA_SIGNING_KEY_VERSION", "42"),
            ("TESSERA_REDEEM_FAILURES_PER_MINUTE", "5"),
            ("TESSERA_CLIENT_IPV6_PREFIX", "56"),
            ("TESSERA_EMAIL_LOCK_SECONDS", "60"),
        ])
        .expect("valid");
        assert_eq!(s.bind.port(), 9000);
        assert_eq!(s.public_url, "https://tickets.example.com");
        assert_eq!(s.master_key.expect("set").0, [7; 32]);
        assert_eq!(s.trusted_proxies.len(), 2);
        assert_eq!(s.signing_key_version, 42);
        assert_eq!(s.redeem_failures_per_minute, 5);
        assert_eq!(s.client_ipv6_prefix, 56);
        assert_eq!(s.email_lock_seconds, 60);
    }
}
