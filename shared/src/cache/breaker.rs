//! A circuit breaker for the cache: after repeated Redis failures, skip Redis for a cooldown so
//! every read stops paying a timeout, then let calls through again; the first success closes it.

use std::sync::Mutex;
use std::time::{Duration, Instant};

pub struct Breaker {
    threshold: u32,
    cooldown: Duration,
    state: Mutex<State>,
}

#[derive(Default)]
struct State {
    consecutive_failures: u32,
    open_until: Option<Instant>,
}

impl Breaker {
    pub fn new(threshold: u32, cooldown: Duration) -> Self {
        Self {
            threshold: threshold.max(1),
            cooldown,
            state: Mutex::new(State::default()),
        }
    }

    /// Whether Redis should be skipped now. After the cooldown calls go through again
    /// (half-open); one more failure re-opens it at once.
    pub fn is_open(&self) -> bool {
        let state = self.state.lock().unwrap_or_else(|p| p.into_inner());
        state.open_until.is_some_and(|until| Instant::now() < until)
    }

    pub fn record_success(&self) {
        let mut state = self.state.lock().unwrap_or_else(|p| p.into_inner());
        if state.open_until.is_some() {
            tracing::info!("cache circuit closed: Redis answers again");
        }
        *state = State::default();
    }

    /// Counts a failure; whether it opened the breaker (it was closed, or its cooldown over).
    pub fn record_failure(&self) -> bool {
        let mut state = self.state.lock().unwrap_or_else(|p| p.into_inner());
        state.consecutive_failures = state.consecutive_failures.saturating_add(1);
        if state.consecutive_failures < self.threshold {
            return false;
        }
        let opened = state.open_until.is_none_or(|until| Instant::now() >= until);
        if opened {
            tracing::warn!(
                failures = state.consecutive_failures,
                cooldown_ms = self.cooldown.as_millis() as u64,
                "cache circuit open: skipping Redis"
            );
        }
        state.open_until = Some(Instant::now() + self.cooldown);
        opened
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn opens_after_the_threshold_and_closes_on_success() {
        let breaker = Breaker::new(3, Duration::from_secs(60));
        breaker.record_failure();
        breaker.record_failure();
        assert!(!breaker.is_open());
        breaker.record_failure();
        assert!(breaker.is_open());
        breaker.record_success();
        assert!(!breaker.is_open());
        breaker.record_failure();
        assert!(!breaker.is_open(), "the count restarted after the success");
    }

    #[test]
    fn lets_calls_through_after_the_cooldown() {
        let breaker = Breaker::new(1, Duration::ZERO);
        breaker.record_failure();
        assert!(!breaker.is_open(), "a zero cooldown is already over");
    }
}
