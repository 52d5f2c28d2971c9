//! The drain loop of the `worker` function (and of `worker --loop` locally).
//!
//! One feeder claims as many jobs as there are free handler slots (`WORKER_CONCURRENCY`, at
//! most `WORKER_BATCH` per round trip) and starts each in its own task; when the ready list is
//! empty it waits on a blocking `BLMOVE ready ready RIGHT RIGHT` (the tail rotated onto itself:
//! it returns as soon as the list has an element, takes nothing and reorders nothing) on a
//! connection of its own. A recorder collects finished outcomes and records whatever has
//! accumulated in one statement and one script. Beside them, a renewer extends the leases of
//! the jobs held every third of a lease, and housekeeping promotes due retries and reaps
//! expired leases (and sweeps once a minute).
//!
//! Because jobs are claimed only into free slots, every claimed job starts at once: when the
//! deadline comes near the feeder stops claiming and nothing is left claimed-but-not-started.
//! Running handlers get until the hard stop to finish; one still running then is abandoned and,
//! its lease expiring, runs again elsewhere (handlers are idempotent). A handler that panics is
//! a failed attempt (retried), never a crashed worker.

use super::handlers::Handlers;
use super::{JobFailure, JobLease, Outcome, Queue, Recorded};
use crate::ids::JobId;
use crate::redis::RedisConnector;
use crate::telemetry::ErrorChain;
use axum::extract::FromRef;
use serde::Serialize;
use std::collections::HashSet;
use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use tokio::sync::{OwnedSemaphorePermit, Semaphore, mpsc};
use tokio::time::Instant;
use tracing::Instrument;

/// Under a backlog, how long a claim may wait for busy slots to free up so that it takes a
/// batch; idle, it never waits.
const BACKLOG_GATHER: Duration = Duration::from_millis(1);
/// Longest single blocking wait for work; the loop re-checks its deadline after each.
const BLOCK: Duration = Duration::from_secs(1);
/// The blocking connection's response timeout: longer than any block.
const BLOCK_RESPONSE_TIMEOUT: Duration = Duration::from_secs(3);
/// How often the outbox sweep runs inside a long drain.
const SWEEP_EVERY: Duration = Duration::from_secs(60);
/// Stop everything this long before the Lambda deadline, so the report gets out.
const HARD_STOP_MARGIN: Duration = Duration::from_secs(1);
/// The time an invocation gets when the runtime's deadline is not believable (`cargo lambda
/// watch`, which the local gateway can still be pointed at with `--invoke-url`, sends 600000,
/// not an epoch time): short enough for a 30 s invoke timeout, such as the one infra/run-local
/// gave watch when watch ran the functions.
const FALLBACK_CLAIMING: Duration = Duration::from_secs(20);
const FALLBACK_FINISHING: Duration = Duration::from_secs(5);
/// Lambda's longest timeout: a deadline further away than this is not an epoch time either.
const LONGEST_INVOCATION: Duration = Duration::from_secs(15 * 60);
/// 2017-07-14 in epoch milliseconds: anything earlier is not a deadline of this era.
const PLAUSIBLE_EPOCH_MS: u64 = 1_500_000_000_000;
/// A handler still running after this is cancelled (at its next await) and its attempt failed:
/// Lambda's own longest run, so only `worker --loop` can get there, and one stuck job does not
/// hold a slot (and renew its lease) forever.
const HANDLER_TIMEOUT: Duration = Duration::from_secs(15 * 60);
/// When a drain stops.
#[derive(Clone, Copy, Debug, Default)]
pub struct Drain {
    /// Stop claiming at this instant (`None`: never, as in `--loop`).
    pub stop_at: Option<Instant>,
    /// Give up on running handlers at this instant (`None`: wait for them).
    pub finish_by: Option<Instant>,
    /// Also stop once nothing is ready, held, or waiting for a retry (tests, one-off drains).
    pub stop_when_idle: bool,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum StopReason {
    #[default]
    Deadline,
    Idle,
    Shutdown,
}

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
}

/// Drains the queue, running each job's handler with a clone of the worker's state `S` (in
/// Pulso, `AppState`: see `shared::worker`).
pub struct Worker<S> {
    state: S,
    queue: Queue,
    db: sqlx::PgPool,
    redis: Arc<RedisConnector>,
    handlers: Arc<Handlers<S>>,
}

