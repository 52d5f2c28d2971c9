//! The feeder: each round admits jobs into free slots, claims as many ready jobs as it was
//! admitted, and starts each in its own task; with nothing to claim it waits for work.

use super::Worker;
use super::admission::{Slot, Slots};
use super::counters::Counters;
use super::held::Held;
use super::idle::WorkSignal;
use super::stop::{Drain, StopReason, sleep_until_opt};
use crate::config::QueueConfig;
use crate::queue::presence::{Leaving, Left, Presence};
use crate::queue::{Claim, JobLease, Outcome, QueueError, WakeReason};
use crate::telemetry::ErrorChain;
use std::future::Future;
use std::pin::Pin;
use std::time::Duration;
use tokio::sync::mpsc;
use tokio::time::Instant;

/// Longest single blocking wait for work; the loop re-checks its deadline after each.
const BLOCK: Duration = Duration::from_secs(1);
/// Under a backlog, how often a drain asks for another (one Redis call each).
const SCALE_OUT_EVERY: Duration = Duration::from_secs(1);

/// What stops a drain from outside: SIGINT/SIGTERM in `--loop`, never in an invocation.
pub(super) type Shutdown<'a> = Pin<&'a mut (dyn Future<Output = ()> + Send + 'a)>;

/// The feeder's working set for one drain.
pub(super) struct Feeder<'a, S> {
    worker: &'a Worker<S>,
    slots: Slots,
    held: &'a Held,
    counters: &'a Counters,
    /// Where started jobs send their outcomes; the recorder ends once this and every job's
    /// copy are gone.
    outcomes: mpsc::UnboundedSender<Outcome>,
    until: Drain,
    /// Whether the last claim filled every slot it had: a backlog.
    backlog: bool,
    /// Claims failed in a row.
    failures: u32,
    signal: WorkSignal,
    /// The drain's place among the drains alive (`shared::queue::presence`), if it has one.
    presence: Option<&'a Presence>,
    /// Since when nothing has run here: the idle stop counts from it.
    idle_since: Instant,
    /// When this drain last asked for another under a backlog.
    last_scale_out: Option<Instant>,
}

