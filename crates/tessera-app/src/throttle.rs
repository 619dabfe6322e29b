//! The failed-redemption throttle: a fixed one-minute window of failures per
//! client address and per program, kept in this process.
//!
//! In-process state is exact for one replica. With several replicas each keeps its
//! own windows, so a client spread over n replicas by the load balancer gets up to
//! n × the budget; docs/security.md explains why that is the trade chosen.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;

use chrono::{DateTime, Utc};
use tessera_domain::ProgramId;

const WINDOW_SECONDS: i64 = 60;
/// The per-program budget is this many times the per-client one: a program under
/// a distributed guessing attack slows down without one client locking it.
pub const PROGRAM_BUDGET_FACTOR: u32 = 10;
/// Past this many tracked keys, windows that have ended are dropped.
const PRUNE_THRESHOLD: usize = 100_000;

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum Subject {
    Client(IpAddr),
    Program(ProgramId),
}

#[derive(Debug, Clone, Copy)]
struct Window {
    /// The minute (seconds since the epoch / 60) this window counts.
    minute: i64,
    failures: u32,
}

/// Counts failed redemptions and refuses further attempts once a budget is spent.
#[derive(Debug)]
pub struct FailureThrottle {
    per_client: u32,
    per_program: u32,
    windows: Mutex<HashMap<Subject, Window>>,
}

fn minute_of(now: DateTime<Utc>) -> i64 {
    now.timestamp().div_euclid(WINDOW_SECONDS)
}

impl FailureThrottle {
    pub fn new(failures_per_minute: u32) -> Self {
        Self {
            per_client: failures_per_minute,
            per_program: failures_per_minute.saturating_mul(PROGRAM_BUDGET_FACTOR),
            windows: Mutex::new(HashMap::new()),
        }
    }

    fn subjects(
        client: Option<IpAddr>,
        program: Option<&ProgramId>,
    ) -> impl Iterator<Item = Subject> {
        client
            .map(Subject::Client)
            .into_iter()
            .chain(program.cloned().map(Subject::Program))
    }

    fn budget(&self, subject: &Subject) -> u32 {
        match subject {
            Subject::Client(_) => self.per_client,
            Subject::Program(_) => self.per_program,
        }
    }

    /// `Err(seconds)` until the window ends when the client or the program has
    /// spent its budget of failures this minute.
    pub fn check(
        &self,
        client: Option<IpAddr>,
        program: Option<&ProgramId>,
        now: DateTime<Utc>,
    ) -> Result<(), u32> {
        let minute = minute_of(now);
        let windows = self
            .windows
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        let spent = Self::subjects(client, program).any(|subject| {
            windows.get(&subject).is_some_and(|window| {
                window.minute == minute && window.failures >= self.budget(&subject)
            })
        });
        if spent {
            let window_end = (minute + 1) * WINDOW_SECONDS;
            Err(u32::try_from(window_end - now.timestamp())
                .unwrap_or(1)
                .max(1))
        } else {
            Ok(())
        }
    }

    /// Counts one failure against the client and the program.
    pub fn record_failure(
        &self,
        client: Option<IpAddr>,
        program: Option<&ProgramId>,
        now: DateTime<Utc>,
    ) {
        let minute = minute_of(now);
        let mut windows = self
            .windows
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        if windows.len() >= PRUNE_THRESHOLD {
            windows.retain(|_, window| window.minute == minute);
        }
        for subject in Self::subjects(client, program) {
            let window = windows.entry(subject).or_insert(Window {
                minute,
                failures: 0,
            });
            if window.minute != minute {
                *window = Window {
                    minute,
                    failures: 0,
                };
            }
            window.failures = window.failures.saturating_add(1);
        }
    }
}

#[cfg(test)]
mod tests {
    use chrono::{Duration, TimeZone};

    use super::*;

    fn at(seconds: i64) -> DateTime<Utc> {
        Utc.timestamp_opt(1_800_000_000 - 1_800_000_000 % 60 + seconds, 0)
            .unwrap()
    }

    fn ip(last: u8) -> Option<IpAddr> {
        Some(IpAddr::from([192, 0, 2, last]))
    }

    #[test]
    fn a_client_is_refused_after_its_budget_until_the_minute_ends() {
        let throttle = FailureThrottle::new(3);
        let program = ProgramId::generate();
        for _ in 0..3 {
            assert_eq!(throttle.check(ip(1), Some(&program), at(10)), Ok(()));
            throttle.record_failure(ip(1), Some(&program), at(10));
        }
        assert_eq!(throttle.check(ip(1), Some(&program), at(15)), Err(45));
        assert_eq!(
            throttle.check(ip(2), Some(&program), at(15)),
            Ok(()),
            "other clients go on"
        );
        assert_eq!(
            throttle.check(ip(1), Some(&program), at(60)),
            Ok(()),
            "a new minute, a new budget"
        );
    }

    #[test]
    fn a_program_is_refused_after_ten_times_the_client_budget() {
        let throttle = FailureThrottle::new(2);
        let program = ProgramId::generate();
        for client in 0..20 {
            throttle.record_failure(ip(client), Some(&program), at(1));
        }
        assert!(throttle.check(ip(200), Some(&program), at(2)).is_err());
        assert_eq!(
            throttle.check(ip(200), Some(&ProgramId::generate()), at(2)),
            Ok(())
        );
    }

    #[test]
    fn retry_after_is_at_least_one_second() {
        let throttle = FailureThrottle::new(1);
        throttle.record_failure(ip(1), None, at(59));
        assert_eq!(
            throttle.check(ip(1), None, at(59) + Duration::milliseconds(900)),
            Err(1)
        );
    }

    #[test]
    fn unknown_clients_and_programs_are_not_counted() {
        let throttle = FailureThrottle::new(1);
        throttle.record_failure(None, None, at(1));
        assert_eq!(throttle.check(None, None, at(2)), Ok(()));
    }
}