impl<S: Clone> Clone for Worker<S> {
    fn clone(&self) -> Self {
        Self {
            state: self.state.clone(),
            queue: self.queue.clone(),
            db: self.db.clone(),
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
        Arc<RedisConnector>: FromRef<S>,
    {
        Self {
            queue: Queue::from_ref(&state),
            db: sqlx::PgPool::from_ref(&state),
            redis: Arc::<RedisConnector>::from_ref(&state),
            state,
            handlers: Arc::new(handlers),
        }
    }

    pub fn state(&self) -> &S {
        &self.state
    }

    /// One scheduled Lambda invocation: drain until the deadline (epoch ms) minus the margin.
    pub async fn invocation(&self, deadline_epoch_ms: u64) -> DrainReport {
        let until = drain_for_deadline(
            deadline_epoch_ms,
            self.queue.config().worker_deadline_margin,
        );
        let report = self.drain(until, std::future::pending()).await;
        tracing::info!(report = ?report, "worker invocation finished");
        report
    }

    /// `worker --loop`: drains until SIGINT or SIGTERM, then lets running jobs finish (up to the
    /// deadline margin) and returns.
    pub async fn run_forever(&self) -> DrainReport {
        tracing::info!(handlers = ?self.handlers, "worker draining until stopped");
        let report = self.drain(Drain::default(), shutdown_signal()).await;
        tracing::info!(report = ?report, "worker stopped");
        report
    }

    /// Drains the queue until `until` says stop or `shutdown` completes.
    pub async fn drain(
        &self,
        until: Drain,
        shutdown: impl Future<Output = ()> + Send,
    ) -> DrainReport {
        let started = Instant::now();
        let queue = self.queue.clone();
        let config = queue.config().clone();
        let db = self.db.clone();
        let slots = Arc::new(Semaphore::new(config.worker_concurrency));
        let held = Held::default();
        let counters = Arc::new(Counters::default());
        let (outcomes, finished) = mpsc::unbounded_channel::<Outcome>();

        let recorder = tokio::spawn(record_loop(
            queue.clone(),
            db.clone(),
            finished,
            held.clone(),
            counters.clone(),
            config.worker_batch,
        ));
        let renewer = tokio::spawn(renew_loop(queue.clone(), held.clone(), config.lease / 3));
        let housekeeping = tokio::spawn(housekeeping_loop(
            queue.clone(),
            db.clone(),
            counters.clone(),
            (config.retry_base / 2).clamp(Duration::from_millis(50), Duration::from_secs(1)),
        ));

        let mut feeder = Feeder {
            worker: self,
            queue: &queue,
            db: &db,
            slots: &slots,
            held: &held,
            counters: &counters,
            outcomes: &outcomes,
            batch: config.worker_batch,
            concurrency: config.worker_concurrency,
            blocking: None,
        };
        tokio::pin!(shutdown);
        let stopped_by = feeder.run(until, &mut shutdown).await;
        drop(feeder);
        drop(outcomes);

        // Every claimed job has started; wait for the running ones and their records.
        let finish_by = match stopped_by {
            StopReason::Shutdown => Some(Instant::now() + config.worker_deadline_margin),
            _ => until.finish_by,
        };
        let mut recorder = recorder;
        let finished_in_time = match finish_by {
            Some(at) => tokio::time::timeout_at(at, &mut recorder).await.is_ok(),
            None => (&mut recorder).await.is_ok(),
        };
        if !finished_in_time {
            recorder.abort();
        }
        renewer.abort();
        housekeeping.abort();
        let abandoned = held.len() as u64;
        if abandoned > 0 {
            tracing::warn!(
                abandoned,
                "jobs still running or unrecorded at the stop; they run again after their lease"
            );
        }

        let load = |counter: &AtomicU64| counter.load(Ordering::Relaxed);
        DrainReport {
            stopped_by,
            duration_ms: started.elapsed().as_millis() as u64,
            claimed: load(&counters.claimed),
            batches: load(&counters.batches),
            succeeded: load(&counters.succeeded),
            retried: load(&counters.retried),
            dead: load(&counters.dead),
            duplicates: load(&counters.duplicates),
            stale: load(&counters.stale),
            abandoned,
            promoted: load(&counters.promoted),
            reaped: load(&counters.reaped),
            swept: load(&counters.swept),
        }
    }

    /// Starts one leased job in its own task; its outcome goes to the recorder.
    fn start(
        &self,
        lease: JobLease,
        slot: OwnedSemaphorePermit,
        outcomes: mpsc::UnboundedSender<Outcome>,
    ) {
        let job = &lease.job;
        let span = tracing::info_span!(
            "job",
            job_id = %job.id,
            clinic_id = %job.clinic,
            kind = %job.kind,
            attempt = job.attempt,
            max_attempts = job.max_attempts,
        );
        let handler = self.handlers.get(&job.kind);
        let state = self.state.clone();
        tokio::spawn(
            async move {
                let started = Instant::now();
                let result = match handler {
                    None => Err(JobFailure::Retry(format!(
                        "no handler for job kind {} in this worker",
                        lease.job.kind
                    ))),
                    // Its own task: a panic (even in the handler's synchronous part) ends that
                    // task, not this one, nor the worker.
                    Some(handler) => {
                        let job = lease.job.clone();
                        let run = tokio::spawn(
                            async move { handler(state, job).await }.in_current_span(),
                        );
                        let abort = run.abort_handle();
                        match tokio::time::timeout(HANDLER_TIMEOUT, run).await {
                            Ok(Ok(result)) => result,
                            Ok(Err(error)) if error.is_panic() => {
                                Err(JobFailure::Retry("the job's handler panicked".into()))
                            }
                            Ok(Err(_)) => {
                                Err(JobFailure::Retry("the job's handler was cancelled".into()))
                            }
                            Err(_) => {
                                abort.abort();
                                Err(JobFailure::Retry(format!(
                                    "the job's handler ran longer than {} minutes",
                                    HANDLER_TIMEOUT.as_secs() / 60
                                )))
                            }
                        }
                    }
                };
                let duration_ms = started.elapsed().as_secs_f64() * 1000.0;
                match &result {
                    Ok(_) => tracing::info!(duration_ms, "job succeeded"),
                    Err(failure) => {
                        tracing::warn!(duration_ms, error = %failure, "job attempt failed")
                    }
                }
                drop(slot);
                // The receiver lives until every sender is gone: this cannot fail while the
                // drain runs; after an abort nobody is listening anyway.
                let _ = outcomes.send(Outcome { lease, result });
            }
            .instrument(span),
        );
    }
}

/// The feeder's working set for one drain.
struct Feeder<'a, W> {
    worker: &'a Worker<W>,
    queue: &'a Queue,
    db: &'a sqlx::PgPool,
    slots: &'a Arc<Semaphore>,
    held: &'a Held,
    counters: &'a Counters,
    outcomes: &'a mpsc::UnboundedSender<Outcome>,
    batch: usize,
    concurrency: usize,
    /// The blocking connection, opened on first wait and reopened after a failure.
    blocking: Option<::redis::aio::MultiplexedConnection>,
}

impl<W: Clone + Send + Sync + 'static> Feeder<'_, W> {
    async fn run<S>(&mut self, until: Drain, shutdown: &mut std::pin::Pin<&mut S>) -> StopReason
    where
        S: Future<Output = ()> + Send,
    {
        let mut failures: u32 = 0;
        // Whether the last claim filled every slot it had: a backlog.
        let mut backlog = false;
        loop {
            if until.stop_at.is_some_and(|at| Instant::now() >= at) {
                return StopReason::Deadline;
            }
            let stop_sleep = sleep_until_opt(until.stop_at);
            // One free slot at least, then every other free one (up to a batch).
            let first = tokio::select! {
                permit = self.slots.clone().acquire_owned() => match permit {
                    Ok(permit) => permit,
                    Err(_) => return StopReason::Shutdown,
                },
                () = &mut *shutdown => return StopReason::Shutdown,
                () = stop_sleep => return StopReason::Deadline,
            };
            let mut slots = vec![first];
            let full = self.batch.min(self.concurrency);
            if backlog && full > 1 {
                // Under a backlog, give the handlers that are finishing a moment (at most
                // BACKLOG_GATHER) to hand their slots back, so one round trip claims a batch
                // instead of one job. Jobs are waiting anyway; an idle queue never waits here.
                let gather = tokio::time::timeout(
                    BACKLOG_GATHER,
                    self.slots
                        .clone()
                        .acquire_many_owned(u32::try_from(full - 1).unwrap_or(u32::MAX)),
                )
                .await;
                if let Ok(Ok(mut gathered)) = gather {
                    while gathered.num_permits() > 1 {
                        match gathered.split(1) {
                            Some(one) => slots.push(one),
                            None => break,
                        }
                    }
                    slots.push(gathered);
                }
            }
            while slots.len() < self.batch {
                match self.slots.clone().try_acquire_owned() {
                    Ok(permit) => slots.push(permit),
                    Err(_) => break,
                }
            }

            match self.queue.claim(self.db, slots.len()).await {
                Ok(claim) => {
                    failures = 0;
                    backlog =
                        claim.leases.len() + claim.duplicates + claim.exhausted >= slots.len();
                    self.counters
                        .add(&self.counters.duplicates, claim.duplicates);
                    self.counters.add(&self.counters.dead, claim.exhausted);
                    if claim.leases.is_empty() {
                        drop(slots);
                        if claim.duplicates + claim.exhausted > 0 {
                            continue;
                        }
                        if until.stop_when_idle && self.is_idle().await {
                            return StopReason::Idle;
                        }
                        let wait = match until.stop_at {
                            Some(at) => at.saturating_duration_since(Instant::now()).min(BLOCK),
                            None => BLOCK,
                        };
                        let wait = if until.stop_when_idle {
                            wait.min(Duration::from_millis(100))
                        } else {
                            wait
                        };
                        tokio::select! {
                            () = self.wait_for_work(wait) => {}
                            () = &mut *shutdown => return StopReason::Shutdown,
                        }
                        continue;
                    }
                    self.counters
                        .add(&self.counters.claimed, claim.leases.len());
                    self.counters.add(&self.counters.batches, 1);
                    self.held
                        .insert(claim.leases.iter().map(|lease| lease.job.id));
                    for lease in claim.leases {
                        let Some(slot) = slots.pop() else {
                            // Never: a claim takes at most one job per slot.
                            break;
                        };
                        self.worker.start(lease, slot, self.outcomes.clone());
                    }
                }
                Err(error) => {
                    drop(slots);
                    failures = failures.saturating_add(1);
                    let pause = Duration::from_millis(100 * 2_u64.pow(failures.min(5)));
                    tracing::warn!(
                        error = %ErrorChain(&error),
                        retry_in_ms = pause.as_millis() as u64,
                        "claiming jobs failed"
                    );
                    let pause_until = Instant::now() + pause;
                    let pause_until = until.stop_at.map_or(pause_until, |at| at.min(pause_until));
                    tokio::select! {
                        () = tokio::time::sleep_until(pause_until) => {}
                        () = &mut *shutdown => return StopReason::Shutdown,
                    }
                }
            }
        }
    }

