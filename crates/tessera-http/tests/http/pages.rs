//! The pages people see, against mocked use cases: what each page shows, that
//! GET and HEAD never redeem, one failure message, and the security headers.

use actix_web::test::TestRequest;
use tessera_app::links::{CodeForm, LinkView};
use tessera_app::model::{AccessToken, Grant};
use tessera_app::usecases::Redemption;
use tessera_app::AppError;
use tessera_domain::{LinkToken, Payload, RedemptionFailure, UrlPrefix};

use crate::support::*;

const TOKEN: &str = "4vJ9QmZr2nXc8WbT6kYpL3sHd7FgA1eB";
const FAILURE: &str = "This code or link cannot be redeemed. Check what you typed and try again.";

fn view(email_required: bool) -> LinkView {
    LinkView {
        program_id: program_id(),
        program_name: Some("Gala <night>".to_owned()),
        object_id: "iq__3ax1".to_owned(),
        remaining: 2,
        valid_from: at_millis(START_MS),
        valid_until: at_millis(END_MS),
        not_yet_valid: false,
        email_required,
        url_prefix: Some(UrlPrefix::try_from("https://t.example/r/".to_owned()).unwrap()),
    }
}

fn form() -> CodeForm {
    CodeForm {
        program_id: program_id(),
        program_name: Some("Gala".to_owned()),
        object_id: "iq__3ax1".to_owned(),
    }
}

