//! `tessera-load`: the load generator behind `make bench`.
//!
//! N connections, each a thread holding one keep-alive `TcpStream` that speaks
//! HTTP/1.1 by hand: `POST /v1/redeem` with a code taken round-robin from a codes file
//! (the CSV the bulk endpoint streams). Either at full speed for `--duration` seconds,
//! or open-loop at `--rate` requests per second in total, paced per connection: every
//! request has a scheduled send time and its latency is measured from that time, so
//! the queueing a slow server causes is counted, not hidden.
//!
//! The result is one line of JSON on stdout:
//! `{"requests", "ok", "errors", "seconds", "rps", "p50_ms", "p99_ms", "max_ms"}`,
//! where `rps` is successful redemptions per second. It only ever connects to the
//! loopback address it is given, and every run is bounded in time and in count.

use std::fmt::Write as _;
use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

const USAGE: &str = "\
usage: tessera-load --addr 127.0.0.1:PORT --program PROGRAM_ID --codes FILE
                    [--connections N] [--duration SECS] [--rate R]
                    [--limit CODES] [--max-requests N]

  --addr          loopback address of the tessera server (nothing else is accepted)
  --program       the program id sent with every redemption
  --codes         the bulk-issuance CSV (`ticketId,code` header, then rows)
  --connections   keep-alive connections, one thread each (default 32)
  --duration      seconds to run (default 20, at most 3600)
  --rate          total requests per second, paced per connection (open loop);
                  without it, every connection sends as fast as it is answered
  --limit         use only the first CODES codes of the file
  --max-requests  stop after this many requests in all (default 10000000)";

const MAX_SECONDS: f64 = 3600.0;
const MAX_CONNECTIONS: usize = 1024;
const MAX_RATE: f64 = 1_000_000.0;
const DEFAULT_MAX_REQUESTS: u64 = 10_000_000;
/// The first few failures are printed to stderr; the rest are only counted.
const FAILURES_SHOWN: usize = 5;
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
const IO_TIMEOUT: Duration = Duration::from_secs(30);
/// Answers larger than this are refused rather than buffered.
const MAX_BODY: usize = 1 << 20;
/// Time given to every connection to open before the clock starts.
const RAMP: Duration = Duration::from_millis(300);

#[derive(Debug)]
struct Options {
    addr: SocketAddr,
    program: String,
    codes: PathBuf,
    connections: usize,
    duration: f64,
    rate: Option<f64>,
    limit: Option<usize>,
    max_requests: u64,
}

