//! Builds a [`Tessera`] over mockall mocks of its ports, with a clock that stands
//! still, a deterministic fake hasher, a signer that hands out a fixed access
//! token, and principals for every role.
//!
//! Usage: `let mut h = Harness::new();` set expectations on `h.programs`,
//! `h.tickets`, … then `let app = h.build();`. A store without an expectation
//! panics when called, so a test that sets none proves the store was not called.
//! Tests about signing replace `h.signer` with a fresh `MockTokenSigner` and set
//! exact expectations on it.

use std::sync::{Arc, Mutex};

use chrono::{DateTime, Duration, TimeZone, Utc};
use tessera_domain::{
    Alphabet, ApiKeyId, GroupAddresses, MaxTickets, NewProgram, NewTicketSpec, NtpClass, ObjectId,
    Program, ProgramId, RedemptionLimit, Role, TenantId, Ticket, TicketLength, ValidityWindow,
};

use super::{Limits, Tessera, TesseraPorts};
use crate::links::MockLinkStore;
use crate::model::{AccessToken, SecretHash, TicketView};
use crate::ports::{
    MockAccessStore, MockClock, MockHealthProbe, MockProgramStore, MockRedemptionStore,
    MockSecretHasher, MockStandaloneStore, MockTicketStore, MockTokenSigner,
};
use crate::usecases::Principal;

/// The instant the harness's clock always answers: 2026-11-02T23:55:51.043Z.
pub(crate) fn now() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 11, 2, 23, 55, 51)
        .single()
        .expect("a valid instant")
        + Duration::milliseconds(43)
}

/// The tenant every principal from [`principal`] belongs to.
pub(crate) fn tenant() -> TenantId {
    TenantId::parse("ten_TenantA1111111111111").expect("a well-formed tenant id")
}

/// A tenant that is not [`tenant`].
pub(crate) fn other_tenant() -> TenantId {
    TenantId::parse("ten_TenantB2222222221111").expect("a well-formed tenant id")
}

/// A caller of [`tenant`] with `role`.
pub(crate) fn principal(role: Role) -> Principal {
    principal_of(tenant(), role)
}

/// A caller of `tenant_id` with `role`.
pub(crate) fn principal_of(tenant_id: TenantId, role: Role) -> Principal {
    Principal {
        tenant_id,
        key_id: ApiKeyId::generate(),
        role,
    }
}

pub(crate) fn admin() -> Principal {
    principal(Role::Admin)
}

pub(crate) fn issuer() -> Principal {
    principal(Role::Issuer)
}

pub(crate) fn redeemer() -> Principal {
    principal(Role::Redeemer)
}

/// Every role except `allowed`: the callers a use case must refuse.
pub(crate) fn roles_except(allowed: &[Role]) -> Vec<Role> {
    [Role::Admin, Role::Issuer, Role::Redeemer]
        .into_iter()
        .filter(|role| !allowed.contains(role))
        .collect()
}

/// A deterministic stand-in for HMAC-SHA-256: FNV-1a over the parts (with a
/// separator so `["ab", "c"]` and `["a", "bc"]` differ), run with four seeds to
/// fill 32 bytes. Different inputs give different hashes in practice.
pub(crate) fn fake_hash(parts: &[&str]) -> SecretHash {
    const SEEDS: [u64; 4] = [
        0xcbf2_9ce4_8422_2325,
        0x9e37_79b9_7f4a_7c15,
        0xc2b2_ae3d_27d4_eb4f,
        0x1656_67b1_9e37_79f9,
    ];
    let mut out = [0u8; 32];
    for (chunk, seed) in out.chunks_mut(8).zip(SEEDS) {
        let mut state = seed;
        for part in parts {
            for byte in part.bytes().chain(std::iter::once(0xff)) {
                state ^= u64::from(byte);
                state = state.wrapping_mul(0x0100_0000_01b3);
            }
        }
        chunk.copy_from_slice(&state.to_be_bytes());
    }
    SecretHash(out)
}

/// What the fake hasher answers for a program ticket's code.
pub(crate) fn code_hash_of(tenant_id: &TenantId, code: &str) -> SecretHash {
    fake_hash(&["code", tenant_id.as_str(), code])
}