impl<'a, S: Clone + Send + Sync + 'static> Feeder<'a, S> {
    pub(super) fn new(
        worker: &'a Worker<S>,
        config: &QueueConfig,
        held: &'a Held,
        counters: &'a Counters,
        outcomes: mpsc::UnboundedSender<Outcome>,
        until: Drain,
        presence: Option<&'a Presence>,
    ) -> Self {
        Self {
            worker,
            slots: Slots::new(
                config.worker_concurrency,
                config.worker_batch,
                config.worker_memory_budget_mib,
            ),
            held,
            counters,
            outcomes,
            until,
            backlog: false,
            failures: 0,
            signal: WorkSignal::default(),
            presence,
            idle_since: Instant::now(),
            last_scale_out: None,
        }
    }

    /// Feeds until the drain's stop, or `shutdown`. Every job it claimed has started when it
    /// returns.
    pub(super) async fn run(mut self, mut shutdown: Shutdown<'_>) -> StopReason {
        loop {
            if let Err(stop) = self.round(&mut shutdown).await {
                return stop;
            }
        }
    }

    /// One round: admission, then the claim, then starting what it took (or waiting).
    async fn round(&mut self, shutdown: &mut Shutdown<'_>) -> Result<(), StopReason> {
        if self.until.stop_at.is_some_and(|at| Instant::now() >= at) {
            return Err(StopReason::Deadline);
        }
        let slots = self.admit(shutdown).await?;
        match self.claim(slots.len()).await {
            Ok(claim) => {
                self.failures = 0;
                self.take(claim, slots, shutdown).await
            }
            Err(error) => {
                drop(slots);
                self.pause_after_failure(&error, shutdown).await
            }
        }
    }

    /// Admission: waits for one free slot at least, then takes every other free one (up to a
    /// batch).
    async fn admit(&mut self, shutdown: &mut Shutdown<'_>) -> Result<Vec<Slot>, StopReason> {
        let stop_sleep = sleep_until_opt(self.until.stop_at);
        let first = tokio::select! {
            slot = self.slots.first() => match slot {
                Some(slot) => slot,
                None => return Err(StopReason::Shutdown),
            },
            () = shutdown.as_mut() => return Err(StopReason::Shutdown),
            () = stop_sleep => return Err(StopReason::Deadline),
        };
        Ok(self.slots.fill(first, self.backlog).await)
    }

    /// Claiming: at most `slots` ready jobs, one per admitted slot, that fit in the room.
    async fn claim(&self, slots: usize) -> Result<Claim, QueueError> {
        let room = self.slots.room();
        self.worker.queue.claim(&self.worker.db, slots, &room).await
    }

    /// Starts every job `claim` took, one per slot, or, when it took none, waits for room (jobs
    /// were passed over for lack of it) or for work.
    async fn take(
        &mut self,
        claim: Claim,
        slots: Vec<Slot>,
        shutdown: &mut Shutdown<'_>,
    ) -> Result<(), StopReason> {
        // A backlog: the claim filled its slots, or stopped for lack of room with jobs still
        // ready (the next round then gathers the slots and room that running jobs give back).
        self.backlog = claim.leases.len() + claim.duplicates + claim.exhausted >= slots.len()
            || claim.left_for_room;
        self.counters
            .add(&self.counters.duplicates, claim.duplicates);
        self.counters.add(&self.counters.dead, claim.exhausted);
        if self.backlog {
            self.scale_out().await;
        }
        if !claim.leases.is_empty() {
            self.start(claim.leases, slots).await;
            return Ok(());
        }
        drop(slots);
        if claim.duplicates + claim.exhausted > 0 {
            return Ok(());
        }
        if claim.left_for_room {
            return self.wait_for_room(claim.fresh_left, shutdown).await;
        }
        self.wait_for_work(shutdown).await
    }

    async fn start(&mut self, leases: Vec<JobLease>, mut slots: Vec<Slot>) {
        self.idle_since = Instant::now();
        self.counters.add(&self.counters.claimed, leases.len());
        self.counters.add(&self.counters.batches, 1);
        self.held.insert(leases.iter().map(|lease| lease.job.id));
        for lease in leases {
            let Some(slot) = slots.pop() else {
                // Never: a claim takes at most one job per slot.
                break;
            };
            let place = self
                .slots
                .place(slot, lease.job.clinic, lease.memory_mib)
                .await;
            self.worker.start(lease, place, self.outcomes.clone());
        }
    }

    /// Jobs are ready but none had room (memory, or its clinic's share): waits until a running
    /// job ends, or another clinic gets work (unless clinics that just got work are waiting
    /// already: then only an end can help), never past the stop. After an end the next claim
    /// gathers a batch, as under a backlog; new work is claimed at once.
    async fn wait_for_room(
        &mut self,
        fresh_left: bool,
        shutdown: &mut Shutdown<'_>,
    ) -> Result<(), StopReason> {
        let memory = self.slots.memory();
        let fresh = &self.worker.queue.keys().fresh;
        let new_work = async {
            if fresh_left {
                std::future::pending::<()>().await;
            }
            self.signal.wait(&self.worker.redis, fresh, BLOCK).await;
        };
        self.backlog = tokio::select! {
            () = memory.released() => true,
            () = new_work => false,
            () = shutdown.as_mut() => return Err(StopReason::Shutdown),
            () = sleep_until_opt(self.until.stop_at) => return Err(StopReason::Deadline),
        };
        Ok(())
    }

    /// Nothing was ready: stops if the drain stops when idle and it is, else waits until a job
    /// is pushed (at most `BLOCK`, and never past the stop).
    async fn wait_for_work(&mut self, shutdown: &mut Shutdown<'_>) -> Result<(), StopReason> {
        if self.until.stop_when_idle && self.is_idle().await {
            return Err(StopReason::Idle);
        }
        if !self.slots.all_free() || self.held.len() > 0 {
            self.idle_since = Instant::now();
        } else if let Some(idle_stop) = self.until.idle_stop
            && self.idle_since.elapsed() >= idle_stop
        {
            self.leave_idle().await?;
        }
        let wait = match self.until.stop_at {
            Some(at) => at.saturating_duration_since(Instant::now()).min(BLOCK),
            None => BLOCK,
        };
        let wait = if self.until.stop_when_idle {
            wait.min(Duration::from_millis(100))
        } else {
            wait
        };
        let fresh = &self.worker.queue.keys().fresh;
        tokio::select! {
            () = self.signal.wait(&self.worker.redis, fresh, wait) => Ok(()),
            () = shutdown.as_mut() => Err(StopReason::Shutdown),
        }
    }

    /// Idle for the idle stop: leaves the drains alive, unless work came as it left (then it
    /// drains on, idle from now). A drain outside them (or whose Redis fails) just stops.
    async fn leave_idle(&mut self) -> Result<(), StopReason> {
        let Some(presence) = self.presence else {
            return Err(StopReason::Idle);
        };
        match self.worker.queue.leave(presence, Leaving::Idle).await {
            Ok(Left::Stayed) => {
                self.idle_since = Instant::now();
                Ok(())
            }
            Ok(_) => Err(StopReason::Idle),
            Err(error) => {
                tracing::warn!(error = %ErrorChain(&error), "leaving the drains alive failed");
                Err(StopReason::Idle)
            }
        }
    }

    /// More jobs ready than room: wakes another drain (up to `WORKER_MAX_DRAINS`), at most once
    /// every `SCALE_OUT_EVERY`.
    async fn scale_out(&mut self) {
        if !self.presence.is_some_and(|presence| presence.scales_out)
            || self
                .last_scale_out
                .is_some_and(|at| at.elapsed() < SCALE_OUT_EVERY)
        {
            return;
        }
        self.last_scale_out = Some(Instant::now());
        let max_drains = self.worker.queue.config().worker_max_drains;
        if self
            .worker
            .queue
            .wake(max_drains, WakeReason::Backlog)
            .await
        {
            self.counters.add(&self.counters.woke, 1);
        }
    }

    /// Nothing running here, and nothing ready, held or delayed in Redis.
    async fn is_idle(&self) -> bool {
        if !self.slots.all_free() || self.held.len() > 0 {
            return false;
        }
        match self.worker.queue.redis_sizes().await {
            Ok(sizes) => sizes.ready + sizes.processing + sizes.delayed == 0,
            Err(_) => false,
        }
    }

    /// A claim failed (Redis or PostgreSQL): waits a little longer after each failure in a row.
    async fn pause_after_failure(
        &mut self,
        error: &QueueError,
        shutdown: &mut Shutdown<'_>,
    ) -> Result<(), StopReason> {
        self.failures = self.failures.saturating_add(1);
        let pause = Duration::from_millis(100 * 2_u64.pow(self.failures.min(5)));
        tracing::warn!(
            error = %ErrorChain(error),
            retry_in_ms = pause.as_millis() as u64,
            "claiming jobs failed"
        );
        let pause_until = Instant::now() + pause;
        let pause_until = self
            .until
            .stop_at
            .map_or(pause_until, |at| at.min(pause_until));
        tokio::select! {
            () = tokio::time::sleep_until(pause_until) => Ok(()),
            () = shutdown.as_mut() => Err(StopReason::Shutdown),
        }
    }
}
