mod common;

use common::{at, attempt, attempt_at, events, fixture, limit, now};
use tessera_app::ports::{ProgramStore, RedemptionStore, TicketStore};
use tessera_domain::{
    ProgramChanges, RedemptionFailure, TicketState, EMAIL_MISMATCHES_BEFORE_LOCK,
};

#[test]
fn a_redemption_grants_what_the_program_says_and_counts_one_use() {
    let f = fixture();
    let tenant = common::tenant(&f.store);
    let program = common::program(&f.store, &tenant, |new| new.max_redemptions = limit(3));
    let id = common::issue(&f.store, &program, "code", |t| {
        t.payload = Some(common::payload(r#"{"seat":"A1"}"#));
        t.failed_attempts = 2;
    });
    let redeemed = f
        .store
        .redeem(&attempt(&program, "code", None))
        .unwrap()
        .unwrap();
    assert_eq!(redeemed.ticket_id, id);
    assert_eq!(redeemed.remaining, 2);
    assert_eq!(redeemed.object_id, "iq__obj");
    assert_eq!(redeemed.group_addresses, ["0x96bb", "0x11"]);
    assert_eq!(redeemed.payload, Some(common::payload(r#"{"seat":"A1"}"#)));
    let view = TicketStore::get(&f.store, &tenant, &id).unwrap();
    assert_eq!(view.ticket.redemptions, 1);
    assert_eq!(
        view.ticket.failed_attempts, 0,
        "a success resets the failures"
    );
    assert_eq!(view.ticket.last_redeemed_at, Some(now()));
    assert_eq!(view.ticket.version, 1, "redemption is not an admin change");
    assert_eq!(events(&f.db.pool(), &tenant, "ticket.redeemed"), 1);
}

#[test]
fn the_last_use_exhausts_the_ticket() {
    let f = fixture();
    let tenant = common::tenant(&f.store);
    let program = common::program(&f.store, &tenant, |_| {});
    common::issue(&f.store, &program, "code", |t| {
        t.max_redemptions = Some(limit(2))
    });
    let first = f
        .store
        .redeem(&attempt(&program, "code", None))
        .unwrap()
        .unwrap();
    assert_eq!(first.remaining, 1);
    let second = f
        .store
        .redeem(&attempt(&program, "code", None))
        .unwrap()
        .unwrap();
    assert_eq!(second.remaining, 0);
    assert_eq!(
        f.store.redeem(&attempt(&program, "code", None)).unwrap(),
        Err(RedemptionFailure::TicketExhausted)
    );
    let pool = f.db.pool();
    assert_eq!(events(&pool, &tenant, "ticket.redeemed"), 2);
    assert_eq!(events(&pool, &tenant, "ticket.exhausted"), 1);
    assert_eq!(events(&pool, &tenant, "ticket.redemption_failed"), 1);
}

#[test]
fn a_lowered_program_limit_exhausts_tickets_already_issued() {
    let f = fixture();
    let tenant = common::tenant(&f.store);
    let program = common::program(&f.store, &tenant, |new| new.max_redemptions = limit(5));
    let id = common::issue(&f.store, &program, "code", |_| {});
    for _ in 0..2 {
        f.store
            .redeem(&attempt(&program, "code", None))
            .unwrap()
            .unwrap();
    }
    let lowered = program
        .apply(
            ProgramChanges {
                max_redemptions: Some(limit(2)),
                ..ProgramChanges::default()
            },
            at(5),
        )
        .unwrap();
    f.store
        .update(&lowered, tessera_domain::EventType::ProgramUpdated)
        .unwrap();
    assert_eq!(
        f.store.redeem(&attempt(&program, "code", None)).unwrap(),
        Err(RedemptionFailure::TicketExhausted)
    );
    assert_eq!(
        TicketStore::get(&f.store, &tenant, &id)
            .unwrap()
            .remaining(),
        0
    );
}

#[test]
fn each_program_rule_has_its_reason() {
    let f = fixture();
    let tenant = common::tenant(&f.store);
    let program = common::program(&f.store, &tenant, |_| {});
    common::issue(&f.store, &program, "code", |_| {});
    let redeem_at = |seconds| {
        f.store
            .redeem(&attempt_at(&program, "code", None, at(seconds)))
    };
    assert_eq!(
        redeem_at(-1).unwrap(),
        Err(RedemptionFailure::ProgramNotStarted)
    );
    assert_eq!(
        redeem_at(1000).unwrap(),
        Err(RedemptionFailure::ProgramEnded)
    );
    assert!(
        redeem_at(0).unwrap().is_ok(),
        "the window includes its start"
    );
    f.store
        .update(
            &program.suspended(at(1)),
            tessera_domain::EventType::ProgramSuspended,
        )
        .unwrap();
    assert_eq!(
        redeem_at(10).unwrap(),
        Err(RedemptionFailure::ProgramSuspended)
    );
    let stored = ProgramStore::get(&f.store, &tenant, &program.id).unwrap();
    let view = TicketStore::list(&f.store, &tenant, &program.id, Default::default()).unwrap();
    assert_eq!(
        view.items[0].ticket.last_failed_at, None,
        "a rule failure writes nothing to the ticket (only wrong emails do), so it \
         costs what an unknown code costs"
    );
    assert_eq!(stored.state, tessera_domain::ProgramState::Suspended);
    assert_eq!(events(&f.db.pool(), &tenant, "ticket.redemption_failed"), 3);
}

#[test]
fn unknown_codes_and_codes_of_other_programs_are_not_found() {
    let f = fixture();
    let tenant = common::tenant(&f.store);
    let program = common::program(&f.store, &tenant, |_| {});
    let other = common::program(&f.store, &tenant, |_| {});
    common::issue(&f.store, &other, "theirs", |_| {});
    assert_eq!(
        f.store.redeem(&attempt(&program, "nope", None)).unwrap(),
        Err(RedemptionFailure::TicketNotFound)
    );
    assert_eq!(
        f.store.redeem(&attempt(&program, "theirs", None)).unwrap(),
        Err(RedemptionFailure::TicketNotFound)
    );
    f.store.delete(&tenant, &other.id, now()).unwrap();
    assert_eq!(
        f.store.redeem(&attempt(&other, "theirs", None)).unwrap(),
        Err(RedemptionFailure::TicketNotFound)
    );
    assert_eq!(events(&f.db.pool(), &tenant, "ticket.redemption_failed"), 3);
}

#[test]
fn ticket_states_other_than_active_have_their_reasons() {
    let f = fixture();
    let tenant = common::tenant(&f.store);
    let program = common::program(&f.store, &tenant, |_| {});
    let revoked = common::issue(&f.store, &program, "r", |_| {});
    let disabled = common::issue(&f.store, &program, "d", |_| {});
    f.store.revoke(&tenant, &revoked, now()).unwrap();
    f.store
        .set_state(&tenant, &disabled, TicketState::Disabled, 1, now())
        .unwrap();
    assert_eq!(
        f.store.redeem(&attempt(&program, "r", None)).unwrap(),
        Err(RedemptionFailure::TicketRevoked)
    );
    assert_eq!(
        f.store.redeem(&attempt(&program, "d", None)).unwrap(),
        Err(RedemptionFailure::TicketDisabled)
    );
}

#[test]
fn a_bound_email_must_match_and_five_mismatches_lock_the_ticket() {
    let f = fixture();
    let tenant = common::tenant(&f.store);
    let program = common::program(&f.store, &tenant, |_| {});
    let id = common::issue(&f.store, &program, "code", |t| {
        t.email = Some(common::email("Ann@Example.com"));
    });
    assert!(f
        .store
        .redeem(&attempt(&program, "code", Some("ann@example.com")))
        .unwrap()
        .is_ok());
    // No email at all is refused but never counts towards the lock.
    for _ in 0..EMAIL_MISMATCHES_BEFORE_LOCK + 1 {
        assert_eq!(
            f.store.redeem(&attempt(&program, "code", None)).unwrap(),
            Err(RedemptionFailure::EmailMismatch)
        );
    }
    let view = TicketStore::get(&f.store, &tenant, &id).unwrap();
    assert_eq!(view.ticket.failed_attempts, 0);
    for expected in 1..EMAIL_MISMATCHES_BEFORE_LOCK {
        let presented = Some("bob@example.com");
        assert_eq!(
            f.store
                .redeem(&attempt(&program, "code", presented))
                .unwrap(),
            Err(RedemptionFailure::EmailMismatch)
        );
        let view = TicketStore::get(&f.store, &tenant, &id).unwrap();
        assert_eq!(view.ticket.failed_attempts, expected);
        assert_eq!(view.ticket.state, TicketState::Active);
    }
    assert_eq!(
        f.store
            .redeem(&attempt(&program, "code", Some("eve@example.com")))
            .unwrap(),
        Err(RedemptionFailure::EmailMismatch)
    );
    let locked = TicketStore::get(&f.store, &tenant, &id).unwrap();
    assert_eq!(locked.ticket.state, TicketState::Locked);
    assert_eq!(locked.ticket.failed_attempts, EMAIL_MISMATCHES_BEFORE_LOCK);
    // Even the right email fails now, as locked.
    assert_eq!(
        f.store
            .redeem(&attempt(&program, "code", Some("ann@example.com")))
            .unwrap(),
        Err(RedemptionFailure::TicketLocked)
    );
    let pool = f.db.pool();
    assert_eq!(events(&pool, &tenant, "ticket.locked"), 1);
    assert_eq!(events(&pool, &tenant, "ticket.redemption_failed"), 12);
    // An admin unlocks it, and the right email works again.
    f.store
        .set_state(
            &tenant,
            &id,
            TicketState::Active,
            locked.ticket.version,
            now(),
        )
        .unwrap();
    assert!(f
        .store
        .redeem(&attempt(&program, "code", Some("ann@example.com")))
        .unwrap()
        .is_ok());
}

#[test]
fn a_success_resets_the_consecutive_mismatches() {
    let f = fixture();
    let tenant = common::tenant(&f.store);
    let program = common::program(&f.store, &tenant, |_| {});
    let id = common::issue(&f.store, &program, "code", |t| {
        t.email = Some(common::email("ann@example.com"));
    });
    for _ in 0..4 {
        f.store
            .redeem(&attempt(&program, "code", Some("x@y.z")))
            .unwrap()
            .unwrap_err();
    }
    f.store
        .redeem(&attempt(&program, "code", Some("ann@example.com")))
        .unwrap()
        .unwrap();
    f.store
        .redeem(&attempt(&program, "code", Some("x@y.z")))
        .unwrap()
        .unwrap_err();
    let view = TicketStore::get(&f.store, &tenant, &id).unwrap();
    assert_eq!(view.ticket.failed_attempts, 1);
    assert_eq!(view.ticket.state, TicketState::Active);
}

#[derive(diesel::QueryableByName)]
struct Setting {
    #[diesel(sql_type = diesel::sql_types::Text)]
    setting: String,
}

/// The commit mode `tessera_refuse` leaves its transaction in, for `code` of
/// `program` (read inside an explicit transaction, then rolled back).
fn refusal_commit_mode(
    f: &common::Fixture,
    program: &tessera_domain::Program,
    code: &str,
) -> String {
    use diesel::sql_types::{Bytea, Text, Timestamptz};
    use diesel::{sql_query, Connection, RunQueryDsl};
    let mut conn = f.db.pool().get().expect("a connection");
    conn.test_transaction(|conn| {
        // Hand-written: the function's own call, as stores/refusal.rs makes it.
        sql_query(
            "SELECT reason FROM tessera_refuse($1, $2, $3, $4, NULL, NULL, \
             ARRAY[$4]::timestamptz[], '[]'::jsonb, 5, 'evt_a', 'evt_b', ARRAY[]::text[], 0)",
        )
        .bind::<Text, _>(program.tenant_id.as_str())
        .bind::<Bytea, _>(&common::hash(code).0[..])
        .bind::<Text, _>(program.id.as_str())
        .bind::<Timestamptz, _>(now())
        .execute(conn)?;
        let mode: Setting = sql_query("SELECT current_setting('synchronous_commit') AS setting")
            .get_result(conn)?;
        Ok::<_, diesel::result::Error>(mode.setting)
    })
}

/// Invariant 6 holds for successes only: a refusal is a record no client was
/// promised is durable, so its commit does not wait for the WAL flush (which
/// would hold the throttle count's row lock meanwhile); a run that finds the
/// ticket redeemable leaves the commit mode alone.
#[test]
fn only_a_refusal_commits_without_waiting_for_the_flush() {
    let f = fixture();
    let tenant = common::tenant(&f.store);
    let program = common::program(&f.store, &tenant, |_| {});
    common::issue(&f.store, &program, "redeemable", |_| {});
    assert_eq!(refusal_commit_mode(&f, &program, "unknown"), "off");
    assert_eq!(refusal_commit_mode(&f, &program, "redeemable"), "on");
}
