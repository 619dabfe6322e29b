use actix_web::test::TestRequest;
use tessera_app::model::{ApiKey, Tenant};
use tessera_app::usecases::{CreatedKey, CreatedTenant};
use tessera_app::AppError;
use tessera_domain::{ApiKeyId, ApiKeySecret, Label, Role, TenantName};
use tessera_http::{created_tenant_json, HttpSettings};

use crate::support::*;

fn api_key(role: Role) -> ApiKey {
    ApiKey {
        id: ApiKeyId::parse("key_44444444444444441111").unwrap(),
        tenant_id: tenant(),
        name: Label::try_from("ci".to_owned()).unwrap(),
        role,
        created_at: at_millis(START_MS),
    }
}

fn created_tenant() -> CreatedTenant {
    CreatedTenant {
        tenant: Tenant {
            id: tenant(),
            name: TenantName::try_from("Acme".to_owned()).unwrap(),
            created_at: at_millis(START_MS),
        },
        admin_key: CreatedKey {
            key: api_key(Role::Admin),
            secret: ApiKeySecret::generate(&tessera_domain::TenantId::generate()),
        },
    }
}

fn with_operator(mut mocks: Mocks) -> Mocks {
    mocks.settings = HttpSettings {
        operator_token: Some(tessera_domain::OperatorToken::new("op-secret")),
        ..HttpSettings::default()
    };
    mocks
}

