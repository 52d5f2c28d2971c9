//! The job queue measured against the physical limits in the same run (issue 5): raw Redis
//! LPUSH+LMOVE round trips and a raw PostgreSQL insert-and-commit beside `Queue::enqueue`
//! (tenant transaction + INSERT + COMMIT + push); no-op jobs through one worker process, with
//! their state recorded in PostgreSQL, beside the raw Redis limit; enqueue-to-start latency
//! while the worker drains a steady 500 jobs/s; and fairness: enqueue-to-start of one clinic's
//! job behind another clinic's backlog of 1,000 jobs, beside the same on an empty queue.
//!
//! Run: `cargo bench -p pulso-tests --bench queue` (services from infra/scripts/services.sh).
//! `BENCH_ITERATIONS` scales the samples (default 20000; the throughput runs use 2.5× that many
//! jobs). Prints figures; asserts nothing about time.

mod common;

use common::{Stats, header, iterations, measure, report};
use pulso_tests::TestApp;
use rand::Rng;
use redis::AsyncCommands;
use serde_json::{Value, json};
use shared::AppState;
use shared::ids::{ClinicId, JobId};
use shared::queue::{Drain, DrainReport, JobKind, NewJob, Queue};
use shared::worker::{Handlers, Worker};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, LazyLock, Mutex};
use std::time::{Duration, Instant};

const NOOP: JobKind = JobKind::new("bench.noop");
const STAMPED: JobKind = JobKind::new("bench.stamped");
/// The steady arrival rate of the latency run.
const RATE_PER_SECOND: u64 = 500;
/// Clinic A's jobs in the fairness run: each takes this long (an X-ray analysis, a report).
const BUSY: JobKind = JobKind::new("bench.busy");
const BUSY_MS: u64 = 100;
/// The enqueue rows finish their staged jobs this often: two enqueues a round, well below
/// `QUEUE_MAX_PENDING_PER_CLINIC` (1,000).
const ENQUEUES_BETWEEN_CLEARS: usize = 200;
/// Clinic A's backlog in the fairness run.
const BACKLOG: usize = 1_000;

/// One clock for the producer and the handlers (same process): microseconds since start.
static EPOCH: LazyLock<Instant> = LazyLock::new(Instant::now);

fn micros() -> u64 {
    EPOCH.elapsed().as_micros() as u64
}

fn main() {
    common::block_on(run());
}

