//! Patient profile read path, measured against the physical limits in the same run:
//! raw Redis GET, raw PostgreSQL primary-key select, and `GET /patients/{id}` through the real
//! router on a cache hit and on a miss, at 1 and 8 concurrent callers.
//!
//! Run: `cargo bench -p pulso-tests --bench patients` (services from infra/scripts/services.sh).
//! `BENCH_ITERATIONS` scales the sample count (default 20000). Prints figures; asserts nothing.

use axum::Router;
use axum::body::Body;
use http::{Method, Request};
use http_body_util::BodyExt;
use pulso_tests::TestApp;
use redis::AsyncCommands;
use shared::auth::Role;
use shared::ids::PatientId;
use std::future::Future;
use std::time::{Duration, Instant};
use tower::ServiceExt;

const PATIENTS: usize = 1000;

fn main() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    runtime.block_on(run());
}

async fn run() {
    let iterations: usize = std::env::var("BENCH_ITERATIONS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(20_000);
    let app = TestApp::spawn().await;
    let ids = seed(&app).await;
    let router = shared::patients::router(app.state.clone());
    let token = app.token(&app.clinic_a, Role::Receptionist);
    let clinic = app.clinic_a.id;

    // Warm every path (connections, prepared statements, caches).
    for id in ids.iter().take(200) {
        get_patient(&router, &token, *id).await;
    }

    println!("Pulso patient read path — {iterations} samples per row, {PATIENTS} patients");
    println!(
        "{:<44} {:>9} {:>9} {:>12}",
        "path (1 caller unless noted)", "p50 µs", "p99 µs", "req/s"
    );

    // The limit of a hit: one Redis GET of a value of the same size, same connection type.
    let redis = app.state.redis.connection().await.expect("redis");
    let sample_key = app.state.keys.patient_profile(clinic, ids[0]);
    let redis_get = {
        let redis = redis.clone();
        let key = sample_key.clone();
        move |_: usize| {
            let mut redis = redis.clone();
            let key = key.clone();
            async move {
                let _: Option<Vec<u8>> = redis.get(&key).await.expect("GET");
            }
        }
    };
    let raw_redis = measure(iterations, redis_get.clone()).await;
    report("raw Redis GET (ConnectionManager)", &raw_redis);

    // The limit of a miss: one primary-key select on the app role's pool.
    let pk_pool = sqlx::postgres::PgPoolOptions::new()
        .max_connections(8)
        .after_connect(move |connection, _| {
            Box::pin(async move {
                sqlx::query(&format!("SET app.clinic_id = '{clinic}'"))
                    .execute(connection)
                    .await
                    .map(drop)
            })
        })
        .connect(app.state.config.database.url.expose())
        .await
        .expect("pk pool");
    let pk_select = {
        let pool = pk_pool.clone();
        let ids = ids.clone();
        move |i: usize| {
            let pool = pool.clone();
            let id = ids[i % ids.len()];
            async move {
                let _: (String,) = sqlx::query_as("SELECT first_name FROM patients WHERE id = $1")
                    .bind(id)
                    .fetch_one(&pool)
                    .await
                    .expect("pk select");
            }
        }
    };
    let raw_pg = measure(iterations, pk_select.clone()).await;
    report("raw PostgreSQL primary-key select", &raw_pg);

    let hit = {
        let router = router.clone();
        let token = token.clone();
        let ids = ids.clone();
        move |i: usize| {
            let router = router.clone();
            let token = token.clone();
            let id = ids[i % 200];
            async move { get_patient(&router, &token, id).await }
        }
    };
    let hits = measure(iterations, hit.clone()).await;
    report("GET /patients/{id} cache hit", &hits);

    // Misses: the key is deleted before each timed request (outside the timing).
    let mut misses = Vec::with_capacity(iterations / 4);
    let mut cleaner = redis.clone();
    for i in 0..iterations / 4 {
        let id = ids[i % ids.len()];
        let _: () = cleaner
            .del(app.state.keys.patient_profile(clinic, id))
            .await
            .expect("DEL");
        let started = Instant::now();
        get_patient(&router, &token, id).await;
        misses.push(started.elapsed());
    }
    let misses = Stats::from(misses, None);
    report("GET /patients/{id} cache miss (load + set)", &misses);

    let hit_at_8 = measure_concurrent(8, iterations, hit).await;
    report("GET /patients/{id} cache hit, 8 concurrent", &hit_at_8);
    let redis_at_8 = measure_concurrent(8, iterations, redis_get).await;
    report("raw Redis GET, 8 concurrent", &redis_at_8);
    let pk_at_8 = measure_concurrent(8, iterations, pk_select).await;
    report("raw PostgreSQL PK select, 8 concurrent", &pk_at_8);

    println!();
    println!(
        "cache-hit handler p50 − raw Redis GET p50 = {:.1} µs (target ≤ 100 µs)",
        hits.p50_us - raw_redis.p50_us
    );
    println!(
        "cache-hit throughput at 8 concurrent = {:.0} % of raw Redis GET at 8 concurrent",
        100.0 * hit_at_8.per_second / redis_at_8.per_second
    );
    println!(
        "miss / hit p50 = {:.1}×",
        misses.p50_us / hits.p50_us.max(f64::EPSILON)
    );
}

async fn get_patient(router: &Router, token: &str, id: PatientId) {
    let request = Request::builder()
        .method(Method::GET)
        .uri(format!("/patients/{id}"))
        .header("authorization", format!("Bearer {token}"))
        .body(Body::empty())
        .expect("request");
    let response = router.clone().oneshot(request).await.expect("infallible");
    assert_eq!(response.status(), 200);
    let _ = response.into_body().collect().await.expect("body");
}

struct Stats {
    p50_us: f64,
    p99_us: f64,
    per_second: f64,
}

impl Stats {
    fn from(mut samples: Vec<Duration>, wall: Option<Duration>) -> Self {
        samples.sort_unstable();
        let at = |q: f64| {
            let index = ((samples.len() as f64 * q) as usize).min(samples.len() - 1);
            samples[index].as_secs_f64() * 1e6
        };
        let total: Duration = wall.unwrap_or_else(|| samples.iter().sum());
        Stats {
            p50_us: at(0.50),
            p99_us: at(0.99),
            per_second: samples.len() as f64 / total.as_secs_f64(),
        }
    }
}

fn report(name: &str, stats: &Stats) {
    println!(
        "{:<44} {:>9.1} {:>9.1} {:>12.0}",
        name, stats.p50_us, stats.p99_us, stats.per_second
    );
}

async fn measure<F, Fut>(iterations: usize, op: F) -> Stats
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

/// `callers` tasks share `iterations` operations; requests/s is over the wall-clock time.
async fn measure_concurrent<F, Fut>(callers: usize, iterations: usize, op: F) -> Stats
where
    F: Fn(usize) -> Fut + Clone + Send + 'static,
    Fut: Future<Output = ()> + Send,
{
    let per_caller = iterations / callers;
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

/// Inserts the benchmark's patients directly (owner role, tenant transaction).
async fn seed(app: &TestApp) -> Vec<PatientId> {
    let mut tx = app.owner_tx(app.clinic_a.id).await;
    let ids: Vec<PatientId> = sqlx::query_scalar(
        "INSERT INTO patients (clinic_id, first_name, last_name, search_name, phone, notes)
         SELECT $1, 'Paciente' || n, 'Pérez García', 'paciente' || n || ' perez garcia',
                '+346' || lpad(n::text, 8, '0'), 'Revisión semestral sin incidencias.'
         FROM generate_series(1, $2) AS n
         RETURNING id",
    )
    .bind(app.clinic_a.id)
    .bind(PATIENTS as i32)
    .fetch_all(&mut *tx)
    .await
    .expect("seed patients");
    tx.commit().await.expect("commit seed");
    ids
}
