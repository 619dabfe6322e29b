//! Checks a typed code against a program's shape before it is sent anywhere,
//! and says what is wrong with it if anything is.
//!
//! ```sh
//! cargo run -p tessera-domain --example check_code -- ALPHABET LENGTH CODE
//! cargo run -p tessera-domain --example check_code -- humane 8 'abcd-efgh'
//! cargo run -p tessera-domain --example check_code -- humane 8 'abcd-efgh-x' check
//! ```
//!
//! Prints the canonical code and exits 0 when the text could be a code of the
//! program; prints the problem and exits 1 when it could not; exits 2 on bad
//! arguments. "Could be": whether the code exists is known only to the service,
//! which holds the codes' keyed hashes.
//!
//! The checks run as steps, each passing the text on or naming the problem:
//! normalisation and alphabet, then length, then — for a program with
//! `checkDigit` (the optional fourth argument `check`) — the check character,
//! verified by `tessera_domain::has_valid_check` (Luhn mod N).
//!
//! The example never restates the crate's normalisation rules (which characters
//! humane codes forgive, what is trimmed). It asks `CodeInput::normalize`, so
//! its verdict is always the one the service would reach.

use std::io::Write;
use std::process::ExitCode;

use tessera_domain::{has_valid_check, Alphabet, Code, CodeInput, TicketLength};

const USAGE: &str = "usage: check_code ALPHABET LENGTH CODE
  ALPHABET  alphanumeric, humane or numeric
  LENGTH    the program's code length, 4..=64
  CODE      the text a person typed (quote it if it has spaces)
  check     (optional) the program has checkDigit: CODE ends with a check character";

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match run(&args, &mut std::io::stdout().lock()) {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::from(1),
        Err(message) => {
            eprintln!("{message}");
            ExitCode::from(2)
        }
    }
}

/// Why a typed text cannot be a code of the program.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Problem {
    /// Characters the alphabet has no reading for, each once, in order of
    /// first appearance.
    NotInAlphabet(Vec<char>),
    /// Read in the program's alphabet, the text has `found` characters; the
    /// program's codes have `expected`.
    WrongLength {
        /// Characters the text has once normalised.
        found: usize,
        /// Characters the program's codes have.
        expected: u8,
    },
    /// The last character is not the check character of the others: a typo.
    BadCheckCharacter,
}

impl std::fmt::Display for Problem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Problem::NotInAlphabet(foreign) => {
                let listed: Vec<String> = foreign.iter().map(|c| format!("{c:?}")).collect();
                write!(f, "not in the alphabet: {}", listed.join(", "))
            }
            Problem::WrongLength { found, expected } => write!(
                f,
                "{found} characters, but this program's codes have {expected}"
            ),
            Problem::BadCheckCharacter => write!(f, "mistyped: the check character is wrong"),
        }
    }
}

/// The canonical code `typed` denotes in a program with `alphabet` and
/// `length`, or the first problem found.
pub fn check(typed: &str, alphabet: Alphabet, length: TicketLength) -> Result<Code, Problem> {
    let code = normalise(typed, alphabet, length)?;
    check_length(&code, length.get())?;
    Ok(code)
}

/// Like [`check`], for a program with `checkDigit`: the code has `length`
/// random characters and then its check character, which must be right.
pub fn check_with_check_character(
    typed: &str,
    alphabet: Alphabet,
    length: TicketLength,
) -> Result<Code, Problem> {
    let code = normalise(typed, alphabet, length)?;
    check_length(&code, length.get() + 1)?;
    check_character(&code, alphabet)?;
    Ok(code)
}

