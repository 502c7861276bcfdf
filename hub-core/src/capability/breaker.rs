//! The circuit breaker of one capability: after enough consecutive failed calls it refuses
//! calls for a while, so a down cluster costs the hub no threads and the cluster no load, then
//! lets a single trial call find out whether it is back.

use chrono::{DateTime, Utc};
use std::time::{Duration, Instant};

/// Where a capability's breaker stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BreakerState {
    /// Calls go through.
    Closed,
    /// Calls fail fast until `until`.
    Open {
        /// When the next trial call will be let through.
        until: DateTime<Utc>,
    },
    /// The open period is over: the next call is a trial whose outcome closes or reopens it.
    HalfOpen,
}

/// How a call ended, as far as the breaker is concerned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Verdict {
    /// The capability answered (any status below 500).
    Healthy,
    /// Connect error, time-out, TLS failure, DNS failure or HTTP 5xx.
    Failed,
    /// The call was stopped on this side (blocked address, refused redirect): it says nothing
    /// about the capability's health.
    Inconclusive,
}

/// What [`Breaker::admit`] decided for one call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Admission {
    /// The breaker is closed.
    Normal,
    /// The one call a half-open breaker lets through.
    Trial,
}

#[derive(Debug, Clone, Copy)]
enum Phase {
    Closed,
    Open {
        until: Instant,
        until_wall: DateTime<Utc>,
    },
    HalfOpen {
        trial_in_flight: bool,
        opened_until: DateTime<Utc>,
    },
}

/// One capability's breaker. Time is passed in, so tests need not sleep.
#[derive(Debug, Clone)]
pub(super) struct Breaker {
    phase: Phase,
    consecutive_failures: u32,
}

impl Default for Breaker {
    fn default() -> Self {
        Self {
            phase: Phase::Closed,
            consecutive_failures: 0,
        }
    }
}

impl Breaker {
    /// Lets a call through, or says until when calls are refused. While a trial is under way
    /// further calls are refused too, with the instant the open period ended.
    pub(super) fn admit(&mut self, now: Instant) -> Result<Admission, DateTime<Utc>> {
        match self.phase {
            Phase::Closed => Ok(Admission::Normal),
            Phase::Open { until, until_wall } if now < until => Err(until_wall),
            Phase::Open { until_wall, .. } => {
                self.phase = Phase::HalfOpen {
                    trial_in_flight: true,
                    opened_until: until_wall,
                };
                Ok(Admission::Trial)
            }
            Phase::HalfOpen {
                trial_in_flight: true,
                opened_until,
            } => Err(opened_until),
            Phase::HalfOpen {
                trial_in_flight: false,
                opened_until,
            } => {
                self.phase = Phase::HalfOpen {
                    trial_in_flight: true,
                    opened_until,
                };
                Ok(Admission::Trial)
            }
        }
    }

    /// Records a finished call; returns true when this opened the breaker or closed it, so the
    /// caller updates the gauge and logs once per change.
    pub(super) fn record(
        &mut self,
        admission: Admission,
        verdict: Verdict,
        now: Instant,
        threshold: u32,
        open_for: Duration,
    ) -> bool {
        match verdict {
            Verdict::Healthy => {
                self.consecutive_failures = 0;
                let was_closed = matches!(self.phase, Phase::Closed);
                self.phase = Phase::Closed;
                !was_closed
            }
            Verdict::Failed => {
                self.consecutive_failures = self.consecutive_failures.saturating_add(1);
                let open = match self.phase {
                    // Calls that started before the breaker opened do not extend the open period.
                    Phase::Open { .. } => false,
                    Phase::HalfOpen { .. } => true,
                    Phase::Closed => self.consecutive_failures >= threshold,
                };
                if open {
                    let wall_now = Utc::now();
                    self.phase = Phase::Open {
                        until: now.checked_add(open_for).unwrap_or(now),
                        until_wall: chrono::Duration::from_std(open_for)
                            .ok()
                            .and_then(|d| wall_now.checked_add_signed(d))
                            .unwrap_or(wall_now),
                    };
                }
                open
            }
            Verdict::Inconclusive => {
                if admission == Admission::Trial {
                    if let Phase::HalfOpen { opened_until, .. } = self.phase {
                        self.phase = Phase::HalfOpen {
                            trial_in_flight: false,
                            opened_until,
                        };
                    }
                }
                false
            }
        }
    }

