//! The cache layer measured against the physical limits in the same run (issue 4 §5):
//! raw Redis GET and raw PostgreSQL primary-key select beside `GET /patients/{id}` on a hit and
//! a miss, `GET /dashboard` on a miss and a hit for a clinic of 20,000 patients and 200,000
//! appointments, requests/s at 1, 8 and 32 concurrent callers, and a Zipf(1.0) read workload
//! over the 20,000 patients with 5 % writes, reporting the hit rate. The request gate's rate
//! limiter is measured by what it adds to the one Redis call every request makes anyway (issue
//! 11 §3: ≤ 20 µs p50), and the whole gate on a cached standing by how much choosing the clinic
//! from the person's memberships adds over taking it from the token (issue 13 §5: ≤ 30 µs p50).
//!
//! Run: `cargo bench -p pulso-tests --bench cache` (services from infra/scripts/services.sh).
//! `BENCH_ITERATIONS` scales the sample count (default 20000). Prints figures; asserts nothing.

mod common;

use axum::Router;
use axum::body::Body;
use common::{Stats, header, iterations, measure, measure_concurrent, report};
use http::{Method, Request};
use http_body_util::BodyExt;
use pulso_devtool::large_clinic::{LargeClinicOptions, populate};
use pulso_tests::TestApp;
use rand::SeedableRng;
use rand::rngs::StdRng;
use rand_distr::{Distribution, Zipf};
use redis::AsyncCommands;
use shared::auth::Role;
use shared::cache::{DASHBOARD, PATIENT_PROFILE};
use shared::ids::{ClinicId, PatientId, UserId};
use shared::ratelimit::{Quotas, RateLimiter, RateLimits, RouteClass, Verdict};
use std::sync::Arc;
use std::time::Instant;
use tower::ServiceExt;

const PATIENTS: usize = 20_000;
const APPOINTMENTS: usize = 200_000;
const WRITE_SHARE: f64 = 0.05;

fn main() {
    common::block_on(run());
}

