//! [`FailureLedger`]: the failure throttle's counts shared by every replica, in
//! the UNLOGGED table `throttle_windows` (see its migration for why unlogged).
//! A refused redemption adds its failure in its refusal statement
//! (`stores/refusal.rs`); this is the path for the others.

use diesel::prelude::*;
use diesel::sql_types::{Array, BigInt, Text};
use tessera_app::ports::{FailureLedger, StoreError, StoreResult};
use tessera_app::throttle::FailureSubject;

use crate::schema::throttle_windows;
use crate::PgStore;

diesel::define_sql_function! {
    /// Adds one failure to each subject in the minute, in one statement (row
    /// locks taken in subject order, so concurrent failures cannot deadlock), and
    /// returns each one's count over every replica, in the order given.
    fn tessera_count_failures(subjects: Array<Text>, minute: BigInt) -> Array<Integer>;
}

impl FailureLedger for PgStore {
    fn add_failures(&self, subjects: &[FailureSubject], minute: i64) -> StoreResult<Vec<u32>> {
        let keys: Vec<String> = subjects.iter().map(FailureSubject::key).collect();
        let counted: Vec<i32> = self.with_conn(|conn| {
            Ok(diesel::select(tessera_count_failures(&keys, minute)).get_result(conn)?)
        })?;
        if counted.len() != keys.len() {
            return Err(StoreError::Internal("a throttle count went missing".into()));
        }
        counted
            .into_iter()
            .map(|count| {
                u32::try_from(count)
                    .map_err(|_| StoreError::Internal("a throttle count is negative".into()))
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
