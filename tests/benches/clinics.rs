//! What grows with the number of clinics (issue 16 §7), at 10, 100 and 1,000 clinics of
//! `pulso-devtool seed-many`'s mix (each step adds clinics to the last):
//!
//! - the scheduler's tick (`Scheduler::run`, every task, as the `scheduler` function runs it
//!   with its own pool of 4): each tick of a whole dashboard cycle (4 minutes: every clinic's
//!   dashboard refreshed once), its slowest, and the time of each task;
//! - Redis memory per clinic once every dashboard is cached (`MEMORY USAGE` of each key of the
//!   run's prefix, summed by area);
//! - the database time of a request that misses the cache (a patient search of one clinic,
//!   through the real router), from which docs/deploy.md sizes the connections.
//!
//! Beside the raw limits of the same run (a PostgreSQL primary-key select, a Redis GET).
//! Run: `cargo bench -p pulso-tests --bench clinics` (services from infra/scripts/services.sh).
//! `BENCH_CLINIC_STEPS` (10,100,1000) sets the steps. Prints figures; asserts nothing but that
//! no tick task failed.

mod common;

use chrono::{TimeDelta, Utc};
use common::{header, measure, report};
use pulso_devtool::many_clinics::{ManyClinicsOptions, seed_many};
use pulso_tests::{JWT_SECRET, TestApp};
use redis::AsyncCommands;
use shared::ids::UserId;
use shared::scheduler::{Scheduler, Task, TaskOutcome, Tick};
use std::collections::BTreeMap;
use std::time::{Duration, Instant};
use tower::ServiceExt;

/// Ticks of one dashboard cycle (five-minute freshness: every clinic is due once in four).
const CYCLE: i64 = 4;

fn main() {
    common::block_on(run());
}

async fn run() {
    let steps: Vec<usize> = std::env::var("BENCH_CLINIC_STEPS")
        .ok()
        .map(|steps| {
            steps
                .split(',')
                .filter_map(|step| step.trim().parse().ok())
                .collect()
        })
        .unwrap_or_else(|| vec![10, 100, 1_000]);
    let app = common::unlimited_app().await;
    println!("Pulso clinics benchmark — steps {steps:?} of pulso-devtool seed-many's mix");
    raw_limits(&app).await;

    println!();
    println!(
        "{:>8} {:>9} {:>9} {:>9} {:>11} {:>11} {:>9} {:>11} {:>10} {:>12}",
        "clinics",
        "seed s",
        "tick p50",
        "tick max",
        "dashboards",
        "notices",
        "queue",
        "KiB/clinic",
        "Redis MiB",
        "search µs"
    );
    let scheduler = Scheduler::new(app.system_state());
    for clinics in steps {
        let started = Instant::now();
        let seeded = seed_many(
            &app.owner,
            &ManyClinicsOptions {
                clinics,
                reset: false,
            },
        )
        .await
        .expect("seed the clinics");
        let seed_seconds = started.elapsed().as_secs_f64();
        forget_clinic_list(&app).await;
        let ticks = cycle(&scheduler).await;
        let memory = redis_memory(&app).await;
        let search = patient_search(&app, seeded.ids[seeded.ids.len() / 2]).await;
        let total: u64 = memory.values().sum();
        let task_ms = |task: Task| {
            let times: Vec<u64> = ticks
                .iter()
                .map(|tick| {
                    tick.iter()
                        .find(|(done, _)| *done == task)
                        .map_or(0, |(_, ms)| *ms)
                })
                .collect();
            times.iter().sum::<u64>() as f64 / times.len() as f64
        };
        let mut tick_ms: Vec<u64> = ticks
            .iter()
            .map(|tick| tick.iter().map(|(_, ms)| ms).sum())
            .collect();
        tick_ms.sort_unstable();
        println!(
            "{:>8} {:>9.1} {:>7} ms {:>6} ms {:>8.0} ms {:>8.0} ms {:>6.0} ms {:>11.1} {:>10.1} {:>12.0}",
            seeded.ids.len(),
            seed_seconds,
            tick_ms[tick_ms.len() / 2],
            tick_ms[tick_ms.len() - 1],
            task_ms(Task::RefreshDashboards),
            task_ms(Task::AppointmentNotices),
            task_ms(Task::MaintainQueue) + task_ms(Task::ReportQueue),
            total as f64 / 1024.0 / seeded.ids.len() as f64,
            total as f64 / 1024.0 / 1024.0,
            search,
        );
        let areas: Vec<String> = memory
            .iter()
            .map(|(area, bytes)| format!("{area} {:.1} KiB", *bytes as f64 / 1024.0))
            .collect();
        println!("{:>8} Redis by area: {}", "", areas.join(", "));
    }
}

