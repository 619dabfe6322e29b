//! Issue 3's security suite: brute force against throttling, offline-verifiable
//! access tokens and signed codes, tampering.

use serde_json::{json, Value};
use tessera_e2e::jwt::{verify_signed_code, verify_token};
use tessera_e2e::{concurrently, program_body, Server, TestDatabase};

/// The minute (of the epoch) now, to tell whether a run crossed into a new
/// throttle window (which legitimately grants a fresh budget).
fn minute_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("after 1970")
        .as_secs()
        / 60
}

fn batch(admin: &tessera_e2e::Client, program_id: &str, count: u32) -> Vec<String> {
    let answer = admin.post_with(
        &format!("/v1/programs/{program_id}/tickets/batch"),
        &[],
        &json!({ "count": count }),
    );
    assert_eq!(answer.status, 200, "{}", answer.text);
    assert!(
        answer.content_type.starts_with("text/csv"),
        "{}",
        answer.content_type
    );
    let mut lines = answer.text.lines();
    assert_eq!(lines.next(), Some("ticketId,code"));
    let codes: Vec<String> = lines
        .map(|line| line.split_once(',').expect("ticketId,code").1.to_owned())
        .collect();
    assert_eq!(codes.len(), count as usize);
    codes
}

#[test]
fn ten_thousand_guesses_from_one_address_are_throttled_after_twenty_and_find_nothing() {
    tessera_e2e::within_one_throttle_minute(std::time::Duration::from_secs(30));
    let database = TestDatabase::new();
    let server = Server::start(&database);
    let (_, admin_key) = server.create_tenant("Brute");
    let admin = server.client(Some(&admin_key));
    let (_, program) = admin.post("/v1/programs", program_body(json!({"maxTickets": 1000})));
    let program_id = program["id"].as_str().unwrap().to_owned();
    let codes = batch(&admin, &program_id, 1000);
    let a_valid_code = codes[0].clone();
    let issued: std::collections::HashSet<String> = codes.into_iter().collect();

    // Random six-character alphanumeric guesses that are not issued codes.
    let alphabet: Vec<char> = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"
        .chars()
        .collect();
    let mut state: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut guesses = Vec::with_capacity(10_000);
    while guesses.len() < 10_000 {
        let guess: String = (0..6)
            .map(|_| {
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                alphabet[(state % 62) as usize]
            })
            .collect();
        if !issued.contains(&guess) {
            guesses.push(guess);
        }
    }
    let guesses = std::sync::Arc::new(guesses);
    let public = server.client(None);
    let program = program_id.clone();
    let first_minute = minute_now();
    let answers = concurrently(8, move |worker| {
        let mut seen = (0u32, 0u32, 0u32, None);
        for guess in guesses.iter().skip(worker).step_by(8) {
            let answer = public.post_with(
                "/v1/redeem",
                &[],
                &json!({"programId": program, "code": guess}),
            );
            match answer.status {
                200 => seen.0 += 1,
                404 => seen.1 += 1,
                429 => {
                    seen.2 += 1;
                    seen.3 = seen.3.or(answer.retry_after.clone());
                    assert_eq!(answer.json()["error"]["code"], "too_many_attempts");
                }
                other => panic!("unexpected {other}: {}", answer.text),
            }
        }
        seen
    });
    let found: u32 = answers.iter().map(|a| a.0).sum();
    let evaluated: u32 = answers.iter().map(|a| a.1).sum();
    let throttled: u32 = answers.iter().map(|a| a.2).sum();
    let windows = (minute_now() - first_minute + 1) as u32;
    assert_eq!(found, 0, "no guess may succeed");
    // The default budget is 20 failures a minute; eight guesses in flight at once
    // may add a few more (never beyond twice the budget) in each minute the run spans.
    assert!(
        (20..=27 * windows).contains(&evaluated),
        "evaluated {evaluated} over {windows} window(s)"
    );
    assert_eq!(evaluated + throttled, 10_000);
    let retry_after: u32 = answers
        .iter()
        .find_map(|a| a.3.clone())
        .expect("Retry-After")
        .parse()
        .expect("seconds");
    assert!((1..=60).contains(&retry_after));

    // Past the budget even a valid code is not evaluated, and an untrusted
    // X-Forwarded-For does not escape the throttle.
    let answer = server.client(None).post_with(
        "/v1/redeem",
        &[("X-Forwarded-For", "198.51.100.7")],
        &json!({"programId": program_id, "code": a_valid_code}),
    );
    assert_eq!(answer.status, 429, "{}", answer.text);
    let (_, tickets) = admin.get(&format!("/v1/programs/{program_id}/tickets?count=1000"));
    let redeemed: i64 = tickets["tickets"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["redemptions"].as_i64().unwrap())
        .sum();
    assert_eq!(redeemed, 0, "no ticket was redeemed");
}

