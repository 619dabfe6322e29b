//! Generates the codes of a program offline and prints them, one a line.
//!
//! ```sh
//! cargo run -p tessera-domain --example generate_codes -- ALPHABET LENGTH COUNT
//! cargo run -p tessera-domain --example generate_codes -- humane 8 5
//! ```
//!
//! ALPHABET is `alphanumeric`, `humane` or `numeric`; LENGTH is 4..=64; COUNT is
//! 1..=1,000,000. A definition whose code space is too small for COUNT is
//! refused, by the same rule `Program::create` applies (at least 1000 possible
//! codes per ticket). The codes printed are distinct.
//!
//! The codes are secrets: this list is their only copy, so keep it as you would
//! keep passwords.

use std::collections::HashSet;
use std::io::Write;
use std::process::ExitCode;

use tessera_domain::{Alphabet, BatchSize, Code, MaxTickets, TicketLength};

const USAGE: &str = "usage: generate_codes ALPHABET LENGTH COUNT
  ALPHABET  alphanumeric, humane or numeric
  LENGTH    characters per code, 4..=64
  COUNT     how many codes, 1..=1000000";

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

/// A program's code definition, as the command line gives it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Definition {
    /// The characters codes are drawn from.
    pub alphabet: Alphabet,
    /// The characters per code.
    pub length: TicketLength,
    /// How many codes to make.
    pub count: BatchSize,
}

/// Reads `ALPHABET LENGTH COUNT` and checks the code-space rule.
pub fn parse(args: &[String]) -> Result<Definition, String> {
    let [alphabet, length, count] = args else {
        return Err(USAGE.to_owned());
    };
    let alphabet: Alphabet = alphabet.parse().map_err(|e| format!("{e}"))?;
    let length = TicketLength::try_from(number("length", length)?).map_err(|e| e.to_string())?;
    let count = BatchSize::try_from(number("count", count)?).map_err(|e| e.to_string())?;
    let cap = MaxTickets::try_from(i64::from(count.get())).map_err(|e| e.to_string())?;
    if !alphabet.fits(length, cap) {
        return Err(format!(
            "{} characters of the {} alphabet are too few for {} codes: the code space ({}^{}) \
             must hold at least 1000 codes per code issued",
            length.get(),
            alphabet.as_str(),
            count.get(),
            alphabet.size(),
            length.get(),
        ));
    }
    Ok(Definition {
        alphabet,
        length,
        count,
    })
}

fn number(field: &str, raw: &str) -> Result<i64, String> {
    raw.parse()
        .map_err(|_| format!("{field}: must be a whole number, not {raw:?}"))
}

/// `definition.count` fresh codes, all different.
///
/// Two draws from the CSPRNG can collide, rarely (the code space holds at
/// least 1000 codes per code asked for); the service then draws again, and so
/// does this.
pub fn generate(definition: &Definition) -> Vec<Code> {
    let count = definition.count.get() as usize;
    let mut seen = HashSet::with_capacity(count);
    let mut codes = Vec::with_capacity(count);
    while codes.len() < count {
        let code = Code::generate(definition.alphabet, definition.length);
        if seen.insert(code.expose_secret().to_owned()) {
            codes.push(code);
        }
    }
    codes
}

/// The whole program: parse `args`, generate, print one code a line to `out`.
pub fn run(args: &[String], out: &mut impl Write) -> Result<(), String> {
    let definition = parse(args)?;
    for code in generate(&definition) {
        writeln!(out, "{}", code.expose_secret()).map_err(|e| format!("cannot write: {e}"))?;
    }
    out.flush().map_err(|e| format!("cannot write: {e}"))
}
