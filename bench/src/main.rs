//! `tessera-load`: the load generator behind `make bench`.
//!
//! N connections, each a thread holding one keep-alive `TcpStream` that speaks
//! HTTP/1.1 by hand: `POST /v1/redeem` with a code taken round-robin from a codes file
//! (the CSV the bulk endpoint streams) — or, with `--mix`, a weighted mix of
//! redemptions, failing redemptions, issuance and holds. With `--keyed` the
//! redemptions carry `Authorization: Bearer <--key>` (the authenticated
//! redemption; same body). With `--use FILE` every request instead uses a
//! standalone ticket of FILE round-robin (`POST /v1/tickets/use` with the key, 200
//! expected), and with `--create-tickets FILE` it creates standalone tickets that
//! never expire and have unlimited uses (`POST /v1/tickets`, 201 expected; bound
//! the count with `--max-requests`) and writes them to FILE in the format `--use`
//! reads: a `ticket` header, then one per line. Either at full speed for
//! `--duration` seconds, or open-loop at `--rate` requests per second in total, paced
//! per connection: every request has a scheduled send time and its latency is
//! measured from that time, so the queueing a slow server causes is counted, not
//! hidden. With `--labelled FILE` every row names its own program and a label, and
//! each label's answers are counted and timed apart (see `labelled.rs`). With `--sources N` the connections come from N loopback addresses, so the
//! server's per-address bounds see N clients; with `--stall BYTES` every connection
//! sends part of a body and stops (see `stall.rs`).
//!
//! The result is one line of JSON on stdout:
//! `{"requests", "ok", "errors", "shed", "shed_retry_after", "broken", "unsent", "seconds",
//! "rps", "p50_ms", "p99_ms", "max_ms", "ok_p50_ms", "ok_p99_ms", "ok_max_ms",
//! "shed_p50_ms", "shed_p99_ms", "shed_max_ms"}`: `ok` counts the answers with the
//! status their kind expects (200 for a redemption), `shed` the `503`s (of which
//! `shed_retry_after` carried `Retry-After`), `errors` every other answer and every
//! broken exchange (`broken` of them: no answer at all), `unsent` the open loop's
//! requests due before the deadline but never sent (the run ends at its deadline
//! even when the server fell behind), `rps` is `ok` per second. A labelled run adds
//! `"LABEL_requests", "LABEL_ok", "LABEL_errors", "LABEL_p50_ms", "LABEL_p99_ms",
//! "LABEL_mean_ms"` for every label.
//! It only ever connects to the loopback address it is given, and every run is
//! bounded in time and in count.

mod http;
mod labelled;
mod mix;
mod stall;

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use http::Connection;
use labelled::Labelled;
use mix::{Kind, Mix, Target};

