//! Fixtures shared by the integration tests: a store on a fresh database, and
//! tenants, programs and tickets with fixed secret hashes.
#![allow(dead_code, clippy::unwrap_used)]

use chrono::{DateTime, TimeZone, Utc};
use diesel::sql_types::{BigInt, Text};
use diesel::{sql_query, QueryableByName, RunQueryDsl};
use sha2::{Digest, Sha256};
use tessera_app::model::{ApiKey, NewTicket, RedemptionAttempt, SecretHash, Tenant};
use tessera_app::ports::{AccessStore, ProgramStore, TicketStore};
use tessera_domain::{
    Alphabet, ApiKeyId, Email, GroupAddresses, Label, MaxTickets, NewProgram, NewTicketSpec,
    NtpClass, ObjectId, Payload, Program, ProgramId, RedemptionLimit, Role, Subject, TenantId,
    TenantName, Ticket, TicketId, TicketLength, ValidityWindow,
};
use tessera_postgres::testing::TestDatabase;
use tessera_postgres::{PgPool, PgStore};

pub struct Fixture {
    pub db: TestDatabase,
    pub store: PgStore,
}

pub fn fixture() -> Fixture {
    let db = TestDatabase::new();
    let store = PgStore::new(db.pool());
    Fixture { db, store }
}

/// A fixed secret hash per label: tests need no hasher.
pub fn hash(label: &str) -> SecretHash {
    SecretHash(Sha256::digest(label.as_bytes()).into())
}

/// A fixed instant `seconds` after an arbitrary origin, at millisecond precision
/// so it survives PostgreSQL's microsecond timestamps unchanged.
pub fn at(seconds: i64) -> DateTime<Utc> {
    Utc.timestamp_millis_opt(1_900_000_000_000 + seconds * 1000)
        .unwrap()
}

/// Inside every default program's window [at(0), at(1000)).
pub fn now() -> DateTime<Utc> {
    at(10)
}

pub fn tenant(store: &PgStore) -> TenantId {
    let tenant = Tenant {
        id: TenantId::generate(),
        name: TenantName::try_from("Acme".to_owned()).unwrap(),
        created_at: at(-100),
    };
    let key = ApiKey {
        id: ApiKeyId::generate(),
        tenant_id: tenant.id.clone(),
        name: Label::try_from("admin".to_owned()).unwrap(),
        role: Role::Admin,
        created_at: at(-100),
    };
    store
        .create_tenant(&tenant, &key, hash(tenant.id.as_str()))
        .unwrap();
    tenant.id
}

pub fn new_program(tenant: &TenantId, tweak: impl FnOnce(&mut NewProgram)) -> Program {
    let mut new = NewProgram {
        name: Some(Label::try_from("Gala".to_owned()).unwrap()),
        object_id: ObjectId::try_from("iq__obj".to_owned()).unwrap(),
        group_addresses: GroupAddresses::try_from(vec!["0x96bb".to_owned(), "0x11".to_owned()])
            .unwrap(),
        ntp_class: NtpClass::DEFAULT,
        max_tickets: MaxTickets::UNLIMITED,
        max_redemptions: RedemptionLimit::DEFAULT,
        window: ValidityWindow::new(at(0), at(1000)).unwrap(),
        ticket_length: TicketLength::DEFAULT,
        alphabet: Alphabet::Alphanumeric,
        url_prefix: None,
        one_active_per_subject: false,
        allow_rollback: true,
        code_pattern: None,
        check_digit: false,
    };
    tweak(&mut new);
    Program::create(ProgramId::generate(), tenant.clone(), new, at(-50)).unwrap()
}

pub fn program(store: &PgStore, tenant: &TenantId, tweak: impl FnOnce(&mut NewProgram)) -> Program {
    let program = new_program(tenant, tweak);
    store.insert(&program).unwrap();
    program
}

pub fn max_tickets(n: i64) -> MaxTickets {
    MaxTickets::try_from(n).unwrap()
}

pub fn limit(n: i64) -> RedemptionLimit {
    RedemptionLimit::try_from(n).unwrap()
}

pub fn ticket(program: &Program) -> Ticket {
    Ticket::new_active(program, NewTicketSpec::default(), at(-10))
}

pub fn new_ticket(program: &Program, code: &str, tweak: impl FnOnce(&mut Ticket)) -> NewTicket {
    let mut ticket = ticket(program);
    tweak(&mut ticket);
    NewTicket {
        ticket,
        code_hash: hash(code),
        link_hash: None,
    }
}

/// Issues a ticket whose code is `code`, returning its id.
pub fn issue(
    store: &PgStore,
    program: &Program,
    code: &str,
    tweak: impl FnOnce(&mut Ticket),
) -> TicketId {
    let new = new_ticket(program, code, tweak);
    store.issue(&new, now()).unwrap();
    new.ticket.id
}

pub fn email(raw: &str) -> Email {
    Email::parse(raw).unwrap()
}

pub fn subject(raw: &str) -> Subject {
    Subject::try_from(raw.to_owned()).unwrap()
}

pub fn payload(json: &str) -> Payload {
    Payload::from_json_text(json.to_owned()).unwrap()
}

/// The lock a fifth wrong email sets in these tests (the default setting).
pub const EMAIL_LOCK_SECONDS: u32 = 900;

pub fn attempt(program: &Program, code: &str, email: Option<&str>) -> RedemptionAttempt {
    attempt_at(program, code, email, now())
}

pub fn attempt_at(
    program: &Program,
    code: &str,
    email: Option<&str>,
    now: DateTime<Utc>,
) -> RedemptionAttempt {
    RedemptionAttempt {
        tenant_id: program.tenant_id.clone(),
        program_id: program.id.clone(),
        code_hash: hash(code),
        email: email.map(str::to_owned),
        now,
        redeemer: None,
        email_lock_seconds: EMAIL_LOCK_SECONDS,
        shared_failure: None,
    }
}

/// One bigint column `n`: what the tests' `count(*) AS n` queries return.
#[derive(QueryableByName)]
pub struct Count {
    #[diesel(sql_type = BigInt)]
    pub n: i64,
}

/// How many events of `kind` the tenant has.
pub fn events(pool: &PgPool, tenant: &TenantId, kind: &str) -> i64 {
    let mut conn = pool.get().unwrap();
    sql_query("SELECT count(*) AS n FROM events WHERE tenant_id = $1 AND type = $2")
        .bind::<Text, _>(tenant.as_str())
        .bind::<Text, _>(kind)
        .get_result::<Count>(&mut conn)
        .unwrap()
        .n
}

/// Runs a scalar bigint query with one text bind (the tenant).
pub fn scalar(pool: &PgPool, query: &str, tenant: &TenantId) -> i64 {
    let mut conn = pool.get().unwrap();
    sql_query(query)
        .bind::<Text, _>(tenant.as_str())
        .get_result::<Count>(&mut conn)
        .unwrap()
        .n
}

/// Polls `future` to its end on this thread, parked between wake-ups (the
/// store's own threads wake it when they answer).
pub fn block_on<F: std::future::Future>(future: F) -> F::Output {
    use std::sync::Arc;
    use std::task::{Context, Poll, Wake, Waker};
    struct Unpark(std::thread::Thread);
    impl Wake for Unpark {
        fn wake(self: Arc<Self>) {
            self.0.unpark();
        }
    }
    let waker = Waker::from(Arc::new(Unpark(std::thread::current())));
    let mut context = Context::from_waker(&waker);
    let mut future = std::pin::pin!(future);
    loop {
        if let Poll::Ready(output) = future.as_mut().poll(&mut context) {
            return output;
        }
        std::thread::park();
    }
}
