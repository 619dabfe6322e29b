use chrono::{DateTime, Utc};
use diesel::{ExpressionMethods, OptionalExtension, QueryDsl, RunQueryDsl};
use tessera_app::ports::{KeyEnvelopeStore, StoreResult};

use crate::schema::{key_envelope, tenants};
use crate::PgStore;

/// The one row's key.
const ENVELOPE_ROW: i16 = 1;

impl KeyEnvelopeStore for PgStore {
    fn load_envelope(&self) -> StoreResult<Option<Vec<u8>>> {
        self.with_conn(|conn| {
            Ok(key_envelope::table
                .filter(key_envelope::id.eq(ENVELOPE_ROW))
                .select(key_envelope::envelope)
                .first::<Vec<u8>>(conn)
                .optional()?)
        })
    }

    fn create_envelope(&self, envelope: &[u8], now: DateTime<Utc>) -> StoreResult<bool> {
        self.with_conn(|conn| {
            // The primary key decides between processes starting together.
            let inserted = diesel::insert_into(key_envelope::table)
                .values((
                    key_envelope::id.eq(ENVELOPE_ROW),
                    key_envelope::envelope.eq(envelope),
                    key_envelope::updated_at.eq(now),
                ))
                .on_conflict_do_nothing()
                .execute(conn)?;
            Ok(inserted == 1)
        })
    }

    fn replace_envelope(
        &self,
        expected: &[u8],
        envelope: &[u8],
        now: DateTime<Utc>,
    ) -> StoreResult<bool> {
        self.with_conn(|conn| {
            let replaced = diesel::update(
                key_envelope::table
                    .filter(key_envelope::id.eq(ENVELOPE_ROW))
                    .filter(key_envelope::envelope.eq(expected)),
            )
            .set((
                key_envelope::envelope.eq(envelope),
                key_envelope::updated_at.eq(now),
            ))
            .execute(conn)?;
            Ok(replaced == 1)
        })
    }

    fn holds_data(&self) -> StoreResult<bool> {
        self.with_conn(|conn| {
            Ok(
                diesel::select(diesel::dsl::exists(tenants::table.select(tenants::id)))
                    .get_result::<bool>(conn)?,
            )
        })
    }
}
