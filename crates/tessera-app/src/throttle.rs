//! The failed-redemption throttle: a fixed one-minute window of failures per
//! client network and per program.
//!
//! Admission reads only this process' windows, so a success costs no round trip.
//! With a [`FailureLedger`] (the replicas' shared counts) every *failure* is also
//! added there, and the window adopts the count of all replicas that the same
//! call returns: a client spread over n replicas by the load balancer then gets
//! the budget plus at most n − 1 (and what it has in flight), not n × the budget.
//! docs/security.md gives the arithmetic and why the counts live in PostgreSQL.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv6Addr};
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Instant;

use chrono::{DateTime, Utc};
use tessera_domain::ProgramId;

use crate::model::SharedFailure;
use crate::ports::FailureLedger;
use crate::slow_lane::SlowLane;

/// The client of a request whose origin cannot be told (a trusted proxy forwarded
/// no parseable untrusted address): all such requests share this one budget, so
/// a malformed header buys no fresh budget and spends no honest client's. The
/// unspecified address is never a TCP peer, so it names no real client.
pub const UNATTRIBUTABLE: IpAddr = IpAddr::V6(Ipv6Addr::UNSPECIFIED);
/// IPv6 clients are grouped by this prefix by default: a /64 is what one
/// subscriber, one host even, is given, so budgets per /128 would hand one host
/// 2^64 of them.
pub const DEFAULT_IPV6_PREFIX: u8 = 64;

const WINDOW_SECONDS: i64 = 60;
/// The per-program budget is this many times the per-client one: a program under
/// a distributed guessing attack slows down without one client locking it.
pub const PROGRAM_BUDGET_FACTOR: u32 = 10;
/// Past this many tracked keys, windows that have ended are dropped. When that
/// frees little (many clients in the current minute), the next prune waits until
/// the map has doubled, so pruning stays amortised O(1) per attempt.
const PRUNE_THRESHOLD: usize = 100_000;

/// What a failure budget is kept for.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum FailureSubject {
    /// A client network, as [`client_network`] groups addresses.
    Client(IpAddr),
    Program(ProgramId),
}

impl FailureSubject {
    /// The subject's name in a shared store: `client:<network>` or `program:<id>`.
    pub fn key(&self) -> String {
        match self {
            FailureSubject::Client(network) => format!("client:{network}"),
            FailureSubject::Program(program) => format!("program:{program}"),
        }
    }
}

#[derive(Debug, Clone, Copy)]
struct Window {
    /// The minute (seconds since the epoch / 60) `failures` counts.
    minute: i64,
    failures: u32,
    /// Attempts admitted and not yet settled, whatever their minute.
    in_flight: u32,
}

#[derive(Debug)]
struct Windows {
    by_subject: HashMap<FailureSubject, Window>,
    prune_at: usize,
}

/// Counts failed redemptions and refuses further attempts once a budget is spent.
///
/// A subject is refused when its confirmed failures this minute reach the budget,
/// or when its failures plus its attempts still in flight reach twice the budget.
/// The second rule bounds what concurrency can sneak past the first (an attacker
/// firing many guesses at once gets at most 2 × budget − 1 evaluated a minute),
/// while a busy client with no failures — a venue's NAT, a backend redeeming for
/// its users — may keep up to 2 × budget redemptions in flight.
#[derive(Debug)]
pub struct FailureThrottle {
    per_client: u32,
    per_program: u32,
    ipv6_prefix: u8,
    windows: Mutex<Windows>,
    slow_lane: SlowLane,
    /// The replicas' shared counts; `None`: this process counts alone.
    ledger: Option<Arc<dyn FailureLedger>>,
    /// The ledger holds no minute before this one (this replica asked it to forget
    /// them): the first failure of each minute does, once per replica.
    ledger_pruned_to: AtomicI64,
}

/// The network a client address budgets as: an IPv4 address is its own, an IPv6
/// address is its `prefix` network (IPv4-mapped forms count as IPv4).
pub fn client_network(client: IpAddr, ipv6_prefix: u8) -> IpAddr {
    match client.to_canonical() {
        IpAddr::V4(v4) => IpAddr::V4(v4),
        IpAddr::V6(v6) => {
            let bits = u32::from(ipv6_prefix.min(128));
            let mask = u128::MAX.checked_shl(128 - bits).unwrap_or(0);
            IpAddr::V6(Ipv6Addr::from(u128::from(v6) & mask))
        }
    }
}

