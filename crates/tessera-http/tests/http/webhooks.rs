use tessera_app::model::Page;
use tessera_app::webhooks::{CreatedWebhook, Delivery, Webhook};
use tessera_app::AppError;
use tessera_domain::{DeliveryId, DeliveryState, Triggers, WebhookId, WebhookSecret, WebhookUrl};

use crate::support::*;

const HOOK: &str = "whk_44444444444444441111";
const DELIVERY: &str = "dlv_44444444444444442222";

fn webhook() -> Webhook {
    Webhook {
        tenant_id: tenant(),
        id: WebhookId::parse(HOOK).unwrap(),
        url: WebhookUrl::parse("https://hooks.example.com/in").unwrap(),
        triggers: Triggers::parse(&["ticket.redeemed"]).unwrap(),
        created_at: at_millis(START_MS),
    }
}

#[actix_web::test]
async fn creating_a_webhook_shows_its_secret_once_and_never_caches() {
    let secret = WebhookSecret::generate();
    let clear = secret.expose_secret().to_owned();
    let mut mocks = Mocks::new();
    mocks
        .webhooks
        .expect_create_webhook()
        .withf(|caller, url, triggers| {
            caller.tenant_id == tenant()
                && url.as_str() == "https://hooks.example.com/in"
                && triggers.kinds().len() == 1
        })
        .return_once(move |_, _, _| {
            Ok(CreatedWebhook {
                webhook: webhook(),
                secret,
            })
        });
    let reply = send(
        mocks,
        post_json(
            "/v1/webhooks",
            Some(ADMIN_KEY),
            r#"{"url": "https://hooks.example.com/in", "triggers": ["ticket.redeemed"]}"#,
        ),
    )
    .await;
    assert_eq!(reply.status.as_u16(), 201, "{}", reply.text);
    assert_eq!(reply.body["id"], HOOK);
    assert_eq!(reply.body["secret"], clear.as_str());
    assert_eq!(
        reply.body["triggers"],
        serde_json::json!(["ticket.redeemed"])
    );
    assert_eq!(reply.header("cache-control"), Some("no-store"));
}

#[actix_web::test]
async fn bad_urls_and_triggers_are_refused_naming_the_field() {
    for (body, field) in [
        (
            r#"{"url": "ftp://x.example", "triggers": ["ticket.redeemed"]}"#,
            "url",
        ),
        (
            r#"{"url": "https://x.example", "triggers": ["ticket.nope"]}"#,
            "triggers",
        ),
        (
            r#"{"url": "https://x.example", "triggers": []}"#,
            "triggers",
        ),
        (
            r#"{"url": "https://x.example", "triggers": ["ticket.redeemed"], "x": 1}"#,
            "x",
        ),
    ] {
        // Bare mocks: the use case must not be reached.
        let reply = send(
            Mocks::new(),
            post_json("/v1/webhooks", Some(ADMIN_KEY), body),
        )
        .await;
        reply.assert_error(400, "invalid_request");
        assert!(reply.message().contains(field), "{body}: {}", reply.text);
    }
}

#[actix_web::test]
async fn listing_shows_no_secret() {
    let mut mocks = Mocks::new();
    mocks
        .webhooks
        .expect_list_webhooks()
        .returning(|_| Ok(vec![webhook()]));
    let reply = send(mocks, get("/v1/webhooks", ADMIN_KEY)).await;
    assert_eq!(reply.status.as_u16(), 200);
    let listed = &reply.body["webhooks"][0];
    assert_eq!(listed["id"], HOOK);
    assert!(listed.get("secret").is_none());
}

#[actix_web::test]
async fn deliveries_are_listed_with_their_state_and_paging() {
    let mut mocks = Mocks::new();
    mocks
        .webhooks
        .expect_list_deliveries()
        .withf(|_, hook, page| hook.as_str() == HOOK && page.count() == 5 && page.offset() == 5)
        .returning(|_, _, _| {
            Ok(Page {
                items: vec![Delivery {
                    id: DeliveryId::parse(DELIVERY).unwrap(),
                    webhook_id: WebhookId::parse(HOOK).unwrap(),
                    event_id: "evt_x".to_owned(),
                    event_type: "ticket.redeemed".to_owned(),
                    state: DeliveryState::Failed,
                    attempts: 9,
                    last_status: Some(503),
                    last_error: Some("the receiver answered 503".to_owned()),
                    next_attempt_at: None,
                    delivered_at: None,
                    created_at: at_millis(START_MS),
                }],
                total: 6,
            })
        });
    let reply = send(
        mocks,
        get(
            &format!("/v1/webhooks/{HOOK}/deliveries?count=5&offset=5"),
            ADMIN_KEY,
        ),
    )
    .await;
    assert_eq!(reply.status.as_u16(), 200, "{}", reply.text);
    let delivery = &reply.body["deliveries"][0];
    assert_eq!(delivery["state"], "failed");
    assert_eq!(delivery["lastStatus"], 503);
    assert_eq!(delivery["nextAttemptAt"], serde_json::Value::Null);
    assert_eq!(
        (reply.body["start"].as_u64(), reply.body["end"].as_u64()),
        (Some(5), Some(6))
    );
    assert_eq!(reply.body["total"], 6);
}

#[actix_web::test]
async fn retry_answers_202_and_unknown_ids_404() {
    let mut mocks = Mocks::new();
    mocks
        .webhooks
        .expect_retry_delivery()
        .withf(|_, hook, delivery| hook.as_str() == HOOK && delivery.as_str() == DELIVERY)
        .returning(|_, _, _| Ok(()));
    let reply = send(
        mocks,
        post_json(
            &format!("/v1/webhooks/{HOOK}/deliveries/{DELIVERY}/retry"),
            Some(ADMIN_KEY),
            "",
        ),
    )
    .await;
    assert_eq!(reply.status.as_u16(), 202, "{}", reply.text);

    // Malformed ids never reach the use case; unknown ones answer the store's 404.
    let reply = send(
        Mocks::new(),
        post_json(
            &format!("/v1/webhooks/{HOOK}/deliveries/dlv_nope/retry"),
            Some(ADMIN_KEY),
            "",
        ),
    )
    .await;
    reply.assert_error(404, "not_found");
    let mut mocks = Mocks::new();
    mocks
        .webhooks
        .expect_delete_webhook()
        .returning(|_, _| Err(AppError::NotFound));
    let reply = send(mocks, delete(&format!("/v1/webhooks/{HOOK}"), ADMIN_KEY)).await;
    reply.assert_error(404, "not_found");
}

#[actix_web::test]
async fn non_admins_are_forbidden() {
    let mut mocks = Mocks::new();
    mocks
        .webhooks
        .expect_list_webhooks()
        .returning(|_| Err(AppError::Forbidden));
    let reply = send(mocks, get("/v1/webhooks", ISSUER_KEY)).await;
    reply.assert_error(403, "forbidden");
    let reply = send(Mocks::new(), get("/v1/webhooks", "tsk_unknown")).await;
    reply.assert_error(401, "unauthorized");
}
