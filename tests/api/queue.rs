//! `shared::queue` against the real PostgreSQL and Redis: a job runs end to end; a worker that
//! dies mid-job loses nothing; a late outcome of an expired lease is ignored; Redis losing its
//! data loses no job; retries back off, end dead, and a replay runs the job again; a panic is
//! a failed attempt; long jobs keep their lease; the deadline is honoured.

use pulso_tests::{TestApp, TestOptions, any_room, drain_worker};
use redis::AsyncCommands;
use serde_json::{Value, json};
use shared::ids::{ClinicId, JobId};
use shared::queue::{
    Drain, Job, JobFailure, JobKind, JobStatus, NewJob, Outcome, Replay, StopReason,
};
use shared::worker::{Handlers, Worker};
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::time::Instant;

const ECHO: JobKind = JobKind::new("test.echo");
const COUNTED: JobKind = JobKind::new("test.counted");
const FLAKY: JobKind = JobKind::new("test.flaky");
const BROKEN: JobKind = JobKind::new("test.broken");
const PANICKY: JobKind = JobKind::new("test.panicky").with_max_attempts(2);
/// Panics before it even returns its future.
const PANICS_AT_ONCE: JobKind = JobKind::new("test.panics_at_once").with_max_attempts(1);
const SLOW: JobKind = JobKind::new("test.slow");

/// Each run of a job: its attempt number and when it started.
type Runs = HashMap<JobId, Vec<(u32, Instant)>>;

/// What the test handlers saw: runs per job, and when each attempt of a job started.
#[derive(Clone, Default)]
struct Seen {
    runs: Arc<Mutex<Runs>>,
    /// The flaky kind succeeds once this is set.
    heal: Arc<AtomicBool>,
    effects: Arc<AtomicUsize>,
}

impl Seen {
    fn note(&self, job: &Job) {
        self.runs
            .lock()
            .unwrap()
            .entry(job.id)
            .or_default()
            .push((job.attempt, Instant::now()));
    }

    fn runs(&self, id: JobId) -> Vec<(u32, Instant)> {
        self.runs
            .lock()
            .unwrap()
            .get(&id)
            .cloned()
            .unwrap_or_default()
    }
}

fn handlers(seen: &Seen) -> Handlers {
    let echo = seen.clone();
    let counted = seen.clone();
    let flaky = seen.clone();
    let broken = seen.clone();
    let panicky = seen.clone();
    let slow = seen.clone();
    Handlers::new()
        .on(ECHO, move |_, job| {
            echo.note(&job);
            async move { Ok(json!({"echo": job.payload, "location": "/things/1"})) }
        })
        .on(COUNTED, move |_, job| {
            counted.note(&job);
            // An idempotent effect: the job's id is its key, so a second run changes nothing.
            let first = counted.runs(job.id).len() == 1;
            if first {
                counted.effects.fetch_add(1, Ordering::SeqCst);
            }
            async move { Ok(json!({"done": true})) }
        })
        .on(FLAKY, move |_, job| {
            flaky.note(&job);
            let healed = flaky.heal.load(Ordering::SeqCst);
            async move {
                if healed {
                    Ok(json!({"attempt": job.attempt}))
                } else {
                    Err(JobFailure::retry(format!(
                        "upstream unavailable (attempt {})",
                        job.attempt
                    )))
                }
            }
        })
        .on(BROKEN, move |_, job| {
            broken.note(&job);
            async move { Err(JobFailure::permanent("the image does not decode")) }
        })
        .on(PANICKY, move |_, job| {
            panicky.note(&job);
            async move {
                if job.attempt > 0 {
                    panic!("handler bug");
                }
                Ok(Value::Null)
            }
        })
        .on(PANICS_AT_ONCE, |_, job| {
            if job.attempt > 0 {
                panic!("handler bug before any await");
            }
            async { Ok(Value::Null) }
        })
        .on(SLOW, move |_, job| {
            slow.note(&job);
            async move {
                let ms = job.payload["ms"].as_u64().unwrap_or(0);
                tokio::time::sleep(Duration::from_millis(ms)).await;
                Ok(json!({"slept_ms": ms}))
            }
        })
}

/// Test settings: a 1 s lease, 20 ms retry base, no sweep grace.
async fn spawn() -> TestApp {
    TestApp::spawn_with(TestOptions {
        env: vec![
            ("JOB_LEASE_SECONDS", "1".into()),
            ("JOB_RETRY_BASE_MS", "20".into()),
            ("JOB_SWEEP_GRACE_SECONDS", "0".into()),
        ],
        ..TestOptions::default()
    })
    .await
}