fn minute_of(now: DateTime<Utc>) -> i64 {
    now.timestamp().div_euclid(WINDOW_SECONDS)
}

/// Seconds until the window of `now` ends, at least one.
fn retry_after(now: DateTime<Utc>) -> u32 {
    let window_end = (minute_of(now) + 1) * WINDOW_SECONDS;
    u32::try_from(window_end - now.timestamp())
        .unwrap_or(1)
        .max(1)
}

/// How an admitted attempt ends.
#[derive(Debug, Clone, Copy)]
enum Settled<'a> {
    /// No failure: a success, or an attempt withdrawn or refused unevaluated.
    Clean,
    /// A failure; `reported`: the shared counts, when the store added it itself.
    Failed { reported: Option<&'a [u32]> },
}

/// An admitted attempt. It counts as a failure unless [`Admission::succeeded`] is
/// called, so every early return — including a database error — is counted.
#[derive(Debug)]
#[must_use = "an admission dropped at once counts as a failure"]
pub struct Admission<'a> {
    throttle: &'a FailureThrottle,
    subjects: Vec<FailureSubject>,
    now: DateTime<Utc>,
    settled: bool,
    /// Handed to the store, which may add the failure to the shared ledger itself.
    shared: Option<SharedFailure>,
}

impl Admission<'_> {
    /// The attempt succeeded: it leaves the in-flight count and no failure is kept.
    pub fn succeeded(mut self) {
        self.release();
    }

    /// Not evaluated on this path after all: the attempt is handed, whole, to a
    /// path that admits it again. Settles with no failure, as a success does.
    pub fn withdraw(mut self) {
        self.release();
    }

    /// The failure this attempt would count, for the store to add to the shared
    /// ledger in the statement that refuses it (then the throttle adopts the
    /// counts the store reports and writes nothing itself). `None` without a
    /// ledger. Ask once the attempt's subjects are complete (after
    /// [`FailureThrottle::join_program`]).
    pub fn shared_failure(&mut self) -> Option<SharedFailure> {
        self.throttle.ledger.as_ref()?;
        let shared = SharedFailure::new(self.subjects.clone(), minute_of(self.now));
        self.shared = Some(shared.clone());
        Some(shared)
    }

    /// Settles without a failure (a success, or an attempt refused unevaluated).
    fn release(&mut self) {
        if !self.settled {
            self.throttle
                .settle(&self.subjects, self.now, Settled::Clean);
            self.settled = true;
        }
    }
}

impl Drop for Admission<'_> {
    fn drop(&mut self) {
        if !self.settled {
            let shared = self.shared.take();
            // The counts the store reports hold for these subjects only.
            let reported = shared
                .as_ref()
                .filter(|shared| shared.subjects == self.subjects)
                .and_then(SharedFailure::reported);
            self.throttle
                .settle(&self.subjects, self.now, Settled::Failed { reported });
        }
    }
}

impl FailureThrottle {
    pub fn new(failures_per_minute: u32) -> Self {
        Self {
            per_client: failures_per_minute,
            per_program: failures_per_minute.saturating_mul(PROGRAM_BUDGET_FACTOR),
            ipv6_prefix: DEFAULT_IPV6_PREFIX,
            windows: Mutex::new(Windows {
                by_subject: HashMap::new(),
                prune_at: PRUNE_THRESHOLD,
            }),
            slow_lane: SlowLane::default(),
            ledger: None,
            ledger_pruned_to: AtomicI64::new(i64::MIN),
        }
    }

    /// The throttle, adding every failure to `ledger` and adopting the count of
    /// all replicas it returns.
    pub fn with_ledger(mut self, ledger: Arc<dyn FailureLedger>) -> Self {
        self.ledger = Some(ledger);
        self
    }

    /// The throttle, grouping IPv6 clients by `prefix` bits instead of 64.
    pub fn with_ipv6_prefix(mut self, prefix: u8) -> Self {
        self.ipv6_prefix = prefix.clamp(1, 128);
        self
    }

    fn subjects(&self, client: Option<IpAddr>, program: Option<&ProgramId>) -> Vec<FailureSubject> {
        client
            .map(|client| FailureSubject::Client(client_network(client, self.ipv6_prefix)))
            .into_iter()
            .chain(program.cloned().map(FailureSubject::Program))
            .collect()
    }

    fn budget(&self, subject: &FailureSubject) -> u32 {
        match subject {
            FailureSubject::Client(_) => self.per_client,
            FailureSubject::Program(_) => self.per_program,
        }
    }

