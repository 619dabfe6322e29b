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