/// What the fake hasher answers for an API key's secret.
pub(crate) fn api_key_hash_of(presented: &str) -> SecretHash {
    fake_hash(&["api-key", presented])
}

/// What the fake hasher answers for a standalone ticket's token.
pub(crate) fn standalone_hash_of(tenant_id: &TenantId, token: &str) -> SecretHash {
    fake_hash(&["standalone", tenant_id.as_str(), token])
}

/// What the fake hasher answers for a link token.
pub(crate) fn link_hash_of(token: &str) -> SecretHash {
    fake_hash(&["link", token])
}

/// A hasher mock that answers every call with the `*_hash_of` functions above.
pub(crate) fn fake_hasher() -> MockSecretHasher {
    let mut hasher = MockSecretHasher::new();
    hasher
        .expect_code_hash()
        .returning(|tenant_id, code| code_hash_of(tenant_id, code.expose_secret()));
    hasher.expect_api_key_hash().returning(api_key_hash_of);
    hasher
        .expect_standalone_hash()
        .returning(|tenant_id, token| standalone_hash_of(tenant_id, token.expose_secret()));
    hasher
        .expect_link_hash()
        .returning(|token| link_hash_of(token.expose_secret()));
    hasher.expect_redeemer_hash().returning(redeemer_hash_of);
    hasher
}

/// What the fake hasher answers for a `redeemerId`.
pub(crate) fn redeemer_hash_of(tenant_id: &TenantId, redeemer: &str) -> SecretHash {
    fake_hash(&["redeemer", tenant_id.as_str(), redeemer])
}

/// The access token the harness's default signer hands out for any claims.
pub(crate) fn access_token() -> AccessToken {
    AccessToken::new("eyJhbGciOiJFZERTQSJ9.e30.c2lnbmF0dXJl".to_owned(), 3600)
}

/// A signer mock that answers every `access_token` with [`access_token`] and
/// expects no other call: signing or verifying a code fails the test.
pub(crate) fn token_only_signer() -> MockTokenSigner {
    let mut signer = MockTokenSigner::new();
    signer
        .expect_access_token()
        .returning(|_, _| access_token());
    signer
}

/// A clock mock that always answers [`now`].
pub(crate) fn fixed_clock() -> MockClock {
    let mut clock = MockClock::new();
    clock.expect_now().returning(now);
    clock
}

/// An active program of [`tenant`] whose window contains [`now`]: alphanumeric
/// codes of 6 characters, 100 redemptions per ticket, no ticket cap.
pub(crate) fn program() -> Program {
    program_in(tenant())
}

/// Like [`program`], in `tenant_id`.
pub(crate) fn program_in(tenant_id: TenantId) -> Program {
    Program::create(ProgramId::generate(), tenant_id, new_program(), now())
        .expect("the fixture program is valid")
}

/// What a client sends to create [`program`].
pub(crate) fn new_program() -> NewProgram {
    NewProgram {
        name: None,
        object_id: ObjectId::try_from("iq__3ax1".to_owned()).expect("valid object id"),
        group_addresses: GroupAddresses::try_from(vec!["0x96bb".to_owned()]).expect("valid groups"),
        ntp_class: NtpClass::DEFAULT,
        max_tickets: MaxTickets::UNLIMITED,
        max_redemptions: RedemptionLimit::DEFAULT,
        window: ValidityWindow::new(now() - Duration::days(1), now() + Duration::days(30))
            .expect("valid window"),
        ticket_length: TicketLength::DEFAULT,
        alphabet: Alphabet::Alphanumeric,
        url_prefix: None,
        one_active_per_subject: false,
        allow_rollback: true,
        code_pattern: None,
        check_digit: false,
    }
}

/// An active ticket of `program`, at version 1, never redeemed.
pub(crate) fn ticket_view(program: &Program) -> TicketView {
    TicketView {
        ticket: Ticket::new_active(program, NewTicketSpec::default(), now()),
        program_limit: program.max_redemptions,
        held: 0,
    }
}