fn worker(app: &TestApp, seen: &Seen) -> Worker {
    Worker::new(app.system_state(), handlers(seen))
}

async fn enqueue(app: &TestApp, clinic: ClinicId, kind: JobKind, payload: Value) -> JobId {
    let staged = app
        .state
        .queue
        .enqueue(
            &app.state.db,
            clinic,
            NewJob {
                kind,
                payload,
                idempotency_key: None,
                created_by: None,
                max_attempts: None,
            },
        )
        .await
        .expect("enqueue");
    assert!(staged.created);
    staged.id
}

#[derive(Debug, sqlx::FromRow)]
struct Row {
    status: JobStatus,
    attempts: i32,
    deliveries: i32,
    replays: i32,
    last_error: Option<String>,
    result: Option<Value>,
    finished_at: Option<chrono::DateTime<chrono::Utc>>,
}

async fn row(app: &TestApp, clinic: ClinicId, id: JobId) -> Row {
    let mut tx = app.owner_tx(clinic).await;
    let row = sqlx::query_as(
        "SELECT status, attempts, deliveries, replays, last_error, result, finished_at
         FROM jobs WHERE clinic_id = $1 AND id = $2",
    )
    .bind(clinic)
    .bind(id)
    .fetch_one(&mut *tx)
    .await
    .expect("job row");
    tx.rollback().await.ok();
    row
}

/// (ready, processing, delayed, known) sizes.
async fn sizes(app: &TestApp) -> (u64, u64, u64, u64) {
    let sizes = app.state.queue.redis_sizes().await.expect("redis sizes");
    (sizes.ready, sizes.processing, sizes.delayed, sizes.known)
}

/// Deletes every queue key of the test (both clinics' ready lists among them), as a Redis that
/// restarted empty or never got the pushes would have it.
async fn redis_loses_the_queue(app: &TestApp) {
    let mut redis = app.redis().await;
    let _: () = redis.del(app.queue_keys()).await.unwrap();
}

#[tokio::test]
async fn an_enqueued_job_runs_once_and_succeeds() {
    let app = spawn().await;
    let seen = Seen::default();
    let id = enqueue(&app, app.clinic_a.id, ECHO, json!({"n": 1})).await;

    let queued = row(&app, app.clinic_a.id, id).await;
    assert_eq!(queued.status, JobStatus::Queued);
    assert_eq!(sizes(&app).await, (1, 0, 0, 1), "pushed to ready and known");

    let report = drain_worker(&worker(&app, &seen)).await;
    assert_eq!((report.claimed, report.succeeded), (1, 1), "{report:?}");

    let done = row(&app, app.clinic_a.id, id).await;
    assert_eq!(done.status, JobStatus::Succeeded);
    assert_eq!((done.attempts, done.deliveries), (1, 1));
    assert_eq!(
        done.result,
        Some(json!({"echo": {"n": 1}, "location": "/things/1"}))
    );
    assert!(done.finished_at.is_some());
    assert_eq!(seen.runs(id).len(), 1);
    assert_eq!(sizes(&app).await, (0, 0, 0, 0), "nothing left in Redis");

    let counters = app
        .state
        .queue
        .counters(Some(app.clinic_a.id))
        .await
        .unwrap();
    assert_eq!((counters.processed, counters.failed), (1, 0));
    assert!(counters.counting_since.is_some());
    let everyone = app.state.queue.counters(None).await.unwrap();
    assert_eq!(everyone.processed, 1);
    let other = app
        .state
        .queue
        .counters(Some(app.clinic_b.id))
        .await
        .unwrap();
    assert_eq!(other.processed, 0, "counted for its own clinic only");
}

