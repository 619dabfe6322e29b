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

/// `TESSERA_LOG_FORMAT`: human-readable lines, or one JSON object per line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    Text,
    Json,
}

/// Where the failure throttle counts (`TESSERA_THROTTLE_SCOPE`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ThrottleScope {
    /// Every failure is also counted in PostgreSQL, so all replicas share one
    /// budget per client network and program.
    Shared,
    /// Each process counts alone: n replicas give n budgets. For one replica, it
    /// saves the failure path its write.
    Process,
}

#[derive(Debug, Clone)]
pub struct Settings {
    pub database_url: String,
    pub bind: SocketAddr,
    pub public_url: String,
    /// `None`: use (or create) the key file.
    pub master_key: Option<MasterKey>,
    pub master_key_file: PathBuf,
    /// The master key before a rotation: opens the root key's envelope until
    /// `tessera keys rotate` re-wraps it under the current one.
    pub master_key_previous: Option<MasterKey>,
    pub operator_token: Option<OperatorToken>,
    pub token_ttl_seconds: u32,
    /// The signing key version N: N signs, N and N-1 are published and accepted.
    /// Rotate by bumping it, no more often than every `TESSERA_TOKEN_TTL`.
    pub signing_key_version: u32,
    pub redeem_failures_per_minute: u32,
    pub throttle_scope: ThrottleScope,
    /// `TESSERA_API_KEY_CACHE`: resolve known API keys in process, kept right by
    /// the api_keys trigger's notices. Off on Citus, where the trigger fires on a
    /// worker and the coordinator's listeners never hear it (docs/operations.md).
    pub api_key_cache: bool,
    pub max_standalone_tickets: u32,
    pub trusted_proxies: Vec<IpAddr>,
    /// IPv6 clients share one failure budget per network of this prefix.
    pub client_ipv6_prefix: u8,
    /// How long five wrong emails lock a ticket (doubled per further lock).
    pub email_lock_seconds: u32,
    /// Chunks of one bulk issuance written at once, one connection each.
    pub batch_writers: u8,
    pub db_pool_size: u32,
    /// Every statement is cancelled after this long (PostgreSQL `statement_timeout`).
    pub statement_timeout_ms: u32,
    /// Group commit executors (one connection each, on top of the pool); 0 turns
    /// group commit off. Default: a quarter of the pool, 1 to 4, at most half
    /// the CPUs.
    pub group_commit_executors: u32,
    /// Redemptions (or standalone uses) one statement and commit carries at most.
    pub group_commit_max_batch: u32,
    /// Requests waiting for an executor at most; past it, `503` at once.
    pub group_commit_queue: u32,
    /// Requests in flight at once; past it, `503` at once (load shedding).
    pub max_in_flight: u32,
    /// Requests in flight at once from one client address.
    pub max_in_flight_per_client: u32,
    /// Open connections the process accepts (split over the HTTP workers).
    pub max_connections: u32,
    /// HTTP worker threads (event loops); `None`: one per CPU.
    pub http_workers: Option<u32>,
    pub body_limit_bytes: usize,
    /// Let webhook deliveries reach loopback, private and link-local addresses.
    pub webhook_allow_private: bool,
    /// The first retry's nominal wait in ms (default 5000); smaller only in tests.
    pub webhook_retry_base_ms: u32,
    /// Delivery worker threads per process.
    pub webhook_workers: u32,
    /// Events (and their stats) older than this are dropped.
    pub event_retention_days: u32,
    /// How often each replica maintains the event history (rollups, partitions).
    pub event_maintenance_seconds: u32,
    pub log_format: LogFormat,
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
        let master_key_previous = get("TESSERA_MASTER_KEY_PREVIOUS")
            .map(|encoded| {
                MasterKey::from_base64(encoded)
                    .map_err(|error| invalid("TESSERA_MASTER_KEY_PREVIOUS", error.to_string()))
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
        let db_pool_size = number(get, "TESSERA_DB_POOL_SIZE", 16, 1..=1000)?;

        Ok(Self {
            database_url,
            bind,
            public_url,
            master_key,
            master_key_file,
            master_key_previous,
            operator_token,
            token_ttl_seconds: number(get, "TESSERA_TOKEN_TTL", 3600, 1..=31_536_000)?,
            signing_key_version: number(get, "TESSERA_SIGNING_KEY_VERSION", 1, 1..=1000)?,
            redeem_failures_per_minute: number(
                get,
                "TESSERA_REDEEM_FAILURES_PER_MINUTE",
                20,
                1..=1_000_000,
            )?,
            throttle_scope: match get("TESSERA_THROTTLE_SCOPE") {
                None | Some("shared") => ThrottleScope::Shared,
                Some("process") => ThrottleScope::Process,
                Some(_) => {
                    return Err(invalid(
                        "TESSERA_THROTTLE_SCOPE",
                        "must be shared or process",
                    ))
                }
            },
            api_key_cache: match get("TESSERA_API_KEY_CACHE") {
                None => true,
                Some(raw) if raw.eq_ignore_ascii_case("on") => true,
                Some(raw) if raw.eq_ignore_ascii_case("off") => false,
                Some(_) => return Err(invalid("TESSERA_API_KEY_CACHE", "must be on or off")),
            },
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
            batch_writers: u8::try_from(number(get, "TESSERA_BATCH_WRITERS", 2, 1..=16)?)
                .unwrap_or(2),
            db_pool_size,
            group_commit_executors: number(
                get,
                "TESSERA_GROUP_COMMIT_EXECUTORS",
                default_group_commit_executors(db_pool_size),
                0..=64,
            )?,
            group_commit_max_batch: number(get, "TESSERA_GROUP_COMMIT_MAX_BATCH", 32, 1..=256)?,
            group_commit_queue: number(get, "TESSERA_GROUP_COMMIT_QUEUE", 1024, 1..=1_000_000)?,
            statement_timeout_ms: number(
                get,
                "TESSERA_STATEMENT_TIMEOUT_MS",
                30_000,
                100..=3_600_000,
            )?,
            max_in_flight: number(get, "TESSERA_MAX_IN_FLIGHT", 256, 1..=1_000_000)?,
            max_in_flight_per_client: number(
                get,
                "TESSERA_MAX_IN_FLIGHT_PER_CLIENT",
                64,
                1..=1_000_000,
            )?,
            max_connections: number(get, "TESSERA_MAX_CONNECTIONS", 4096, 1..=1_000_000)?,
            http_workers: get("TESSERA_HTTP_WORKERS")
                .map(|_| number(get, "TESSERA_HTTP_WORKERS", 1, 1..=256))
                .transpose()?,
            body_limit_bytes: number(
                get,
                "TESSERA_BODY_LIMIT",
                64 * 1024,
                1024..=16 * 1024 * 1024,
            )? as usize,
            webhook_allow_private: flag(get, "TESSERA_WEBHOOK_ALLOW_PRIVATE")?,
            webhook_retry_base_ms: number(get, "TESSERA_WEBHOOK_RETRY_BASE_MS", 5000, 10..=10_000)?,
            webhook_workers: number(get, "TESSERA_WEBHOOK_WORKERS", 2, 1..=64)?,
            event_retention_days: number(get, "TESSERA_EVENT_RETENTION_DAYS", 90, 1..=36_500)?,
            event_maintenance_seconds: number(
                get,
                "TESSERA_EVENT_MAINTENANCE_SECONDS",
                60,
                1..=86_400,
            )?,
            log_format: match get("TESSERA_LOG_FORMAT") {
                None | Some("text") => LogFormat::Text,
                Some("json") => LogFormat::Json,
                Some(_) => return Err(invalid("TESSERA_LOG_FORMAT", "must be text or json")),
            },
        })
    }
}

fn flag<'a>(
    get: impl Fn(&str) -> Option<&'a str>,
    variable: &'static str,
) -> Result<bool, SettingsError> {
    match get(variable) {
        None => Ok(false),
        Some(raw) if raw.eq_ignore_ascii_case("true") => Ok(true),
        Some(raw) if raw.eq_ignore_ascii_case("false") => Ok(false),
        Some(_) => Err(invalid(variable, "must be true or false")),
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

/// The CPUs this process may use (1 when unknown).
fn cpus() -> u32 {
    std::thread::available_parallelism().map_or(1, |n| u32::try_from(n.get()).unwrap_or(1))
}

/// A quarter of the pool, 1 to 4, and no more than half the CPUs (at least 1):
/// each executor keeps one database backend busy with its batch, and PostgreSQL
/// shares the machine with this process. More executors only split the same load
/// into smaller batches whose backends contend: on 2 CPUs, 1 executor (batches up
/// to 32) did 6,900–9,700 redemptions/s where 2 did 5,600–9,700/s, and 21,400–
/// 29,200 standalone uses/s where 2 did 20,600–24,800/s, side by side
/// (docs/performance.md); 2 had beaten 4 by about 35 % earlier. The CPUs that
/// matter are the database's: with PostgreSQL on a larger machine of its own, set
/// `TESSERA_GROUP_COMMIT_EXECUTORS`.
fn default_group_commit_executors(db_pool_size: u32) -> u32 {
    (db_pool_size / 4).clamp(1, 4).min((cpus() / 2).max(1))
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
        assert!(!s.webhook_allow_private);
        assert_eq!(s.event_retention_days, 90);
        assert_eq!(s.log_format, LogFormat::Text);
        assert_eq!(s.client_ipv6_prefix, 64);
        assert_eq!(s.email_lock_seconds, 900);
        assert_eq!(s.batch_writers, 2);
        assert_eq!(s.throttle_scope, ThrottleScope::Shared);
        assert!(s.api_key_cache, "the API-key cache is on by default");

        assert_eq!(s.webhook_retry_base_ms, 5000);
        assert_eq!(
            (
                s.group_commit_executors,
                s.group_commit_max_batch,
                s.group_commit_queue
            ),
            (4.min((cpus() / 2).max(1)), 32, 1024)
        );
    }

    #[test]
    fn group_commit_executors_follow_the_pool_unless_set() {
        let small = settings(&[("TESSERA_DB_POOL_SIZE", "2")]).expect("valid");
        assert_eq!(small.group_commit_executors, 1);
        let large = settings(&[("TESSERA_DB_POOL_SIZE", "64")]).expect("valid");
        assert_eq!(
            large.group_commit_executors,
            4.min((cpus() / 2).max(1)),
            "at most 4, at most half the CPUs"
        );
        let off = settings(&[("TESSERA_GROUP_COMMIT_EXECUTORS", "0")]).expect("valid");
        assert_eq!(off.group_commit_executors, 0, "0 turns group commit off");
        assert!(settings(&[("TESSERA_GROUP_COMMIT_MAX_BATCH", "0")]).is_err());
    }

    #[test]
    fn the_throttle_scope_is_shared_or_process() {
        let process = settings(&[("TESSERA_THROTTLE_SCOPE", "process")]).expect("valid");
        assert_eq!(process.throttle_scope, ThrottleScope::Process);
        let error = settings(&[("TESSERA_THROTTLE_SCOPE", "redis")]).unwrap_err();
        assert_eq!(error.variable, "TESSERA_THROTTLE_SCOPE");
    }

    #[test]
    fn the_api_key_cache_is_on_or_off() {
        let off = settings(&[("TESSERA_API_KEY_CACHE", "off")]).expect("valid");
        assert!(!off.api_key_cache);
        let on = settings(&[("TESSERA_API_KEY_CACHE", "ON")]).expect("valid");
        assert!(on.api_key_cache);
        let error = settings(&[("TESSERA_API_KEY_CACHE", "true")]).unwrap_err();
        assert_eq!(error.variable, "TESSERA_API_KEY_CACHE");
    }

    #[test]
    fn webhook_settings_are_read() {
        let s = settings(&[
            ("TESSERA_WEBHOOK_ALLOW_PRIVATE", "TRUE"),
            ("TESSERA_WEBHOOK_RETRY_BASE_MS", "50"),
            ("TESSERA_WEBHOOK_WORKERS", "3"),
        ])
        .expect("valid");
        assert!(s.webhook_allow_private);
        assert_eq!((s.webhook_retry_base_ms, s.webhook_workers), (50, 3));
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
            ("TESSERA_WEBHOOK_ALLOW_PRIVATE", "yes"),
            ("TESSERA_WEBHOOK_RETRY_BASE_MS", "0"),
            ("TESSERA_WEBHOOK_WORKERS", "0"),
            ("TESSERA_EVENT_RETENTION_DAYS", "0"),
            ("TESSERA_EVENT_RETENTION_DAYS", "ninety"),
            ("TESSERA_EVENT_MAINTENANCE_SECONDS", "0"),
            ("TESSERA_LOG_FORMAT", "xml"),
            ("TESSERA_CLIENT_IPV6_PREFIX", "129"),
            ("TESSERA_CLIENT_IPV6_PREFIX", "8"),
            ("TESSERA_EMAIL_LOCK_SECONDS", "0"),
            ("TESSERA_EMAIL_LOCK_SECONDS", "forever"),
            ("TESSERA_BATCH_WRITERS", "0"),
            ("TESSERA_BATCH_WRITERS", "17"),
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
            ("TESSERA_EVENT_RETENTION_DAYS", "30"),
            ("TESSERA_LOG_FORMAT", "json"),
            ("TESSERA_CLIENT_IPV6_PREFIX", "56"),
            ("TESSERA_EMAIL_LOCK_SECONDS", "60"),
            ("TESSERA_BATCH_WRITERS", "4"),
        ])
        .expect("valid");
        assert_eq!(s.bind.port(), 9000);
        assert_eq!(s.public_url, "https://tickets.example.com");
        assert_eq!(s.master_key.expect("set").0, [7; 32]);
        assert_eq!(s.trusted_proxies.len(), 2);
        assert_eq!(s.signing_key_version, 42);
        assert_eq!(s.redeem_failures_per_minute, 5);
        assert_eq!(s.event_retention_days, 30);
        assert_eq!(s.log_format, LogFormat::Json);
        assert_eq!(s.client_ipv6_prefix, 56);
        assert_eq!(s.email_lock_seconds, 60);
        assert_eq!(s.batch_writers, 4);
    }
}
