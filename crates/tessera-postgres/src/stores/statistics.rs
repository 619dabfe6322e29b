//! Fresh planner statistics after a bulk insert (issue 12). A batch or an import
//! can multiply a table's rows in seconds, and the crowd redeems right after: the
//! statistics must describe the table before it does. ANALYZE also invalidates
//! every connection's cached plans of statements on the table (PL/pgSQL's too),
//! so each replans once with the new figures. Autovacuum would get there too, but
//! minutes later, and it may be off.

use diesel::sql_types::Float;
use diesel::{sql_query, PgConnection, QueryableByName, RunQueryDsl};

/// A bulk insert that adds at least this share of the rows the statistics know
/// is analysed at once (autovacuum's default `analyze_scale_factor`): smaller
/// ones do not move an estimate enough to change a plan, and ANALYZE samples a
/// fixed 30,000 rows, so it costs the same on a small insert into a big table.
const SHARE_THAT_REFRESHES: f64 = 0.1;

#[derive(QueryableByName)]
struct Known {
    #[diesel(sql_type = Float)]
    reltuples: f32,
}

/// Whether `added` rows change a table whose statistics count `known` rows (a
/// negative count: never analysed) enough to analyse it now.
pub(crate) fn worth_analysing(known: f32, added: u64) -> bool {
    known < 0.0 || added as f64 >= SHARE_THAT_REFRESHES * f64::from(known)
}

/// Analyses `tickets` when `added` new rows are a large share of it. Runs after
/// the insert committed, outside any transaction; a failure is logged and
/// swallowed: the tickets are there, only the plans may be slower until the next
/// analyse.
pub(crate) fn refresh_tickets(conn: &mut PgConnection, added: u64) {
    let refreshed = (|| {
        // Hand-written: a catalog read and a utility statement, on no table of
        // `schema.rs`.
        let known: Known =
            sql_query("SELECT reltuples FROM pg_class WHERE oid = 'tickets'::regclass")
                .get_result(conn)?;
        if worth_analysing(known.reltuples, added) {
            sql_query("ANALYZE tickets").execute(conn)?;
        }
        Ok::<_, diesel::result::Error>(())
    })();
    if let Err(error) = refreshed {
        tracing::warn!(%error, added, "could not refresh the statistics of tickets");
    }
}

#[cfg(test)]
mod tests {
    use super::worth_analysing;

    #[test]
    fn a_table_never_analysed_is_analysed() {
        assert!(worth_analysing(-1.0, 1));
    }

    #[test]
    fn a_tenth_more_rows_refreshes_and_less_does_not() {
        assert!(worth_analysing(1_000_000.0, 100_000));
        assert!(!worth_analysing(1_000_000.0, 99_999));
        assert!(worth_analysing(0.0, 0));
    }
}
