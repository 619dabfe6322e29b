//! `tessera tickets issue`: bulk issuance by the operator (no API key), through
//! the operator's use case, into a new private CSV file.

use std::fs::{self, File};
use std::io::{self, BufWriter, IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::time::Instant;

use indicatif::{ProgressBar, ProgressStyle};
use tessera_app::usecases::{BatchRequest, BatchSink, IssuedCode};
use tessera_app::{batch_csv, AppError, OperatorUseCases};
use tessera_domain::{BatchSize, ProgramId, RedemptionLimit};

use crate::commands::{prepared_pool, tessera, CommandError};
use crate::settings::Settings;

/// The command line of `tessera tickets issue`, as typed.
#[derive(Debug, Clone)]
pub struct IssueArgs {
    pub program: String,
    pub count: String,
    pub out: PathBuf,
    pub max_redemptions: Option<String>,
}

/// The arguments once checked.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Checked {
    program: ProgramId,
    count: BatchSize,
    max_redemptions: Option<RedemptionLimit>,
}

fn bad(message: impl Into<String>) -> CommandError {
    CommandError::BadArgument(message.into())
}

fn whole_number(flag: &str, raw: &str, rule: &str) -> Result<i64, CommandError> {
    raw.trim()
        .parse::<i64>()
        .map_err(|_| bad(format!("--{flag}: {rule}")))
}

fn check(args: &IssueArgs) -> Result<Checked, CommandError> {
    let program = ProgramId::parse(args.program.trim())
        .map_err(|_| bad("--program: must be a program id starting with prg_"))?;
    let count_rule = "must be a whole number from 1 to 1000000";
    let count = BatchSize::try_from(whole_number("count", &args.count, count_rule)?)
        .map_err(|_| bad(format!("--count: {count_rule}")))?;
    let max_redemptions = args
        .max_redemptions
        .as_deref()
        .map(|raw| {
            let rule = "must be a whole number of at least 1";
            RedemptionLimit::try_from(whole_number("max-redemptions", raw, rule)?)
                .map_err(|_| bad(format!("--max-redemptions: {rule}")))
        })
        .transpose()?;
    check_out_path(&args.out)?;
    Ok(Checked {
        program,
        count,
        max_redemptions,
    })
}

/// Refuses an existing file (the codes in it would be lost) and a missing folder,
/// before any ticket is issued.
fn check_out_path(path: &Path) -> Result<(), CommandError> {
    if path.as_os_str().is_empty() {
        return Err(bad("--out: must name a file"));
    }
    if fs::symlink_metadata(path).is_ok() {
        return Err(bad(format!(
            "--out: {} already exists; it is never overwritten",
            path.display()
        )));
    }
    match path.parent().filter(|dir| !dir.as_os_str().is_empty()) {
        Some(dir) if !dir.is_dir() => Err(bad(format!(
            "--out: the folder {} does not exist",
            dir.display()
        ))),
        _ => Ok(()),
    }
}

/// Creates `path`, readable by its owner only (it holds secrets); never replaces
/// an existing file.
fn create_private(path: &Path) -> Result<File, CommandError> {
    let mut options = fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    options.open(path).map_err(|error| {
        if error.kind() == io::ErrorKind::AlreadyExists {
            bad(format!(
                "--out: {} already exists; it is never overwritten",
                path.display()
            ))
        } else {
            CommandError::Failed(format!("cannot create {}: {error}", path.display()))
        }
    })
}

/// Writes each committed chunk as CSV rows and advances the progress bar; stops
/// the batch at the first write error, which it keeps for the report.
struct CsvSink<W: Write> {
    out: W,
    progress: ProgressBar,
    written: u64,
    error: Option<io::Error>,
    /// The rows of the chunk being written (codes: never shown).
    rows: String,
}

impl<W: Write> std::fmt::Debug for CsvSink<W> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CsvSink")
            .field("written", &self.written)
            .finish_non_exhaustive()
    }
}

impl<W: Write> CsvSink<W> {
    fn new(mut out: W, progress: ProgressBar) -> io::Result<Self> {
        out.write_all(batch_csv::HEADER.as_bytes())?;
        Ok(Self {
            out,
            progress,
            written: 0,
            error: None,
            rows: String::new(),
        })
    }

