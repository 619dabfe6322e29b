//! Properties of the HTTP edge's parsers over arbitrary JSON: a body either becomes
//! a domain value that the database can hold, or a `400` naming a field — never a
//! panic, never a value that would fail later as a 500.

use proptest::prelude::*;
use serde_json::{json, Value};
use tessera_domain::NewProgram;
use tessera_http::dto::programs::CreateProgramRequest;
use tessera_http::dto::redeem::{RedeemRequestBody, ResolvedRedeem};

/// Any JSON scalar, including the awkward ones: huge and negative numbers,
/// strings with control characters, times with sub-microsecond digits.
fn scalar() -> impl Strategy<Value = Value> {
    prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        any::<f64>().prop_map(|f| json!(f)),
        any::<String>().prop_map(Value::from),
        (
            0u32..10_000,
            1u32..13,
            1u32..29,
            0u32..24,
            0u32..61,
            0u32..1_000_000_000
        )
            .prop_map(|(y, mo, d, h, mi, ns)| json!(format!(
                "{y:04}-{mo:02}-{d:02}T{h:02}:{mi:02}:00.{ns:09}Z"
            ))),
        "[a-z0-9_]{0,12}".prop_map(Value::from),
    ]
}

fn program_body() -> impl Strategy<Value = Value> {
    proptest::collection::btree_map(
        prop_oneof![
            Just("objectId"),
            Just("startTime"),
            Just("endTime"),
            Just("name"),
            Just("maxTickets"),
            Just("maxRedemptions"),
            Just("ticketLength"),
            Just("alphabet"),
            Just("urlPrefix"),
            Just("ntpClass"),
        ],
        scalar(),
        0..10,
    )
    .prop_map(|overrides| {
        // A body that would be valid, with arbitrary fields replaced: so both the
        // accepting and the refusing paths are exercised.
        let mut body = json!({
            "objectId": "iq__3ax1",
            "startTime": "2026-01-01T00:00:00Z",
            "endTime": "2027-01-01T00:00:00Z",
        });
        for (key, value) in overrides {
            body[key] = value;
        }
        body
    })
}

proptest! {
    #[test]
    fn a_program_body_is_a_storable_program_or_a_named_refusal(body in program_body()) {
        let Ok(request) = serde_json::from_value::<CreateProgramRequest>(body) else {
            return Ok(()); // a type error: the extractor answers 400 naming the field
        };
        match NewProgram::try_from(request) {
            Ok(program) => {
                let window = program.window;
                prop_assert!(window.end() > window.start());
                prop_assert!(program.object_id.as_str().chars().all(|c| !c.is_control()));
            }
            Err(error) => {
                let message = error.to_string();
                prop_assert!(!message.is_empty());
            }
        }
    }

    #[test]
    fn a_redeem_body_never_carries_a_control_character_to_the_database(
        code in any::<String>(),
        email in proptest::option::of(any::<String>()),
        program in proptest::option::of("[a-zA-Z0-9_]{0,24}"),
        issuer in proptest::option::of(any::<String>()),
    ) {
        let mut body = json!({"code": code});
        if let Some(email) = email { body["email"] = json!(email); }
        if let Some(program) = program { body["programId"] = json!(program); }
        if let Some(issuer) = issuer { body["issuer"] = json!(issuer); }
        let parsed: RedeemRequestBody = serde_json::from_value(body).expect("all strings");
        if let Ok(resolved) = ResolvedRedeem::try_from(parsed) {
            if let Some(email) = resolved.request.email {
                prop_assert!(!email.chars().any(char::is_control));
            }
        }
    }
}
