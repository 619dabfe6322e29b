use chrono::Duration;
use mockall::predicate::eq;
use tessera_domain::{
    Label, PageRequest, Payload, PresentedTicket, Role, StandaloneTicket, StandaloneTicketId,
    StandaloneToken, Ttl, Uses,
};

use crate::model::{Page, SecretHash, StandaloneDeletion, StandaloneUse, UsesLeft};
use crate::ports::StoreError;
use crate::service::test_support::*;
use crate::service::{Limits, SECRET_ATTEMPTS};
use crate::usecases::{DeleteOutcome, NewStandalone, StandaloneUseCases};
use crate::AppError;

fn new_standalone(ttl: i64, uses: i64) -> NewStandalone {
    NewStandalone {
        ttl: Ttl::try_from(ttl).expect("valid ttl"),
        uses: Uses::try_from(uses).expect("valid uses"),
        payload: Some(Payload::from_json_text("{\"door\":3}".to_owned()).expect("payload")),
        name: Some(Label::try_from("signup".to_owned()).expect("label")),
        permissions: Some(Payload::from_json_text("{\"read\":true}".to_owned()).expect("json")),
    }
}

/// The standalone store accepts every creation and records what it was given.
fn record_creates(h: &mut Harness) -> Recorder<(StandaloneTicket, SecretHash, u32)> {
    let seen = Recorder::new();
    let record = seen.clone();
    h.standalone
        .expect_create()
        .withf(|_, _, _, at| *at == now())
        .returning(move |ticket, hash, cap, _| {
            record.record((ticket.clone(), hash, cap));
            Ok(())
        });
    seen
}

/// A well-formed token nobody issued.
fn token() -> StandaloneToken {
    StandaloneToken::generate()
}

#[test]
fn create_stores_the_ticket_with_its_expiry_uses_and_the_configured_cap() {
    let mut h = Harness::new();
    h.limits = Limits {
        max_standalone_tickets: 7,
        ..Limits::default()
    };
    let seen = record_creates(&mut h);
    let new = new_standalone(90, 3);
    let token = h
        .build()
        .create_standalone(&issuer(), new.clone())
        .expect("created");

    let [(ticket, hash, cap)] = seen.all().try_into().expect("one creation");
    assert_eq!(cap, 7);
    assert_eq!(hash, standalone_hash_of(&tenant(), token.expose_secret()));
    assert_eq!(ticket.tenant_id, tenant());
    assert_eq!(ticket.expires_at, Some(now() + Duration::seconds(90)));
    assert_eq!(ticket.uses_left, Some(3));
    assert_eq!(ticket.total_uses, new.uses);
    assert_eq!(ticket.payload, new.payload);
    assert_eq!(ticket.name, new.name);
    assert_eq!(ticket.permissions, new.permissions);
    assert_eq!(ticket.created_at, now());
    assert_eq!(StandaloneToken::parse(token.expose_secret()), Some(token));
}

#[test]
fn zero_ttl_never_expires_and_zero_uses_is_unlimited() {
    let mut h = Harness::new();
    let seen = record_creates(&mut h);
    h.build()
        .create_standalone(&admin(), new_standalone(0, 0))
        .expect("created");
    let [(ticket, _, cap)] = seen.all().try_into().expect("one creation");
    assert_eq!(ticket.expires_at, None);
    assert_eq!(ticket.uses_left, None);
    assert_eq!(cap, Limits::default().max_standalone_tickets);
}

#[test]
fn a_colliding_token_is_retried_with_a_fresh_one() {
    let mut h = Harness::new();
    let hashes = Recorder::new();
    let first = hashes.clone();
    h.standalone
        .expect_create()
        .times(1)
        .returning(move |_, hash, _, _| {
            first.record(hash);
            Err(StoreError::DuplicateSecret)
        });
    let second = hashes.clone();
    h.standalone
        .expect_create()
        .times(1)
        .returning(move |_, hash, _, _| {
            second.record(hash);
            Ok(())
        });
    let token = h
        .build()
        .create_standalone(&issuer(), new_standalone(60, 1))
        .expect("created on retry");
    let [collided, stored]: [SecretHash; 2] = hashes.all().try_into().expect("two attempts");
    assert_ne!(collided, stored);
    assert_eq!(stored, standalone_hash_of(&tenant(), token.expose_secret()));
}

#[test]
fn repeated_token_collisions_give_up_with_internal() {
    let mut h = Harness::new();
    h.standalone
        .expect_create()
        .times(SECRET_ATTEMPTS)
        .returning(|_, _, _, _| Err(StoreError::DuplicateSecret));
    assert!(matches!(
        h.build()
            .create_standalone(&issuer(), new_standalone(60, 1)),
        Err(AppError::Internal(_))
    ));
}

