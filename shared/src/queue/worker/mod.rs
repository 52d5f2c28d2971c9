//! The drain loop of the `worker` function (and of `worker --loop` locally).
//!
//! One feeder claims as many jobs as there are free handler slots (`WORKER_CONCURRENCY`, at
//! most `WORKER_BATCH` per round trip) and starts each in its own task; when no clinic has a
//! job ready it waits on a blocking `BLMOVE fresh fresh RIGHT RIGHT` (the tail rotated onto
//! itself: it returns as soon as a clinic has a job ready, takes nothing and reorders nothing)
//! on a connection of its own. A recorder collects finished outcomes and records whatever has
//! accumulated in one statement and one script. Beside them, a renewer extends the leases of
//! the jobs held every third of a lease, and housekeeping promotes due retries and reaps
//! expired leases (and sweeps once a minute).
//!
//! Because jobs are claimed only into free slots, every claimed job starts at once: when the
//! deadline comes near the feeder stops claiming and nothing is left claimed-but-not-started.
//! Running handlers get until the hard stop to finish; one still running then is abandoned and,
//! its lease expiring, runs again elsewhere (handlers are idempotent). A handler that panics is
//! a failed attempt (retried), never a crashed worker.

mod admission;
mod background;
mod counters;
mod feeder;
mod held;
mod idle;
mod run;
mod stop;

pub use stop::{Drain, StopReason, drain_for_deadline};

use super::handlers::Handlers;
use super::presence::{Leaving, Left, Presence};
use super::{Outcome, Queue};
use crate::db::Rotation;
use crate::redis::RedisConnector;
use crate::telemetry::ErrorChain;
use axum::extract::FromRef;
use background::Background;
use counters::Counters;
use feeder::Feeder;
use held::Held;
use serde::Serialize;
use std::future::Future;
use std::sync::Arc;
use tokio::sync::mpsc;
use tokio::time::Instant;

/// What one drain did: the worker invocation's answer, and its summary log line.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct DrainReport {
    pub stopped_by: StopReason,
    pub duration_ms: u64,
    /// Jobs started.
    pub claimed: u64,
    /// Claims that took jobs (`claimed / batches` is the mean batch).
    pub batches: u64,
    pub succeeded: u64,
    /// Failed attempts scheduled for a retry.
    pub retried: u64,
    pub dead: u64,
    /// Deliveries of jobs already finished (or unknown), settled without running.
    pub duplicates: u64,
    /// Outcomes ignored because the job had been delivered again after this worker's lease
    /// expired.
    pub stale: u64,
    /// Jobs still running, or finished but not recorded (PostgreSQL down), at the hard stop:
    /// they run again after their lease.
    pub abandoned: u64,
    pub promoted: u64,
    pub reaped: u64,
    pub swept: u64,
    /// Drains this one woke: another for its backlog, or the next at its deadline.
    pub woke: u64,
}

/// Drains the queue, running each job's handler with a clone of the worker's state `S` (in
/// Pulso, `AppState`: see `shared::worker`).
pub struct Worker<S> {
    state: S,
    queue: Queue,
    db: sqlx::PgPool,
    /// `db`'s secret, read again before an invocation if PostgreSQL refuses the credentials.
    rotation: Option<Rotation>,
    redis: Arc<RedisConnector>,
    handlers: Arc<Handlers<S>>,
}

impl<S: Clone> Clone for Worker<S> {
    fn clone(&self) -> Self {
        Self {
            state: self.state.clone(),
            queue: self.queue.clone(),
            db: self.db.clone(),
            rotation: self.rotation.clone(),
            redis: self.redis.clone(),
            handlers: self.handlers.clone(),
        }
    }
}

