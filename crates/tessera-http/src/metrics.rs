//! Prometheus metrics: the `metrics` facade with `metrics-exporter-prometheus`'s
//! recorder, rendered by `GET /metrics` (the exporter runs no listener of its own).
//!
//! Recording takes no lock shared by all workers: the exporter's counters are
//! `AtomicU64`s and its histograms lock-free atomic buckets, and the handles to
//! them are looked up in the recorder's (sharded, `RwLock`ed) registry only once:
//! per worker thread and key for the HTTP metrics (a thread-local cache), once per
//! process for the redemption outcomes (an immutable table built at install).
//! Labels are route patterns (`/v1/programs/{program_id}`), never raw paths,
//! which can hold ids and URL-ticket tokens.
//!
//! Histograms keep every sample (its value and an `Instant`, 24 bytes, in blocks of
//! 64) until the recorder folds them into their buckets: on a scrape, or on
//! `run_upkeep`. `install_recorder` starts no upkeep of its own, so without a
//! scraper the samples piled up for good (issue 15's soak: +3 MiB a minute at
//! 1,600 requests/s, 28 bytes per request, all given back by one scrape). Every
//! [`UPKEEP_EVERY`]th sample recorded now runs the upkeep on the recording thread:
//! the backlog stays bounded whether or not anyone scrapes, with no timer thread.

use std::cell::RefCell;
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use metrics::{Counter, Histogram};
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};
use tessera_domain::RedemptionFailure;

pub const HTTP_REQUESTS: &str = "tessera_http_requests_total";
pub const HTTP_DURATION: &str = "tessera_http_request_duration_seconds";
pub const REDEMPTIONS: &str = "tessera_redemptions_total";
pub const DB_POOL: &str = "tessera_db_pool_connections";
pub const GROUP_COMMIT_BATCH: &str = "tessera_group_commit_batch_size";
pub const WEBHOOK_PENDING: &str = "tessera_webhook_deliveries_pending";
pub const CPU_SECONDS: &str = "process_cpu_seconds_total";
pub const RESIDENT_BYTES: &str = "process_resident_memory_bytes";
pub const ALLOCATED_BYTES: &str = "tessera_allocator_allocated_bytes";
pub const ALLOCATOR_RESIDENT_BYTES: &str = "tessera_allocator_resident_bytes";

/// Histogram samples recorded between two upkeeps (at most; a scrape also folds
/// them): a backlog of at most about 4096 × 28 bytes, and one upkeep (tens of
/// microseconds: it visits every histogram once) per 4096 requests.
pub const UPKEEP_EVERY: u64 = 4096;

/// The outcome label of a successful redemption; failures use their reason's code.
pub const REDEEMED: &str = "redeemed";

const FAILURES: [RedemptionFailure; 9] = [
    RedemptionFailure::TicketNotFound,
    RedemptionFailure::TicketExhausted,
    RedemptionFailure::TicketRevoked,
    RedemptionFailure::TicketDisabled,
    RedemptionFailure::TicketLocked,
    RedemptionFailure::EmailMismatch,
    RedemptionFailure::ProgramSuspended,
    RedemptionFailure::ProgramNotStarted,
    RedemptionFailure::ProgramEnded,
];

/// The batch kinds the persistence adapter reports (`tessera_postgres::BatchKind`).
const BATCH_KINDS: [&str; 2] = ["redemptions", "standalone_uses"];
const BATCH_BUCKETS: &[f64] = &[1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0, 256.0];

const DURATION_BUCKETS: &[f64] = &[
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

/// How many pooled database connections are idle and in use, sampled on scrape.
pub type PoolSampler = Arc<dyn Fn() -> (u32, u32) + Send + Sync>;

struct Installed {
    handle: PrometheusHandle,
    outcomes: HashMap<&'static str, Counter>,
    batches: HashMap<&'static str, Histogram>,
    /// Histogram samples recorded so far, for [`UPKEEP_EVERY`].
    samples: AtomicU64,
}

impl Installed {
    /// Called after each histogram sample: exactly one of every [`UPKEEP_EVERY`]
    /// callers, whichever thread it is on, folds the backlog into the buckets.
    fn sampled(&self) {
        if self.samples.fetch_add(1, Ordering::Relaxed) % UPKEEP_EVERY == UPKEEP_EVERY - 1 {
            self.handle.run_upkeep();
        }
    }
}

/// What the process's allocator holds, in bytes, where it can tell: the `tessera`
/// binary reads jemalloc's statistics (`stats.allocated`, `stats.resident`); other
/// builds of the program (the end-to-end tests' glibc one) set no sampler.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AllocatorSample {
    /// Bytes in live allocations: what grows when something leaks.
    pub allocated: u64,
    /// Bytes in pages the allocator has resident (live, its metadata, and freed
    /// pages not yet returned): what grows above `allocated` is retention.
    pub resident: u64,
}

