//! The pages people see, over real HTTP against the real binary: link pages never
//! consume, the button redeems within the ticket's limit, email-bound links ask
//! for the email, the code form takes humane codes as people type them, page
//! failures are throttled like API failures, and `replace: true` leaves one live
//! link per subject.

use serde_json::{json, Value};
use tessera_e2e::{program_body, Client, Server, TestDatabase};

const FAILURE: &str = "This code or link cannot be redeemed. Check what you typed and try again.";

/// One page answer: status, the headers pages must carry, and the body.
struct Page {
    status: u16,
    headers: Vec<(String, String)>,
    body: String,
}

impl Page {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(key, _)| key.eq_ignore_ascii_case(name))
            .map(|(_, value)| value.as_str())
    }

    #[track_caller]
    fn assert_secure(&self) {
        assert_eq!(self.header("cache-control"), Some("no-store"));
        assert_eq!(self.header("referrer-policy"), Some("no-referrer"));
        assert_eq!(self.header("x-content-type-options"), Some("nosniff"));
        let csp = self.header("content-security-policy").unwrap_or_default();
        assert!(csp.contains("frame-ancestors 'none'"), "{csp}");
        assert!(csp.contains("default-src 'none'"), "{csp}");
    }
}

fn page(method: &str, url: &str, form: Option<&str>) -> Page {
    let agent = ureq::AgentBuilder::new().redirects(0).build();
    let request = agent.request(method, url);
    let response = match form {
        Some(form) => request
            .set("Content-Type", "application/x-www-form-urlencoded")
            .send_string(form),
        None => request.call(),
    };
    let response = match response {
        Ok(response) | Err(ureq::Error::Status(_, response)) => response,
        Err(error) => panic!("{method} {url}: {error}"),
    };
    let status = response.status();
    let headers = response
        .headers_names()
        .into_iter()
        .map(|name| {
            let value = response.header(&name).unwrap_or_default().to_owned();
            (name, value)
        })
        .collect();
    let body = response.into_string().unwrap_or_default();
    Page {
        status,
        headers,
        body,
    }
}

