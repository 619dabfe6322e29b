//! The example programs' logic, tested through the functions their `main`s
//! call (cargo builds no test harness for examples, and `CARGO_BIN_EXE_*` does
//! not exist for them, so each example is included here as a module).

#[allow(dead_code)]
#[path = "../examples/check_code.rs"]
mod check_code;
#[allow(dead_code)]
#[path = "../examples/generate_codes.rs"]
mod generate_codes;
#[allow(dead_code)]
#[path = "../examples/guessing.rs"]
mod guessing;

use std::collections::HashSet;

use tessera_domain::{Alphabet, BatchSize, Code, CodeInput, TicketLength};

/// The symbols of each alphabet, written out here independently of the crate.
const ALPHANUMERIC: &str = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
const CROCKFORD: &str = "0123456789ABCDEFGHJKMNPQRSTVWXYZ";
const DIGITS: &str = "0123456789";

fn args(list: &[&str]) -> Vec<String> {
    list.iter().map(|&arg| arg.to_owned()).collect()
}

fn length(n: i64) -> TicketLength {
    TicketLength::try_from(n).expect("a valid length")
}

// ---- generate_codes ----

fn generated(list: &[&str]) -> Vec<String> {
    let mut out = Vec::new();
    generate_codes::run(&args(list), &mut out).expect("a valid definition");
    String::from_utf8(out)
        .expect("UTF-8")
        .lines()
        .map(str::to_owned)
        .collect()
}

#[test]
fn generate_codes_prints_the_count_asked_for_of_the_length_and_alphabet_asked_for() {
    for (alphabet, symbols, length, count) in [
        ("humane", CROCKFORD, 8, 50),
        ("alphanumeric", ALPHANUMERIC, 12, 20),
        ("numeric", DIGITS, 4, 10),
    ] {
        let codes = generated(&[alphabet, &length.to_string(), &count.to_string()]);
        assert_eq!(codes.len(), count, "{alphabet}");
        for code in &codes {
            assert_eq!(code.len(), length, "{alphabet}: {code}");
            assert!(
                code.chars().all(|c| symbols.contains(c)),
                "{alphabet}: {code}"
            );
        }
        let distinct: HashSet<&String> = codes.iter().collect();
        assert_eq!(distinct.len(), count, "{alphabet}: codes repeat");
    }
}

#[test]
fn generated_codes_stay_distinct_when_the_space_is_nearly_full() {
    // 9,000 of the 10,000 four-digit codes: plain draws would repeat hundreds
    // of times. (`parse` would refuse this definition; `generate` does not judge.)
    let definition = generate_codes::Definition {
        alphabet: Alphabet::Numeric,
        length: length(4),
        count: BatchSize::try_from(9_000).expect("a valid count"),
    };
    let codes = generate_codes::generate(&definition);
    let distinct: HashSet<&str> = codes.iter().map(Code::expose_secret).collect();
    assert_eq!(codes.len(), 9_000);
    assert_eq!(distinct.len(), 9_000);
}

#[test]
fn generate_codes_refuses_a_code_space_too_small_for_the_count() {
    // 10^4 = 10,000 codes hold 1000 per code for 10 codes, not 11.
    assert_eq!(generated(&["numeric", "4", "10"]).len(), 10);
    let error = generate_codes::parse(&args(&["numeric", "4", "11"])).expect_err("too small");
    assert!(error.contains("too few for 11 codes"), "{error}");
}

#[test]
fn generate_codes_refuses_malformed_definitions() {
    let refused = |list: &[&str]| generate_codes::parse(&args(list)).expect_err("refused");
    assert!(refused(&["humane", "8"]).starts_with("usage:"));
    assert!(refused(&["base64", "8", "5"]).starts_with("alphabet:"));
    assert!(refused(&["humane", "3", "5"]).starts_with("ticketLength:"));
    assert!(refused(&["humane", "eight", "5"]).starts_with("length:"));
    assert!(refused(&["humane", "8", "0"]).starts_with("count:"));
    assert!(refused(&["humane", "8", "1000001"]).starts_with("count:"));
}

// ---- check_code ----

use check_code::Problem;

#[test]
fn check_code_catches_a_mistyped_check_character() {
    // 7992739871 with its Luhn digit 3; the service's numeric check is Luhn's.
    let with_check = |typed| {
        check_code::check_with_check_character(typed, Alphabet::Numeric, length(10))
            .map(|code| code.expose_secret().to_owned())
    };
    assert_eq!(with_check(" 79927398713 "), Ok("79927398713".to_owned()));
    assert_eq!(with_check("79927398714"), Err(Problem::BadCheckCharacter));
    assert_eq!(with_check("97927398713"), Err(Problem::BadCheckCharacter));
    assert!(matches!(
        with_check("7992739871"),
        Err(Problem::WrongLength {
            found: 10,
            expected: 11
        })
    ));
}

