//! A resource server's offline check of a Tessera access token: no call to
//! Tessera but for its public keys (`GET /.well-known/jwks.json`, saved to a file).
//!
//! ```text
//! curl -s http://127.0.0.1:8080/.well-known/jwks.json > jwks.json
//! cargo run -p tessera-crypto --example verify_token -- jwks.json "$TOKEN" \
//!     http://127.0.0.1:8080 iq__3ax1WuidvcNm8Bd2CGEnqLYScsxL [TENANT_ID [PROGRAM_ID]]
//! ```
//!
//! Picks the key by the token's `kid`, verifies the EdDSA (Ed25519) signature,
//! checks `iat`, `nbf` and `exp` against the clock (60 s leeway), then what only
//! the resource server knows: `iss` is the Tessera it trusts, `aud` is *its own*
//! object id (a token for another program's object must not open this one), and,
//! when given, `tid` and `pid` are the tenant and program it serves. Prints the
//! header's `kid` and the claims as JSON. Pass `-` as the token to read it from
//! standard input, which keeps it out of the shell's history. Exit code 0 when the
//! token is valid, 1 when it is not, 2 on bad usage.

use std::io::Read;
use std::process::ExitCode;
use std::time::{SystemTime, UNIX_EPOCH};

use tessera_crypto::jwt;

/// Clock skew tolerated between Tessera and this server, in seconds.
const LEEWAY_SECONDS: i64 = 60;

/// What this resource server requires of a token besides a good signature.
struct Expected<'a> {
    issuer: &'a str,
    audience: &'a str,
    tenant: Option<&'a str>,
    program: Option<&'a str>,
}

/// The claim checks a signature cannot do: a validly signed token for another
/// issuer, object, tenant or program — or one not valid yet — is refused.
fn check_claims(
    claims: &serde_json::Value,
    expected: &Expected<'_>,
    now: i64,
) -> Result<(), String> {
    let text = |name: &str| claims[name].as_str().unwrap_or_default().to_owned();
    if text("iss") != expected.issuer {
        return Err(format!(
            "iss is {:?}, not {:?}",
            text("iss"),
            expected.issuer
        ));
    }
    // `aud` may be a string or an array of strings (RFC 7519 §4.1.3).
    let audience_ok = match &claims["aud"] {
        serde_json::Value::String(aud) => aud == expected.audience,
        serde_json::Value::Array(auds) => auds.iter().any(|aud| aud == expected.audience),
        _ => false,
    };
    if !audience_ok {
        return Err(format!(
            "aud {} is not {:?}",
            claims["aud"], expected.audience
        ));
    }
    let nbf = claims["nbf"].as_i64().ok_or("nbf is not a number")?;
    if nbf > now.saturating_add(LEEWAY_SECONDS) {
        return Err("not valid yet (nbf)".to_owned());
    }
    for (name, wanted) in [("tid", expected.tenant), ("pid", expected.program)] {
        if let Some(wanted) = wanted.filter(|wanted| text(name) != *wanted) {
            return Err(format!("{name} is {:?}, not {wanted:?}", text(name)));
        }
    }
    Ok(())
}

fn run(jwks_path: &str, token: &str, expected: &Expected<'_>) -> Result<String, (u8, String)> {
    let text = std::fs::read_to_string(jwks_path)
        .map_err(|error| (2, format!("cannot read {jwks_path}: {error}")))?;
    let jwks: serde_json::Value = serde_json::from_str(&text)
        .map_err(|error| (2, format!("{jwks_path} is not JSON: {error}")))?;
    let token = if token == "-" {
        let mut read = String::new();
        std::io::stdin()
            .read_to_string(&mut read)
            .map_err(|error| (2, format!("cannot read the token: {error}")))?;
        read
    } else {
        token.to_owned()
    };
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_err(|_| (1, "the clock is before 1970".to_owned()))?
        .as_secs();
    let now = i64::try_from(now).map_err(|_| (1, "the clock is out of range".to_owned()))?;
    let verified = jwt::verify_token(&jwks, token.trim(), now, LEEWAY_SECONDS)
        .map_err(|error| (1, format!("invalid token: {error}")))?;
    check_claims(&verified.claims, expected, now)
        .map_err(|error| (1, format!("invalid token: {error}")))?;
    let claims = serde_json::to_string_pretty(&verified.claims)
        .map_err(|error| (1, format!("cannot print the claims: {error}")))?;
    Ok(format!(
        "valid token signed by {}\n{claims}",
        verified.header["kid"]
    ))
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let (jwks_path, token, issuer, audience, rest) = match args.as_slice() {
        [jwks, token, issuer, audience, rest @ ..] if rest.len() <= 2 => {
            (jwks, token, issuer, audience, rest)
        }
        _ => {
            eprintln!(
                "usage: verify_token JWKS.json TOKEN ISSUER AUDIENCE [TENANT_ID [PROGRAM_ID]]\n  \
                 (TOKEN may be - for standard input; AUDIENCE is your object id)"
            );
            return ExitCode::from(2);
        }
    };
    let expected = Expected {
        issuer,
        audience,
        tenant: rest.first().map(String::as_str),
        program: rest.get(1).map(String::as_str),
    };
    match run(jwks_path, token, &expected) {
        Ok(report) => {
            println!("{report}");
            ExitCode::SUCCESS
        }
        Err((code, message)) => {
            eprintln!("verify_token: {message}");
            ExitCode::from(code)
        }
    }
}
