#![allow(dead_code)]

use std::sync::Arc;

use actix_web::http::header::HeaderMap;
use actix_web::http::StatusCode;
use actix_web::{test, App};
use chrono::{DateTime, TimeZone, Utc};
use serde_json::Value;
use tessera_app::events::MockEventUseCases;
use tessera_app::links::MockLinkUseCases;
use tessera_app::model::TicketView;
use tessera_app::usecases::{
    MockAccessUseCases, MockHealthUseCases, MockProgramUseCases, MockRedeemUseCases,
    MockStandaloneUseCases, MockTicketUseCases, Principal,
};
use tessera_app::webhooks::MockWebhookUseCases;
use tessera_app::AppError;
use tessera_domain::{
    Alphabet, ApiKeyId, GroupAddresses, Label, MaxTickets, NewProgram, NtpClass, ObjectId, Program,
    ProgramId, RedemptionLimit, Role, TenantId, Ticket, TicketId, TicketLength, TicketState,
    UrlPrefix, ValidityWindow,
};
use tessera_http::{configure, AppState, HttpSettings};

pub const ADMIN_KEY: &str = "tsk_admin";
pub const ISSUER_KEY: &str = "tsk_issuer";
pub const REDEEMER_KEY: &str = "tsk_redeemer";

pub struct Mocks {
    pub access: MockAccessUseCases,
    pub programs: MockProgramUseCases,
    pub tickets: MockTicketUseCases,
    pub redeem: MockRedeemUseCases,
    pub lifecycle: tessera_app::usecases::MockLifecycleUseCases,
    pub idempotency: tessera_app::idempotency::MockIdempotencyUseCases,
    pub standalone: MockStandaloneUseCases,
    pub health: MockHealthUseCases,
    pub links: MockLinkUseCases,
    pub webhooks: MockWebhookUseCases,
    pub events: MockEventUseCases,
    /// `None` (the default): every redemption and standalone use runs on the blocking pool.
    pub queued: Option<Arc<dyn tessera_app::usecases::QueuedUseCases>>,
    pub settings: HttpSettings,
}

pub fn tenant() -> TenantId {
    TenantId::parse("ten_11111111111111111111").unwrap()
}

pub fn principal(role: Role) -> Principal {
    Principal {
        tenant_id: tenant(),
        key_id: ApiKeyId::parse("key_11111111111111111111").unwrap(),
        role,
    }
}

impl Mocks {
    /// No expectations at all: any use case call fails the request (500).
    pub fn bare() -> Self {
        Self {
            access: MockAccessUseCases::new(),
            programs: MockProgramUseCases::new(),
            tickets: MockTicketUseCases::new(),
            redeem: MockRedeemUseCases::new(),
            lifecycle: tessera_app::usecases::MockLifecycleUseCases::new(),
            idempotency: tessera_app::idempotency::MockIdempotencyUseCases::new(),
            standalone: MockStandaloneUseCases::new(),
            health: MockHealthUseCases::new(),
            links: MockLinkUseCases::new(),
            webhooks: MockWebhookUseCases::new(),
            events: MockEventUseCases::new(),
            queued: None,
            settings: HttpSettings::default(),
        }
    }

    /// Knows the three test keys; any other key is unknown.
    pub fn new() -> Self {
        let mut mocks = Self::bare();
        mocks
            .access
            .expect_authenticate()
            .returning(|key| match key.expose_secret() {
                ADMIN_KEY => Ok(principal(Role::Admin)),
                ISSUER_KEY => Ok(principal(Role::Issuer)),
                REDEEMER_KEY => Ok(principal(Role::Redeemer)),
                _ => Err(AppError::Unauthorized),
            });
        mocks
    }

    pub fn state(self) -> AppState {
        AppState {
            access: Arc::new(self.access),
            programs: Arc::new(self.programs),
            tickets: Arc::new(self.tickets),
            redeem: Arc::new(self.redeem),
            queued: self.queued,
            lifecycle: Arc::new(self.lifecycle),
            idempotency: Arc::new(self.idempotency),
            standalone: Arc::new(self.standalone),
            health: Arc::new(self.health),
            links: Arc::new(self.links),
            webhooks: Arc::new(self.webhooks),
            events: Arc::new(self.events),
            settings: self.settings,
        }
    }
}

#[derive(Debug)]
pub struct Reply {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Value,
    pub text: String,
}

impl Reply {
    pub fn code(&self) -> &str {
        self.body["error"]["code"].as_str().unwrap_or("<none>")
    }