    fn write_chunk(&mut self, chunk: &[IssuedCode]) -> io::Result<()> {
        self.rows.clear();
        batch_csv::push_rows(&mut self.rows, chunk);
        self.out.write_all(self.rows.as_bytes())?;
        self.out.flush()
    }

    /// Flushes; returns how many rows were written and the first write error.
    fn finish(mut self) -> (W, u64, Option<io::Error>) {
        if self.error.is_none() {
            if let Err(error) = self.out.flush() {
                self.error = Some(error);
            }
        }
        self.progress.finish_and_clear();
        (self.out, self.written, self.error)
    }
}

impl<W: Write> BatchSink for CsvSink<W> {
    fn accept(&mut self, chunk: &[IssuedCode]) -> bool {
        if self.error.is_some() {
            return false;
        }
        match self.write_chunk(chunk) {
            Ok(()) => {
                self.written += chunk.len() as u64;
                self.progress.inc(chunk.len() as u64);
                true
            }
            Err(error) => {
                self.error = Some(error);
                false
            }
        }
    }
}

/// A progress bar on stderr, hidden when stderr is not a terminal.
fn progress_bar(len: u64) -> ProgressBar {
    if !io::stderr().is_terminal() {
        return ProgressBar::hidden();
    }
    let bar = ProgressBar::new(len);
    bar.set_style(
        ProgressStyle::with_template(
            "{bar:40} {pos}/{len} tickets  {per_sec}  {elapsed_precise} (eta {eta})",
        )
        .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    bar
}

/// `tessera tickets issue --program ID --count N --out FILE.csv [--max-redemptions M]`.
pub fn issue_tickets(settings: &Settings, args: &IssueArgs) -> Result<(), CommandError> {
    let checked = check(args)?;
    let (tessera, _) = tessera(settings, prepared_pool(settings)?)?;
    let request = BatchRequest {
        count: checked.count,
        max_redemptions: checked.max_redemptions,
        payload: None,
    };

    let path = &args.out;
    let file = create_private(path)?;
    let mut sink = CsvSink::new(
        BufWriter::new(file),
        progress_bar(u64::from(checked.count.get())),
    )
    .map_err(|error| CommandError::Failed(format!("cannot write {}: {error}", path.display())))?;
    let started = Instant::now();
    let outcome = tessera.issue_operator_batch(&checked.program, request, &mut sink);
    let seconds = started.elapsed().as_secs_f64();
    let (out, written, write_error) = sink.finish();
    let synced = out
        .into_inner()
        .map_err(io::IntoInnerError::into_error)
        .and_then(|file| file.sync_all());

    let issued = match outcome {
        Ok(issued) => issued,
        Err(error) => {
            if written == 0 {
                // Nothing but the header: leave no file behind.
                let _ = fs::remove_file(path);
            }
            if error == AppError::NotFound && written == 0 {
                return Err(CommandError::Failed(format!(
                    "no program {}",
                    checked.program
                )));
            }
            let kept = if written == 0 {
                String::new()
            } else {
                format!(
                    "; the {written} tickets issued before are in {}",
                    path.display()
                )
            };
            return Err(CommandError::Failed(format!(
                "cannot issue the tickets: {error}{kept}"
            )));
        }
    };
    if let Some(error) = write_error.or(synced.err()) {
        return Err(CommandError::Failed(format!(
            "cannot write {}: {error}; {issued} tickets were issued, {written} of them written",
            path.display()
        )));
    }
    let rate = if seconds > 0.0 {
        f64::from(issued) / seconds
    } else {
        f64::from(issued)
    };
    eprintln!(
        "tessera: issued {issued} tickets of {} into {} in {seconds:.2} s ({rate:.0} codes/s)",
        checked.program,
        path.display()
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use tessera_domain::{Alphabet, Code, TenantId, TicketId, TicketLength};

    use super::*;

    fn args(program: &str, count: &str, out: &Path, max: Option<&str>) -> IssueArgs {
        IssueArgs {
            program: program.to_owned(),
            count: count.to_owned(),
            out: out.to_owned(),
            max_redemptions: max.map(str::to_owned),
        }
    }

    fn temp_dir() -> PathBuf {
        let dir = std::env::temp_dir().join(format!("tessera-batch-{}", TenantId::generate()));
        fs::create_dir_all(&dir).expect("temp dir");
        dir
    }

    #[test]
    fn arguments_are_checked_one_line_each() {
        let dir = temp_dir();
        let out = dir.join("codes.csv");
        let program = ProgramId::generate();
        let ok = check(&args(program.as_str(), "1000", &out, Some("3"))).expect("valid");
        assert_eq!(ok.program, program);
        assert_eq!(ok.count.get(), 1000);
        assert_eq!(ok.max_redemptions.map(RedemptionLimit::get), Some(3));

        let existing = dir.join("existing.csv");
        fs::write(&existing, "keep me").expect("write");
        for (bad_args, flag) in [
            (args("nope", "1", &out, None), "--program"),
            (args(program.as_str(), "0", &out, None), "--count"),
            (args(program.as_str(), "1000001", &out, None), "--count"),
            (args(program.as_str(), "many", &out, None), "--count"),
            (
                args(program.as_str(), "1", &out, Some("0")),
                "--max-redemptions",
            ),
            (
                args(program.as_str(), "1", &out, Some("x")),
                "--max-redemptions",
            ),
            (args(program.as_str(), "1", &existing, None), "--out"),
            (
                args(program.as_str(), "1", &dir.join("missing/codes.csv"), None),
                "--out",
            ),
        ] {
            let error = check(&bad_args).expect_err(flag);
            assert_eq!(error.exit_code(), 2);
            let message = error.to_string();
            assert!(message.starts_with(flag), "{message}");
            assert!(!message.contains('\n'));
        }
        assert_eq!(fs::read_to_string(&existing).expect("read"), "keep me");
        fs::remove_dir_all(dir).expect("cleanup");
    }

    #[test]
    fn the_file_is_private_and_never_overwritten() {
        let dir = temp_dir();
        let path = dir.join("codes.csv");
        drop(create_private(&path).expect("created"));
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = fs::metadata(&path).expect("exists").permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        let error = create_private(&path).expect_err("exists");
        assert_eq!(error.exit_code(), 2);
        fs::remove_dir_all(dir).expect("cleanup");
    }

    fn chunk(size: usize) -> Vec<IssuedCode> {
        (0..size)
            .map(|_| IssuedCode {
                ticket_id: TicketId::generate(),
                code: Code::generate(Alphabet::Alphanumeric, TicketLength::DEFAULT),
            })
            .collect()
    }

    #[test]
    fn the_sink_writes_a_header_and_one_row_per_ticket() {
        let mut sink = CsvSink::new(Vec::new(), ProgressBar::hidden()).expect("header");
        let (first, second) = (chunk(3), chunk(2));
        assert!(sink.accept(&first));
        assert!(sink.accept(&second));
        let (out, written, error) = sink.finish();
        assert!(error.is_none());
        assert_eq!(written, 5);
        let text = String::from_utf8(out).expect("utf-8");
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines[0], "ticketId,code");
        assert_eq!(lines.len(), 6);
        for (line, issued) in lines[1..].iter().zip(first.iter().chain(&second)) {
            assert_eq!(
                *line,
                format!(
                    "{},{}",
                    issued.ticket_id.as_str(),
                    issued.code.expose_secret()
                )
            );
        }
    }

    /// Accepts `room` bytes, then fails.
    struct Full {
        room: usize,
    }

    impl Write for Full {
        fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
            if self.room == 0 {
                return Err(io::Error::other("disk full"));
            }
            let n = buf.len().min(self.room);
            self.room -= n;
            Ok(n)
        }

        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn a_write_error_stops_the_batch_and_is_reported() {
        let mut sink =
            CsvSink::new(Full { room: 100 }, ProgressBar::hidden()).expect("header fits");
        assert!(!sink.accept(&chunk(10)), "stops the batch");
        assert!(!sink.accept(&chunk(1)), "and stays stopped");
        let (_, written, error) = sink.finish();
        assert_eq!(written, 0);
        assert!(error.is_some());
    }
}