    fn lock(&self) -> MutexGuard<'_, Windows> {
        // The map holds counters only; a panic elsewhere cannot leave it inconsistent.
        self.windows
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Admits one attempt, or `Err(seconds until the window ends)` when the client
    /// or the program is over its budget (nothing is counted then).
    pub fn admit(
        &self,
        client: Option<IpAddr>,
        program: Option<&ProgramId>,
        now: DateTime<Utc>,
    ) -> Result<Admission<'_>, u32> {
        let minute = minute_of(now);
        let subjects = self.subjects(client, program);
        let mut windows = self.lock();
        if subjects
            .iter()
            .any(|subject| self.over_budget(&windows, subject, minute))
        {
            return Err(retry_after(now));
        }
        Self::enter(&mut windows, &subjects, minute);
        drop(windows);
        Ok(Admission {
            throttle: self,
            subjects,
            now,
            settled: false,
            shared: None,
        })
    }

    /// Adds `program` to an admitted attempt, once the attempt has shown it could
    /// be a code of the program (so junk never spends the program's budget).
    /// Within the budget it goes on at once. Past it the attempt waits its turn
    /// in the program's [slow lane](crate::slow_lane) — blocking the calling thread
    /// for at most a few seconds — or, when that queue is full, is refused with
    /// `Err(seconds to wait)` (its client is not charged for that).
    pub fn join_program(
        &self,
        admission: &mut Admission<'_>,
        program: &ProgramId,
    ) -> Result<(), u32> {
        let subject = FailureSubject::Program(program.clone());
        let minute = minute_of(admission.now);
        let over = self.over_budget(&self.lock(), &subject, minute);
        if over {
            let client = admission.subjects.iter().find_map(|subject| match subject {
                FailureSubject::Client(network) => Some(*network),
                FailureSubject::Program(_) => None,
            });
            let place = self
                .slow_lane
                .join(program, client, Instant::now())
                .inspect_err(|_| admission.release())?;
            place.wait();
        }
        Self::enter(&mut self.lock(), std::slice::from_ref(&subject), minute);
        admission.subjects.push(subject);
        Ok(())
    }

    /// [`Self::join_program`] without ever waiting: `false`, with nothing
    /// changed, when the program is past its budget (the attempt would take the
    /// slow lane, which blocks: the caller hands it to a thread that may).
    pub fn join_program_now(&self, admission: &mut Admission<'_>, program: &ProgramId) -> bool {
        let subject = FailureSubject::Program(program.clone());
        let minute = minute_of(admission.now);
        let mut windows = self.lock();
        if self.over_budget(&windows, &subject, minute) {
            return false;
        }
        Self::enter(&mut windows, std::slice::from_ref(&subject), minute);
        drop(windows);
        admission.subjects.push(subject);
        true
    }

    /// Whether `program` is past its budget (its public attempts take the slow lane).
    pub fn program_over_budget(&self, program: &ProgramId, now: DateTime<Utc>) -> bool {
        let subject = FailureSubject::Program(program.clone());
        self.over_budget(&self.lock(), &subject, minute_of(now))
    }

    fn over_budget(&self, windows: &Windows, subject: &FailureSubject, minute: i64) -> bool {
        windows.by_subject.get(subject).is_some_and(|window| {
            let budget = self.budget(subject);
            let failures = if window.minute == minute {
                window.failures
            } else {
                0
            };
            failures >= budget || failures + window.in_flight >= budget.saturating_mul(2)
        })
    }

    fn enter(windows: &mut Windows, subjects: &[FailureSubject], minute: i64) {
        if windows.by_subject.len() >= windows.prune_at {
            windows
                .by_subject
                .retain(|_, window| window.minute == minute || window.in_flight > 0);
            windows.prune_at = PRUNE_THRESHOLD.max(windows.by_subject.len() * 2);
        }
        for subject in subjects {
            let window = windows.by_subject.entry(subject.clone()).or_insert(Window {
                minute,
                failures: 0,
                in_flight: 0,
            });
            window.in_flight = window.in_flight.saturating_add(1);
        }
    }

    /// Leaves the in-flight counts, and counts a failure if there was one.
    fn settle(&self, subjects: &[FailureSubject], now: DateTime<Utc>, settled: Settled<'_>) {
        let minute = minute_of(now);
        {
            let mut windows = self.lock();
            for (position, subject) in subjects.iter().enumerate() {
                if let Some(window) = windows.by_subject.get_mut(subject) {
                    window.in_flight = window.in_flight.saturating_sub(1);
                    if let Settled::Failed { reported } = settled {
                        if window.minute != minute {
                            window.minute = minute;
                            window.failures = 0;
                        }
                        window.failures = match reported.and_then(|counts| counts.get(position)) {
                            // The store's count includes this failure (and any other
                            // this window adopted before): adding one would count
                            // it twice, once per failure still to settle.
                            Some(&count) => window.failures.max(count),
                            None => window.failures.saturating_add(1),
                        };
                    }
                }
            }
        }
        match settled {
            Settled::Failed { reported: None } => self.share_failure(subjects, minute),
            Settled::Failed { reported: Some(_) } => self.prune_ledger(minute),
            Settled::Clean => {}
        }
    }

    /// The first failure of each minute on this replica asks the ledger to
    /// forget the minutes before.
    fn prune_ledger(&self, minute: i64) {
        let Some(ledger) = &self.ledger else {
            return;
        };
        if self.ledger_pruned_to.fetch_max(minute, Ordering::Relaxed) < minute {
            if let Err(error) = ledger.forget_before(minute) {
                tracing::warn!(%error, "could not prune the shared throttle counts");
            }
        }
    }

    /// Adds a failure of `subjects` to the ledger and adopts the replicas' counts
    /// it returns (never lowering a local one). Without the lock held: the
    /// ledger is a round trip. When the ledger fails, the local count stands —
    /// the throttle then holds per replica, as it would without a ledger. (A
    /// failure the store already counted arrives in `settle` with its counts.)
    fn share_failure(&self, subjects: &[FailureSubject], minute: i64) {
        let Some(ledger) = &self.ledger else {
            return;
        };
        if subjects.is_empty() {
            return;
        }
        self.prune_ledger(minute);
        match ledger.add_failures(subjects, minute) {
            Ok(counts) => {
                let mut windows = self.lock();
                for (subject, count) in subjects.iter().zip(counts) {
                    if let Some(window) = windows.by_subject.get_mut(subject) {
                        if window.minute == minute {
                            window.failures = window.failures.max(count);
                        }
                    }
                }
            }
            Err(error) => {
                tracing::warn!(%error, "shared throttle counts unavailable: this replica counts alone");
            }
        }
    }
}

