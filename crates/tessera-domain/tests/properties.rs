//! Properties of the domain's constructors over arbitrary input: they never panic,
//! and whatever they accept satisfies the rule the type promises — so nothing a
//! constructor lets through can fail later in the database.

use proptest::prelude::*;
use tessera_domain::chrono::{DateTime, Datelike, Timelike, Utc};
use tessera_domain::{
    Alphabet, CodeInput, Email, Label, ObjectId, Subject, TicketLength, ValidityWindow,
};

fn any_time() -> impl Strategy<Value = DateTime<Utc>> {
    // chrono's whole range, nanoseconds included (and leap-second nanos).
    (
        DateTime::<Utc>::MIN_UTC.timestamp()..=DateTime::<Utc>::MAX_UTC.timestamp(),
        0u32..2_000_000_000,
    )
        .prop_filter_map("representable", |(secs, nanos)| {
            DateTime::from_timestamp(secs, nanos)
        })
}

fn alphabet() -> impl Strategy<Value = Alphabet> {
    prop_oneof![
        Just(Alphabet::Alphanumeric),
        Just(Alphabet::Humane),
        Just(Alphabet::Numeric)
    ]
}

proptest! {
    #[test]
    fn an_accepted_window_is_storable_and_ordered(start in any_time(), end in any_time()) {
        if let Ok(window) = ValidityWindow::new(start, end) {
            prop_assert!(window.end() > window.start());
            for time in [window.start(), window.end()] {
                prop_assert!((1..=9999).contains(&time.year()));
                prop_assert_eq!(time.nanosecond() % 1_000, 0, "microsecond precision");
                prop_assert!(time.nanosecond() < 1_000_000_000, "no leap second left");
            }
        }
    }

    #[test]
    fn text_values_never_hold_control_characters(raw in any::<String>()) {
        for accepted in [
            Label::try_from(raw.clone()).ok().map(|v| v.as_str().to_owned()),
            ObjectId::try_from(raw.clone()).ok().map(|v| v.as_str().to_owned()),
            Subject::try_from(raw.clone()).ok().map(|v| v.as_str().to_owned()),
        ]
        .into_iter()
        .flatten()
        {
            prop_assert!(!accepted.chars().any(char::is_control));
            prop_assert!(!accepted.trim().is_empty());
        }
    }

    #[test]
    fn an_accepted_email_is_one_plain_address(raw in any::<String>()) {
        if let Ok(email) = Email::parse(&raw) {
            let text = email.as_str();
            prop_assert_eq!(text.matches('@').count(), 1);
            prop_assert!(!text.chars().any(|c| c.is_control() || c.is_whitespace()));
            prop_assert!(email.matches(text), "an address matches itself");
        }
    }

    #[test]
    fn a_normalized_code_has_its_programs_shape(
        raw in any::<String>(),
        alphabet in alphabet(),
        length in 4i64..=64,
    ) {
        let length = TicketLength::try_from(length).expect("in range");
        if let Some(code) = CodeInput(&raw).normalize(alphabet, length) {
            let code = code.expose_secret();
            prop_assert_eq!(code.len(), usize::from(length.get()));
            prop_assert!(code.chars().all(|c| c.is_ascii_alphanumeric()));
            // Normalising is idempotent: a code reads as itself.
            let again = CodeInput(code).normalize(alphabet, length);
            prop_assert_eq!(again.as_ref().map(|c| c.expose_secret()), Some(code));
        }
    }
}
