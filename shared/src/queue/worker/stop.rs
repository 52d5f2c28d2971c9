//! When a drain stops: the Lambda deadline (read defensively, as local runtimes send odd ones),
//! SIGINT/SIGTERM for `worker --loop`, or an idle queue.

use serde::Serialize;
use std::time::Duration;
use tokio::time::Instant;

/// Stop everything this long before the Lambda deadline, so the report gets out.
const HARD_STOP_MARGIN: Duration = Duration::from_secs(1);
/// The time an invocation gets when the runtime's deadline is not believable (`cargo lambda
/// watch`, which the local gateway can still be pointed at with `--invoke-url`, sends 600000,
/// not an epoch time): short enough for a 30 s invoke timeout, such as the one infra/run-local
/// gave watch when watch ran the functions.
const FALLBACK_CLAIMING: Duration = Duration::from_secs(20);
const FALLBACK_FINISHING: Duration = Duration::from_secs(5);

/// When a drain stops.
#[derive(Clone, Copy, Debug, Default)]
pub struct Drain {
    /// Stop claiming at this instant (`None`: never, as in `--loop`).
    pub stop_at: Option<Instant>,
    /// Give up on running handlers at this instant (`None`: wait for them).
    pub finish_by: Option<Instant>,
    /// Also stop once nothing is ready, held, or waiting for a retry (tests, one-off drains).
    pub stop_when_idle: bool,
    /// Leave after this long with nothing to run (a Lambda drain, `WORKER_IDLE_STOP_SECONDS`;
    /// see `shared::queue::presence`); `None`: never for that.
    pub idle_stop: Option<Duration>,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum StopReason {
    #[default]
    Deadline,
    Idle,
    Shutdown,
    /// `WORKER_MAX_DRAINS` drains were alive: the invocation left at once.
    Covered,
}

/// When to stop claiming and when to give up on running handlers, from the invocation's
/// deadline (epoch ms): the margin before it, and `HARD_STOP_MARGIN` before it. A deadline that
/// is not a plausible epoch time (a local runtime) gets a fixed budget instead.
pub fn drain_for_deadline(deadline_epoch_ms: u64, margin: Duration) -> Drain {
    let now = Instant::now();
    let Some(remaining) = crate::invocation::time_left(deadline_epoch_ms) else {
        tracing::warn!(
            deadline_epoch_ms,
            "the invocation deadline is not an epoch time (local runtime?); using the fallback budget"
        );
        return Drain {
            stop_at: Some(now + FALLBACK_CLAIMING),
            finish_by: Some(now + FALLBACK_CLAIMING + FALLBACK_FINISHING),
            ..Drain::default()
        };
    };
    let hard_stop = remaining.saturating_sub(HARD_STOP_MARGIN);
    Drain {
        stop_at: Some(now + remaining.saturating_sub(margin).min(hard_stop)),
        finish_by: Some(now + hard_stop),
        ..Drain::default()
    }
}

pub(super) async fn sleep_until_opt(at: Option<Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

/// Completes on SIGINT (Ctrl-C) or SIGTERM (infra/run-local stopping).
pub(super) async fn shutdown_signal() {
    let interrupt = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut terminate) => {
                tokio::select! {
                    _ = interrupt => {}
                    _ = terminate.recv() => {}
                }
            }
            Err(_) => {
                let _ = interrupt.await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = interrupt.await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_real_deadline_keeps_its_margins() {
        let now_ms = crate::invocation::now_epoch_ms();
        let before = Instant::now();
        let drain = drain_for_deadline(now_ms + 300_000, Duration::from_secs(30));
        let stop = drain.stop_at.unwrap() - before;
        let finish = drain.finish_by.unwrap() - before;
        assert!(
            stop > Duration::from_secs(268) && stop <= Duration::from_millis(270_500),
            "{stop:?}"
        );
        assert!(
            finish > Duration::from_secs(297) && finish <= Duration::from_millis(299_500),
            "{finish:?}"
        );
    }

    #[test]
    fn a_deadline_inside_the_margin_claims_nothing() {
        let now_ms = crate::invocation::now_epoch_ms();
        let before = Instant::now();
        let drain = drain_for_deadline(now_ms + 10_000, Duration::from_secs(30));
        assert!(drain.stop_at.unwrap() - before < Duration::from_millis(100));
    }

    #[test]
    fn a_local_runtime_deadline_gets_the_fallback_budget() {
        let before = Instant::now();
        let drain = drain_for_deadline(600_000, Duration::from_secs(30));
        let stop = drain.stop_at.unwrap() - before;
        assert!(stop >= FALLBACK_CLAIMING && stop < FALLBACK_CLAIMING + Duration::from_secs(1));
    }
}
