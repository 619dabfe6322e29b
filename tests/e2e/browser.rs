//! The pages in a real browser: Debian's Chromium, headless, driven through
//! chromedriver (WebDriver, with fantoccini) against the real binary. Opens a
//! link page, checks nothing was consumed, presses the button, sees the success
//! page, opens the link again and sees it used; fills the code form. Every page
//! is screenshotted (phone-sized window) into `target/e2e-screenshots/`.
//!
//! Chromium and chromedriver must be installed (`.ci/run` installs the Debian
//! packages `chromium` and `chromium-driver` when missing); without them this
//! test fails, saying so.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use fantoccini::{Client, ClientBuilder, Locator};
use serde_json::{json, Value};
use tessera_e2e::{program_body, Server, TestDatabase};

/// Where the screenshots go: beside cargo's other outputs, kept after the run.
fn screenshot_dir() -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR"))
        .parent()
        .expect("CARGO_TARGET_TMPDIR is target/tmp")
        .join("e2e-screenshots");
    std::fs::create_dir_all(&dir).expect("the screenshot folder");
    dir
}

/// `name` found on PATH (or the path in `override_var`), else a failure that says
/// what to install.
fn tool(override_var: &str, names: &[&str]) -> PathBuf {
    if let Some(path) = std::env::var_os(override_var) {
        return PathBuf::from(path);
    }
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .flat_map(|dir| names.iter().map(move |name| dir.join(name)))
        .find(|candidate| candidate.is_file())
        .unwrap_or_else(|| {
            panic!(
                "{} not found on PATH (or set {override_var}): the browser test needs Debian's \
                 Chromium and chromedriver — `apt-get install -y chromium chromium-driver` \
                 (.ci/run does this when they are missing)",
                names.join(" / ")
            )
        })
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .map(|addr| addr.port())
        .expect("a free port")
}

/// A chromedriver on a free loopback port, killed on drop.
struct Driver {
    child: Child,
    url: String,
    profile: PathBuf,
}

impl Driver {
    fn start() -> Self {
        let binary = tool("TESSERA_CHROMEDRIVER", &["chromedriver"]);
        let port = free_port();
        let child = Command::new(&binary)
            .arg(format!("--port={port}"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|error| panic!("{} does not start: {error}", binary.display()));
        let url = format!("http://127.0.0.1:{port}");
        let deadline = Instant::now() + Duration::from_secs(30);
        while ureq::get(&format!("{url}/status")).call().is_err() {
            assert!(Instant::now() < deadline, "chromedriver did not answer");
            std::thread::sleep(Duration::from_millis(100));
        }
        let profile =
            std::env::temp_dir().join(format!("tessera-chromium-{}-{port}", std::process::id()));
        Self {
            child,
            url,
            profile,
        }
    }

    async fn browser(&self) -> Client {
        let chromium = tool("TESSERA_CHROMIUM", &["chromium", "chromium-browser"]);
        let capabilities = json!({
            "browserName": "chrome",
            "goog:chromeOptions": {
                "binary": chromium,
                "args": [
                    "--headless", "--no-sandbox", "--disable-gpu",
                    "--disable-background-networking", "--disable-component-update",
                    "--disable-sync", "--no-first-run", "--disable-quic",
                    "--window-size=412,915",
                    format!("--user-data-dir={}", self.profile.display()),
                ],
            },
        });
        let Value::Object(capabilities) = capabilities else {
            unreachable!("a JSON object")
        };
        ClientBuilder::new(hyper_util::client::legacy::connect::HttpConnector::new())
            .capabilities(capabilities)
            .connect(&self.url)
            .await
            .expect("a Chromium session")
    }
}

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.profile);
    }
}

async fn screenshot(browser: &Client, name: &str) {
    let png = browser.screenshot().await.expect("a screenshot");
    assert!(png.starts_with(b"\x89PNG"), "a PNG");
    let path = screenshot_dir().join(name);
    std::fs::write(&path, png).expect("the screenshot is written");
    println!("screenshot: {}", path.display());
}

async fn heading(browser: &Client) -> String {
    browser
        .find(Locator::Css("h1"))
        .await
        .expect("an h1")
        .text()
        .await
        .expect("its text")
}

fn ticket(admin: &tessera_e2e::Client, issued: &Value) -> Value {
    let (status, ticket) = admin.get(&format!(
        "/v1/tickets/{}",
        issued["ticketId"].as_str().expect("ticketId")
    ));
    assert_eq!(status, 200, "{ticket}");
    ticket
}