/// A PostgreSQL primary-key select and a Redis GET, one caller.
async fn raw_limits(app: &TestApp) {
    header("raw limits, 1 caller");
    let db = app.state.db.clone();
    let clinic = app.clinic_a.id;
    let select = measure(2_000, |_| {
        let db = db.clone();
        async move {
            let mut tx = shared::db::begin_tenant(&db, clinic).await.expect("tx");
            let _: Option<uuid::Uuid> = sqlx::query_scalar("SELECT id FROM clinics WHERE id = $1")
                .bind(clinic)
                .fetch_optional(&mut *tx)
                .await
                .expect("select");
            tx.commit().await.expect("commit");
        }
    })
    .await;
    report(
        "raw PostgreSQL PK select (in a tenant transaction)",
        &select,
    );
    let redis = app.state.redis.connection().await.expect("redis");
    let get = measure(2_000, |_| {
        let mut redis = redis.clone();
        async move {
            let _: Option<Vec<u8>> = redis.get("bench:clinics:none").await.expect("GET");
        }
    })
    .await;
    report("raw Redis GET", &get);
}

/// The scheduler lists clinics through a day-long cache: a step's new clinics join it as a
/// clinic created in production would (its list invalidated).
async fn forget_clinic_list(app: &TestApp) {
    let key = app.state.keys.clinic_list();
    let mut redis = app.redis().await;
    let _: () = redis.del(&key.value).await.expect("forget the clinic list");
}

/// One dashboard cycle of ticks, a minute apart; each tick's task times (ms).
async fn cycle(scheduler: &Scheduler) -> Vec<Vec<(Task, u64)>> {
    let start = Utc::now();
    let mut ticks = Vec::new();
    for minute in 0..CYCLE {
        let report = scheduler
            .run(Tick {
                at: start + TimeDelta::minutes(minute),
                stop_at: tokio::time::Instant::now() + Duration::from_secs(50),
            })
            .await;
        assert!(report.failed_tasks().is_empty(), "{report:?}");
        for task in &report.tasks {
            if let TaskOutcome::Dashboards(done) = &task.outcome {
                assert_eq!((done.failed, done.out_of_time), (0, 0), "{done:?}");
            }
        }
        ticks.push(
            report
                .tasks
                .iter()
                .map(|task| (task.task, task.duration_ms))
                .collect(),
        );
    }
    ticks
}

/// Bytes Redis holds for this run's keys, by area (the key's second segment: cache, queue…,
/// and for the cache the cache's name).
async fn redis_memory(app: &TestApp) -> BTreeMap<String, u64> {
    let mut redis = app.redis().await;
    let mut cursor: u64 = 0;
    let mut areas: BTreeMap<String, u64> = BTreeMap::new();
    loop {
        let (next, keys): (u64, Vec<String>) = redis::cmd("SCAN")
            .arg(cursor)
            .arg("MATCH")
            .arg(format!("{}:*", app.redis_prefix))
            .arg("COUNT")
            .arg(1_000)
            .query_async(&mut redis)
            .await
            .expect("SCAN");
        for key in keys {
            let bytes: Option<u64> = redis::cmd("MEMORY")
                .arg("USAGE")
                .arg(&key)
                .query_async(&mut redis)
                .await
                .expect("MEMORY USAGE");
            *areas.entry(area_of(&app.redis_prefix, &key)).or_default() += bytes.unwrap_or(0);
        }
        cursor = next;
        if cursor == 0 {
            return areas;
        }
    }
}

/// `cache:dashboard` for `<prefix>:cache:{<clinic>}:dashboard:v1`, `queue` for a queue key.
fn area_of(prefix: &str, key: &str) -> String {
    let rest = key
        .strip_prefix(prefix)
        .unwrap_or(key)
        .trim_start_matches(':');
    let mut parts = rest.split(':');
    let area = parts.next().unwrap_or("?").to_owned();
    if area == "cache" {
        let name = parts
            .nth(1)
            .filter(|name| !name.starts_with('{'))
            .unwrap_or("?");
        format!("cache:{name}")
    } else {
        area
    }
}

/// The p50 of a patient search that misses the cache (`GET /patients?search=…`, the router
/// whole), in µs: the database time a request holds a connection for, at most.
async fn patient_search(app: &TestApp, clinic: shared::ids::ClinicId) -> f64 {
    let staff: uuid::Uuid = {
        let mut tx = app.owner_tx(clinic).await;
        let user = sqlx::query_scalar(
            "SELECT user_id FROM memberships WHERE clinic_id = $1 AND role = 'receptionist' LIMIT 1",
        )
        .bind(clinic)
        .fetch_one(&mut *tx)
        .await
        .expect("a receptionist");
        tx.rollback().await.ok();
        user
    };
    let token = app.token_for(Some(clinic), UserId(staff), 3600, JWT_SECRET);
    let router = shared::patients::router(app.state.clone());
    let letters = ["ga", "ma", "lo", "ro", "fe", "san", "mar", "al"];
    let stats = measure(400, |i| {
        let router = router.clone();
        let uri = format!("/patients?search={}", letters[i % letters.len()]);
        let token = token.clone();
        async move {
            let request = http::Request::get(uri)
                .header("authorization", format!("Bearer {token}"))
                .body(axum::body::Body::empty())
                .expect("request");
            let response = router.oneshot(request).await.expect("response");
            assert_eq!(response.status(), 200);
        }
    })
    .await;
    stats.p50_us
}
