use actix_web::test::TestRequest;
use tessera_app::AppError;

use crate::support::*;

#[actix_web::test]
async fn healthz_is_ok_without_touching_anything() {
    let reply = send(Mocks::bare(), TestRequest::get().uri("/healthz")).await;
    assert_eq!(reply.status, 200);
    assert_eq!(reply.body, serde_json::json!({"status": "ok"}));
}

#[actix_web::test]
async fn readyz_follows_the_database() {
    let mut mocks = Mocks::bare();
    mocks.health.expect_ready().times(1).returning(|| Ok(()));
    let reply = send(mocks, TestRequest::get().uri("/readyz")).await;
    assert_eq!(reply.status, 200);
    assert_eq!(reply.body["status"], "ok");

    let mut mocks = Mocks::bare();
    mocks
        .health
        .expect_ready()
        .times(1)
        .returning(|| Err(AppError::Unavailable));
    let reply = send(mocks, TestRequest::get().uri("/readyz")).await;
    reply.assert_error(503, "unavailable");
    assert_eq!(reply.header("retry-after"), Some("5"));
}

#[actix_web::test]
async fn openapi_documents_every_path_the_errors_and_bearer_auth() {
    let document = tessera_http::openapi_document();
    let mut mocks = Mocks::bare();
    mocks.settings.openapi_json = std::sync::Arc::from(document.as_str());
    let reply = send(mocks, TestRequest::get().uri("/openapi.json")).await;
    assert_eq!(reply.status, 200);
    assert_eq!(reply.text, document, "served as rendered at startup");
    let doc = &reply.body;
    assert!(doc["openapi"].as_str().unwrap().starts_with("3."));
    let paths = doc["paths"].as_object().unwrap();
    for (path, methods) in [
        ("/healthz", &["get"][..]),
        ("/readyz", &["get"]),
        ("/openapi.json", &["get"]),
        ("/v1/tenants", &["post"]),
        ("/v1/api-keys", &["get", "post"]),
        ("/v1/api-keys/{key_id}", &["delete"]),
        ("/v1/programs", &["get", "post"]),
        ("/v1/programs/{program_id}", &["get", "patch", "delete"]),
        ("/v1/programs/{program_id}/suspend", &["post"]),
        ("/v1/programs/{program_id}/tickets", &["get", "post"]),
        ("/v1/programs/{program_id}/tickets/batch", &["post"]),
        ("/.well-known/jwks.json", &["get"]),
        ("/v1/tickets", &["get", "post"]),
        ("/v1/tickets/use", &["post"]),
        ("/v1/tickets/delete", &["post"]),
        ("/v1/tickets/{ticket_id}", &["get", "patch", "delete"]),
        ("/v1/redeem", &["post"]),
    ] {
        for method in methods {
            assert!(
                paths.get(path).and_then(|p| p.get(*method)).is_some(),
                "{method} {path} missing from the document"
            );
        }
    }
    let batch = &paths["/v1/programs/{program_id}/tickets/batch"]["post"]["responses"];
    assert!(batch["200"]["content"]["text/csv"].is_object(), "{batch}");
    assert!(batch["200"]["headers"]["Content-Disposition"].is_object());
    for status in ["400", "401", "403", "404", "409", "413"] {
        assert!(batch[status].is_object(), "batch {status}");
    }
    let redeem = &paths["/v1/redeem"]["post"]["responses"];
    assert!(
        redeem["429"]["headers"]["Retry-After"].is_object(),
        "{redeem}"
    );
    let jwks = &paths["/.well-known/jwks.json"]["get"]["responses"]["200"];
    assert!(jwks["content"]["application/json"].is_object(), "{jwks}");
    let schemas = &doc["components"]["schemas"];
    for field in ["accessToken", "tokenType", "expiresIn"] {
        assert!(
            schemas["RedeemResponse"]["properties"][field].is_object(),
            "RedeemResponse.{field}"
        );
    }
    for field in ["count", "maxRedemptions", "payload"] {
        assert!(
            schemas["IssueBatchRequest"]["properties"][field].is_object(),
            "IssueBatchRequest.{field}"
        );
    }
    assert!(schemas["IssuedTicketResponse"]["properties"]["signedCode"].is_object());
    let schemes = &doc["components"]["securitySchemes"];
    assert_eq!(schemes["apiKey"]["scheme"], "bearer");
    assert!(doc["components"]["schemas"]["ErrorBody"].is_object());
    assert!(
        doc["components"]["schemas"]["ProgramResponse"]["properties"]["oneActivePerSubject"]
            .is_object()
    );
}

#[actix_web::test]
async fn unknown_routes_are_json_404s() {
    let reply = send(Mocks::bare(), TestRequest::get().uri("/v1/nope")).await;
    reply.assert_error(404, "not_found");
    let reply = send(Mocks::bare(), TestRequest::get().uri("/")).await;
    reply.assert_error(404, "not_found");
}

#[actix_web::test]
async fn a_known_route_with_another_method_is_a_json_405() {
    let reply = send(Mocks::bare(), TestRequest::put().uri("/v1/programs")).await;
    reply.assert_error(405, "method_not_allowed");
    let reply = send(Mocks::bare(), TestRequest::get().uri("/v1/redeem")).await;
    reply.assert_error(405, "method_not_allowed");
}

#[actix_web::test]
async fn the_jwks_is_served_verbatim_and_cacheable() {
    let jwks = r#"{"keys":[{"kty":"OKP","crv":"Ed25519","kid":"k1","x":"11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo","alg":"EdDSA","use":"sig"}]}"#;
    let mut mocks = Mocks::bare();
    mocks.settings.jwks_json = std::sync::Arc::from(jwks);
    let reply = send(mocks, TestRequest::get().uri("/.well-known/jwks.json")).await;
    assert_eq!(reply.status, 200);
    assert_eq!(reply.text, jwks);
    assert_eq!(reply.header("content-type"), Some("application/json"));
    assert_eq!(reply.header("cache-control"), Some("public, max-age=300"));

    let reply = send(
        Mocks::bare(),
        TestRequest::post().uri("/.well-known/jwks.json"),
    )
    .await;
    reply.assert_error(405, "method_not_allowed");
}
