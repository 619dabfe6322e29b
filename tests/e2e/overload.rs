//! Overload sheds instead of collapsing: past the in-flight bounds (overall and per
//! client address) a request is refused with `503` and `Retry-After` at once, health
//! probes still answer, and a client that stops in the middle of its body is cut off
//! by the body timeout instead of holding its place.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use serde_json::json;
use tessera_e2e::{program_body, Server, TestDatabase};

/// A POST whose headers promise more body than is ever sent, from `client` (as a
/// trusted proxy says). It holds an admission place until the body timeout.
fn stalled_request(server: &Server, client: &str) -> TcpStream {
    let address = server.base_url.trim_start_matches("http://");
    let mut stream = TcpStream::connect(address).expect("connects");
    write!(
        stream,
        "POST /v1/redeem HTTP/1.1\r\nHost: {address}\r\nContent-Type: application/json\r\n\
         Content-Length: 1000\r\nX-Forwarded-For: {client}\r\n\r\n{{\"code\":"
    )
    .expect("sends the head and a little body");
    stream
}

fn status_from(client: &str, server: &Server, path: &str) -> (u16, Option<String>, Duration) {
    let started = Instant::now();
    let answer = server
        .client(None)
        .exchange("GET", path, &[("X-Forwarded-For", client)], b"");
    (answer.status, answer.retry_after, started.elapsed())
}

#[test]
fn past_the_in_flight_bounds_requests_are_refused_quickly_and_stalled_bodies_time_out() {
    let database = TestDatabase::new();
    let server = Server::start_with(
        &database,
        &[
            ("TESSERA_TRUSTED_PROXIES", "127.0.0.1"),
            ("TESSERA_MAX_IN_FLIGHT", "3"),
            ("TESSERA_MAX_IN_FLIGHT_PER_CLIENT", "2"),
        ],
    );
    let (_, admin_key) = server.create_tenant("Crowded");
    let (_, program) = server
        .client(Some(&admin_key))
        .post("/v1/programs", program_body(json!({})));
    let program_path = format!("/v1/programs/{}", program["id"].as_str().unwrap());

    // Two stalled bodies from one client: that client's bound.
    let stalled: Vec<_> = (0..2)
        .map(|_| stalled_request(&server, "10.0.0.1"))
        .collect();
    std::thread::sleep(Duration::from_millis(300));
    let (status, retry_after, took) = status_from("10.0.0.1", &server, &program_path);
    assert_eq!(status, 503, "the same client is over its bound");
    assert_eq!(retry_after.as_deref(), Some("1"));
    assert!(
        took < Duration::from_secs(2),
        "refused at once, not queued: {took:?}"
    );
    // Another client still gets in (401: no key, but it was admitted and answered).
    assert_eq!(status_from("10.0.0.2", &server, &program_path).0, 401);

    // A third stalled body, from elsewhere: the overall bound.
    let third = stalled_request(&server, "10.0.0.3");
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(status_from("10.0.0.4", &server, &program_path).0, 503);
    // Probes are never shed.
    assert_eq!(status_from("10.0.0.4", &server, "/healthz").0, 200);
    assert_eq!(status_from("10.0.0.4", &server, "/readyz").0, 200);

    // The body timeout ends each stalled request with a 408 and frees its place.
    for mut stream in stalled.into_iter().chain([third]) {
        stream
            .set_read_timeout(Some(Duration::from_secs(20)))
            .unwrap();
        let mut answer = Vec::new();
        let _ = stream.read_to_end(&mut answer);
        let answer = String::from_utf8_lossy(&answer);
        assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
    }
    assert_eq!(status_from("10.0.0.1", &server, &program_path).0, 401);
    assert!(!server.logs().contains("ERROR"), "{}", server.logs());
}