fn parse_options(args: &[String]) -> Result<Options, String> {
    let mut addr = None;
    let mut program = None;
    let mut codes = None;
    let mut connections = 32usize;
    let mut duration = 20.0f64;
    let mut rate = None;
    let mut limit = None;
    let mut max_requests = DEFAULT_MAX_REQUESTS;
    let mut rest = args.iter();
    while let Some(flag) = rest.next() {
        if flag == "-h" || flag == "--help" {
            return Err(String::new());
        }
        let value = rest.next().ok_or_else(|| format!("{flag} needs a value"))?;
        let bad = |what: &str| format!("{flag}: {what}, not {value:?}");
        match flag.as_str() {
            "--addr" => {
                let parsed: SocketAddr = value.parse().map_err(|_| bad("an IP:PORT"))?;
                if !parsed.ip().is_loopback() {
                    return Err(bad("a loopback address (127.0.0.1 or ::1)"));
                }
                addr = Some(parsed);
            }
            "--program" => program = Some(value.clone()),
            "--codes" => codes = Some(PathBuf::from(value)),
            "--connections" => {
                connections = value
                    .parse()
                    .ok()
                    .filter(|n| (1..=MAX_CONNECTIONS).contains(n))
                    .ok_or_else(|| bad(&format!("1..={MAX_CONNECTIONS}")))?;
            }
            "--duration" => {
                duration = value
                    .parse()
                    .ok()
                    .filter(|s: &f64| *s > 0.0 && *s <= MAX_SECONDS)
                    .ok_or_else(|| bad(&format!("seconds in (0, {MAX_SECONDS}]")))?;
            }
            "--rate" => {
                rate = Some(
                    value
                        .parse()
                        .ok()
                        .filter(|r: &f64| *r > 0.0 && *r <= MAX_RATE)
                        .ok_or_else(|| bad(&format!("requests per second in (0, {MAX_RATE}]")))?,
                );
            }
            "--limit" => {
                limit = Some(
                    value
                        .parse()
                        .ok()
                        .filter(|n| *n >= 1)
                        .ok_or_else(|| bad("a positive count"))?,
                );
            }
            "--max-requests" => {
                max_requests = value
                    .parse()
                    .ok()
                    .filter(|n| *n >= 1)
                    .ok_or_else(|| bad("a positive count"))?;
            }
            _ => return Err(format!("unknown option {flag}")),
        }
    }
    Ok(Options {
        addr: addr.ok_or("--addr is required")?,
        program: program.ok_or("--program is required")?,
        codes: codes.ok_or("--codes is required")?,
        connections,
        duration,
        rate,
        limit,
        max_requests,
    })
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

fn json_string(out: &mut String, value: &str) {
    out.push('"');
    for c in value.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if u32::from(c) < 0x20 => {
                let _ = write!(out, "\\u{:04x}", u32::from(c));
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

/// Everything the connections share.
#[derive(Debug)]
struct Shared {
    addr: SocketAddr,
    program: String,
    codes: Vec<String>,
    next_code: AtomicUsize,
    started: AtomicU64,
    max_requests: u64,
    failures_shown: AtomicUsize,
}

impl Shared {
    /// The next request, for the next code round-robin, into `out`.
    fn request(&self, out: &mut Vec<u8>, body: &mut String) {
        let index = self.next_code.fetch_add(1, Ordering::Relaxed) % self.codes.len();
        body.clear();
        body.push_str("{\"programId\":");
        json_string(body, &self.program);
        body.push_str(",\"code\":");
        json_string(body, &self.codes[index]);
        body.push('}');
        out.clear();
        let _ = write!(
            VecWriter(out),
            "POST /v1/redeem HTTP/1.1\r\nHost: {}\r\nContent-Type: application/json\r\n\
             Content-Length: {}\r\n\r\n{}",
            self.addr,
            body.len(),
            body
        );
    }

    fn report_failure(&self, what: &str) {
        if self.failures_shown.fetch_add(1, Ordering::Relaxed) < FAILURES_SHOWN {
            eprintln!("tessera-load: {what}");
        }
    }
}

/// `write!` into a `Vec<u8>` without the `io::Write` error plumbing.
struct VecWriter<'a>(&'a mut Vec<u8>);

impl std::fmt::Write for VecWriter<'_> {
    fn write_str(&mut self, s: &str) -> std::fmt::Result {
        self.0.extend_from_slice(s.as_bytes());
        Ok(())
    }
}

/// The parts of an answer the load generator looks at.
#[derive(Debug)]
struct Answer {
    status: u16,
    status_line: String,
    keep_alive: bool,
}

/// One keep-alive HTTP/1.1 connection.
#[derive(Debug)]
struct Connection {
    writer: TcpStream,
    reader: BufReader<TcpStream>,
    line: String,
    body: Vec<u8>,
}

impl Connection {
    fn open(addr: SocketAddr) -> io::Result<Self> {
        let stream = TcpStream::connect_timeout(&addr, CONNECT_TIMEOUT)?;
        stream.set_nodelay(true)?;
        stream.set_read_timeout(Some(IO_TIMEOUT))?;
        stream.set_write_timeout(Some(IO_TIMEOUT))?;
        Ok(Self {
            reader: BufReader::with_capacity(16 * 1024, stream.try_clone()?),
            writer: stream,
            line: String::new(),
            body: Vec::with_capacity(4096),
        })
    }

    fn read_line(&mut self) -> io::Result<&str> {
        self.line.clear();
        if self.reader.read_line(&mut self.line)? == 0 {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "the server closed the connection",
            ));
        }
        Ok(self.line.trim_end_matches(['\r', '\n']))
    }

    /// Sends one request and reads its whole answer: status line, headers up to the
    /// empty line, then exactly Content-Length body bytes (or the chunks).
    fn exchange(&mut self, request: &[u8]) -> io::Result<Answer> {
        self.writer.write_all(request)?;
        let status_line = self.read_line()?.to_owned();
        let mut parts = status_line.split(' ');
        let version = parts.next().unwrap_or_default();
        let status = parts
            .next()
            .and_then(|s| s.parse::<u16>().ok())
            .filter(|_| version.starts_with("HTTP/1."))
            .ok_or_else(|| invalid(format!("not an HTTP/1.x status line: {status_line:?}")))?;
        let mut keep_alive = version == "HTTP/1.1";
        let mut length = None;
        let mut chunked = false;
        loop {
            let line = self.read_line()?;
            if line.is_empty() {
                break;
            }
            let Some((name, value)) = line.split_once(':') else {
                return Err(invalid(format!("bad header line {line:?}")));
            };
            let value = value.trim();
            if name.eq_ignore_ascii_case("content-length") {
                let n: usize = value
                    .parse()
                    .map_err(|_| invalid(format!("bad Content-Length {value:?}")))?;
                length = Some(n);
            } else if name.eq_ignore_ascii_case("transfer-encoding") {
                chunked = value.eq_ignore_ascii_case("chunked");
            } else if name.eq_ignore_ascii_case("connection") {
                keep_alive = !value.eq_ignore_ascii_case("close");
            }
        }
        self.body.clear();
        if chunked {
            self.read_chunks()?;
        } else if let Some(length) = length {
            if length > MAX_BODY {
                return Err(invalid(format!("answer of {length} bytes")));
            }
            self.body.resize(length, 0);
            self.reader.read_exact(&mut self.body)?;
        } else {
            // Neither length nor chunks: the body ends with the connection.
            (&mut self.reader)
                .take(MAX_BODY as u64)
                .read_to_end(&mut self.body)?;
            keep_alive = false;
        }
        Ok(Answer {
            status,
            status_line,
            keep_alive,
        })
    }

    fn read_chunks(&mut self) -> io::Result<()> {
        loop {
            let size_line = self.read_line()?;
            let size_hex = size_line.split(';').next().unwrap_or_default().trim();
            let size = usize::from_str_radix(size_hex, 16)
                .map_err(|_| invalid(format!("bad chunk size {size_line:?}")))?;
            if size == 0 {
                // Trailers, if any, then the empty line.
                while !self.read_line()?.is_empty() {}
                return Ok(());
            }
            if self.body.len() + size > MAX_BODY {
                return Err(invalid("chunked answer too large".to_owned()));
            }
            let start = self.body.len();
            self.body.resize(start + size, 0);
            self.reader.read_exact(&mut self.body[start..])?;
            if !self.read_line()?.is_empty() {
                return Err(invalid("chunk not followed by CRLF".to_owned()));
            }
        }
    }

    fn body_excerpt(&self) -> String {
        let text = String::from_utf8_lossy(&self.body);
        text.chars().take(200).collect()
    }
}

