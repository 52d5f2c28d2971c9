//! The deadline a Lambda invocation gets (`Context::deadline`, epoch milliseconds), read
//! defensively: local runtimes send odd ones (`cargo lambda watch`, which the local gateway can
//! still be pointed at with `--invoke-url`, sends 600000), so a deadline that cannot be one is
//! told apart from a deadline that has passed. Each trigger function decides what a missing
//! deadline means for it (the scheduler's tick, the worker's drain, the migrate function).

use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Lambda's longest timeout: a deadline further away than this is not an epoch time either.
const LONGEST_INVOCATION: Duration = Duration::from_secs(15 * 60);
/// 2017-07-14 in epoch milliseconds: anything earlier is not a deadline of this era.
const PLAUSIBLE_EPOCH_MS: u64 = 1_500_000_000_000;

/// Now, in epoch milliseconds (the clock Lambda's deadlines are given in).
pub fn now_epoch_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |since| since.as_millis() as u64)
}

/// The time from now to `deadline_epoch_ms` (zero once it passed), or `None` when it is not a
/// plausible epoch time at all.
pub fn time_left(deadline_epoch_ms: u64) -> Option<Duration> {
    let remaining = Duration::from_millis(deadline_epoch_ms.saturating_sub(now_epoch_ms()));
    (deadline_epoch_ms >= PLAUSIBLE_EPOCH_MS && remaining <= LONGEST_INVOCATION)
        .then_some(remaining)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_deadline_of_this_era_within_lambdas_longest_timeout_is_one() {
        let now = now_epoch_ms();
        let left = time_left(now + 60_000).expect("a real deadline");
        assert!(left > Duration::from_secs(59) && left <= Duration::from_secs(60));
        assert_eq!(time_left(now - 5_000), Some(Duration::ZERO));
        assert_eq!(time_left(600_000), None);
        assert_eq!(time_left(now + 16 * 60_000), None);
    }
}