#[test]
fn a_tenant_at_its_cap_gets_max_tickets_reached() {
    let mut h = Harness::new();
    h.standalone
        .expect_create()
        .times(1)
        .returning(|_, _, _, _| Err(StoreError::MaxTicketsReached));
    assert_eq!(
        h.build()
            .create_standalone(&issuer(), new_standalone(60, 1)),
        Err(AppError::MaxTicketsReached)
    );
}

#[test]
fn redeemers_may_not_create_delete_or_list_standalone_tickets() {
    for role in roles_except(&[Role::Admin, Role::Issuer]) {
        let caller = principal(role);
        let app = untouched();
        assert_eq!(
            app.create_standalone(&caller, new_standalone(60, 1)),
            Err(AppError::Forbidden)
        );
        assert_eq!(
            app.delete_standalone(&caller, &PresentedTicket::new(token().expose_secret())),
            Err(AppError::Forbidden)
        );
        assert_eq!(
            app.list_standalone(&caller, PageRequest::default()),
            Err(AppError::Forbidden)
        );
    }
}

#[test]
fn use_consumes_by_the_tenant_scoped_hash_of_the_token() {
    let token = token();
    let used = StandaloneUse {
        uses_left: UsesLeft::Left(2),
        payload: Some(Payload::from_json_text("{\"door\":3}".to_owned()).expect("payload")),
    };
    for caller in [redeemer(), admin()] {
        let mut h = Harness::new();
        let returned = used.clone();
        h.standalone
            .expect_use_ticket()
            .with(
                eq(tenant()),
                eq(standalone_hash_of(&tenant(), token.expose_secret())),
                eq(now()),
            )
            .times(1)
            .returning(move |_, _, _| Ok(Some(returned.clone())));
        assert_eq!(
            h.build()
                .use_standalone(&caller, &PresentedTicket::new(token.expose_secret())),
            Ok(used.clone())
        );
    }
}

#[test]
fn using_a_malformed_token_is_not_found_without_a_store_call() {
    for malformed in ["", "short", &"/".repeat(32), &"a".repeat(33)] {
        assert_eq!(
            untouched().use_standalone(&redeemer(), &PresentedTicket::new(malformed)),
            Err(AppError::NotFound),
            "{malformed:?}"
        );
    }
}

#[test]
fn using_an_unknown_expired_or_used_up_token_is_not_found() {
    let mut h = Harness::new();
    h.standalone
        .expect_use_ticket()
        .times(1)
        .returning(|_, _, _| Ok(None));
    assert_eq!(
        h.build()
            .use_standalone(&redeemer(), &PresentedTicket::new(token().expose_secret())),
        Err(AppError::NotFound)
    );
}

#[test]
fn issuers_may_not_use_standalone_tickets() {
    assert_eq!(
        untouched().use_standalone(&issuer(), &PresentedTicket::new(token().expose_secret())),
        Err(AppError::Forbidden)
    );
}

#[test]
fn deleting_a_malformed_token_deletes_nothing_without_a_store_call() {
    assert_eq!(
        untouched().delete_standalone(&issuer(), &PresentedTicket::new("not a token")),
        Ok(DeleteOutcome {
            uses: None,
            deleted: 0
        })
    );
}

#[test]
fn delete_reports_what_the_store_removed() {
    let token = token();
    for (stored, expected) in [
        (
            StandaloneDeletion::NothingLive,
            DeleteOutcome {
                uses: None,
                deleted: 0,
            },
        ),
        (
            StandaloneDeletion::Deleted(UsesLeft::Left(3)),
            DeleteOutcome {
                uses: Some(3),
                deleted: 1,
            },
        ),
        (
            StandaloneDeletion::Deleted(UsesLeft::Unlimited),
            DeleteOutcome {
                uses: None,
                deleted: 1,
            },
        ),
    ] {
        let mut h = Harness::new();
        h.standalone
            .expect_delete()
            .with(
                eq(tenant()),
                eq(standalone_hash_of(&tenant(), token.expose_secret())),
                eq(now()),
            )
            .times(1)
            .returning(move |_, _, _| Ok(stored));
        assert_eq!(
            h.build()
                .delete_standalone(&issuer(), &PresentedTicket::new(token.expose_secret())),
            Ok(expected),
            "{stored:?}"
        );
    }
}

#[test]
fn list_passes_the_callers_tenant_page_and_now() {
    let page = PageRequest::new(Some(3), Some(6)).expect("valid page");
    let listed = Page {
        items: vec![StandaloneTicket {
            id: StandaloneTicketId::generate(),
            tenant_id: tenant(),
            name: None,
            permissions: None,
            payload: None,
            total_uses: Uses::DEFAULT,
            uses_left: Some(1),
            expires_at: None,
            created_at: now(),
        }],
        total: 7,
    };
    let mut h = Harness::new();
    let returned = listed.clone();
    h.standalone
        .expect_list()
        .with(eq(tenant()), eq(page), eq(now()))
        .times(1)
        .returning(move |_, _, _| Ok(returned.clone()));
    assert_eq!(h.build().list_standalone(&issuer(), page), Ok(listed));
}
