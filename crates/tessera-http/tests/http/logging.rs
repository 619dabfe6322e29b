use std::io::Write;
use std::sync::{Arc, Mutex};

use tessera_app::AppError;

use crate::support::*;

#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Captured {
    fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().unwrap()).into_owned()
    }
}

#[actix_web::test]
async fn requests_are_logged_by_route_pattern_without_secrets() {
    let captured = Captured::default();
    let writer = captured.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_writer(move || writer.clone())
        .with_ansi(false)
        .finish();
    let _guard = tracing::subscriber::set_default(subscriber);

    let mut mocks = Mocks::new();
    mocks
        .tickets
        .expect_get_ticket()
        .returning(|_, _| Ok(ticket_view()));
    send(mocks, get(&format!("/v1/tickets/{TICKET_ID}"), ADMIN_KEY)).await;

    let mut mocks = Mocks::new();
    mocks
        .redeem
        .expect_redeem()
        .returning(|_, _| Err(AppError::InvalidCode));
    let body = format!(r#"{{"code":"SECRETCODE","programId":"{PROGRAM_ID}"}}"#);
    send(mocks, post_json("/v1/redeem", None, &body)).await;

    let logs = captured.text();
    assert!(logs.contains("/v1/tickets/{ticket_id}"), "{logs}");
    assert!(logs.contains("status=200"), "{logs}");
    assert!(
        logs.contains("route=\"/v1/redeem\"") && logs.contains("status=404"),
        "{logs}"
    );
    assert!(
        logs.contains("method=GET") && logs.contains("latency_ms"),
        "{logs}"
    );
    for secret in [TICKET_ID, ADMIN_KEY, "SECRETCODE"] {
        assert!(!logs.contains(secret), "{secret} leaked into: {logs}");
    }
}

/// The types, not care, keep secrets out of logs: a redemption request, an issue
/// result and a redemption, logged whole with `{:?}` and `%` at `debug`, show no
/// code, signed code, link, link token, access token or key.
#[test]
fn secrets_logged_at_debug_are_redacted_by_their_types() {
    use tessera_app::model::{AccessToken, Grant};
    use tessera_app::usecases::{IssuedTicket, RedeemRequest, Redemption};
    use tessera_domain::{
        Alphabet, ApiKeySecret, Code, LinkToken, PresentedApiKey, PresentedCode, SignedCode,
        TicketLength, TicketLink, UrlPrefix,
    };

    let captured = Captured::default();
    let writer = captured.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_writer(move || writer.clone())
        .with_ansi(false)
        .with_max_level(tracing::Level::DEBUG)
        .finish();
    let _guard = tracing::subscriber::set_default(subscriber);

    let code = Code::generate(Alphabet::Alphanumeric, TicketLength::try_from(12).unwrap());
    let token = LinkToken::generate(&tessera_domain::TenantId::generate());
    let prefix = UrlPrefix::try_from("https://t.example/r/".to_owned()).unwrap();
    let signed = SignedCode::join(&code, "c2lnbmF0dXJlLXBhcnQ");
    let issued = IssuedTicket {
        ticket_id: ticket_id(),
        program_id: program_id(),
        code: code.clone(),
        email: None,
        subject: None,
        max_redemptions: 1,
        link: Some(TicketLink::join(&prefix, &token)),
        signed_code: Some(signed.clone()),
    };
    let request = RedeemRequest {
        program_id: Some(program_id()),
        tenant_id: None,
        code: PresentedCode::new(signed.expose_secret()),
        email: None,
        redeemer_id: None,
        client: None,
    };
    let redemption = Redemption {
        grant: Grant {
            tenant_id: tenant(),
            program_id: program_id(),
            ticket_id: ticket_id(),
            redemption_id: tessera_domain::RedemptionId::generate(),
            remaining: 0,
            object_id: "iq__3ax1".to_owned(),
            group_addresses: vec![],
            payload: None,
        },
        access_token: AccessToken::new("eyJhbGciOiJFZERTQSJ9.eyJzdWIiOiJ4In0.c2ln".to_owned(), 60),
    };
    let key = ApiKeySecret::generate(&tessera_domain::TenantId::generate());
    let presented = PresentedApiKey::new(key.expose_secret());
    tracing::debug!(?request, ?issued, ?redemption, "whole values");
    tracing::debug!(code = %code, link = %token, signed = %signed, key = %key, presented = %presented, "fields");

    let logs = captured.text();
    assert!(
        logs.contains("whole values") && logs.contains("fields"),
        "{logs}"
    );
    for secret in [
        code.expose_secret(),
        token.expose_secret(),
        "c2lnbmF0dXJlLXBhcnQ",
        "eyJhbGciOiJFZERTQSJ9",
        key.expose_secret(),
    ] {
        assert!(!logs.contains(secret), "a secret leaked into: {logs}");
    }
    assert!(logs.contains("<redacted>"), "{logs}");
}
