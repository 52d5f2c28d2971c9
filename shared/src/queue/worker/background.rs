//! The drain's tasks beside the feeder: the recorder, the lease renewer, housekeeping
//! (promotion, reaping, the sweep) and, for a drain among the drains alive, the renewal of its
//! presence.

use super::counters::Counters;
use super::held::Held;
use crate::config::QueueConfig;
use crate::queue::presence::{Presence, RENEW_EVERY};
use crate::queue::{Outcome, Queue, Recorded};
use crate::telemetry::ErrorChain;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio::time::Instant;

/// How often the outbox sweep runs inside a long drain.
const SWEEP_EVERY: Duration = Duration::from_secs(60);

pub(super) struct Background {
    recorder: JoinHandle<()>,
    renewer: JoinHandle<()>,
    housekeeping: JoinHandle<()>,
    presence: Option<JoinHandle<()>>,
}

impl Background {
    /// Starts the tasks; the recorder records what comes out of `finished`.
    pub(super) fn spawn(
        queue: &Queue,
        db: &sqlx::PgPool,
        config: &QueueConfig,
        finished: mpsc::UnboundedReceiver<Outcome>,
        held: &Held,
        counters: &Arc<Counters>,
        presence: Option<&Presence>,
    ) -> Self {
        Self {
            recorder: tokio::spawn(record_loop(
                queue.clone(),
                db.clone(),
                finished,
                held.clone(),
                counters.clone(),
                config.worker_batch,
            )),
            renewer: tokio::spawn(renew_loop(queue.clone(), held.clone(), config.lease / 3)),
            housekeeping: tokio::spawn(housekeeping_loop(
                queue.clone(),
                db.clone(),
                counters.clone(),
                (config.retry_base / 2).clamp(Duration::from_millis(50), Duration::from_secs(1)),
            )),
            presence: presence
                .cloned()
                .map(|presence| tokio::spawn(presence_loop(queue.clone(), presence))),
        }
    }

    /// Once every sender of outcomes is gone: waits for the recorder (until `finish_by`, if
    /// any), then stops the others.
    pub(super) async fn finish(self, finish_by: Option<Instant>) {
        let mut recorder = self.recorder;
        let finished_in_time = match finish_by {
            Some(at) => tokio::time::timeout_at(at, &mut recorder).await.is_ok(),
            None => (&mut recorder).await.is_ok(),
        };
        if !finished_in_time {
            recorder.abort();
        }
        self.renewer.abort();
        self.housekeeping.abort();
        if let Some(presence) = self.presence {
            presence.abort();
        }
    }
}

/// Records outcomes as they come, as many at once as have accumulated (up to a batch). A batch
/// PostgreSQL refuses is retried (its leases keep being renewed meanwhile) until the drain is
/// stopped; whatever is still unrecorded then runs again after its lease.
async fn record_loop(
    queue: Queue,
    db: sqlx::PgPool,
    mut finished: mpsc::UnboundedReceiver<Outcome>,
    held: Held,
    counters: Arc<Counters>,
    batch: usize,
) {
    let mut outcomes = Vec::with_capacity(batch);
    while let Some(first) = finished.recv().await {
        outcomes.push(first);
        while outcomes.len() < batch {
            match finished.try_recv() {
                Ok(outcome) => outcomes.push(outcome),
                Err(_) => break,
            }
        }
        let recorded = record_until_accepted(&queue, &db, &outcomes).await;
        counters.add(&counters.succeeded, recorded.succeeded);
        counters.add(&counters.retried, recorded.retried);
        counters.add(&counters.dead, recorded.dead);
        counters.add(&counters.stale, recorded.stale);
        held.remove(outcomes.iter().map(|outcome| outcome.lease.job.id));
        outcomes.clear();
    }
}

/// Records one batch, retrying with a growing pause while PostgreSQL refuses it.
async fn record_until_accepted(queue: &Queue, db: &sqlx::PgPool, outcomes: &[Outcome]) -> Recorded {
    let mut pause = Duration::from_millis(100);
    loop {
        match queue.record(db, outcomes).await {
            Ok(recorded) => return recorded,
            Err(error) => {
                tracing::warn!(
                    error = %ErrorChain(&error),
                    jobs = outcomes.len(),
                    retry_in_ms = pause.as_millis() as u64,
                    "recording job outcomes failed"
                );
                tokio::time::sleep(pause).await;
                pause = (pause * 2).min(Duration::from_secs(5));
            }
        }
    }
}

async fn renew_loop(queue: Queue, held: Held, every: Duration) {
    let mut ticks = tokio::time::interval(every.max(Duration::from_millis(100)));
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    ticks.tick().await;
    loop {
        ticks.tick().await;
        let ids = held.snapshot();
        if let Err(error) = queue.renew(&ids).await {
            tracing::warn!(error = %ErrorChain(&error), jobs = ids.len(), "lease renewal failed");
        }
    }
}

/// Renews the drain's presence every `RENEW_EVERY` (only while it is there: a renewal never
/// brings back a drain that left).
async fn presence_loop(queue: Queue, presence: Presence) {
    let mut ticks = tokio::time::interval(RENEW_EVERY);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    ticks.tick().await;
    loop {
        ticks.tick().await;
        if let Err(error) = queue.renew_presence(&presence).await {
            tracing::warn!(error = %ErrorChain(&error), "renewing the drain's presence failed");
        }
    }
}

async fn housekeeping_loop(
    queue: Queue,
    db: sqlx::PgPool,
    counters: Arc<Counters>,
    every: Duration,
) {
    let mut ticks = tokio::time::interval(every);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut last_sweep: Option<Instant> = None;
    loop {
        ticks.tick().await;
        match queue.promote_due().await {
            Ok(promoted) => counters.add(&counters.promoted, promoted),
            Err(error) => tracing::debug!(error = %ErrorChain(&error), "promotion failed"),
        }
        match queue.reap_expired().await {
            Ok(reaped) => counters.add(&counters.reaped, reaped),
            Err(error) => tracing::debug!(error = %ErrorChain(&error), "reaping failed"),
        }
        if last_sweep.is_none_or(|at| at.elapsed() >= SWEEP_EVERY) {
            last_sweep = Some(Instant::now());
            match queue.sweep(&db).await {
                Ok(sweep) => counters.add(&counters.swept, sweep.pushed),
                Err(error) => tracing::warn!(error = %ErrorChain(&error), "outbox sweep failed"),
            }
        }
    }
}
