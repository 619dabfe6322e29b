//! `--stall BYTES`: clients that start a request body and stop in its middle.
//!
//! Every connection sends the headers of `POST /v1/redeem` announcing a body of
//! `BYTES + 4096` bytes, then `BYTES` of it, then nothing more; it keeps the socket
//! until `--duration` is over (reading whatever the server answers) and closes it.
//! This is how issue 15 drove the server's memory up: the memory step of `make
//! bench` watches the server's RSS before, during and after.

use std::io::{Read, Write};
use std::net::{IpAddr, SocketAddr};
use std::thread;
use std::time::{Duration, Instant};

use crate::http::connect;

/// What one stalled connection saw.
#[derive(Debug, Default, Clone, Copy)]
pub(crate) struct Stalled {
    pub(crate) opened: u64,
    /// Every byte of the partial body was written.
    pub(crate) sent: u64,
    /// The server answered before the end (a 503 at admission, a 408 at its body
    /// timeout): the status of that answer.
    pub(crate) answered_503: u64,
    pub(crate) answered_408: u64,
    pub(crate) answered_other: u64,
    /// The server closed the connection before the end.
    pub(crate) closed_by_server: u64,
}

impl Stalled {
    pub(crate) fn add(&mut self, other: Self) {
        self.opened += other.opened;
        self.sent += other.sent;
        self.answered_503 += other.answered_503;
        self.answered_408 += other.answered_408;
        self.answered_other += other.answered_other;
        self.closed_by_server += other.closed_by_server;
    }

    pub(crate) fn json(&self, connections: usize, bytes: usize, seconds: f64) -> String {
        format!(
            "{{\"connections\": {connections}, \"bytes_each\": {bytes}, \"opened\": {}, \
             \"sent\": {}, \"answered_503\": {}, \"answered_408\": {}, \"answered_other\": {}, \
             \"closed_by_server\": {}, \"seconds\": {seconds:.3}}}",
            self.opened,
            self.sent,
            self.answered_503,
            self.answered_408,
            self.answered_other,
            self.closed_by_server
        )
    }
}

/// One stalled client, until `deadline`.
pub(crate) fn stall(
    addr: SocketAddr,
    source: Option<IpAddr>,
    bytes: usize,
    deadline: Instant,
) -> Stalled {
    let mut seen = Stalled::default();
    let Ok(mut stream) = connect(addr, source) else {
        return seen;
    };
    seen.opened = 1;
    let _ = stream.set_write_timeout(Some(Duration::from_secs(5)));
    let head = format!(
        "POST /v1/redeem HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/json\r\n\
         Content-Length: {}\r\n\r\n{{\"code\":\"",
        bytes + 4096
    );
    let filler = vec![b'a'; 4096];
    let mut written = stream.write_all(head.as_bytes()).is_ok();
    let mut left = bytes.saturating_sub(9);
    while written && left > 0 {
        let piece = left.min(filler.len());
        written = stream.write_all(&filler[..piece]).is_ok();
        left -= piece;
    }
    if written {
        seen.sent = 1;
    }
    // Hold the socket, reading what the server says, until the deadline.
    let mut answer = Vec::new();
    let mut buffer = [0u8; 1024];
    while let Some(left) = deadline.checked_duration_since(Instant::now()) {
        let _ = stream.set_read_timeout(Some(left.max(Duration::from_millis(1))));
        match stream.read(&mut buffer) {
            Ok(0) => {
                seen.closed_by_server = 1;
                break;
            }
            Ok(n) if answer.len() < 64 => answer.extend_from_slice(&buffer[..n]),
            Ok(_) => {}
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) => {}
            Err(_) => {
                seen.closed_by_server = 1;
                break;
            }
        }
    }
    if !answer.is_empty() {
        match answer.get(9..12) {
            Some(b"503") => seen.answered_503 = 1,
            Some(b"408") => seen.answered_408 = 1,
            _ => seen.answered_other = 1,
        }
    }
    seen
}

/// Runs `connections` stalled clients for `seconds` and prints their JSON line.
pub(crate) fn run_stalled(
    addr: SocketAddr,
    sources: &[Option<IpAddr>],
    connections: usize,
    bytes: usize,
    seconds: f64,
) -> Result<(), String> {
    let start = Instant::now();
    let deadline = start + Duration::from_secs_f64(seconds);
    let workers: Vec<_> = (0..connections)
        .map(|i| {
            let source = sources[i % sources.len()];
            thread::Builder::new()
                .name(format!("stall-{i}"))
                .stack_size(64 * 1024)
                .spawn(move || stall(addr, source, bytes, deadline))
                .map_err(|e| format!("cannot start a thread: {e}"))
        })
        .collect::<Result<_, _>>()?;
    let mut total = Stalled::default();
    for worker in workers {
        total.add(worker.join().map_err(|_| "a stall thread panicked")?);
    }
    println!(
        "{}",
        total.json(connections, bytes, start.elapsed().as_secs_f64())
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::TcpListener;

    /// A server that reads the partial body and answers 503, then closes: the
    /// stalled client counts the body as sent, the 503, and the close.
    #[test]
    fn a_stalled_client_sends_its_part_and_sees_the_servers_answer() {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let server = thread::spawn(move || {
            let (mut socket, _) = listener.accept().unwrap();
            let mut received = Vec::new();
            let mut buffer = [0u8; 4096];
            let body_len = |r: &[u8]| {
                r.windows(4)
                    .position(|w| w == b"\r\n\r\n")
                    .map_or(0, |i| r.len() - i - 4)
            };
            while body_len(&received) < 20_000 {
                let n = socket.read(&mut buffer).unwrap();
                assert!(n > 0, "the client closed before sending its part");
                received.extend_from_slice(&buffer[..n]);
            }
            socket
                .write_all(b"HTTP/1.1 503 Service Unavailable\r\nRetry-After: 1\r\n\r\n")
                .unwrap();
            received
        });
        let deadline = Instant::now() + Duration::from_secs(10);
        let seen = stall(addr, None, 20_000, deadline);
        let received = server.join().unwrap();
        let text = String::from_utf8_lossy(&received);
        assert!(text.starts_with("POST /v1/redeem HTTP/1.1\r\n"));
        assert!(text.contains("Content-Length: 24096\r\n"));
        let body = &text[text.find("\r\n\r\n").unwrap() + 4..];
        assert_eq!(body.len(), 20_000);
        assert_eq!((seen.opened, seen.sent), (1, 1));
        assert_eq!((seen.answered_503, seen.answered_408), (1, 0));
        assert_eq!(seen.closed_by_server, 1);
    }
}
