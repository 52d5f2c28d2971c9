//! A chain's dashboard at 100 clinics (issue 13 §2: "it stays fast for 100 clinics"): an
//! organization of 100 clinics, each a small clinic of the large-clinic generator (500
//! patients, 2,000 appointments over a year, its own dentists), read by its organization admin
//! through the real router. Measured beside the raw limits of the same run (a Redis GET and a
//! PostgreSQL primary-key select):
//!
//! - `GET /organization/dashboard` on a hit (one Redis read, whatever the number of clinics);
//! - on a miss of the rollup while the clinics' own dashboards are cached (the usual miss: the
//!   scheduler keeps every clinic's dashboard warm);
//! - on a miss of everything (the rollup and all 100 clinics' dashboards computed: the worst
//!   case, e.g. right after a Redis flush);
//! - `GET /organization` (the clinics listed, not cached).
//!
//! Run: `cargo bench -p pulso-tests --bench organization` (services from
//! infra/scripts/services.sh). `BENCH_ITERATIONS` scales the samples (default 20000; the miss
//! rows take 1/200 of it, at least 10). `BENCH_CLINICS` (100) sizes the chain. One caller on a
//! current-thread runtime, as the `dashboard` function runs. Prints figures; asserts nothing.

mod common;

use axum::Router;
use axum::body::Body;
use common::{Stats, header, iterations, measure, report};
use http::{Method, Request};
use http_body_util::BodyExt;
use pulso_devtool::large_clinic::{LargeClinicOptions, populate};
use pulso_tests::{JWT_SECRET, TestApp};
use redis::AsyncCommands;
use shared::cache::{DASHBOARD, ORGANIZATION_DASHBOARD};
use shared::ids::{ClinicId, OrganizationId, UserId};
use std::time::{Duration, Instant};
use tower::ServiceExt;

const PATIENTS_PER_CLINIC: usize = 500;
const APPOINTMENTS_PER_CLINIC: usize = 2_000;

fn main() {
    common::block_on_function(run());
}

