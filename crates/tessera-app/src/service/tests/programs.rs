use chrono::Duration;
use mockall::predicate::eq;
use tessera_domain::{
    Alphabet, EventType, MaxTickets, PageRequest, PresentedCode, Program, ProgramChanges,
    ProgramId, ProgramState, RedemptionFailure, RedemptionLimit, Role, TicketLength,
};

use crate::model::Page;
use crate::ports::StoreError;
use crate::service::test_support::*;
use crate::service::UPDATE_ATTEMPTS;
use crate::usecases::{ProgramUseCases, RedeemRequest, RedeemUseCases};
use crate::AppError;

fn lower_redemptions() -> ProgramChanges {
    ProgramChanges {
        max_redemptions: Some(RedemptionLimit::try_from(5).expect("valid limit")),
        ..ProgramChanges::default()
    }
}

/// Programs expects `get` of `current` (scoped to the caller's tenant) any number
/// of times.
fn expect_get(h: &mut Harness, current: &Program) {
    let returned = current.clone();
    h.programs
        .expect_get()
        .with(eq(tenant()), eq(current.id.clone()))
        .returning(move |_, _| Ok(returned.clone()));
}

#[test]
fn an_admin_creates_a_program_in_its_own_tenant() {
    let mut h = Harness::new();
    let seen = Recorder::new();
    let record = seen.clone();
    h.programs
        .expect_insert()
        .times(1)
        .returning(move |program| {
            record.record(program.clone());
            Ok(())
        });
    let created = h
        .build()
        .create_program(&admin(), new_program())
        .expect("created");

    assert_eq!(seen.all(), vec![created.clone()]);
    assert_eq!(created.tenant_id, tenant());
    assert_eq!(created.state, ProgramState::Active);
    assert_eq!(created.version, 1);
    assert_eq!(created.issued_tickets, 0);
    assert_eq!(created.created_at, now());
    assert_eq!(created.object_id, new_program().object_id);
}

#[test]
fn create_program_refuses_a_code_space_too_small_naming_ticket_length_without_storing() {
    let mut new = new_program();
    new.alphabet = Alphabet::Numeric;
    new.ticket_length = TicketLength::try_from(4).expect("valid length");
    // 10^4 codes allow at most 10 tickets.
    new.max_tickets = MaxTickets::try_from(11).expect("valid cap");
    match untouched().create_program(&admin(), new) {
        Err(AppError::Invalid(error)) => assert_eq!(error.field, "ticketLength"),
        other => panic!("expected Invalid(ticketLength), got {other:?}"),
    }
}

#[test]
fn create_program_reports_store_failures() {
    let mut h = Harness::new();
    h.programs
        .expect_insert()
        .returning(|_| Err(StoreError::Unavailable("down".to_owned())));
    assert_eq!(
        h.build().create_program(&admin(), new_program()),
        Err(AppError::Unavailable)
    );
}

#[test]
fn only_admins_create_programs() {
    for role in roles_except(&[Role::Admin]) {
        assert_eq!(
            untouched().create_program(&principal(role), new_program()),
            Err(AppError::Forbidden),
            "{role:?} must be refused"
        );
    }
}

#[test]
fn admins_and_issuers_read_a_program_of_their_tenant() {
    for caller in [admin(), issuer()] {
        let program = program();
        let mut h = Harness::new();
        expect_get(&mut h, &program);
        assert_eq!(h.build().get_program(&caller, &program.id), Ok(program));
    }
}

#[test]
fn a_program_the_tenant_does_not_have_is_not_found() {
    let mut h = Harness::new();
    h.programs
        .expect_get()
        .returning(|_, _| Err(StoreError::NotFound));
    assert_eq!(
        h.build().get_program(&admin(), &ProgramId::generate()),
        Err(AppError::NotFound)
    );
}

#[test]
fn redeemers_may_not_read_programs() {
    let caller = redeemer();
    assert_eq!(
        untouched().get_program(&caller, &ProgramId::generate()),
        Err(AppError::Forbidden)
    );
    assert_eq!(
        untouched().list_programs(&caller, PageRequest::default()),
        Err(AppError::Forbidden)
    );
}

