//! The pages people see: a URL ticket's link page (`/r/{linkToken}`), its QR code,
//! and the code form (`/redeem`). Server-rendered HTML, no JavaScript, no
//! external resources; every answer carries the headers of [`secure`].
//!
//! GET and HEAD never consume anything (mail scanners and link previews prefetch
//! links); only the form posts redeem. Every failure a visitor can cause shows one
//! message that reveals no more than the API's `invalid_code`.

mod views;

use actix_web::http::header::{self, HeaderValue};
use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, HttpResponse, HttpResponseBuilder, Resource};
use askama::Template;
use serde::Deserialize;
use tessera_app::links::LinkRedeemRequest;
use tessera_app::usecases::RedeemRequest;
use tessera_app::{AppError, AppResult};
use tessera_domain::{LinkToken, PresentedCode, ProgramId};

use crate::client_addr::client_address;
use crate::error::UNAVAILABLE_RETRY_AFTER_SECS;
use crate::state::AppState;
use views::{FormPage, LinkPage, MessagePage, SuccessPage};

/// Nothing but the page's own stylesheet and form posts to itself; never framed.
pub(crate) const CONTENT_SECURITY_POLICY: &str = "default-src 'none'; style-src 'self'; \
     form-action 'self'; frame-ancestors 'none'; base-uri 'none'";

/// The one message every failed redemption shows: what `invalid_code` says.
pub(crate) const FAILURE_MESSAGE: &str =
    "This code or link cannot be redeemed. Check what you typed and try again.";

const STYLESHEET: &str = include_str!("../../templates/pages/pages.css");

/// The page routes, added to the application's scope.
pub(crate) fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(resource("/assets/pages.css").route(web::get().to(stylesheet)))
        .service(
            resource("/redeem")
                .route(web::get().to(code_form))
                .route(web::post().to(redeem_code)),
        )
        .service(
            resource("/r/{link_token}")
                .route(web::get().to(link_page))
                .route(web::head().to(link_page))
                .route(web::post().to(redeem_link)),
        )
        .service(
            resource("/r/{link_token}/qr.svg")
                .route(web::get().to(link_qr))
                .route(web::head().to(link_qr)),
        );
}

fn resource(path: &str) -> Resource {
    web::resource(path).default_service(web::to(|| async {
        message(
            StatusCode::METHOD_NOT_ALLOWED,
            "Not allowed",
            "This page does not accept that request.",
        )
    }))
}

/// The headers every page answer carries: not cached (it may carry a link
/// token), no `Referer` leaving it (the token is in its URL), no sniffing, and a
/// policy that allows nothing but the page's own styles and form posts.
fn secure(status: StatusCode) -> HttpResponseBuilder {
    let mut builder = HttpResponseBuilder::new(status);
    builder
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .insert_header((header::REFERRER_POLICY, "no-referrer"))
        .insert_header((header::X_CONTENT_TYPE_OPTIONS, "nosniff"))
        .insert_header((header::CONTENT_SECURITY_POLICY, CONTENT_SECURITY_POLICY))
        .insert_header((header::X_FRAME_OPTIONS, "DENY"));
    builder
}

fn html(status: StatusCode, page: &impl Template) -> HttpResponse {
    match page.render() {
        Ok(body) => secure(status)
            .content_type("text/html; charset=utf-8")
            .body(body),
        Err(error) => {
            tracing::error!(%error, "a page failed to render");
            secure(StatusCode::INTERNAL_SERVER_ERROR)
                .content_type("text/plain; charset=utf-8")
                .body("Something went wrong.")
        }
    }
}

fn message(status: StatusCode, heading: &'static str, text: &str) -> HttpResponse {
    html(
        status,
        &MessagePage {
            heading,
            message: text.to_owned(),
            back: None,
        },
    )
}

fn gone() -> HttpResponse {
    message(
        StatusCode::NOT_FOUND,
        "Link not valid",
        "This link is not valid: it may have been used up, withdrawn or mistyped.",
    )
}

