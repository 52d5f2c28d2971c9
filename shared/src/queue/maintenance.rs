//! The queue's upkeep, run by the scheduler every minute and by the worker while it drains:
//! promotion of due retries, the reaper of expired leases, and the outbox sweep that pushes
//! again the jobs PostgreSQL has and Redis lost (or never got).

use super::enqueue::{Push, stored_peak};
use super::{Queue, QueueError, WakeReason, now_ms, repository};
use crate::queue::JobStatus;
use serde::Serialize;
use sqlx::PgPool;

/// Unfinished jobs read from PostgreSQL per round of the sweep (one `HMGET` each).
const SWEEP_PAGE: i64 = 1_000;

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct SweepReport {
    /// Unfinished jobs older than the grace period that were compared with Redis.
    pub examined: usize,
    /// Of those, the ones Redis did not know, pushed again.
    pub pushed: usize,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct MaintenanceReport {
    /// Retries whose time had come, moved to their clinics' ready lists.
    pub promoted: usize,
    /// Jobs whose worker's lease expired, requeued.
    pub reaped: usize,
    pub sweep: SweepReport,
}

impl Queue {
    /// Everything the scheduler runs on each tick, then the wake of a worker if jobs are ready
    /// and no drain is alive (this is the safety net for a lost wake). `system_db` connects as
    /// pulso_system (the sweep reads every clinic's unfinished jobs). Idempotent: several runs
    /// at once (the scheduler and a worker) only repeat each other's work.
    pub async fn maintain(&self, system_db: &PgPool) -> Result<MaintenanceReport, QueueError> {
        let promoted = self.promote_due().await?;
        let reaped = self.reap_expired().await?;
        let sweep = self.sweep(system_db).await?;
        self.wake(1, WakeReason::Maintenance).await;
        Ok(MaintenanceReport {
            promoted,
            reaped,
            sweep,
        })
    }

    /// The outbox sweep: every job PostgreSQL has unfinished, unchanged for the grace period
    /// (running ones: for the grace period plus a lease, since their worker may still hold
    /// them), and absent from `known` is pushed again — to its clinic's ready list, or to
    /// `delayed` when its retry is not due yet. `known` answers membership in O(1) per job, so
    /// a flushed or restarted Redis (an empty `known`) is detected without scanning any list.
    pub async fn sweep(&self, system_db: &PgPool) -> Result<SweepReport, QueueError> {
        let grace_ms = self.config.sweep_grace.as_millis() as i64;
        let running_grace_ms = grace_ms + self.config.lease.as_millis() as i64;
        let mut report = SweepReport::default();
        let mut after = None;
        loop {
            let rows =
                repository::pending(system_db, grace_ms, running_grace_ms, after, SWEEP_PAGE)
                    .await?;
            let Some(last) = rows.last() else {
                return Ok(report);
            };
            after = Some((last.updated_at, last.id));
            report.examined += rows.len();

            let mut connection = self.redis.connection().await?;
            let ids: Vec<String> = rows.iter().map(|row| row.id.to_string()).collect();
            let known: Vec<Option<String>> = ::redis::cmd("HMGET")
                .arg(&self.queue_keys.known)
                .arg(&ids)
                .query_async(&mut connection)
                .await?;
            let now = now_ms();
            let missing: Vec<Push> = rows
                .iter()
                .zip(known.iter().chain(std::iter::repeat(&None)))
                .filter(|(_, known)| known.is_none())
                .map(|(row, _)| {
                    let due = row.run_at.timestamp_millis().max(0) as u64;
                    let due = if row.status == JobStatus::Failed && due > now {
                        due
                    } else {
                        0
                    };
                    Push {
                        id: row.id,
                        clinic: row.clinic_id,
                        peak_memory_mib: stored_peak(row.peak_memory_mib),
                        due_ms: due,
                    }
                })
                .collect();
            if !missing.is_empty() {
                let pushed = self.push(&missing).await?;
                report.pushed += pushed;
                tracing::warn!(
                    pushed,
                    "sweep pushed jobs Redis did not know (a failed push after commit, or Redis lost them)"
                );
            }
            if (rows.len() as i64) < SWEEP_PAGE {
                return Ok(report);
            }
        }
    }
}