#[actix_web::test]
async fn tenant_creation_needs_the_operator_token() {
    let created = created_tenant();
    let secret = created.admin_key.secret.expose_secret().to_owned();
    let mut mocks = with_operator(Mocks::bare());
    let answer = created.clone();
    mocks
        .access
        .expect_create_tenant()
        .withf(|name| name.as_str() == "Acme")
        .times(1)
        .returning(move |_| Ok(answer.clone()));
    let reply = send(
        mocks,
        post_json("/v1/tenants", Some("op-secret"), r#"{"name":"Acme"}"#),
    )
    .await;
    assert_eq!(reply.status, 201, "{}", reply.text);
    assert_eq!(
        reply.body,
        serde_json::json!({
            "tenant": {"id": "ten_11111111111111111111", "name": "Acme", "createdAt": "2020-11-02T23:55:51.043Z"},
            "apiKey": {"id": "key_44444444444444441111", "name": "ci", "role": "admin", "key": secret, "createdAt": "2020-11-02T23:55:51.043Z"},
        })
    );
    assert_eq!(
        reply.body,
        created_tenant_json(&created),
        "CLI prints the same"
    );
}

#[actix_web::test]
async fn tenant_creation_is_404_when_no_operator_token_is_set() {
    let mut mocks = Mocks::bare();
    mocks.access.expect_create_tenant().times(0);
    let reply = send(
        mocks,
        post_json("/v1/tenants", Some("anything"), r#"{"name":"Acme"}"#),
    )
    .await;
    reply.assert_error(404, "not_found");
}

#[actix_web::test]
async fn tenant_creation_refuses_a_wrong_or_missing_operator_token() {
    for key in [Some("op-secreT"), Some("op-secret-longer"), None] {
        let mut mocks = with_operator(Mocks::bare());
        mocks.access.expect_create_tenant().times(0);
        let reply = send(mocks, post_json("/v1/tenants", key, r#"{"name":"Acme"}"#)).await;
        reply.assert_error(401, "unauthorized");
    }
}

#[actix_web::test]
async fn tenant_creation_validates_the_name() {
    let mut mocks = with_operator(Mocks::bare());
    mocks.access.expect_create_tenant().times(0);
    let reply = send(
        mocks,
        post_json("/v1/tenants", Some("op-secret"), r#"{"name":" "}"#),
    )
    .await;
    reply.assert_error(400, "invalid_request");
    assert!(reply.message().starts_with("name:"), "{}", reply.message());
}

#[actix_web::test]
async fn api_keys_are_created_with_their_secret_once() {
    let mut mocks = Mocks::new();
    mocks
        .access
        .expect_create_api_key()
        .withf(|caller, name, role| {
            caller.role == Role::Admin && name.as_str() == "ci" && *role == Role::Issuer
        })
        .times(1)
        .returning(|_, _, _| {
            Ok(CreatedKey {
                key: api_key(Role::Issuer),
                secret: ApiKeySecret::generate(&tessera_domain::TenantId::generate()),
            })
        });
    let reply = send(
        mocks,
        post_json(
            "/v1/api-keys",
            Some(ADMIN_KEY),
            r#"{"name":"ci","role":"issuer"}"#,
        ),
    )
    .await;
    assert_eq!(reply.status, 201, "{}", reply.text);
    let body = reply.body.as_object().unwrap();
    let mut keys: Vec<_> = body.keys().map(String::as_str).collect();
    keys.sort_unstable();
    assert_eq!(keys, ["createdAt", "id", "key", "name", "role"]);
    assert_eq!(body["role"], "issuer");
    assert!(body["key"].as_str().unwrap().starts_with("tsk_"));
}

#[actix_web::test]
async fn an_unknown_role_is_refused_before_the_use_case() {
    let mut mocks = Mocks::new();
    mocks.access.expect_create_api_key().times(0);
    let reply = send(
        mocks,
        post_json(
            "/v1/api-keys",
            Some(ADMIN_KEY),
            r#"{"name":"ci","role":"root"}"#,
        ),
    )
    .await;
    reply.assert_error(400, "invalid_request");
    assert!(reply.message().starts_with("role:"));
}

#[actix_web::test]
async fn api_keys_are_listed_without_secrets() {
    let mut mocks = Mocks::new();
    mocks
        .access
        .expect_list_api_keys()
        .times(1)
        .returning(|_| Ok(vec![api_key(Role::Admin), api_key(Role::Redeemer)]));
    let reply = send(mocks, get("/v1/api-keys", ADMIN_KEY)).await;
    assert_eq!(reply.status, 200);
    let keys = reply.body["apiKeys"].as_array().unwrap();
    assert_eq!(keys.len(), 2);
    assert!(keys.iter().all(|k| k.get("key").is_none()));
    assert_eq!(keys[1]["role"], "redeemer");
    assert_eq!(keys[0]["createdAt"], "2020-11-02T23:55:51.043Z");
}

#[actix_web::test]
async fn deleting_a_key_is_204_and_a_malformed_id_is_404() {
    let mut mocks = Mocks::new();
    mocks
        .access
        .expect_delete_api_key()
        .withf(|_, id| id.as_str() == "key_44444444444444441111")
        .times(1)
        .returning(|_, _| Ok(()));
    let reply = send(
        mocks,
        delete("/v1/api-keys/key_44444444444444441111", ADMIN_KEY),
    )
    .await;
    assert_eq!(reply.status, 204);
    assert!(reply.text.is_empty());

    let mut mocks = Mocks::new();
    mocks.access.expect_delete_api_key().times(0);
    let reply = send(
        mocks,
        delete("/v1/api-keys/prg_44444444444444441111", ADMIN_KEY),
    )
    .await;
    reply.assert_error(404, "not_found");
}

#[actix_web::test]
async fn a_missing_key_is_401_without_asking_anyone() {
    let mut mocks = Mocks::bare();
    mocks.access.expect_authenticate().times(0);
    mocks.access.expect_list_api_keys().times(0);
    let reply = send(mocks, TestRequest::get().uri("/v1/api-keys")).await;
    reply.assert_error(401, "unauthorized");

    let mut mocks = Mocks::bare();
    mocks.access.expect_authenticate().times(0);
    let req = TestRequest::get()
        .uri("/v1/api-keys")
        .insert_header(("Authorization", "Basic dXNlcjpwYXNz"));
    send(mocks, req).await.assert_error(401, "unauthorized");
}

#[actix_web::test]
async fn an_unknown_key_is_401() {
    let mut mocks = Mocks::new();
    mocks.access.expect_list_api_keys().times(0);
    let reply = send(mocks, get("/v1/api-keys", "tsk_unknown")).await;
    reply.assert_error(401, "unauthorized");
}

#[actix_web::test]
async fn a_role_refusal_is_403() {
    let mut mocks = Mocks::new();
    mocks
        .access
        .expect_list_api_keys()
        .withf(|caller| caller.role == Role::Issuer)
        .returning(|_| Err(AppError::Forbidden));
    let reply = send(mocks, get("/v1/api-keys", ISSUER_KEY)).await;
    reply.assert_error(403, "forbidden");
}

#[actix_web::test]
async fn an_unauthenticated_caller_gets_401_even_with_a_bad_body() {
    let mut mocks = Mocks::new();
    mocks.access.expect_create_api_key().times(0);
    let reply = send(
        mocks,
        post_json("/v1/api-keys", Some("tsk_unknown"), "{nope"),
    )
    .await;
    reply.assert_error(401, "unauthorized");
}