/// Step 1, normalisation and alphabet: the code `typed` reads as in
/// `alphabet`, whatever its length (step 2 judges that).
fn normalise(typed: &str, alphabet: Alphabet, length: TicketLength) -> Result<Code, Problem> {
    let read = (TicketLength::MIN..=TicketLength::MAX)
        .filter_map(|n| TicketLength::try_from(i64::from(n)).ok())
        .find_map(|length| CodeInput(typed).normalize(alphabet, length));
    if let Some(code) = read {
        return Ok(code);
    }
    let probe = Probe::new(alphabet);
    // Characters the alphabet drops at the ends (whitespace) are no problem there.
    let inner = typed.trim_matches(|c| probe.dropped_at_end(c));
    let mut foreign: Vec<char> = Vec::new();
    for c in inner.chars() {
        if !probe.is_symbol(c) && !probe.dropped_inside(c) && !foreign.contains(&c) {
            foreign.push(c);
        }
    }
    if foreign.is_empty() {
        // Every character reads, so the length is one no program can have.
        Err(Problem::WrongLength {
            found: inner.chars().filter(|&c| probe.is_symbol(c)).count(),
            expected: length.get(),
        })
    } else {
        Err(Problem::NotInAlphabet(foreign))
    }
}

/// Step 2, length: the program's codes all have `length` characters.
fn check_length(code: &Code, expected: u8) -> Result<(), Problem> {
    let found = code.expose_secret().chars().count();
    if found == usize::from(expected) {
        Ok(())
    } else {
        Err(Problem::WrongLength { found, expected })
    }
}

/// Step 3, the check character (programs with `checkDigit`): the crate's Luhn
/// mod N, so the verdict is the service's ("The code is mistyped.").
fn check_character(code: &Code, alphabet: Alphabet) -> Result<(), Problem> {
    if has_valid_check(alphabet, code.expose_secret()) {
        Ok(())
    } else {
        Err(Problem::BadCheckCharacter)
    }
}

/// Asks `CodeInput::normalize` how the alphabet reads single characters, by
/// hiding each one in an otherwise valid code of the shortest length.
struct Probe {
    alphabet: Alphabet,
    shortest: TicketLength,
    valid: Code,
}

impl Probe {
    fn new(alphabet: Alphabet) -> Self {
        let shortest =
            TicketLength::try_from(i64::from(TicketLength::MIN)).unwrap_or(TicketLength::DEFAULT);
        Self {
            alphabet,
            shortest,
            valid: Code::generate(alphabet, shortest),
        }
    }

    fn reads(&self, text: &str) -> Option<Code> {
        CodeInput(text).normalize(self.alphabet, self.shortest)
    }

    /// Whether `c` is a symbol of the alphabet (or one it reads as a symbol).
    fn is_symbol(&self, c: char) -> bool {
        let text: String = std::iter::repeat_n(c, usize::from(self.shortest.get())).collect();
        self.reads(&text).is_some()
    }

    /// Whether the alphabet ignores `c` between symbols.
    fn dropped_inside(&self, c: char) -> bool {
        let (head, tail) = self.valid.expose_secret().split_at(1);
        self.reads(&format!("{head}{c}{tail}")).as_ref() == Some(&self.valid)
    }

    /// Whether the alphabet ignores `c` after the last symbol.
    fn dropped_at_end(&self, c: char) -> bool {
        self.reads(&format!("{}{c}", self.valid.expose_secret()))
            .as_ref()
            == Some(&self.valid)
    }
}

/// The whole program: parse `args`, check, and print the verdict to `out`.
/// `Ok(true)` when the text could be a code of the program.
pub fn run(args: &[String], out: &mut impl Write) -> Result<bool, String> {
    let (alphabet, length, typed, with_check) = match args {
        [alphabet, length, typed] => (alphabet, length, typed, false),
        [alphabet, length, typed, flag] if flag == "check" => (alphabet, length, typed, true),
        _ => return Err(USAGE.to_owned()),
    };
    let alphabet: Alphabet = alphabet.parse().map_err(|e| format!("{e}"))?;
    let length = length
        .parse::<i64>()
        .map_err(|_| format!("length: must be a whole number, not {length:?}"))
        .and_then(|n| TicketLength::try_from(n).map_err(|e| e.to_string()))?;
    let verdict = if with_check {
        check_with_check_character(typed, alphabet, length)
    } else {
        check(typed, alphabet, length)
    };
    let written = match &verdict {
        Ok(code) => writeln!(out, "ok: {}", code.expose_secret()),
        Err(problem) => writeln!(out, "not a code of this program: {problem}"),
    };
    written.map_err(|e| format!("cannot write: {e}"))?;
    Ok(verdict.is_ok())
}