#[tokio::test]
async fn a_worker_killed_mid_job_loses_nothing_and_the_job_is_done_once() {
    let app = spawn().await;
    let seen = Seen::default();
    let id = enqueue(&app, app.clinic_a.id, COUNTED, json!({})).await;

    // A worker claims the job and dies before running or settling it.
    let system = app.system_state();
    let claim = app
        .state
        .queue
        .claim(&system.db, 10, &any_room())
        .await
        .expect("claim");
    assert_eq!(claim.leases.len(), 1);
    drop(claim);
    let running = row(&app, app.clinic_a.id, id).await;
    assert_eq!((running.status, running.attempts), (JobStatus::Running, 1));
    assert_eq!(sizes(&app).await, (0, 1, 0, 1), "held under a lease");

    // Another worker: the reaper requeues the job once its lease expires, and it runs.
    let started = Instant::now();
    let report = drain_worker(&worker(&app, &seen)).await;
    assert!(report.reaped >= 1, "{report:?}");
    assert!(
        started.elapsed() >= Duration::from_millis(900),
        "not before the lease expired"
    );
    let done = row(&app, app.clinic_a.id, id).await;
    assert_eq!(done.status, JobStatus::Succeeded);
    // The delivery lost with its worker was handed back: the job ran as attempt 1 again (it may
    // only have been beside the job that brought the worker down).
    assert_eq!((done.attempts, done.deliveries), (1, 2));
    assert_eq!(
        seen.runs(id)
            .iter()
            .map(|(attempt, _)| *attempt)
            .collect::<Vec<_>>(),
        [1]
    );
    assert_eq!(lost_deliveries(&app, app.clinic_a.id, id).await, 1);
    assert_eq!(
        seen.effects.load(Ordering::SeqCst),
        1,
        "done once in effect"
    );
    assert_eq!(sizes(&app).await, (0, 0, 0, 0));
}

#[tokio::test]
async fn a_late_outcome_from_an_expired_lease_never_overwrites_the_newer_one() {
    let app = spawn().await;
    let seen = Seen::default();
    let id = enqueue(&app, app.clinic_a.id, ECHO, json!({"n": 2})).await;
    let system = app.system_state();

    // A slow (or frozen) worker holds the job past its lease...
    let mut stale = app
        .state
        .queue
        .claim(&system.db, 1, &any_room())
        .await
        .expect("claim");
    let stale_lease = stale.leases.pop().expect("one job");
    // ...meanwhile the job is reaped, delivered again and finished by another worker.
    drain_worker(&worker(&app, &seen)).await;
    assert_eq!(
        row(&app, app.clinic_a.id, id).await.status,
        JobStatus::Succeeded
    );

    // The slow worker comes back with an outcome: it is ignored.
    let recorded = app
        .state
        .queue
        .record(
            &system.db,
            &[Outcome {
                lease: stale_lease,
                result: Err(JobFailure::permanent("late and wrong")),
            }],
        )
        .await
        .expect("record");
    assert_eq!((recorded.stale, recorded.dead), (1, 0));
    let done = row(&app, app.clinic_a.id, id).await;
    assert_eq!(done.status, JobStatus::Succeeded);
    assert_eq!(done.last_error, None);
    assert_eq!(sizes(&app).await, (0, 0, 0, 0));
}

#[tokio::test]
async fn jobs_queued_when_redis_lost_everything_still_run_after_the_sweep() {
    let app = spawn().await;
    let seen = Seen::default();
    let mut ids = Vec::new();
    for n in 0..5 {
        let clinic = if n % 2 == 0 {
            app.clinic_a.id
        } else {
            app.clinic_b.id
        };
        ids.push((clinic, enqueue(&app, clinic, ECHO, json!({"n": n})).await));
    }
    assert_eq!(sizes(&app).await, (5, 0, 0, 5));

    // Redis restarts empty (this Redis keeps nothing on disk).
    redis_loses_the_queue(&app).await;
    assert_eq!(sizes(&app).await, (0, 0, 0, 0));

    let system = app.system_state();
    let report = app
        .state
        .queue
        .maintain(&system.db)
        .await
        .expect("maintain");
    assert_eq!(report.sweep.pushed, 5, "{report:?}");
    // A second sweep finds them known: nothing is queued twice.
    let again = app
        .state
        .queue
        .maintain(&system.db)
        .await
        .expect("maintain");
    assert_eq!(again.sweep.pushed, 0);
    assert_eq!(sizes(&app).await, (5, 0, 0, 5));

    let drained = drain_worker(&worker(&app, &seen)).await;
    assert_eq!(drained.succeeded, 5, "{drained:?}");
    for (clinic, id) in ids {
        assert_eq!(row(&app, clinic, id).await.status, JobStatus::Succeeded);
        assert_eq!(seen.runs(id).len(), 1);
    }
}