#[test]
fn behind_a_trusted_proxy_each_forwarded_client_has_its_own_budget() {
    tessera_e2e::within_one_throttle_minute(std::time::Duration::from_secs(15));
    let database = TestDatabase::new();
    let server = Server::start_with(
        &database,
        &[
            ("TESSERA_TRUSTED_PROXIES", "127.0.0.1"),
            ("TESSERA_REDEEM_FAILURES_PER_MINUTE", "3"),
        ],
    );
    let (_, admin_key) = server.create_tenant("Proxy");
    let admin = server.client(Some(&admin_key));
    let (_, program) = admin.post("/v1/programs", program_body(json!({})));
    let program_id = program["id"].as_str().unwrap();
    let public = server.client(None);
    let guess = |client: &str| {
        public
            .post_with(
                "/v1/redeem",
                &[("X-Forwarded-For", client)],
                &json!({"programId": program_id, "code": "zzzzzz"}),
            )
            .status
    };
    let first: Vec<u16> = (0..4).map(|_| guess("203.0.113.1")).collect();
    assert_eq!(first, vec![404, 404, 404, 429]);
    assert_eq!(
        guess("203.0.113.2"),
        404,
        "another client behind the proxy is not throttled"
    );
}

fn jwks(server: &Server) -> Value {
    let (status, jwks) = server.client(None).get("/.well-known/jwks.json");
    assert_eq!(status, 200);
    jwks
}

#[test]
fn access_tokens_verify_offline_against_the_jwks_with_the_right_claims() {
    let database = TestDatabase::new();
    let server = Server::start_with(
        &database,
        &[
            ("TESSERA_TOKEN_TTL", "120"),
            ("TESSERA_PUBLIC_URL", "https://tickets.example.com"),
        ],
    );
    let (tenant_id, admin_key) = server.create_tenant("Tokens");
    let admin = server.client(Some(&admin_key));
    let (_, program) = admin.post(
        "/v1/programs",
        program_body(json!({"groupAddresses": ["0xabc", "0xdef"]})),
    );
    let program_id = program["id"].as_str().unwrap();
    let (_, issued) = admin.post(&format!("/v1/programs/{program_id}/tickets"), json!({}));
    let (status, redeemed) = server.client(None).post(
        "/v1/redeem",
        json!({"programId": program_id, "code": issued["code"]}),
    );
    assert_eq!(status, 200, "{redeemed}");
    assert_eq!(redeemed["tokenType"], "Bearer");
    assert_eq!(redeemed["expiresIn"], 120);
    let token = redeemed["accessToken"].as_str().unwrap();

    let keys = jwks(&server);
    let (header, claims) = verify_token(&keys, token).expect("the token verifies against the JWKS");
    assert_eq!(header["alg"], "EdDSA");
    assert!(header["kid"].as_str().is_some_and(|kid| !kid.is_empty()));
    assert_eq!(claims["iss"], "https://tickets.example.com");
    assert_eq!(claims["sub"], issued["ticketId"]);
    assert_eq!(claims["tid"], tenant_id.as_str());
    assert_eq!(claims["pid"], program_id);
    assert_eq!(claims["obj"], "iq__3ax1WuidvcNm8Bd2CGEnqLYScsxL");
    assert_eq!(claims["grp"], json!(["0xabc", "0xdef"]));
    assert_eq!(
        claims["exp"].as_i64().unwrap() - claims["iat"].as_i64().unwrap(),
        120
    );
    assert!(claims["jti"].as_str().is_some_and(|jti| jti.len() >= 16));

    // Tampering with any part breaks verification.
    let parts: Vec<&str> = token.split('.').collect();
    let forged_claims =
        base64_url(&serde_json::to_vec(&json!({"sub": "tkt_someone_else"})).unwrap());
    for forged in [
        format!("{}.{}.{}", parts[0], forged_claims, parts[2]),
        format!("{}.{}.{}", parts[0], parts[1], flip_last(parts[2])),
        format!("{}.{}.", parts[0], parts[1]),
    ] {
        assert!(
            verify_token(&keys, &forged).is_none(),
            "a tampered token is rejected"
        );
    }
}