/// The page for a use case's error. Redemption failures of every kind are one
/// message; the throttle and an unavailable database say to wait.
fn failure(error: AppError, back: Option<String>) -> HttpResponse {
    let (status, heading, text, retry_after) = match error {
        AppError::InvalidCode | AppError::Redemption(_) => (
            StatusCode::NOT_FOUND,
            "Not redeemed",
            FAILURE_MESSAGE.to_owned(),
            None,
        ),
        AppError::NotFound => return gone(),
        AppError::TooManyAttempts {
            retry_after_seconds,
        } => (
            StatusCode::TOO_MANY_REQUESTS,
            "Too many attempts",
            format!("Too many failed attempts. Please try again in {retry_after_seconds} seconds."),
            Some(retry_after_seconds),
        ),
        AppError::Invalid(_) => (
            StatusCode::BAD_REQUEST,
            "Not redeemed",
            "The form was not filled in as expected.".to_owned(),
            None,
        ),
        AppError::Unavailable => (
            StatusCode::SERVICE_UNAVAILABLE,
            "Try again soon",
            "The service is briefly unavailable. Please try again in a moment.".to_owned(),
            Some(UNAVAILABLE_RETRY_AFTER_SECS),
        ),
        other => {
            tracing::error!(error = %other, "a page's use case failed");
            (
                StatusCode::INTERNAL_SERVER_ERROR,
                "Something went wrong",
                "Something went wrong on our side. Please try again later.".to_owned(),
                None,
            )
        }
    };
    let mut response = html(
        status,
        &MessagePage {
            heading,
            message: text,
            back,
        },
    );
    if let Some(seconds) = retry_after {
        response
            .headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from(seconds));
    }
    response
}

/// Runs a (synchronous, database-bound) use case on actix's blocking pool.
async fn run<T, F>(use_case: F) -> AppResult<T>
where
    F: FnOnce() -> AppResult<T> + Send + 'static,
    T: Send + 'static,
{
    web::block(use_case)
        .await
        .unwrap_or_else(|error| Err(AppError::Internal(format!("blocking pool: {error}"))))
}

async fn stylesheet() -> HttpResponse {
    HttpResponse::Ok()
        .insert_header((header::CACHE_CONTROL, "public, max-age=3600"))
        .insert_header((header::X_CONTENT_TYPE_OPTIONS, "nosniff"))
        .content_type("text/css; charset=utf-8")
        .body(STYLESHEET)
}

async fn link_page(
    req: HttpRequest,
    state: web::Data<AppState>,
    path: web::Path<String>,
) -> HttpResponse {
    // A path that cannot be a link token names nothing: 404 without a lookup.
    let Ok(token) = LinkToken::parse(&path) else {
        return gone();
    };
    let links = state.links.clone();
    match run(move || links.view_link(&token)).await {
        Ok(view) => {
            let action = req.path().to_owned();
            html(StatusCode::OK, &LinkPage::new(&view, action))
        }
        Err(error) => failure(error, None),
    }
}

/// `POST /r/{linkToken}`: the link page's form.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct LinkForm {
    email: Option<String>,
}

async fn redeem_link(
    req: HttpRequest,
    state: web::Data<AppState>,
    path: web::Path<String>,
    form: Result<web::Form<LinkForm>, actix_web::Error>,
) -> HttpResponse {
    let Ok(form) = form else {
        return failure(
            AppError::Invalid(tessera_domain::DomainError::new("form", "is malformed")),
            None,
        );
    };
    let request = LinkRedeemRequest {
        token: LinkToken::parse(&path).ok(),
        email: form.into_inner().email,
        client: client_address(&req, &state.settings.trusted_proxies),
    };
    let back = req.path().to_owned();
    let links = state.links.clone();
    let outcome = run(move || {
        let redemption = links.redeem_link(request)?;
        // The name is for the page only; the redemption has committed already.
        let name = links
            .code_form(&redemption.grant.program_id)
            .ok()
            .and_then(|form| form.program_name);
        Ok((redemption, name))
    })
    .await;
    match outcome {
        Ok((redemption, name)) => html(
            StatusCode::OK,
            &SuccessPage::new(&redemption, name.as_deref()),
        ),
        Err(error) => failure(error, Some(back)),
    }
}

