use actix_web::test::TestRequest;
use tessera_app::model::Page;
use tessera_domain::{
    Alphabet, GroupAddresses, MaxTickets, NtpClass, ProgramChanges, RedemptionLimit, TicketLength,
};
use tessera_http::HttpSettings;

use crate::support::*;

const MINIMAL: &str =
    r#"{"objectId":"iq__3ax1","startTime":"2020-11-02T23:55:51.043Z","endTime":1604447751043}"#;

#[actix_web::test]
async fn creating_a_program_answers_201_with_every_field() {
    let mut mocks = Mocks::new();
    mocks
        .programs
        .expect_create_program()
        .times(1)
        .returning(|_, _| Ok(program()));
    let reply = send(mocks, post_json("/v1/programs", Some(ADMIN_KEY), MINIMAL)).await;
    assert_eq!(reply.status, 201, "{}", reply.text);
    assert_eq!(reply.header("etag"), Some("\"3\""));
    assert_eq!(
        reply.body,
        serde_json::json!({
            "id": PROGRAM_ID,
            "tenantId": "ten_11111111111111111111",
            "name": "Launch",
            "objectId": "iq__3ax1",
            "groupAddresses": ["0x96bb"],
            "ntpClass": 4,
            "maxTickets": 10,
            "maxRedemptions": 3,
            "startTime": "2020-11-02T23:55:51.043Z",
            "endTime": "2020-11-03T23:55:51.043Z",
            "ticketLength": 6,
            "alphabet": "humane",
            "urlPrefix": "https://t.example/r/",
            "oneActivePerSubject": false,
            "allowRollback": true,
            "codePattern": null,
            "checkDigit": false,
            "state": "active",
            "issuedTickets": 2,
            "version": 3,
            "createdAt": "2020-11-02T23:55:50.043Z",
            "updatedAt": "2020-11-02T23:55:50.043Z",
        })
    );
}

#[actix_web::test]
async fn omitted_fields_take_the_documented_defaults() {
    let mut mocks = Mocks::new();
    mocks
        .programs
        .expect_create_program()
        .withf(|_, new| {
            new.name.is_none()
                && new.group_addresses == GroupAddresses::default()
                && new.ntp_class == NtpClass::DEFAULT
                && new.max_tickets == MaxTickets::UNLIMITED
                && new.max_redemptions == RedemptionLimit::DEFAULT
                && new.ticket_length == TicketLength::DEFAULT
                && new.alphabet == Alphabet::Alphanumeric
                && new.url_prefix.is_none()
                && !new.one_active_per_subject
                && new.window.start() == at_millis(START_MS)
                && new.window.end() == at_millis(END_MS)
        })
        .times(1)
        .returning(|_, _| Ok(program()));
    let reply = send(mocks, post_json("/v1/programs", Some(ADMIN_KEY), MINIMAL)).await;
    assert_eq!(reply.status, 201, "{}", reply.text);
}