#[test]
fn signed_codes_verify_offline_redeem_and_tampered_ones_are_refused_without_a_use() {
    let database = TestDatabase::new();
    let server = Server::start(&database);
    let (_, admin_key) = server.create_tenant("Signed");
    let admin = server.client(Some(&admin_key));
    let (_, key) = admin.post("/v1/api-keys", json!({"name": "door", "role": "redeemer"}));
    let redeemer = server.client(Some(key["key"].as_str().unwrap()));
    let (_, program) = admin.post("/v1/programs", program_body(json!({"maxRedemptions": 5})));
    let program_id = program["id"].as_str().unwrap();
    let (status, issued) = admin.post(
        &format!("/v1/programs/{program_id}/tickets"),
        json!({"signed": true}),
    );
    assert_eq!(status, 201, "{issued}");
    let code = issued["code"].as_str().unwrap();
    let signed = issued["signedCode"].as_str().unwrap();
    assert!(signed.starts_with(&format!("{code}.")));

    let keys = jwks(&server);
    assert!(
        verify_signed_code(&keys, program_id, signed),
        "verifiable offline with the JWKS"
    );
    assert!(
        !verify_signed_code(&keys, "prg_11111111111111111111", signed),
        "bound to its program"
    );

    let (_, other) = admin.post(&format!("/v1/programs/{program_id}/tickets"), json!({}));
    let signature = signed.split_once('.').unwrap().1;
    let tampered = [
        format!("{code}.{}", flip_last(signature)),
        format!("{}.{signature}", other["code"].as_str().unwrap()),
        format!("{code}.not-base64!"),
        format!("{code}."),
    ];
    for forged in &tampered {
        let (status, body) = redeemer.post(
            "/v1/redeem",
            json!({"programId": program_id, "code": forged}),
        );
        assert_eq!(
            (status, body["error"]["code"].as_str()),
            (404, Some("invalid_code")),
            "{forged}"
        );
    }
    let ticket_path = |id: &Value| format!("/v1/tickets/{}", id.as_str().unwrap());
    assert_eq!(
        admin.get(&ticket_path(&issued["ticketId"])).1["redemptions"],
        0,
        "no use consumed"
    );
    assert_eq!(
        admin.get(&ticket_path(&other["ticketId"])).1["redemptions"],
        0
    );

    let (status, redeemed) = server.client(None).post(
        "/v1/redeem",
        json!({"programId": program_id, "code": signed}),
    );
    assert_eq!(
        (status, redeemed["remaining"].as_i64()),
        (200, Some(4)),
        "{redeemed}"
    );
    let (status, _) = server
        .client(None)
        .post("/v1/redeem", json!({"programId": program_id, "code": code}));
    assert_eq!(status, 200, "the plain code still works");
}

#[test]
fn concurrent_guessers_cannot_outrun_the_program_budget() {
    tessera_e2e::within_one_throttle_minute(std::time::Duration::from_secs(30));
    let database = TestDatabase::new();
    let server = Server::start_with(
        &database,
        &[
            ("TESSERA_TRUSTED_PROXIES", "127.0.0.1"),
            ("TESSERA_REDEEM_FAILURES_PER_MINUTE", "2"),
        ],
    );
    let (_, admin_key) = server.create_tenant("Distributed");
    let admin = server.client(Some(&admin_key));
    let (_, program) = admin.post("/v1/programs", program_body(json!({})));
    let program_id = program["id"].as_str().unwrap().to_owned();
    let public = server.client(None);
    let first_minute = minute_now();
    let started = std::time::Instant::now();
    // 40 "clients" with a budget of 2 each, but the program allows 20 failures.
    let statuses = concurrently(40, move |client| {
        let forwarded = format!("203.0.113.{client}");
        (0..2)
            .map(|_| {
                public
                    .post_with(
                        "/v1/redeem",
                        &[("X-Forwarded-For", &forwarded)],
                        &json!({"programId": program_id, "code": "zzzzzz"}),
                    )
                    .status
            })
            .collect::<Vec<_>>()
    });
    let windows = (minute_now() - first_minute + 1) as usize;
    // tessera_app::slow_lane::PER_SECOND, with a second of slack at each end.
    let slow_lane = 3 * (started.elapsed().as_secs() as usize + 2);
    let evaluated = statuses.iter().flatten().filter(|s| **s == 404).count();
    // The program's budget is 10 × 2 = 20 failures; with 40 guesses in flight at
    // once at most twice that are evaluated, per minute the run spans; past it
    // the slow lane evaluates 3 a second and its full queue refuses the rest.
    assert!(
        (20..=40 * windows + slow_lane).contains(&evaluated),
        "the program budget stops a spread attack: {evaluated}"
    );
    assert!(statuses.iter().flatten().any(|s| *s == 429));
}

fn base64_url(bytes: &[u8]) -> String {
    use base64::Engine;
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

/// The same string with its last character changed to another valid base64url one.
fn flip_last(encoded: &str) -> String {
    let mut chars: Vec<char> = encoded.chars().collect();
    if let Some(last) = chars.last_mut() {
        *last = if *last == 'A' { 'B' } else { 'A' };
    }
    chars.into_iter().collect()
}