async fn link_qr(state: web::Data<AppState>, path: web::Path<String>) -> HttpResponse {
    let Ok(token) = LinkToken::parse(&path) else {
        return gone();
    };
    let links = state.links.clone();
    let view = match run(move || links.view_link(&token).map(|view| (view, token))).await {
        Ok(found) => found,
        Err(error) => return failure(error, None),
    };
    let (view, token) = view;
    let Some(prefix) = view.url_prefix else {
        return gone();
    };
    let link = format!("{}{}", prefix.as_str(), token.expose_secret());
    match qrcode::QrCode::new(link.as_bytes()) {
        Ok(code) => {
            let svg = code
                .render::<qrcode::render::svg::Color>()
                .min_dimensions(256, 256)
                .build();
            secure(StatusCode::OK)
                .content_type("image/svg+xml")
                .body(svg)
        }
        Err(error) => failure(AppError::Internal(format!("QR code: {error}")), None),
    }
}

/// `GET /redeem?programId=`.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct FormQuery {
    program_id: Option<String>,
}

async fn code_form(
    state: web::Data<AppState>,
    query: Result<web::Query<FormQuery>, actix_web::Error>,
) -> HttpResponse {
    let program = query
        .ok()
        .and_then(|query| query.into_inner().program_id)
        .and_then(|raw| ProgramId::parse(&raw).ok());
    let Some(program) = program else {
        return message(
            StatusCode::NOT_FOUND,
            "Page not found",
            "This page needs the address you were given, with its program.",
        );
    };
    let links = state.links.clone();
    match run(move || links.code_form(&program)).await {
        Ok(form) => html(StatusCode::OK, &FormPage::new(&form, None)),
        Err(AppError::NotFound) => message(
            StatusCode::NOT_FOUND,
            "Page not found",
            "This page needs the address you were given, with its program.",
        ),
        Err(error) => failure(error, None),
    }
}

/// `POST /redeem`: the code form.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub(crate) struct CodeFormBody {
    program_id: String,
    code: String,
    email: Option<String>,
}

async fn redeem_code(
    req: HttpRequest,
    state: web::Data<AppState>,
    form: Result<web::Form<CodeFormBody>, actix_web::Error>,
) -> HttpResponse {
    let Ok(form) = form else {
        return failure(
            AppError::Invalid(tessera_domain::DomainError::new("form", "is malformed")),
            None,
        );
    };
    let form = form.into_inner();
    let program_id = ProgramId::parse(&form.program_id).ok();
    let request = RedeemRequest {
        program_id: program_id.clone(),
        tenant_id: None,
        code: PresentedCode::new(form.code),
        email: form.email,
        redeemer_id: None,
        client: client_address(&req, &state.settings.trusted_proxies),
    };
    let (redeem, links) = (state.redeem.clone(), state.links.clone());
    let outcome = run(move || {
        let redeemed = redeem.redeem(None, request);
        // The form is shown again on failure, so the person can correct the code.
        let form = program_id.and_then(|program| links.code_form(&program).ok());
        Ok((redeemed, form))
    })
    .await;
    match outcome {
        Ok((Ok(redemption), form)) => {
            let name = form.and_then(|form| form.program_name);
            html(
                StatusCode::OK,
                &SuccessPage::new(&redemption, name.as_deref()),
            )
        }
        Ok((Err(AppError::InvalidCode | AppError::Redemption(_)), Some(form))) => html(
            StatusCode::NOT_FOUND,
            &FormPage::new(&form, Some(FAILURE_MESSAGE)),
        ),
        Ok((Err(error), _)) | Err(error) => failure(error, None),
    }
}