/// Reads the allocator's figures (see [`set_allocator_sampler`]).
pub type AllocatorSampler = fn() -> Option<AllocatorSample>;

static ALLOCATOR: OnceLock<AllocatorSampler> = OnceLock::new();

/// Sets how scrapes read the allocator (once, before serving; later calls are
/// ignored). Without it the `tessera_allocator_*` gauges are not exported.
pub fn set_allocator_sampler(sampler: AllocatorSampler) {
    let _ = ALLOCATOR.set(sampler);
}

static INSTALLED: OnceLock<Option<Installed>> = OnceLock::new();

/// Installs the process-wide recorder (once; later calls reuse it) and registers
/// every listed metric, so `/metrics` shows them all from the first scrape.
fn installed() -> Option<&'static Installed> {
    INSTALLED
        .get_or_init(|| {
            let builder = PrometheusBuilder::new()
                .set_buckets_for_metric(Matcher::Full(HTTP_DURATION.to_owned()), DURATION_BUCKETS)
                .ok()?
                .set_buckets_for_metric(Matcher::Full(GROUP_COMMIT_BATCH.to_owned()), BATCH_BUCKETS)
                .ok()?;
            let handle = match builder.install_recorder() {
                Ok(handle) => handle,
                Err(error) => {
                    tracing::warn!(%error, "metrics recorder not installed");
                    return None;
                }
            };
            metrics::describe_counter!(HTTP_REQUESTS, "HTTP requests by route pattern and status");
            metrics::describe_histogram!(HTTP_DURATION, "HTTP request latency by route pattern");
            metrics::describe_counter!(
                REDEMPTIONS,
                "Redemptions by outcome (redeemed or the failure reason)"
            );
            metrics::describe_gauge!(DB_POOL, "Database pool connections by state");
            metrics::describe_histogram!(
                GROUP_COMMIT_BATCH,
                "Members per group commit statement, by kind (redemptions, standalone uses)"
            );
            metrics::describe_gauge!(
                WEBHOOK_PENDING,
                "Webhook deliveries waiting to be delivered"
            );
            metrics::describe_counter!(CPU_SECONDS, "CPU time of this process, user and system");
            metrics::describe_gauge!(RESIDENT_BYTES, "Resident memory of this process");
            metrics::describe_gauge!(
                ALLOCATED_BYTES,
                "Bytes in live allocations, as the allocator (jemalloc) counts them"
            );
            metrics::describe_gauge!(
                ALLOCATOR_RESIDENT_BYTES,
                "Bytes of memory the allocator (jemalloc) holds resident: live, metadata, and freed pages not yet returned"
            );
            let outcomes = std::iter::once(REDEEMED)
                .chain(FAILURES.iter().map(|failure| failure.code()))
                .map(|outcome| {
                    (
                        outcome,
                        metrics::counter!(REDEMPTIONS, "outcome" => outcome),
                    )
                })
                .collect();
            metrics::gauge!(WEBHOOK_PENDING).set(0.0);
            for state in ["idle", "in_use"] {
                metrics::gauge!(DB_POOL, "state" => state).set(0.0);
            }
            let batches = BATCH_KINDS
                .into_iter()
                .map(|kind| {
                    (
                        kind,
                        metrics::histogram!(GROUP_COMMIT_BATCH, "kind" => kind),
                    )
                })
                .collect();
            Some(Installed {
                handle,
                outcomes,
                batches,
                samples: AtomicU64::new(0),
            })
        })
        .as_ref()
}

/// Installs the recorder now (the server calls this at start).
pub fn install() {
    installed();
}

thread_local! {
    static HTTP_HANDLES: RefCell<HashMap<(String, u16), (Counter, Histogram)>> =
        RefCell::new(HashMap::new());
}

