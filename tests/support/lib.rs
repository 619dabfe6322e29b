//! The end-to-end harness: real `tessera` processes (this package's
//! `tessera-e2e-server` binary) on a fresh PostgreSQL database each, driven over
//! HTTP.

#![allow(clippy::expect_used, clippy::unwrap_used, clippy::panic)]

pub mod jwt;
pub mod receiver;

use std::fs;
use std::io::Read;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use serde_json::{json, Value};
pub use tessera_postgres::testing::TestDatabase;

pub const OPERATOR_TOKEN: &str = "e2e-operator-token-0123456789";
/// A fixed master key (base64 of 32 bytes), so restarted servers hash alike.
pub const MASTER_KEY: &str = "dGVzc2VyYS1lMmUtbWFzdGVyLWtleS0zMi1ieXRlcyE=";

/// The name of this package's binary: the `tessera` program under test.
pub const SERVER_BINARY: &str = "tessera-e2e-server";

/// The server under test: this package's `tessera-e2e-server` binary, which runs
/// `tessera_server::main_entry` (the `tessera` binary's whole program). Cargo
/// builds a package's binaries before its integration tests, so a bare `cargo
/// test` needs no prior build.
pub fn binary() -> PathBuf {
    // Set at run time by recent cargo and by nextest.
    let path = std::env::var_os(format!("CARGO_BIN_EXE_{SERVER_BINARY}"))
        .map(PathBuf::from)
        .unwrap_or_else(binary_beside_tests);
    assert!(
        path.exists(),
        "{} is missing: run the suite with `cargo test -p tessera-e2e`, which builds it",
        path.display()
    );
    path
}

/// Where cargo puts [`SERVER_BINARY`]: next to the `deps` folder the test runs
/// from (target/<profile>/deps/e2e-… → target/<profile>/tessera-e2e-server). The
/// suite checks this against the path cargo gives it at compile time.
pub fn binary_beside_tests() -> PathBuf {
    let test = std::env::current_exe().expect("the test's own path");
    let profile_dir = test
        .parent()
        .and_then(Path::parent)
        .expect("the test runs from target/<profile>/deps");
    profile_dir.join(format!("{SERVER_BINARY}{}", std::env::consts::EXE_SUFFIX))
}

pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .map(|addr| addr.port())
        .expect("a free port on loopback")
}

/// A scratch directory for one server's logs and key file.
fn scratch_dir(label: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!(
        "tessera-e2e-{label}-{}-{}",
        std::process::id(),
        free_port()
    ));
    fs::create_dir_all(&dir).expect("scratch dir");
    dir
}

/// A running `tessera serve`, killed on drop.
#[derive(Debug)]
pub struct Server {
    child: Child,
    pub base_url: String,
    pub log_path: PathBuf,
    pub database_url: String,
}

impl Server {
    pub fn start(database: &TestDatabase) -> Self {
        Self::start_with(database, &[])
    }