#[test]
fn list_programs_passes_the_callers_tenant_and_page() {
    let page = PageRequest::new(Some(2), Some(4)).expect("valid page");
    let listed = Page {
        items: vec![program(), program()],
        total: 7,
    };
    let mut h = Harness::new();
    let returned = listed.clone();
    h.programs
        .expect_list()
        .with(eq(tenant()), eq(page))
        .times(1)
        .returning(move |_, _| Ok(returned.clone()));
    assert_eq!(h.build().list_programs(&issuer(), page), Ok(listed));
}

#[test]
fn update_with_a_matching_if_match_writes_the_next_version() {
    let current = program();
    let mut h = Harness::new();
    expect_get(&mut h, &current);
    let expected_version = current.version + 1;
    h.programs
        .expect_update()
        .withf(move |updated, event| {
            updated.version == expected_version
                && updated.max_redemptions.get() == 5
                && updated.updated_at == now()
                && *event == EventType::ProgramUpdated
        })
        .times(1)
        .returning(|updated, _| Ok(updated.clone()));
    let updated = h
        .build()
        .update_program(
            &admin(),
            &current.id,
            lower_redemptions(),
            Some(current.version),
        )
        .expect("updated");
    assert_eq!(updated.version, current.version + 1);
    assert_eq!(updated.max_redemptions.get(), 5);
}

#[test]
fn update_with_a_stale_if_match_is_a_version_conflict_without_a_write() {
    let mut current = program();
    current.version = 4;
    let mut h = Harness::new();
    expect_get(&mut h, &current);
    // No `expect_update`: a write would fail the test.
    assert_eq!(
        h.build()
            .update_program(&admin(), &current.id, lower_redemptions(), Some(3)),
        Err(AppError::VersionConflict)
    );
}

#[test]
fn update_with_if_match_does_not_retry_a_concurrent_change() {
    let current = program();
    let mut h = Harness::new();
    h.programs
        .expect_get()
        .times(1)
        .returning(move |_, _| Ok(current.clone()));
    h.programs
        .expect_update()
        .times(1)
        .returning(|_, _| Err(StoreError::VersionConflict));
    assert_eq!(
        h.build().update_program(
            &admin(),
            &ProgramId::generate(),
            lower_redemptions(),
            Some(1)
        ),
        Err(AppError::VersionConflict)
    );
}

#[test]
fn update_without_if_match_rereads_and_retries_after_a_concurrent_change() {
    let first = program();
    let mut second = first.clone();
    second.version = 2;
    second.name = Some(tessera_domain::Label::try_from("renamed".to_owned()).expect("label"));
    let mut h = Harness::new();
    h.programs
        .expect_get()
        .times(1)
        .returning(move |_, _| Ok(first.clone()));
    h.programs
        .expect_get()
        .times(1)
        .returning(move |_, _| Ok(second.clone()));
    let written = Recorder::new();
    let conflict = written.clone();
    h.programs
        .expect_update()
        .times(1)
        .returning(move |updated, _| {
            conflict.record(updated.clone());
            Err(StoreError::VersionConflict)
        });
    let success = written.clone();
    h.programs
        .expect_update()
        .times(1)
        .returning(move |updated, _| {
            success.record(updated.clone());
            Ok(updated.clone())
        });
    let updated = h
        .build()
        .update_program(&admin(), &ProgramId::generate(), lower_redemptions(), None)
        .expect("updated on retry");

    let versions: Vec<i64> = written.all().iter().map(|p| p.version).collect();
    assert_eq!(
        versions,
        vec![2, 3],
        "the retry builds on the re-read program"
    );
    assert_eq!(updated.version, 3);
    assert_eq!(
        updated.name.as_ref().map(|name| name.as_str()),
        Some("renamed"),
        "the concurrent change is kept"
    );
    assert_eq!(updated.max_redemptions.get(), 5);
}

