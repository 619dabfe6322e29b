//! A redemption record has no foreign key to its ticket (migration
//! redemption_records_unchecked: the check cost every redemption a trigger
//! query). These tests hold what the key gave: deleting a ticket, alone or with
//! its program, deletes its records, including one committed while the delete
//! waited for the ticket's lock; and a redemption that waited for its ticket's
//! deletion records nothing.
#![allow(clippy::unwrap_used)]
mod common;

use std::time::{Duration, Instant};

use common::{attempt, fixture, hash, now, scalar, Count, Fixture};
use diesel::connection::SimpleConnection;
use diesel::sql_types::{Bytea, Text, Timestamptz};
use diesel::{sql_query, Connection, PgConnection, RunQueryDsl};
use tessera_app::ports::{ProgramStore, RedemptionStore};
use tessera_domain::{Program, RedemptionFailure, TenantId};

const RECORDS: &str = "SELECT count(*) AS n FROM redemptions WHERE tenant_id = $1";

fn records(f: &Fixture, tenant: &TenantId) -> i64 {
    scalar(&f.db.pool(), RECORDS, tenant)
}

fn connect(f: &Fixture) -> PgConnection {
    PgConnection::establish(f.db.url()).unwrap()
}

/// Waits until another session of this database waits for a lock.
fn wait_for_a_lock_wait(f: &Fixture) {
    let mut conn = connect(f);
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut waiting = || {
        sql_query(
            "SELECT count(*) AS n FROM pg_stat_activity \
             WHERE datname = current_database() AND wait_event_type = 'Lock'",
        )
        .get_result::<Count>(&mut conn)
        .unwrap()
        .n
    };
    while waiting() == 0 {
        assert!(Instant::now() < deadline, "no session waited for the lock");
        std::thread::sleep(Duration::from_millis(10));
    }
}

fn program_with_ticket(f: &Fixture, tenant: &TenantId, code: &str) -> Program {
    let program = common::program(&f.store, tenant, |_| {});
    common::issue(&f.store, &program, code, |_| {});
    program
}

#[test]
fn deleting_a_ticket_or_its_program_deletes_its_redemption_records() {
    let f = fixture();
    let tenant = common::tenant(&f.store);
    let first = program_with_ticket(&f, &tenant, "first");
    let second = program_with_ticket(&f, &tenant, "second");
    for (program, code) in [(&first, "first"), (&second, "second")] {
        f.store
            .redeem(&attempt(program, code, None))
            .unwrap()
            .unwrap();
    }
    assert_eq!(records(&f, &tenant), 2);

    let mut conn = connect(&f);
    sql_query("DELETE FROM tickets WHERE tenant_id = $1 AND code_hash = $2")
        .bind::<Text, _>(tenant.as_str())
        .bind::<Bytea, _>(&hash("first").0[..])
        .execute(&mut conn)
        .unwrap();
    assert_eq!(records(&f, &tenant), 1, "the other ticket's record stays");

    f.store.delete(&tenant, &second.id, now()).unwrap();
    assert_eq!(records(&f, &tenant), 0);
}

#[test]
fn a_record_committed_while_its_program_is_deleted_goes_with_it() {
    let f = fixture();
    let tenant = common::tenant(&f.store);
    let program = program_with_ticket(&f, &tenant, "code");

    // The redemption takes the ticket's lock and has not committed yet.
    let mut redeeming = connect(&f);
    redeeming.batch_execute("BEGIN").unwrap();
    let granted = scalar_on(
        &mut redeeming,
        "SELECT count(*) AS n FROM tessera_redeem_batch(ARRAY[$1], ARRAY[$2], ARRAY[$3], \
         ARRAY[$4], ARRAY[NULL::text], ARRAY['evt_a'], ARRAY['evt_b'], ARRAY['rdm_a'], \
         ARRAY[NULL::text], ARRAY[NULL::text])",
        &tenant,
        &program,
    );
    assert_eq!(granted, 1);

    let deleter = {
        let store = f.store.clone();
        let (tenant, id) = (tenant.clone(), program.id.clone());
        std::thread::spawn(move || store.delete(&tenant, &id, now()))
    };
    wait_for_a_lock_wait(&f);
    redeeming.batch_execute("COMMIT").unwrap();
    deleter.join().unwrap().unwrap();

    assert_eq!(records(&f, &tenant), 0, "no record outlives its ticket");
}

#[test]
fn a_redemption_that_waited_for_its_tickets_deletion_records_nothing() {
    let f = fixture();
    let tenant = common::tenant(&f.store);
    let program = program_with_ticket(&f, &tenant, "code");

    let mut deleting = connect(&f);
    deleting.batch_execute("BEGIN").unwrap();
    sql_query("DELETE FROM tickets WHERE tenant_id = $1")
        .bind::<Text, _>(tenant.as_str())
        .execute(&mut deleting)
        .unwrap();

    let redeemer = {
        let store = f.store.clone();
        let attempt = attempt(&program, "code", None);
        std::thread::spawn(move || store.redeem(&attempt))
    };
    wait_for_a_lock_wait(&f);
    deleting.batch_execute("COMMIT").unwrap();

    assert_eq!(
        redeemer.join().unwrap().unwrap(),
        Err(RedemptionFailure::TicketNotFound),
        "the ticket went while the redemption waited"
    );
    assert_eq!(records(&f, &tenant), 0);
}

/// `query` on `conn`, bound to the tenant, the hash of "code", the program and
/// the tests' clock.
fn scalar_on(conn: &mut PgConnection, query: &str, tenant: &TenantId, program: &Program) -> i64 {
    sql_query(query)
        .bind::<Text, _>(tenant.as_str())
        .bind::<Bytea, _>(&hash("code").0[..])
        .bind::<Text, _>(program.id.as_str())
        .bind::<Timestamptz, _>(now())
        .get_result::<Count>(conn)
        .unwrap()
        .n
}
