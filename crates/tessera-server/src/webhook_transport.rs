//! The outbound HTTP adapter of webhooks (the app's `WebhookTransport`): resolves
//! the receiver's host once per attempt, refuses addresses the SSRF guard forbids,
//! and connects only to the vetted addresses, so a second DNS answer (rebinding)
//! cannot redirect the request. No redirects are followed, for the same reason.

use std::net::{SocketAddr, ToSocketAddrs};
use std::time::Duration;

use tessera_app::webhooks::{TransportError, WebhookTransport};
use tessera_domain::{is_forbidden_address, WebhookUrl};

/// The whole attempt, connection included, must finish within this.
pub const DELIVERY_TIMEOUT: Duration = Duration::from_secs(10);

#[derive(Debug, Clone)]
pub struct UreqTransport {
    /// `TESSERA_WEBHOOK_ALLOW_PRIVATE`: skip the address check (tests, private
    /// networks whose receivers are trusted).
    allow_private: bool,
}

impl UreqTransport {
    pub fn new(allow_private: bool) -> Self {
        Self { allow_private }
    }

    /// The addresses the request may go to: the host's, less the forbidden ones.
    fn vetted_addresses(&self, url: &WebhookUrl) -> Result<Vec<SocketAddr>, TransportError> {
        let resolved: Vec<SocketAddr> = (url.host(), url.port())
            .to_socket_addrs()
            .map_err(|error| {
                TransportError::Failed(format!("cannot resolve {}: {error}", url.host()))
            })?
            .collect();
        if self.allow_private {
            return Ok(resolved);
        }
        let allowed: Vec<SocketAddr> = resolved
            .iter()
            .copied()
            .filter(|address| !is_forbidden_address(address.ip()))
            .collect();
        if allowed.is_empty() {
            let shown: Vec<String> = resolved.iter().map(|a| a.ip().to_string()).collect();
            return Err(TransportError::Refused(format!(
                "{} resolves to {} only: loopback, private and link-local addresses are not \
                 delivered to (TESSERA_WEBHOOK_ALLOW_PRIVATE)",
                url.host(),
                shown.join(", ")
            )));
        }
        Ok(allowed)
    }
}

impl WebhookTransport for UreqTransport {
    fn post(&self, url: &WebhookUrl, body: &str, signature: &str) -> Result<u16, TransportError> {
        let addresses = self.vetted_addresses(url)?;
        let agent = ureq::AgentBuilder::new()
            .timeout(DELIVERY_TIMEOUT)
            .redirects(0)
            .user_agent("tessera-webhooks/1")
            .resolver(move |_: &str| Ok(addresses.clone()))
            .build();
        let sent = agent
            .post(url.as_str())
            .set("Content-Type", "application/json")
            .set("Tessera-Signature", signature)
            .send_string(body);
        match sent {
            Ok(response) => Ok(response.status()),
            Err(ureq::Error::Status(status, _)) => Ok(status),
            Err(ureq::Error::Transport(error)) => Err(TransportError::Failed(error.to_string())),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::io::{Read, Write};
    use std::net::TcpListener;

    use super::*;

    #[test]
    fn loopback_is_refused_before_any_connection_unless_allowed() {
        let listener = TcpListener::bind("127.0.0.1:0").expect("a port");
        listener.set_nonblocking(true).expect("non-blocking");
        let url = WebhookUrl::parse(&format!(
            "http://{}/hook",
            listener.local_addr().expect("addr")
        ))
        .expect("url");
        let refused = UreqTransport::new(false).post(&url, "{}", "t=1,v1=00");
        assert!(
            matches!(&refused, Err(TransportError::Refused(why)) if why.contains("127.0.0.1")),
            "{refused:?}"
        );
        assert!(listener.accept().is_err(), "nothing connected");
        let localhost = WebhookUrl::parse("http://localhost:9/").expect("url");
        assert!(matches!(
            UreqTransport::new(false).post(&localhost, "{}", "t=1,v1=00"),
            Err(TransportError::Refused(_))
        ));
    }

    #[test]
    fn https_receivers_get_a_tls_handshake() {
        // A plain-TCP listener answers the ClientHello with HTTP: the handshake
        // fails as TLS, which shows https is supported rather than refused.
        let listener = TcpListener::bind("127.0.0.1:0").expect("a port");
        let address = listener.local_addr().expect("addr");
        std::thread::spawn(move || {
            if let Ok((mut stream, _)) = listener.accept() {
                let _ = stream.write_all(b"HTTP/1.1 400 Bad Request\r\n\r\n");
            }
        });
        let url = WebhookUrl::parse(&format!("https://{address}/hook")).expect("url");
        let failed = UreqTransport::new(true).post(&url, "{}", "t=1,v1=00");
        let Err(TransportError::Failed(why)) = failed else {
            panic!("expected a TLS failure, got {failed:?}");
        };
        assert!(!why.to_ascii_lowercase().contains("scheme"), "{why}");
    }

    #[test]
    fn an_allowed_post_carries_the_body_and_signature_and_returns_the_status() {
        let listener = TcpListener::bind("127.0.0.1:0").expect("a port");
        let url = WebhookUrl::parse(&format!(
            "http://{}/hook",
            listener.local_addr().expect("addr")
        ))
        .expect("url");
        let receiver = std::thread::spawn(move || {
            let (mut stream, _) = listener.accept().expect("a connection");
            let mut request = Vec::new();
            let mut buffer = [0u8; 4096];
            while !String::from_utf8_lossy(&request).contains("{\"a\":1}") {
                let read = stream.read(&mut buffer).expect("read");
                if read == 0 {
                    break;
                }
                request.extend_from_slice(&buffer[..read]);
            }
            stream
                .write_all(b"HTTP/1.1 503 Service Unavailable\r\ncontent-length: 0\r\n\r\n")
                .expect("answer");
            String::from_utf8_lossy(&request).into_owned()
        });
        let status = UreqTransport::new(true)
            .post(&url, "{\"a\":1}", "t=5,v1=ab")
            .expect("an answer");
        assert_eq!(status, 503);
        let request = receiver.join().expect("receiver");
        assert!(request.starts_with("POST /hook "), "{request}");
        assert!(request
            .to_ascii_lowercase()
            .contains("tessera-signature: t=5,v1=ab"));
        assert!(request
            .to_ascii_lowercase()
            .contains("content-type: application/json"));
    }
}
