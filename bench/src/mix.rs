//! What the load consists of: by default only redemptions of issued codes; with
//! `--mix`, a weighted mix of redemptions that succeed, redemptions that fail,
//! issuance and holds — the mixed traffic of the soak; with `--use` or
//! `--create-tickets`, only uses or only creations of standalone tickets (the
//! Authen-compatible API). With `--keyed`, redemptions carry the key too (the
//! authenticated redemption).

use std::fmt::Write as _;
use std::net::SocketAddr;

use crate::http::{json_string, VecWriter};

/// One kind of request, and the status that counts as its expected answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    /// `POST /v1/redeem` with an issued code (anonymous): 200.
    Redeem,
    /// `POST /v1/redeem` with a code nobody issued (anonymous): 404.
    Fail,
    /// `POST /v1/programs/{id}/tickets` with the key: 201.
    Issue,
    /// `POST /v1/holds` of an issued code for one second, with the key: 201.
    Hold,
    /// `POST /v1/tickets/use` of a standalone ticket, with the key: 200.
    Use,
    /// `POST /v1/tickets` of a standalone ticket that never expires and has a
    /// billion uses (`{"ttl":0,"uses":1000000000}`), with the key: 201. Limited,
    /// so that each use writes the count down as Authen's statement does (an
    /// unlimited ticket's use writes nothing), and more than a run can spend.
    Create,
}

/// The body of a [`Kind::Create`].
const CREATED_TICKET: &str = r#"{"ttl":0,"uses":1000000000}"#;

impl Kind {
    pub(crate) fn expected_status(self) -> u16 {
        match self {
            Self::Redeem | Self::Use => 200,
            Self::Fail => 404,
            Self::Issue | Self::Hold | Self::Create => 201,
        }
    }

    fn needs_key(self) -> bool {
        matches!(self, Self::Issue | Self::Hold | Self::Use | Self::Create)
    }

    fn is_redemption(self) -> bool {
        matches!(self, Self::Redeem | Self::Fail)
    }
}

/// Weights per kind; request k is of the kind its position in the cycle of the
/// weights' sum falls into, so any run is a fixed, reproducible interleaving.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Mix(Vec<(Kind, u32)>);

impl Default for Mix {
    fn default() -> Self {
        Self(vec![(Kind::Redeem, 1)])
    }
}

impl Mix {
    /// Every request of one kind (`--use`, `--create-tickets`).
    pub(crate) fn only(kind: Kind) -> Self {
        Self(vec![(kind, 1)])
    }

    /// `redeem=70,fail=15,issue=10,hold=5`.
    pub(crate) fn parse(text: &str) -> Result<Self, String> {
        let mut weights = Vec::new();
        for part in text.split(',') {
            let (name, weight) = part
                .split_once('=')
                .ok_or_else(|| format!("{part:?} is not KIND=WEIGHT"))?;
            let kind = match name.trim() {
                "redeem" => Kind::Redeem,
                "fail" => Kind::Fail,
                "issue" => Kind::Issue,
                "hold" => Kind::Hold,
                other => return Err(format!("unknown kind {other:?}")),
            };
            let weight: u32 = weight
                .trim()
                .parse()
                .ok()
                .filter(|w| (1..=1000).contains(w))
                .ok_or_else(|| format!("weight of {name}: 1..=1000"))?;
            weights.push((kind, weight));
        }
        Ok(Self(weights))
    }

    pub(crate) fn needs_key(&self) -> bool {
        self.0.iter().any(|(kind, _)| kind.needs_key())
    }

    pub(crate) fn kind_of(&self, k: usize) -> Kind {
        let total: usize = self.0.iter().map(|(_, w)| *w as usize).sum();
        let mut position = k % total;
        for (kind, weight) in &self.0 {
            if position < *weight as usize {
                return *kind;
            }
            position -= *weight as usize;
        }
        Kind::Redeem
    }
}

/// The parts of a request that do not change from one to the next.
#[derive(Debug)]
pub(crate) struct Target {
    pub(crate) addr: SocketAddr,
    pub(crate) key: Option<String>,
    /// `--keyed`: redemptions (and failing ones) carry the key as well, not only
    /// the kinds that need it.
    pub(crate) keyed: bool,
}

impl Target {
    /// Whether a request of `kind` carries `Authorization: Bearer <key>`.
    fn sends_key(&self, kind: Kind) -> bool {
        kind.needs_key() || (self.keyed && kind.is_redemption())
    }

