//! The agenda's capacity measured on the large clinic (issue 14 §6): ~50 dentists with weekly
//! hours, 20,000 patients and 200,000 appointments (the generator of `pulso-devtool
//! seed-large`), through the real routers, beside a raw Redis GET and a raw tenant-scoped
//! PostgreSQL primary-key select of the same run:
//!
//! - `GET /availability` for 14 days and every dentist: a cold miss (the clinic's schedule
//!   generation bumped before each request, as a change of hours does, so all 14 days are
//!   loaded), the miss a booking causes (its days and the clinic's answers dropped, as
//!   `forget_booking` does after every booking), the miss of a new minute (the answer asked
//!   again, every day still cached) and a hit (the same question within the minute); the cold miss beside the raw select of the same 14 days' appointments, which it
//!   cannot beat;
//! - `GET /availability/next` for one dentist: a cold miss (as above), the miss a booking within
//!   the hour causes (today dropped with the answers) and a hit;
//! - `POST /appointments` with the capacity checks (hours, time off, chair) beside the same
//!   booking made with an admin's `override`, which skips the hours and time-off reads: what
//!   the checks add to a booking.
//!
//! Run: `cargo bench -p pulso-tests --bench availability` (services from
//! infra/scripts/services.sh). `BENCH_ITERATIONS` scales the samples (default 20000; miss rows
//! take 1/100 of it, bookings 1/50). Responses are read but not parsed inside the timings.
//! One caller on a current-thread runtime, as the `schedule` and `appointments` functions run.
//! Prints figures; asserts nothing.

mod common;

use axum::Router;
use axum::body::{Body, Bytes};
use chrono::{DateTime, Duration, Utc};
use common::{Stats, header, iterations, measure, report};
use http::{Method, Request};
use http_body_util::BodyExt;
use pulso_devtool::large_clinic::{LargeClinicOptions, populate};
use redis::AsyncCommands;
use serde_json::{Value, json};
use shared::auth::Role;
use shared::ids::UserId;
use shared::schedule::calendar::Span;
use std::future::Future;
use std::time::Instant;
use tower::ServiceExt;
use uuid::Uuid;

/// A live appointment as the day loader selects it.
type BookedRow = (UserId, Option<Uuid>, DateTime<Utc>, DateTime<Utc>);

fn main() {
    common::block_on_function(run());
}