    pub fn message(&self) -> &str {
        self.body["error"]["message"].as_str().unwrap_or("<none>")
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    /// Asserts an error response of exactly the API's shape.
    #[track_caller]
    pub fn assert_error(&self, status: u16, code: &str) {
        assert_eq!(self.status.as_u16(), status, "body: {}", self.text);
        assert_eq!(self.code(), code, "body: {}", self.text);
        let error = self.body["error"].as_object().expect("error object");
        assert_eq!(error.len(), 2, "only code and message: {}", self.text);
        assert!(!self.message().is_empty());
        assert_eq!(self.body.as_object().map(|o| o.len()), Some(1));
    }
}

pub async fn send(mocks: Mocks, req: test::TestRequest) -> Reply {
    let app = test::init_service(App::new().configure(configure(mocks.state()))).await;
    let res = test::call_service(&app, req.to_request()).await;
    let status = res.status();
    let headers = res.headers().clone();
    let bytes = test::read_body(res).await;
    let text = String::from_utf8_lossy(&bytes).into_owned();
    let body = if bytes.is_empty() {
        Value::Null
    } else {
        serde_json::from_slice(&bytes).unwrap_or_else(|e| panic!("not JSON ({e}): {text}"))
    };
    Reply {
        status,
        headers,
        body,
        text,
    }
}

/// A response read as raw bytes: `body` is `Err` when the body ended with an
/// error (a stream cut short).
#[derive(Debug)]
pub struct RawReply {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Result<actix_web::web::Bytes, String>,
}

impl RawReply {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    #[track_caller]
    pub fn text(&self) -> String {
        let bytes = self.body.as_ref().expect("a complete body");
        String::from_utf8(bytes.to_vec()).expect("UTF-8")
    }
}

pub async fn send_raw(mocks: Mocks, req: test::TestRequest) -> RawReply {
    let app = test::init_service(App::new().configure(configure(mocks.state()))).await;
    let res = test::call_service(&app, req.to_request()).await;
    let status = res.status();
    let headers = res.headers().clone();
    let body = actix_web::body::to_bytes(res.into_body())
        .await
        .map_err(|error| error.to_string());
    RawReply {
        status,
        headers,
        body,
    }
}

pub fn get(path: &str, key: &str) -> test::TestRequest {
    test::TestRequest::get()
        .uri(path)
        .insert_header(("Authorization", format!("Bearer {key}")))
}

pub fn delete(path: &str, key: &str) -> test::TestRequest {
    test::TestRequest::delete()
        .uri(path)
        .insert_header(("Authorization", format!("Bearer {key}")))
}

pub fn post_json(path: &str, key: Option<&str>, body: &str) -> test::TestRequest {
    let req = test::TestRequest::post()
        .uri(path)
        .insert_header(("Content-Type", "application/json"))
        .set_payload(body.to_owned());
    match key {
        Some(key) => req.insert_header(("Authorization", format!("Bearer {key}"))),
        None => req,
    }
}

pub fn patch_json(path: &str, key: &str, body: &str) -> test::TestRequest {
    test::TestRequest::patch()
        .uri(path)
        .insert_header(("Content-Type", "application/json"))
        .insert_header(("Authorization", format!("Bearer {key}")))
        .set_payload(body.to_owned())
}

pub fn at_millis(millis: i64) -> DateTime<Utc> {
    Utc.timestamp_millis_opt(millis).unwrap()
}

/// 2020-11-02T23:55:51.043Z
pub const START_MS: i64 = 1_604_361_351_043;
/// 2020-11-03T23:55:51.043Z
pub const END_MS: i64 = START_MS + 86_400_000;

pub const PROGRAM_ID: &str = "prg_22222222222222221111";
pub const TICKET_ID: &str = "tkt_33333333333333331111";

pub fn program_id() -> ProgramId {
    ProgramId::parse(PROGRAM_ID).unwrap()
}

pub fn ticket_id() -> TicketId {
    TicketId::parse(TICKET_ID).unwrap()
}

pub fn new_program() -> NewProgram {
    NewProgram {
        name: Some(Label::try_from("Launch".to_owned()).unwrap()),
        object_id: ObjectId::try_from("iq__3ax1".to_owned()).unwrap(),
        group_addresses: GroupAddresses::try_from(vec!["0x96bb".to_owned()]).unwrap(),
        ntp_class: NtpClass::DEFAULT,
        max_tickets: MaxTickets::try_from(10).unwrap(),
        max_redemptions: RedemptionLimit::try_from(3).unwrap(),
        window: ValidityWindow::new(at_millis(START_MS), at_millis(END_MS)).unwrap(),
        ticket_length: TicketLength::DEFAULT,
        alphabet: Alphabet::Humane,
        url_prefix: Some(UrlPrefix::try_from("https://t.example/r/".to_owned()).unwrap()),
        one_active_per_subject: false,
        allow_rollback: true,
        code_pattern: None,
        check_digit: false,
    }
}

pub fn program() -> Program {
    let mut program = Program::create(
        program_id(),
        tenant(),
        new_program(),
        at_millis(START_MS - 1000),
    )
    .unwrap();
    program.version = 3;
    program.issued_tickets = 2;
    program
}

pub fn ticket_view() -> TicketView {
    TicketView {
        ticket: Ticket {
            id: ticket_id(),
            tenant_id: tenant(),
            program_id: program_id(),
            email: None,
            subject: None,
            max_redemptions: Some(RedemptionLimit::try_from(5).unwrap()),
            per_redeemer_limit: None,
            redemptions: 1,
            state: TicketState::Active,
            failed_attempts: 0,
            payload: None,
            last_redeemed_at: Some(at_millis(START_MS)),
            last_failed_at: None,
            locked_until: None,
            created_at: at_millis(START_MS - 1000),
            version: 2,
        },
        program_limit: RedemptionLimit::try_from(3).unwrap(),
        held: 0,
    }
}