#[cfg(test)]
#[path = "throttle_shared_tests.rs"]
mod shared_tests;

#[cfg(test)]
mod tests {
    use chrono::{Duration, TimeZone};

    use super::*;

    /// `seconds` after the start of a minute.
    fn at(seconds: i64) -> DateTime<Utc> {
        Utc.timestamp_opt(1_800_000_000 + seconds, 0).unwrap()
    }

    fn ip(last: u8) -> Option<IpAddr> {
        Some(IpAddr::from([192, 0, 2, last]))
    }

    fn fail(
        throttle: &FailureThrottle,
        client: Option<IpAddr>,
        program: Option<&ProgramId>,
        now: DateTime<Utc>,
    ) {
        drop(throttle.admit(client, program, now).expect("admitted"));
    }

    #[test]
    fn a_client_is_refused_after_its_budget_until_the_minute_ends() {
        let throttle = FailureThrottle::new(3);
        let program = ProgramId::generate();
        for _ in 0..3 {
            fail(&throttle, ip(1), Some(&program), at(10));
        }
        assert_eq!(
            throttle.admit(ip(1), Some(&program), at(15)).map(|_| ()),
            Err(45)
        );
        assert!(
            throttle.admit(ip(2), Some(&program), at(15)).is_ok(),
            "other clients go on"
        );
        assert!(
            throttle.admit(ip(1), Some(&program), at(60)).is_ok(),
            "a new minute, a new budget"
        );
    }

    #[test]
    fn successes_never_spend_the_budget() {
        let throttle = FailureThrottle::new(2);
        let program = ProgramId::generate();
        for _ in 0..50 {
            throttle
                .admit(ip(1), Some(&program), at(5))
                .expect("admitted")
                .succeeded();
        }
        assert!(throttle.admit(ip(1), Some(&program), at(5)).is_ok());
    }