/// Counts one answered request and its latency under its route pattern (the
/// logging middleware calls it for every request).
pub fn record_request(route: &str, status: u16, elapsed: Duration) {
    let Some(installed) = installed() else {
        return;
    };
    HTTP_HANDLES.with(|cache| {
        let mut cache = cache.borrow_mut();
        let key = (route.to_owned(), status);
        let (counter, histogram) = cache.entry(key).or_insert_with(|| {
            let route = route.to_owned();
            (
                metrics::counter!(HTTP_REQUESTS, "route" => route.clone(), "status" => status.to_string()),
                metrics::histogram!(HTTP_DURATION, "route" => route),
            )
        });
        counter.increment(1);
        histogram.record(elapsed.as_secs_f64());
    });
    installed.sampled();
}

/// Counts one evaluated redemption: `Ok` is `redeemed`, a failure its reason.
pub fn record_redemption(outcome: Result<(), RedemptionFailure>) {
    let label = match outcome {
        Ok(()) => REDEEMED,
        Err(failure) => failure.code(),
    };
    if let Some(counter) = installed().and_then(|m| m.outcomes.get(label)) {
        counter.increment(1);
    }
}

/// Records the size of one group commit batch of `kind` (the executors call it).
pub fn record_group_commit_batch(kind: &str, size: usize) {
    let Some(installed) = installed() else {
        return;
    };
    if let Some(histogram) = installed.batches.get(kind) {
        histogram.record(size as f64);
        installed.sampled();
    }
}

/// Sets the number of webhook deliveries waiting (the delivery worker calls it).
pub fn set_webhook_deliveries_pending(pending: u64) {
    if installed().is_some() {
        metrics::gauge!(WEBHOOK_PENDING).set(pending as f64);
    }
}

/// The exposition text, after sampling the pool and the process.
pub(crate) fn render(pool: Option<&PoolSampler>) -> String {
    let Some(installed) = installed() else {
        return String::new();
    };
    if let Some(sample) = pool {
        let (idle, in_use) = sample();
        metrics::gauge!(DB_POOL, "state" => "idle").set(f64::from(idle));
        metrics::gauge!(DB_POOL, "state" => "in_use").set(f64::from(in_use));
    }
    if let Some(process) = ProcessSample::read() {
        metrics::counter!(CPU_SECONDS).absolute(process.cpu_centiseconds / 100);
        metrics::gauge!(RESIDENT_BYTES).set(process.resident_bytes as f64);
    }
    if let Some(allocator) = ALLOCATOR.get().and_then(|sample| sample()) {
        metrics::gauge!(ALLOCATED_BYTES).set(allocator.allocated as f64);
        metrics::gauge!(ALLOCATOR_RESIDENT_BYTES).set(allocator.resident as f64);
    }
    installed.handle.render()
}

/// What /proc says about this process.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct ProcessSample {
    /// utime + stime in clock ticks, which Linux reports at USER_HZ = 100.
    cpu_centiseconds: u64,
    resident_bytes: u64,
}

impl ProcessSample {
    fn read() -> Option<Self> {
        let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
        let status = std::fs::read_to_string("/proc/self/status").ok()?;
        Self::parse(&stat, &status)
    }

    fn parse(stat: &str, status: &str) -> Option<Self> {
        // The command name (field 2) may hold spaces: count fields after its ')'.
        let after_name = &stat[stat.rfind(')')? + 1..];
        let fields: Vec<&str> = after_name.split_whitespace().collect();
        // Fields 14 (utime) and 15 (stime), i.e. 11 and 12 after the state (3).
        let utime: u64 = fields.get(11)?.parse().ok()?;
        let stime: u64 = fields.get(12)?.parse().ok()?;
        let rss_kib: u64 = status
            .lines()
            .find_map(|line| line.strip_prefix("VmRSS:"))?
            .trim()
            .trim_end_matches("kB")
            .trim()
            .parse()
            .ok()?;
        Some(Self {
            cpu_centiseconds: utime + stime,
            resident_bytes: rss_kib * 1024,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn proc_files_parse_even_with_spaces_in_the_name() {
        let stat = "4242 (tessera (e2e) x) S 1 4242 4242 0 -1 4194560 900 0 0 0 250 75 0 0 20 0 9 0 1 1000 2000";
        let status = "Name:\ttessera\nVmPeak:\t  90000 kB\nVmRSS:\t   12345 kB\nThreads:\t9\n";
        assert_eq!(
            ProcessSample::parse(stat, status),
            Some(ProcessSample {
                cpu_centiseconds: 325,
                resident_bytes: 12345 * 1024
            })
        );
        assert_eq!(ProcessSample::parse("garbage", status), None);
    }

    #[test]
    fn this_process_can_be_sampled() {
        let sample = ProcessSample::read().expect("Linux /proc");
        assert!(sample.resident_bytes > 0);
    }
}
