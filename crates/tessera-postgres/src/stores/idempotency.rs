//! Idempotency records. The claim is one `INSERT … ON CONFLICT DO UPDATE … WHERE
//! <expired or stale>`: the primary key decides which concurrent first request
//! runs; the others read what it left.

use chrono::{DateTime, Utc};
use diesel::sql_types::{Bytea, Nullable, SmallInt, Text, Timestamptz};
use diesel::{sql_query, OptionalExtension, RunQueryDsl};
use tessera_app::ports::{Begun, IdempotencyStore, StoreResult};

use crate::PgStore;

#[derive(diesel::QueryableByName)]
struct Claimed {
    #[diesel(sql_type = Text)]
    #[allow(dead_code)]
    state: String,
}

#[derive(diesel::QueryableByName)]
struct Kept {
    #[diesel(sql_type = Bytea)]
    fingerprint: Vec<u8>,
    #[diesel(sql_type = Text)]
    state: String,
    #[diesel(sql_type = Nullable<SmallInt>)]
    status: Option<i16>,
    #[diesel(sql_type = Nullable<Bytea>)]
    sealed: Option<Vec<u8>>,
}

/// Rounds of "claimed nothing, yet nothing there": a record deleted meanwhile.
const ROUNDS: usize = 3;

impl IdempotencyStore for PgStore {
    fn begin(
        &self,
        scope: &str,
        key_hash: [u8; 32],
        fingerprint: [u8; 32],
        now: DateTime<Utc>,
        stale_before: DateTime<Utc>,
        expires_at: DateTime<Utc>,
    ) -> StoreResult<Begun> {
        self.with_conn(|conn| {
            for _ in 0..ROUNDS {
                let claimed = sql_query(
                    "INSERT INTO idempotency_keys AS k \
                       (scope, key_hash, fingerprint, state, created_at, expires_at) \
                     VALUES ($1, $2, $3, 'running', $4, $6) \
                     ON CONFLICT (scope, key_hash) DO UPDATE SET \
                       fingerprint = EXCLUDED.fingerprint, state = 'running', status = NULL, \
                       sealed = NULL, created_at = EXCLUDED.created_at, expires_at = EXCLUDED.expires_at \
                     WHERE k.expires_at <= $4 OR (k.state = 'running' AND k.created_at < $5) \
                     RETURNING k.state",
                )
                .bind::<Text, _>(scope)
                .bind::<Bytea, _>(&key_hash[..])
                .bind::<Bytea, _>(&fingerprint[..])
                .bind::<Timestamptz, _>(now)
                .bind::<Timestamptz, _>(stale_before)
                .bind::<Timestamptz, _>(expires_at)
                .get_result::<Claimed>(conn)
                .optional()?;
                if claimed.is_some() {
                    return Ok(Begun::New);
                }
                let kept = sql_query(
                    "SELECT fingerprint, state, status, sealed FROM idempotency_keys \
                     WHERE scope = $1 AND key_hash = $2",
                )
                .bind::<Text, _>(scope)
                .bind::<Bytea, _>(&key_hash[..])
                .get_result::<Kept>(conn)
                .optional()?;
                let Some(kept) = kept else { continue };
                if kept.fingerprint != fingerprint {
                    return Ok(Begun::Mismatch);
                }
                return Ok(match (kept.state.as_str(), kept.status, kept.sealed) {
                    ("done", Some(status), Some(sealed)) => Begun::Replay {
                        status: u16::try_from(status).unwrap_or(500),
                        sealed,
                    },
                    _ => Begun::InFlight,
                });
            }
            Ok(Begun::InFlight)
        })
    }

    fn finish(
        &self,
        scope: &str,
        key_hash: [u8; 32],
        status: u16,
        sealed: Vec<u8>,
    ) -> StoreResult<()> {
        self.with_conn(|conn| {
            sql_query(
                "UPDATE idempotency_keys SET state = 'done', status = $3, sealed = $4 \
                 WHERE scope = $1 AND key_hash = $2 AND state = 'running'",
            )
            .bind::<Text, _>(scope)
            .bind::<Bytea, _>(&key_hash[..])
            .bind::<SmallInt, _>(i16::try_from(status).unwrap_or(i16::MAX))
            .bind::<Bytea, _>(&sealed)
            .execute(conn)?;
            Ok(())
        })
    }

    fn abandon(&self, scope: &str, key_hash: [u8; 32]) -> StoreResult<()> {
        self.with_conn(|conn| {
            sql_query(
                "DELETE FROM idempotency_keys WHERE scope = $1 AND key_hash = $2 AND state = 'running'",
            )
            .bind::<Text, _>(scope)
            .bind::<Bytea, _>(&key_hash[..])
            .execute(conn)?;
            Ok(())
        })
    }

    fn purge(&self, now: DateTime<Utc>) -> StoreResult<u64> {
        self.with_conn(|conn| {
            let deleted = sql_query("DELETE FROM idempotency_keys WHERE expires_at <= $1")
                .bind::<Timestamptz, _>(now)
                .execute(conn)?;
            Ok(deleted as u64)
        })
    }
}