const USAGE: &str = "\
usage: tessera-load --addr 127.0.0.1:PORT (--program PROGRAM_ID --codes FILE | --labelled FILE
                                          | --use FILE | --create-tickets FILE)
                    [--connections N] [--duration SECS] [--rate R]
                    [--limit CODES] [--max-requests N] [--sources N]
                    [--mix KIND=W,...] [--key API_KEY] [--keyed] [--stall BYTES]
                    [--on-503 retry|wait]

  --addr          loopback address of the tessera server (nothing else is accepted)
  --program       the program id sent with every redemption
  --codes         the bulk-issuance CSV (`ticketId,code` header, then rows)
  --labelled      instead of --program and --codes: a CSV with a
                  `label,programId,code` header, one request per row in file
                  order, every label's answers counted and timed apart
  --use           instead of --program and --codes: a file of standalone tickets
                  (`ticket` header, then one per line); every request is
                  POST /v1/tickets/use of the next one with --key (200 expected)
  --create-tickets  instead: create standalone tickets (POST /v1/tickets with
                  {\"ttl\":0,\"uses\":0} and --key, 201 expected), as many as
                  --max-requests allows, and write them to FILE in --use's format
  --connections   keep-alive connections, one thread each (default 32)
  --duration      seconds to run (default 20, at most 3600)
  --rate          total requests per second, paced per connection (open loop);
                  without it, every connection sends as fast as it is answered
  --limit         use only the first CODES codes of the file
  --max-requests  stop after this many requests in all (default 10000000)
  --sources       spread the connections over N loopback source addresses
                  127.0.0.1, 127.0.0.2, ... (default 1, at most 4096)
  --mix           weights of redeem, fail, issue, hold (e.g. redeem=70,fail=15,
                  issue=10,hold=5); default: redeem only
  --key           API key sent with issue and hold requests (needed for them),
                  and with --use, --create-tickets and --keyed
  --keyed         send the key with redemptions too (`Authorization: Bearer`;
                  the authenticated redemption, same body); needs --key
  --stall BYTES   every connection sends BYTES (at most 60000) of a redemption's
                  body, then stalls until --duration is over
  --on-503        after a 503: `retry` at once (default: a client that ignores
                  Retry-After), or `wait` the Retry-After seconds (a polite one)";

const MAX_SECONDS: f64 = 3600.0;
const MAX_CONNECTIONS: usize = 1024;
const MAX_SOURCES: usize = 4096;
const MAX_STALL_BYTES: usize = 60_000;
const MAX_RATE: f64 = 1_000_000.0;
const DEFAULT_MAX_REQUESTS: u64 = 10_000_000;
/// The first few failures are printed to stderr; the rest are only counted.
const FAILURES_SHOWN: usize = 5;
/// Time given to every connection to open before the clock starts.
const RAMP: Duration = Duration::from_millis(300);

#[derive(Debug)]
struct Options {
    addr: SocketAddr,
    /// The bulk CSV and the program of its codes, or a labelled file.
    source: CodeSource,
    connections: usize,
    duration: f64,
    rate: Option<f64>,
    limit: Option<usize>,
    max_requests: u64,
    sources: usize,
    mix: Mix,
    key: Option<String>,
    /// `--keyed`: redemptions carry the key too.
    keyed: bool,
    stall: Option<usize>,
    wait_on_503: bool,
}

#[derive(Debug, PartialEq, Eq)]
enum CodeSource {
    Codes {
        program: String,
        codes: PathBuf,
    },
    Labelled(PathBuf),
    /// `--use FILE`: standalone tickets to use.
    Tickets(PathBuf),
    /// `--create-tickets FILE`: where the created standalone tickets go.
    Create(PathBuf),
}

/// `value` parsed and within `range`, or the flag's error.
fn bounded<T: std::str::FromStr + PartialOrd>(
    flag: &str,
    value: &str,
    range: std::ops::RangeInclusive<T>,
    what: &str,
) -> Result<T, String> {
    value
        .parse()
        .ok()
        .filter(|n| range.contains(n))
        .ok_or_else(|| format!("{flag}: {what}, not {value:?}"))
}

fn parse_options(args: &[String]) -> Result<Options, String> {
    let mut addr = None;
    let mut program = None;
    let mut codes = None;
    let mut labelled = None;
    let mut tickets = None;
    let mut create = None;
    let mut connections = 32usize;
    let mut duration = 20.0f64;
    let mut rate = None;
    let mut limit = None;
    let mut max_requests = DEFAULT_MAX_REQUESTS;
    let mut sources = 1usize;
    let mut mix = None;
    let mut key = None;
    let mut keyed = false;
    let mut stall = None;
    let mut wait_on_503 = false;
    let mut rest = args.iter();
    while let Some(flag) = rest.next() {
        if flag == "-h" || flag == "--help" {
            return Err(String::new());
        }
        if flag == "--keyed" {
            keyed = true;
            continue;
        }
        let value = rest.next().ok_or_else(|| format!("{flag} needs a value"))?;
        match flag.as_str() {
            "--addr" => {
                let parsed: SocketAddr = value
                    .parse()
                    .map_err(|_| format!("{flag}: an IP:PORT, not {value:?}"))?;
                if !parsed.ip().is_loopback() {
                    return Err(format!(
                        "{flag}: a loopback address (127.0.0.1 or ::1), not {value:?}"
                    ));
                }
                addr = Some(parsed);
            }
            "--program" => program = Some(value.clone()),
            "--codes" => codes = Some(PathBuf::from(value)),
            "--labelled" => labelled = Some(PathBuf::from(value)),
            "--use" => tickets = Some(PathBuf::from(value)),
            "--create-tickets" => create = Some(PathBuf::from(value)),
            "--connections" => {
                connections = bounded(flag, value, 1..=MAX_CONNECTIONS, "1..=1024")?;
            }
            "--duration" => {
                duration = bounded(
                    flag,
                    value,
                    f64::MIN_POSITIVE..=MAX_SECONDS,
                    "seconds in (0, 3600]",
                )?;
            }
            "--rate" => {
                rate = Some(bounded(
                    flag,
                    value,
                    f64::MIN_POSITIVE..=MAX_RATE,
                    "requests per second in (0, 1000000]",
                )?);
            }
            "--limit" => limit = Some(bounded(flag, value, 1..=usize::MAX, "a positive count")?),
            "--max-requests" => {
                max_requests = bounded(flag, value, 1..=u64::MAX, "a positive count")?;
            }
            "--sources" => sources = bounded(flag, value, 1..=MAX_SOURCES, "1..=4096")?,
            "--mix" => mix = Some(Mix::parse(value).map_err(|e| format!("{flag}: {e}"))?),
            "--key" => key = Some(value.clone()),
            "--stall" => {
                stall = Some(bounded(
                    flag,
                    value,
                    16..=MAX_STALL_BYTES,
                    "16..=60000 bytes",
                )?)
            }
            "--on-503" => {
                wait_on_503 = match value.as_str() {
                    "retry" => false,
                    "wait" => true,
                    _ => return Err(format!("{flag}: retry or wait, not {value:?}")),
                };
            }
            _ => return Err(format!("unknown option {flag}")),
        }
    }
    let addr: SocketAddr = addr.ok_or("--addr is required")?;
    if sources > 1 && !addr.is_ipv4() {
        return Err("--sources needs an IPv4 --addr (127.0.0.0/8 holds the sources)".to_owned());
    }
    let replacement = match (labelled, tickets, create) {
        (None, None, None) => None,
        (Some(file), None, None) => Some(CodeSource::Labelled(file)),
        (None, Some(file), None) => Some(CodeSource::Tickets(file)),
        (None, None, Some(file)) => Some(CodeSource::Create(file)),
        _ => return Err("--labelled, --use and --create-tickets exclude each other".to_owned()),
    };
    let source = match (program, codes, replacement) {
        (Some(program), Some(codes), None) => CodeSource::Codes { program, codes },
        (None, None, Some(source)) => source,
        (_, _, Some(_)) => {
            return Err(
                "--labelled, --use and --create-tickets replace --program and --codes".to_owned(),
            )
        }
        (None, _, None) => return Err("--program is required".to_owned()),
        (_, None, None) => return Err("--codes is required".to_owned()),
    };
    // The standalone modes send one kind only.
    let mix = match (&source, mix) {
        (CodeSource::Tickets(_), None) => Mix::only(Kind::Use),
        (CodeSource::Create(_), None) => Mix::only(Kind::Create),
        (CodeSource::Tickets(_) | CodeSource::Create(_), Some(_)) => {
            return Err("--use and --create-tickets take no --mix".to_owned())
        }
        (_, mix) => mix.unwrap_or_default(),
    };
    if mix.needs_key() && key.is_none() {
        return Err("--mix with issue or hold, --use and --create-tickets need --key".to_owned());
    }
    if keyed && key.is_none() {
        return Err("--keyed needs --key".to_owned());
    }
    Ok(Options {
        addr,
        source,
        connections,
        duration,
        rate,
        limit,
        max_requests,
        sources,
        mix,
        key,
        keyed,
        stall,
        wait_on_503,
    })
}

/// The source address of every connection: `None` (the kernel's choice) for one
/// source, else 127.0.0.1, 127.0.0.2, ... round-robin.
fn source_addresses(sources: usize) -> Vec<Option<IpAddr>> {
    if sources <= 1 {
        return vec![None];
    }
    (0..sources)
        .map(|i| {
            let n = u32::try_from(i + 1).unwrap_or(1);
            Some(IpAddr::V4(Ipv4Addr::from(
                u32::from(Ipv4Addr::LOCALHOST) & 0xff00_0000 | n,
            )))
        })
        .collect()
}

/// The codes of a bulk-issuance CSV: the last field of every row, header skipped.
fn read_codes(text: &str, limit: Option<usize>) -> Vec<String> {
    text.lines()
        .map(str::trim)
        .filter(|line| !line.is_empty() && !line.starts_with("ticketId"))
        .filter_map(|line| line.rsplit(',').next())
        .map(|field| {
            let field = field.trim();
            match field.strip_prefix('"').and_then(|f| f.strip_suffix('"')) {
                Some(quoted) => quoted.replace("\"\"", "\""),
                None => field.to_owned(),
            }
        })
        .filter(|code| !code.is_empty())
        .take(limit.unwrap_or(usize::MAX))
        .collect()
}

/// The tickets of a `--use` file: a `ticket` header, then one ticket per line.
fn read_tickets(text: &str, limit: Option<usize>) -> Result<Vec<String>, String> {
    let mut lines = text.lines().map(str::trim).filter(|l| !l.is_empty());
    if lines.next() != Some("ticket") {
        return Err("a tickets file starts with the header ticket".to_owned());
    }
    let tickets: Vec<String> = lines
        .take(limit.unwrap_or(usize::MAX))
        .map(str::to_owned)
        .collect();
    if tickets.is_empty() {
        return Err("no tickets".to_owned());
    }
    Ok(tickets)
}

/// The ticket of a `201 {"ticket":"..."}` answer to `POST /v1/tickets`.
fn created_ticket(body: &[u8]) -> Option<String> {
    let text = std::str::from_utf8(body).ok()?;
    let (_, after) = text.split_once("\"ticket\"")?;
    let value = after.trim_start().strip_prefix(':')?.trim_start();
    let (ticket, _) = value.strip_prefix('"')?.split_once('"')?;
    (!ticket.is_empty() && !ticket.contains('\\')).then(|| ticket.to_owned())
}

/// A `--create-tickets` file: the header, then one ticket per line.
fn tickets_file(tickets: &[String]) -> String {
    let mut text = String::with_capacity(7 + tickets.len() * 33);
    text.push_str("ticket\n");
    for ticket in tickets {
        text.push_str(ticket);
        text.push('\n');
    }
    text
}

/// Everything the connections share.
#[derive(Debug)]
struct Shared {
    target: Target,
    mix: Mix,
    rows: Labelled,
    next_request: AtomicUsize,
    started: AtomicU64,
    max_requests: u64,
    failures_shown: AtomicUsize,
    /// Closed loop only: sleep for a 503's Retry-After before the next request.
    wait_on_503: bool,
}

impl Shared {
    /// The next request (its kind by the mix, its row round-robin) into `out`,
    /// with the index of its row's label.
    fn request(&self, out: &mut Vec<u8>, body: &mut String) -> (Kind, usize) {
        let k = self.next_request.fetch_add(1, Ordering::Relaxed);
        let kind = self.mix.kind_of(k);
        let row = &self.rows.rows[k % self.rows.rows.len()];
        let program = &self.rows.programs[row.program];
        self.target.request(kind, k, program, &row.code, out, body);
        (kind, row.label)
    }

    fn report_failure(&self, what: &str) {
        if self.failures_shown.fetch_add(1, Ordering::Relaxed) < FAILURES_SHOWN {
            eprintln!("tessera-load: {what}");
        }
    }
}

/// What one connection measured. Latencies are microseconds, from the scheduled
/// send time to the end of the answer.
#[derive(Debug, Default)]
struct Tally {
    ok: u64,
    errors: u64,
    shed: u64,
    shed_retry_after: u64,
    broken: u64,
    /// Open loop: requests due before the deadline that were never sent, because
    /// the connection was still waiting for earlier answers.
    unsent: u64,
    latencies: Vec<u32>,
    ok_latencies: Vec<u32>,
    shed_latencies: Vec<u32>,
    /// A labelled run's answers per label (empty otherwise).
    per_label: Vec<LabelTally>,
    /// `--create-tickets`: the tickets the 201s carried.
    created: Vec<String>,
}

/// One label's answers: counted by outcome, every latency kept.
#[derive(Debug, Default, Clone)]
struct LabelTally {
    ok: u64,
    errors: u64,
    latencies: Vec<u32>,
}

impl Tally {
    fn for_labels(labels: usize) -> Self {
        Self {
            per_label: vec![LabelTally::default(); labels],
            ..Self::default()
        }
    }

    /// Counts one answer (`ok`: the status its kind expects) under its label.
    fn label(&mut self, label: usize, ok: bool, micros: u32) {
        if let Some(tally) = self.per_label.get_mut(label) {
            if ok {
                tally.ok += 1;
            } else {
                tally.errors += 1;
            }
            tally.latencies.push(micros);
        }
    }

    fn add(&mut self, other: Self) {
        self.ok += other.ok;
        self.errors += other.errors;
        self.shed += other.shed;
        self.shed_retry_after += other.shed_retry_after;
        self.broken += other.broken;
        self.unsent += other.unsent;
        self.latencies.extend(other.latencies);
        self.ok_latencies.extend(other.ok_latencies);
        self.shed_latencies.extend(other.shed_latencies);
        self.created.extend(other.created);
        if self.per_label.len() < other.per_label.len() {
            self.per_label
                .resize(other.per_label.len(), LabelTally::default());
        }
        for (mine, theirs) in self.per_label.iter_mut().zip(other.per_label) {
            mine.ok += theirs.ok;
            mine.errors += theirs.errors;
            mine.latencies.extend(theirs.latencies);
        }
    }
}

/// When each request of a connection is due.
#[derive(Debug, Clone, Copy)]
enum Pace {
    /// As soon as the previous answer is read.
    Closed,
    /// At `first + k × interval`, whatever happened to the earlier requests.
    Open { first: Instant, interval: f64 },
}

fn run_connection(
    shared: &Shared,
    source: Option<IpAddr>,
    start: Instant,
    deadline: Instant,
    pace: Pace,
) -> Tally {
    let mut tally = Tally::for_labels(shared.rows.labels.len());
    let mut request = Vec::with_capacity(512);
    let mut body = String::with_capacity(256);
    let addr = shared.target.addr;
    // Connect before the clock starts, so the first latency is not a handshake.
    let mut connection = Connection::open(addr, source).ok();
    if let Some(wait) = start.checked_duration_since(Instant::now()) {
        thread::sleep(wait);
    }
    for k in 0u64.. {
        let scheduled = match pace {
            Pace::Closed => Instant::now(),
            Pace::Open { first, interval } => first + Duration::from_secs_f64(interval * k as f64),
        };
        if scheduled >= deadline
            || shared.started.fetch_add(1, Ordering::Relaxed) >= shared.max_requests
        {
            break;
        }
        // An open loop that fell behind a slow server stops at the deadline too,
        // with what it could not send counted, so a run lasts what it says.
        if Instant::now() >= deadline {
            if let Pace::Open { first, interval } = pace {
                let due = deadline.saturating_duration_since(first).as_secs_f64() / interval;
                tally.unsent += (due.ceil() as u64).saturating_sub(k);
            }
            break;
        }
        if let Some(wait) = scheduled.checked_duration_since(Instant::now()) {
            thread::sleep(wait);
        }
        let (kind, label) = shared.request(&mut request, &mut body);
        let connected = match connection.take() {
            Some(open) => Ok(open),
            None => Connection::open(addr, source),
        };
        let outcome = connected.and_then(|mut open| open.exchange(&request).map(|a| (open, a)));
        let micros = u32::try_from(scheduled.elapsed().as_micros()).unwrap_or(u32::MAX);
        tally.latencies.push(micros);
        // A creation counts only with the ticket its answer carries.
        let created = match (&outcome, kind) {
            (Ok((open, answer)), Kind::Create) if answer.status == 201 => {
                created_ticket(open.body())
            }
            _ => None,
        };
        let expected = matches!(&outcome, Ok((_, answer)) if answer.status == kind.expected_status())
            && (kind != Kind::Create || created.is_some());
        tally.label(label, expected, micros);
        match outcome {
            Ok((open, answer)) => {
                if expected {
                    tally.ok += 1;
                    tally.ok_latencies.push(micros);
                    tally.created.extend(created);
                } else if answer.status == 503 {
                    tally.shed += 1;
                    tally.shed_retry_after += u64::from(answer.retry_after.is_some());
                    tally.shed_latencies.push(micros);
                    if let (true, Pace::Closed, Some(seconds)) =
                        (shared.wait_on_503, pace, answer.retry_after)
                    {
                        let until = (Instant::now() + Duration::from_secs(seconds)).min(deadline);
                        thread::sleep(until.saturating_duration_since(Instant::now()));
                    }
                } else {
                    tally.errors += 1;
                    shared.report_failure(&format!(
                        "{:?}: {} {}",
                        kind,
                        answer.status_line,
                        open.body_excerpt()
                    ));
                }
                if answer.keep_alive {
                    connection = Some(open);
                }
            }
            Err(error) => {
                tally.errors += 1;
                tally.broken += 1;
                shared.report_failure(&format!("connection error: {error}"));
                // Do not spin on a dead server.
                thread::sleep(Duration::from_millis(10));
            }
        }
    }
    tally
}

/// Nearest-rank percentile of sorted microseconds, in milliseconds.
fn percentile_ms(sorted: &[u32], q: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let rank = (q * sorted.len() as f64).ceil() as usize;
    f64::from(sorted[rank.clamp(1, sorted.len()) - 1]) / 1000.0
}

fn run(options: Options) -> Result<ExitCode, String> {
    let sources = source_addresses(options.sources);
    if let Some(bytes) = options.stall {
        stall::run_stalled(
            options.addr,
            &sources,
            options.connections,
            bytes,
            options.duration,
        )?;
        return Ok(ExitCode::SUCCESS);
    }
    let created_file = match &options.source {
        CodeSource::Create(path) => Some(path.clone()),
        _ => None,
    };
    let rows = read_rows(options.source, options.limit)?;
    let shared = Arc::new(Shared {
        target: Target {
            addr: options.addr,
            key: options.key,
            keyed: options.keyed,
        },
        mix: options.mix,
        rows,
        next_request: AtomicUsize::new(0),
        started: AtomicU64::new(0),
        max_requests: options.max_requests,
        failures_shown: AtomicUsize::new(0),
        wait_on_503: options.wait_on_503,
    });
    let start = Instant::now() + RAMP;
    let deadline = start + Duration::from_secs_f64(options.duration);
    let workers: Vec<_> = (0..options.connections)
        .map(|i| {
            let pace = match options.rate {
                None => Pace::Closed,
                Some(rate) => Pace::Open {
                    // Connections take turns, evenly spread over one period.
                    first: start + Duration::from_secs_f64(i as f64 / rate),
                    interval: options.connections as f64 / rate,
                },
            };
            let shared = Arc::clone(&shared);
            let source = sources[i % sources.len()];
            thread::Builder::new()
                .name(format!("load-{i}"))
                .stack_size(256 * 1024)
                .spawn(move || run_connection(&shared, source, start, deadline, pace))
                .map_err(|e| format!("cannot start a thread: {e}"))
        })
        .collect::<Result<_, _>>()?;
    let mut total = Tally::default();
    for worker in workers {
        total.add(
            worker
                .join()
                .map_err(|_| "a connection thread panicked".to_owned())?,
        );
    }
    let seconds = start.elapsed().as_secs_f64();
    for list in [
        &mut total.latencies,
        &mut total.ok_latencies,
        &mut total.shed_latencies,
    ] {
        list.sort_unstable();
    }
    for tally in &mut total.per_label {
        tally.latencies.sort_unstable();
    }
    if let Some(path) = created_file {
        std::fs::write(&path, tickets_file(&total.created))
            .map_err(|e| format!("cannot write {}: {e}", path.display()))?;
    }
    println!("{}", result_json(&total, &shared.rows.labels, seconds));
    if total.ok == 0 {
        eprintln!("tessera-load: no request succeeded");
        return Ok(ExitCode::FAILURE);
    }
    Ok(ExitCode::SUCCESS)
}

/// The requests a run sends, from either kind of file.
fn read_rows(source: CodeSource, limit: Option<usize>) -> Result<Labelled, String> {
    let read = |path: &PathBuf| {
        std::fs::read_to_string(path).map_err(|e| format!("cannot read {}: {e}", path.display()))
    };
    match source {
        CodeSource::Labelled(path) => {
            Labelled::parse(&read(&path)?, limit).map_err(|e| format!("{}: {e}", path.display()))
        }
        CodeSource::Tickets(path) => read_tickets(&read(&path)?, limit)
            .map(|tickets| Labelled::single(String::new(), tickets))
            .map_err(|e| format!("{}: {e}", path.display())),
        // Nothing to read: every creation has the same body (one empty row).
        CodeSource::Create(_) => Ok(Labelled::single(String::new(), vec![String::new()])),
        CodeSource::Codes { program, codes } => {
            let list = read_codes(&read(&codes)?, limit);
            if list.is_empty() {
                return Err(format!("no codes in {}", codes.display()));
            }
            Ok(Labelled::single(program, list))
        }
    }
}

/// The mean of microseconds, in milliseconds.
fn mean_ms(list: &[u32]) -> f64 {
    if list.is_empty() {
        return 0.0;
    }
    list.iter().map(|&m| f64::from(m)).sum::<f64>() / list.len() as f64 / 1000.0
}

/// The one-line result; every latency list sorted.
fn result_json(total: &Tally, labels: &[String], seconds: f64) -> String {
    let requests = total.ok + total.errors + total.shed;
    let mut out = format!(
        "{{\"requests\": {requests}, \"ok\": {}, \"errors\": {}, \"shed\": {}, \
         \"shed_retry_after\": {}, \"broken\": {}, \"unsent\": {}, \"seconds\": {seconds:.3}, \"rps\": {:.1}",
        total.ok,
        total.errors,
        total.shed,
        total.shed_retry_after,
        total.broken,
        total.unsent,
        total.ok as f64 / seconds,
    );
    for (prefix, list) in [
        ("", &total.latencies),
        ("ok_", &total.ok_latencies),
        ("shed_", &total.shed_latencies),
    ] {
        out.push_str(&format!(
            ", \"{prefix}p50_ms\": {:.3}, \"{prefix}p99_ms\": {:.3}, \"{prefix}max_ms\": {:.3}",
            percentile_ms(list, 0.50),
            percentile_ms(list, 0.99),
            percentile_ms(list, 1.0),
        ));
    }
    for (label, tally) in labels.iter().zip(&total.per_label) {
        out.push_str(&format!(
            ", \"{label}_requests\": {}, \"{label}_ok\": {}, \"{label}_errors\": {}, \
             \"{label}_p50_ms\": {:.3}, \"{label}_p99_ms\": {:.3}, \"{label}_mean_ms\": {:.3}",
            tally.ok + tally.errors,
            tally.ok,
            tally.errors,
            percentile_ms(&tally.latencies, 0.50),
            percentile_ms(&tally.latencies, 0.99),
            mean_ms(&tally.latencies),
        ));
    }
    out.push('}');
    out
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let options = match parse_options(&args) {
        Ok(options) => options,
        Err(message) if message.is_empty() => {
            println!("{USAGE}");
            return ExitCode::SUCCESS;
        }
        Err(message) => {
            eprintln!("tessera-load: {message}\n{USAGE}");
            return ExitCode::from(2);
        }
    };
    match run(options) {
        Ok(code) => code,
        Err(message) => {
            eprintln!("tessera-load: {message}");
            ExitCode::FAILURE
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(list: &[&str]) -> Vec<String> {
        list.iter().map(|s| (*s).to_owned()).collect()
    }

    #[test]
    fn codes_skip_the_header_and_take_the_last_field() {
        let csv = "ticketId,code\ntkt_a,AbC12345\r\ntkt_b,\"x\"\"y\"\n\ntkt_c,zz\n";
        assert_eq!(read_codes(csv, None), ["AbC12345", "x\"y", "zz"]);
        assert_eq!(read_codes(csv, Some(1)), ["AbC12345"]);
    }

    #[test]
    fn only_loopback_addresses_are_accepted() {
        let base = ["--program", "prg_x", "--codes", "c.csv"];
        let mut ok = args(&["--addr", "127.0.0.1:8080"]);
        ok.extend(args(&base));
        assert!(parse_options(&ok).is_ok());
        let mut remote = args(&["--addr", "192.0.2.1:80"]);
        remote.extend(args(&base));
        assert!(parse_options(&remote).is_err());
    }

    #[test]
    fn a_labelled_file_replaces_the_program_and_the_codes() {
        let labelled = args(&["--addr", "127.0.0.1:1", "--labelled", "t.csv"]);
        assert_eq!(
            parse_options(&labelled).unwrap().source,
            CodeSource::Labelled(PathBuf::from("t.csv"))
        );
        let mut both = labelled.clone();
        both.extend(args(&["--program", "prg_x"]));
        assert!(parse_options(&both).is_err());
        assert!(parse_options(&args(&["--addr", "127.0.0.1:1", "--codes", "c"])).is_err());
        assert!(parse_options(&args(&["--addr", "127.0.0.1:1", "--program", "p"])).is_err());
    }

    #[test]
    fn every_label_is_counted_and_timed_apart() {
        let labels = ["known".to_owned(), "unknown".to_owned()];
        let mut one = Tally::for_labels(2);
        one.label(0, false, 2000);
        one.label(1, false, 4000);
        let mut two = Tally::for_labels(2);
        two.label(0, false, 4000);
        two.label(1, true, 6000);
        two.label(1, false, 8000);
        one.add(two);
        for tally in &mut one.per_label {
            tally.latencies.sort_unstable();
        }
        let json = result_json(&one, &labels, 1.0);
        assert!(
            json.contains("\"known_requests\": 2, \"known_ok\": 0, \"known_errors\": 2"),
            "{json}"
        );
        assert!(json.contains("\"known_p50_ms\": 2.000"), "{json}");
        assert!(json.contains("\"known_mean_ms\": 3.000"), "{json}");
        assert!(
            json.contains("\"unknown_requests\": 3, \"unknown_ok\": 1, \"unknown_errors\": 2"),
            "{json}"
        );
        assert!(json.contains("\"unknown_p99_ms\": 8.000"), "{json}");
        assert!(json.contains("\"unknown_mean_ms\": 6.000"), "{json}");
    }

    #[test]
    fn runs_are_bounded() {
        let base = args(&["--addr", "[::1]:1", "--program", "p", "--codes", "c"]);
        for bad in [
            ["--duration", "0"],
            ["--duration", "100000"],
            ["--connections", "0"],
            ["--rate", "-1"],
            ["--sources", "0"],
            ["--sources", "5000"],
            ["--stall", "70000"],
            ["--on-503", "maybe"],
        ] {
            let mut list = base.clone();
            list.extend(args(&bad));
            assert!(parse_options(&list).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn percentiles_use_the_nearest_rank() {
        let sorted: Vec<u32> = (1..=100).map(|n| n * 1000).collect();
        assert!((percentile_ms(&sorted, 0.5) - 50.0).abs() < 1e-9);
        assert!((percentile_ms(&sorted, 0.99) - 99.0).abs() < 1e-9);
        assert!((percentile_ms(&sorted, 1.0) - 100.0).abs() < 1e-9);
        assert!(percentile_ms(&[], 0.5).abs() < 1e-9);
    }

    #[test]
    fn requests_are_well_formed_http() {
        let shared = Shared {
            target: Target {
                addr: "127.0.0.1:9".parse().unwrap(),
                key: None,
                keyed: false,
            },
            mix: Mix::default(),
            rows: Labelled::single("prg_1".to_owned(), vec!["ab\"c".to_owned()]),
            next_request: AtomicUsize::new(0),
            started: AtomicU64::new(0),
            max_requests: 1,
            failures_shown: AtomicUsize::new(0),
            wait_on_503: false,
        };
        let (mut out, mut body) = (Vec::new(), String::new());
        assert_eq!(shared.request(&mut out, &mut body), (Kind::Redeem, 0));
        let text = String::from_utf8(out).unwrap();
        let expected_body = r#"{"programId":"prg_1","code":"ab\"c"}"#;
        assert!(text.starts_with("POST /v1/redeem HTTP/1.1\r\n"));
        assert!(text.contains(&format!("Content-Length: {}\r\n", expected_body.len())));
        assert!(text.ends_with(&format!("\r\n\r\n{expected_body}")));
    }

    #[test]
    fn the_standalone_modes_replace_the_codes_and_need_the_key() {
        let base = args(&["--addr", "127.0.0.1:1", "--key", "sk_x"]);
        let mut using = base.clone();
        using.extend(args(&["--use", "t.csv"]));
        let options = parse_options(&using).unwrap();
        assert_eq!(options.source, CodeSource::Tickets(PathBuf::from("t.csv")));
        assert_eq!(options.mix, Mix::only(Kind::Use));
        let mut creating = base.clone();
        creating.extend(args(&[
            "--create-tickets",
            "out.csv",
            "--max-requests",
            "5",
        ]));
        let options = parse_options(&creating).unwrap();
        assert_eq!(options.source, CodeSource::Create(PathBuf::from("out.csv")));
        assert_eq!(options.mix, Mix::only(Kind::Create));
        assert_eq!(options.max_requests, 5);
        for keyless in [["--use", "t.csv"], ["--create-tickets", "o.csv"]] {
            let mut list = args(&["--addr", "127.0.0.1:1"]);
            list.extend(args(&keyless));
            assert!(parse_options(&list).is_err(), "{keyless:?}");
        }
        // Another source as well, or a mix.
        for extra in [
            ["--codes", "c"],
            ["--labelled", "l"],
            ["--create-tickets", "o"],
            ["--mix", "redeem=1"],
        ] {
            let mut list = using.clone();
            list.extend(args(&extra));
            assert!(parse_options(&list).is_err(), "{extra:?}");
        }
    }

    #[test]
    fn keyed_is_a_flag_that_needs_the_key() {
        let base = args(&["--addr", "127.0.0.1:1", "--program", "p", "--codes", "c"]);
        assert!(!parse_options(&base).unwrap().keyed);
        let mut keyed = base.clone();
        keyed.extend(args(&["--keyed", "--key", "sk_x"]));
        let options = parse_options(&keyed).unwrap();
        assert!(options.keyed);
        assert_eq!(options.key.as_deref(), Some("sk_x"));
        assert_eq!(options.mix, Mix::default());
        let mut last = base.clone();
        last.extend(args(&["--key", "sk_x", "--keyed"]));
        assert!(parse_options(&last).unwrap().keyed);
        let mut keyless = base;
        keyless.push("--keyed".to_owned());
        assert!(parse_options(&keyless).is_err());
    }

    #[test]
    fn tickets_files_are_written_as_they_are_read() {
        let tickets = [
            "AbCdEfGhIjKlMnOpQrStUvWxYz012-_9".to_owned(),
            "t2".to_owned(),
        ];
        let text = tickets_file(&tickets);
        assert_eq!(text, "ticket\nAbCdEfGhIjKlMnOpQrStUvWxYz012-_9\nt2\n");
        assert_eq!(read_tickets(&text, None).unwrap(), tickets);
        assert_eq!(
            read_tickets("ticket\r\nt1\r\n\nt2\n", Some(1)).unwrap(),
            ["t1"]
        );
        assert!(read_tickets("t1\nt2\n", None).is_err());
        assert!(read_tickets("ticket\n", None).is_err());
        assert!(read_tickets(&tickets_file(&[]), None).is_err());
    }

    #[test]
    fn a_created_ticket_is_read_from_its_answer() {
        assert_eq!(
            created_ticket(br#"{"ticket":"AbC-_9"}"#).as_deref(),
            Some("AbC-_9")
        );
        assert_eq!(
            created_ticket(br#"{ "ticket" : "x1" }"#).as_deref(),
            Some("x1")
        );
        for bad in [
            &br#"{"ticket":""}"#[..],
            br#"{"id":"x"}"#,
            br#"{"ticket":1}"#,
            b"\xff",
        ] {
            assert_eq!(created_ticket(bad), None, "{bad:?}");
        }
        let mut one = Tally {
            created: vec!["a".to_owned()],
            ..Tally::default()
        };
        one.add(Tally {
            created: vec!["b".to_owned()],
            ..Tally::default()
        });
        assert_eq!(one.created, ["a", "b"]);
    }

    #[test]
    fn a_use_run_sends_its_tickets_round_robin_with_the_key() {
        let shared = Shared {
            target: Target {
                addr: "127.0.0.1:9".parse().unwrap(),
                key: Some("sk_x".to_owned()),
                keyed: false,
            },
            mix: Mix::only(Kind::Use),
            rows: Labelled::single(String::new(), vec!["t1".to_owned(), "t2".to_owned()]),
            next_request: AtomicUsize::new(0),
            started: AtomicU64::new(0),
            max_requests: 3,
            failures_shown: AtomicUsize::new(0),
            wait_on_503: false,
        };
        let (mut out, mut body) = (Vec::new(), String::new());
        for expected in ["t1", "t2", "t1"] {
            assert_eq!(shared.request(&mut out, &mut body), (Kind::Use, 0));
            let text = String::from_utf8(out.clone()).unwrap();
            assert!(
                text.starts_with("POST /v1/tickets/use HTTP/1.1\r\n"),
                "{text}"
            );
            assert!(text.contains("Authorization: Bearer sk_x\r\n"), "{text}");
            assert!(
                text.ends_with(&format!(r#"{{"ticket":"{expected}"}}"#)),
                "{text}"
            );
        }
    }

    #[test]
    fn sources_are_consecutive_loopback_addresses() {
        assert_eq!(source_addresses(1), [None]);
        let three = source_addresses(300);
        assert_eq!(three[0], Some("127.0.0.1".parse().unwrap()));
        assert_eq!(three[299], Some("127.0.1.44".parse().unwrap()));
    }

    #[test]
    fn the_result_separates_admitted_and_shed_answers() {
        let total = Tally {
            ok: 2,
            shed: 1,
            shed_retry_after: 1,
            latencies: vec![1000, 2000, 9000],
            ok_latencies: vec![1000, 2000],
            shed_latencies: vec![9000],
            ..Tally::default()
        };
        let json = result_json(&total, &[], 1.0);
        assert!(
            json.contains("\"requests\": 3, \"ok\": 2, \"errors\": 0, \"shed\": 1"),
            "{json}"
        );
        assert!(json.contains("\"ok_max_ms\": 2.000"), "{json}");
        assert!(json.contains("\"shed_p50_ms\": 9.000"), "{json}");
    }
}