fn encode(value: &str) -> String {
    value
        .bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

struct Setup {
    server: Server,
    admin: Client,
}

fn setup(extra_env: &[(&str, &str)]) -> (TestDatabase, Setup) {
    let database = TestDatabase::new();
    let server = Server::start_with(&database, extra_env);
    let (_, key) = server.create_tenant("Pages");
    let admin = server.client(Some(&key));
    (database, Setup { server, admin })
}

impl Setup {
    fn program(&self, extra: Value) -> String {
        let mut body =
            json!({"urlPrefix": format!("{}/r/", self.server.base_url), "name": "Spring Gala"});
        for (key, value) in extra.as_object().expect("an object") {
            body[key] = value.clone();
        }
        let (status, program) = self.admin.post("/v1/programs", program_body(body));
        assert_eq!(status, 201, "{program}");
        program["id"].as_str().expect("an id").to_owned()
    }

    fn issue(&self, program: &str, body: Value) -> Value {
        let (status, issued) = self
            .admin
            .post(&format!("/v1/programs/{program}/tickets"), body);
        assert_eq!(status, 201, "{issued}");
        issued
    }

    fn ticket(&self, issued: &Value) -> Value {
        let (status, ticket) = self.admin.get(&format!(
            "/v1/tickets/{}",
            issued["ticketId"].as_str().expect("a ticket id")
        ));
        assert_eq!(status, 200, "{ticket}");
        ticket
    }
}

#[test]
fn a_link_page_never_consumes_and_its_button_redeems_up_to_the_limit() {
    let (_db, s) = setup(&[]);
    let program = s.program(json!({"maxRedemptions": 2}));
    let issued = s.issue(&program, json!({"payload": {"seat": "A1"}}));
    let link = issued["link"].as_str().unwrap().to_owned();
    assert!(
        link.starts_with(&format!("{}/r/", s.server.base_url)),
        "{link}"
    );

    // Prefetches: GETs, HEADs and the QR code, many times over.
    for _ in 0..3 {
        let shown = page("GET", &link, None);
        assert_eq!(shown.status, 200, "{}", shown.body);
        shown.assert_secure();
        assert!(shown.body.contains("Spring Gala"));
        assert!(
            shown.body.contains(r#"<dd id="remaining">2</dd>"#),
            "{}",
            shown.body
        );
        let head = page("HEAD", &link, None);
        assert_eq!(head.status, 200);
        assert!(head.body.is_empty());
        let qr = page("GET", &format!("{link}/qr.svg"), None);
        assert_eq!(qr.status, 200);
        assert_eq!(qr.header("content-type"), Some("image/svg+xml"));
        assert!(qr.body.contains("<svg"));
    }
    let ticket = s.ticket(&issued);
    assert_eq!(ticket["redemptions"], 0, "nothing was consumed: {ticket}");
    assert_eq!(ticket["remaining"], 2);

    let first = page("POST", &link, Some(""));
    assert_eq!(first.status, 200, "{}", first.body);
    first.assert_secure();
    assert!(first.body.contains("Redeemed"));
    assert!(first.body.contains(r#"<dd id="remaining">1</dd>"#));
    assert!(first.body.contains("seat"));
    let second = page("POST", &link, Some(""));
    assert_eq!(second.status, 200);
    assert!(second.body.contains(r#"<dd id="remaining">0</dd>"#));
    let third = page("POST", &link, Some(""));
    assert_eq!(third.status, 404, "beyond the limit");
    third.assert_secure();
    assert!(third.body.contains(FAILURE));
    assert_eq!(s.ticket(&issued)["redemptions"], 2);

    // Used up: the page itself is gone now.
    let gone = page("GET", &link, None);
    assert_eq!(gone.status, 404);
    gone.assert_secure();
    assert!(gone.body.contains("Link not valid"));
    assert!(
        !s.server.logs().contains(link.rsplit('/').next().unwrap()),
        "the link token never reaches the log"
    );
}

#[test]
fn an_email_bound_link_asks_for_the_email_and_checks_it() {
    let (_db, s) = setup(&[]);
    let program = s.program(json!({}));
    let issued = s.issue(&program, json!({"email": "Ann@Example.com"}));
    let link = issued["link"].as_str().unwrap().to_owned();
    let shown = page("GET", &link, None);
    assert!(
        shown.body.contains(r#"<label for="email">"#),
        "{}",
        shown.body
    );

    let without = page("POST", &link, Some("email="));
    assert_eq!(without.status, 404);
    assert!(without.body.contains(FAILURE));
    let wrong = page("POST", &link, Some("email=bob%40example.com"));
    assert_eq!(wrong.status, 404);
    assert_eq!(wrong.body, without.body, "one message, whatever the reason");
    let right = page("POST", &link, Some("email=ANN%40example.com"));
    assert_eq!(right.status, 200, "{}", right.body);
    assert_eq!(s.ticket(&issued)["redemptions"], 1);
}

#[test]
fn unknown_revoked_and_malformed_links_get_a_404_page() {
    let (_db, s) = setup(&[]);
    let program = s.program(json!({}));
    let issued = s.issue(&program, json!({}));
    let link = issued["link"].as_str().unwrap().to_owned();
    let (status, _) = s.admin.send(
        "DELETE",
        &format!(
            "/v1/tickets/{}",
            issued["ticketId"].as_str().expect("a ticket id")
        ),
        None,
    );
    assert_eq!(status, 204);
    let base = &s.server.base_url;
    for url in [
        link.clone(),
        format!("{link}/qr.svg"),
        format!("{base}/r/4vJ9QmZr2nXc8WbT6kYpL3sHd7FgA1eB"),
        format!("{base}/r/not-a-token"),
    ] {
        let answer = page("GET", &url, None);
        assert_eq!(answer.status, 404, "{url}");
        answer.assert_secure();
        assert!(answer.body.contains("<h1"), "an HTML page: {}", answer.body);
    }
    let press = page("POST", &link, Some(""));
    assert_eq!(press.status, 404);
    assert!(press.body.contains(FAILURE));
}

#[test]
fn the_code_form_takes_a_humane_code_typed_with_spaces_dashes_and_any_case() {
    let (_db, s) = setup(&[]);
    let program = s.program(json!({"alphabet": "humane", "ticketLength": 8}));
    let code = s.issue(&program, json!({}))["code"]
        .as_str()
        .unwrap()
        .to_owned();
    let form_url = format!("{}/redeem?programId={program}", s.server.base_url);
    let form = page("GET", &form_url, None);
    assert_eq!(form.status, 200);
    form.assert_secure();
    assert!(form.body.contains(r#"<label for="code">"#));

    let typed = format!("{} {}", &code[..4], &code[4..])
        .to_lowercase()
        .replacen(' ', " - ", 1);
    let post = |code: &str| {
        page(
            "POST",
            &format!("{}/redeem", s.server.base_url),
            Some(&format!("programId={program}&code={}&email=", encode(code))),
        )
    };
    let wrong = post("ZZZZ-ZZZZ");
    assert_eq!(wrong.status, 404);
    assert!(wrong.body.contains(FAILURE));
    assert!(wrong.body.contains(r#"<input id="code""#), "the form again");
    let redeemed = post(&typed);
    assert_eq!(redeemed.status, 200, "{typed}: {}", redeemed.body);
    assert!(redeemed.body.contains("Redeemed"));
    assert!(redeemed.body.contains("Spring Gala"));
}

#[test]
fn page_failures_count_towards_the_failed_redemption_throttle() {
    tessera_e2e::within_one_throttle_minute(std::time::Duration::from_secs(15));
    let (_db, s) = setup(&[("TESSERA_REDEEM_FAILURES_PER_MINUTE", "3")]);
    let program = s.program(json!({}));
    let unknown = format!("{}/r/4vJ9QmZr2nXc8WbT6kYpL3sHd7FgA1eB", s.server.base_url);
    let form = format!("{}/redeem", s.server.base_url);
    assert_eq!(page("POST", &unknown, Some("")).status, 404);
    assert_eq!(
        page(
            "POST",
            &form,
            Some(&format!("programId={program}&code=nope12"))
        )
        .status,
        404
    );
    assert_eq!(page("POST", &unknown, Some("")).status, 404);
    let refused = page("POST", &unknown, Some(""));
    assert_eq!(refused.status, 429, "{}", refused.body);
    refused.assert_secure();
    assert!(refused.header("retry-after").is_some());
    // The same budget as the API's: the API refuses this client too.
    let api = s.server.client(None).post_with(
        "/v1/redeem",
        &[],
        &json!({"programId": program, "code": "abc123"}),
    );
    assert_eq!(api.status, 429);
    // Viewing is not a redemption attempt: pages still show.
    let issued = s.issue(&program, json!({}));
    assert_eq!(
        page("GET", issued["link"].as_str().unwrap(), None).status,
        200
    );
}

#[test]
fn replace_revokes_the_subjects_live_link_and_issues_a_new_one() {
    let (_db, s) = setup(&[]);
    let program = s.program(json!({"oneActivePerSubject": true}));
    let first = s.issue(&program, json!({"subject": "user-7"}));
    let (status, refused) = s.admin.post(
        &format!("/v1/programs/{program}/tickets"),
        json!({"subject": "user-7"}),
    );
    assert_eq!(status, 409);
    assert_eq!(refused["error"]["code"], "subject_has_active_ticket");
    let second = s.issue(&program, json!({"subject": "user-7", "replace": true}));
    assert_eq!(s.ticket(&first)["state"], "revoked");
    assert_eq!(s.ticket(&second)["state"], "active");
    assert_eq!(
        page("GET", first["link"].as_str().unwrap(), None).status,
        404
    );
    assert_eq!(
        page("GET", second["link"].as_str().unwrap(), None).status,
        200
    );
    // Concurrent re-sends still leave exactly one live ticket.
    let base = s.admin.clone();
    let path = format!("/v1/programs/{program}/tickets");
    let statuses = tessera_e2e::concurrently(8, move |_| {
        base.post(&path, json!({"subject": "user-7", "replace": true}))
            .0
    });
    assert!(statuses.iter().all(|status| *status == 201), "{statuses:?}");
    let (_, list) = s
        .admin
        .get(&format!("/v1/programs/{program}/tickets?count=100"));
    let active = list["tickets"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|ticket| ticket["state"] == "active")
        .count();
    assert_eq!(active, 1, "{list}");
    let (status, bad) = s.admin.post(
        &format!("/v1/programs/{program}/tickets"),
        json!({"subject": "user-7", "replace": "yes"}),
    );
    assert_eq!(status, 400, "{bad}");
}

#[test]
fn pages_leave_no_link_token_or_code_in_the_debug_log_or_the_database() {
    let (database, s) = setup(&[("RUST_LOG", "debug")]);
    let program = s.program(json!({"maxRedemptions": 1}));
    let mut secrets = Vec::new();
    for _ in 0..3 {
        let issued = s.issue(&program, json!({"email": "ann@example.com"}));
        let link = issued["link"].as_str().expect("a link").to_owned();
        page("GET", &link, None);
        page("HEAD", &link, None);
        page("GET", &format!("{link}/qr.svg"), None);
        assert_eq!(
            page("POST", &link, Some("email=wrong%40example.com")).status,
            404
        );
        assert_eq!(
            page("POST", &link, Some("email=ann%40example.com")).status,
            200
        );
        assert_eq!(
            page("POST", &link, Some("email=ann%40example.com")).status,
            404
        );
        secrets.push(link.rsplit('/').next().expect("a token").to_owned());
    }
    let code = s.issue(&program, json!({}))["code"]
        .as_str()
        .expect("a code")
        .to_owned();
    let form = format!("{}/redeem", s.server.base_url);
    let body = format!("programId={program}&code={code}");
    assert_eq!(page("POST", &form, Some(&body)).status, 200);
    assert_eq!(page("POST", &form, Some(&body)).status, 404);
    secrets.push(code);

    let dump = std::process::Command::new("pg_dump")
        .args(["--no-owner", "--data-only", database.url()])
        .output()
        .expect("pg_dump runs");
    assert!(dump.status.success());
    let dump = String::from_utf8_lossy(&dump.stdout);
    assert!(
        dump.contains(&program),
        "the dump has the data (sanity check)"
    );
    let logs = s.server.logs();
    assert!(logs.contains("DEBUG"), "debug logging was on");
    for secret in &secrets {
        assert!(!dump.contains(secret.as_str()), "a secret in the dump");
        assert!(!logs.contains(secret.as_str()), "a secret in the log");
    }
}

#[test]
fn a_five_use_link_pressed_48_times_over_two_processes_redeems_five_times() {
    let database = TestDatabase::new();
    let unthrottled = [("TESSERA_REDEEM_FAILURES_PER_MINUTE", "100000")];
    let first = Server::start_with(&database, &unthrottled);
    let second = Server::start_with(&database, &unthrottled);
    let (_, key) = first.create_tenant("Race");
    let admin = first.client(Some(&key));
    let (status, program) = admin.post(
        "/v1/programs",
        program_body(json!({"maxRedemptions": 5, "urlPrefix": format!("{}/r/", first.base_url)})),
    );
    assert_eq!(status, 201, "{program}");
    let program_id = program["id"].as_str().expect("an id").to_owned();
    let (status, issued) = admin.post(&format!("/v1/programs/{program_id}/tickets"), json!({}));
    assert_eq!(status, 201, "{issued}");
    let token = issued["link"]
        .as_str()
        .and_then(|link| link.rsplit('/').next())
        .expect("a link token")
        .to_owned();
    let bases = [first.base_url.clone(), second.base_url.clone()];
    let statuses = tessera_e2e::concurrently(48, move |index| {
        page("POST", &format!("{}/r/{token}", bases[index % 2]), Some("")).status
    });
    assert_eq!(
        statuses.iter().filter(|status| **status == 200).count(),
        5,
        "{statuses:?}"
    );
    assert_eq!(
        statuses.iter().filter(|status| **status == 404).count(),
        43,
        "{statuses:?}"
    );
    let (_, ticket) = admin.get(&format!(
        "/v1/tickets/{}",
        issued["ticketId"].as_str().expect("a ticket id")
    ));
    assert_eq!(ticket["redemptions"], 5, "{ticket}");
}
