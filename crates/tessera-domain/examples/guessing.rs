//! Prints the guessing arithmetic of a program: how large its code space is,
//! the odds that one guess hits a live code, how many guesses finding one takes
//! on average, and how long that takes under a throttle of failed attempts.
//!
//! ```sh
//! cargo run -p tessera-domain --example guessing -- ALPHABET LENGTH LIVE FAILURES_PER_MINUTE
//! cargo run -p tessera-domain --example guessing -- alphanumeric 6 100000 20
//! ```
//!
//! LIVE is how many codes of the program redeem at the moment (at most its
//! `maxTickets`); FAILURES_PER_MINUTE is the throttle on failed attempts from
//! one address (Tessera's default is 20). The attacker is taken to guess a
//! fresh random code each time, so the expected number of guesses is
//! space / live; one who never repeats a guess needs (space + 1) / (live + 1),
//! barely fewer. It also says whether the program meets the code-space rule
//! that `Program::create` applies, and the shortest length that would.

use std::io::Write;
use std::process::ExitCode;

use tessera_domain::{Alphabet, MaxTickets, TicketLength};

const USAGE: &str = "usage: guessing ALPHABET LENGTH LIVE FAILURES_PER_MINUTE
  ALPHABET             alphanumeric, humane or numeric
  LENGTH               characters per code, 4..=64
  LIVE                 codes that redeem now, 1..=4294967295
  FAILURES_PER_MINUTE  failed attempts allowed per address per minute, 1 or more";

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match run(&args, &mut std::io::stdout().lock()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("{message}");
            ExitCode::from(2)
        }
    }
}

/// The arithmetic for one program under one throttle.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Odds {
    /// The program's alphabet.
    pub alphabet: Alphabet,
    /// The program's code length.
    pub length: TicketLength,
    /// Codes that redeem now.
    pub live: u32,
    /// Failed attempts allowed per address per minute.
    pub failures_per_minute: u32,
    /// `size ^ length`, exactly, when it fits in a `u128`.
    pub exact_code_space: Option<u128>,
    /// `size ^ length`.
    pub code_space: f64,
    /// The probability that one random guess is a live code: live / space.
    pub per_guess: f64,
    /// Guesses needed on average to hit a live code: space / live.
    pub expected_guesses: f64,
    /// Minutes one address needs for that many guesses under the throttle.
    pub minutes_per_address: f64,
    /// Whether `Alphabet::fits` accepts the program for `live` tickets.
    pub meets_rule: bool,
    /// The shortest length of this alphabet that `fits` accepts for `live`.
    pub shortest_length: Option<TicketLength>,
}

/// The arithmetic for `live` codes of `length` characters of `alphabet`,
/// guessed at `failures_per_minute` from one address.
pub fn odds(
    alphabet: Alphabet,
    length: TicketLength,
    live: u32,
    failures_per_minute: u32,
) -> Result<Odds, String> {
    if live == 0 {
        return Err("live: there must be at least one live code to find".to_owned());
    }
    let cap = MaxTickets::try_from(i64::from(live)).map_err(|e| e.to_string())?;
    if failures_per_minute == 0 {
        return Err("failures per minute: must be at least 1".to_owned());
    }
    let exact_code_space = u128::from(alphabet.size()).checked_pow(u32::from(length.get()));
    let code_space = f64::from(alphabet.size()).powi(i32::from(length.get()));
    if exact_code_space.is_some_and(|space| space < u128::from(live)) {
        return Err(format!(
            "live: {live} codes cannot all be different in a code space of {}",
            group(code_space)
        ));
    }
    let expected_guesses = code_space / f64::from(live);
    let shortest_length = (TicketLength::MIN..=TicketLength::MAX)
        .filter_map(|n| TicketLength::try_from(i64::from(n)).ok())
        .find(|&candidate| alphabet.fits(candidate, cap));
    Ok(Odds {
        alphabet,
        length,
        live,
        failures_per_minute,
        exact_code_space,
        code_space,
        per_guess: f64::from(live) / code_space,
        expected_guesses,
        minutes_per_address: expected_guesses / f64::from(failures_per_minute),
        meets_rule: alphabet.fits(length, cap),
        shortest_length,
    })
}

