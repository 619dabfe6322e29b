use diesel::{sql_query, RunQueryDsl};
use tessera_app::ports::{HealthProbe, StoreResult};

use crate::PgStore;

impl HealthProbe for PgStore {
    fn ping(&self) -> StoreResult<()> {
        self.with_conn(|conn| {
            // Hand-written: a round trip that reads no table, so no schema to check.
            sql_query("SELECT 1").execute(conn)?;
            Ok(())
        })
    }
}