#[tokio::test]
async fn a_sweep_leaves_jobs_redis_knows_and_jobs_within_the_grace_alone() {
    let app = TestApp::spawn_with(TestOptions {
        env: vec![("JOB_SWEEP_GRACE_SECONDS", "30".into())],
        ..TestOptions::default()
    })
    .await;
    enqueue(&app, app.clinic_a.id, ECHO, json!({})).await;
    redis_loses_the_queue(&app).await;
    // Just enqueued: its push may still be on its way, so the sweep waits for the grace.
    let report = app
        .state
        .queue
        .maintain(&app.system_state().db)
        .await
        .expect("maintain");
    assert_eq!((report.sweep.examined, report.sweep.pushed), (0, 0));
}

#[tokio::test]
async fn retries_back_off_then_the_job_is_dead_and_a_replay_runs_it_again() {
    let app = spawn().await;
    let seen = Seen::default();
    let id = enqueue(&app, app.clinic_a.id, FLAKY, json!({})).await;
    let worker = worker(&app, &seen);

    let report = drain_worker(&worker).await;
    assert_eq!((report.retried, report.dead), (2, 1), "{report:?}");
    let dead = row(&app, app.clinic_a.id, id).await;
    assert_eq!((dead.status, dead.attempts), (JobStatus::Dead, 3));
    assert_eq!(
        dead.last_error.as_deref(),
        Some("upstream unavailable (attempt 3)"),
        "the last error is kept"
    );
    let runs = seen.runs(id);
    assert_eq!(
        runs.iter().map(|(a, _)| *a).collect::<Vec<_>>(),
        vec![1, 2, 3]
    );
    // Equal jitter: at least half the doubled delay (20 ms, then 40 ms) between attempts.
    assert!(
        runs[1].1 - runs[0].1 >= Duration::from_millis(10),
        "{runs:?}"
    );
    assert!(
        runs[2].1 - runs[1].1 >= Duration::from_millis(20),
        "{runs:?}"
    );
    assert_eq!(sizes(&app).await, (0, 0, 0, 0), "dead jobs leave Redis");
    let counters = app
        .state
        .queue
        .counters(Some(app.clinic_a.id))
        .await
        .unwrap();
    assert_eq!(
        (
            counters.failed,
            counters.retried,
            counters.dead,
            counters.processed
        ),
        (3, 2, 1, 0)
    );

    // Another clinic cannot replay it.
    let other = app
        .state
        .queue
        .replay(&app.state.db, app.clinic_b.id, id)
        .await
        .unwrap();
    assert!(matches!(other, Replay::NotFound), "{other:?}");

    // The upstream is back; an admin replays the job.
    seen.heal.store(true, Ordering::SeqCst);
    let replay = app
        .state
        .queue
        .replay(&app.state.db, app.clinic_a.id, id)
        .await
        .unwrap();
    let Replay::Replayed(record) = replay else {
        panic!("not replayed: {replay:?}");
    };
    assert_eq!((record.status, record.attempts), (JobStatus::Queued, 0));
    assert_eq!(sizes(&app).await, (1, 0, 0, 1));
    drain_worker(&worker).await;
    let replayed = row(&app, app.clinic_a.id, id).await;
    assert_eq!(
        (replayed.status, replayed.attempts, replayed.replays),
        (JobStatus::Succeeded, 1, 1)
    );
    assert_eq!(replayed.result, Some(json!({"attempt": 1})));

    // A finished job is not replayable.
    let again = app
        .state
        .queue
        .replay(&app.state.db, app.clinic_a.id, id)
        .await
        .unwrap();
    assert!(
        matches!(again, Replay::NotReplayable(JobStatus::Succeeded)),
        "{again:?}"
    );
}