async fn run() {
    let iterations = iterations();
    let app = TestApp::spawn().await;
    let clinic = app.clinic_a.id;
    let system = app.system_state();
    let config = app.state.config.queue.clone();
    println!(
        "Pulso queue benchmark — {iterations} samples per latency row; worker defaults: \
         concurrency {}, batch {}",
        config.worker_concurrency, config.worker_batch
    );

    // ------------------------------------------------------------------ raw limits
    header("round trips, 1 caller");
    let redis = app.state.redis.connection().await.expect("redis");
    let scratch = format!("{}:bench:{{raw}}:list", app.redis_prefix);
    let scratch_to = format!("{}:bench:{{raw}}:moved", app.redis_prefix);
    let raw_pair = {
        let redis = redis.clone();
        move |i: usize| {
            let mut redis = redis.clone();
            let (from, to) = (scratch.clone(), scratch_to.clone());
            async move {
                let _: i64 = redis.lpush(&from, i).await.expect("LPUSH");
                let _: Option<String> = redis
                    .lmove(&from, &to, redis::Direction::Right, redis::Direction::Left)
                    .await
                    .expect("LMOVE");
            }
        }
    };
    let raw_redis = measure(iterations, raw_pair).await;
    report("raw Redis LPUSH + LMOVE (2 round trips)", &raw_redis);

    // The same queue as deployed, where an enqueue may wake the worker: with a drain alive, its
    // push and wake check are one script (no Invoke is sent; none could be, the endpoint is
    // closed).
    let mut waking_config = config.clone();
    waking_config.wake = Some(shared::config::WakeTarget {
        function: "worker".into(),
        endpoint: Some("http://127.0.0.1:1".into()),
        region: Some("us-east-1".into()),
    });
    let waking =
        shared::queue::Queue::new(app.state.redis.clone(), &app.state.keys, &waking_config);
    let mut drain = waking
        .join(None, None, false)
        .await
        .expect("join")
        .expect("a drain alive");

    // Alternated sample by sample, so all see the same disk and the same neighbours.
    let mut raw_samples = Vec::with_capacity(iterations / 4);
    let mut enqueue_samples = Vec::with_capacity(iterations / 4);
    let mut waking_samples = Vec::with_capacity(iterations / 4);
    for i in 0..iterations / 4 {
        if i > 0 && i % ENQUEUES_BETWEEN_CLEARS == 0 {
            // No worker runs here: finish what was staged, as a clinic's queue drains, so the
            // clinic stays within its quota of unfinished jobs (and the count behind it).
            clear(&app).await;
            // A real drain renews its presence every second; this one joins again before its
            // presence (5 s) lapses.
            waking
                .leave(&drain, shared::queue::Leaving::Quit)
                .await
                .expect("leave");
            drain = waking
                .join(None, None, false)
                .await
                .expect("join")
                .expect("a drain alive");
        }
        let started = Instant::now();
        let mut tx = shared::db::begin_tenant(&app.state.db, clinic)
            .await
            .expect("begin");
        sqlx::query(
            "INSERT INTO jobs (clinic_id, kind, status) VALUES ($1, 'bench.raw', 'succeeded')",
        )
        .bind(clinic)
        .execute(&mut *tx)
        .await
        .expect("insert");
        tx.commit().await.expect("commit");
        raw_samples.push(started.elapsed());

        let started = Instant::now();
        app.state
            .queue
            .enqueue(&app.state.db, clinic, noop(json!({"i": i})))
            .await
            .expect("enqueue");
        enqueue_samples.push(started.elapsed());

        let started = Instant::now();
        waking
            .enqueue(&app.state.db, clinic, noop(json!({"i": i, "waking": true})))
            .await
            .expect("enqueue");
        waking_samples.push(started.elapsed());
    }
    waking
        .leave(&drain, shared::queue::Leaving::Quit)
        .await
        .expect("leave");
    let raw_pg = Stats::from(raw_samples, None);
    let enqueue = Stats::from(enqueue_samples, None);
    let waking = Stats::from(waking_samples, None);
    report("raw PostgreSQL BEGIN;SET LOCAL + INSERT + COMMIT", &raw_pg);
    report("Queue::enqueue (the above + Redis push)", &enqueue);
    report("  … with the wake check (a drain alive)", &waking);
    println!(
        "  enqueue p50 − raw PostgreSQL p50 = {:.1} µs (the push and the queue's own work); \
         target: enqueue ≤ 1000 µs p50",
        enqueue.p50_us - raw_pg.p50_us
    );
    clear(&app).await;

    // ------------------------------------------------------------------ throughput
    let jobs = iterations * 5 / 2;
    println!();
    println!("no-op jobs through one worker process ({jobs} jobs, state recorded in PostgreSQL)");
    let raw_claim = raw_claim_limit(&app, jobs).await;
    println!(
        "{:<52} {:>11.0} jobs/s",
        "raw Redis claim script alone, 256 per call", raw_claim
    );
    println!(
        "{:<52} {:>11.0} jobs/s",
        "raw Redis LPUSH + LMOVE, 1 job per pair", raw_redis.per_second
    );
    let mut best = 0.0_f64;
    for (concurrency, batch) in [
        (config.worker_concurrency, config.worker_batch),
        (64, 256),
        (256, 256),
    ] {
        let (rate, drained) = throughput(&app, &system, jobs, concurrency, batch).await;
        best = best.max(rate);
        println!(
            "{:<52} {:>11.0} jobs/s   ({} succeeded, {:.1} jobs per claim, {:.0} % of the raw claim limit)",
            format!("worker, concurrency {concurrency}, batch {batch}"),
            rate,
            drained.succeeded,
            drained.claimed as f64 / drained.batches.max(1) as f64,
            100.0 * rate / raw_claim
        );
    }
    println!("  target: ≥ 12,000 no-op jobs/s; best above: {best:.0} jobs/s");

    // ------------------------------------------------------------------ enqueue-to-start
    let seconds = (iterations as u64 / 2_000).clamp(4, 20);
    println!();
    println!(
        "enqueue-to-start while one worker (concurrency {}, batch {}) drains a steady {RATE_PER_SECOND} jobs/s for {seconds} s",
        config.worker_concurrency, config.worker_batch
    );
    let (from_call, from_commit, enqueues) = steady_latency(&app, &system, seconds).await;
    header("");
    report("enqueue (under load)", &enqueues);
    report("enqueue call → handler start", &from_call);
    report("commit + push done → handler start", &from_commit);
    println!("  target: enqueue-to-start ≤ 2000 µs p50");

    // ------------------------------------------------------------------ fairness
    let samples = (iterations / 200).clamp(20, 100);
    println!();
    println!(
        "fairness: enqueue-to-start of clinic B's job, {samples} samples per row, one worker \
         (concurrency {}, batch {}); clinic A's jobs take {BUSY_MS} ms, or {}–{} ms at random",
        config.worker_concurrency,
        config.worker_batch,
        BUSY_MS / 2,
        BUSY_MS * 3 / 2
    );
    fairness(&app, &system, samples).await;
}

