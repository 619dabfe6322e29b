//! The client's address, for throttling failed redemptions.
//!
//! It is the TCP peer, unless the peer is a trusted proxy that forwarded
//! `X-Forwarded-For`: then the header is read from the right (each proxy appends
//! the address it received the request from), skipping trusted proxies and
//! elements that do not parse, and the first parseable untrusted address is the
//! client. Anything left of it may be forged, so it is never reached. A header
//! with no such address (garbage, only our proxies, not even text) is charged to
//! the shared [`UNATTRIBUTABLE`] client — never to the proxy, whose budget the
//! honest requests without the header fall back to. A header from an untrusted
//! peer is ignored: anyone can send one. The throttle groups what this returns
//! by network (IPv6 per /64).

use std::net::{IpAddr, SocketAddr};

use actix_web::http::header::HeaderName;
use actix_web::HttpRequest;
use tessera_app::throttle::UNATTRIBUTABLE;

const X_FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");

/// The address of the client that sent `req`; `None` when the peer is unknown.
pub(crate) fn client_address(req: &HttpRequest, trusted_proxies: &[IpAddr]) -> Option<IpAddr> {
    let peer = req.peer_addr()?.ip();
    // A line that is not even text holds no address: it reads as empty.
    let values: Vec<&str> = req
        .headers()
        .get_all(X_FORWARDED_FOR)
        .map(|value| value.to_str().unwrap_or(""))
        .collect();
    resolve(peer, &values, trusted_proxies)
}

/// The client given the peer, the `X-Forwarded-For` header lines in order, and the
/// trusted proxies. Addresses are compared canonically (an IPv4-mapped IPv6 peer
/// such as `::ffff:10.0.0.1` is `10.0.0.1`).
pub(crate) fn resolve(peer: IpAddr, forwarded_for: &[&str], trusted: &[IpAddr]) -> Option<IpAddr> {
    let peer = peer.to_canonical();
    let is_trusted = |ip: &IpAddr| trusted.iter().any(|t| t.to_canonical() == *ip);
    if !is_trusted(&peer) || forwarded_for.is_empty() {
        return Some(peer);
    }
    let client = forwarded_for
        .iter()
        .rev()
        .flat_map(|line| line.rsplit(','))
        .filter_map(|element| parse_hop(element.trim()))
        .find(|hop| !is_trusted(hop));
    Some(client.unwrap_or(UNATTRIBUTABLE))
}

/// `1.2.3.4`, `2001:db8::1`, and the `1.2.3.4:5678` / `[2001:db8::1]:5678` forms
/// some proxies write.
fn parse_hop(element: &str) -> Option<IpAddr> {
    element
        .parse::<IpAddr>()
        .ok()
        .or_else(|| element.parse::<SocketAddr>().ok().map(|addr| addr.ip()))
        .map(|ip| ip.to_canonical())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    fn ip(text: &str) -> IpAddr {
        text.parse().unwrap()
    }

    const CLIENT: &str = "203.0.113.7";
    const PROXY: &str = "10.0.0.1";
    const PROXY_2: &str = "10.0.0.2";

    fn trusted() -> Vec<IpAddr> {
        vec![ip(PROXY), ip(PROXY_2)]
    }

    #[test]
    fn an_untrusted_peer_is_the_client_whatever_it_forwards() {
        let peer = ip("198.51.100.9");
        assert_eq!(resolve(peer, &[], &trusted()), Some(peer));
        assert_eq!(resolve(peer, &["1.1.1.1"], &trusted()), Some(peer));
        assert_eq!(resolve(peer, &["1.1.1.1"], &[]), Some(peer));
    }

    #[test]
    fn a_trusted_peer_without_the_header_is_the_client() {
        assert_eq!(resolve(ip(PROXY), &[], &trusted()), Some(ip(PROXY)));
    }

    #[test]
    fn a_trusted_peer_s_header_is_walked_from_the_right() {
        let cases: [(&[&str], &str); 8] = [
            (&["203.0.113.7"], CLIENT),
            // A spoofed leftmost entry is never reached.
            (&["6.6.6.6, 203.0.113.7"], CLIENT),
            (&["6.6.6.6, 203.0.113.7, 10.0.0.2"], CLIENT),
            (&["6.6.6.6", "203.0.113.7 ,10.0.0.2"], CLIENT),
            (&["203.0.113.7:4711, 10.0.0.2:80"], CLIENT),
            // Garbage is skipped, wherever it is.
            (&["garbage, 203.0.113.7"], CLIENT),
            (&["203.0.113.7, nope, 10.0.0.2"], CLIENT),
            (&["203.0.113.7", "", "10.0.0.1"], CLIENT),
        ];
        for (header, client) in cases {
            assert_eq!(
                resolve(ip(PROXY), header, &trusted()),
                Some(ip(client)),
                "{header:?}"
            );
        }
    }

    #[test]
    fn ipv6_and_mapped_addresses() {
        let v6 = ip("2001:db8::7");
        assert_eq!(
            resolve(ip(PROXY), &["2001:db8::7, [2001:db8::1]:443"], &trusted()),
            Some(ip("2001:db8::1")),
        );
        assert_eq!(resolve(ip(PROXY), &["2001:db8::7"], &trusted()), Some(v6));
        // A dual-stack listener sees IPv4 peers as mapped IPv6 addresses.
        assert_eq!(
            resolve(ip("::ffff:10.0.0.1"), &[CLIENT], &trusted()),
            Some(ip(CLIENT))
        );
        assert_eq!(
            resolve(ip("::ffff:198.51.100.9"), &[CLIENT], &trusted()),
            Some(ip("198.51.100.9"))
        );
    }

    #[test]
    fn a_header_without_a_parseable_untrusted_address_is_unattributable() {
        for header in [
            &["unknown"][..],
            &[""],
            &[", ,"],
            &["203.0.113.7 10.0.0.2"],
            &["nope", "10.0.0.2"],
            // Only our own proxies: nobody to attribute it to.
            &["10.0.0.2, 10.0.0.1"],
        ] {
            assert_eq!(
                resolve(ip(PROXY), header, &trusted()),
                Some(UNATTRIBUTABLE),
                "{header:?}"
            );
        }
    }

    #[test]
    fn a_header_that_is_not_text_is_unattributable_and_never_the_proxy() {
        let req = actix_web::test::TestRequest::default()
            .peer_addr("10.0.0.1:5000".parse().unwrap())
            .insert_header((
                "X-Forwarded-For",
                actix_web::http::header::HeaderValue::from_bytes(b"\xff\xfe").unwrap(),
            ))
            .to_http_request();
        assert_eq!(client_address(&req, &trusted()), Some(UNATTRIBUTABLE));
    }

    #[test]
    fn the_request_s_peer_and_header_lines_are_read() {
        let req = actix_web::test::TestRequest::default()
            .peer_addr("10.0.0.1:5000".parse().unwrap())
            .append_header(("X-Forwarded-For", "6.6.6.6"))
            .append_header(("X-Forwarded-For", "203.0.113.7"))
            .to_http_request();
        assert_eq!(client_address(&req, &trusted()), Some(ip(CLIENT)));
        assert_eq!(client_address(&req, &[]), Some(ip(PROXY)));

        let no_peer = actix_web::test::TestRequest::default()
            .insert_header(("X-Forwarded-For", CLIENT))
            .to_http_request();
        assert_eq!(client_address(&no_peer, &trusted()), None);
    }
}