fn invalid(message: String) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, message)
}

/// What one connection measured.
#[derive(Debug, Default)]
struct Tally {
    ok: u64,
    errors: u64,
    /// Microseconds, from the scheduled send time to the end of the answer.
    latencies: Vec<u32>,
}

/// When each request of a connection is due.
#[derive(Debug, Clone, Copy)]
enum Pace {
    /// As soon as the previous answer is read.
    Closed,
    /// At `first + k × interval`, whatever happened to the earlier requests.
    Open { first: Instant, interval: f64 },
}

fn run_connection(shared: &Shared, start: Instant, deadline: Instant, pace: Pace) -> Tally {
    let mut tally = Tally::default();
    let mut request = Vec::with_capacity(512);
    let mut body = String::with_capacity(256);
    // Connect before the clock starts, so the first latency is not a handshake.
    let mut connection = Connection::open(shared.addr).ok();
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
        if let Some(wait) = scheduled.checked_duration_since(Instant::now()) {
            thread::sleep(wait);
        }
        shared.request(&mut request, &mut body);
        let connected = match connection.take() {
            Some(open) => Ok(open),
            None => Connection::open(shared.addr),
        };
        let outcome = connected.and_then(|mut open| open.exchange(&request).map(|a| (open, a)));
        let elapsed = scheduled.elapsed();
        tally
            .latencies
            .push(u32::try_from(elapsed.as_micros()).unwrap_or(u32::MAX));
        match outcome {
            Ok((open, answer)) => {
                if answer.status == 200 {
                    tally.ok += 1;
                } else {
                    tally.errors += 1;
                    shared.report_failure(&format!(
                        "{} {}",
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
    let text = std::fs::read_to_string(&options.codes)
        .map_err(|e| format!("cannot read {}: {e}", options.codes.display()))?;
    let codes = read_codes(&text, options.limit);
    drop(text);
    if codes.is_empty() {
        return Err(format!("no codes in {}", options.codes.display()));
    }
    let shared = Arc::new(Shared {
        addr: options.addr,
        program: options.program,
        codes,
        next_code: AtomicUsize::new(0),
        started: AtomicU64::new(0),
        max_requests: options.max_requests,
        failures_shown: AtomicUsize::new(0),
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
            thread::Builder::new()
                .name(format!("load-{i}"))
                .spawn(move || run_connection(&shared, start, deadline, pace))
                .map_err(|e| format!("cannot start a thread: {e}"))
        })
        .collect::<Result<_, _>>()?;
    let mut total = Tally::default();
    for worker in workers {
        let tally = worker
            .join()
            .map_err(|_| "a connection thread panicked".to_owned())?;
        total.ok += tally.ok;
        total.errors += tally.errors;
        total.latencies.extend(tally.latencies);
    }
    let seconds = start.elapsed().as_secs_f64();
    total.latencies.sort_unstable();
    let requests = total.ok + total.errors;
    println!(
        "{{\"requests\": {requests}, \"ok\": {}, \"errors\": {}, \"seconds\": {seconds:.3}, \
         \"rps\": {:.1}, \"p50_ms\": {:.3}, \"p99_ms\": {:.3}, \"max_ms\": {:.3}}}",
        total.ok,
        total.errors,
        total.ok as f64 / seconds,
        percentile_ms(&total.latencies, 0.50),
        percentile_ms(&total.latencies, 0.99),
        percentile_ms(&total.latencies, 1.0),
    );
    if total.ok == 0 {
        eprintln!("tessera-load: no request succeeded");
        return Ok(ExitCode::FAILURE);
    }
    Ok(ExitCode::SUCCESS)
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
    fn runs_are_bounded() {
        let base = args(&["--addr", "[::1]:1", "--program", "p", "--codes", "c"]);
        for bad in [
            ["--duration", "0"],
            ["--duration", "100000"],
            ["--connections", "0"],
            ["--rate", "-1"],
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
            addr: "127.0.0.1:9".parse().unwrap(),
            program: "prg_1".to_owned(),
            codes: vec!["ab\"c".to_owned()],
            next_code: AtomicUsize::new(0),
            started: AtomicU64::new(0),
            max_requests: 1,
            failures_shown: AtomicUsize::new(0),
        };
        let (mut out, mut body) = (Vec::new(), String::new());
        shared.request(&mut out, &mut body);
        let text = String::from_utf8(out).unwrap();
        let expected_body = r#"{"programId":"prg_1","code":"ab\"c"}"#;
        assert!(text.starts_with("POST /v1/redeem HTTP/1.1\r\n"));
        assert!(text.contains(&format!("Content-Length: {}\r\n", expected_body.len())));
        assert!(text.ends_with(&format!("\r\n\r\n{expected_body}")));
    }
}
