//! The operator's batch: found across tenants, then issued in the program's tenant
//! by the ordinary batch logic.

use mockall::predicate::eq;
use tessera_domain::{BatchSize, ProgramId};

use crate::operator::OperatorUseCases;
use crate::ports::StoreError;
use crate::service::test_support::*;
use crate::usecases::{BatchRequest, IssuedCode};
use crate::AppError;

fn batch(count: u32) -> BatchRequest {
    BatchRequest {
        count: BatchSize::try_from(i64::from(count)).expect("a valid batch size"),
        max_redemptions: None,
        payload: None,
    }
}

#[test]
fn the_program_is_located_and_the_batch_runs_in_its_tenant() {
    let program = program_in(other_tenant());
    let mut h = Harness::new();
    let located = program.clone();
    h.programs
        .expect_locate()
        .with(eq(program.id.clone()))
        .times(1)
        .returning(move |_| Ok(Some(located.clone())));
    let reserved = program.clone();
    h.tickets
        .expect_reserve()
        .with(eq(other_tenant()), eq(program.id.clone()), eq(3), eq(now()))
        .times(1)
        .returning(move |_, _, _, _| Ok(reserved.clone()));
    h.tickets
        .expect_insert_reserved()
        .times(1)
        .returning(|_| Ok(Vec::new()));
    h.tickets
        .expect_record_batch()
        .with(eq(other_tenant()), eq(program.id.clone()), eq(3), eq(now()))
        .times(1)
        .returning(|_, _, _, _| Ok(()));
    let mut delivered = Vec::new();
    let mut sink = |chunk: &[IssuedCode]| {
        delivered.extend_from_slice(chunk);
        true
    };
    let issued = h
        .build()
        .issue_operator_batch(&program.id, batch(3), &mut sink);
    assert_eq!(issued, Ok(3));
    assert_eq!(delivered.len(), 3);
}

#[test]
fn an_unknown_program_is_not_found_and_nothing_is_issued() {
    let mut h = Harness::new();
    h.programs.expect_locate().times(1).returning(|_| Ok(None));
    let mut sink = |_: &[IssuedCode]| -> bool { panic!("nothing to deliver") };
    assert_eq!(
        h.build()
            .issue_operator_batch(&ProgramId::generate(), batch(3), &mut sink),
        Err(AppError::NotFound)
    );
}

#[test]
fn a_failed_lookup_is_reported_and_nothing_is_issued() {
    let mut h = Harness::new();
    h.programs
        .expect_locate()
        .times(1)
        .returning(|_| Err(StoreError::Unavailable("down".to_owned())));
    let mut sink = |_: &[IssuedCode]| -> bool { panic!("nothing to deliver") };
    assert_eq!(
        h.build()
            .issue_operator_batch(&ProgramId::generate(), batch(3), &mut sink),
        Err(AppError::Unavailable)
    );
}
