//! The pages' templates (askama: checked at compile time, HTML-escaped).

use askama::Template;
use chrono::{DateTime, SecondsFormat, Utc};
use tessera_app::links::{CodeForm, LinkView};
use tessera_app::usecases::Redemption;

/// What a program grants, in words: its name, else its object.
fn grants(name: Option<&str>, object_id: &str) -> String {
    name.map_or_else(|| object_id.to_owned(), str::to_owned)
}

fn machine_time(at: DateTime<Utc>) -> String {
    at.to_rfc3339_opts(SecondsFormat::Secs, true)
}

fn human_time(at: DateTime<Utc>) -> String {
    at.format("%-d %B %Y, %H:%M UTC").to_string()
}

#[derive(Template)]
#[template(path = "pages/link.html")]
pub(crate) struct LinkPage {
    grants: String,
    remaining: u32,
    valid_until: String,
    valid_until_text: String,
    not_yet: bool,
    valid_from: String,
    valid_from_text: String,
    email_required: bool,
    action: String,
}

impl LinkPage {
    /// `action` is the page's own path (`/r/{token}`), which the button posts to.
    pub(crate) fn new(view: &LinkView, action: String) -> Self {
        Self {
            grants: grants(view.program_name.as_deref(), &view.object_id),
            remaining: view.remaining,
            valid_until: machine_time(view.valid_until),
            valid_until_text: human_time(view.valid_until),
            not_yet: view.not_yet_valid,
            valid_from: machine_time(view.valid_from),
            valid_from_text: human_time(view.valid_from),
            email_required: view.email_required,
            action,
        }
    }
}

#[derive(Template)]
#[template(path = "pages/form.html")]
pub(crate) struct FormPage {
    grants: String,
    program_id: String,
    message: Option<&'static str>,
}

impl FormPage {
    pub(crate) fn new(form: &CodeForm, message: Option<&'static str>) -> Self {
        Self {
            grants: grants(form.program_name.as_deref(), &form.object_id),
            program_id: form.program_id.as_str().to_owned(),
            message,
        }
    }
}

#[derive(Template)]
#[template(path = "pages/success.html")]
pub(crate) struct SuccessPage {
    grants: String,
    remaining: u32,
    ticket_id: String,
    payload: Option<String>,
}

impl SuccessPage {
    pub(crate) fn new(redemption: &Redemption, program_name: Option<&str>) -> Self {
        let grant = &redemption.grant;
        Self {
            grants: grants(program_name, &grant.object_id),
            remaining: grant.remaining,
            ticket_id: grant.ticket_id.as_str().to_owned(),
            payload: grant
                .payload
                .as_ref()
                .map(|payload| pretty_json(payload.as_json_text())),
        }
    }
}

/// The payload indented for reading; as stored when it does not parse.
fn pretty_json(text: &str) -> String {
    serde_json::from_str::<serde_json::Value>(text)
        .ok()
        .and_then(|value| serde_json::to_string_pretty(&value).ok())
        .unwrap_or_else(|| text.to_owned())
}

/// A page with a heading and one message: failures, 404, 429, 503.
#[derive(Template)]
#[template(path = "pages/message.html")]
pub(crate) struct MessagePage {
    pub(crate) heading: &'static str,
    pub(crate) message: String,
    /// Where "Try again" leads, if anywhere.
    pub(crate) back: Option<String>,
}