/// Collects what a mock's `returning` closure saw, for assertions after the call.
#[derive(Debug)]
pub(crate) struct Recorder<T>(Arc<Mutex<Vec<T>>>);

impl<T> Clone for Recorder<T> {
    fn clone(&self) -> Self {
        Self(Arc::clone(&self.0))
    }
}

impl<T: Clone> Recorder<T> {
    pub(crate) fn new() -> Self {
        Self(Arc::new(Mutex::new(Vec::new())))
    }

    pub(crate) fn record(&self, value: T) {
        self.0.lock().expect("recorder lock").push(value);
    }

    pub(crate) fn all(&self) -> Vec<T> {
        self.0.lock().expect("recorder lock").clone()
    }
}

/// The mocks a [`Tessera`] is built from. Set expectations on the public fields,
/// then call [`Harness::build`].
pub(crate) struct Harness {
    pub(crate) clock: MockClock,
    pub(crate) hasher: MockSecretHasher,
    pub(crate) signer: MockTokenSigner,
    pub(crate) access: MockAccessStore,
    pub(crate) programs: MockProgramStore,
    pub(crate) tickets: MockTicketStore,
    pub(crate) redemptions: MockRedemptionStore,
    pub(crate) lifecycle: crate::ports::MockLifecycleStore,
    pub(crate) standalone: MockStandaloneStore,
    pub(crate) health: MockHealthProbe,
    pub(crate) links: MockLinkStore,
    pub(crate) limits: Limits,
    /// Every equal-time probe the redemption store was asked for (its program).
    pub(crate) probes: Recorder<tessera_domain::ProgramId>,
}

impl Harness {
    /// A fixed clock, the fake hasher, a signer that only hands out access tokens,
    /// default limits, and stores that expect nothing (any call to them fails the
    /// test).
    pub(crate) fn new() -> Self {
        let probes = Recorder::new();
        let mut redemptions = MockRedemptionStore::new();
        let seen = probes.clone();
        redemptions.expect_probe().returning(move |program, _, _| {
            seen.record(program.clone());
            Ok(())
        });
        Self {
            clock: fixed_clock(),
            hasher: fake_hasher(),
            signer: token_only_signer(),
            access: MockAccessStore::new(),
            programs: MockProgramStore::new(),
            tickets: MockTicketStore::new(),
            redemptions,
            lifecycle: crate::ports::MockLifecycleStore::new(),
            standalone: MockStandaloneStore::new(),
            health: MockHealthProbe::new(),
            links: MockLinkStore::new(),
            // One batch writer, so that a batch's steps come in a fixed order the
            // tests can pin; tests of several writers set their own.
            limits: Limits {
                batch_writers: 1,
                ..Limits::default()
            },
            probes,
        }
    }

    pub(crate) fn build(self) -> Tessera {
        Tessera::new(
            TesseraPorts {
                clock: Arc::new(self.clock),
                hasher: Arc::new(self.hasher),
                signer: Arc::new(self.signer),
                access: Arc::new(self.access),
                programs: Arc::new(self.programs),
                tickets: Arc::new(self.tickets),
                redemptions: Arc::new(self.redemptions),
                lifecycle: Arc::new(self.lifecycle),
                standalone: Arc::new(self.standalone),
                health: Arc::new(self.health),
                links: Arc::new(self.links),
            },
            self.limits,
        )
    }
}

/// A [`Tessera`] whose stores expect nothing: for calls that must be refused
/// before any store is touched.
pub(crate) fn untouched() -> Tessera {
    Harness::new().build()
}

#[test]
fn the_fake_hasher_is_deterministic_and_separates_its_inputs() {
    assert_eq!(
        code_hash_of(&tenant(), "abc123"),
        code_hash_of(&tenant(), "abc123")
    );
    assert_ne!(
        code_hash_of(&tenant(), "abc123"),
        code_hash_of(&tenant(), "abc124")
    );
    assert_ne!(
        code_hash_of(&tenant(), "abc123"),
        code_hash_of(&other_tenant(), "abc123")
    );
    assert_ne!(fake_hash(&["ab", "c"]), fake_hash(&["a", "bc"]));
    assert_ne!(api_key_hash_of("x"), link_hash_of("x"));
}