/// Enqueue-to-start of clinic B's jobs, alone and behind a backlog of `BACKLOG` busy jobs of
/// clinic A (topped up before every sample), and how long that backlog takes to drain: what B
/// would wait in a single FIFO list. A's jobs take `BUSY_MS` each, which keeps every slot in
/// lockstep (B waits for a whole job to end, the worst case), then a spread around it, as real
/// jobs are.
async fn fairness(app: &TestApp, system: &AppState, samples: usize) {
    let spread = Arc::new(AtomicBool::new(false));
    let spread_in_handler = spread.clone();
    let (started, mut starts) = tokio::sync::mpsc::unbounded_channel::<(u64, u64)>();
    let worker = Worker::new(
        system.clone(),
        Handlers::new()
            .on(STAMPED, move |_, job| {
                let now = micros();
                let _ = started.send((job.payload["t"].as_u64().unwrap_or(now), now));
                async { Ok(Value::Null) }
            })
            .on(BUSY, move |_, _| {
                let ms = if spread_in_handler.load(Ordering::Relaxed) {
                    rand::rng().random_range(BUSY_MS / 2..=BUSY_MS * 3 / 2)
                } else {
                    BUSY_MS
                };
                async move {
                    tokio::time::sleep(Duration::from_millis(ms)).await;
                    Ok(Value::Null)
                }
            }),
    );
    let (stop, draining) = drain_in_background(&worker).await;

    let mut alone = Vec::with_capacity(samples);
    for _ in 0..samples {
        alone.push(b_job_latency(app, &mut starts).await);
    }
    let mut behind = [Vec::with_capacity(samples), Vec::with_capacity(samples)];
    for (row, samples_of_row) in behind.iter_mut().enumerate() {
        spread.store(row == 1, Ordering::Relaxed);
        for _ in 0..samples {
            let ready = app.state.queue.redis_sizes().await.expect("sizes").ready as usize;
            preload_kind(app, app.clinic_a.id, BUSY, BACKLOG.saturating_sub(ready)).await;
            // Let the worker fill every slot with A's jobs first.
            tokio::time::sleep(Duration::from_millis(2 * BUSY_MS)).await;
            samples_of_row.push(b_job_latency(app, &mut starts).await);
        }
    }
    // What B would have waited in one FIFO list: the time A's backlog takes to drain.
    let ready = app.state.queue.redis_sizes().await.expect("sizes").ready as usize;
    preload_kind(app, app.clinic_a.id, BUSY, BACKLOG.saturating_sub(ready)).await;
    let backlog_started = Instant::now();
    wait_until_idle(app).await;
    let fifo_wait = backlog_started.elapsed();
    let _ = stop.send(());
    let _ = draining.await.expect("drain task");
    let [lockstep, spread] = behind;
    header("");
    let alone = report_b(String::from("queue empty"), alone);
    let lockstep = report_b(
        format!("behind A's {BACKLOG}, A's jobs {BUSY_MS} ms"),
        lockstep,
    );
    let spread = report_b(
        format!(
            "behind A's {BACKLOG}, A's jobs {}–{} ms",
            BUSY_MS / 2,
            BUSY_MS * 3 / 2
        ),
        spread,
    );
    for (what, of) in [("call", 0), ("push", 1)] {
        println!(
            "  from the {what}, behind / empty at p50: {:.2}× in lockstep, {:.2}× spread \
             (target ≤ 2×)",
            lockstep[of].p50_us / alone[of].p50_us.max(1.0),
            spread[of].p50_us / alone[of].p50_us.max(1.0),
        );
    }
    println!(
        "  in one FIFO list B would have waited for A's backlog to drain: {:.0} ms, measured",
        fifo_wait.as_secs_f64() * 1e3
    );
    clear(app).await;
}

/// Prints B's latencies from the enqueue call and from its return; returns their figures.
fn report_b(condition: String, samples: Vec<(Duration, Duration)>) -> [Stats; 2] {
    let (from_call, from_push): (Vec<_>, Vec<_>) = samples.into_iter().unzip();
    let stats = [Stats::from(from_call, None), Stats::from(from_push, None)];
    report(&format!("B: call → start, {condition}"), &stats[0]);
    report(&format!("B: push → start, {condition}"), &stats[1]);
    stats
}