    /// The state as widgets and `/metrics` show it.
    pub(super) fn state(&self, now: Instant) -> BreakerState {
        match self.phase {
            Phase::Closed => BreakerState::Closed,
            Phase::Open { until, until_wall } if now < until => {
                BreakerState::Open { until: until_wall }
            }
            Phase::Open { .. } | Phase::HalfOpen { .. } => BreakerState::HalfOpen,
        }
    }

    /// True while the breaker is not closed (open or half-open).
    pub(super) fn is_tripped(&self) -> bool {
        !matches!(self.phase, Phase::Closed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const OPEN_FOR: Duration = Duration::from_secs(30);

    fn fail(b: &mut Breaker, admission: Admission, now: Instant) -> bool {
        b.record(admission, Verdict::Failed, now, 3, OPEN_FOR)
    }

    #[test]
    fn it_opens_after_the_threshold_of_consecutive_failures() {
        let t0 = Instant::now();
        let mut b = Breaker::default();
        assert!(!fail(&mut b, Admission::Normal, t0));
        assert!(!fail(&mut b, Admission::Normal, t0));
        // A success in between resets the count.
        assert!(!b.record(Admission::Normal, Verdict::Healthy, t0, 3, OPEN_FOR));
        assert!(!fail(&mut b, Admission::Normal, t0));
        assert!(!fail(&mut b, Admission::Normal, t0));
        assert_eq!(b.state(t0), BreakerState::Closed);
        assert!(fail(&mut b, Admission::Normal, t0));
        assert!(matches!(b.state(t0), BreakerState::Open { .. }));
        assert!(b.admit(t0 + Duration::from_secs(29)).is_err());
        // A late failure of a call admitted before it opened does not push the period out.
        assert!(!fail(
            &mut b,
            Admission::Normal,
            t0 + Duration::from_secs(10)
        ));
        assert_eq!(b.state(t0 + OPEN_FOR), BreakerState::HalfOpen);
    }

    #[test]
    fn one_trial_after_the_open_period_closes_or_reopens_it() {
        let t0 = Instant::now();
        let mut b = Breaker::default();
        for _ in 0..3 {
            fail(&mut b, Admission::Normal, t0);
        }
        let later = t0 + OPEN_FOR;
        assert_eq!(b.admit(later), Ok(Admission::Trial));
        // Only one trial at a time.
        assert!(b.admit(later).is_err());
        assert!(fail(&mut b, Admission::Trial, later));
        assert!(matches!(b.state(later), BreakerState::Open { .. }));
        assert!(b.admit(later + Duration::from_secs(1)).is_err());

        let again = later + OPEN_FOR;
        assert_eq!(b.admit(again), Ok(Admission::Trial));
        assert!(b.record(Admission::Trial, Verdict::Healthy, again, 3, OPEN_FOR));
        assert_eq!(b.state(again), BreakerState::Closed);
        assert_eq!(b.admit(again), Ok(Admission::Normal));
        // Closed again with a fresh count: one failure does not reopen it.
        assert!(!fail(&mut b, Admission::Normal, again));
    }

    #[test]
    fn an_inconclusive_trial_frees_the_slot_for_the_next_one() {
        let t0 = Instant::now();
        let mut b = Breaker::default();
        for _ in 0..3 {
            fail(&mut b, Admission::Normal, t0);
        }
        let later = t0 + OPEN_FOR;
        assert_eq!(b.admit(later), Ok(Admission::Trial));
        assert!(!b.record(Admission::Trial, Verdict::Inconclusive, later, 3, OPEN_FOR));
        assert_eq!(b.state(later), BreakerState::HalfOpen);
        assert_eq!(b.admit(later), Ok(Admission::Trial));
    }
}