#[actix_web::test]
async fn the_three_time_forms_are_accepted() {
    for start in [
        r#""2020-11-02T23:55:51.043Z""#,
        r#""2020-11-03T00:55:51.043+01:00""#,
        "1604361351043",
        r#""1604361351043""#,
    ] {
        let mut mocks = Mocks::new();
        mocks
            .programs
            .expect_create_program()
            .withf(|_, new| new.window.start() == at_millis(START_MS))
            .times(1)
            .returning(|_, _| Ok(program()));
        let body = format!(r#"{{"objectId":"o","startTime":{start},"endTime":"{END_MS}"}}"#);
        let reply = send(mocks, post_json("/v1/programs", Some(ADMIN_KEY), &body)).await;
        assert_eq!(reply.status, 201, "{start}: {}", reply.text);
    }
}

/// Bad input never reaches the use case (invariant 5) and names the problem.
async fn refused(body: &str) -> Reply {
    let mut mocks = Mocks::new();
    mocks.programs.expect_create_program().times(0);
    send(mocks, post_json("/v1/programs", Some(ADMIN_KEY), body)).await
}

#[actix_web::test]
async fn bad_bodies_are_400_naming_the_problem() {
    let cases = [
        ("{", "not valid JSON"),
        ("", "body is required"),
        ("[]", "must be a JSON object"),
        (r#"["o",1,2]"#, "must be a JSON object"),
        ("null", "must be a JSON object"),
        (
            r#"{"objectId":"o","startTime":1,"endTime":2,"colour":"red"}"#,
            "colour",
        ),
        (r#"{"startTime":1,"endTime":2}"#, "objectId"),
        (
            r#"{"objectId":"o","startTime":1,"endTime":2,"ntpClass":"4"}"#,
            "ntpClass",
        ),
        (
            r#"{"objectId":"o","startTime":1,"endTime":2,"ntpClass":4.0}"#,
            "ntpClass",
        ),
        (
            r#"{"objectId":"o","startTime":1,"endTime":2,"ntpClass":10}"#,
            "ntpClass",
        ),
        (
            r#"{"objectId":"o","startTime":1,"endTime":2,"maxRedemptions":0}"#,
            "maxRedemptions",
        ),
        (
            r#"{"objectId":"o","startTime":1,"endTime":2,"ticketLength":3}"#,
            "ticketLength",
        ),
        (
            r#"{"objectId":"o","startTime":1,"endTime":2,"alphabet":"emoji"}"#,
            "alphabet",
        ),
        (
            r#"{"objectId":"o","startTime":1,"endTime":2,"urlPrefix":"ftp://x"}"#,
            "urlPrefix",
        ),
        (
            r#"{"objectId":"o","startTime":1,"endTime":2,"groupAddresses":[1]}"#,
            "groupAddresses[0]",
        ),
        (
            r#"{"objectId":"o","startTime":"soon","endTime":2}"#,
            "startTime",
        ),
        (
            r#"{"objectId":"o","startTime":1.5,"endTime":2}"#,
            "startTime",
        ),
        (r#"{"objectId":"o","startTime":2,"endTime":2}"#, "endTime"),
        (r#"{"objectId":"","startTime":1,"endTime":2}"#, "objectId"),
        (
            r#"{"objectId":"o","startTime":1,"endTime":2} trailing"#,
            "not valid JSON",
        ),
    ];
    for (body, named) in cases {
        let reply = refused(body).await;
        reply.assert_error(400, "invalid_request");
        assert!(
            reply.message().contains(named),
            "{body}: {}",
            reply.message()
        );
    }
}

#[actix_web::test]
async fn an_oversized_body_is_413() {
    let big = format!(
        r#"{{"objectId":"{}","startTime":1,"endTime":2}}"#,
        "x".repeat(70 * 1024)
    );
    refused(&big).await.assert_error(413, "payload_too_large");

    let mut mocks = Mocks::new();
    mocks.settings = HttpSettings {
        body_limit_bytes: 32,
        ..HttpSettings::default()
    };
    mocks.programs.expect_create_program().times(0);
    let reply = send(mocks, post_json("/v1/programs", Some(ADMIN_KEY), MINIMAL)).await;
    reply.assert_error(413, "payload_too_large");
}

#[actix_web::test]
async fn a_body_that_is_not_json_is_415_but_a_missing_content_type_is_read_as_json() {
    let mut mocks = Mocks::new();
    mocks.programs.expect_create_program().times(0);
    let req = TestRequest::post()
        .uri("/v1/programs")
        .insert_header(("Authorization", format!("Bearer {ADMIN_KEY}")))
        .insert_header(("Content-Type", "text/plain"))
        .set_payload(MINIMAL);
    send(mocks, req)
        .await
        .assert_error(415, "unsupported_media_type");

    let mut mocks = Mocks::new();
    mocks
        .programs
        .expect_create_program()
        .times(1)
        .returning(|_, _| Ok(program()));
    let req = TestRequest::post()
        .uri("/v1/programs")
        .insert_header(("Authorization", format!("Bearer {ADMIN_KEY}")))
        .set_payload(MINIMAL);
    assert_eq!(send(mocks, req).await.status, 201);
}

#[actix_web::test]
async fn programs_are_listed_with_page_bounds() {
    let mut mocks = Mocks::new();
    mocks
        .programs
        .expect_list_programs()
        .withf(|_, page| page.count() == 2 && page.offset() == 4)
        .times(1)
        .returning(|_, _| {
            Ok(Page {
                items: vec![program(), program()],
                total: 7,
            })
        });
    let reply = send(mocks, get("/v1/programs?count=2&offset=4", ADMIN_KEY)).await;
    assert_eq!(reply.status, 200, "{}", reply.text);
    assert_eq!(reply.body["start"], 4);
    assert_eq!(reply.body["end"], 6);
    assert_eq!(reply.body["total"], 7);
    assert_eq!(reply.body["programs"].as_array().unwrap().len(), 2);
    assert_eq!(reply.body["programs"][0]["id"], PROGRAM_ID);
}

#[actix_web::test]
async fn pagination_defaults_to_ten_from_zero() {
    let mut mocks = Mocks::new();
    mocks
        .programs
        .expect_list_programs()
        .withf(|_, page| page.count() == 10 && page.offset() == 0)
        .times(1)
        .returning(|_, _| {
            Ok(Page {
                items: vec![],
                total: 0,
            })
        });
    let reply = send(mocks, get("/v1/programs", ADMIN_KEY)).await;
    assert_eq!(
        reply.body,
        serde_json::json!({"programs": [], "start": 0, "end": 0, "total": 0})
    );
}

#[actix_web::test]
async fn pagination_out_of_bounds_is_400() {
    for (query, named) in [
        ("count=0", "count"),
        ("count=1001", "count"),
        ("count=abc", "count"),
        ("count=1.5", "count"),
        ("offset=-1", "offset"),
        ("offset=x", "offset"),
    ] {
        let mut mocks = Mocks::new();
        mocks.programs.expect_list_programs().times(0);
        let reply = send(mocks, get(&format!("/v1/programs?{query}"), ADMIN_KEY)).await;
        reply.assert_error(400, "invalid_request");
        assert!(
            reply.message().starts_with(named),
            "{query}: {}",
            reply.message()
        );
    }
    let mut mocks = Mocks::new();
    mocks
        .programs
        .expect_list_programs()
        .withf(|_, page| page.count() == 1000)
        .returning(|_, _| {
            Ok(Page {
                items: vec![],
                total: 0,
            })
        });
    assert_eq!(
        send(mocks, get("/v1/programs?count=1000", ADMIN_KEY))
            .await
            .status,
        200
    );
}

#[actix_web::test]
async fn a_program_is_read_with_its_etag() {
    let mut mocks = Mocks::new();
    mocks
        .programs
        .expect_get_program()
        .withf(|_, id| *id == program_id())
        .times(1)
        .returning(|_, _| Ok(program()));
    let reply = send(mocks, get(&format!("/v1/programs/{PROGRAM_ID}"), ADMIN_KEY)).await;
    assert_eq!(reply.status, 200);
    assert_eq!(reply.header("etag"), Some("\"3\""));
    assert_eq!(reply.body["id"], PROGRAM_ID);
}

#[actix_web::test]
async fn malformed_program_ids_are_404_without_a_lookup() {
    for path in [
        "/v1/programs/nope",
        "/v1/programs/tkt_33333333333333331111",
        "/v1/programs/prg_00000000000000000000",
        "/v1/programs/prg_%F0%9F%92%A5",
    ] {
        let mut mocks = Mocks::new();
        mocks.programs.expect_get_program().times(0);
        send(mocks, get(path, ADMIN_KEY))
            .await
            .assert_error(404, "not_found");
    }
    let mut mocks = Mocks::new();
    mocks.tickets.expect_list_tickets().times(0);
    send(mocks, get("/v1/programs/x/tickets", ADMIN_KEY))
        .await
        .assert_error(404, "not_found");
}

async fn patched(
    if_match: Option<&str>,
    body: &str,
    expected: ProgramChanges,
    version: Option<i64>,
) -> Reply {
    let mut mocks = Mocks::new();
    mocks
        .programs
        .expect_update_program()
        .withf(move |_, id, changes, if_match| {
            *id == program_id() && *changes == expected && *if_match == version
        })
        .times(1)
        .returning(|_, _, _, _| Ok(program()));
    let mut req = patch_json(&format!("/v1/programs/{PROGRAM_ID}"), ADMIN_KEY, body);
    if let Some(value) = if_match {
        req = req.insert_header(("If-Match", value));
    }
    send(mocks, req).await
}

#[actix_web::test]
async fn patch_changes_only_the_given_fields_and_null_clears() {
    let expected = ProgramChanges {
        max_redemptions: Some(RedemptionLimit::try_from(1).unwrap()),
        end_time: Some(at_millis(END_MS)),
        name: Some(None),
        ..ProgramChanges::default()
    };
    let reply = patched(
        None,
        &format!(r#"{{"maxRedemptions":1,"endTime":"{END_MS}","name":null}}"#),
        expected,
        None,
    )
    .await;
    assert_eq!(reply.status, 200, "{}", reply.text);
    assert_eq!(reply.header("etag"), Some("\"3\""));
}

#[actix_web::test]
async fn if_match_accepts_plain_quoted_and_weak_versions() {
    let changes = ProgramChanges {
        url_prefix: Some(None),
        ..ProgramChanges::default()
    };
    for header in ["3", "\"3\"", "W/\"3\"", " 3 "] {
        let reply = patched(
            Some(header),
            r#"{"urlPrefix":null}"#,
            changes.clone(),
            Some(3),
        )
        .await;
        assert_eq!(reply.status, 200, "{header}: {}", reply.text);
    }
    let reply = patched(Some("*"), r#"{"urlPrefix":null}"#, changes, None).await;
    assert_eq!(reply.status, 200);
}

#[actix_web::test]
async fn a_bad_if_match_or_patch_is_400_before_the_use_case() {
    for (if_match, body) in [
        (Some("three"), r#"{"name":"x"}"#),
        (Some("\"3"), r#"{"name":"x"}"#),
        (None, r#"{}"#),
        (None, r#"{"maxTickets":null}"#),
        (None, r#"{"objectId":"changed"}"#),
        (None, r#"{"maxTickets":-1}"#),
    ] {
        let mut mocks = Mocks::new();
        mocks.programs.expect_update_program().times(0);
        let mut req = patch_json(&format!("/v1/programs/{PROGRAM_ID}"), ADMIN_KEY, body);
        if let Some(value) = if_match {
            req = req.insert_header(("If-Match", value));
        }
        let reply = send(mocks, req).await;
        reply.assert_error(400, "invalid_request");
    }
}

#[actix_web::test]
async fn suspend_and_delete() {
    let mut mocks = Mocks::new();
    mocks
        .programs
        .expect_suspend_program()
        .times(1)
        .returning(|_, _| {
            let mut suspended = program();
            suspended.state = tessera_domain::ProgramState::Suspended;
            Ok(suspended)
        });
    let reply = send(
        mocks,
        post_json(
            &format!("/v1/programs/{PROGRAM_ID}/suspend"),
            Some(ADMIN_KEY),
            "",
        ),
    )
    .await;
    assert_eq!(reply.status, 200, "{}", reply.text);
    assert_eq!(reply.body["state"], "suspended");

    let mut mocks = Mocks::new();
    mocks
        .programs
        .expect_delete_program()
        .times(1)
        .returning(|_, _| Ok(()));
    let reply = send(
        mocks,
        delete(&format!("/v1/programs/{PROGRAM_ID}"), ADMIN_KEY),
    )
    .await;
    assert_eq!(reply.status, 204);
}