    #[test]
    fn a_busy_client_without_failures_may_keep_twice_the_budget_in_flight() {
        let throttle = FailureThrottle::new(5);
        let in_flight: Vec<_> = (0..10)
            .map(|_| throttle.admit(ip(1), None, at(1)).expect("admitted"))
            .collect();
        assert!(
            throttle.admit(ip(1), None, at(1)).is_err(),
            "the eleventh concurrent attempt waits"
        );
        in_flight.into_iter().for_each(Admission::succeeded);
        assert!(
            throttle.admit(ip(1), None, at(2)).is_ok(),
            "none of them failed"
        );
    }

    #[test]
    fn concurrent_guesses_cannot_overrun_twice_the_budget() {
        let throttle = FailureThrottle::new(5);
        let mut evaluated = 0;
        let mut in_flight = Vec::new();
        for _ in 0..100 {
            if let Ok(admission) = throttle.admit(ip(1), None, at(1)) {
                evaluated += 1;
                in_flight.push(admission);
            }
            if in_flight.len() == 3 {
                in_flight.clear(); // three guesses at a time come back wrong
            }
        }
        drop(in_flight);
        assert!(evaluated < 10, "evaluated {evaluated}");
        assert!(throttle.admit(ip(1), None, at(1)).is_err());
    }

    #[test]
    fn a_refused_attempt_is_not_counted() {
        let throttle = FailureThrottle::new(1);
        let admitted = throttle.admit(ip(1), None, at(1)).expect("admitted");
        admitted.succeeded();
        fail(&throttle, ip(1), None, at(1));
        assert!(throttle.admit(ip(1), None, at(2)).is_err());
        assert!(
            throttle.admit(ip(1), None, at(61)).is_ok(),
            "only one failure was ever counted"
        );
    }

    #[test]
    fn a_program_is_refused_after_ten_times_the_client_budget() {
        let throttle = FailureThrottle::new(2);
        let program = ProgramId::generate();
        for client in 0..20 {
            fail(&throttle, ip(client), Some(&program), at(1));
        }
        assert!(throttle.admit(ip(200), Some(&program), at(2)).is_err());
        assert!(throttle
            .admit(ip(200), Some(&ProgramId::generate()), at(2))
            .is_ok());
    }

    #[test]
    fn joining_now_never_waits_and_a_withdrawn_attempt_counts_nothing() {
        let throttle = FailureThrottle::new(2);
        let program = ProgramId::generate();
        // Within the budget the program is joined at once, and its failure counts.
        let mut admission = throttle.admit(ip(1), None, at(1)).expect("admitted");
        assert!(throttle.join_program_now(&mut admission, &program));
        drop(admission);
        // A withdrawn attempt, joined or not, spends no budget of anyone's.
        for _ in 0..50 {
            let mut admission = throttle.admit(ip(2), None, at(1)).expect("admitted");
            assert!(throttle.join_program_now(&mut admission, &program));
            admission.withdraw();
        }
        assert!(throttle.admit(ip(2), None, at(1)).is_ok());
        for client in 10..29 {
            fail(&throttle, ip(client), Some(&program), at(1));
        }
        // Past the program's budget: refused to join (the slow lane is not
        // entered), the attempt untouched and still the client's to withdraw.
        let mut admission = throttle.admit(ip(3), None, at(1)).expect("admitted");
        assert!(!throttle.join_program_now(&mut admission, &program));
        assert!(throttle.program_over_budget(&program, at(1)));
        admission.withdraw();
        assert!(throttle.admit(ip(3), None, at(1)).is_ok());
    }

    #[test]
    fn retry_after_is_at_least_one_second() {
        let throttle = FailureThrottle::new(1);
        fail(&throttle, ip(1), None, at(59));
        assert_eq!(
            throttle
                .admit(ip(1), None, at(59) + Duration::milliseconds(900))
                .map(|_| ()),
            Err(1)
        );
    }

    #[test]
    fn past_the_threshold_only_windows_of_minutes_that_ended_are_dropped() {
        let throttle = FailureThrottle::new(1);
        let client = |n: usize| {
            let n = u32::try_from(n).unwrap();
            Some(IpAddr::from(std::net::Ipv4Addr::from(0x0A00_0000 + n)))
        };
        for n in 0..PRUNE_THRESHOLD {
            fail(&throttle, client(n), None, at(1));
        }
        // Pruning within the minute keeps every window: the budgets still hold.
        fail(&throttle, client(PRUNE_THRESHOLD), None, at(2));
        assert!(throttle.admit(client(0), None, at(3)).is_err());
        assert_eq!(throttle.lock().by_subject.len(), PRUNE_THRESHOLD + 1);
        let prune_at = throttle.lock().prune_at;
        assert_eq!(
            prune_at,
            2 * PRUNE_THRESHOLD,
            "a prune that freed nothing waits for twice the size"
        );

        // A minute later, once the map reaches that size, the ended minute goes.
        let fresh = prune_at - (PRUNE_THRESHOLD + 1);
        for n in 0..=fresh {
            fail(&throttle, client(1_000_000 + n), None, at(61));
        }
        assert_eq!(
            throttle.lock().by_subject.len(),
            fresh + 1,
            "the ended minute's windows are gone"
        );
    }

