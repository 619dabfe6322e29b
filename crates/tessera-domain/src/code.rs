use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::secret::random_string;
use crate::{DomainError, MaxTickets};

const ALPHANUMERIC: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
/// Crockford's base32: no I, L, O or U, so a person cannot misread a code.
const CROCKFORD: &[u8] = b"0123456789ABCDEFGHJKMNPQRSTVWXYZ";
const DIGITS: &[u8] = b"0123456789";

/// How many candidate codes must exist per ticket a program may issue, so that a
/// guess hits a live code with probability at most 1/1000.
const CODE_SPACE_FACTOR: u128 = 1000;

/// The characters a program's codes are drawn from.
///
/// Its text form (`as_str`, `FromStr`, and serde) is the lowercase name, as in
/// a program definition: `alphanumeric`, `humane` or `numeric`.
///
/// ```
/// use tessera_domain::Alphabet;
///
/// let alphabet: Alphabet = "humane".parse()?;
/// assert_eq!(alphabet, Alphabet::Humane);
/// assert_eq!(alphabet.size(), 32);
/// assert_eq!(alphabet.as_str(), "humane");
/// assert_eq!(Alphabet::default(), Alphabet::Alphanumeric);
/// assert!("base64".parse::<Alphabet>().is_err());
/// # Ok::<(), tessera_domain::DomainError>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum Alphabet {
    /// A–Z a–z 0–9, case-sensitive.
    #[default]
    Alphanumeric,
    /// Crockford base32, case-insensitive; spaces and dashes are ignored on input.
    Humane,
    /// 0–9.
    Numeric,
}

impl Alphabet {
    /// The alphabet's name, as `FromStr` and serde read and write it.
    pub fn as_str(self) -> &'static str {
        match self {
            Alphabet::Alphanumeric => "alphanumeric",
            Alphabet::Humane => "humane",
            Alphabet::Numeric => "numeric",
        }
    }

    pub(crate) fn symbols(self) -> &'static [u8] {
        match self {
            Alphabet::Alphanumeric => ALPHANUMERIC,
            Alphabet::Humane => CROCKFORD,
            Alphabet::Numeric => DIGITS,
        }
    }

    /// How many symbols the alphabet has: 62, 32 or 10. A code of `length`
    /// characters is one of `size ^ length` possible codes.
    pub fn size(self) -> u32 {
        self.symbols().len() as u32
    }

    /// Whether `length` characters of this alphabet leave enough room for
    /// `max_tickets` codes (see `CODE_SPACE_FACTOR`). Unlimited programs always fit:
    /// their risk is bounded by throttling, not by the cap.
    ///
    /// The rule: the code space, `size ^ length`, must hold at least 1000 codes
    /// per ticket the program may issue, so that one random guess hits a live
    /// code with probability at most 1/1000. `Program::create` refuses a
    /// program that breaks it.
    ///
    /// ```
    /// use tessera_domain::{Alphabet, MaxTickets, TicketLength};
    ///
    /// let four = TicketLength::try_from(4)?;
    /// // 10^4 = 10,000 numeric codes hold 1000 codes for each of 10 tickets…
    /// assert!(Alphabet::Numeric.fits(four, MaxTickets::try_from(10)?));
    /// // …but not for 11.
    /// assert!(!Alphabet::Numeric.fits(four, MaxTickets::try_from(11)?));
    /// // The shortest humane length for a million tickets: 32^6 ≈ 1.07 × 10^9.
    /// let million = MaxTickets::try_from(1_000_000)?;
    /// let shortest = (4..=64)
    ///     .filter_map(|n| TicketLength::try_from(n).ok())
    ///     .find(|&length| Alphabet::Humane.fits(length, million));
    /// assert_eq!(shortest.map(TicketLength::get), Some(6));
    /// # Ok::<(), tessera_domain::DomainError>(())
    /// ```
    pub fn fits(self, length: TicketLength, max_tickets: MaxTickets) -> bool {
        let Some(cap) = max_tickets.limit() else {
            return true;
        };
        let space = u128::from(self.size())
            .checked_pow(u32::from(length.get()))
            .unwrap_or(u128::MAX);
        space >= CODE_SPACE_FACTOR.saturating_mul(u128::from(cap))
    }
}

