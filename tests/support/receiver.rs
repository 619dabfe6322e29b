//! A webhook receiver for the tests: a tiny HTTP/1.1 server on loopback that
//! records every request and answers 500 to the first `failures` of them.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// One request as received.
#[derive(Debug, Clone)]
pub struct Received {
    pub path: String,
    /// `Tessera-Signature`, if sent.
    pub signature: Option<String>,
    pub content_type: Option<String>,
    pub body: String,
}

impl Received {
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.body).expect("a JSON body")
    }
}

#[derive(Debug, Default)]
struct Log {
    received: Vec<Received>,
    failures_left: u32,
}

/// Listens until the test process ends.
#[derive(Debug, Clone)]
pub struct Receiver {
    pub port: u16,
    log: Arc<Mutex<Log>>,
}

impl Receiver {
    /// Answers 200 to everything.
    pub fn start() -> Self {
        Self::listen(TcpListener::bind("127.0.0.1:0").expect("a port"), 0)
    }

    /// Answers 500 to the first `failures` requests, then 200.
    pub fn failing_first(failures: u32) -> Self {
        Self::listen(TcpListener::bind("127.0.0.1:0").expect("a port"), failures)
    }

    /// Starts listening on `port` (one chosen earlier, while nothing listened).
    pub fn on_port(port: u16) -> Self {
        Self::listen(
            TcpListener::bind(("127.0.0.1", port)).expect("the port is free"),
            0,
        )
    }

    fn listen(listener: TcpListener, failures: u32) -> Self {
        let port = listener.local_addr().expect("address").port();
        let log = Arc::new(Mutex::new(Log {
            received: Vec::new(),
            failures_left: failures,
        }));
        let shared = log.clone();
        std::thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                let log = shared.clone();
                std::thread::spawn(move || serve(stream, &log));
            }
        });
        Self { port, log }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    /// Every request so far, failed ones included.
    pub fn received(&self) -> Vec<Received> {
        self.log.lock().expect("log").received.clone()
    }

    /// Waits until at least `count` requests came in; panics after `timeout`.
    pub fn wait_for(&self, count: usize, timeout: Duration) -> Vec<Received> {
        let deadline = Instant::now() + timeout;
        loop {
            let received = self.received();
            if received.len() >= count {
                return received;
            }
            assert!(
                Instant::now() < deadline,
                "the receiver got {} of {count} requests in {timeout:?}",
                received.len()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

fn serve(stream: TcpStream, log: &Mutex<Log>) {
    let _ = stream.set_read_timeout(Some(Duration::from_secs(5)));
    let mut reader = BufReader::new(match stream.try_clone() {
        Ok(clone) => clone,
        Err(_) => return,
    });
    let mut request_line = String::new();
    if reader.read_line(&mut request_line).is_err() {
        return;
    }
    let path = request_line
        .split_whitespace()
        .nth(1)
        .unwrap_or_default()
        .to_owned();
    let (mut length, mut signature, mut content_type) = (0usize, None, None);
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line).unwrap_or(0) == 0 || line == "\r\n" {
            break;
        }
        if let Some((name, value)) = line.split_once(':') {
            let value = value.trim().to_owned();
            match name.trim().to_ascii_lowercase().as_str() {
                "content-length" => length = value.parse().unwrap_or(0),
                "tessera-signature" => signature = Some(value),
                "content-type" => content_type = Some(value),
                _ => {}
            }
        }
    }
    let mut body = vec![0u8; length];
    if reader.read_exact(&mut body).is_err() {
        return;
    }
    let status = {
        let mut log = log.lock().expect("log");
        log.received.push(Received {
            path,
            signature,
            content_type,
            body: String::from_utf8_lossy(&body).into_owned(),
        });
        if log.failures_left > 0 {
            log.failures_left -= 1;
            "500 Internal Server Error"
        } else {
            "200 OK"
        }
    };
    let mut stream = stream;
    let _ = write!(
        stream,
        "HTTP/1.1 {status}\r\ncontent-length: 0\r\nconnection: close\r\n\r\n"
    );
}
