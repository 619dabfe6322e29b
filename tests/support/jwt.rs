//! Offline verification of Tessera's signatures against its JWKS, as a resource
//! server would do it: no call back to Tessera but for the public keys.

use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use base64::Engine;
use ed25519_dalek::{Signature, VerifyingKey};
use serde_json::Value;

/// The key in `jwks` with `kid`, if any.
fn key(jwks: &Value, kid: &str) -> Option<VerifyingKey> {
    let jwk = jwks["keys"]
        .as_array()?
        .iter()
        .find(|jwk| jwk["kid"] == kid)?;
    if jwk["kty"] != "OKP" || jwk["crv"] != "Ed25519" {
        return None;
    }
    let bytes: [u8; 32] = B64.decode(jwk["x"].as_str()?).ok()?.try_into().ok()?;
    VerifyingKey::from_bytes(&bytes).ok()
}

fn signature(encoded: &str) -> Option<Signature> {
    let bytes: [u8; 64] = B64.decode(encoded).ok()?.try_into().ok()?;
    Some(Signature::from_bytes(&bytes))
}

/// The claims of `token` when its EdDSA signature verifies under the JWKS key its
/// header names; `None` otherwise.
pub fn verify_token(jwks: &Value, token: &str) -> Option<(Value, Value)> {
    let mut parts = token.split('.');
    let (header, payload, sig) = (parts.next()?, parts.next()?, parts.next()?);
    if parts.next().is_some() {
        return None;
    }
    let header_json: Value = serde_json::from_slice(&B64.decode(header).ok()?).ok()?;
    if header_json["alg"] != "EdDSA" {
        return None;
    }
    let key = key(jwks, header_json["kid"].as_str()?)?;
    key.verify_strict(format!("{header}.{payload}").as_bytes(), &signature(sig)?)
        .ok()?;
    let claims: Value = serde_json::from_slice(&B64.decode(payload).ok()?).ok()?;
    Some((header_json, claims))
}

/// Whether `signed_code` (`code.signature`) was signed for `program_id` by any
/// key of the JWKS.
pub fn verify_signed_code(jwks: &Value, program_id: &str, signed_code: &str) -> bool {
    let Some((code, sig)) = signed_code.split_once('.') else {
        return false;
    };
    let Some(sig) = signature(sig) else {
        return false;
    };
    let message = format!("tessera-code-v1:{program_id}:{code}");
    jwks["keys"].as_array().is_some_and(|keys| {
        keys.iter().any(|jwk| {
            jwk["kid"]
                .as_str()
                .and_then(|kid| key(jwks, kid))
                .is_some_and(|key| key.verify_strict(message.as_bytes(), &sig).is_ok())
        })
    })
}