    /// Request `k` of kind `kind` into `out`; `code` is the issued code it uses
    /// (for `Use`, the standalone ticket), `program` the program it names (none
    /// for `Use` and `Create`).
    pub(crate) fn request(
        &self,
        kind: Kind,
        k: usize,
        program: &str,
        code: &str,
        out: &mut Vec<u8>,
        body: &mut String,
    ) {
        body.clear();
        let path = match kind {
            Kind::Redeem | Kind::Fail | Kind::Hold => {
                body.push_str("{\"programId\":");
                json_string(body, program);
                body.push_str(",\"code\":");
                if kind == Kind::Fail {
                    // Same length as an issued code, so it is looked up and fails
                    // as a guess would.
                    let unknown = format!("{:0>width$}", k % 100_000_000, width = code.len());
                    json_string(body, &unknown);
                } else {
                    json_string(body, code);
                }
                if kind == Kind::Hold {
                    body.push_str(",\"ttl\":1");
                }
                body.push('}');
                if kind == Kind::Hold {
                    "/v1/holds".to_owned()
                } else {
                    "/v1/redeem".to_owned()
                }
            }
            Kind::Issue => {
                body.push_str("{}");
                format!("/v1/programs/{program}/tickets")
            }
            Kind::Use => {
                body.push_str("{\"ticket\":");
                json_string(body, code);
                body.push('}');
                "/v1/tickets/use".to_owned()
            }
            Kind::Create => {
                body.push_str(CREATED_TICKET);
                "/v1/tickets".to_owned()
            }
        };
        out.clear();
        let _ = write!(
            VecWriter(out),
            "POST {path} HTTP/1.1\r\nHost: {}\r\nContent-Type: application/json\r\n",
            self.addr
        );
        if let (true, Some(key)) = (self.sends_key(kind), &self.key) {
            let _ = write!(VecWriter(out), "Authorization: Bearer {key}\r\n");
        }
        let _ = write!(
            VecWriter(out),
            "Content-Length: {}\r\n\r\n{}",
            body.len(),
            body
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_mix_cycles_through_its_weights() {
        let mix = Mix::parse("redeem=2,fail=1,hold=1").unwrap();
        let kinds: Vec<Kind> = (0..8).map(|k| mix.kind_of(k)).collect();
        use Kind::*;
        assert_eq!(
            kinds,
            [Redeem, Redeem, Fail, Hold, Redeem, Redeem, Fail, Hold]
        );
        assert!(mix.needs_key());
        assert!(!Mix::default().needs_key());
        assert!(Mix::parse("redeem=0").is_err());
        assert!(Mix::parse("steal=1").is_err());
    }

    #[test]
    fn keyed_kinds_carry_the_key_and_failures_a_code_of_the_same_length() {
        let target = Target {
            addr: "127.0.0.1:9".parse().unwrap(),
            key: Some("sk_x".to_owned()),
            keyed: false,
        };
        let (mut out, mut body) = (Vec::new(), String::new());
        target.request(Kind::Hold, 0, "prg_1", "AbCd1234", &mut out, &mut body);
        let text = String::from_utf8(out.clone()).unwrap();
        assert!(text.starts_with("POST /v1/holds HTTP/1.1\r\n"));
        assert!(text.contains("Authorization: Bearer sk_x\r\n"));
        assert!(text.ends_with(r#"{"programId":"prg_1","code":"AbCd1234","ttl":1}"#));
        target.request(Kind::Fail, 42, "prg_1", "AbCd1234", &mut out, &mut body);
        let text = String::from_utf8(out.clone()).unwrap();
        assert!(!text.contains("Authorization"));
        assert!(text.ends_with(r#""code":"00000042"}"#));
        target.request(Kind::Issue, 1, "prg_1", "AbCd1234", &mut out, &mut body);
        let text = String::from_utf8(out).unwrap();
        assert!(text.starts_with("POST /v1/programs/prg_1/tickets HTTP/1.1\r\n"));
    }

    #[test]
    fn keyed_redemptions_carry_the_key_and_anonymous_ones_do_not() {
        let mut target = Target {
            addr: "127.0.0.1:9".parse().unwrap(),
            key: Some("sk_x".to_owned()),
            keyed: false,
        };
        let (mut out, mut body) = (Vec::new(), String::new());
        target.request(Kind::Redeem, 0, "prg_1", "AbCd1234", &mut out, &mut body);
        let anonymous = String::from_utf8(out.clone()).unwrap();
        assert!(!anonymous.contains("Authorization"), "{anonymous}");
        target.keyed = true;
        for kind in [Kind::Redeem, Kind::Fail] {
            target.request(kind, 7, "prg_1", "AbCd1234", &mut out, &mut body);
            let text = String::from_utf8(out.clone()).unwrap();
            assert!(text.starts_with("POST /v1/redeem HTTP/1.1\r\n"), "{text}");
            assert!(text.contains("Authorization: Bearer sk_x\r\n"), "{text}");
        }
        // The same body as the anonymous redemption: only the header differs.
        target.request(Kind::Redeem, 0, "prg_1", "AbCd1234", &mut out, &mut body);
        let keyed = String::from_utf8(out).unwrap();
        assert_eq!(
            keyed.replace("Authorization: Bearer sk_x\r\n", ""),
            anonymous
        );
    }

    #[test]
    fn standalone_uses_and_creations_carry_the_key() {
        let target = Target {
            addr: "127.0.0.1:9".parse().unwrap(),
            key: Some("sk_x".to_owned()),
            keyed: false,
        };
        let (mut out, mut body) = (Vec::new(), String::new());
        let ticket = "AbCdEfGhIjKlMnOpQrStUvWxYz012-_9";
        target.request(Kind::Use, 3, "", ticket, &mut out, &mut body);
        let text = String::from_utf8(out.clone()).unwrap();
        let expected = format!(r#"{{"ticket":"{ticket}"}}"#);
        assert!(
            text.starts_with("POST /v1/tickets/use HTTP/1.1\r\n"),
            "{text}"
        );
        assert!(text.contains("Authorization: Bearer sk_x\r\n"), "{text}");
        assert!(text.contains(&format!("Content-Length: {}\r\n", expected.len())));
        assert!(text.ends_with(&format!("\r\n\r\n{expected}")), "{text}");
        target.request(Kind::Create, 4, "", "", &mut out, &mut body);
        let text = String::from_utf8(out).unwrap();
        assert!(text.starts_with("POST /v1/tickets HTTP/1.1\r\n"), "{text}");
        assert!(text.contains("Authorization: Bearer sk_x\r\n"), "{text}");
        assert!(
            text.ends_with("\r\n\r\n{\"ttl\":0,\"uses\":1000000000}"),
            "{text}"
        );
        assert_eq!(Kind::Use.expected_status(), 200);
        assert_eq!(Kind::Create.expected_status(), 201);
        assert!(Mix::only(Kind::Use).needs_key());
        assert_eq!(Mix::only(Kind::Create).kind_of(5), Kind::Create);
    }
}