impl FromStr for Alphabet {
    type Err = DomainError;

    fn from_str(raw: &str) -> Result<Self, Self::Err> {
        match raw {
            "alphanumeric" => Ok(Alphabet::Alphanumeric),
            "humane" => Ok(Alphabet::Humane),
            "numeric" => Ok(Alphabet::Numeric),
            _ => Err(DomainError::new(
                "alphabet",
                "must be one of alphanumeric, humane, numeric",
            )),
        }
    }
}

/// The number of characters in a program's codes: 4..=64.
///
/// ```
/// use tessera_domain::TicketLength;
///
/// assert_eq!(TicketLength::try_from(8)?.get(), 8);
/// assert_eq!(TicketLength::DEFAULT.get(), 6);
/// let error = TicketLength::try_from(3).unwrap_err();
/// assert_eq!(error.field, "ticketLength");
/// assert!(TicketLength::try_from(65).is_err());
/// # Ok::<(), tessera_domain::DomainError>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TicketLength(u8);

impl TicketLength {
    /// The shortest length a program may choose.
    pub const MIN: u8 = 4;
    /// The longest length a program may choose.
    pub const MAX: u8 = 64;
    /// The length of a program that does not choose one.
    pub const DEFAULT: TicketLength = TicketLength(6);

    /// The length as a number of characters.
    pub fn get(self) -> u8 {
        self.0
    }
}

impl TryFrom<i64> for TicketLength {
    type Error = DomainError;

    fn try_from(value: i64) -> Result<Self, Self::Error> {
        if (i64::from(Self::MIN)..=i64::from(Self::MAX)).contains(&value) {
            Ok(Self(value as u8))
        } else {
            Err(DomainError::new(
                "ticketLength",
                format!("must be between {} and {}", Self::MIN, Self::MAX),
            ))
        }
    }
}

crate::redacted::secret_string! {
    /// A ticket's code in canonical form. A secret: it leaves the process only in the
    /// issuance response, so `Debug` and `Display` never show it.
    ///
    /// A `Code` comes from `Code::generate` or from `CodeInput::normalize`, so it
    /// always has its program's length and alphabet.
    ///
    /// ```
    /// use tessera_domain::{Alphabet, Code, TicketLength};
    ///
    /// let code = Code::generate(Alphabet::Humane, TicketLength::try_from(8)?);
    /// assert_eq!(code.expose_secret().len(), 8);
    /// assert!(code.expose_secret().chars().all(|c| "0123456789ABCDEFGHJKMNPQRSTVWXYZ".contains(c)));
    /// assert_eq!(format!("{code:?}"), "Code(<redacted>)");
    /// # Ok::<(), tessera_domain::DomainError>(())
    /// ```
    pub struct Code;
}

impl Code {
    /// A fresh code from the operating system's CSPRNG.
    pub fn generate(alphabet: Alphabet, length: TicketLength) -> Self {
        Self(random_string(alphabet.symbols(), usize::from(length.get())))
    }
}

/// What a person typed, before it is known to be a code of a given program.
///
/// `normalize` turns it into the canonical `Code` of a program, or tells that
/// no code of that program could look like it:
///
/// ```
/// use tessera_domain::{Alphabet, CodeInput, TicketLength};
///
/// let six = TicketLength::try_from(6)?;
/// // Humane codes forgive case, spaces, dashes and the misreadings I, L → 1, O → 0.
/// let code = CodeInput("ab-c1 o-l").normalize(Alphabet::Humane, six);
/// assert_eq!(code.as_ref().map(|code| code.expose_secret()), Some("ABC101"));
/// // U is not a Crockford symbol; five digits are not a six-digit code.
/// assert!(CodeInput("ABCU12").normalize(Alphabet::Humane, six).is_none());
/// assert!(CodeInput("12345").normalize(Alphabet::Numeric, six).is_none());
/// // Alphanumeric codes are case-sensitive; only surrounding whitespace goes.
/// let code = CodeInput(" aB3dE6 ").normalize(Alphabet::Alphanumeric, six);
/// assert_eq!(code.as_ref().map(|code| code.expose_secret()), Some("aB3dE6"));
/// # Ok::<(), tessera_domain::DomainError>(())
/// ```
pub struct CodeInput<'a>(pub &'a str);

