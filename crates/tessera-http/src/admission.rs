//! Load shedding: a bounded number of requests in flight, overall and per client
//! address. Past either bound a request is answered `503 unavailable` with
//! `Retry-After` at once, before it reads its body or waits for a database
//! connection — so an overload costs the excess a quick refusal instead of making
//! every request wait for a pooled connection (and time out) together.
//!
//! The overall count is one atomic; the per-client counts live in shards, each
//! behind its own mutex, so workers rarely contend. Liveness and readiness probes
//! are never shed: a load balancer must still see the process.

use std::collections::HashMap;
use std::hash::{BuildHasher, RandomState};
use std::net::IpAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use actix_web::body::{EitherBody, MessageBody};
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::middleware::Next;
use actix_web::{web, ResponseError};

use crate::client_addr::client_address;
use crate::error::ApiError;
use crate::state::AppState;

const SHARDS: usize = 16;

/// The bounds, and the live counts against them. Shared by every worker.
#[derive(Debug)]
pub struct Admission {
    max_in_flight: usize,
    max_per_client: usize,
    in_flight: AtomicUsize,
    shards: [Mutex<HashMap<IpAddr, usize>>; SHARDS],
    hasher: RandomState,
}

impl Admission {
    /// At most `max_in_flight` requests at once, and `max_per_client` from one
    /// client address.
    pub fn new(max_in_flight: usize, max_per_client: usize) -> Arc<Self> {
        Arc::new(Self {
            max_in_flight,
            max_per_client,
            in_flight: AtomicUsize::new(0),
            shards: Default::default(),
            hasher: RandomState::new(),
        })
    }

    /// No bounds: what tests and embedders get unless they ask.
    pub fn unbounded() -> Arc<Self> {
        Self::new(usize::MAX, usize::MAX)
    }

    /// Requests admitted and not yet answered.
    pub fn in_flight(&self) -> usize {
        self.in_flight.load(Ordering::Relaxed)
    }

    /// A place for one request from `client`, or `None` when a bound is reached.
    fn enter(self: &Arc<Self>, client: Option<IpAddr>) -> Option<Ticket> {
        let previous = self.in_flight.fetch_add(1, Ordering::AcqRel);
        let overall = Ticket {
            admission: Arc::clone(self),
            client: None,
        };
        if previous >= self.max_in_flight {
            return None; // `overall` drops and gives the place back
        }
        let Some(client) = client else {
            return Some(overall);
        };
        let mut counts = self.shard(client).lock().unwrap_or_else(|p| p.into_inner());
        let count = counts.entry(client).or_insert(0);
        if *count >= self.max_per_client {
            return None;
        }
        *count += 1;
        drop(counts);
        let mut ticket = overall;
        ticket.client = Some(client);
        Some(ticket)
    }

    fn shard(&self, client: IpAddr) -> &Mutex<HashMap<IpAddr, usize>> {
        // The modulo keeps the index below SHARDS.
        #[allow(clippy::cast_possible_truncation)]
        let index = (self.hasher.hash_one(client) % SHARDS as u64) as usize;
        &self.shards[index]
    }
}

/// One admitted request's place; given back when dropped.
struct Ticket {
    admission: Arc<Admission>,
    client: Option<IpAddr>,
}

impl Drop for Ticket {
    fn drop(&mut self) {
        self.admission.in_flight.fetch_sub(1, Ordering::AcqRel);
        if let Some(client) = self.client.take() {
            let mut counts = self
                .admission
                .shard(client)
                .lock()
                .unwrap_or_else(|p| p.into_inner());
            if let Some(count) = counts.get_mut(&client) {
                *count -= 1;
                if *count == 0 {
                    counts.remove(&client);
                }
            }
        }
    }
}

/// Paths that are answered whatever the load.
fn never_shed(path: &str) -> bool {
    matches!(path, "/healthz" | "/readyz" | "/metrics")
}

/// The middleware: admits the request or answers 503 at once.
pub(crate) async fn admit<B: MessageBody + 'static>(
    req: ServiceRequest,
    next: Next<B>,
) -> Result<ServiceResponse<EitherBody<B>>, actix_web::Error> {
    let state = req.app_data::<web::Data<AppState>>().cloned();
    let Some(state) = state.filter(|_| !never_shed(req.path())) else {
        return next
            .call(req)
            .await
            .map(ServiceResponse::map_into_left_body);
    };
    let admission = &state.settings.admission;
    let client = client_address(req.request(), &state.settings.trusted_proxies);
    match admission.enter(client) {
        Some(ticket) => {
            let response = next.call(req).await;
            // Held until the handler answered; a streamed body (a batch) keeps
            // its connection but not its place, as the stream has its own bounds.
            drop(ticket);
            response.map(ServiceResponse::map_into_left_body)
        }
        None => {
            let refusal = ApiError::overloaded().error_response();
            Ok(req.into_response(refusal).map_into_right_body())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(last: u8) -> Option<IpAddr> {
        Some(IpAddr::from([127, 0, 0, last]))
    }

    #[test]
    fn the_overall_bound_holds_and_places_come_back() {
        let admission = Admission::new(2, 10);
        let first = admission.enter(ip(1)).expect("first");
        let second = admission.enter(ip(2)).expect("second");
        assert!(admission.enter(ip(3)).is_none(), "third is over the bound");
        assert_eq!(admission.in_flight(), 2, "a refusal holds no place");
        drop(first);
        let third = admission.enter(ip(3)).expect("a place came back");
        drop((second, third));
        assert_eq!(admission.in_flight(), 0);
    }

    #[test]
    fn one_client_cannot_take_every_place() {
        let admission = Admission::new(100, 2);
        let held: Vec<_> = (0..2)
            .map(|_| admission.enter(ip(1)).expect("in"))
            .collect();
        assert!(admission.enter(ip(1)).is_none(), "the client's bound");
        assert!(admission.enter(ip(2)).is_some(), "another client is served");
        drop(held);
        assert!(
            admission.enter(ip(1)).is_some(),
            "the client's places came back"
        );
        assert_eq!(admission.in_flight(), 0);
    }

    #[test]
    fn an_unknown_client_counts_only_overall() {
        let admission = Admission::new(1, 1);
        let held = admission.enter(None).expect("in");
        assert!(admission.enter(None).is_none());
        drop(held);
        assert!(admission.enter(None).is_some());
    }
}
