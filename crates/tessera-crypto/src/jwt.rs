//! Offline verification of Tessera's access tokens against its JSON Web Key Set,
//! as a resource server does it: no call back to Tessera but for the public keys.
//!
//! Used by the signer's tests and `examples/verify_token.rs`; it uses only
//! `ed25519-dalek`, `base64` and `serde_json`, so a resource server can copy it.

use std::fmt;

use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64URL;
use base64::Engine;
use ed25519_dalek::{Signature, VerifyingKey};
use serde_json::Value;

/// Why a token was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum VerifyError {
    /// Not three base64url parts of JSON, or a header or claim of the wrong type.
    Malformed(&'static str),
    /// The header's `alg` is not `EdDSA`.
    UnsupportedAlgorithm,
    /// No Ed25519 key of the set has the header's `kid`.
    UnknownKey,
    /// The signature does not verify under the named key.
    BadSignature,
    /// `exp` has passed.
    Expired,
    /// `iat` lies in the future.
    NotYetValid,
}

impl fmt::Display for VerifyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            VerifyError::Malformed(what) => write!(f, "malformed token: {what}"),
            VerifyError::UnsupportedAlgorithm => f.write_str("the token's alg is not EdDSA"),
            VerifyError::UnknownKey => f.write_str("no key of the JWKS has the token's kid"),
            VerifyError::BadSignature => f.write_str("the signature does not verify"),
            VerifyError::Expired => f.write_str("the token has expired"),
            VerifyError::NotYetValid => f.write_str("the token was issued in the future"),
        }
    }
}

impl std::error::Error for VerifyError {}

/// A token whose signature and times were checked.
#[derive(Debug, Clone, PartialEq)]
pub struct Verified {
    pub header: Value,
    pub claims: Value,
}

/// The Ed25519 key of `jwks` whose `kid` is `kid`, if any.
pub fn find_key(jwks: &Value, kid: &str) -> Option<VerifyingKey> {
    let jwk = jwks["keys"]
        .as_array()?
        .iter()
        .find(|jwk| jwk["kid"].as_str() == Some(kid))?;
    if jwk["kty"] != "OKP" || jwk["crv"] != "Ed25519" {
        return None;
    }
    if jwk.get("alg").is_some_and(|alg| alg != "EdDSA") {
        return None;
    }
    let bytes: [u8; 32] = B64URL.decode(jwk["x"].as_str()?).ok()?.try_into().ok()?;
    VerifyingKey::from_bytes(&bytes).ok()
}

fn json_part(part: &str, what: &'static str) -> Result<Value, VerifyError> {
    let bytes = B64URL
        .decode(part)
        .map_err(|_| VerifyError::Malformed(what))?;
    let value: Value = serde_json::from_slice(&bytes).map_err(|_| VerifyError::Malformed(what))?;
    if value.is_object() {
        Ok(value)
    } else {
        Err(VerifyError::Malformed(what))
    }
}

/// Checks `token` (a compact JWS) against the key of `jwks` its header names, then
/// its times: `iat <= now + leeway` and `now < exp + leeway` (Unix seconds).
pub fn verify_token(
    jwks: &Value,
    token: &str,
    now: i64,
    leeway_seconds: i64,
) -> Result<Verified, VerifyError> {
    let mut parts = token.split('.');
    let (Some(header_part), Some(payload_part), Some(signature_part), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(VerifyError::Malformed("not three dot-separated parts"));
    };
    let header = json_part(header_part, "header")?;
    if header["alg"] != "EdDSA" {
        return Err(VerifyError::UnsupportedAlgorithm);
    }
    let kid = header["kid"]
        .as_str()
        .ok_or(VerifyError::Malformed("header without kid"))?;
    let key = find_key(jwks, kid).ok_or(VerifyError::UnknownKey)?;
    let signature: [u8; 64] = B64URL
        .decode(signature_part)
        .ok()
        .and_then(|bytes| bytes.try_into().ok())
        .ok_or(VerifyError::Malformed("signature"))?;
    key.verify_strict(
        format!("{header_part}.{payload_part}").as_bytes(),
        &Signature::from_bytes(&signature),
    )
    .map_err(|_| VerifyError::BadSignature)?;
    // Only a signed payload is worth parsing.
    let claims = json_part(payload_part, "claims")?;
    let iat = claims["iat"]
        .as_i64()
        .ok_or(VerifyError::Malformed("iat is not a number"))?;
    let exp = claims["exp"]
        .as_i64()
        .ok_or(VerifyError::Malformed("exp is not a number"))?;
    if iat > now.saturating_add(leeway_seconds) {
        return Err(VerifyError::NotYetValid);
    }
    if now >= exp.saturating_add(leeway_seconds) {
        return Err(VerifyError::Expired);
    }
    Ok(Verified { header, claims })
}