    pub fn start_with(database: &TestDatabase, extra_env: &[(&str, &str)]) -> Self {
        let port = free_port();
        let dir = scratch_dir("server");
        let log_path = dir.join("server.log");
        let log = fs::File::create(&log_path).expect("log file");
        let mut command = Command::new(binary());
        command
            .arg("serve")
            .current_dir(&dir)
            .env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .env("DATABASE_URL", database.url())
            .env("TESSERA_BIND", format!("127.0.0.1:{port}"))
            .env("TESSERA_MASTER_KEY", MASTER_KEY)
            .env("TESSERA_OPERATOR_TOKEN", OPERATOR_TOKEN)
            .env("TESSERA_DB_POOL_SIZE", "8")
            .env("RUST_LOG", "info")
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("log handle"))
            .stderr(log);
        for (name, value) in extra_env {
            command.env(name, value);
        }
        let child = command.spawn().expect("tessera starts");
        let server = Self {
            child,
            base_url: format!("http://127.0.0.1:{port}"),
            log_path,
            database_url: database.url().to_owned(),
        };
        server.wait_until_healthy();
        server
    }

    fn wait_until_healthy(&self) {
        let deadline = Instant::now() + Duration::from_secs(60);
        while Instant::now() < deadline {
            if ureq::get(&format!("{}/healthz", self.base_url))
                .timeout(Duration::from_secs(1))
                .call()
                .is_ok()
            {
                return;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        panic!("tessera did not become healthy; its log:\n{}", self.logs());
    }

    pub fn logs(&self) -> String {
        fs::read_to_string(&self.log_path).unwrap_or_default()
    }

    pub fn client(&self, key: Option<&str>) -> Client {
        Client {
            base_url: self.base_url.clone(),
            key: key.map(str::to_owned),
            agent: ureq::AgentBuilder::new()
                .timeout(Duration::from_secs(30))
                .build(),
        }
    }

    /// Creates a tenant over HTTP with the operator token; returns (tenant id, admin key).
    pub fn create_tenant(&self, name: &str) -> (String, String) {
        let (status, body) = self.client(Some(OPERATOR_TOKEN)).send(
            "POST",
            "/v1/tenants",
            Some(json!({ "name": name })),
        );
        assert_eq!(status, 201, "tenant creation failed: {body}");
        (
            body["tenant"]["id"].as_str().unwrap().to_owned(),
            body["apiKey"]["key"].as_str().unwrap().to_owned(),
        )
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// An HTTP client with an optional bearer key; every answer is (status, JSON body).
#[derive(Clone)]
pub struct Client {
    base_url: String,
    key: Option<String>,
    agent: ureq::Agent,
}

// Hand-written: the bearer key is a secret even in a test's panic message.
impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Client")
            .field("base_url", &self.base_url)
            .field("key", &self.key.as_ref().map(|_| "<redacted>"))
            .finish_non_exhaustive()
    }
}

impl Client {
    pub fn send(&self, method: &str, path: &str, body: Option<Value>) -> (u16, Value) {
        match body {
            Some(body) => self.send_raw(
                method,
                path,
                &[("Content-Type", "application/json")],
                body.to_string().as_bytes(),
            ),
            None => self.send_raw(method, path, &[], b""),
        }
    }

    pub fn get(&self, path: &str) -> (u16, Value) {
        self.send("GET", path, None)
    }

    pub fn post(&self, path: &str, body: Value) -> (u16, Value) {
        self.send("POST", path, Some(body))
    }

    /// Sends bytes as they are, so tests can send what no JSON library would.
    pub fn send_raw(
        &self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: &[u8],
    ) -> (u16, Value) {
        let answer = self.exchange(method, path, headers, body);
        (answer.status, answer.json())
    }

    /// POSTs JSON with extra headers and returns the whole answer.
    pub fn post_with(&self, path: &str, headers: &[(&str, &str)], body: &Value) -> Answer {
        let mut all = vec![("Content-Type", "application/json")];
        all.extend_from_slice(headers);
        self.exchange("POST", path, &all, body.to_string().as_bytes())
    }

    /// Sends a request and returns its status, the headers tests look at, and the body.
    pub fn exchange(
        &self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: &[u8],
    ) -> Answer {
        let mut request = self
            .agent
            .request(method, &format!("{}{}", self.base_url, path));
        if let Some(key) = &self.key {
            request = request.set("Authorization", &format!("Bearer {key}"));
        }
        for (name, value) in headers {
            request = request.set(name, value);
        }
        let response = if body.is_empty() && method != "POST" && method != "PATCH" {
            request.call()
        } else {
            request.send_bytes(body)
        };
        let response = match response {
            Ok(response) => response,
            Err(ureq::Error::Status(_, response)) => response,
            Err(error) => panic!("{method} {path}: transport error {error}"),
        };
        let status = response.status();
        let retry_after = response.header("Retry-After").map(str::to_owned);
        let replayed = response.header("Idempotent-Replayed") == Some("true");
        let content_type = response.content_type().to_owned();
        let mut text = String::new();
        response
            .into_reader()
            .take(200 << 20)
            .read_to_string(&mut text)
            .expect("body");
        Answer {
            status,
            retry_after,
            replayed,
            content_type,
            text,
            what: format!("{method} {path}"),
        }
    }
}

/// One HTTP answer.
#[derive(Debug, Clone)]
pub struct Answer {
    pub status: u16,
    pub retry_after: Option<String>,
    /// `Idempotent-Replayed: true` was sent.
    pub replayed: bool,
    pub content_type: String,
    pub text: String,
    what: String,
}

impl Answer {
    /// The body as JSON (`null` when empty); panics on anything else.
    pub fn json(&self) -> Value {
        if self.text.is_empty() {
            return Value::Null;
        }
        serde_json::from_str(&self.text).unwrap_or_else(|_| {
            panic!(
                "{} answered {} with non-JSON: {}",
                self.what, self.status, self.text
            )
        })
    }
}

/// Runs `tessera` with `args` against `database`, returning its output.
pub fn run_cli(database: &TestDatabase, args: &[&str], extra_env: &[(&str, &str)]) -> Output {
    let dir = scratch_dir("cli");
    let mut command = Command::new(binary());
    command
        .args(args)
        .current_dir(&dir)
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("DATABASE_URL", database.url())
        .env("TESSERA_MASTER_KEY", MASTER_KEY)
        .env("RUST_LOG", "info");
    for (name, value) in extra_env {
        command.env(name, value);
    }
    command.output().expect("tessera runs")
}

/// A program valid from an hour ago for a day, with `extra` fields merged in.
pub fn program_body(extra: Value) -> Value {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64;
    let mut body = json!({
        "objectId": "iq__3ax1WuidvcNm8Bd2CGEnqLYScsxL",
        "groupAddresses": ["0x96bb65d1fdbb9fd710ffc3bb30bc4d0f82889d78"],
        "startTime": now - 3_600_000,
        "endTime": now + 86_400_000,
    });
    if let (Some(body), Some(extra)) = (body.as_object_mut(), extra.as_object()) {
        for (key, value) in extra {
            body.insert(key.clone(), value.clone());
        }
    }
    body
}

/// Runs `count` calls of `call` at once on their own threads, collecting results.
pub fn concurrently<T: Send + 'static>(
    count: usize,
    call: impl Fn(usize) -> T + Send + Sync + 'static,
) -> Vec<T> {
    let call = std::sync::Arc::new(call);
    let barrier = std::sync::Arc::new(std::sync::Barrier::new(count));
    let handles: Vec<_> = (0..count)
        .map(|index| {
            let call = call.clone();
            let barrier = barrier.clone();
            std::thread::spawn(move || {
                barrier.wait();
                call(index)
            })
        })
        .collect();
    handles
        .into_iter()
        .map(|handle| handle.join().expect("thread"))
        .collect()
}

/// Waits for the next wall-clock minute when less than `needed` is left of this
/// one. The failed-redemption throttle counts in fixed one-minute windows, so a
/// test that asserts where a budget runs out must run inside one window: one that
/// straddles two would see the budget twice (an answer of 404 where 429 is due).
pub fn within_one_throttle_minute(needed: Duration) {
    let into_minute = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("the clock is after 1970")
        .as_millis()
        % 60_000;
    let left = Duration::from_millis(60_000 - into_minute as u64);
    if left < needed {
        // A little past the boundary, so the new minute has surely begun.
        std::thread::sleep(left + Duration::from_millis(50));
    }
}