    #[test]
    fn unknown_clients_and_programs_are_not_counted() {
        let throttle = FailureThrottle::new(1);
        fail(&throttle, None, None, at(1));
        assert!(throttle.admit(None, None, at(2)).is_ok());
    }

    fn v6(text: &str) -> Option<IpAddr> {
        Some(text.parse().unwrap())
    }

    #[test]
    fn ipv6_clients_share_a_budget_per_64_and_ipv4_clients_per_address() {
        let throttle = FailureThrottle::new(2);
        fail(&throttle, v6("2001:db8:1:2::1"), None, at(1));
        fail(
            &throttle,
            v6("2001:db8:1:2:ffff:ffff:ffff:ffff"),
            None,
            at(1),
        );
        assert!(throttle.admit(v6("2001:db8:1:2::9"), None, at(2)).is_err());
        assert!(throttle.admit(v6("2001:db8:1:3::1"), None, at(2)).is_ok());
        fail(&throttle, ip(1), None, at(1));
        fail(&throttle, ip(1), None, at(1));
        assert!(
            throttle.admit(ip(2), None, at(2)).is_ok(),
            "IPv4 per address"
        );
        assert!(throttle.admit(v6("::ffff:192.0.2.1"), None, at(2)).is_err());

        let per_48 = FailureThrottle::new(1).with_ipv6_prefix(48);
        fail(&per_48, v6("2001:db8:1:2::1"), None, at(1));
        assert!(per_48.admit(v6("2001:db8:1:ffff::1"), None, at(2)).is_err());
        assert_eq!(
            client_network("2001:db8::1".parse().unwrap(), 128),
            "2001:db8::1".parse::<IpAddr>().unwrap()
        );
    }

    #[test]
    fn unattributable_requests_share_one_budget_of_their_own() {
        let throttle = FailureThrottle::new(1);
        fail(&throttle, Some(UNATTRIBUTABLE), None, at(1));
        assert!(throttle.admit(Some(UNATTRIBUTABLE), None, at(2)).is_err());
        assert!(throttle.admit(v6("2001:db8::1"), None, at(2)).is_ok());
    }

    #[test]
    fn junk_never_spends_a_program_budget_only_joined_attempts_do() {
        let throttle = FailureThrottle::new(1);
        let program = ProgramId::generate();
        for n in 0..50 {
            fail(&throttle, ip(n), None, at(1));
        }
        assert!(!throttle.program_over_budget(&program, at(1)));
        for n in 100..110 {
            let mut admission = throttle.admit(ip(n), None, at(1)).expect("admitted");
            throttle
                .join_program(&mut admission, &program)
                .expect("joined");
        }
        assert!(throttle.program_over_budget(&program, at(2)));
        assert!(
            !throttle.program_over_budget(&program, at(60)),
            "next minute"
        );
    }

    #[test]
    fn an_attempt_turned_away_by_a_full_slow_lane_costs_its_client_nothing() {
        let throttle = FailureThrottle::new(1);
        let program = ProgramId::generate();
        for n in 0..10 {
            let mut admission = throttle.admit(ip(n), None, at(1)).expect("admitted");
            throttle
                .join_program(&mut admission, &program)
                .expect("joined");
        }
        let now = Instant::now();
        let queue: Vec<_> = (0..crate::slow_lane::WAITERS_PER_PROGRAM)
            .map(|_| throttle.slow_lane.join(&program, None, now).expect("place"))
            .collect();
        let mut admission = throttle.admit(ip(200), None, at(2)).expect("admitted");
        assert!(throttle.join_program(&mut admission, &program).is_err());
        drop(admission);
        drop(queue);
        assert!(
            throttle.admit(ip(200), None, at(3)).is_ok(),
            "the refused attempt was not counted against a budget of one"
        );
    }
}
