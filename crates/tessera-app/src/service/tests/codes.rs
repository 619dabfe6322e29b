//! Codes people bring: chosen codes, check characters, per-redeemer limits and
//! refills, as the use cases apply them.

use mockall::predicate::eq;
use tessera_domain::{
    check_character, Alphabet, CodePattern, PresentedCode, RedeemerId, RedemptionFailure,
    RedemptionLimit, TicketState,
};

use super::redeem::{expect_locate, fail_with, request};
use crate::model::{NewTicket, TicketChanges};
use crate::ports::StoreError;
use crate::service::test_support::*;
use crate::usecases::{IssueRequest, RedeemRequest, RedeemUseCases, TicketUseCases};
use crate::{AppError, Limits};

fn chosen(raw: &str) -> IssueRequest {
    IssueRequest {
        code: Some(PresentedCode::new(raw)),
        ..IssueRequest::default()
    }
}

fn expect_program(h: &mut Harness, program: &tessera_domain::Program) {
    let returned = program.clone();
    h.programs
        .expect_get()
        .with(eq(tenant()), eq(program.id.clone()))
        .returning(move |_, _| Ok(returned.clone()));
}

#[test]
fn a_chosen_code_is_normalised_by_the_alphabet_and_stored_only_as_its_hash() {
    let mut program = program();
    program.alphabet = Alphabet::Humane;
    let mut h = Harness::new();
    expect_program(&mut h, &program);
    let seen = Recorder::<NewTicket>::new();
    let record = seen.clone();
    h.tickets.expect_issue().times(1).returning(move |new, _| {
        record.record(new.clone());
        Ok(())
    });
    let issued = h
        .build()
        .issue_ticket(&issuer(), &program.id, chosen("summer-25"))
        .expect("issued");
    assert_eq!(issued.code.expose_secret(), "SUMMER25");
    let [stored] = seen.all().try_into().expect("one issue");
    assert_eq!(stored.code_hash, code_hash_of(&tenant(), "SUMMER25"));
}

#[test]
fn a_taken_chosen_code_is_code_taken_at_once_without_a_retry() {
    let program = program();
    let mut h = Harness::new();
    expect_program(&mut h, &program);
    h.tickets
        .expect_issue()
        .times(1)
        .returning(|_, _| Err(StoreError::CodeTaken));
    assert_eq!(
        h.build()
            .issue_ticket(&issuer(), &program.id, chosen("SUMMER25")),
        Err(AppError::CodeTaken { lines: vec![] })
    );
}

#[test]
fn a_generated_code_that_collides_is_drawn_again() {
    let program = program();
    let mut h = Harness::new();
    expect_program(&mut h, &program);
    let mut calls = 0;
    h.tickets.expect_issue().times(2).returning(move |_, _| {
        calls += 1;
        if calls == 1 {
            Err(StoreError::CodeTaken)
        } else {
            Ok(())
        }
    });
    assert!(h
        .build()
        .issue_ticket(&issuer(), &program.id, IssueRequest::default())
        .is_ok());
}

#[test]
fn a_chosen_code_without_its_check_character_is_refused_before_the_store() {
    let mut program = program();
    program.alphabet = Alphabet::Numeric;
    program.check_digit = true;
    let mut h = Harness::new();
    expect_program(&mut h, &program);
    // No expect_issue: reaching the store fails the test.
    let error = h
        .build()
        .issue_ticket(&issuer(), &program.id, chosen("79927398714"))
        .expect_err("wrong check");
    assert!(
        matches!(error, AppError::Invalid(ref e) if e.field == "code"),
        "{error:?}"
    );
}

#[test]
fn a_patterned_code_is_hashed_without_its_dashes() {
    let mut program = program();
    program.alphabet = Alphabet::Humane;
    program.code_pattern = Some(CodePattern::parse("TSR-####-####", Alphabet::Humane).unwrap());
    program.ticket_length = program.code_pattern.as_ref().unwrap().ticket_length();
    program.check_digit = true;
    let mut h = Harness::new();
    expect_program(&mut h, &program);
    let seen = Recorder::<NewTicket>::new();
    let record = seen.clone();
    h.tickets.expect_issue().returning(move |new, _| {
        record.record(new.clone());
        Ok(())
    });
    let issued = h
        .build()
        .issue_ticket(&issuer(), &program.id, IssueRequest::default())
        .expect("issued");
    let shown = issued.code.expose_secret();
    assert_eq!(shown.len(), "TSR-####-####".len() + 1);
    assert!(shown.starts_with("TSR-"));
    let canonical = shown.replace('-', "");
    let [stored] = seen.all().try_into().expect("one issue");
    assert_eq!(stored.code_hash, code_hash_of(&tenant(), &canonical));
}

