//! Timing helpers shared by the benchmarks: percentiles, sequential and concurrent loops,
//! one printed row per measurement. Benchmarks print; they never assert a timing.

#![allow(dead_code)] // each bench binary uses its own subset

use std::future::Future;
use std::time::{Duration, Instant};

pub struct Stats {
    pub p50_us: f64,
    pub p99_us: f64,
    pub per_second: f64,
}

impl Stats {
    /// Percentiles of `samples`; requests/s over `wall` (concurrent runs) or their sum.
    pub fn from(mut samples: Vec<Duration>, wall: Option<Duration>) -> Self {
        samples.sort_unstable();
        let at = |q: f64| {
            let index = ((samples.len() as f64 * q) as usize).min(samples.len().saturating_sub(1));
            samples.get(index).map_or(0.0, |d| d.as_secs_f64() * 1e6)
        };
        let total: Duration = wall.unwrap_or_else(|| samples.iter().sum());
        Stats {
            p50_us: at(0.50),
            p99_us: at(0.99),
            per_second: samples.len() as f64 / total.as_secs_f64().max(f64::EPSILON),
        }
    }
}

pub fn header(title: &str) {
    println!();
    println!("{title}");
    println!(
        "{:<52} {:>10} {:>10} {:>11}",
        "", "p50 µs", "p99 µs", "ops/s"
    );
}

pub fn report(name: &str, stats: &Stats) {
    println!(
        "{:<52} {:>10.1} {:>10.1} {:>11.0}",
        name, stats.p50_us, stats.p99_us, stats.per_second
    );
}

pub async fn measure<F, Fut>(iterations: usize, op: F) -> Stats
where
    F: Fn(usize) -> Fut,
    Fut: Future<Output = ()>,
{
    let mut samples = Vec::with_capacity(iterations);
    for i in 0..iterations {
        let started = Instant::now();
        op(i).await;
        samples.push(started.elapsed());
    }
    Stats::from(samples, None)
}

/// `callers` tasks share `iterations` operations; ops/s is over the wall-clock time.
pub async fn measure_concurrent<F, Fut>(callers: usize, iterations: usize, op: F) -> Stats
where
    F: Fn(usize) -> Fut + Clone + Send + 'static,
    Fut: Future<Output = ()> + Send,
{
    let per_caller = (iterations / callers).max(1);
    let started = Instant::now();
    let tasks: Vec<_> = (0..callers)
        .map(|caller| {
            let op = op.clone();
            tokio::spawn(async move {
                let mut samples = Vec::with_capacity(per_caller);
                for i in 0..per_caller {
                    let began = Instant::now();
                    op(caller * per_caller + i).await;
                    samples.push(began.elapsed());
                }
                samples
            })
        })
        .collect();
    let mut samples = Vec::with_capacity(iterations);
    for task in tasks {
        samples.extend(task.await.expect("bench task"));
    }
    Stats::from(samples, Some(started.elapsed()))
}

/// A pool of the application role with `clinic` set once per connection: the cheapest possible
/// tenant-scoped primary-key select, the floor every cached read is compared with.
pub async fn tenant_pool(url: &str, clinic: shared::ids::ClinicId) -> sqlx::PgPool {
    sqlx::postgres::PgPoolOptions::new()
        .max_connections(32)
        .after_connect(move |connection, _| {
            Box::pin(async move {
                sqlx::query(&format!("SET app.clinic_id = '{clinic}'"))
                    .execute(connection)
                    .await
                    .map(drop)
            })
        })
        .connect(url)
        .await
        .expect("tenant pool")
}

/// Runs a benchmark's body on a multi-threaded runtime: many callers at once (as many Lambda
/// environments), or the worker, which runs that way.
pub fn block_on(body: impl Future<Output = ()>) {
    run_on(tokio::runtime::Builder::new_multi_thread(), body);
}

/// Runs a benchmark's body on a current-thread runtime, as a function that answers requests
/// runs (one invocation at a time; docs/architecture.md): for rows of one caller.
pub fn block_on_function(body: impl Future<Output = ()>) {
    run_on(tokio::runtime::Builder::new_current_thread(), body);
}

fn run_on(mut builder: tokio::runtime::Builder, body: impl Future<Output = ()>) {
    builder
        .enable_all()
        .build()
        .expect("runtime")
        .block_on(body);
}

/// A test app whose rate limits no benchmark reaches: the limiter still runs on every request
/// (its cost is part of what is measured), but its quotas must not end a row that sends
/// hundreds of thousands of reads a minute in 429s.
pub async fn unlimited_app() -> pulso_tests::TestApp {
    let unlimited = "reads=60000000,writes=60000000,uploads=60000000,reports=60000000,\
                     admin=60000000";
    pulso_tests::TestApp::spawn_with(pulso_tests::TestOptions {
        env: vec![
            ("RATE_LIMITS_PER_USER", unlimited.into()),
            ("RATE_LIMITS_PER_CLINIC", unlimited.into()),
        ],
        ..pulso_tests::TestOptions::default()
    })
    .await
}

pub fn iterations() -> usize {
    std::env::var("BENCH_ITERATIONS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(20_000)
}