    /// Nothing running here, and nothing ready, held or delayed in Redis.
    async fn is_idle(&self) -> bool {
        if self.slots.available_permits() < self.concurrency || self.held.len() > 0 {
            return false;
        }
        match self.queue.redis_sizes().await {
            Ok(sizes) => sizes.ready + sizes.processing + sizes.delayed == 0,
            Err(_) => false,
        }
    }

    /// Blocks until the ready list has an element or `wait` passes, without taking anything.
    async fn wait_for_work(&mut self, wait: Duration) {
        if wait < Duration::from_millis(10) {
            tokio::time::sleep(wait).await;
            return;
        }
        if self.blocking.is_none() {
            match self.queue_redis_dedicated().await {
                Ok(connection) => self.blocking = Some(connection),
                Err(error) => {
                    tracing::warn!(error = %ErrorChain(&error), "no blocking Redis connection");
                    tokio::time::sleep(wait).await;
                    return;
                }
            }
        }
        let Some(connection) = self.blocking.as_mut() else {
            return;
        };
        let ready = &self.queue.keys().ready;
        let waited: Result<Option<String>, _> = ::redis::cmd("BLMOVE")
            .arg(ready)
            .arg(ready)
            .arg("RIGHT")
            .arg("RIGHT")
            .arg(format!("{:.3}", wait.as_secs_f64()))
            .query_async(connection)
            .await;
        if let Err(error) = waited {
            tracing::warn!(error = %error, "blocking wait for jobs failed; reconnecting");
            self.blocking = None;
            tokio::time::sleep(wait.min(Duration::from_millis(200))).await;
        }
    }