#[test]
fn update_without_if_match_gives_up_after_repeated_conflicts() {
    let current = program();
    let mut h = Harness::new();
    h.programs
        .expect_get()
        .times(UPDATE_ATTEMPTS)
        .returning(move |_, _| Ok(current.clone()));
    h.programs
        .expect_update()
        .times(UPDATE_ATTEMPTS)
        .returning(|_, _| Err(StoreError::VersionConflict));
    assert_eq!(
        h.build()
            .update_program(&admin(), &ProgramId::generate(), lower_redemptions(), None),
        Err(AppError::VersionConflict)
    );
}

#[test]
fn update_refuses_an_inverted_window_naming_end_time_without_a_write() {
    let current = program();
    let mut h = Harness::new();
    expect_get(&mut h, &current);
    let changes = ProgramChanges {
        end_time: Some(current.window.start() - Duration::hours(1)),
        ..ProgramChanges::default()
    };
    match h
        .build()
        .update_program(&admin(), &current.id, changes, None)
    {
        Err(AppError::Invalid(error)) => assert_eq!(error.field, "endTime"),
        other => panic!("expected Invalid(endTime), got {other:?}"),
    }
}

#[test]
fn update_of_a_program_the_tenant_does_not_have_is_not_found() {
    let mut h = Harness::new();
    h.programs
        .expect_get()
        .withf(|tenant_id, _| *tenant_id == tenant())
        .returning(|_, _| Err(StoreError::NotFound));
    assert_eq!(
        h.build()
            .update_program(&admin(), &ProgramId::generate(), lower_redemptions(), None),
        Err(AppError::NotFound)
    );
}

#[test]
fn setting_end_time_reactivates_a_suspended_program() {
    let mut current = program();
    current.state = ProgramState::Suspended;
    current.version = 2;
    let new_end = now() + Duration::days(90);
    let mut h = Harness::new();
    expect_get(&mut h, &current);
    h.programs
        .expect_update()
        .withf(move |updated, event| {
            updated.state == ProgramState::Active
                && updated.window.end() == new_end
                && updated.version == 3
                && *event == EventType::ProgramUpdated
        })
        .times(1)
        .returning(|updated, _| Ok(updated.clone()));
    let changes = ProgramChanges {
        end_time: Some(new_end),
        ..ProgramChanges::default()
    };
    let updated = h
        .build()
        .update_program(&admin(), &current.id, changes, Some(2))
        .expect("updated");
    assert_eq!(updated.state, ProgramState::Active);
}

#[test]
fn update_returns_the_program_as_the_store_has_it() {
    let current = program();
    let mut h = Harness::new();
    expect_get(&mut h, &current);
    h.programs.expect_update().returning(|updated, _| {
        let mut stored = updated.clone();
        stored.issued_tickets = 42;
        Ok(stored)
    });
    let updated = h
        .build()
        .update_program(&admin(), &current.id, lower_redemptions(), None)
        .expect("updated");
    assert_eq!(updated.issued_tickets, 42);
}

#[test]
fn only_admins_update_programs() {
    for role in roles_except(&[Role::Admin]) {
        assert_eq!(
            untouched().update_program(
                &principal(role),
                &ProgramId::generate(),
                lower_redemptions(),
                None
            ),
            Err(AppError::Forbidden),
            "{role:?} must be refused"
        );
    }
}

#[test]
fn suspend_writes_a_suspended_program_with_the_program_suspended_event() {
    let current = program();
    let mut h = Harness::new();
    expect_get(&mut h, &current);
    let expected_version = current.version + 1;
    h.programs
        .expect_update()
        .withf(move |updated, event| {
            updated.state == ProgramState::Suspended
                && updated.version == expected_version
                && *event == EventType::ProgramSuspended
        })
        .times(1)
        .returning(|updated, _| Ok(updated.clone()));
    let suspended = h
        .build()
        .suspend_program(&admin(), &current.id)
        .expect("suspended");
    assert_eq!(suspended.state, ProgramState::Suspended);
}

#[test]
fn only_admins_suspend_programs() {
    for role in roles_except(&[Role::Admin]) {
        assert_eq!(
            untouched().suspend_program(&principal(role), &ProgramId::generate()),
            Err(AppError::Forbidden),
            "{role:?} must be refused"
        );
    }
}