#[tokio::test]
async fn a_permanent_failure_is_dead_at_once_and_a_panic_is_a_failed_attempt() {
    let app = spawn().await;
    let seen = Seen::default();
    let broken = enqueue(&app, app.clinic_a.id, BROKEN, json!({})).await;
    let panicky = enqueue(&app, app.clinic_a.id, PANICKY, json!({})).await;
    let at_once = enqueue(&app, app.clinic_a.id, PANICS_AT_ONCE, json!({})).await;
    let after = enqueue(&app, app.clinic_a.id, ECHO, json!({})).await;

    let report = drain_worker(&worker(&app, &seen)).await;
    assert_eq!(
        (report.succeeded, report.dead, report.retried),
        (1, 3, 1),
        "{report:?}"
    );

    let broken = row(&app, app.clinic_a.id, broken).await;
    assert_eq!((broken.status, broken.attempts), (JobStatus::Dead, 1));
    assert_eq!(
        broken.last_error.as_deref(),
        Some("the image does not decode")
    );

    let panicky = row(&app, app.clinic_a.id, panicky).await;
    assert_eq!((panicky.status, panicky.attempts), (JobStatus::Dead, 2));
    assert_eq!(
        panicky.last_error.as_deref(),
        Some("the job's handler panicked")
    );
    let at_once = row(&app, app.clinic_a.id, at_once).await;
    assert_eq!((at_once.status, at_once.attempts), (JobStatus::Dead, 1));
    assert_eq!(
        at_once.last_error.as_deref(),
        Some("the job's handler panicked")
    );

    assert_eq!(
        row(&app, app.clinic_a.id, after).await.status,
        JobStatus::Succeeded,
        "the worker survived the panic"
    );
}

/// Claims the job's next delivery and abandons it, as a worker killed mid-batch would; waits for
/// its lease to expire and lets the reaper requeue it.
async fn lose_a_delivery(app: &TestApp) {
    let system = app.system_state();
    let claim = app
        .state
        .queue
        .claim(&system.db, 1, &any_room())
        .await
        .unwrap();
    assert_eq!(claim.leases.len() + claim.exhausted, 1, "{claim:?}");
    drop(claim);
    tokio::time::sleep(Duration::from_millis(1_100)).await;
    app.state.queue.reap_expired().await.unwrap();
}

async fn lost_deliveries(app: &TestApp, clinic: ClinicId, id: JobId) -> i32 {
    let mut tx = app.owner_tx(clinic).await;
    let lost = sqlx::query_scalar("SELECT lost_deliveries FROM jobs WHERE id = $1")
        .bind(id)
        .fetch_one(&mut *tx)
        .await
        .unwrap();
    tx.rollback().await.ok();
    lost
}

#[tokio::test]
async fn a_job_that_keeps_losing_its_worker_is_dead_after_its_free_losses() {
    let app = spawn().await;
    let seen = Seen::default();
    let staged = app
        .state
        .queue
        .enqueue(
            &app.state.db,
            app.clinic_a.id,
            NewJob {
                kind: COUNTED,
                payload: json!({}),
                idempotency_key: None,
                created_by: None,
                max_attempts: Some(1),
            },
        )
        .await
        .unwrap();
    // Its only attempt is lost three times: twice handed back, the third time it counts.
    for _ in 0..3 {
        lose_a_delivery(&app).await;
    }
    assert_eq!(lost_deliveries(&app, app.clinic_a.id, staged.id).await, 2);

    let report = drain_worker(&worker(&app, &seen)).await;
    assert_eq!(report.dead, 1, "{report:?}");
    let dead = row(&app, app.clinic_a.id, staged.id).await;
    assert_eq!((dead.status, dead.attempts), (JobStatus::Dead, 1));
    assert!(
        dead.last_error.unwrap().contains("lease expired"),
        "the error says what happened"
    );
    assert!(seen.runs(staged.id).is_empty(), "never run by the worker");
    assert_eq!(sizes(&app).await, (0, 0, 0, 0));
}

#[tokio::test]
async fn a_long_job_renews_its_lease_and_is_not_delivered_twice() {
    let app = spawn().await;
    let seen = Seen::default();
    let id = enqueue(&app, app.clinic_a.id, SLOW, json!({"ms": 2_500})).await;
    let report = drain_worker(&worker(&app, &seen)).await;
    assert_eq!(
        (report.reaped, report.succeeded, report.stale),
        (0, 1, 0),
        "{report:?}"
    );
    let done = row(&app, app.clinic_a.id, id).await;
    assert_eq!(
        (done.status, done.attempts, done.deliveries),
        (JobStatus::Succeeded, 1, 1)
    );
    assert_eq!(seen.runs(id).len(), 1);
}