async fn run() {
    let iterations = iterations();
    let clinics_wanted: usize = std::env::var("BENCH_CLINICS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(100);
    // The hit rows send far more than an organization admin's reads a minute.
    let app = common::unlimited_app().await;

    let started = Instant::now();
    let (organization, clinics) = build_chain(&app, clinics_wanted).await;
    let admin = name_organization_admin(&app, organization).await;
    println!(
        "Pulso organization benchmark — {} clinics of {PATIENTS_PER_CLINIC} patients and \
         {APPOINTMENTS_PER_CLINIC} appointments each, generated in {:.1} s; {iterations} samples \
         per hit row",
        clinics.len(),
        started.elapsed().as_secs_f64()
    );
    let token = app.token_for(None, admin, 3600, JWT_SECRET);
    let dashboards = shared::dashboard::router(app.state.clone());
    let overview = shared::clinics::router(app.state.clone());
    let rollup_key = app.state.keys.organization_dashboard(organization);

    // Warm: connections, statements, every clinic's dashboard and the rollup.
    let size = get(&dashboards, &token, "/organization/dashboard").await;
    get(&overview, &token, "/organization").await;

    header("raw limits, 1 caller");
    let redis = app.state.redis.connection().await.expect("redis");
    let raw_key = rollup_key.value.clone();
    let raw_redis = measure(iterations, |_| {
        let mut redis = redis.clone();
        let key = raw_key.clone();
        async move {
            let _: Option<Vec<u8>> = redis.get(&key).await.expect("GET");
        }
    })
    .await;
    report("raw Redis GET (the rollup's key)", &raw_redis);
    let a = app.clinic_a.id;
    let pool = common::tenant_pool(app.state.config.database.url.expose(), a).await;
    let raw_pg = measure(iterations, |_| {
        let pool = pool.clone();
        async move {
            let _: (String,) = sqlx::query_as("SELECT name FROM clinics WHERE id = $1")
                .bind(a)
                .fetch_one(&pool)
                .await
                .expect("pk select");
        }
    })
    .await;
    report("raw PostgreSQL primary-key select", &raw_pg);

    header(&format!(
        "an organization of {} clinics, its admin, 1 caller",
        clinics.len()
    ));
    let hits = measure(iterations, |_| async {
        get(&dashboards, &token, "/organization/dashboard").await;
    })
    .await;
    report("GET /organization/dashboard hit", &hits);

    let misses = (iterations / 200).max(10);
    let mut samples = Vec::with_capacity(misses);
    for _ in 0..misses {
        app.state
            .cache
            .invalidate(ORGANIZATION_DASHBOARD, &rollup_key)
            .await;
        samples.push(timed(get(&dashboards, &token, "/organization/dashboard")).await);
    }
    let warm_miss = Stats::from(samples, None);
    report("miss, the clinics' dashboards cached", &warm_miss);

    let mut samples = Vec::with_capacity(misses);
    for _ in 0..misses {
        for clinic in &clinics {
            let key = app.state.keys.dashboard(*clinic);
            app.state.cache.invalidate(DASHBOARD, &key).await;
        }
        app.state
            .cache
            .invalidate(ORGANIZATION_DASHBOARD, &rollup_key)
            .await;
        samples.push(timed(get(&dashboards, &token, "/organization/dashboard")).await);
    }
    let cold_miss = Stats::from(samples, None);
    report(
        "miss of everything (100 clinic dashboards computed)",
        &cold_miss,
    );

    let listing = measure(iterations / 20, |_| async {
        get(&overview, &token, "/organization").await;
    })
    .await;
    report("GET /organization (clinics listed, uncached)", &listing);

    println!();
    println!(
        "rollup of {} clinics ({:.0} KB of JSON): hit p50 {:.3} ms (raw GET {:.3} ms), miss p50 \
         {:.1} ms with the clinics cached, {:.0} ms with none cached; raw PK select {:.3} ms",
        clinics.len(),
        size as f64 / 1024.0,
        hits.p50_us / 1000.0,
        raw_redis.p50_us / 1000.0,
        warm_miss.p50_us / 1000.0,
        cold_miss.p50_us / 1000.0,
        raw_pg.p50_us / 1000.0,
    );
}

/// `clinics` clinics in clinic A's organization: A and the rest added, each filled by the
/// large-clinic generator at a small clinic's size. Returns the organization and the clinics.
async fn build_chain(app: &TestApp, clinics: usize) -> (OrganizationId, Vec<ClinicId>) {
    let a = app.clinic_a.id;
    let mut tx = app.owner_tx(a).await;
    let organization: OrganizationId =
        sqlx::query_scalar("SELECT organization_id FROM clinics WHERE id = $1")
            .bind(a)
            .fetch_one(&mut *tx)
            .await
            .expect("clinic A's organization");
    tx.rollback().await.ok();
    let options = LargeClinicOptions {
        patients: PATIENTS_PER_CLINIC,
        appointments: APPOINTMENTS_PER_CLINIC,
        reset: false,
    };
    let mut ids = vec![a];
    for n in 1..clinics {
        ids.push(app.add_clinic(&format!("cadena-{n:03}")).await.id);
    }
    for clinic in &ids {
        let mut tx = shared::db::begin_platform(&app.owner, *clinic)
            .await
            .expect("platform transaction");
        sqlx::query("UPDATE clinics SET organization_id = $1 WHERE id = $2")
            .bind(organization)
            .bind(clinic)
            .execute(&mut *tx)
            .await
            .expect("join the chain");
        tx.commit().await.expect("commit");
        populate(&app.owner, *clinic, &options)
            .await
            .expect("fill the clinic");
    }
    (organization, ids)
}

/// A person on no clinic's staff, made the organization's admin.
async fn name_organization_admin(app: &TestApp, organization: OrganizationId) -> UserId {
    let admin = UserId::new_random();
    let mut tx = shared::db::begin_platform(&app.owner, app.clinic_a.id)
        .await
        .expect("platform transaction");
    sqlx::query("INSERT INTO users (id, email, full_name) VALUES ($1, $2, 'Dirección')")
        .bind(admin)
        .bind(format!("direccion-{admin}@cadena.example"))
        .execute(&mut *tx)
        .await
        .expect("the admin");
    sqlx::query("INSERT INTO organization_admins (organization_id, user_id) VALUES ($1, $2)")
        .bind(organization)
        .bind(admin)
        .execute(&mut *tx)
        .await
        .expect("name the admin");
    tx.commit().await.expect("commit");
    admin
}

/// The response body's size; panics on anything but 200.
async fn get(router: &Router, token: &str, uri: &str) -> usize {
    let request = Request::builder()
        .method(Method::GET)
        .uri(uri)
        .header("authorization", format!("Bearer {token}"))
        .body(Body::empty())
        .expect("request");
    let response = router.clone().oneshot(request).await.expect("infallible");
    assert_eq!(response.status(), 200, "{uri}");
    response
        .into_body()
        .collect()
        .await
        .expect("body")
        .to_bytes()
        .len()
}

async fn timed(request: impl std::future::Future<Output = usize>) -> Duration {
    let started = Instant::now();
    request.await;
    started.elapsed()
}