async fn run() {
    let iterations = iterations();
    let app = common::unlimited_app().await;
    let clinic = app.clinic_a.id;
    let started = Instant::now();
    let large = populate(&app.owner, clinic, &LargeClinicOptions::default())
        .await
        .expect("generate the large clinic");
    println!(
        "Pulso availability benchmark — {} dentists, {} patients, {} appointments generated in \
         {:.1} s; {iterations} samples per hit row",
        large.dentists.len(),
        large.patients,
        large.appointment_count(),
        started.elapsed().as_secs_f64()
    );
    let schedule = shared::schedule::router(app.state.clone());
    let appointments = shared::appointments::router(app.state.clone());
    let desk = app.token(&app.clinic_a, Role::Receptionist);
    let admin = app.token(&app.clinic_a, Role::Admin);
    let dentist = large.dentists[0];
    let today = Utc::now().date_naive();
    let fortnight = format!(
        "/availability?from={today}&to={}&duration=30",
        today + Duration::days(13)
    );
    let next = format!("/availability/next?dentist_id={dentist}&duration=30");
    let forget = || async { app.state.cache.invalidate_schedule(clinic).await.ok() };

    header("raw limits, 1 caller");
    let redis = app.state.redis.connection().await.expect("redis");
    let key = app.state.keys.availability_day(clinic, today).value;
    let raw_redis = measure(iterations, |_| {
        let (mut redis, key) = (redis.clone(), key.clone());
        async move {
            let _: Option<Vec<u8>> = redis.get(&key).await.expect("GET");
        }
    })
    .await;
    report("raw Redis GET", &raw_redis);
    // A hit reads one answer of the fortnight's size: the same GET, of as many bytes.
    let answer_key = format!("{}:bench:answer-sized", app.state.keys.prefix());
    let answer_sized = vec![b'x'; 300 * 1024];
    let _: () = redis
        .clone()
        .set(&answer_key, &answer_sized)
        .await
        .expect("SET");
    let raw_redis_large = measure(iterations, |_| {
        let (mut redis, key) = (redis.clone(), answer_key.clone());
        async move {
            let _: Option<Vec<u8>> = redis.get(&key).await.expect("GET");
        }
    })
    .await;
    report("raw Redis GET of 300 KB", &raw_redis_large);
    let pool = common::tenant_pool(app.state.config.database.url.expose(), clinic).await;
    let patients = large.patient_ids.clone();
    let raw_pg = measure(iterations, |i| {
        let pool = pool.clone();
        let id = patients[i % patients.len()];
        async move {
            let _: (String,) = sqlx::query_as("SELECT first_name FROM patients WHERE id = $1")
                .bind(id)
                .fetch_one(&pool)
                .await
                .expect("pk select");
        }
    })
    .await;
    report("raw PostgreSQL primary-key select", &raw_pg);
    let misses = (iterations / 100).max(10);
    let raw_fortnight = measure(misses, |_| {
        let pool = pool.clone();
        async move {
            let rows: Vec<BookedRow> = sqlx::query_as(
                "SELECT dentist_id, chair_id, starts_at, ends_at FROM appointments
                  WHERE clinic_id = $1 AND status <> 'cancelled' AND starts_at > now() - interval '12 hours'
                    AND starts_at < now() + interval '14 days' AND ends_at > now()",
            )
            .bind(clinic)
            .fetch_all(&pool)
            .await
            .expect("the fortnight's appointments");
            assert!(!rows.is_empty());
        }
    })
    .await;
    report(
        "raw PostgreSQL: the 14 days' live appointments",
        &raw_fortnight,
    );

    header("the large clinic, 1 caller");
    let size = call(&schedule, &desk, Method::GET, &fortnight, None)
        .await
        .len();
    let search_miss = after_each(misses, forget, || {
        call(&schedule, &desk, Method::GET, &fortnight, None)
    })
    .await;
    report(
        "GET /availability, 14 days, all dentists, cold miss",
        &search_miss,
    );
    let tomorrow = Utc::now() + Duration::days(1);
    let booked = Span::new(tomorrow, tomorrow + Duration::minutes(30)).expect("a slot");
    let booked = [booked];
    let book = || shared::schedule::forget_booking(&app.state, clinic, &booked);
    let booking_miss = after_each(misses, book, || {
        call(&schedule, &desk, Method::GET, &fortnight, None)
    })
    .await;
    report(
        "GET /availability, 14 days, miss after a booking",
        &booking_miss,
    );
    // A new minute: the answer is asked again, every day it reads still cached.
    let minute = || shared::schedule::forget_booking(&app.state, clinic, &[]);
    let minute_miss = after_each(misses, minute, || {
        call(&schedule, &desk, Method::GET, &fortnight, None)
    })
    .await;
    report(
        "GET /availability, 14 days, new minute (days cached)",
        &minute_miss,
    );
    let search_hit = measure(iterations / 10, |_| async {
        call(&schedule, &desk, Method::GET, &fortnight, None).await;
    })
    .await;
    report("GET /availability, 14 days, all dentists, hit", &search_hit);

    let next_cold = after_each(misses, forget, || {
        call(&schedule, &desk, Method::GET, &next, None)
    })
    .await;
    report("GET /availability/next, one dentist, cold miss", &next_cold);
    // A booking within the hour: today's free time and every answer of the clinic dropped.
    let soon = Utc::now() + Duration::hours(1);
    let soon = Span::new(soon, soon + Duration::minutes(30)).expect("a slot");
    let soon = [soon];
    let book_soon = || shared::schedule::forget_booking(&app.state, clinic, &soon);
    let next_miss = after_each(misses, book_soon, || {
        call(&schedule, &desk, Method::GET, &next, None)
    })
    .await;
    report(
        "GET /availability/next, one dentist, miss after a booking",
        &next_miss,
    );
    let next_hit = measure(iterations / 10, |_| async {
        call(&schedule, &desk, Method::GET, &next, None).await;
    })
    .await;
    report("GET /availability/next, one dentist, hit", &next_hit);

    // Bookings in free slots, alternating checked and overridden, half an hour apart.
    let found: Value =
        serde_json::from_slice(&call(&schedule, &desk, Method::GET, &fortnight, None).await)
            .expect("the search's JSON");
    let mut slots: Vec<(UserId, DateTime<Utc>)> = Vec::new();
    for entry in found["dentists"].as_array().expect("dentists") {
        let who: UserId = serde_json::from_value(entry["dentist_id"].clone()).expect("id");
        let mut last: Option<DateTime<Utc>> = None;
        for start in entry["starts"].as_array().expect("starts") {
            let at: DateTime<Utc> = serde_json::from_value(start.clone()).expect("instant");
            if last.is_none_or(|last| at >= last + Duration::minutes(30)) {
                slots.push((who, at));
                last = Some(at);
            }
        }
    }
    let bookings = (iterations / 50).clamp(20, slots.len() / 2);
    let mut checked = Vec::with_capacity(bookings);
    let mut overridden = Vec::with_capacity(bookings);
    for (i, (who, at)) in slots.iter().take(bookings * 2).enumerate() {
        let mut body = json!({"patient_id": patients[i % patients.len()], "dentist_id": who,
                              "starts_at": at, "duration_minutes": 30});
        let (token, into) = if i % 2 == 0 {
            (&desk, &mut checked)
        } else {
            body["override"] = json!(true);
            (&admin, &mut overridden)
        };
        let started = Instant::now();
        call(
            &appointments,
            token,
            Method::POST,
            "/appointments",
            Some(&body),
        )
        .await;
        into.push(started.elapsed());
    }
    let checked = Stats::from(checked, None);
    let overridden = Stats::from(overridden, None);
    report("POST /appointments, capacity checked", &checked);
    report(
        "POST /appointments, override (no hours or time off read)",
        &overridden,
    );

    println!();
    println!(
        "availability, 14 days x {} dentists ({:.0} KB): cold miss p50 {:.2} ms (target <= 5 ms; \
         its raw appointment select alone {:.2} ms), miss after a booking {:.2} ms, in a new minute \
         {:.2} ms, hit p50 {:.3} \
         ms (target <= 0.3 ms); next free slot miss after a booking p50 {:.2} ms (target <= 2 ms; \
         cold {:.2} ms), hit {:.3} ms; booking with the checks {:.2} ms vs {:.2} ms overridden = {:.2}x (target <= 1.5x); \
         raw GET {:.3} ms (of 300 KB {:.3} ms), raw PK select {:.3} ms",
        large.dentists.len(),
        size as f64 / 1024.0,
        search_miss.p50_us / 1000.0,
        raw_fortnight.p50_us / 1000.0,
        booking_miss.p50_us / 1000.0,
        minute_miss.p50_us / 1000.0,
        search_hit.p50_us / 1000.0,
        next_miss.p50_us / 1000.0,
        next_cold.p50_us / 1000.0,
        next_hit.p50_us / 1000.0,
        checked.p50_us / 1000.0,
        overridden.p50_us / 1000.0,
        checked.p50_us / overridden.p50_us.max(f64::EPSILON),
        raw_redis.p50_us / 1000.0,
        raw_redis_large.p50_us / 1000.0,
        raw_pg.p50_us / 1000.0,
    );
}