#[tokio::test]
async fn the_worker_stops_taking_jobs_at_its_deadline_and_finishes_the_ones_it_holds() {
    let app = spawn().await;
    let seen = Seen::default();
    let held = enqueue(&app, app.clinic_a.id, SLOW, json!({"ms": 800})).await;
    let worker = worker(&app, &seen);
    let drained = tokio::spawn({
        let worker = worker.clone();
        async move {
            worker
                .drain(
                    Drain {
                        stop_at: Some(Instant::now() + Duration::from_millis(300)),
                        finish_by: Some(Instant::now() + Duration::from_secs(10)),
                        stop_when_idle: false,
                        ..Drain::default()
                    },
                    std::future::pending(),
                )
                .await
        }
    });
    // Enqueued after the stop: left for the next run.
    tokio::time::sleep(Duration::from_millis(400)).await;
    let later = enqueue(&app, app.clinic_a.id, ECHO, json!({})).await;
    let report = drained.await.unwrap();
    assert_eq!(report.stopped_by, StopReason::Deadline);
    assert_eq!(
        (report.claimed, report.succeeded, report.abandoned),
        (1, 1, 0),
        "{report:?}"
    );
    assert_eq!(
        row(&app, app.clinic_a.id, held).await.status,
        JobStatus::Succeeded,
        "the job it held finished after the stop"
    );
    assert_eq!(
        row(&app, app.clinic_a.id, later).await.status,
        JobStatus::Queued
    );
    assert_eq!(sizes(&app).await, (1, 0, 0, 1));
}

#[tokio::test]
async fn a_job_is_pushed_once_however_often_it_is_dispatched() {
    let app = spawn().await;
    let mut tx = shared::db::begin_tenant(&app.state.db, app.clinic_a.id)
        .await
        .unwrap();
    let staged = app
        .state
        .queue
        .stage(
            &mut tx,
            app.clinic_a.id,
            NewJob {
                kind: ECHO,
                payload: json!({}),
                idempotency_key: None,
                created_by: None,
                max_attempts: None,
            },
        )
        .await
        .unwrap();
    tx.commit().await.unwrap();
    for _ in 0..3 {
        app.state.queue.dispatch(&staged).await;
    }
    app.state
        .queue
        .maintain(&app.system_state().db)
        .await
        .unwrap();
    assert_eq!(sizes(&app).await, (1, 0, 0, 1));
}

#[tokio::test]
async fn a_staged_job_rolled_back_with_its_transaction_never_exists() {
    let app = spawn().await;
    let mut tx = shared::db::begin_tenant(&app.state.db, app.clinic_a.id)
        .await
        .unwrap();
    app.state
        .queue
        .stage(
            &mut tx,
            app.clinic_a.id,
            NewJob {
                kind: ECHO,
                payload: json!({}),
                idempotency_key: None,
                created_by: None,
                max_attempts: None,
            },
        )
        .await
        .unwrap();
    tx.rollback().await.unwrap();
    assert_eq!(app.count("jobs", app.clinic_a.id).await, 0);
    let report = app
        .state
        .queue
        .maintain(&app.system_state().db)
        .await
        .unwrap();
    assert_eq!(report.sweep.examined, 0);
}

#[tokio::test]
async fn the_scheduler_tick_runs_the_queues_upkeep() {
    use shared::scheduler::{Scheduler, Task, TaskOutcome, Tick};
    let app = spawn().await;
    let id = enqueue(&app, app.clinic_a.id, ECHO, json!({})).await;
    redis_loses_the_queue(&app).await;

    let report = Scheduler::new(app.system_state())
        .run(Tick {
            at: chrono::Utc::now(),
            stop_at: Instant::now() + Duration::from_secs(30),
        })
        .await;
    assert!(report.failed_tasks().is_empty(), "{report:?}");
    let queue = report
        .tasks
        .iter()
        .find(|task| task.task == Task::MaintainQueue)
        .expect("the queue task ran");
    let TaskOutcome::Queue(done) = &queue.outcome else {
        panic!("{queue:?}");
    };
    assert_eq!(done.sweep.pushed, 1, "{done:?}");
    assert_eq!(sizes(&app).await, (1, 0, 0, 1));
    assert_eq!(
        row(&app, app.clinic_a.id, id).await.status,
        JobStatus::Queued
    );
    // The same tick reports the queue as metrics: the one job waiting, none dead.
    let figures = report
        .tasks
        .iter()
        .find_map(|task| match &task.outcome {
            TaskOutcome::QueueFigures(figures) => Some(figures.clone()),
            _ => None,
        })
        .expect("the queue's figures were reported");
    assert_eq!((figures.depth, figures.processing, figures.dead), (1, 0, 0));
    assert!(figures.oldest_waiting_seconds.is_some_and(|age| age >= 0.0));
}
