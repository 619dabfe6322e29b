//! Code patterns: the shape of a program's generated codes, such as
//! `TSR-####-####`, where each `#` is one random character of the alphabet and
//! every other character is kept literally.

use crate::secret::random_string;
use crate::{Alphabet, DomainError, TicketLength};

/// The longest pattern a program may have.
const MAX_PATTERN_CHARS: usize = 64;

/// A program's `codePattern`, checked against its alphabet: at most 64
/// characters, every literal a character of the alphabet, a dash or a space, and
/// between 4 and 64 `#` (the pattern's `ticketLength`).
///
/// ```
/// use tessera_domain::{Alphabet, CodePattern};
///
/// let pattern = CodePattern::parse("TSR-####-####", Alphabet::Humane)?;
/// assert_eq!(pattern.ticket_length().get(), 8);
/// let code = pattern.fill(Alphabet::Humane);
/// assert!(pattern.matches(&code));
/// assert_eq!(&code[..4], "TSR-");
/// // U is not a humane character, so it cannot be a literal.
/// assert!(CodePattern::parse("USR-####", Alphabet::Humane).is_err());
/// # Ok::<(), tessera_domain::DomainError>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct CodePattern {
    raw: String,
    length: TicketLength,
}

impl CodePattern {
    /// The pattern `raw` for codes of `alphabet`, if it follows the rules above;
    /// the error names `codePattern`.
    pub fn parse(raw: &str, alphabet: Alphabet) -> Result<Self, DomainError> {
        let invalid = |message: &str| DomainError::new("codePattern", message);
        if raw.chars().count() > MAX_PATTERN_CHARS {
            return Err(invalid("must be at most 64 characters"));
        }
        if raw
            .bytes()
            .any(|b| !matches!(b, b'#' | b'-' | b' ') && !alphabet.symbols().contains(&b))
            || !raw.is_ascii()
        {
            return Err(invalid(
                "every character must be #, a dash, a space or a character of the alphabet",
            ));
        }
        let places = raw.bytes().filter(|&b| b == b'#').count();
        let length = TicketLength::try_from(places as i64)
            .map_err(|_| invalid("must hold between 4 and 64 #"))?;
        Ok(Self {
            raw: raw.to_owned(),
            length,
        })
    }

    /// The pattern as the program was given it.
    pub fn as_str(&self) -> &str {
        &self.raw
    }

    /// How many random characters a code of this pattern has (its `#`).
    pub fn ticket_length(&self) -> TicketLength {
        self.length
    }

    /// A fresh code of the pattern, each `#` drawn from the CSPRNG.
    pub fn fill(&self, alphabet: Alphabet) -> String {
        let random = random_string(alphabet.symbols(), usize::from(self.length.get()));
        let mut random = random.chars();
        self.raw
            .chars()
            .map(|c| match c {
                '#' => random.next().unwrap_or(c),
                literal => literal,
            })
            .collect()
    }

    /// Whether `code` has the pattern's shape: its literals in place and a
    /// character of `alphabet` at each `#` — given the alphabet the pattern was
    /// parsed for, whose characters never include `#`.
    pub fn matches(&self, code: &str) -> bool {
        code.len() == self.raw.len()
            && code.bytes().zip(self.raw.bytes()).all(|(c, p)| {
                if p == b'#' {
                    c != b'#' && c.is_ascii_alphanumeric()
                } else {
                    c == p
                }
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::check::has_valid_check;
    use crate::CodeInput;
    use proptest::prelude::*;

    #[test]
    fn literals_must_be_of_the_alphabet_a_dash_or_a_space() {
        assert!(CodePattern::parse("AB-## ##", Alphabet::Humane).is_ok());
        assert!(CodePattern::parse("ab-####", Alphabet::Humane).is_err());
        assert!(CodePattern::parse("ab-####", Alphabet::Alphanumeric).is_ok());
        assert!(CodePattern::parse("A_####", Alphabet::Alphanumeric).is_err());
        assert!(CodePattern::parse("X-####", Alphabet::Numeric).is_err());
        assert!(CodePattern::parse("Ä-####", Alphabet::Alphanumeric).is_err());
    }

    #[test]
    fn the_number_of_places_is_4_to_64_and_the_pattern_at_most_64_chars() {
        assert_eq!(
            CodePattern::parse("###", Alphabet::Numeric)
                .unwrap_err()
                .field,
            "codePattern"
        );
        assert!(CodePattern::parse(&"#".repeat(64), Alphabet::Numeric).is_ok());
        assert!(CodePattern::parse(&format!("1{}", "#".repeat(64)), Alphabet::Numeric).is_err());
    }

    fn pattern_strategy() -> impl Strategy<Value = (Alphabet, String)> {
        let alphabets = [Alphabet::Alphanumeric, Alphabet::Humane, Alphabet::Numeric];
        (0..3usize).prop_flat_map(move |a| {
            let alphabet = alphabets[a];
            let symbols: Vec<char> = alphabet.symbols().iter().map(|&b| char::from(b)).collect();
            let piece = prop_oneof![
                4 => Just('#'),
                1 => Just('-'),
                1 => Just(' '),
                2 => prop::sample::select(symbols),
            ];
            (
                Just(alphabet),
                prop::collection::vec(piece, 4..60)
                    .prop_map(|pieces| format!("####{}", pieces.into_iter().collect::<String>())),
            )
        })
    }

    proptest! {
        #[test]
        fn every_generated_code_matches_its_pattern_and_passes_its_check((alphabet, raw) in pattern_strategy()) {
            prop_assume!(raw.bytes().filter(|&b| b == b'#').count() <= 64);
            let pattern = CodePattern::parse(&raw, alphabet).expect("valid pattern");
            let program_code = crate::code::generate_display(alphabet, Some(&pattern), pattern.ticket_length(), true);
            let code = program_code.expose_secret();
            prop_assert!(pattern.matches(&code[..code.len() - 1]), "{code} vs {raw}");
            let canonical = CodeInput(code).canonical(alphabet).expect("a code of the alphabet");
            prop_assert!(has_valid_check(alphabet, canonical.expose_secret()));
            prop_assert!(!canonical.expose_secret().contains(['-', ' ']));
        }
    }
}