    async fn queue_redis_dedicated(
        &self,
    ) -> Result<::redis::aio::MultiplexedConnection, crate::redis::RedisUnavailable> {
        self.worker.redis.dedicated(BLOCK_RESPONSE_TIMEOUT).await
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
        let mut pause = Duration::from_millis(100);
        loop {
            match queue.record(&db, &outcomes).await {
                Ok(Recorded {
                    succeeded,
                    retried,
                    dead,
                    stale,
                }) => {
                    counters.add(&counters.succeeded, succeeded);
                    counters.add(&counters.retried, retried);
                    counters.add(&counters.dead, dead);
                    counters.add(&counters.stale, stale);
                    break;
                }
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
        held.remove(outcomes.iter().map(|outcome| outcome.lease.job.id));
        outcomes.clear();
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

/// The ids of the jobs this worker holds (running, or finished and not yet recorded): what the
/// renewer extends.
#[derive(Clone, Default)]
struct Held(Arc<Mutex<HashSet<JobId>>>);

impl Held {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashSet<JobId>> {
        self.0
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn insert(&self, ids: impl Iterator<Item = JobId>) {
        self.lock().extend(ids);
    }

    fn remove(&self, ids: impl Iterator<Item = JobId>) {
        let mut held = self.lock();
        for id in ids {
            held.remove(&id);
        }
    }

    fn snapshot(&self) -> Vec<JobId> {
        self.lock().iter().copied().collect()
    }

    fn len(&self) -> usize {
        self.lock().len()
    }
}

#[derive(Default)]
struct Counters {
    claimed: AtomicU64,
    batches: AtomicU64,
    succeeded: AtomicU64,
    retried: AtomicU64,
    dead: AtomicU64,
    duplicates: AtomicU64,
    stale: AtomicU64,
    promoted: AtomicU64,
    reaped: AtomicU64,
    swept: AtomicU64,
}

impl Counters {
    fn add(&self, counter: &AtomicU64, count: usize) {
        counter.fetch_add(count as u64, Ordering::Relaxed);
    }
}

/// When to stop claiming and when to give up on running handlers, from the invocation's
/// deadline (epoch ms): the margin before it, and `HARD_STOP_MARGIN` before it. A deadline that
/// is not a plausible epoch time (a local runtime) gets a fixed budget instead.
pub fn drain_for_deadline(deadline_epoch_ms: u64, margin: Duration) -> Drain {
    let now = Instant::now();
    let now_ms = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |since| since.as_millis() as u64);
    let remaining = Duration::from_millis(deadline_epoch_ms.saturating_sub(now_ms));
    if deadline_epoch_ms < PLAUSIBLE_EPOCH_MS || remaining > LONGEST_INVOCATION {
        tracing::warn!(
            deadline_epoch_ms,
            "the invocation deadline is not an epoch time (local runtime?); using the fallback budget"
        );
        return Drain {
            stop_at: Some(now + FALLBACK_CLAIMING),
            finish_by: Some(now + FALLBACK_CLAIMING + FALLBACK_FINISHING),
            stop_when_idle: false,
        };
    }
    let hard_stop = remaining.saturating_sub(HARD_STOP_MARGIN);
    Drain {
        stop_at: Some(now + remaining.saturating_sub(margin).min(hard_stop)),
        finish_by: Some(now + hard_stop),
        stop_when_idle: false,
    }
}

async fn sleep_until_opt(at: Option<Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

/// Completes on SIGINT (Ctrl-C) or SIGTERM (infra/run-local stopping).
async fn shutdown_signal() {
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
        let now_ms = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_millis() as u64;
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
        let now_ms = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_millis() as u64;
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
