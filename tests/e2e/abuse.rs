//! Issue 16: the throttle cannot be turned against the people it protects. Each
//! test replays one attack from the issue against the real binary and shows it
//! fails. Attackers send from their own loopback addresses (127.0.0.2–.99 all
//! reach the server on Linux), or through a trusted proxy for IPv6 forms.

use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use socket2::{Domain, Protocol, Socket, Type};
use tessera_e2e::{program_body, Client, Server, TestDatabase};

/// What the slow lane evaluates per second per program (docs/security.md).
const SLOW_LANE_PER_SECOND: u64 = 3; // tessera_app::slow_lane::PER_SECOND

/// One answer over a raw connection: status and `Retry-After`.
#[derive(Debug)]
struct Raw {
    status: u16,
    retry_after: Option<u32>,
}

/// POSTs `body` to `/v1/redeem` from the loopback address `127.0.0.<from>`.
fn redeem_from(server: &Server, from: u8, headers: &[(&str, &str)], body: &Value) -> Raw {
    let port: u16 = server
        .base_url
        .rsplit(':')
        .next()
        .and_then(|port| port.parse().ok())
        .expect("port");
    let socket = Socket::new(Domain::IPV4, Type::STREAM, Some(Protocol::TCP)).expect("socket");
    let source = SocketAddr::from((Ipv4Addr::new(127, 0, 0, from), 0));
    socket
        .bind(&source.into())
        .expect("bind the source address");
    let target = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
    socket.connect(&target.into()).expect("connect");
    let mut stream: TcpStream = socket.into();
    stream
        .set_read_timeout(Some(Duration::from_secs(30)))
        .expect("timeout");
    let body = body.to_string();
    let mut request = format!(
        "POST /v1/redeem HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\
         Content-Type: application/json\r\nContent-Length: {}\r\n",
        body.len()
    );
    for (name, value) in headers {
        request.push_str(&format!("{name}: {value}\r\n"));
    }
    request.push_str("\r\n");
    request.push_str(&body);
    stream.write_all(request.as_bytes()).expect("send");
    let mut answer = String::new();
    stream.read_to_string(&mut answer).expect("answer");
    let status = answer
        .split(' ')
        .nth(1)
        .and_then(|status| status.parse().ok())
        .unwrap_or_else(|| panic!("no status in {answer:?}"));
    let retry_after = answer.lines().find_map(|line| {
        let (name, value) = line.split_once(':')?;
        name.eq_ignore_ascii_case("retry-after")
            .then(|| value.trim().parse().ok())
            .flatten()
    });
    Raw {
        status,
        retry_after,
    }
}

/// A tenant, its admin client and a program with `count` issued codes.
fn program_with_codes(server: &Server, count: usize) -> (Client, String, Vec<String>) {
    let (_, admin_key) = server.create_tenant("Desk");
    let admin = server.client(Some(&admin_key));
    let (status, program) = admin.post("/v1/programs", program_body(json!({})));
    assert_eq!(status, 201, "{program}");
    let program_id = program["id"].as_str().expect("id").to_owned();
    let codes = (0..count)
        .map(|_| {
            let (status, issued) = admin.post(
                &format!("/v1/programs/{program_id}/tickets"),
                json!({"signed": true}),
            );
            assert_eq!(status, 201, "{issued}");
            issued["code"].as_str().expect("code").to_owned()
        })
        .collect();
    (admin, program_id, codes)
}

/// Every kind of attempt that cannot find a code of the program: a forged
/// signature, impossible lengths and characters, a program that does not exist,
/// the program named under another tenant.
fn junk(program_id: &str, n: usize) -> Value {
    match n % 5 {
        0 => json!({"programId": program_id, "code": "zzzzzz.Zm9yZ2VkLXNpZ25hdHVyZQ"}),
        1 => json!({"programId": program_id, "code": "abc"}),
        2 => json!({"programId": program_id, "code": "ab!d#f"}),
        3 => json!({"programId": "prg_11111111111111111111", "code": "zzzzzz"}),
        _ => {
            json!({"programId": program_id, "tenantId": "ten_11111111111111111111", "code": "zzzzzz"})
        }
    }
}

#[test]
fn junk_from_eleven_addresses_spends_only_their_own_budgets() {
    tessera_e2e::within_one_throttle_minute(std::time::Duration::from_secs(15));
    let database = TestDatabase::new();
    let server = Server::start(&database);
    let (_, program_id, codes) = program_with_codes(&server, 1);

    // 11 addresses × 20 junk attempts (the issue froze the program with these).
    for attacker in 2..=12u8 {
        for n in 0..20 {
            let answer = redeem_from(&server, attacker, &[], &junk(&program_id, n));
            assert_eq!(answer.status, 404, "attacker {attacker}, attempt {n}");
        }
        let spent = redeem_from(&server, attacker, &[], &junk(&program_id, 0));
        assert_eq!(spent.status, 429, "the attacker's own budget is spent");
        assert!(spent.retry_after.is_some_and(|s| (1..=60).contains(&s)));
    }

    // A valid code from a fresh address is evaluated at once, not held back.
    let started = Instant::now();
    let answer = redeem_from(
        &server,
        50,
        &[],
        &json!({"programId": program_id, "code": codes[0]}),
    );
    assert_eq!(answer.status, 200);
    assert!(
        started.elapsed() < Duration::from_secs(1),
        "no slow lane for a program whose budget nobody spent: {:?}",
        started.elapsed()
    );
}

