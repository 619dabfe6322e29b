//! The public contract (README.md, "Public contract"): every item it lists is
//! reachable from the crate root — this file stops compiling when one is not —
//! and the promises that can be checked at run time hold.

use std::any::type_name;

use tessera_domain::{
    effective_limit, Alphabet, ApiKeySecret, Code, CodeInput, LinkToken, ProgramState,
    RedemptionFailure, RedemptionLimit, StandaloneToken, TicketLength, TicketState,
    EMAIL_MISMATCHES_BEFORE_LOCK,
};

#[test]
fn every_contract_type_is_reachable_from_the_crate_root() {
    use tessera_domain as domain;
    let types = [
        type_name::<domain::NewProgram>(),
        type_name::<domain::Program>(),
        type_name::<domain::ProgramChanges>(),
        type_name::<domain::ProgramState>(),
        type_name::<domain::Ticket>(),
        type_name::<domain::TicketState>(),
        type_name::<domain::RedemptionFailure>(),
        type_name::<domain::Alphabet>(),
        type_name::<domain::TicketLength>(),
        type_name::<domain::Code>(),
        type_name::<domain::CodeInput<'static>>(),
        type_name::<domain::BatchSize>(),
        type_name::<domain::Email>(),
        type_name::<domain::ValidityWindow>(),
        type_name::<domain::MaxTickets>(),
        type_name::<domain::RedemptionLimit>(),
        type_name::<domain::ObjectId>(),
        type_name::<domain::Label>(),
        type_name::<domain::Subject>(),
        type_name::<domain::GroupAddresses>(),
        type_name::<domain::NtpClass>(),
        type_name::<domain::UrlPrefix>(),
        type_name::<domain::Payload>(),
        type_name::<domain::TenantId>(),
        type_name::<domain::ProgramId>(),
        type_name::<domain::TicketId>(),
        type_name::<domain::DomainError>(),
    ];
    // Each is the crate's own type, not a re-export of another crate's.
    for name in types {
        assert!(name.starts_with("tessera_domain::"), "{name}");
    }
    // The re-exported chrono is the one the API takes.
    let window = domain::ValidityWindow::new(
        domain::chrono::DateTime::<domain::chrono::Utc>::UNIX_EPOCH,
        domain::chrono::DateTime::<domain::chrono::Utc>::UNIX_EPOCH
            + domain::chrono::Duration::days(1),
    )
    .expect("a valid window");
    assert_eq!(window.start().timestamp(), 0);
}

#[test]
fn the_redemption_rule_constants_are_the_documented_ones() {
    let limit = |n| RedemptionLimit::try_from(n).expect("a valid limit");
    let rule: fn(Option<RedemptionLimit>, RedemptionLimit) -> u32 = effective_limit;
    assert_eq!(rule(Some(limit(7)), limit(3)), 3);
    assert_eq!(rule(None, limit(3)), 3);
    assert_eq!(EMAIL_MISMATCHES_BEFORE_LOCK, 5);
    assert_eq!((TicketLength::MIN, TicketLength::MAX), (4, 64));
}

#[test]
fn alphabets_read_and_write_as_their_lowercase_names_in_serde_too() {
    for (alphabet, name) in [
        (Alphabet::Alphanumeric, "alphanumeric"),
        (Alphabet::Humane, "humane"),
        (Alphabet::Numeric, "numeric"),
    ] {
        let json = serde_json::to_string(&alphabet).expect("serializes");
        assert_eq!(json, format!("\"{name}\""));
        assert_eq!(
            serde_json::from_str::<Alphabet>(&json).expect("deserializes"),
            alphabet
        );
        assert_eq!(alphabet.as_str(), name);
        assert_eq!(name.parse::<Alphabet>(), Ok(alphabet));
    }
    assert!(serde_json::from_str::<Alphabet>("\"Humane\"").is_err());
    assert!(serde_json::from_str::<Alphabet>("\"base32\"").is_err());
}

#[test]
fn state_and_failure_names_are_the_apis() {
    for (state, name) in [
        (TicketState::Active, "active"),
        (TicketState::Locked, "locked"),
        (TicketState::Disabled, "disabled"),
        (TicketState::Revoked, "revoked"),
    ] {
        assert_eq!(state.as_str(), name);
        assert_eq!(TicketState::parse(name), Some(state));
    }
    for (state, name) in [
        (ProgramState::Active, "active"),
        (ProgramState::Suspended, "suspended"),
    ] {
        assert_eq!(state.as_str(), name);
        assert_eq!(ProgramState::parse(name), Some(state));
    }
    for (failure, code) in [
        (RedemptionFailure::TicketNotFound, "ticket_not_found"),
        (RedemptionFailure::TicketExhausted, "ticket_exhausted"),
        (RedemptionFailure::TicketRevoked, "ticket_revoked"),
        (RedemptionFailure::TicketDisabled, "ticket_disabled"),
        (RedemptionFailure::TicketLocked, "ticket_locked"),
        (RedemptionFailure::EmailMismatch, "email_mismatch"),
        (RedemptionFailure::ProgramSuspended, "program_suspended"),
        (RedemptionFailure::ProgramNotStarted, "program_not_started"),
        (RedemptionFailure::ProgramEnded, "program_ended"),
    ] {
        assert_eq!(failure.code(), code);
        assert_eq!(RedemptionFailure::parse(code), Some(failure));
        assert!(!failure.message().is_empty());
    }
}

#[test]
fn secrets_never_show_in_debug_output() {
    let code = Code::generate(Alphabet::Alphanumeric, TicketLength::DEFAULT);
    let link = LinkToken::generate(&tessera_domain::TenantId::generate());
    let token = StandaloneToken::generate();
    let key = ApiKeySecret::generate(&tessera_domain::TenantId::generate());
    for (debug, secret) in [
        (format!("{code:?}"), code.expose_secret()),
        (format!("{link:?}"), link.expose_secret()),
        (format!("{token:?}"), token.expose_secret()),
        (format!("{key:?}"), key.expose_secret()),
        (
            format!("{:?}", CodeInput(code.expose_secret())),
            code.expose_secret(),
        ),
    ] {
        assert!(debug.contains("<redacted>"), "{debug}");
        assert!(!debug.contains(secret), "{debug}");
    }
}
