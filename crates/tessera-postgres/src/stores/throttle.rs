//! [`FailureLedger`]: the failure throttle's counts shared by every replica, in
//! the UNLOGGED table `throttle_windows` (see its migration for why unlogged).

use diesel::prelude::*;
use diesel::upsert::excluded;
use tessera_app::ports::{FailureLedger, StoreError, StoreResult};
use tessera_app::throttle::FailureSubject;

use crate::schema::throttle_windows;
use crate::PgStore;

impl FailureLedger for PgStore {
    fn add_failures(&self, subjects: &[FailureSubject], minute: i64) -> StoreResult<Vec<u32>> {
        let keys: Vec<String> = subjects.iter().map(FailureSubject::key).collect();
        // Rows in one order, so that two failures upserting the same subjects on
        // two replicas take their row locks in the same order and cannot deadlock.
        // Deduplicated: one statement may not upsert a row twice.
        let mut rows: Vec<&str> = keys.iter().map(String::as_str).collect();
        rows.sort_unstable();
        rows.dedup();
        let rows: Vec<_> = rows
            .into_iter()
            .map(|subject| {
                (
                    throttle_windows::subject.eq(subject),
                    throttle_windows::minute.eq(minute),
                    throttle_windows::failures.eq(1),
                )
            })
            .collect();
        let counted: Vec<(String, i32)> = self.with_conn(|conn| {
            // One statement decides: concurrent failures of one subject on several
            // replicas each add one, and each reads a count that includes its own.
            Ok(diesel::insert_into(throttle_windows::table)
                .values(&rows)
                .on_conflict((throttle_windows::subject, throttle_windows::minute))
                .do_update()
                .set(
                    throttle_windows::failures
                        .eq(throttle_windows::failures + excluded(throttle_windows::failures)),
                )
                .returning((throttle_windows::subject, throttle_windows::failures))
                .get_results(conn)?)
        })?;
        keys.iter()
            .map(|key| {
                counted
                    .iter()
                    .find(|(subject, _)| subject == key)
                    .and_then(|(_, failures)| u32::try_from(*failures).ok())
                    .ok_or_else(|| StoreError::Internal("a throttle count went missing".into()))
            })
            .collect()
    }

    fn forget_before(&self, minute: i64) -> StoreResult<u64> {
        self.with_conn(|conn| {
            let forgotten =
                diesel::delete(throttle_windows::table.filter(throttle_windows::minute.lt(minute)))
                    .execute(conn)?;
            Ok(u64::try_from(forgotten).unwrap_or(u64::MAX))
        })
    }
}