#[test]
fn past_the_program_budget_a_valid_code_gets_through_and_guessing_stays_bounded() {
    tessera_e2e::within_one_throttle_minute(std::time::Duration::from_secs(30));
    let database = TestDatabase::new();
    let server = Arc::new(Server::start(&database));
    let (admin, program_id, codes) = program_with_codes(&server, 2);

    // Eleven attacking addresses keep guessing codes of the right shape: real
    // guesses, so they spend the program's budget of 10 × 20 and go on.
    let stop = Arc::new(AtomicBool::new(false));
    let evaluated = Arc::new(AtomicU32::new(0));
    let started = Instant::now();
    let attackers: Vec<_> = (2..=12u8)
        .map(|attacker| {
            let (server, stop, evaluated) = (server.clone(), stop.clone(), evaluated.clone());
            let body = json!({"programId": program_id, "code": format!("zz{attacker:02}zz")});
            std::thread::spawn(move || {
                while !stop.load(Ordering::Relaxed) {
                    match redeem_from(&server, attacker, &[], &body).status {
                        404 => {
                            evaluated.fetch_add(1, Ordering::Relaxed);
                        }
                        429 => std::thread::sleep(Duration::from_millis(20)),
                        other => panic!("attacker {attacker}: unexpected {other}"),
                    }
                }
            })
        })
        .collect();
    while evaluated.load(Ordering::Relaxed) < 200 && started.elapsed() < Duration::from_secs(30) {
        std::thread::sleep(Duration::from_millis(10));
    }
    assert!(evaluated.load(Ordering::Relaxed) >= 200, "budget spent");

    // A fresh client with a valid code succeeds within 5 s (retrying on 429).
    let body = json!({"programId": program_id, "code": codes[0]});
    let asked = Instant::now();
    let mut answer = redeem_from(&server, 60, &[], &body);
    while answer.status == 429 && asked.elapsed() < Duration::from_secs(5) {
        std::thread::sleep(Duration::from_millis(100));
        answer = redeem_from(&server, 60, &[], &body);
    }
    let waited = asked.elapsed();
    assert_eq!(
        answer.status, 200,
        "after {waited:?}: {:?}",
        answer.retry_after
    );
    assert!(waited < Duration::from_secs(5), "{waited:?}");
    // A key of the program's tenant is never held back by the public budget.
    let (status, _) = admin.post(
        "/v1/redeem",
        json!({"programId": program_id, "code": codes[1]}),
    );
    assert_eq!(status, 200);

    std::thread::sleep(Duration::from_secs(3));
    stop.store(true, Ordering::Relaxed);
    for attacker in attackers {
        attacker.join().expect("attacker");
    }
    // docs/security.md: per minute window at most 2 × 200 − 1 through the budget
    // rules, plus the slow lane's rate.
    let seconds = started.elapsed().as_secs() + 1;
    let windows = seconds / 60 + 2;
    let bound = 399 * windows + SLOW_LANE_PER_SECOND * seconds;
    let evaluated = u64::from(evaluated.load(Ordering::Relaxed));
    eprintln!("valid code through in {waited:?}; {evaluated} guesses evaluated in {seconds} s");
    assert!(
        evaluated <= bound,
        "{evaluated} guesses evaluated, bound {bound}"
    );
}

/// A server behind the trusted proxy 127.0.0.1, with a budget of `budget`.
fn behind_proxy(database: &TestDatabase, budget: &str) -> Server {
    Server::start_with(
        database,
        &[
            ("TESSERA_TRUSTED_PROXIES", "127.0.0.1"),
            ("TESSERA_REDEEM_FAILURES_PER_MINUTE", budget),
        ],
    )
}

fn via_proxy(server: &Server, forwarded: Option<&str>, body: &Value) -> u16 {
    let headers: Vec<(&str, &str)> = forwarded
        .map(|value| ("X-Forwarded-For", value))
        .into_iter()
        .collect();
    server
        .client(None)
        .post_with("/v1/redeem", &headers, body)
        .status
}

#[test]
fn an_ipv6_host_gets_one_budget_per_64_not_per_address() {
    tessera_e2e::within_one_throttle_minute(std::time::Duration::from_secs(15));
    let database = TestDatabase::new();
    let server = behind_proxy(&database, "5");
    let (_, program_id, _) = program_with_codes(&server, 1);
    let guess = json!({"programId": program_id, "code": "zzzzzz"});
    let statuses: Vec<u16> = (1..=6)
        .map(|n| via_proxy(&server, Some(&format!("2001:db8:1:2::{n:x}")), &guess))
        .collect();
    assert_eq!(
        statuses,
        [404, 404, 404, 404, 404, 429],
        "one /64, one budget"
    );
    assert_eq!(
        via_proxy(&server, Some("2001:db8:1:3::1"), &guess),
        404,
        "the next /64 is someone else"
    );
}

