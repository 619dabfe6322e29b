//! A resource server's offline check of a Tessera access token: no call to
//! Tessera but for its public keys (`GET /.well-known/jwks.json`, saved to a file).
//!
//! ```text
//! curl -s http://127.0.0.1:8080/.well-known/jwks.json > jwks.json
//! cargo run -p tessera-crypto --example verify_token -- jwks.json "$TOKEN"
//! ```
//!
//! Picks the key by the token's `kid`, verifies the EdDSA (Ed25519) signature,
//! checks `iat` and `exp` against the clock (60 s leeway), and prints the header's
//! `kid` and the claims as JSON. Pass `-` as the token to read it from standard
//! input, which keeps it out of the shell's history. Exit code 0 when the token is
//! valid, 1 when it is not, 2 on bad usage.

use std::io::Read;
use std::process::ExitCode;
use std::time::{SystemTime, UNIX_EPOCH};

use tessera_crypto::jwt;

/// Clock skew tolerated between Tessera and this server, in seconds.
const LEEWAY_SECONDS: i64 = 60;

fn run(jwks_path: &str, token: &str) -> Result<String, (u8, String)> {
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
    let claims = serde_json::to_string_pretty(&verified.claims)
        .map_err(|error| (1, format!("cannot print the claims: {error}")))?;
    Ok(format!(
        "valid token signed by {}\n{claims}",
        verified.header["kid"]
    ))
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [jwks_path, token] = args.as_slice() else {
        eprintln!("usage: verify_token JWKS.json TOKEN  (TOKEN may be - for standard input)");
        return ExitCode::from(2);
    };
    match run(jwks_path, token) {
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