async fn run() {
    let iterations = iterations();
    let app = common::unlimited_app().await;
    let clinic = app.clinic_a.id;
    let started = Instant::now();
    let (ids, appointments) = seed_large_clinic(&app, clinic).await;
    println!(
        "Pulso cache benchmark — {} patients, {appointments} appointments generated in {:.1} s; {iterations} samples per row",
        ids.len(),
        started.elapsed().as_secs_f64()
    );
    let patients = shared::patients::router(app.state.clone());
    let dashboard = shared::dashboard::router(app.state.clone());
    let staff = app.token(&app.clinic_a, Role::Receptionist);
    let dentist = app.token(&app.clinic_a, Role::Dentist);
    let redis = app.state.redis.connection().await.expect("redis");

    // Warm every path (connections, prepared statements, caches).
    for id in ids.iter().take(200) {
        get(&patients, &staff, &format!("/patients/{id}")).await;
    }
    get(&dashboard, &dentist, "/dashboard").await;

    // ------------------------------------------------------------------ single caller
    header("latency, 1 caller");
    let sample_key = app.state.keys.patient_profile(clinic, ids[0]).value;
    let redis_get = {
        let redis = redis.clone();
        move |_: usize| {
            let mut redis = redis.clone();
            let key = sample_key.clone();
            async move {
                let _: Option<Vec<u8>> = redis.get(&key).await.expect("GET");
            }
        }
    };
    let raw_redis = measure(iterations, redis_get.clone()).await;
    report("raw Redis GET (same connection type)", &raw_redis);

    gate(&app, iterations).await;
    resolve(&app, iterations).await;

    let pk_pool = common::tenant_pool(app.state.config.database.url.expose(), clinic).await;
    let pk_select = {
        let ids = ids.clone();
        move |i: usize| {
            let pool = pk_pool.clone();
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
        let router = patients.clone();
        let token = staff.clone();
        let ids = ids.clone();
        move |i: usize| {
            let router = router.clone();
            let token = token.clone();
            let id = ids[i % 200];
            async move { get(&router, &token, &format!("/patients/{id}")).await }
        }
    };
    let hits = measure(iterations, hit.clone()).await;
    report("GET /patients/{id} cache hit", &hits);

    // Misses: the value is invalidated before each timed request (outside the timing).
    let mut samples = Vec::with_capacity(iterations / 4);
    for i in 0..iterations / 4 {
        let id = ids[i % ids.len()];
        let key = app.state.keys.patient_profile(clinic, id);
        app.state.cache.invalidate(PATIENT_PROFILE, &key).await;
        let started = Instant::now();
        get(&patients, &staff, &format!("/patients/{id}")).await;
        samples.push(started.elapsed());
    }
    let misses = Stats::from(samples, None);
    report("GET /patients/{id} cache miss (load + store)", &misses);

    let dashboard_key = app.state.keys.dashboard(clinic);
    let mut samples = Vec::new();
    for _ in 0..(iterations / 100).clamp(20, 200) {
        app.state.cache.invalidate(DASHBOARD, &dashboard_key).await;
        let started = Instant::now();
        get(&dashboard, &dentist, "/dashboard").await;
        samples.push(started.elapsed());
    }
    let dashboard_misses = Stats::from(samples, None);
    report("GET /dashboard miss (200k appointments)", &dashboard_misses);
    let dashboard_hit = {
        let router = dashboard.clone();
        let token = dentist.clone();
        move |_: usize| {
            let router = router.clone();
            let token = token.clone();
            async move { get(&router, &token, "/dashboard").await }
        }
    };
    let dashboard_hits = measure(iterations / 4, dashboard_hit).await;
    report("GET /dashboard hit", &dashboard_hits);

    // ------------------------------------------------------------------ concurrency
    let mut ratios = Vec::new();
    for callers in [1, 8, 32] {
        header(&format!("throughput, {callers} concurrent"));
        let raw = measure_concurrent(callers, iterations, redis_get.clone()).await;
        report("raw Redis GET", &raw);
        let cached = measure_concurrent(callers, iterations, hit.clone()).await;
        report("GET /patients/{id} cache hit", &cached);
        let pg = measure_concurrent(callers, iterations, pk_select.clone()).await;
        report("raw PostgreSQL PK select", &pg);
        ratios.push((callers, 100.0 * cached.per_second / raw.per_second));
    }

    // ------------------------------------------------------------------ Zipf workload
    let zipf = zipf_workload(&app, &patients, &staff, &ids, iterations * 10).await;
    header("Zipf(1.0) over 20,000 patients, 5 % writes, 8 concurrent");
    report("mixed GET / PATCH /patients/{id}, from cold", &zipf.cold);
    report("mixed GET / PATCH /patients/{id}, warm", &zipf.warm);

    println!();
    println!(
        "cache-hit handler p50 − raw Redis GET p50 = {:.1} µs (target ≤ 100 µs)",
        hits.p50_us - raw_redis.p50_us
    );
    for (callers, ratio) in ratios {
        println!(
            "cache-hit throughput at {callers:>2} concurrent = {ratio:.0} % of raw Redis GET (target ≥ 70 %)"
        );
    }
    println!(
        "dashboard miss p50 = {:.2} ms (target ≤ 10 ms), hit p50 = {:.3} ms (target ≤ 0.2 ms), miss/hit = {:.0}× (target ≥ 50×)",
        dashboard_misses.p50_us / 1000.0,
        dashboard_hits.p50_us / 1000.0,
        dashboard_misses.p50_us / dashboard_hits.p50_us.max(f64::EPSILON)
    );
    println!(
        "Zipf(1.0) hit rate = {:.1} % once warm (target ≥ 90 %); {:.1} % over the first half, from a cold cache",
        zipf.warm_hit_rate * 100.0,
        zipf.cold_hit_rate * 100.0
    );
    println!(
        "patient miss / hit p50 = {:.1}×; raw PK select p50 = {:.1} µs",
        misses.p50_us / hits.p50_us.max(f64::EPSILON),
        raw_pg.p50_us
    );
    println!(
        "reference (Flask + Flask-Caching, same volume): patient hit 630 µs, dashboard miss 15.8 ms, dashboard hit 0.57 ms (27×)"
    );
}

struct ZipfRun {
    cold: Stats,
    warm: Stats,
    cold_hit_rate: f64,
    warm_hit_rate: f64,
}

/// Reads and writes patients chosen by Zipf(1.0) rank (rank 1 the most popular), starting from
/// a cold cache. The hit rate is the cache's own counters (values served from Redis over all
/// reads, misses and early refreshes included), over the first half of the operations (cold:
/// the long tail is met for the first time) and over the second half (warm: what a running
/// clinic sees, where misses come from the 5 % writes invalidating their patient).
async fn zipf_workload(
    app: &TestApp,
    router: &Router,
    token: &str,
    ids: &[PatientId],
    operations: usize,
) -> ZipfRun {
    let zipf = Zipf::new(ids.len() as f64, 1.0).expect("zipf");
    let mut rng = StdRng::seed_from_u64(7);
    let plan: Arc<Vec<(PatientId, bool)>> = Arc::new(
        (0..operations)
            .map(|_| {
                let rank = zipf.sample(&mut rng) as usize;
                let write = rand::Rng::random_bool(&mut rng, WRITE_SHARE);
                (ids[rank.clamp(1, ids.len()) - 1], write)
            })
            .collect(),
    );
    let half = operations / 2;
    let op = |offset: usize| {
        let router = router.clone();
        let token = token.to_string();
        let plan = plan.clone();
        move |i: usize| {
            let router = router.clone();
            let token = token.clone();
            let (id, write) = plan[(offset + i) % plan.len()];
            async move {
                if write {
                    let request = Request::builder()
                        .method(Method::PATCH)
                        .uri(format!("/patients/{id}"))
                        .header("authorization", format!("Bearer {token}"))
                        .header("content-type", "application/json")
                        .body(Body::from(format!(
                            r#"{{"phone": "+34 600 {:06}"}}"#,
                            i % 1_000_000
                        )))
                        .expect("request");
                    let response = router.oneshot(request).await.expect("infallible");
                    assert_eq!(response.status(), 200);
                } else {
                    get(&router, &token, &format!("/patients/{id}")).await;
                }
            }
        }
    };
    // The earlier sections cached a few hundred profiles: start from nothing.
    app.state
        .cache
        .invalidate_clinic(app.clinic_a.id)
        .await
        .expect("invalidate");
    let counted = async || {
        app.state.cache.flush_metrics().await;
        let (stats, _) = app
            .state
            .cache
            .stats(Some(app.clinic_a.id))
            .await
            .expect("stats");
        stats
            .get(PATIENT_PROFILE.name)
            .map(|s| {
                let served = s.hits + s.stale_serves;
                (served, served + s.misses + s.bypasses + s.early_refreshes)
            })
            .unwrap_or_default()
    };
    let rate = |(served_0, reads_0): (u64, u64), (served_1, reads_1): (u64, u64)| {
        (served_1 - served_0) as f64 / (reads_1 - reads_0).max(1) as f64
    };
    let start = counted().await;
    let cold = measure_concurrent(8, half, op(0)).await;
    let middle = counted().await;
    let warm = measure_concurrent(8, operations - half, op(half)).await;
    let end = counted().await;
    ZipfRun {
        cold,
        warm,
        cold_hit_rate: rate(start, middle),
        warm_hit_rate: rate(middle, end),
    }
}

async fn get(router: &Router, token: &str, uri: &str) {
    let request = Request::builder()
        .method(Method::GET)
        .uri(uri)
        .header("authorization", format!("Bearer {token}"))
        .body(Body::empty())
        .expect("request");
    let response = router.clone().oneshot(request).await.expect("infallible");
    assert_eq!(response.status(), 200, "{uri}");
    let _ = response.into_body().collect().await.expect("body");
}

/// The large clinic: 20,000 patients and 200,000 appointments over a year, into clinic A
/// (the same generator as `pulso-devtool seed-large`).
async fn seed_large_clinic(app: &TestApp, clinic: ClinicId) -> (Vec<PatientId>, i64) {
    let options = LargeClinicOptions {
        patients: PATIENTS,
        appointments: APPOINTMENTS,
        reset: false,
    };
    let large = populate(&app.owner, clinic, &options)
        .await
        .expect("generate the large clinic");
    let appointments = large.appointment_count();
    (large.patient_ids, appointments)
}

/// What the rate limiter adds to a request: every authenticated request reads the caller's
/// cached standing (two keys) in one Redis call; the limiter's buckets ride the same call.
/// Measured side by side: that read alone (an MGET), and the gate's script charging both
/// buckets and reading both keys. The difference is the limiter's cost.
async fn gate(app: &TestApp, iterations: usize) {
    let (clinic, user) = (app.clinic_a.id, app.clinic_a.receptionist);
    let reads = [
        app.state.keys.caller_user(clinic, user),
        app.state.keys.caller_clinic(clinic),
    ];
    let redis = app.state.redis.connection().await.expect("redis");
    let mget = {
        let reads = reads.clone();
        move |_: usize| {
            let mut redis = redis.clone();
            let reads = reads.clone();
            async move {
                let _: Vec<Option<String>> = redis.mget(&reads).await.expect("MGET");
            }
        }
    };
    let standing_only = measure(iterations, mget).await;
    report(
        "caller standing read alone (MGET of 2 keys)",
        &standing_only,
    );

    let limiter = Arc::new(RateLimiter::new(
        app.state.redis.clone(),
        app.state.keys.clone(),
        // Quotas no run reaches: every charge is a full one (read, compute, write back).
        RateLimits {
            per_user: Quotas::per_minute(u32::MAX, u32::MAX, u32::MAX, u32::MAX, u32::MAX),
            per_clinic: Quotas::per_minute(u32::MAX, u32::MAX, u32::MAX, u32::MAX, u32::MAX),
        },
    ));
    let charge = move |i: usize| {
        let limiter = limiter.clone();
        let reads = reads.clone();
        let user = UserId(uuid::Uuid::from_u128(i as u128 % 50));
        async move {
            let (verdict, _) = limiter
                .check_and_read(clinic, user, RouteClass::Reads, &reads)
                .await;
            assert!(matches!(verdict, Verdict::Allowed(_)), "{verdict:?}");
        }
    };
    let gated = measure(iterations, charge).await;
    report("gate: 2 buckets charged + the same 2 keys read", &gated);
    println!(
        "{:<52} {:>10.1}   (target ≤ 20 µs)",
        "rate limiter added, p50",
        gated.p50_us - standing_only.p50_us
    );
}

/// The whole gate on a cached standing (token verified, clinic chosen, the one Redis call,
/// judged), three ways: the clinic taken from the token's `clinic_id` claim (as every request
/// did before memberships), named by `Pulso-Clinic` (checked against the person's memberships
/// first), and defaulted to the person's only clinic. The differences are what resolving the
/// caller through their memberships adds. Each way is measured twice, in the order A B C then
/// C B A, and the two runs averaged, so a machine speeding up or slowing down during the run
/// does not favour one way.
async fn resolve(app: &TestApp, iterations: usize) {
    let a = app.clinic_a;
    let claimed = app.token(&a, Role::Receptionist);
    let person = app.token_for(None, a.receptionist, 3600, pulso_tests::JWT_SECRET);
    let ways = [
        ("gate, clinic from the token's claim", claimed, None),
        (
            "gate, clinic named by Pulso-Clinic",
            person.clone(),
            Some(a.id),
        ),
        ("gate, clinic defaulted to the only one", person, None),
    ];
    let mut p50 = [0.0; 3];
    let mut p99 = [0.0; 3];
    for pass in [[0, 1, 2], [2, 1, 0]] {
        for index in pass {
            let (_, token, named) = &ways[index];
            let admit = |_: usize| {
                let access = app.state.access.clone();
                let token = token.clone();
                async move {
                    access
                        .admit(&token, *named, RouteClass::Reads)
                        .await
                        .expect("admitted");
                }
            };
            admit(0).await; // fills the standing and the membership directory
            let stats = measure(iterations / 2, admit).await;
            p50[index] += stats.p50_us / 2.0;
            p99[index] += stats.p99_us / 2.0;
        }
    }
    for (index, (name, _, _)) in ways.iter().enumerate() {
        println!("{name:<52} {:>10.1} {:>10.1}", p50[index], p99[index]);
    }
    for (name, value) in [
        ("memberships added (named), p50", p50[1] - p50[0]),
        ("memberships added (default), p50", p50[2] - p50[0]),
    ] {
        println!("{name:<52} {value:>10.1}   (target ≤ 30 µs)");
    }
}
