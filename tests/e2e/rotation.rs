//! Master-key rotation under load: while public redemptions run without pause,
//! `tessera keys rotate` re-wraps the root key under a new master key and the
//! replicas are replaced one by one by servers holding only the new key. No
//! redemption fails for it; afterwards the old key opens nothing.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::json;
use tessera_e2e::{program_body, run_cli, Server, TestDatabase, MASTER_KEY};

const NEW_MASTER_KEY: &str = "bmV3LXRlc3NlcmEtbWFzdGVyLWtleS0zMi1ieXRlcyE="; // 32 bytes

#[test]
fn rotating_the_master_key_under_load_fails_no_redemption() {
    let database = TestDatabase::new();
    let old = Server::start(&database);
    let (_, admin_key) = old.create_tenant("Rotating");
    let admin = old.client(Some(&admin_key));
    let (_, program) = admin.post(
        "/v1/programs",
        program_body(json!({"maxRedemptions": 1, "urlPrefix": "https://t.example/r/"})),
    );
    let program_id = program["id"].as_str().unwrap().to_owned();
    let batch = admin.exchange(
        "POST",
        &format!("/v1/programs/{program_id}/tickets/batch"),
        &[("Content-Type", "application/json")],
        br#"{"count": 3000}"#,
    );
    assert_eq!(batch.status, 200, "{}", batch.text);
    let (ticket_ids, codes): (Vec<String>, Vec<String>) = batch
        .text
        .lines()
        .skip(1)
        .map(|row| {
            let mut fields = row.split(',');
            let id = fields.next().unwrap().to_owned();
            (id, fields.next().unwrap().to_owned())
        })
        .unzip();
    let (_, signed) = admin.post(
        &format!("/v1/programs/{program_id}/tickets"),
        json!({"signed": true}),
    );
    let signed_code = signed["signedCode"].as_str().unwrap().to_owned();

    // Redeemers, round-robin over whichever servers are up, one code each.
    let servers = Arc::new(Mutex::new(vec![old.base_url.clone()]));
    let next = Arc::new(AtomicUsize::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let codes = Arc::new(codes);
    let ticket_ids = Arc::new(ticket_ids);
    let redeemers: Vec<_> = (0..4)
        .map(|_| {
            let (servers, next, stop, codes, ticket_ids) = (
                servers.clone(),
                next.clone(),
                stop.clone(),
                codes.clone(),
                ticket_ids.clone(),
            );
            let (program_id, admin_key) = (program_id.clone(), admin_key.clone());
            std::thread::spawn(move || {
                let agent = ureq::AgentBuilder::new()
                    .timeout(Duration::from_secs(10))
                    .build();
                let mut failures = Vec::new();
                let mut done = 0usize;
                while !stop.load(Ordering::Relaxed) {
                    let n = next.fetch_add(1, Ordering::Relaxed);
                    let Some(code) = codes.get(n) else { break };
                    let base = {
                        let up = servers.lock().unwrap();
                        up[n % up.len()].clone()
                    };
                    let answer = agent
                        .post(&format!("{base}/v1/redeem"))
                        .send_json(json!({"programId": program_id, "code": code}));
                    match answer {
                        Ok(response) if response.status() == 200 => done += 1,
                        // A server being replaced refused the connection, or was
                        // killed with the request in flight: retry the same code
                        // elsewhere. Killed after its batch committed, it had
                        // redeemed the code (the answer, not the use, was lost):
                        // then the retry is refused and the ticket shows exactly
                        // that one redemption.
                        Err(ureq::Error::Transport(_)) => {
                            let up = servers.lock().unwrap().clone();
                            let retried = up.iter().any(|other| {
                                agent
                                    .post(&format!("{other}/v1/redeem"))
                                    .send_json(json!({"programId": program_id, "code": code}))
                                    .is_ok_and(|r| r.status() == 200)
                            });
                            let committed_before_the_kill = || {
                                agent
                                    .get(&format!("{}/v1/tickets/{}", up[0], ticket_ids[n]))
                                    .set("Authorization", &format!("Bearer {admin_key}"))
                                    .call()
                                    .ok()
                                    .and_then(|r| r.into_json::<serde_json::Value>().ok())
                                    .is_some_and(|ticket| ticket["redemptions"] == 1)
                            };
                            if retried || committed_before_the_kill() {
                                done += 1
                            } else {
                                failures.push(format!("{code}: transport"))
                            }
                        }
                        Ok(response) => failures.push(format!("status {}", response.status())),
                        Err(ureq::Error::Status(status, response)) => failures.push(format!(
                            "status {status}: {}",
                            response.into_string().unwrap_or_default()
                        )),
                    }
                }
                (done, failures)
            })
        })
        .collect();
    std::thread::sleep(Duration::from_millis(500));

    // 1. A second replica with both keys, then the rotation itself.
    let bridging = Server::start_with(
        &database,
        &[
            ("TESSERA_MASTER_KEY", NEW_MASTER_KEY),
            ("TESSERA_MASTER_KEY_PREVIOUS", MASTER_KEY),
        ],
    );
    assert!(
        bridging.logs().contains("tessera keys rotate"),
        "it says what to do next"
    );
    servers.lock().unwrap().push(bridging.base_url.clone());
    let rotated = run_cli(
        &database,
        &["keys", "rotate"],
        &[
            ("TESSERA_MASTER_KEY", NEW_MASTER_KEY),
            ("TESSERA_MASTER_KEY_PREVIOUS", MASTER_KEY),
        ],
    );
    assert!(
        rotated.status.success(),
        "{}",
        String::from_utf8_lossy(&rotated.stderr)
    );
    let report: serde_json::Value = serde_json::from_slice(&rotated.stdout).unwrap();
    assert_eq!(report["rotated"], true, "{report}");
    std::thread::sleep(Duration::from_millis(500));

    // 2. A replica with the new key only; the old replica leaves.
    let fresh = Server::start_with(&database, &[("TESSERA_MASTER_KEY", NEW_MASTER_KEY)]);
    servers.lock().unwrap().push(fresh.base_url.clone());
    std::thread::sleep(Duration::from_millis(300));
    servers.lock().unwrap().retain(|url| *url != old.base_url);
    std::thread::sleep(Duration::from_millis(300));
    drop(old);
    std::thread::sleep(Duration::from_millis(700));
    stop.store(true, Ordering::Relaxed);

    let mut redeemed = 0;
    for handle in redeemers {
        let (done, failures) = handle.join().unwrap();
        assert!(
            failures.is_empty(),
            "redemptions failed during the rotation: {failures:?}"
        );
        redeemed += done;
    }
    assert!(
        redeemed > 50,
        "the load ran throughout: {redeemed} redemptions"
    );

    // Everything issued before the rotation works with the new key alone: codes,
    // the signed code (its signing key derives from the same root), the admin key.
    let public = fresh.client(None);
    let (status, body) = public.post(
        "/v1/redeem",
        json!({"programId": program_id, "code": signed_code}),
    );
    assert_eq!(status, 200, "{body}");
    assert_eq!(fresh.client(Some(&admin_key)).get("/v1/programs").0, 200);
    let (status, body) = public.post(
        "/v1/redeem",
        json!({"programId": program_id, "code": codes[codes.len() - 1]}),
    );
    assert_eq!(
        status, 200,
        "an untouched code redeems after the rotation: {body}"
    );

    // A second rotation is a no-op; the old key alone no longer starts a server.
    let again = run_cli(
        &database,
        &["keys", "rotate"],
        &[("TESSERA_MASTER_KEY", NEW_MASTER_KEY)],
    );
    assert!(again.status.success());
    let report: serde_json::Value = serde_json::from_slice(&again.stdout).unwrap();
    assert_eq!(report["rotated"], false);
    let stale = run_cli(&database, &["serve"], &[]);
    assert_eq!(
        stale.status.code(),
        Some(1),
        "the old master key is retired"
    );
    assert!(String::from_utf8_lossy(&stale.stderr).contains("root key"));
    drop(bridging);
}