fn check_digit_program() -> tessera_domain::Program {
    let mut program = program();
    program.alphabet = Alphabet::Numeric;
    program.check_digit = true;
    program
}

#[test]
fn a_mistyped_code_is_refused_before_any_lookup_and_not_counted() {
    let program = check_digit_program();
    for caller in [None, Some(redeemer())] {
        let mut h = Harness::new();
        // A budget of one failure: were mistyped codes counted, the second
        // attempt below would be refused with too_many_attempts.
        h.limits = Limits {
            redeem_failures_per_minute: 1,
            ..Limits::default()
        };
        expect_locate(&mut h, &program);
        // No expect_redeem: a lookup would fail the test.
        let app = h.build();
        let from_a_client = || RedeemRequest {
            client: Some(std::net::IpAddr::from([10, 0, 0, 7])),
            ..request(&program, "7992-7398-714")
        };
        for _ in 0..30 {
            assert_eq!(
                app.redeem(caller.clone(), from_a_client()),
                Err(AppError::MistypedCode)
            );
        }
    }
}

#[test]
fn a_code_with_a_valid_check_character_is_looked_up_by_its_canonical_hash() {
    let program = check_digit_program();
    let body = "7992739871";
    let code = format!(
        "{body}{}",
        check_character(Alphabet::Numeric, body).unwrap()
    );
    let mut h = Harness::new();
    expect_locate(&mut h, &program);
    let seen = fail_with(&mut h, RedemptionFailure::TicketNotFound);
    let _ = h.build().redeem(
        None,
        request(&program, &format!("{} {}", &code[..5], &code[5..])),
    );
    let [attempt] = seen.all().try_into().expect("one lookup");
    assert_eq!(attempt.code_hash, code_hash_of(&tenant(), &code));
}

#[test]
fn the_redeemer_id_reaches_the_store_only_as_its_keyed_hash() {
    let program = program();
    let mut h = Harness::new();
    expect_locate(&mut h, &program);
    let seen = fail_with(&mut h, RedemptionFailure::RedeemerLimitReached);
    let request = RedeemRequest {
        redeemer_id: Some(RedeemerId::try_from("user-42".to_owned()).unwrap()),
        ..request(&program, "aB3dE6")
    };
    assert_eq!(
        h.build().redeem(Some(redeemer()), request),
        Err(AppError::Redemption(
            RedemptionFailure::RedeemerLimitReached
        ))
    );
    let [attempt] = seen.all().try_into().expect("one attempt");
    assert_eq!(
        attempt.redeemer,
        Some(redeemer_hash_of(&tenant(), "user-42"))
    );
}

#[test]
fn a_refill_writes_the_new_limit_at_the_version_read() {
    let mut h = Harness::new();
    let view = ticket_view(&program());
    let id = view.ticket.id.clone();
    let current = view.clone();
    h.tickets
        .expect_get()
        .returning(move |_, _| Ok(current.clone()));
    let limit = RedemptionLimit::try_from(9).unwrap();
    let changes = TicketChanges {
        state: None,
        max_redemptions: Some(limit),
    };
    let answered = view.clone();
    h.tickets
        .expect_update_ticket()
        .with(
            eq(tenant()),
            eq(id.clone()),
            eq(changes),
            eq(view.ticket.version),
            eq(now()),
        )
        .times(1)
        .returning(move |_, _, _, _, _| Ok(answered.clone()));
    assert!(h
        .build()
        .update_ticket(&admin(), &id, changes, None)
        .is_ok());
}

#[test]
fn a_refill_is_for_admins_and_not_of_revoked_tickets() {
    let changes = TicketChanges {
        state: None,
        max_redemptions: Some(RedemptionLimit::try_from(2).unwrap()),
    };
    let h = Harness::new();
    let id = ticket_view(&program()).ticket.id;
    assert_eq!(
        h.build().update_ticket(&issuer(), &id, changes, None),
        Err(AppError::Forbidden)
    );
    let mut h = Harness::new();
    let mut revoked = ticket_view(&program());
    revoked.ticket.state = TicketState::Revoked;
    h.tickets
        .expect_get()
        .returning(move |_, _| Ok(revoked.clone()));
    assert!(matches!(
        h.build().update_ticket(&admin(), &id, changes, None),
        Err(AppError::Invalid(_))
    ));
}