impl<S: Clone + Send + Sync + 'static> Worker<S> {
    /// A worker over `state`, whose pool must connect as pulso_system (tests build it so).
    pub fn new(state: S, handlers: Handlers<S>) -> Self
    where
        Queue: FromRef<S>,
        sqlx::PgPool: FromRef<S>,
        Option<Rotation>: FromRef<S>,
        Arc<RedisConnector>: FromRef<S>,
    {
        Self {
            queue: Queue::from_ref(&state),
            db: sqlx::PgPool::from_ref(&state),
            rotation: Option::<Rotation>::from_ref(&state),
            redis: Arc::<RedisConnector>::from_ref(&state),
            state,
            handlers: Arc::new(handlers),
        }
    }

    pub fn state(&self) -> &S {
        &self.state
    }

    /// One Lambda invocation (a wake, or any other event): joins the drains alive unless
    /// `WORKER_MAX_DRAINS` are, then drains until the deadline (epoch ms) minus the margin, or
    /// until idle for `WORKER_IDLE_STOP_SECONDS`, and leaves (see `shared::queue::presence`).
    pub async fn invocation(
        &self,
        deadline_epoch_ms: u64,
        event: &serde_json::Value,
    ) -> DrainReport {
        if let Some(rotation) = &self.rotation {
            rotation.before_run().await;
        }
        let config = self.queue.config();
        let wake = super::wake_token(event);
        let presence = match self
            .queue
            .join(wake, Some(config.worker_max_drains), true)
            .await
        {
            Ok(Some(presence)) => Some(presence),
            Ok(None) => {
                tracing::info!(
                    max_drains = config.worker_max_drains,
                    "enough drains are alive; this invocation leaves at once"
                );
                return DrainReport {
                    stopped_by: StopReason::Covered,
                    ..DrainReport::default()
                };
            }
            Err(error) => {
                // Without Redis the claims fail too; the drain retries them until its stop.
                tracing::warn!(error = %ErrorChain(&error), "could not join the drains alive");
                None
            }
        };
        let mut until = drain_for_deadline(deadline_epoch_ms, config.worker_deadline_margin);
        until.idle_stop = Some(config.worker_idle_stop);
        let report = self
            .drain_present(presence.as_ref(), until, std::future::pending())
            .await;
        tracing::info!(woken = wake.is_some(), report = ?report, "worker invocation finished");
        report
    }

    /// `worker --loop`: drains until SIGINT or SIGTERM, then lets running jobs finish (up to the
    /// deadline margin) and returns. It counts among the drains alive, so while it runs no
    /// enqueue wakes a Lambda worker.
    pub async fn run_forever(&self) -> DrainReport {
        tracing::info!(handlers = ?self.handlers, "worker draining until stopped");
        let presence = match self.queue.join(None, None, false).await {
            Ok(presence) => presence,
            Err(error) => {
                tracing::warn!(error = %ErrorChain(&error), "could not join the drains alive");
                None
            }
        };
        let report = self
            .drain_present(presence.as_ref(), Drain::default(), stop::shutdown_signal())
            .await;
        tracing::info!(report = ?report, "worker stopped");
        report
    }

    /// Drains the queue until `until` says stop or `shutdown` completes, outside the drains
    /// alive (tests, benchmarks).
    pub async fn drain(
        &self,
        until: Drain,
        shutdown: impl Future<Output = ()> + Send,
    ) -> DrainReport {
        self.drain_present(None, until, shutdown).await
    }

    /// Drains as `presence` (renewed while it runs; left at the end unless the feeder left
    /// idle already).
    async fn drain_present(
        &self,
        presence: Option<&Presence>,
        until: Drain,
        shutdown: impl Future<Output = ()> + Send,
    ) -> DrainReport {
        let started = Instant::now();
        let config = self.queue.config().clone();
        let held = Held::default();
        let counters = Arc::new(Counters::default());
        let (outcomes, finished) = mpsc::unbounded_channel::<Outcome>();
        let background = Background::spawn(
            &self.queue,
            &self.db,
            &config,
            finished,
            &held,
            &counters,
            presence,
        );

        tokio::pin!(shutdown);
        let feeder = Feeder::new(self, &config, &held, &counters, outcomes, until, presence);
        let stopped_by = feeder.run(shutdown).await;

        // It claims no more: it leaves now (the feeder left already when idle), so the next
        // drain, woken at a deadline, claims while this one finishes what it holds, and well
        // before the Lambda deadline could cut the wake short.
        if let Some(presence) = presence
            && stopped_by != StopReason::Idle
        {
            self.leave(presence, stopped_by, &counters).await;
        }
        // Every claimed job has started; wait for the running ones and their records.
        let finish_by = match stopped_by {
            StopReason::Shutdown => Some(Instant::now() + config.worker_deadline_margin),
            _ => until.finish_by,
        };
        background.finish(finish_by).await;
        let abandoned = held.len() as u64;
        if abandoned > 0 {
            tracing::warn!(
                abandoned,
                "jobs still running or unrecorded at the stop; they run again after their lease"
            );
        }
        counters.report(stopped_by, started.elapsed(), abandoned)
    }

    /// Leaves the drains alive after a stop: at the deadline it hands over to a new drain when
    /// work is left; stopped by a signal it just leaves.
    async fn leave(&self, presence: &Presence, stopped_by: StopReason, counters: &Counters) {
        let leaving = match stopped_by {
            StopReason::Deadline => Leaving::Deadline,
            _ => Leaving::Quit,
        };
        match self.queue.leave(presence, leaving).await {
            Ok(Left::HandedOver) => counters.add(&counters.woke, 1),
            Ok(_) => {}
            Err(error) => tracing::warn!(
                error = %ErrorChain(&error),
                "could not leave the drains alive; the presence lapses by itself"
            ),
        }
    }
}