/// Enqueues one job of clinic B and waits for its handler to start: the latency from the
/// enqueue call, and from the enqueue's return (commit and push done).
async fn b_job_latency(
    app: &TestApp,
    starts: &mut tokio::sync::mpsc::UnboundedReceiver<(u64, u64)>,
) -> (Duration, Duration) {
    let called = micros();
    app.state
        .queue
        .enqueue(&app.state.db, app.clinic_b.id, stamped(called))
        .await
        .expect("enqueue B");
    let pushed = micros();
    let (called, at) = starts.recv().await.expect("B's job started");
    (
        Duration::from_micros(at.saturating_sub(called)),
        Duration::from_micros(at.saturating_sub(pushed)),
    )
}

/// Starts `worker` draining until the returned sender is used, and gives it a moment to start.
async fn drain_in_background(
    worker: &Worker,
) -> (
    tokio::sync::oneshot::Sender<()>,
    tokio::task::JoinHandle<DrainReport>,
) {
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let worker = worker.clone();
    let draining = tokio::spawn(async move {
        worker
            .drain(Drain::default(), async {
                let _ = stopped.await;
            })
            .await
    });
    tokio::time::sleep(Duration::from_millis(300)).await;
    (stop, draining)
}

/// Until no job is ready or held in Redis.
async fn wait_until_idle(app: &TestApp) {
    loop {
        let sizes = app.state.queue.redis_sizes().await.expect("sizes");
        if sizes.ready + sizes.processing == 0 {
            return;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// A job whose handler notes when it started, beside `called` (µs since the epoch of the run).
fn stamped(called: u64) -> NewJob {
    NewJob {
        kind: STAMPED,
        payload: json!({"t": called}),
        idempotency_key: None,
        created_by: None,
        max_attempts: None,
    }
}

fn noop(payload: Value) -> NewJob {
    NewJob {
        kind: NOOP,
        payload,
        idempotency_key: None,
        created_by: None,
        max_attempts: None,
    }
}

/// Empties the queue's Redis structures and finishes the database's jobs between runs.
async fn clear(app: &TestApp) {
    let mut redis = app.redis().await;
    let _: () = redis.del(app.queue_keys()).await.expect("clear queue keys");
    // Otherwise the worker's sweep would push again, 30 s later, what was just cleared.
    let mut tx = app.owner_tx(app.clinic_a.id).await;
    sqlx::query(
        "UPDATE jobs SET status = 'succeeded' WHERE clinic_id = $1 AND status <> 'succeeded'",
    )
    .bind(app.clinic_a.id)
    .execute(&mut *tx)
    .await
    .expect("finish leftover jobs");
    tx.commit().await.expect("commit");
}

/// Inserts `count` no-op jobs in one statement and pushes their ids, as `count` enqueues
/// would have (outside the timing).
async fn preload(app: &TestApp, clinic: ClinicId, count: usize) -> Vec<JobId> {
    preload_kind(app, clinic, NOOP, count).await
}

/// [`preload`] of jobs of `kind`.
async fn preload_kind(app: &TestApp, clinic: ClinicId, kind: JobKind, count: usize) -> Vec<JobId> {
    if count == 0 {
        return Vec::new();
    }
    let mut tx = app.owner_tx(clinic).await;
    let ids: Vec<JobId> = sqlx::query_scalar(
        "INSERT INTO jobs (clinic_id, kind) SELECT $1, $2 FROM generate_series(1, $3) RETURNING id",
    )
    .bind(clinic)
    .bind(kind.as_str())
    .bind(count as i64)
    .fetch_all(&mut *tx)
    .await
    .expect("preload jobs");
    tx.commit().await.expect("commit preload");
    let jobs: Vec<_> = ids.iter().map(|&id| (id, clinic)).collect();
    app.state
        .queue
        .push_ready(&jobs, kind)
        .await
        .expect("push preload");
    sqlx::query("ANALYZE jobs").execute(&app.owner).await.ok();
    ids
}

/// What Redis alone allows the batched design: `claim.lua`-like LPOP 256 + ZADD per call.
async fn raw_claim_limit(app: &TestApp, jobs: usize) -> f64 {
    let list = format!("{}:bench:{{raw}}:ready", app.redis_prefix);
    let zset = format!("{}:bench:{{raw}}:processing", app.redis_prefix);
    let mut redis = app.redis().await;
    let ids: Vec<String> = (0..jobs).map(|i| format!("{i:036}")).collect();
    for chunk in ids.chunks(5_000) {
        let _: () = redis.rpush(&list, chunk).await.expect("fill");
    }
    let script = redis::Script::new(
        "local ids = redis.call('LPOP', KEYS[1], ARGV[1]) if not ids then return 0 end \
         for _, id in ipairs(ids) do redis.call('ZADD', KEYS[2], ARGV[2], id) end return #ids",
    );
    let started = Instant::now();
    let mut taken = 0_usize;
    while taken < jobs {
        let n: usize = script
            .key(&list)
            .key(&zset)
            .arg(256)
            .arg(1)
            .invoke_async(&mut redis)
            .await
            .expect("claim");
        if n == 0 {
            break;
        }
        taken += n;
    }
    let rate = taken as f64 / started.elapsed().as_secs_f64();
    let _: () = redis.del(&[&list, &zset]).await.expect("clean");
    rate
}

fn worker_state(system: &AppState, concurrency: usize, batch: usize) -> AppState {
    let mut config = system.config.queue.clone();
    config.worker_concurrency = concurrency;
    config.worker_batch = batch;
    AppState {
        queue: Queue::new(system.redis.clone(), &system.keys, &config),
        ..system.clone()
    }
}

/// Drains `jobs` preloaded no-op jobs; jobs/s over the drain (which ends ≤ 100 ms after the
/// last record, when it sees the queue idle).
async fn throughput(
    app: &TestApp,
    system: &AppState,
    jobs: usize,
    concurrency: usize,
    batch: usize,
) -> (f64, DrainReport) {
    preload(app, app.clinic_a.id, jobs).await;
    let worker = Worker::new(
        worker_state(system, concurrency, batch),
        Handlers::new().on(NOOP, |_, _| async { Ok(Value::Null) }),
    );
    let started = Instant::now();
    let drained = worker
        .drain(
            Drain {
                stop_at: Some(tokio::time::Instant::now() + Duration::from_secs(300)),
                finish_by: None,
                stop_when_idle: true,
                ..Drain::default()
            },
            std::future::pending(),
        )
        .await;
    let rate = drained.succeeded as f64 / started.elapsed().as_secs_f64();
    clear(app).await;
    (rate, drained)
}

/// Enqueues at a steady rate while a worker drains; returns (call → start, commit → start,
/// enqueue) latencies.
async fn steady_latency(app: &TestApp, system: &AppState, seconds: u64) -> (Stats, Stats, Stats) {
    type Starts = Arc<Mutex<Vec<(String, u64, u64)>>>;
    let starts: Starts = Arc::default();
    let seen = starts.clone();
    let worker = Worker::new(
        system.clone(),
        Handlers::new().on(STAMPED, move |_, job| {
            let now = micros();
            let called = job.payload["t"].as_u64().unwrap_or(now);
            seen.lock()
                .unwrap_or_else(|p| p.into_inner())
                .push((job.id.to_string(), called, now));
            async { Ok(Value::Null) }
        }),
    );
    let (stop, draining) = drain_in_background(&worker).await;

    let total = seconds * RATE_PER_SECOND;
    let mut ticks = tokio::time::interval(Duration::from_micros(1_000_000 / RATE_PER_SECOND));
    let mut committed = std::collections::HashMap::new();
    let mut enqueue_samples = Vec::with_capacity(total as usize);
    for _ in 0..total {
        ticks.tick().await;
        let called = micros();
        let staged = app
            .state
            .queue
            .enqueue(&app.state.db, app.clinic_a.id, stamped(called))
            .await
            .expect("enqueue");
        let done = micros();
        enqueue_samples.push(Duration::from_micros(done - called));
        committed.insert(staged.id.to_string(), done);
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    let _ = stop.send(());
    let report = draining.await.expect("drain task");
    let starts = std::mem::take(&mut *starts.lock().unwrap_or_else(|p| p.into_inner()));
    println!(
        "  {} enqueued, {} started, worker report: claimed {}, succeeded {}",
        total,
        starts.len(),
        report.claimed,
        report.succeeded
    );
    let from_call: Vec<Duration> = starts
        .iter()
        .map(|(_, called, started)| Duration::from_micros(started.saturating_sub(*called)))
        .collect();
    let from_commit: Vec<Duration> = starts
        .iter()
        .filter_map(|(id, _, started)| {
            committed
                .get(id)
                .map(|done| Duration::from_micros(started.saturating_sub(*done)))
        })
        .collect();
    (
        Stats::from(from_call, None),
        Stats::from(from_commit, None),
        Stats::from(enqueue_samples, None),
    )
}
