//! The slow lane: what a program past its failure budget does with public
//! attempts. Refusing them outright would let anyone who can spend the budget
//! (with junk from a few addresses) shut the program's redemption desk; letting
//! them all through would let a distributed guesser go at full speed. So they
//! queue, and the program evaluates [`PER_SECOND`] of them a second: a valid code
//! gets through within seconds, and guessing stays at a fixed rate.
//!
//! Each client network holds at most one place in a program's queue: a few busy
//! attackers cannot fill it by stacking their own retries, so with fewer attacking
//! networks than places a newcomer always finds one, and waits at most
//! `WAITERS_PER_PROGRAM / PER_SECOND` seconds.
//!
//! A waiting attempt occupies one of the blocking threads the use case runs on, so
//! the queue is bounded per program ([`WAITERS_PER_PROGRAM`], which also bounds
//! the wait to `WAITERS_PER_PROGRAM / PER_SECOND` seconds) and overall
//! ([`WAITERS_OVERALL`], far below actix's 512 blocking threads); past either
//! bound the attempt is refused with a retry hint. docs/security.md gives the
//! arithmetic.

use std::collections::{HashMap, HashSet};
use std::net::IpAddr;
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

use tessera_domain::ProgramId;

/// Attempts a program past its budget evaluates per second.
pub const PER_SECOND: u32 = 3;
/// Attempts that may wait for one program at a time (one per client network).
pub const WAITERS_PER_PROGRAM: u32 = 12;
/// Attempts that may wait in all programs' lanes together.
pub const WAITERS_OVERALL: u32 = 64;
/// Past this many lanes, idle lanes whose schedule has passed are dropped (a lane
/// left while its schedule was still ahead stays until then).
const PRUNE_AT: usize = 256;

fn slot() -> Duration {
    Duration::from_secs(1) / PER_SECOND
}

#[derive(Debug, Clone)]
struct Lane {
    /// When the next attempt may be evaluated.
    next_slot: Instant,
    waiting: u32,
    /// The client networks with a place: one each.
    clients: HashSet<IpAddr>,
}

#[derive(Debug, Default)]
struct Lanes {
    by_program: HashMap<ProgramId, Lane>,
    waiting: u32,
}

/// Every program's queue of attempts past its budget.
#[derive(Debug, Default)]
pub struct SlowLane {
    lanes: Mutex<Lanes>,
}

/// A place in a program's queue: evaluate at `at`, and free the place when done
/// waiting (on drop).
#[derive(Debug)]
#[must_use = "a place dropped at once frees it without waiting"]
pub struct Place<'a> {
    lane: &'a SlowLane,
    program: ProgramId,
    client: Option<IpAddr>,
    /// When the attempt may be evaluated.
    pub at: Instant,
}

impl Place<'_> {
    /// Blocks the calling thread until the place's turn.
    pub fn wait(self) {
        let now = Instant::now();
        if self.at > now {
            std::thread::sleep(self.at - now);
        }
    }
}

impl Drop for Place<'_> {
    fn drop(&mut self) {
        self.lane.leave(&self.program, self.client);
    }
}