fn checked(typed: &str, alphabet: Alphabet, n: i64) -> Result<String, Problem> {
    check_code::check(typed, alphabet, length(n)).map(|code| code.expose_secret().to_owned())
}

#[test]
fn check_code_normalises_what_the_alphabet_forgives() {
    assert_eq!(
        checked("abcd-efgh", Alphabet::Humane, 8),
        Ok("ABCDEFGH".into())
    );
    assert_eq!(
        checked("ab-c1 o-l", Alphabet::Humane, 6),
        Ok("ABC101".into())
    );
    assert_eq!(
        checked(" aB3dE6 ", Alphabet::Alphanumeric, 6),
        Ok("aB3dE6".into())
    );
    assert_eq!(checked("123456", Alphabet::Numeric, 6), Ok("123456".into()));
}

#[test]
fn check_code_names_the_characters_outside_the_alphabet() {
    assert_eq!(
        checked("ABCU1234", Alphabet::Humane, 8),
        Err(Problem::NotInAlphabet(vec!['U']))
    );
    assert_eq!(
        checked("aB-dE6", Alphabet::Alphanumeric, 6),
        Err(Problem::NotInAlphabet(vec!['-']))
    );
    // Surrounding spaces are trimmed, inner ones are not; each character once.
    assert_eq!(
        checked(" ab cd!e f! ", Alphabet::Alphanumeric, 8),
        Err(Problem::NotInAlphabet(vec![' ', '!']))
    );
    assert_eq!(
        checked("12a45b", Alphabet::Numeric, 6),
        Err(Problem::NotInAlphabet(vec!['a', 'b']))
    );
}

#[test]
fn check_code_tells_the_length_found_from_the_length_expected() {
    let wrong = |found, expected| Err(Problem::WrongLength { found, expected });
    assert_eq!(checked("ABCD-EFGHJ", Alphabet::Humane, 8), wrong(9, 8));
    assert_eq!(checked("12345", Alphabet::Numeric, 6), wrong(5, 6));
    // Lengths no program can have (outside 4..=64) are counted all the same.
    assert_eq!(checked("abc", Alphabet::Humane, 8), wrong(3, 8));
    assert_eq!(checked(&"7".repeat(70), Alphabet::Numeric, 6), wrong(70, 6));
}

#[test]
fn check_code_always_agrees_with_the_crate() {
    // Whatever the example explains, its verdict must be `CodeInput::normalize`'s.
    let mut tried = 0;
    for alphabet in [Alphabet::Alphanumeric, Alphabet::Humane, Alphabet::Numeric] {
        for n in [4, 6, 9] {
            for _ in 0..40 {
                let code = Code::generate(alphabet, length(n));
                let text = code.expose_secret();
                let (head, tail) = text.split_at(2);
                let variants = [
                    text.to_owned(),
                    text.to_lowercase(),
                    format!("{head}-{tail}"),
                    format!("{head} {tail}"),
                    format!(" {text}\t"),
                    format!("{head}U{tail}"),
                    format!("{head}i{tail}"),
                    format!("{head}!{tail}"),
                    text[1..].to_owned(),
                    format!("{text}{}", &text[..1]),
                ];
                for typed in &variants {
                    let example = check_code::check(typed, alphabet, length(n)).ok();
                    let crate_says = CodeInput(typed).normalize(alphabet, length(n));
                    assert_eq!(example, crate_says, "{alphabet:?} {n}: {typed:?}");
                    tried += 1;
                }
            }
        }
    }
    assert_eq!(tried, 3 * 3 * 40 * 10);
}

#[test]
fn check_code_reports_its_verdict_and_whether_the_code_could_be_one() {
    let verdict = |list: &[&str]| {
        let mut out = Vec::new();
        let ok = check_code::run(&args(list), &mut out).expect("valid arguments");
        (ok, String::from_utf8(out).expect("UTF-8"))
    };
    assert_eq!(
        verdict(&["humane", "8", "abcd-efgh"]),
        (true, "ok: ABCDEFGH\n".to_owned())
    );
    assert_eq!(
        verdict(&["numeric", "6", "12345"]),
        (
            false,
            "not a code of this program: 5 characters, but this program's codes have 6\n"
                .to_owned()
        )
    );
    let mut out = Vec::new();
    assert!(check_code::run(&args(&["humane", "8"]), &mut out)
        .expect_err("usage")
        .starts_with("usage:"));
    assert!(check_code::run(&args(&["humane", "65", "x"]), &mut out)
        .expect_err("bad length")
        .starts_with("ticketLength:"));
}