impl fmt::Debug for CodeInput<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("CodeInput(<redacted>)")
    }
}

impl CodeInput<'_> {
    /// The canonical code this input denotes for a program with `alphabet` and
    /// `length`, or `None` when no code of that program could look like it (so the
    /// caller can reject it without a database lookup).
    pub fn normalize(&self, alphabet: Alphabet, length: TicketLength) -> Option<Code> {
        let canonical: String = match alphabet {
            Alphabet::Humane => self
                .0
                .chars()
                .filter(|c| !matches!(c, ' ' | '-'))
                .map(|c| match c.to_ascii_uppercase() {
                    'I' | 'L' => '1',
                    'O' => '0',
                    upper => upper,
                })
                .collect(),
            Alphabet::Alphanumeric | Alphabet::Numeric => self.0.trim().to_owned(),
        };
        let symbols = alphabet.symbols();
        let valid = canonical.len() == usize::from(length.get())
            && canonical.bytes().all(|b| symbols.contains(&b));
        valid.then_some(Code(canonical))
    }
}

/// The longest canonical code: 64 random characters and a check character.
const MAX_CANONICAL_CHARS: usize = 65;

impl CodeInput<'_> {
    /// The canonical form of any code a program could hold, generated or chosen:
    /// spaces and dashes dropped (for every alphabet), humane input upper-cased
    /// with `O` → `0` and `I`/`L` → `1`, then 4..=65 of `A–Z a–z 0–9` (64
    /// characters and a check character at most). `None` when no code could look
    /// like it, so the caller can refuse it before any lookup.
    ///
    /// ```
    /// use tessera_domain::{Alphabet, CodeInput};
    ///
    /// let humane = |raw| CodeInput(raw).canonical(Alphabet::Humane);
    /// let one = humane("tsr-ab12-cd34").expect("a code");
    /// assert_eq!(one.expose_secret(), "TSRAB12CD34");
    /// assert_eq!(humane("TSR AB12 CD34"), Some(one));
    /// // Chosen codes may hold letters the alphabet lacks, such as U.
    /// assert!(humane("summer25").is_some());
    /// assert!(CodeInput("ab_c").canonical(Alphabet::Alphanumeric).is_none());
    /// assert!(CodeInput("abc").canonical(Alphabet::Alphanumeric).is_none());
    /// ```
    pub fn canonical(&self, alphabet: Alphabet) -> Option<Code> {
        let kept = self.0.chars().filter(|c| !matches!(c, ' ' | '-'));
        let canonical: String = match alphabet {
            Alphabet::Humane => kept
                .map(|c| match c.to_ascii_uppercase() {
                    'I' | 'L' => '1',
                    'O' => '0',
                    upper => upper,
                })
                .collect(),
            Alphabet::Alphanumeric | Alphabet::Numeric => kept.collect(),
        };
        let canonical = canonical.trim();
        let valid = (usize::from(TicketLength::MIN)..=MAX_CANONICAL_CHARS)
            .contains(&canonical.len())
            && canonical.bytes().all(|b| b.is_ascii_alphanumeric());
        valid.then(|| Code(canonical.to_owned()))
    }
}

impl Code {
    /// The canonical form of a code as shown (a generated code of a pattern keeps
    /// its dashes and spaces for people; its hash is of the canonical form).
    pub fn canonical(&self, alphabet: Alphabet) -> Option<Code> {
        CodeInput(&self.0).canonical(alphabet)
    }
}