/// The arithmetic as lines of text.
pub fn report(odds: &Odds) -> String {
    let (size, length) = (odds.alphabet.size(), odds.length.get());
    let space = match odds.exact_code_space {
        Some(exact) => format!("= {}", group_exact(exact)),
        None => format!("≈ {:.3e}", odds.code_space),
    };
    let rule = if odds.meets_rule { "met" } else { "NOT met" };
    let shortest = match odds.shortest_length {
        Some(shortest) => format!(
            "the shortest {} length that meets it is {}",
            odds.alphabet.as_str(),
            shortest.get()
        ),
        None => format!("no {} length up to 64 meets it", odds.alphabet.as_str()),
    };
    [
        format!(
            "program: {length} {} characters ({size} symbols), {} live codes",
            odds.alphabet.as_str(),
            group_exact(u128::from(odds.live))
        ),
        format!(
            "code space: {size}^{length} {space} codes ({:.1} bits)",
            odds.code_space.log2()
        ),
        format!(
            "probability one guess hits a live code: {:.3e} (1 in {})",
            odds.per_guess,
            group(odds.expected_guesses)
        ),
        format!(
            "expected guesses to find one live code: {}",
            group(odds.expected_guesses)
        ),
        format!(
            "time for one address at {} failures/minute: {}",
            odds.failures_per_minute,
            duration(odds.minutes_per_address)
        ),
        "(k addresses take 1/k of that, unless a throttle per program caps them)".to_owned(),
        format!(
            "code-space rule (at least 1000 codes per ticket, for {} tickets): {rule}; {shortest}",
            group_exact(u128::from(odds.live))
        ),
    ]
    .join("\n")
}

/// The whole program: parse `args`, compute, print the report to `out`.
pub fn run(args: &[String], out: &mut impl Write) -> Result<(), String> {
    let [alphabet, length, live, failures] = args else {
        return Err(USAGE.to_owned());
    };
    let alphabet: Alphabet = alphabet.parse().map_err(|e| format!("{e}"))?;
    let length = number::<i64>("length", length)
        .and_then(|n| TicketLength::try_from(n).map_err(|e| e.to_string()))?;
    let odds = odds(
        alphabet,
        length,
        number("live", live)?,
        number("failures per minute", failures)?,
    )?;
    writeln!(out, "{}", report(&odds)).map_err(|e| format!("cannot write: {e}"))
}

fn number<T: std::str::FromStr>(field: &str, raw: &str) -> Result<T, String> {
    raw.parse()
        .map_err(|_| format!("{field}: must be a whole number in range, not {raw:?}"))
}

/// `n` with thousands separators: 56,800,235,584.
fn group_exact(n: u128) -> String {
    let digits = n.to_string();
    let mut grouped = String::with_capacity(digits.len() * 4 / 3);
    for (i, digit) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i) % 3 == 0 {
            grouped.push(',');
        }
        grouped.push(digit);
    }
    grouped
}

/// `x` rounded, with thousands separators; in scientific notation past 10^15.
fn group(x: f64) -> String {
    if x < 1e15 {
        group_exact(x.round() as u128)
    } else {
        format!("{x:.3e}")
    }
}

/// `minutes`, and past two hours the same in the largest unit that keeps the
/// number readable: "28,400 minutes ≈ 19.7 days".
fn duration(minutes: f64) -> String {
    let hours = minutes / 60.0;
    let days = hours / 24.0;
    let years = days / 365.25;
    let readable = if hours < 2.0 {
        return format!("{minutes:.1} minutes");
    } else if days < 2.0 {
        format!("{hours:.1} hours")
    } else if years < 2.0 {
        format!("{days:.1} days")
    } else if years < 1e6 {
        format!("{years:.1} years")
    } else {
        format!("{years:.3e} years")
    };
    format!("{} minutes ≈ {readable}", group(minutes))
}