/// `misses` timings of `request`, each made after `drop` (untimed) dropped what it reads.
async fn after_each<D, DF, R, RF, T>(misses: usize, drop: D, request: R) -> Stats
where
    D: Fn() -> DF,
    DF: Future<Output = T>,
    R: Fn() -> RF,
    RF: Future<Output = Bytes>,
{
    let mut samples = Vec::with_capacity(misses);
    for _ in 0..misses {
        drop().await;
        let started = Instant::now();
        request().await;
        samples.push(started.elapsed());
    }
    Stats::from(samples, None)
}

/// The response's body; panics unless it is a 2xx.
async fn call(
    router: &Router,
    token: &str,
    method: Method,
    uri: &str,
    body: Option<&Value>,
) -> Bytes {
    let mut request = Request::builder()
        .method(method)
        .uri(uri)
        .header("authorization", format!("Bearer {token}"));
    let body = match body {
        Some(json) => {
            request = request.header("content-type", "application/json");
            Body::from(json.to_string())
        }
        None => Body::empty(),
    };
    let response = router
        .clone()
        .oneshot(request.body(body).expect("request"))
        .await
        .expect("infallible");
    let status = response.status();
    let bytes = response
        .into_body()
        .collect()
        .await
        .expect("body")
        .to_bytes();
    assert!(
        status.is_success(),
        "{uri}: {status} {}",
        String::from_utf8_lossy(&bytes)
    );
    bytes
}
