//! Webhooks on a real database: the outbox trigger writes deliveries with the
//! change, the worker's claim hands each due delivery to one claimer, failures
//! back off and give up past the horizon, and tenants stay isolated.
#![allow(clippy::unwrap_used)]
mod common;

use std::collections::HashSet;
use std::sync::{Arc, Barrier};
use std::time::Duration;

use common::{fixture, now, Fixture};
use tessera_app::ports::{StoreError, TicketStore};
use tessera_app::webhooks::{AttemptFailure, SealedSecret, Webhook, WebhookStore};
use tessera_domain::{
    DeliveryState, PageRequest, TenantId, Triggers, WebhookId, WebhookUrl, RETRY_HORIZON,
};

const LEASE: Duration = Duration::from_secs(60);

fn webhook(f: &Fixture, tenant: &TenantId, triggers: &[&str]) -> Webhook {
    let hook = Webhook {
        tenant_id: tenant.clone(),
        id: WebhookId::generate(),
        url: WebhookUrl::parse("http://127.0.0.1:9/hook").unwrap(),
        triggers: Triggers::parse(triggers).unwrap(),
        created_at: now(),
    };
    f.store
        .insert_webhook(&hook, &SealedSecret(vec![1, 2, 3]))
        .unwrap();
    hook
}

fn deliveries(f: &Fixture, hook: &Webhook) -> Vec<tessera_app::webhooks::Delivery> {
    f.store
        .list_deliveries(
            &hook.tenant_id,
            &hook.id,
            PageRequest::new(Some(1000), None).unwrap(),
        )
        .unwrap()
        .items
}

#[test]
fn an_event_writes_one_delivery_per_matching_webhook_of_its_tenant() {
    let f = fixture();
    let tenant = common::tenant(&f.store);
    let other = common::tenant(&f.store);
    let issued = webhook(&f, &tenant, &["ticket.issued"]);
    let programs_only = webhook(&f, &tenant, &["program.created"]);
    let foreign = webhook(&f, &other, &["ticket.issued", "program.created"]);

    let program = common::program(&f.store, &tenant, |_| {});
    let ticket = common::issue(&f.store, &program, "code-1", |_| {});

    let got = deliveries(&f, &issued);
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].event_type, "ticket.issued");
    assert_eq!(got[0].state, DeliveryState::Pending);
    assert_eq!(got[0].attempts, 0);
    assert!(got[0].id.as_str().starts_with("dlv_"));
    let programs = deliveries(&f, &programs_only);
    assert_eq!(programs.len(), 1);
    assert_eq!(programs[0].event_type, "program.created");
    assert!(
        deliveries(&f, &foreign).is_empty(),
        "another tenant's events"
    );

    // The payload is the event as the API shows it.
    let claimed = f.store.claim_due(10, LEASE).unwrap();
    assert_eq!(claimed.len(), 2);
    let ticket_payload = claimed
        .iter()
        .find(|due| due.id == got[0].id)
        .map(|due| serde_json::from_str::<serde_json::Value>(&due.payload).unwrap())
        .unwrap();
    assert_eq!(ticket_payload["id"], got[0].event_id.as_str());
    assert_eq!(ticket_payload["type"], "ticket.issued");
    assert_eq!(ticket_payload["programId"], program.id.as_str());
    assert_eq!(ticket_payload["ticketId"], ticket.as_str());
    assert!(ticket_payload["createdAt"].as_str().unwrap().ends_with('Z'));
    assert!(ticket_payload["data"].is_object());
}

#[test]
fn a_rolled_back_change_writes_no_delivery() {
    let f = fixture();
    let tenant = common::tenant(&f.store);
    let hook = webhook(&f, &tenant, &["ticket.issued"]);
    let program = common::program(&f.store, &tenant, |p| {
        p.max_tickets = common::max_tickets(1)
    });
    common::issue(&f.store, &program, "code-1", |_| {});
    let refused = f
        .store
        .issue(&common::new_ticket(&program, "code-2", |_| {}), now());
    assert_eq!(refused, Err(StoreError::MaxTicketsReached));
    assert_eq!(deliveries(&f, &hook).len(), 1);
}

#[test]
fn concurrent_claimers_never_share_a_delivery() {
    let f = fixture();
    let tenant = common::tenant(&f.store);
    let hook = webhook(&f, &tenant, &["ticket.issued"]);
    let program = common::program(&f.store, &tenant, |_| {});
    for n in 0..40 {
        common::issue(&f.store, &program, &format!("code-{n}"), |_| {});
    }
    let claimers = 4;
    let barrier = Arc::new(Barrier::new(claimers));
    let handles: Vec<_> = (0..claimers)
        .map(|_| {
            let store = f.store.clone();
            let barrier = barrier.clone();
            std::thread::spawn(move || {
                barrier.wait();
                let mut mine = Vec::new();
                loop {
                    let batch = store.claim_due(3, LEASE).unwrap();
                    if batch.is_empty() {
                        return mine;
                    }
                    mine.extend(batch.into_iter().map(|due| due.id));
                }
            })
        })
        .collect();
    let mut seen = HashSet::new();
    for handle in handles {
        for id in handle.join().unwrap() {
            assert!(seen.insert(id.clone()), "{id} claimed twice");
        }
    }
    assert_eq!(seen.len(), 40);
    // Leased: nothing is due again until the lease ends.
    assert!(f.store.claim_due(100, LEASE).unwrap().is_empty());
    assert!(deliveries(&f, &hook).iter().all(|d| d.attempts == 1));
}

