//! `replace: true` chooses the store's replacing issuance; without it, a subject's
//! active ticket still refuses a second one.

use tessera_domain::{Subject, TicketState};

use crate::ports::StoreError;
use crate::service::test_support::*;
use crate::usecases::{IssueRequest, TicketUseCases};
use crate::AppError;

fn subject_request(replace: bool) -> IssueRequest {
    IssueRequest {
        subject: Some(Subject::try_from("user-7".to_owned()).expect("subject")),
        replace,
        ..IssueRequest::default()
    }
}

fn harness() -> (Harness, tessera_domain::Program) {
    let mut program = program();
    program.one_active_per_subject = true;
    let mut h = Harness::new();
    let returned = program.clone();
    h.programs
        .expect_get()
        .returning(move |_, _| Ok(returned.clone()));
    (h, program)
}

#[test]
fn replace_issues_through_the_replacing_store_method() {
    let (mut h, program) = harness();
    let seen = Recorder::new();
    let record = seen.clone();
    h.tickets
        .expect_issue_replacing()
        .times(1)
        .returning(move |new, _| {
            record.record(new.clone());
            Ok(())
        });
    // No expectation on `issue`: calling it would fail the test.
    let issued = h
        .build()
        .issue_ticket(&issuer(), &program.id, subject_request(true))
        .expect("issued");
    let [stored] = seen.all().try_into().expect("one issuance");
    assert_eq!(stored.ticket.id, issued.ticket_id);
    assert_eq!(stored.ticket.state, TicketState::Active);
    assert_eq!(
        stored.ticket.subject.as_ref().map(Subject::as_str),
        Some("user-7")
    );
}

#[test]
fn without_replace_the_subjects_active_ticket_refuses_another() {
    let (mut h, program) = harness();
    h.tickets
        .expect_issue()
        .times(1)
        .returning(|_, _| Err(StoreError::SubjectHasActiveTicket));
    assert_eq!(
        h.build()
            .issue_ticket(&issuer(), &program.id, subject_request(false)),
        Err(AppError::SubjectHasActiveTicket)
    );
}
