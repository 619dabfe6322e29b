//! Check characters: Luhn mod N over a code's characters, valued by their place
//! in the alphabet as listed (`A–Z a–z 0–9`, `0123456789ABCDEFGHJKMNPQRSTVWXYZ`,
//! `0–9`). A check character catches every single-character substitution and
//! every transposition of two adjacent distinct characters, so a mistyped code
//! is refused by arithmetic, before any lookup.

use crate::Alphabet;

/// The value of `symbol` in `alphabet` (its index in the listed order).
fn value(alphabet: Alphabet, symbol: u8) -> Option<u32> {
    alphabet
        .symbols()
        .iter()
        .position(|&s| s == symbol)
        .map(|index| index as u32)
}

/// The check character Luhn mod N gives for `code` (normalised, without dashes
/// or spaces), or `None` when a character of it is not in `alphabet`.
///
/// From the rightmost character leftwards the factors are 2, 1, 2, …; each
/// product `p` adds `p / N + p % N`; the check is the character valued
/// `(N − sum % N) % N`.
///
/// ```
/// use tessera_domain::{check_character, Alphabet};
///
/// // The classic Luhn digit: 7992739871 → 3.
/// assert_eq!(check_character(Alphabet::Numeric, "7992739871"), Some('3'));
/// assert_eq!(check_character(Alphabet::Humane, "ABU"), None); // U is not Crockford
/// ```
pub fn check_character(alphabet: Alphabet, code: &str) -> Option<char> {
    let n = alphabet.size();
    let mut sum = 0u32;
    for (position, symbol) in code.bytes().rev().enumerate() {
        let factor = if position % 2 == 0 { 2 } else { 1 };
        let product = value(alphabet, symbol)? * factor;
        sum += product / n + product % n;
    }
    let check = (n - sum % n) % n;
    Some(char::from(alphabet.symbols()[check as usize]))
}

/// Whether the last character of `code` (normalised, without dashes or spaces)
/// is the check character of the characters before it.
///
/// ```
/// use tessera_domain::{has_valid_check, Alphabet};
///
/// assert!(has_valid_check(Alphabet::Numeric, "79927398713"));
/// assert!(!has_valid_check(Alphabet::Numeric, "79927398714"));
/// assert!(!has_valid_check(Alphabet::Numeric, "3"));
/// ```
pub fn has_valid_check(alphabet: Alphabet, code: &str) -> bool {
    match code.as_bytes().split_last() {
        Some((&last, body)) if !body.is_empty() => std::str::from_utf8(body)
            .ok()
            .and_then(|body| check_character(alphabet, body))
            .is_some_and(|check| check as u32 == u32::from(last)),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const ALPHABETS: [Alphabet; 3] = [Alphabet::Alphanumeric, Alphabet::Humane, Alphabet::Numeric];

    fn with_check(alphabet: Alphabet, body: &str) -> String {
        let check = check_character(alphabet, body).expect("body of the alphabet");
        format!("{body}{check}")
    }

    /// An alphabet and a code body of 1..=40 of its characters, as indices.
    fn alphabet_and_body() -> impl Strategy<Value = (Alphabet, Vec<usize>)> {
        (0..3usize).prop_flat_map(|a| {
            let alphabet = ALPHABETS[a];
            let n = alphabet.size() as usize;
            (Just(alphabet), prop::collection::vec(0..n, 1..40))
        })
    }

    fn text(alphabet: Alphabet, indices: &[usize]) -> String {
        indices
            .iter()
            .map(|&i| char::from(alphabet.symbols()[i]))
            .collect()
    }

    #[test]
    fn known_values_by_hand() {
        // Numeric is the classic Luhn algorithm.
        assert_eq!(check_character(Alphabet::Numeric, "7992739871"), Some('3'));
        // Humane "1": factor 2 → 2 → check (32 − 2) % 32 = 30 → 'Y'.
        assert_eq!(check_character(Alphabet::Humane, "1"), Some('Y'));
        // Alphanumeric "B" (value 1): 2 → (62 − 2) = 60 → '8'.
        assert_eq!(check_character(Alphabet::Alphanumeric, "B"), Some('8'));
        // A product of at least N adds its two "digits" base N: humane "Z" is 31,
        // 62 = 1·32 + 30 → sum 31 → check 1.
        assert_eq!(check_character(Alphabet::Humane, "Z"), Some('1'));
    }

    proptest! {
        #[test]
        fn a_code_with_its_check_character_passes((alphabet, body) in alphabet_and_body()) {
            prop_assert!(has_valid_check(alphabet, &with_check(alphabet, &text(alphabet, &body))));
        }

        #[test]
        fn every_single_substitution_is_caught(
            (alphabet, body) in alphabet_and_body(),
            place in any::<prop::sample::Index>(),
            replacement in any::<prop::sample::Index>(),
        ) {
            let code = with_check(alphabet, &text(alphabet, &body));
            let mut bytes = code.clone().into_bytes();
            let at = place.index(bytes.len());
            let symbols = alphabet.symbols();
            let new = symbols[replacement.index(symbols.len())];
            prop_assume!(bytes[at] != new);
            bytes[at] = new;
            let typo = String::from_utf8(bytes).expect("ascii");
            prop_assert!(!has_valid_check(alphabet, &typo), "{code} → {typo}");
        }

        #[test]
        fn every_adjacent_transposition_of_distinct_characters_is_caught(
            (alphabet, body) in alphabet_and_body(),
            place in any::<prop::sample::Index>(),
        ) {
            let code = with_check(alphabet, &text(alphabet, &body));
            let mut bytes = code.clone().into_bytes();
            let at = place.index(bytes.len() - 1);
            prop_assume!(bytes[at] != bytes[at + 1]);
            bytes.swap(at, at + 1);
            // Luhn mod N misses one transposition per alphabet: the two symbols
            // valued 0 and N − 1 (their doubled sums agree), as with 09 ↔ 90 in
            // classic Luhn. Everything else must be caught.
            let n = alphabet.size();
            let pair = [value(alphabet, bytes[at]), value(alphabet, bytes[at + 1])];
            let typo = String::from_utf8(bytes).expect("ascii");
            let blind_spot = matches!(pair, [Some(0), Some(v)] | [Some(v), Some(0)] if v == n - 1);
            prop_assume!(!blind_spot);
            prop_assert!(!has_valid_check(alphabet, &typo), "{code} → {typo}");
        }
    }

    #[test]
    fn the_transposition_blind_spot_is_exactly_zero_and_n_minus_one() {
        // Exhaustive over every adjacent pair, in both factor positions.
        for alphabet in ALPHABETS {
            let n = alphabet.size() as usize;
            for a in 0..n {
                for b in 0..n {
                    if a == b {
                        continue;
                    }
                    for prefix in [vec![], vec![1usize]] {
                        let mut body = prefix.clone();
                        body.extend([a, b]);
                        let code = with_check(alphabet, &text(alphabet, &body));
                        let mut swapped = prefix;
                        swapped.extend([b, a]);
                        let typo =
                            format!("{}{}", text(alphabet, &swapped), &code[code.len() - 1..]);
                        let blind = (a == 0 && b == n - 1) || (a == n - 1 && b == 0);
                        assert_eq!(has_valid_check(alphabet, &typo), blind, "{code} → {typo}");
                    }
                }
            }
        }
    }
}