#[test]
fn delete_is_scoped_to_the_callers_tenant_and_stamped_now() {
    let id = ProgramId::generate();
    let mut h = Harness::new();
    h.programs
        .expect_delete()
        .with(eq(tenant()), eq(id.clone()), eq(now()))
        .times(1)
        .returning(|_, _, _| Ok(()));
    assert_eq!(h.build().delete_program(&admin(), &id), Ok(()));
}

#[test]
fn deleting_a_program_the_tenant_does_not_have_is_not_found() {
    let mut h = Harness::new();
    h.programs
        .expect_delete()
        .returning(|_, _, _| Err(StoreError::NotFound));
    assert_eq!(
        h.build().delete_program(&admin(), &ProgramId::generate()),
        Err(AppError::NotFound)
    );
}

#[test]
fn only_admins_delete_programs() {
    for role in roles_except(&[Role::Admin]) {
        assert_eq!(
            untouched().delete_program(&principal(role), &ProgramId::generate()),
            Err(AppError::Forbidden),
            "{role:?} must be refused"
        );
    }
}

#[test]
fn a_deleted_program_is_forgotten_by_the_redemption_cache() {
    let program = program();
    let id = program.id.clone();
    let mut h = Harness::new();
    let located = program.clone();
    h.programs
        .expect_locate()
        .with(eq(id.clone()))
        .times(2)
        .returning(move |_| Ok(Some(located.clone())));
    h.programs
        .expect_delete()
        .times(1)
        .returning(|_, _, _| Ok(()));
    h.redemptions
        .expect_redeem()
        .times(2)
        .returning(|_| Ok(Err(RedemptionFailure::TicketNotFound)));
    let app = h.build();
    let redeem = || {
        app.redeem(
            None,
            RedeemRequest {
                program_id: Some(id.clone()),
                tenant_id: None,
                code: PresentedCode::new("aB3dE6"),
                email: None,
                redeemer_id: None,
                client: None,
            },
        )
    };

    assert_eq!(redeem(), Err(AppError::InvalidCode));
    app.delete_program(&admin(), &id).expect("deleted");
    // Without the delete, this redemption would be served from the cache.
    assert_eq!(redeem(), Err(AppError::InvalidCode));
}

/// Another replica deleted the program: this process still has its facts cached,
/// the store finds no ticket, and a detailed caller must not be told
/// `ticket_not_found` (that the program exists) — the answer is an unknown
/// program's, and the stale facts are dropped.
#[test]
fn a_program_deleted_through_another_replica_answers_as_unknown_to_detailed_callers() {
    let program = program();
    let id = program.id.clone();
    let mut h = Harness::new();
    let located = program.clone();
    let lookups = std::sync::atomic::AtomicUsize::new(0);
    h.programs
        .expect_locate()
        .with(eq(id.clone()))
        .times(2)
        // The first lookup fills the cache; by the second the program is gone.
        .returning(move |_| {
            let first = lookups.fetch_add(1, std::sync::atomic::Ordering::SeqCst) == 0;
            Ok(first.then(|| located.clone()))
        });
    h.redemptions
        .expect_redeem()
        .times(1)
        .returning(|_| Ok(Err(RedemptionFailure::TicketNotFound)));
    let probes = h.probes.clone();
    let app = h.build();
    let redeem = || {
        app.redeem(
            Some(redeemer()),
            RedeemRequest {
                program_id: Some(id.clone()),
                tenant_id: None,
                code: PresentedCode::new("aB3dE6"),
                email: None,
                redeemer_id: None,
                client: None,
            },
        )
    };
    assert_eq!(redeem(), Err(AppError::InvalidCode));
    assert_eq!(probes.all().len(), 0, "the first attempt reached the store");
    // The cache now says "no such program": no lookup, only the equal-time probe.
    assert_eq!(redeem(), Err(AppError::InvalidCode));
    assert_eq!(probes.all().len(), 1);
}