#[tokio::test(flavor = "current_thread")]
async fn a_person_uses_a_link_and_the_code_form_in_chromium() {
    let driver = Driver::start();
    let database = TestDatabase::new();
    let server = Server::start(&database);
    let (_, key) = server.create_tenant("Browser");
    let admin = server.client(Some(&key));
    let (status, program) = admin.post(
        "/v1/programs",
        program_body(json!({
            "name": "Spring Gala",
            "maxRedemptions": 1,
            "alphabet": "humane",
            "ticketLength": 8,
            "urlPrefix": format!("{}/r/", server.base_url),
        })),
    );
    assert_eq!(status, 201, "{program}");
    let program_id = program["id"].as_str().expect("id").to_owned();
    let tickets = format!("/v1/programs/{program_id}/tickets");
    let (status, issued) = admin.post(&tickets, json!({"payload": {"seat": "A1"}}));
    assert_eq!(status, 201, "{issued}");
    let link = issued["link"].as_str().expect("a link").to_owned();

    let browser = driver.browser().await;

    // The link page: what it grants, one button, nothing consumed.
    browser.goto(&link).await.expect("the link opens");
    assert_eq!(heading(&browser).await, "Your ticket");
    let remaining = browser
        .find(Locator::Id("remaining"))
        .await
        .expect("uses left");
    assert_eq!(remaining.text().await.expect("text"), "1");
    screenshot(&browser, "1-link-page.png").await;
    assert_eq!(
        ticket(&admin, &issued)["redemptions"],
        0,
        "opening consumed nothing"
    );

    // The button redeems and shows what was granted.
    browser
        .find(Locator::Id("redeem"))
        .await
        .expect("the button")
        .click()
        .await
        .expect("a click");
    browser
        .wait()
        .for_element(Locator::Id("outcome"))
        .await
        .expect("the result page");
    assert_eq!(heading(&browser).await, "Redeemed");
    let source = browser.source().await.expect("the page");
    assert!(
        source.contains("Spring Gala") && source.contains("seat"),
        "{source}"
    );
    screenshot(&browser, "2-link-redeemed.png").await;
    assert_eq!(ticket(&admin, &issued)["redemptions"], 1);

    // Opening the link again: it is used up now.
    browser.goto(&link).await.expect("the link opens again");
    assert_eq!(heading(&browser).await, "Link not valid");
    screenshot(&browser, "3-link-used.png").await;
    assert_eq!(ticket(&admin, &issued)["redemptions"], 1, "still one use");

    // The code form, with the code typed as people type it.
    let (status, typed) = admin.post(&tickets, json!({}));
    assert_eq!(status, 201, "{typed}");
    let code = typed["code"].as_str().expect("a code");
    let as_typed = format!("{}-{}", &code[..4], &code[4..]).to_lowercase();
    browser
        .goto(&format!(
            "{}/redeem?programId={program_id}",
            server.base_url
        ))
        .await
        .expect("the form opens");
    assert_eq!(heading(&browser).await, "Enter your code");
    let field = browser
        .find(Locator::Id("code"))
        .await
        .expect("the code field");
    field.send_keys("wrong-code").await.expect("typing");
    screenshot(&browser, "4-code-form.png").await;
    browser
        .find(Locator::Id("redeem"))
        .await
        .expect("the button")
        .click()
        .await
        .expect("a click");
    let message = browser
        .wait()
        .for_element(Locator::Id("message"))
        .await
        .expect("the failure message");
    assert!(message
        .text()
        .await
        .expect("text")
        .contains("cannot be redeemed"));
    screenshot(&browser, "5-code-refused.png").await;
    let field = browser
        .find(Locator::Id("code"))
        .await
        .expect("the form again");
    field.send_keys(&as_typed).await.expect("typing");
    browser
        .find(Locator::Id("redeem"))
        .await
        .expect("the button")
        .click()
        .await
        .expect("a click");
    browser
        .wait()
        .for_element(Locator::Id("outcome"))
        .await
        .expect("the result page");
    assert_eq!(heading(&browser).await, "Redeemed");
    screenshot(&browser, "6-code-redeemed.png").await;
    assert_eq!(ticket(&admin, &typed)["redemptions"], 1);

    // The QR code renders as an image in the browser too.
    let (status, fresh) = admin.post(&tickets, json!({}));
    assert_eq!(status, 201, "{fresh}");
    browser
        .goto(&format!(
            "{}/qr.svg",
            fresh["link"].as_str().expect("a link")
        ))
        .await
        .expect("the QR code opens");
    screenshot(&browser, "7-link-qr.png").await;
    assert_eq!(ticket(&admin, &fresh)["redemptions"], 0);

    browser.close().await.expect("the session closes");
}
