//! One keep-alive HTTP/1.1 connection, spoken by hand, and the bits of request
//! building the load kinds share.

use std::fmt::Write as _;
use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::{IpAddr, SocketAddr, TcpStream};
use std::time::Duration;

use socket2::{Domain, Socket, Type};

const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
const IO_TIMEOUT: Duration = Duration::from_secs(30);
/// Answers larger than this are refused rather than buffered.
const MAX_BODY: usize = 1 << 20;

/// A TCP connection to `addr`, from `source` when given (another loopback
/// address, so that per-address bounds see many clients, as a real overload has).
pub(crate) fn connect(addr: SocketAddr, source: Option<IpAddr>) -> io::Result<TcpStream> {
    let Some(source) = source else {
        return TcpStream::connect_timeout(&addr, CONNECT_TIMEOUT);
    };
    let socket = Socket::new(Domain::for_address(addr), Type::STREAM, None)?;
    socket.bind(&SocketAddr::new(source, 0).into())?;
    socket.connect_timeout(&addr.into(), CONNECT_TIMEOUT)?;
    Ok(socket.into())
}

pub(crate) fn json_string(out: &mut String, value: &str) {
    out.push('"');
    for c in value.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if u32::from(c) < 0x20 => {
                let _ = write!(out, "\\u{:04x}", u32::from(c));
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

/// `write!` into a `Vec<u8>` without the `io::Write` error plumbing.
pub(crate) struct VecWriter<'a>(pub(crate) &'a mut Vec<u8>);

impl std::fmt::Write for VecWriter<'_> {
    fn write_str(&mut self, s: &str) -> std::fmt::Result {
        self.0.extend_from_slice(s.as_bytes());
        Ok(())
    }
}

/// The parts of an answer the load generator looks at.
#[derive(Debug)]
pub(crate) struct Answer {
    pub(crate) status: u16,
    pub(crate) status_line: String,
    pub(crate) keep_alive: bool,
    /// The seconds of its `Retry-After` header, if it had one (an unreadable
    /// value counts as 1).
    pub(crate) retry_after: Option<u64>,
}

/// One keep-alive HTTP/1.1 connection.
#[derive(Debug)]
pub(crate) struct Connection {
    writer: TcpStream,
    reader: BufReader<TcpStream>,
    line: String,
    body: Vec<u8>,
}

impl Connection {
    pub(crate) fn open(addr: SocketAddr, source: Option<IpAddr>) -> io::Result<Self> {
        let stream = connect(addr, source)?;
        stream.set_nodelay(true)?;
        stream.set_read_timeout(Some(IO_TIMEOUT))?;
        stream.set_write_timeout(Some(IO_TIMEOUT))?;
        Ok(Self {
            reader: BufReader::with_capacity(16 * 1024, stream.try_clone()?),
            writer: stream,
            line: String::new(),
            body: Vec::with_capacity(4096),
        })
    }

    fn read_line(&mut self) -> io::Result<&str> {
        self.line.clear();
        if self.reader.read_line(&mut self.line)? == 0 {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "the server closed the connection",
            ));
        }
        Ok(self.line.trim_end_matches(['\r', '\n']))
    }

    /// Sends one request and reads its whole answer: status line, headers up to the
    /// empty line, then exactly Content-Length body bytes (or the chunks).
    pub(crate) fn exchange(&mut self, request: &[u8]) -> io::Result<Answer> {
        self.writer.write_all(request)?;
        let status_line = self.read_line()?.to_owned();
        let mut parts = status_line.split(' ');
        let version = parts.next().unwrap_or_default();
        let status = parts
            .next()
            .and_then(|s| s.parse::<u16>().ok())
            .filter(|_| version.starts_with("HTTP/1."))
            .ok_or_else(|| invalid(format!("not an HTTP/1.x status line: {status_line:?}")))?;
        let mut keep_alive = version == "HTTP/1.1";
        let mut length = None;
        let mut chunked = false;
        let mut retry_after = None;
        loop {
            let line = self.read_line()?;
            if line.is_empty() {
                break;
            }
            let Some((name, value)) = line.split_once(':') else {
                return Err(invalid(format!("bad header line {line:?}")));
            };
            let value = value.trim();
            if name.eq_ignore_ascii_case("content-length") {
                let n: usize = value
                    .parse()
                    .map_err(|_| invalid(format!("bad Content-Length {value:?}")))?;
                length = Some(n);
            } else if name.eq_ignore_ascii_case("transfer-encoding") {
                chunked = value.eq_ignore_ascii_case("chunked");
            } else if name.eq_ignore_ascii_case("connection") {
                keep_alive = !value.eq_ignore_ascii_case("close");
            } else if name.eq_ignore_ascii_case("retry-after") {
                retry_after = Some(value.parse().unwrap_or(1));
            }
        }
        self.body.clear();
        if chunked {
            self.read_chunks()?;
        } else if let Some(length) = length {
            if length > MAX_BODY {
                return Err(invalid(format!("answer of {length} bytes")));
            }
            self.body.resize(length, 0);
            self.reader.read_exact(&mut self.body)?;
        } else {
            // Neither length nor chunks: the body ends with the connection.
            (&mut self.reader)
                .take(MAX_BODY as u64)
                .read_to_end(&mut self.body)?;
            keep_alive = false;
        }
        Ok(Answer {
            status,
            status_line,
            keep_alive,
            retry_after,
        })
    }

    fn read_chunks(&mut self) -> io::Result<()> {
        loop {
            let size_line = self.read_line()?;
            let size_hex = size_line.split(';').next().unwrap_or_default().trim();
            let size = usize::from_str_radix(size_hex, 16)
                .map_err(|_| invalid(format!("bad chunk size {size_line:?}")))?;
            if size == 0 {
                // Trailers, if any, then the empty line.
                while !self.read_line()?.is_empty() {}
                return Ok(());
            }
            if self.body.len() + size > MAX_BODY {
                return Err(invalid("chunked answer too large".to_owned()));
            }
            let start = self.body.len();
            self.body.resize(start + size, 0);
            self.reader.read_exact(&mut self.body[start..])?;
            if !self.read_line()?.is_empty() {
                return Err(invalid("chunk not followed by CRLF".to_owned()));
            }
        }
    }

    /// The body of the last answer.
    pub(crate) fn body(&self) -> &[u8] {
        &self.body
    }

    pub(crate) fn body_excerpt(&self) -> String {
        let text = String::from_utf8_lossy(&self.body);
        text.chars().take(200).collect()
    }
}

pub(crate) fn invalid(message: String) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, message)
}
