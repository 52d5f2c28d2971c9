//! Keeping dashboards fresh before anyone asks: the scheduler's dashboard task.
//!
//! The scheduler ticks every minute; refreshing every clinic on every tick would compute each
//! dashboard five times per freshness period. Instead each clinic falls in one of `cycle`
//! buckets (by its id) and is refreshed on the ticks of its bucket, so every dashboard is
//! recomputed once per cycle, a little before it would go stale, and the work is spread evenly
//! over the minutes. A tick that does not run (a deploy, an outage) only means users see the
//! stale-while-revalidate value, recomputed on their request.
//!
//! Refreshes run a few at a time (each holds a database connection for a few milliseconds);
//! none starts after the caller's deadline, and one clinic's failure never stops the others.

use super::service::DashboardService;
use crate::ids::ClinicId;
use crate::state::AppState;
use crate::telemetry::ErrorChain;
use chrono::{DateTime, Utc};
use serde::Serialize;
use std::time::Duration;
use tokio::task::JoinSet;
use tokio::time::Instant;

/// Dashboards computed at once: enough to finish hundreds of clinics in seconds, few enough to
/// leave the database and the pool room for everything else.
pub const CONCURRENCY: usize = 4;

/// How often (in scheduler ticks of one minute) each dashboard is recomputed: one minute less
/// than its freshness (the jitter takes at most a tenth off it), and at least every tick.
pub fn refresh_cycle(dashboard_ttl: Duration) -> u32 {
    let minutes = dashboard_ttl.as_secs() / 60;
    u32::try_from(minutes.saturating_sub(1))
        .unwrap_or(u32::MAX)
        .max(1)
}

/// Whether `clinic`'s dashboard is refreshed on the tick at `at`, in a cycle of `cycle` ticks.
pub fn is_due(clinic: ClinicId, at: DateTime<Utc>, cycle: u32) -> bool {
    let cycle = u128::from(cycle.max(1));
    let minute = u128::try_from(at.timestamp().div_euclid(60)).unwrap_or_default();
    clinic.as_uuid().as_u128() % cycle == minute % cycle
}

/// What one run of the task did, for the scheduler's summary.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct RefreshReport {
    /// Active clinics known to the scheduler.
    pub clinics: usize,
    /// Of those, the ones whose bucket is this tick.
    pub due: usize,
    pub refreshed: usize,
    /// Another caller was filling the same dashboard (or Redis was unavailable).
    pub skipped: usize,
    pub failed: usize,
    /// Due but not started (or cut off) because the deadline came first.
    pub out_of_time: usize,
}

/// Refreshes the dashboards of the `clinics` that are due at `at`, `CONCURRENCY` at a time.
/// No refresh starts after `stop_at`; those still running at `stop_at + grace` are abandoned
/// (the cache lease they hold expires on its own).
pub async fn refresh_due(
    state: &AppState,
    clinics: &[ClinicId],
    at: DateTime<Utc>,
    cycle: u32,
    stop_at: Instant,
    grace: Duration,
) -> RefreshReport {
    let due: Vec<ClinicId> = clinics
        .iter()
        .copied()
        .filter(|clinic| is_due(*clinic, at, cycle))
        .collect();
    let mut report = RefreshReport {
        clinics: clinics.len(),
        due: due.len(),
        ..RefreshReport::default()
    };

    let mut pending = due.into_iter();
    let mut running = JoinSet::new();
    loop {
        while running.len() < CONCURRENCY && Instant::now() < stop_at {
            let Some(clinic) = pending.next() else { break };
            let state = state.clone();
            running.spawn(async move {
                let started = Instant::now();
                let outcome = DashboardService::new(&state).refresh(clinic).await;
                (clinic, outcome, started.elapsed())
            });
        }
        if running.is_empty() {
            break;
        }
        let finished = match tokio::time::timeout_at(stop_at + grace, running.join_next()).await {
            Ok(Some(finished)) => finished,
            Ok(None) => break,
            Err(_) => {
                report.out_of_time += running.len();
                running.abort_all();
                break;
            }
        };
        match finished {
            Ok((clinic, Ok(true), took)) => {
                report.refreshed += 1;
                tracing::debug!(clinic_id = %clinic, duration_ms = took.as_millis() as u64, "dashboard refreshed");
            }
            Ok((clinic, Ok(false), _)) => {
                report.skipped += 1;
                tracing::debug!(clinic_id = %clinic, "dashboard refresh skipped: already being filled");
            }
            Ok((clinic, Err(error), _)) => {
                report.failed += 1;
                tracing::warn!(clinic_id = %clinic, error = %ErrorChain(&error), "dashboard refresh failed");
            }
            Err(error) => {
                // A panic inside one refresh: counted and logged, the others go on.
                report.failed += 1;
                tracing::error!(%error, "dashboard refresh task failed");
            }
        }
    }
    report.out_of_time += pending.len();
    report
}

#[cfg(test)]
mod tests {
    use super::*;
    use uuid::Uuid;

    #[test]
    fn the_cycle_is_a_minute_shorter_than_the_freshness() {
        assert_eq!(refresh_cycle(Duration::from_secs(5 * 60)), 4);
        assert_eq!(refresh_cycle(Duration::from_secs(90)), 1);
        assert_eq!(refresh_cycle(Duration::from_secs(10)), 1);
    }

    #[test]
    fn each_clinic_is_due_exactly_once_per_cycle() {
        let start = DateTime::parse_from_rfc3339("2026-11-23T10:00:00Z")
            .unwrap()
            .with_timezone(&Utc);
        for n in 0..50u128 {
            let clinic = ClinicId(Uuid::from_u128(n * 7919 + 13));
            let due: Vec<i64> = (0..8)
                .filter(|minute| is_due(clinic, start + chrono::TimeDelta::minutes(*minute), 4))
                .collect();
            assert_eq!(due.len(), 2, "{clinic}: {due:?}");
            assert_eq!(due[1] - due[0], 4);
            assert!(is_due(clinic, start, 1));
        }
    }
}
