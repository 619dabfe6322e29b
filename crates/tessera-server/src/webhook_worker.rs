//! The delivery worker: a few threads per `tessera serve` process, off the request
//! path, each claiming due deliveries from the shared outbox and attempting them.
//! Replicas coordinate only through the database (`FOR UPDATE SKIP LOCKED` and a
//! lease), so any number of processes may run it; a slow or dead receiver holds at
//! most one of these threads, never an HTTP worker or a redemption.

use std::sync::Arc;
use std::time::Duration;

use tessera_app::WebhookService;

/// How long an idle worker waits before looking for due deliveries again.
const IDLE_POLL: Duration = Duration::from_millis(250);
/// How long a worker waits after the database failed.
const ERROR_PAUSE: Duration = Duration::from_secs(2);

/// Starts `threads` worker threads that run for the life of the process.
pub fn start(service: Arc<WebhookService>, threads: u32) -> std::io::Result<()> {
    for index in 0..threads {
        let service = service.clone();
        std::thread::Builder::new()
            .name(format!("webhook-worker-{index}"))
            .spawn(move || run(&service))?;
    }
    Ok(())
}

fn run(service: &WebhookService) {
    loop {
        match service.deliver_due() {
            // More may be due right away: look again without sleeping.
            Ok(attempted) if attempted > 0 => {}
            Ok(_) => std::thread::sleep(IDLE_POLL),
            Err(error) => {
                tracing::warn!(%error, "webhook worker: cannot reach the outbox");
                std::thread::sleep(ERROR_PAUSE);
            }
        }
    }
}