fn redemption() -> Redemption {
    Redemption {
        grant: Grant {
            tenant_id: tenant(),
            program_id: program_id(),
            ticket_id: ticket_id(),
            redemption_id: tessera_domain::RedemptionId::generate(),
            remaining: 1,
            object_id: "iq__3ax1".to_owned(),
            group_addresses: vec![],
            payload: Some(Payload::from_json_text(r#"{"seat":"A1"}"#.to_owned()).unwrap()),
        },
        access_token: AccessToken::new("eyJhbGciOiJFZERTQSJ9.e30.c2ln".to_owned(), 3600),
    }
}

fn link_path() -> String {
    format!("/r/{TOKEN}")
}

/// Mocks whose link page shows `view`, any number of times.
fn showing(view: LinkView) -> Mocks {
    let mut mocks = Mocks::bare();
    mocks
        .links
        .expect_view_link()
        .withf(|token| token.expose_secret() == TOKEN)
        .returning(move |_| Ok(view.clone()));
    mocks
}

#[track_caller]
fn assert_page_headers(reply: &RawReply) {
    assert_eq!(reply.header("cache-control"), Some("no-store"));
    assert_eq!(reply.header("referrer-policy"), Some("no-referrer"));
    assert_eq!(reply.header("x-content-type-options"), Some("nosniff"));
    let csp = reply.header("content-security-policy").expect("a CSP");
    for directive in [
        "default-src 'none'",
        "style-src 'self'",
        "form-action 'self'",
        "frame-ancestors 'none'",
    ] {
        assert!(csp.contains(directive), "{csp}");
    }
}

/// Well-formed enough for people and screen readers: a language, a viewport,
/// one h1, a label for every field, nothing from elsewhere, no script.
#[track_caller]
fn assert_accessible_html(html: &str) {
    assert!(html.starts_with("<!doctype html>"), "{html}");
    assert!(html.contains(r#"<html lang="en">"#));
    assert!(html.contains(r#"<meta name="viewport""#));
    assert_eq!(html.matches("<h1").count(), 1, "{html}");
    assert!(!html.contains("<script"));
    assert!(!html.contains("src=\"http") && !html.contains("href=\"http"));
    for id in html
        .split("<input id=\"")
        .skip(1)
        .map(|rest| rest.split('"').next().unwrap())
    {
        assert!(
            html.contains(&format!("<label for=\"{id}\"")),
            "{id}: {html}"
        );
    }
}

#[actix_web::test]
async fn a_link_page_shows_what_it_grants_and_one_button_without_redeeming() {
    // No expectation on redeem_link: calling it would fail the request.
    let reply = send_raw(showing(view(false)), TestRequest::get().uri(&link_path())).await;
    assert_eq!(reply.status.as_u16(), 200);
    assert_eq!(
        reply.header("content-type"),
        Some("text/html; charset=utf-8")
    );
    assert_page_headers(&reply);
    let html = reply.text();
    assert_accessible_html(&html);
    assert!(
        html.contains("Gala &#60;night&#62;") || html.contains("Gala &lt;night&gt;"),
        "escaped: {html}"
    );
    assert!(html.contains(r#"<dd id="remaining">2</dd>"#));
    assert!(html.contains("3 November 2020"), "valid until: {html}");
    assert_eq!(html.matches("<button").count(), 1);
    assert!(html.contains(&format!(r#"<form method="post" action="/r/{TOKEN}">"#)));
    assert!(!html.contains("name=\"email\""), "no email asked");
}

#[actix_web::test]
async fn an_email_bound_link_page_asks_for_the_email() {
    let reply = send_raw(showing(view(true)), TestRequest::get().uri(&link_path())).await;
    let html = reply.text();
    assert_accessible_html(&html);
    assert!(html.contains(r#"<label for="email">"#));
    assert!(html.contains(r#"name="email" type="email""#));
}

#[actix_web::test]
async fn head_answers_like_get_without_a_body_and_without_redeeming() {
    let reply = send_raw(
        showing(view(false)),
        TestRequest::default()
            .method(actix_web::http::Method::HEAD)
            .uri(&link_path()),
    )
    .await;
    assert_eq!(reply.status.as_u16(), 200);
    assert_page_headers(&reply);
}

#[actix_web::test]
async fn malformed_and_unknown_links_get_a_404_page() {
    // Malformed: no lookup at all (bare mocks fail any call).
    for path in [
        "/r/short",
        "/r/0OIl0OIl0OIl0OIl0OIl0OIl0OIl0OIl",
        "/r/short/qr.svg",
    ] {
        let reply = send_raw(Mocks::bare(), TestRequest::get().uri(path)).await;
        assert_eq!(reply.status.as_u16(), 404, "{path}");
        assert_page_headers(&reply);
        assert_accessible_html(&reply.text());
    }
    let mut mocks = Mocks::bare();
    mocks
        .links
        .expect_view_link()
        .times(1)
        .returning(|_| Err(AppError::NotFound));
    let reply = send_raw(mocks, TestRequest::get().uri(&link_path())).await;
    assert_eq!(reply.status.as_u16(), 404);
    assert_page_headers(&reply);
    assert!(reply.text().contains("Link not valid"));
}

#[actix_web::test]
async fn pressing_the_button_redeems_with_the_typed_email_and_shows_the_result() {
    let mut mocks = Mocks::bare();
    mocks
        .links
        .expect_redeem_link()
        .withf(|request| {
            request.token.as_ref().map(LinkToken::expose_secret) == Some(TOKEN)
                && request.email.as_deref() == Some("ann@example.com")
                && request.client.is_some()
        })
        .times(1)
        .returning(|_| Ok(redemption()));
    mocks.links.expect_code_form().returning(|_| Ok(form()));
    let reply = send_raw(
        mocks,
        TestRequest::post()
            .uri(&link_path())
            .peer_addr("10.0.0.1:4000".parse().unwrap())
            .insert_header(("content-type", "application/x-www-form-urlencoded"))
            .set_payload("email=ann%40example.com"),
    )
    .await;
    assert_eq!(reply.status.as_u16(), 200);
    assert_page_headers(&reply);
    let html = reply.text();
    assert_accessible_html(&html);
    assert!(html.contains("Redeemed"));
    assert!(html.contains("Gala"));
    assert!(html.contains(r#"<dd id="remaining">1</dd>"#));
    assert!(
        html.contains("&#34;seat&#34;") || html.contains("&quot;seat&quot;"),
        "{html}"
    );
    assert!(!html.contains("eyJ"), "the access token is not shown");
}

#[actix_web::test]
async fn every_link_failure_shows_the_one_message() {
    let mut bodies = Vec::new();
    for error in [
        AppError::InvalidCode,
        AppError::Redemption(RedemptionFailure::TicketExhausted),
        AppError::Redemption(RedemptionFailure::EmailMismatch),
    ] {
        let mut mocks = Mocks::bare();
        mocks
            .links
            .expect_redeem_link()
            .times(1)
            .returning(move |_| Err(error.clone()));
        let reply = send_raw(
            mocks,
            TestRequest::post()
                .uri(&link_path())
                .insert_header(("content-type", "application/x-www-form-urlencoded"))
                .set_payload(""),
        )
        .await;
        assert_eq!(reply.status.as_u16(), 404);
        assert_page_headers(&reply);
        let html = reply.text();
        assert!(html.contains(FAILURE), "{html}");
        bodies.push(html);
    }
    assert!(
        bodies.windows(2).all(|pair| pair[0] == pair[1]),
        "indistinguishable"
    );
}

#[actix_web::test]
async fn a_malformed_link_press_is_still_counted_by_the_use_case() {
    let mut mocks = Mocks::bare();
    mocks
        .links
        .expect_redeem_link()
        .withf(|request| request.token.is_none())
        .times(1)
        .returning(|_| Err(AppError::InvalidCode));
    let reply = send_raw(
        mocks,
        TestRequest::post()
            .uri("/r/not-a-token")
            .insert_header(("content-type", "application/x-www-form-urlencoded"))
            .set_payload(""),
    )
    .await;
    assert_eq!(reply.status.as_u16(), 404);
    assert!(reply.text().contains(FAILURE));
}

#[actix_web::test]
async fn a_throttled_press_answers_429_with_retry_after() {
    let mut mocks = Mocks::bare();
    mocks.links.expect_redeem_link().returning(|_| {
        Err(AppError::TooManyAttempts {
            retry_after_seconds: 42,
        })
    });
    let reply = send_raw(
        mocks,
        TestRequest::post()
            .uri(&link_path())
            .insert_header(("content-type", "application/x-www-form-urlencoded"))
            .set_payload(""),
    )
    .await;
    assert_eq!(reply.status.as_u16(), 429);
    assert_eq!(reply.header("retry-after"), Some("42"));
    assert_page_headers(&reply);
    assert!(reply.text().contains("42 seconds"));
}

#[actix_web::test]
async fn the_qr_code_is_an_svg_of_the_link_and_redeems_nothing() {
    let reply = send_raw(
        showing(view(false)),
        TestRequest::get().uri(&format!("{}/qr.svg", link_path())),
    )
    .await;
    assert_eq!(reply.status.as_u16(), 200);
    assert_eq!(reply.header("content-type"), Some("image/svg+xml"));
    assert_page_headers(&reply);
    let svg = reply.text();
    assert!(svg.contains("<svg"), "{svg}");
    assert!(svg.contains("<path") || svg.contains("<rect"));
}

#[actix_web::test]
async fn the_code_form_names_its_program_and_needs_one() {
    let mut mocks = Mocks::bare();
    mocks
        .links
        .expect_code_form()
        .withf(|program| *program == program_id())
        .times(1)
        .returning(|_| Ok(form()));
    let reply = send_raw(
        mocks,
        TestRequest::get().uri(&format!("/redeem?programId={PROGRAM_ID}")),
    )
    .await;
    assert_eq!(reply.status.as_u16(), 200);
    assert_page_headers(&reply);
    let html = reply.text();
    assert_accessible_html(&html);
    assert!(html.contains("Gala"));
    assert!(html.contains(&format!(r#"name="programId" value="{PROGRAM_ID}""#)));
    for path in ["/redeem", "/redeem?programId=nope"] {
        let reply = send_raw(Mocks::bare(), TestRequest::get().uri(path)).await;
        assert_eq!(reply.status.as_u16(), 404, "{path}");
        assert_page_headers(&reply);
    }
}

#[actix_web::test]
async fn the_code_form_redeems_as_a_public_caller_and_shows_the_form_again_on_failure() {
    let mut mocks = Mocks::bare();
    mocks
        .redeem
        .expect_redeem()
        .withf(|caller, request| {
            caller.is_none()
                && request.program_id == Some(program_id())
                && request.code.expose_secret() == "tsr-ab12 cd34"
                && request.email.as_deref() == Some("")
        })
        .times(1)
        .returning(|_, _| Err(AppError::InvalidCode));
    mocks.links.expect_code_form().returning(|_| Ok(form()));
    let reply = send_raw(
        mocks,
        TestRequest::post()
            .uri("/redeem")
            .insert_header(("content-type", "application/x-www-form-urlencoded"))
            .set_payload(format!("programId={PROGRAM_ID}&code=tsr-ab12+cd34&email=")),
    )
    .await;
    assert_eq!(reply.status.as_u16(), 404);
    assert_page_headers(&reply);
    let html = reply.text();
    assert_accessible_html(&html);
    assert!(html.contains(FAILURE));
    assert!(html.contains(r#"<input id="code""#), "the form again");
}

#[actix_web::test]
async fn the_stylesheet_is_the_pages_only_resource() {
    let reply = send_raw(Mocks::bare(), TestRequest::get().uri("/assets/pages.css")).await;
    assert_eq!(reply.status.as_u16(), 200);
    assert_eq!(
        reply.header("content-type"),
        Some("text/css; charset=utf-8")
    );
    assert!(reply.text().contains(":focus-visible"));
}

#[actix_web::test]
async fn a_link_valid_later_says_from_when() {
    let early = LinkView {
        not_yet_valid: true,
        ..view(false)
    };
    let reply = send_raw(showing(early), TestRequest::get().uri(&link_path())).await;
    assert_eq!(reply.status.as_u16(), 200);
    let html = reply.text();
    assert!(html.contains("can be used from"), "{html}");
    assert!(html.contains("2 November 2020"), "{html}");
    let now_valid = send_raw(showing(view(false)), TestRequest::get().uri(&link_path())).await;
    assert!(!now_valid.text().contains("can be used from"));
}