impl SlowLane {
    fn lock(&self) -> MutexGuard<'_, Lanes> {
        // Counters only: a panic elsewhere cannot leave them inconsistent.
        self.lanes
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// A place in `program`'s queue as of `now` for an attempt from `client` (its
    /// network), or `Err(seconds to wait before retrying)` when the queue (or all
    /// queues together) is full, or `client` already waits in it.
    pub fn join(
        &self,
        program: &ProgramId,
        client: Option<IpAddr>,
        now: Instant,
    ) -> Result<Place<'_>, u32> {
        let mut lanes = self.lock();
        if lanes.by_program.len() >= PRUNE_AT {
            lanes
                .by_program
                .retain(|_, lane| lane.waiting > 0 || lane.next_slot > now);
        }
        let full_overall = lanes.waiting >= WAITERS_OVERALL;
        let lane = lanes.by_program.entry(program.clone()).or_insert(Lane {
            next_slot: now,
            waiting: 0,
            clients: HashSet::new(),
        });
        let already_waiting = client.is_some_and(|client| lane.clients.contains(&client));
        if full_overall || lane.waiting >= WAITERS_PER_PROGRAM || already_waiting {
            // Retry once the queue ahead has drained.
            let drained = lane.next_slot.saturating_duration_since(now);
            let seconds = u32::try_from(drained.as_secs()).unwrap_or(u32::MAX);
            let retry = seconds.saturating_add(1);
            if lane.waiting == 0 {
                lanes.by_program.remove(program);
            }
            return Err(retry);
        }
        let at = lane.next_slot.max(now);
        lane.next_slot = at + slot();
        lane.waiting += 1;
        if let Some(client) = client {
            lane.clients.insert(client);
        }
        lanes.waiting += 1;
        Ok(Place {
            lane: self,
            program: program.clone(),
            client,
            at,
        })
    }

    fn leave(&self, program: &ProgramId, client: Option<IpAddr>) {
        let mut lanes = self.lock();
        lanes.waiting = lanes.waiting.saturating_sub(1);
        if let Some(lane) = lanes.by_program.get_mut(program) {
            lane.waiting = lane.waiting.saturating_sub(1);
            if let Some(client) = client {
                lane.clients.remove(&client);
            }
            // An idle lane whose schedule has passed carries nothing: drop it, so
            // the map holds only programs with someone waiting or just served.
            if lane.waiting == 0 && lane.next_slot <= Instant::now() {
                lanes.by_program.remove(program);
            }
        }
    }

    /// How many attempts wait in `program`'s queue.
    pub fn waiting(&self, program: &ProgramId) -> u32 {
        self.lock()
            .by_program
            .get(program)
            .map_or(0, |lane| lane.waiting)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn places_are_spaced_one_slot_apart_from_now() {
        let lane = SlowLane::default();
        let program = ProgramId::generate();
        let now = Instant::now();
        let first = lane.join(&program, None, now).expect("place");
        let second = lane.join(&program, None, now).expect("place");
        assert_eq!(first.at, now);
        assert_eq!(second.at, now + slot());
        assert_eq!(lane.waiting(&program), 2);
        drop(first);
        drop(second);
        assert_eq!(lane.waiting(&program), 0);
    }

    #[test]
    fn a_full_queue_refuses_with_the_time_it_needs_to_drain() {
        let lane = SlowLane::default();
        let program = ProgramId::generate();
        let now = Instant::now();
        let places: Vec<_> = (0..WAITERS_PER_PROGRAM)
            .map(|_| lane.join(&program, None, now).expect("place"))
            .collect();
        let longest = places.last().map(|place| place.at - now).unwrap();
        assert!(longest < Duration::from_secs(5), "bounded wait {longest:?}");
        let retry = lane.join(&program, None, now).map(|_| ()).unwrap_err();
        assert_eq!(
            u64::from(retry),
            (slot() * WAITERS_PER_PROGRAM).as_secs() + 1
        );
        assert!(
            lane.join(&ProgramId::generate(), None, now).is_ok(),
            "other programs have their own queue"
        );
    }

    #[test]
    fn a_client_network_holds_one_place_per_program() {
        let lane = SlowLane::default();
        let program = ProgramId::generate();
        let now = Instant::now();
        let ann = Some(IpAddr::from([10, 0, 0, 1]));
        let bob = Some(IpAddr::from([10, 0, 0, 2]));
        let first = lane.join(&program, ann, now).expect("a place");
        assert!(lane.join(&program, ann, now).is_err(), "no second place");
        let other = lane.join(&program, bob, now).expect("another network");
        drop(first);
        assert!(lane.join(&program, ann, now).is_ok(), "the place came back");
        drop(other);
    }

    #[test]
    fn all_queues_together_are_bounded() {
        let lane = SlowLane::default();
        let now = Instant::now();
        let mut places = Vec::new();
        while let Ok(place) = lane.join(&ProgramId::generate(), None, now) {
            places.push(place);
        }
        assert_eq!(places.len(), WAITERS_OVERALL as usize);
        places.clear();
        assert!(lane.join(&ProgramId::generate(), None, now).is_ok());
    }

    #[test]
    fn idle_lanes_do_not_accumulate() {
        let lane = SlowLane::default();
        let start = Instant::now();
        for n in 0..10 * PRUNE_AT {
            let later = start + slot() * u32::try_from(n).unwrap();
            drop(
                lane.join(&ProgramId::generate(), None, later)
                    .expect("place"),
            );
        }
        assert!(lane.lock().by_program.len() <= PRUNE_AT);
    }

    /// A minute of eleven attackers each retrying every 10 ms at one program:
    /// however hard they push, the lane evaluates at most `PER_SECOND` a second.
    #[test]
    fn a_minute_of_pushing_gets_at_most_per_second_times_sixty_through() {
        let lane = SlowLane::default();
        let program = ProgramId::generate();
        let start = Instant::now();
        let mut waiting: Vec<Place<'_>> = Vec::new();
        let mut evaluated = 0u32;
        for tick in 0..6_000u32 {
            let now = start + Duration::from_millis(u64::from(tick) * 10);
            // Those whose turn came are evaluated and leave.
            let (due, later): (Vec<_>, Vec<_>) =
                waiting.drain(..).partition(|place| place.at <= now);
            evaluated += u32::try_from(due.len()).unwrap();
            waiting = later;
            for _attacker in 0..11 {
                if let Ok(place) = lane.join(&program, None, now) {
                    waiting.push(place);
                }
            }
        }
        assert!(
            evaluated <= PER_SECOND * 60 + 1,
            "{evaluated} evaluated in a minute"
        );
        assert!(evaluated >= PER_SECOND * 60 - 1, "the lane keeps moving");
    }
}