/// A fresh code as shown: `length` random characters (or the pattern with its
/// `#` filled), then, with `check`, the check character of its canonical form.
pub(crate) fn generate_display(
    alphabet: Alphabet,
    pattern: Option<&crate::CodePattern>,
    length: TicketLength,
    check: bool,
) -> Code {
    let mut shown = match pattern {
        Some(pattern) => pattern.fill(alphabet),
        None => random_string(alphabet.symbols(), usize::from(length.get())),
    };
    if check {
        let canonical: String = shown.chars().filter(|c| !matches!(c, ' ' | '-')).collect();
        if let Some(character) = crate::check::check_character(alphabet, &canonical) {
            shown.push(character);
        }
    }
    Code(shown)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn length(n: i64) -> TicketLength {
        TicketLength::try_from(n).expect("valid length")
    }

    #[test]
    fn ticket_length_accepts_only_4_to_64() {
        assert!(TicketLength::try_from(3).is_err());
        assert!(TicketLength::try_from(65).is_err());
        assert_eq!(length(4).get(), 4);
        assert_eq!(length(64).get(), 64);
    }

    #[test]
    fn generated_codes_have_the_length_and_alphabet_asked_for() {
        for alphabet in [Alphabet::Alphanumeric, Alphabet::Humane, Alphabet::Numeric] {
            let code = Code::generate(alphabet, length(12));
            assert_eq!(code.expose_secret().len(), 12);
            assert!(code
                .expose_secret()
                .bytes()
                .all(|b| alphabet.symbols().contains(&b)));
        }
    }

    #[test]
    fn generation_uses_the_whole_alphabet() {
        let mut seen = std::collections::HashSet::new();
        for _ in 0..200 {
            seen.extend(
                Code::generate(Alphabet::Humane, length(8))
                    .expose_secret()
                    .chars(),
            );
        }
        assert_eq!(seen.len(), 32, "all 32 Crockford symbols should appear");
    }

    #[test]
    fn humane_input_ignores_case_spaces_dashes_and_misreadings() {
        let code = CodeInput("ab-c1 o-l")
            .normalize(Alphabet::Humane, length(6))
            .expect("normalizes");
        assert_eq!(code.expose_secret(), "ABC101");
        assert!(CodeInput("ABCU12")
            .normalize(Alphabet::Humane, length(6))
            .is_none());
    }

    #[test]
    fn alphanumeric_input_stays_case_sensitive() {
        let code = CodeInput("aB3dE6")
            .normalize(Alphabet::Alphanumeric, length(6))
            .expect("valid");
        assert_eq!(code.expose_secret(), "aB3dE6");
        assert!(CodeInput("aB-dE6")
            .normalize(Alphabet::Alphanumeric, length(6))
            .is_none());
    }

    #[test]
    fn input_of_the_wrong_length_or_alphabet_is_refused() {
        assert!(CodeInput("12345")
            .normalize(Alphabet::Numeric, length(6))
            .is_none());
        assert!(CodeInput("12345a")
            .normalize(Alphabet::Numeric, length(6))
            .is_none());
    }

    #[test]
    fn code_space_must_hold_a_thousand_codes_per_ticket() {
        let cap = |n| MaxTickets::try_from(n).expect("valid cap");
        // 10^4 = 10,000 = 1000 × 10.
        assert!(Alphabet::Numeric.fits(length(4), cap(10)));
        assert!(!Alphabet::Numeric.fits(length(4), cap(11)));
        assert!(Alphabet::Numeric.fits(length(4), cap(0)), "unlimited fits");
        assert!(Alphabet::Alphanumeric.fits(length(64), cap(i64::from(u32::MAX))));
    }

    #[test]
    fn codes_never_show_in_debug_output() {
        let code = Code::generate(Alphabet::Alphanumeric, length(10));
        assert!(!format!("{code:?}").contains(code.expose_secret()));
    }
}