// ---- guessing ----

fn close(actual: f64, expected: f64) -> bool {
    (actual - expected).abs() <= expected.abs() * 1e-12
}

#[test]
fn guessing_reproduces_the_security_documents_arithmetic() {
    // docs/security.md: six alphanumeric characters, 100,000 live tickets, 20
    // failures a minute per address.
    let odds = guessing::odds(Alphabet::Alphanumeric, length(6), 100_000, 20).expect("valid");
    assert_eq!(odds.exact_code_space, Some(56_800_235_584)); // 62^6
    assert!(close(odds.code_space, 56_800_235_584.0));
    assert!(close(odds.per_guess, 100_000.0 / 56_800_235_584.0));
    assert!(close(odds.expected_guesses, 568_002.355_84));
    assert!(close(odds.minutes_per_address, 28_400.117_792));
    // 62^6 ≥ 1000 × 100,000, and 62^5 = 916,132,832 is the shortest that is.
    assert!(odds.meets_rule);
    assert_eq!(odds.shortest_length, Some(length(5)));

    let report = guessing::report(&odds);
    for line in [
        "code space: 62^6 = 56,800,235,584 codes (35.7 bits)",
        "probability one guess hits a live code: 1.761e-6 (1 in 568,002)",
        "expected guesses to find one live code: 568,002",
        "time for one address at 20 failures/minute: 28,400 minutes ≈ 19.7 days",
    ] {
        assert!(
            report.lines().any(|l| l == line),
            "{line:?} not in\n{report}"
        );
    }
}

#[test]
fn guessing_judges_the_code_space_rule_as_program_creation_does() {
    // 10^4 codes: 9 live codes (1 in 1,111.1 per guess) meet the rule…
    let nine = guessing::odds(Alphabet::Numeric, length(4), 9, 10).expect("valid");
    assert!(close(nine.per_guess, 0.0009));
    assert!(close(nine.expected_guesses, 10_000.0 / 9.0));
    assert!(close(nine.minutes_per_address, 1_000.0 / 9.0));
    assert!(nine.meets_rule);
    assert_eq!(nine.shortest_length, Some(length(4)));
    // …11 do not: five digits are needed (10^5 ≥ 11,000).
    let eleven = guessing::odds(Alphabet::Numeric, length(4), 11, 10).expect("valid");
    assert!(!eleven.meets_rule);
    assert_eq!(eleven.shortest_length, Some(length(5)));
    assert!(guessing::report(&eleven)
        .contains("NOT met; the shortest numeric length that meets it is 5"));
    // A million humane codes need six characters: 32^6 ≈ 1.07 × 10^9 ≥ 10^9.
    let million = guessing::odds(Alphabet::Humane, length(8), 1_000_000, 20).expect("valid");
    assert_eq!(million.exact_code_space, Some(1_099_511_627_776)); // 32^8
    assert_eq!(million.shortest_length, Some(length(6)));
}

#[test]
fn guessing_handles_code_spaces_beyond_u128() {
    let odds = guessing::odds(Alphabet::Alphanumeric, length(64), 5, 20).expect("valid");
    assert_eq!(odds.exact_code_space, None, "62^64 > 2^128");
    assert!(close(odds.code_space, 62f64.powi(64)));
    assert!(guessing::report(&odds).contains("code space: 62^64 ≈ 5.165e114 codes"));
}

#[test]
fn guessing_refuses_impossible_programs() {
    let refused = |alphabet, n, live, rate| guessing::odds(alphabet, length(n), live, rate);
    assert!(refused(Alphabet::Numeric, 4, 0, 10)
        .expect_err("no live code")
        .starts_with("live:"));
    assert!(refused(Alphabet::Numeric, 4, 10_001, 10)
        .expect_err("more live codes than the space")
        .starts_with("live:"));
    assert!(refused(Alphabet::Numeric, 4, 10, 0)
        .expect_err("no throttle budget")
        .starts_with("failures per minute:"));
    let mut out = Vec::new();
    assert!(
        guessing::run(&args(&["numeric", "4", "-1", "10"]), &mut out)
            .expect_err("negative")
            .starts_with("live:")
    );
}
