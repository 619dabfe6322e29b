//! `tessera`: see [`tessera_server::main_entry`].

/// jemalloc instead of glibc's malloc, for memory given back: glibc keeps what a
/// burst freed in its per-thread arenas (issue 15: 1,000 stalled 60 KB bodies took
/// the process from 53 to 131 MiB, and it stayed at 126 MiB after they closed),
/// while jemalloc returns unused pages to the kernel after its decay time
/// (`dirty_decay_ms`, 10 s; muzzy decay is off by default since jemalloc 5.2).
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

fn main() -> std::process::ExitCode {
    // Purging is otherwise done by allocating threads as they allocate, so an idle
    // process would keep a burst's pages: background threads purge on a timer.
    if let Err(error) = tikv_jemalloc_ctl::background_thread::write(true) {
        eprintln!("tessera: jemalloc background purging not enabled: {error}");
    }
    tessera_http::metrics::set_allocator_sampler(jemalloc_sample);
    tessera_server::main_entry()
}

/// jemalloc's own account, for `/metrics`: live allocations against resident pages
/// tell a leak (both grow) from retention (only resident grows). Its statistics are
/// cached until the epoch is advanced, so each scrape advances it first.
fn jemalloc_sample() -> Option<tessera_http::metrics::AllocatorSample> {
    use tikv_jemalloc_ctl::{epoch, stats};
    epoch::advance().ok()?;
    Some(tessera_http::metrics::AllocatorSample {
        allocated: stats::allocated::read().ok()? as u64,
        resident: stats::resident::read().ok()? as u64,
    })
}