mod import {
    use super::*;
    use crate::model::{ImportOutcome, ImportStep};
    use crate::usecases::{ImportRow, RowError};

    fn row(line: u64, code: &str) -> Result<ImportRow, RowError> {
        Ok(ImportRow {
            line,
            code: PresentedCode::new(code),
            email: None,
            max_redemptions: None,
            subject: None,
        })
    }

    /// The store pulls every step; records what it saw and answers `outcome`
    /// (or `Imported(n)` for n tickets when `outcome` is `None`).
    fn drain_store(
        h: &mut Harness,
        outcome: Option<ImportOutcome>,
    ) -> Recorder<Vec<(u64, SecretHashBytes)>> {
        let seen = Recorder::new();
        let record = seen.clone();
        h.tickets
            .expect_import()
            .times(1)
            .returning(move |_, _, _, next| {
                let mut rows = Vec::new();
                let mut last;
                loop {
                    last = next.next_step();
                    match &last {
                        ImportStep::Chunk(chunk) => {
                            rows.extend(chunk.iter().map(|(line, new)| (*line, new.code_hash.0)))
                        }
                        ImportStep::Done | ImportStep::Abort => break,
                    }
                }
                let n = rows.len() as u32;
                record.record(rows);
                Ok(outcome.clone().unwrap_or(if last == ImportStep::Done {
                    ImportOutcome::Imported(n)
                } else {
                    ImportOutcome::RolledBack { taken: vec![] }
                }))
            });
        seen
    }

    type SecretHashBytes = [u8; 32];

    #[test]
    fn valid_rows_are_hashed_canonically_and_imported() {
        let program = program();
        let mut h = Harness::new();
        expect_program(&mut h, &program);
        let seen = drain_store(&mut h, None);
        let mut rows = vec![row(2, "CARD-0001"), row(3, "CARD0002")].into_iter();
        assert_eq!(
            h.build().import_tickets(&issuer(), &program.id, &mut rows),
            Ok(2)
        );
        let [stored] = seen.all().try_into().expect("one import");
        assert_eq!(
            stored,
            vec![
                (2, code_hash_of(&tenant(), "CARD0001").0),
                (3, code_hash_of(&tenant(), "CARD0002").0)
            ]
        );
    }

    #[test]
    fn invalid_rows_abort_and_are_named_by_line_never_by_code() {
        let program = program();
        let mut h = Harness::new();
        expect_program(&mut h, &program);
        let _seen = drain_store(&mut h, None);
        let bad_number = Err(RowError {
            line: 4,
            problem: "maxRedemptions: must be an integer".to_owned(),
        });
        let mut rows = vec![row(2, "SECRET01"), row(3, "ab"), bad_number].into_iter();
        let error = h
            .build()
            .import_tickets(&issuer(), &program.id, &mut rows)
            .expect_err("invalid");
        let text = error.to_string();
        assert!(matches!(error, AppError::Invalid(_)), "{error:?}");
        assert!(
            text.contains("lines 3, 4") && !text.contains("SECRET"),
            "{text}"
        );
    }

    #[test]
    fn a_repeat_in_the_file_and_a_code_of_the_tenant_are_code_taken_with_their_lines() {
        let program = program();
        let mut h = Harness::new();
        expect_program(&mut h, &program);
        let _seen = drain_store(&mut h, Some(ImportOutcome::RolledBack { taken: vec![2] }));
        let mut rows = vec![
            row(2, "TAKEN001"),
            row(3, "SAME0001"),
            row(4, "same-0001".to_uppercase().as_str()),
        ]
        .into_iter();
        assert_eq!(
            h.build().import_tickets(&issuer(), &program.id, &mut rows),
            Err(AppError::CodeTaken { lines: vec![2, 4] })
        );
    }

    #[test]
    fn only_issuers_and_admins_import() {
        let program = program();
        let h = Harness::new();
        let mut rows = vec![row(2, "CARD0001")].into_iter();
        assert_eq!(
            h.build()
                .import_tickets(&redeemer(), &program.id, &mut rows),
            Err(AppError::Forbidden)
        );
    }
}