#[test]
fn a_malformed_forwarded_header_buys_no_budget_and_spends_no_one_else_s() {
    tessera_e2e::within_one_throttle_minute(std::time::Duration::from_secs(15));
    let database = TestDatabase::new();
    let server = behind_proxy(&database, "3");
    let (_, program_id, _) = program_with_codes(&server, 1);
    let guess = json!({"programId": program_id, "code": "zzzzzz"});

    // Garbage in front of an address: the address is charged, not the proxy.
    let garbage_first: Vec<u16> = (0..4)
        .map(|_| via_proxy(&server, Some("garbage, 2001:db8::1"), &guess))
        .collect();
    assert_eq!(garbage_first, [404, 404, 404, 429]);
    assert_eq!(
        via_proxy(&server, Some("2001:db8::99"), &guess),
        429,
        "same /64"
    );

    // Nothing parseable: one shared unattributable bucket, never the proxy's.
    let unattributable: Vec<u16> = ["garbage", " ", "nope, , x"]
        .iter()
        .chain(&["unknown"])
        .map(|header| via_proxy(&server, Some(header), &guess))
        .collect();
    assert_eq!(unattributable, [404, 404, 404, 429]);
    // Honest requests without the header fall back to the proxy's own budget,
    // which none of the above touched.
    assert_eq!(via_proxy(&server, None, &guess), 404);
    assert_eq!(via_proxy(&server, Some("198.51.100.7"), &guess), 404);
}

#[test]
fn five_wrong_emails_lock_for_a_while_and_doubled_then_missing_emails_never_lock() {
    let database = TestDatabase::new();
    let server = Server::start_with(&database, &[("TESSERA_EMAIL_LOCK_SECONDS", "2")]);
    let (_, admin_key) = server.create_tenant("Locks");
    let admin = server.client(Some(&admin_key));
    let (_, program) = admin.post("/v1/programs", program_body(json!({"maxRedemptions": 10})));
    let program_id = program["id"].as_str().unwrap().to_owned();
    let (status, issued) = admin.post(
        &format!("/v1/programs/{program_id}/tickets"),
        json!({"email": "ann@example.com"}),
    );
    assert_eq!(status, 201, "{issued}");
    let ticket_path = format!("/v1/tickets/{}", issued["ticketId"].as_str().unwrap());
    let code = issued["code"].as_str().unwrap();
    let public = server.client(None);
    let attempt = |email: Option<&str>| {
        let mut body = json!({"programId": program_id, "code": code});
        if let Some(email) = email {
            body["email"] = json!(email);
        }
        public.post("/v1/redeem", body).0
    };

    // Whoever knows the code but not the email: no email never counts.
    for _ in 0..8 {
        assert_eq!(attempt(None), 404);
    }
    let (_, ticket) = admin.get(&ticket_path);
    assert_eq!(
        (ticket["state"].as_str(), ticket["failedAttempts"].as_i64()),
        (Some("active"), Some(0))
    );

    // Five wrong emails lock it, visibly, for TESSERA_EMAIL_LOCK_SECONDS.
    let lock = || {
        for _ in 0..5 {
            assert_eq!(attempt(Some("eve@example.com")), 404);
        }
        let (_, ticket) = admin.get(&ticket_path);
        assert_eq!(ticket["state"], "locked", "{ticket}");
        ticket["lockedUntil"]
            .as_str()
            .expect("lockedUntil")
            .to_owned()
    };
    let first_until = lock();
    // The lock began before `locked`: 2 s after it, the lock is over.
    let locked = Instant::now();
    assert_eq!(
        attempt(Some("ann@example.com")),
        404,
        "locked: even the owner waits"
    );
    std::thread::sleep(Duration::from_millis(2100).saturating_sub(locked.elapsed()));
    let (_, ticket) = admin.get(&ticket_path);
    assert_eq!(ticket["state"], "active", "the lock ended: {ticket}");

    // The next lock lasts twice as long.
    // The lock begins after `before` and before `relocked`.
    let before = Instant::now();
    let second_until = lock();
    let relocked = Instant::now();
    assert!(second_until > first_until);
    std::thread::sleep(Duration::from_millis(2500).saturating_sub(before.elapsed()));
    assert_eq!(
        admin.get(&ticket_path).1["state"],
        "locked",
        "still locked after 2.5 s"
    );
    std::thread::sleep(Duration::from_millis(4100).saturating_sub(relocked.elapsed()));
    assert_eq!(
        attempt(Some("Ann@Example.com")),
        200,
        "after 4 s the owner redeems"
    );
}