#[test]
fn an_expired_lease_makes_the_delivery_due_again() {
    let f = fixture();
    let tenant = common::tenant(&f.store);
    webhook(&f, &tenant, &["program.created"]);
    common::program(&f.store, &tenant, |_| {});
    assert_eq!(f.store.claim_due(10, Duration::ZERO).unwrap().len(), 1);
    let again = f.store.claim_due(10, LEASE).unwrap();
    assert_eq!(
        again.len(),
        1,
        "a replica that died mid-attempt loses only its lease"
    );
    assert_eq!(again[0].attempts, 2);
}

#[test]
fn failures_back_off_then_fail_past_the_horizon_and_success_is_final() {
    let f = fixture();
    let tenant = common::tenant(&f.store);
    let hook = webhook(&f, &tenant, &["program.created"]);
    common::program(&f.store, &tenant, |_| {});
    let due = f.store.claim_due(10, LEASE).unwrap().remove(0);
    let failure = AttemptFailure {
        status: Some(500),
        error: "the receiver answered 500".to_owned(),
    };
    f.store
        .record_failure(
            &tenant,
            &due.id,
            &failure,
            Duration::from_secs(30),
            RETRY_HORIZON,
        )
        .unwrap();
    let listed = deliveries(&f, &hook).remove(0);
    assert_eq!(listed.state, DeliveryState::Pending);
    assert_eq!(listed.last_status, Some(500));
    assert_eq!(
        listed.last_error.as_deref(),
        Some("the receiver answered 500")
    );
    assert!(
        f.store.claim_due(10, LEASE).unwrap().is_empty(),
        "not due for 30 s"
    );
    assert_eq!(f.store.pending_deliveries().unwrap(), 1);

    // A manual retry makes it due at once; a failure past the horizon is final.
    f.store.retry_delivery(&tenant, &hook.id, &due.id).unwrap();
    let due = f.store.claim_due(10, LEASE).unwrap().remove(0);
    f.store
        .record_failure(
            &tenant,
            &due.id,
            &failure,
            Duration::from_secs(30),
            Duration::from_secs(1),
        )
        .unwrap();
    let listed = deliveries(&f, &hook).remove(0);
    assert_eq!(listed.state, DeliveryState::Failed);
    assert_eq!(listed.next_attempt_at, None);
    assert_eq!(listed.attempts, 2);
    assert_eq!(f.store.pending_deliveries().unwrap(), 0);

    // Retrying a failed one makes it pending again, and a 2xx delivers it.
    f.store.retry_delivery(&tenant, &hook.id, &due.id).unwrap();
    let due = f.store.claim_due(10, LEASE).unwrap().remove(0);
    f.store.record_delivered(&tenant, &due.id, 204).unwrap();
    let listed = deliveries(&f, &hook).remove(0);
    assert_eq!(listed.state, DeliveryState::Delivered);
    assert_eq!(listed.last_status, Some(204));
    assert_eq!(listed.last_error, None);
    assert!(listed.delivered_at.is_some());
    assert!(f.store.claim_due(10, Duration::ZERO).unwrap().is_empty());
}

#[test]
fn deleting_a_webhook_fails_its_pending_deliveries_and_stops_new_ones() {
    let f = fixture();
    let tenant = common::tenant(&f.store);
    let hook = webhook(&f, &tenant, &["program.created"]);
    common::program(&f.store, &tenant, |_| {});
    f.store.delete_webhook(&tenant, &hook.id, now()).unwrap();
    assert_eq!(
        f.store.delete_webhook(&tenant, &hook.id, now()),
        Err(StoreError::NotFound)
    );
    assert!(f.store.list_webhooks(&tenant).unwrap().is_empty());
    assert!(f.store.claim_due(10, Duration::ZERO).unwrap().is_empty());
    common::program(&f.store, &tenant, |_| {});
    let failed = common::scalar(
        &f.db.pool(),
        "SELECT count(*) AS n FROM webhook_deliveries \
         WHERE tenant_id = $1 AND state = 'failed' AND last_error = 'webhook deleted'",
        &tenant,
    );
    let all = common::scalar(
        &f.db.pool(),
        "SELECT count(*) AS n FROM webhook_deliveries WHERE tenant_id = $1",
        &tenant,
    );
    assert_eq!((failed, all), (1, 1));
}

#[test]
fn another_tenants_webhooks_and_deliveries_are_not_found() {
    let f = fixture();
    let owner = common::tenant(&f.store);
    let intruder = common::tenant(&f.store);
    let hook = webhook(&f, &owner, &["program.created"]);
    common::program(&f.store, &owner, |_| {});
    let delivery = deliveries(&f, &hook).remove(0);
    assert!(f.store.list_webhooks(&intruder).unwrap().is_empty());
    assert_eq!(
        f.store
            .list_deliveries(&intruder, &hook.id, PageRequest::default())
            .map(|_| ()),
        Err(StoreError::NotFound)
    );
    assert_eq!(
        f.store.retry_delivery(&intruder, &hook.id, &delivery.id),
        Err(StoreError::NotFound)
    );
    assert_eq!(
        f.store.delete_webhook(&intruder, &hook.id, now()),
        Err(StoreError::NotFound)
    );
    assert_eq!(f.store.list_webhooks(&owner).unwrap(), vec![hook]);
}
