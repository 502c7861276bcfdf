//! Capped exponential back-off with jitter, for retrying the state hub while it is down: fast
//! at first, so a short blip costs little, then no more often than the cap, so a long outage
//! costs the state hub nothing when it comes back.

use rand::Rng;
use std::time::Duration;

/// First pause.
const FIRST: Duration = Duration::from_millis(200);

/// Back-off state of one retry loop.
#[derive(Debug, Clone)]
pub struct Backoff {
    next: Duration,
    cap: Duration,
}

impl Backoff {
    /// Starts at 200 ms and doubles up to `cap`.
    pub fn new(cap: Duration) -> Self {
        Self {
            next: FIRST.min(cap),
            cap,
        }
    }

    /// The pause before the next attempt (±20 % jitter, so replicas do not retry in step).
    pub fn next_delay(&mut self) -> Duration {
        let base = self.next;
        self.next = (self.next * 2).min(self.cap);
        let jitter = rand::thread_rng().gen_range(0.8..1.2);
        base.mul_f64(jitter).min(self.cap)
    }

    /// After a success: the next failure starts short again.
    pub fn reset(&mut self) {
        self.next = FIRST.min(self.cap);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn doubles_up_to_the_cap_and_resets() {
        let mut b = Backoff::new(Duration::from_secs(2));
        let first = b.next_delay();
        assert!(first >= Duration::from_millis(160) && first <= Duration::from_millis(240));
        for _ in 0..10 {
            assert!(b.next_delay() <= Duration::from_secs(2));
        }
        assert!(b.next_delay() >= Duration::from_millis(1600));
        b.reset();
        assert!(b.next_delay() <= Duration::from_millis(240));
    }
}
