//! Issue 15's soak: the metrics recorder kept every histogram sample until a scrape
//! (28 bytes a request, +3 MiB a minute at 1,600 requests/s when nobody scraped).
//! Recording must stay within a bounded backlog with no scrape at all.
//!
//! A test binary of its own: it reads the live heap bytes of the whole process
//! from jemalloc's statistics (`stats.allocated`), so no other test may run beside
//! it.

use std::time::Duration;

use tessera_http::metrics::{record_group_commit_batch, record_request, UPKEEP_EVERY};

#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

/// Bytes in live allocations now (jemalloc caches its statistics until the epoch
/// is advanced).
fn allocated() -> i64 {
    tikv_jemalloc_ctl::epoch::advance().expect("jemalloc epoch");
    tikv_jemalloc_ctl::stats::allocated::read().expect("jemalloc built with stats") as i64
}

/// One of the soak's minutes, in miniature: requests under a few route patterns
/// and statuses, a group commit batch for every other one.
fn record(requests: u64) {
    const ROUTES: [(&str, u16); 4] = [
        ("/v1/redeem", 200),
        ("/v1/redeem", 404),
        ("/v1/programs/{program_id}/tickets", 201),
        ("/v1/holds", 201),
    ];
    for k in 0..requests {
        let (route, status) = ROUTES[(k % 4) as usize];
        record_request(route, status, Duration::from_micros(500 + k % 5000));
        if k % 2 == 0 {
            record_group_commit_batch("redemptions", 1 + (k % 8) as usize);
        }
    }
}

#[test]
fn recording_without_a_scrape_keeps_a_bounded_backlog() {
    tessera_http::metrics::install();
    // Warm up: handles, label sets, bucket tables and the epoch garbage collector's
    // state exist after this, so what follows can only add samples.
    record(4 * UPKEEP_EVERY);
    let before = allocated();
    // 300,000 requests and 150,000 batches: 8.9 MB more when the samples were kept
    // (measured with the upkeep taken out), less than nothing with it.
    let requests = 300_000;
    record(requests);
    let grown = allocated() - before;
    // The bound: a few upkeep intervals' worth of samples (4,096 × 28 bytes each),
    // not a number that grows with the requests.
    let bound = 1 << 20;
    assert!(
        grown < bound,
        "{grown} bytes more after {requests} requests without a scrape (bound {bound})"
    );
}
