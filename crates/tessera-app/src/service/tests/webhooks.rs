//! The webhook use cases and the worker's step, against mocks of their ports.

use std::sync::Arc;
use std::time::Duration;

use mockall::predicate::eq;
use tessera_domain::{DeliveryId, Role, TenantId, Triggers, WebhookSecret, WebhookUrl};

use crate::service::test_support::{admin, fixed_clock, now, principal, roles_except, tenant};
use crate::webhooks::{
    DueDelivery, MockWebhookCrypto, MockWebhookStore, MockWebhookTransport, SealedSecret,
    TransportError, WebhookUseCases,
};
use crate::{AppError, DeliverySettings, WebhookPorts, WebhookService};

const PAYLOAD: &str = r#"{"id":"evt_x","type":"ticket.redeemed"}"#;

fn service(
    store: MockWebhookStore,
    crypto: MockWebhookCrypto,
    transport: MockWebhookTransport,
) -> WebhookService {
    WebhookService::new(
        WebhookPorts {
            clock: Arc::new(fixed_clock()),
            store: Arc::new(store),
            crypto: Arc::new(crypto),
            transport: Arc::new(transport),
        },
        DeliverySettings {
            retry_base: Duration::from_secs(4),
            lease: Duration::from_secs(60),
            batch: 2,
        },
    )
}

fn due(tenant_id: TenantId, attempts: u32) -> DueDelivery {
    DueDelivery {
        tenant_id,
        id: DeliveryId::generate(),
        url: "http://hooks.example.com/in".to_owned(),
        payload: PAYLOAD.to_owned(),
        attempts,
        sealed_secret: SealedSecret(vec![1, 2, 3]),
    }
}

/// A crypto mock that opens the sealed secret and signs with the clock's time.
fn signing_crypto() -> MockWebhookCrypto {
    let mut crypto = MockWebhookCrypto::new();
    crypto
        .expect_open()
        .returning(|_| Some(WebhookSecret::from_opened("whsec_test".to_owned())));
    crypto
        .expect_signature_header()
        .withf(|secret, timestamp, body| {
            secret.expose_secret() == "whsec_test"
                && *timestamp == now().timestamp()
                && body == PAYLOAD
        })
        .returning(|_, timestamp, _| format!("t={timestamp},v1=ab"));
    crypto
}

#[test]
fn a_2xx_answer_marks_the_delivery_delivered() {
    let claimed = due(tenant(), 1);
    let id = claimed.id.clone();
    let mut store = MockWebhookStore::new();
    store
        .expect_claim_due()
        .with(eq(2), eq(Duration::from_secs(60)))
        .return_once(move |_, _| Ok(vec![claimed]));
    store
        .expect_record_delivered()
        .withf(move |t, d, status| *t == tenant() && *d == id && *status == 204)
        .times(1)
        .returning(|_, _, _| Ok(()));
    let mut transport = MockWebhookTransport::new();
    let expected_signature = format!("t={},v1=ab", now().timestamp());
    transport
        .expect_post()
        .withf(move |url, body, signature| {
            url.as_str() == "http://hooks.example.com/in"
                && body == PAYLOAD
                && signature == expected_signature
        })
        .times(1)
        .returning(|_, _, _| Ok(204));
    let attempted = service(store, signing_crypto(), transport)
        .deliver_due()
        .expect("a round");
    assert_eq!(attempted, 1);
}

#[test]
fn a_non_2xx_answer_is_retried_later_with_backoff() {
    let claimed = due(tenant(), 3);
    let mut store = MockWebhookStore::new();
    store
        .expect_claim_due()
        .return_once(move |_, _| Ok(vec![claimed]));
    store
        .expect_record_failure()
        .withf(|_, _, failure, retry_in, horizon| {
            // Third failure: nominal 4 s × 2² = 16 s, jittered into [8, 16].
            failure.status == Some(500)
                && failure.error.contains("500")
                && (Duration::from_secs(8)..=Duration::from_secs(16)).contains(retry_in)
                && *horizon == Duration::from_secs(24 * 3600)
        })
        .times(1)
        .returning(|_, _, _, _, _| Ok(()));
    let mut transport = MockWebhookTransport::new();
    transport.expect_post().returning(|_, _, _| Ok(500));
    service(store, signing_crypto(), transport)
        .deliver_due()
        .expect("a round");
}

#[test]
fn a_refused_address_is_recorded_as_a_failure_saying_so() {
    let claimed = due(tenant(), 1);
    let mut store = MockWebhookStore::new();
    store
        .expect_claim_due()
        .return_once(move |_, _| Ok(vec![claimed]));
    store
        .expect_record_failure()
        .withf(|_, _, failure, _, _| {
            failure.status.is_none() && failure.error.starts_with("refused")
        })
        .times(1)
        .returning(|_, _, _, _, _| Ok(()));
    let mut transport = MockWebhookTransport::new();
    transport
        .expect_post()
        .returning(|_, _, _| Err(TransportError::Refused("10.0.0.1 is private".to_owned())));
    service(store, signing_crypto(), transport)
        .deliver_due()
        .expect("a round");
}

#[test]
fn a_secret_that_does_not_open_fails_the_attempt_without_sending() {
    let claimed = due(tenant(), 1);
    let mut store = MockWebhookStore::new();
    store
        .expect_claim_due()
        .return_once(move |_, _| Ok(vec![claimed]));
    store
        .expect_record_failure()
        .withf(|_, _, failure, _, _| failure.error.contains("master key"))
        .times(1)
        .returning(|_, _, _, _, _| Ok(()));
    let mut crypto = MockWebhookCrypto::new();
    crypto.expect_open().returning(|_| None);
    let mut transport = MockWebhookTransport::new();
    transport.expect_post().never();
    service(store, crypto, transport)
        .deliver_due()
        .expect("a round");
}

#[test]
fn creating_a_webhook_stores_the_sealed_secret_and_shows_the_clear_one_once() {
    let mut crypto = MockWebhookCrypto::new();
    crypto
        .expect_seal()
        .returning(|secret| SealedSecret(secret.expose_secret().bytes().rev().collect()));
    let mut store = MockWebhookStore::new();
    store
        .expect_insert_webhook()
        .withf(|webhook, sealed| {
            webhook.tenant_id == tenant()
                && webhook.created_at == now()
                && !sealed.0.starts_with(b"whsec_")
        })
        .times(1)
        .returning(|_, _| Ok(()));
    let created = service(store, crypto, MockWebhookTransport::new())
        .create_webhook(
            &admin(),
            WebhookUrl::parse("https://hooks.example.com/").expect("url"),
            Triggers::parse(&["ticket.redeemed"]).expect("triggers"),
        )
        .expect("created");
    assert!(created.secret.expose_secret().starts_with("whsec_"));
    assert!(created.webhook.id.as_str().starts_with("whk_"));
}

#[test]
fn only_admins_manage_webhooks() {
    for role in roles_except(&[Role::Admin]) {
        let hooks = service(
            MockWebhookStore::new(),
            MockWebhookCrypto::new(),
            MockWebhookTransport::new(),
        );
        assert_eq!(
            hooks.list_webhooks(&principal(role)),
            Err(AppError::Forbidden)
        );
        let url = WebhookUrl::parse("https://hooks.example.com/").expect("url");
        let triggers = Triggers::parse(&["ticket.issued"]).expect("triggers");
        assert_eq!(
            hooks
                .create_webhook(&principal(role), url, triggers)
                .map(|_| ()),
            Err(AppError::Forbidden)
        );
    }
}
