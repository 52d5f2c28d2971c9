//! `GET /dashboard` and the scheduler's refresh, through the real router, PostgreSQL and Redis.
//!
//! The figures are checked on a hand-made clinic at a fixed instant (`DashboardService::compute`
//! with `now`), so month and day boundaries are the test's choice, not the calendar's; the HTTP
//! tests use the real clock and only figures that cannot straddle a boundary.

use chrono::{DateTime, NaiveDate, TimeDelta, Utc};
use pulso_tests::{AppointmentSeed, TestApp, TestClinic};
use serde_json::Value;
use shared::auth::Role;
use shared::dashboard::{Dashboard, DashboardService, StatusCounts};
use shared::ids::{ClinicId, PatientId, UserId};
use shared::scheduler::{Scheduler, TaskOutcome, Tick};
use tokio::time::Instant;

const MADRID: &str = "Europe/Madrid";

fn utc(rfc3339: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(rfc3339)
        .unwrap_or_else(|_| panic!("not a time: {rfc3339}"))
        .with_timezone(&Utc)
}

fn date(raw: &str) -> NaiveDate {
    raw.parse().unwrap_or_else(|_| panic!("not a date: {raw}"))
}

/// A local wall-clock time in `timezone`, as PostgreSQL (the dashboard's judge) reads it.
async fn local(app: &TestApp, timezone: &str, wall_clock: &str) -> DateTime<Utc> {
    sqlx::query_scalar("SELECT $1::timestamp AT TIME ZONE $2")
        .bind(wall_clock)
        .bind(timezone)
        .fetch_one(&app.owner)
        .await
        .expect("local time")
}

async fn archive(app: &TestApp, clinic: ClinicId, patient: PatientId) {
    let mut tx = app.owner_tx(clinic).await;
    sqlx::query("UPDATE patients SET archived_at = now() WHERE clinic_id = $1 AND id = $2")
        .bind(clinic)
        .bind(patient)
        .execute(&mut *tx)
        .await
        .expect("archive patient");
    tx.commit().await.expect("commit archive");
}

/// A clinic's own price for a procedure (`None`: an override that renames, not reprices).
async fn price_override(app: &TestApp, clinic: ClinicId, code: &str, price: Option<i64>) {
    let mut tx = app.owner_tx(clinic).await;
    sqlx::query(
        "INSERT INTO catalog_items (clinic_id, kind, code, name, price_cents)
         VALUES ($1, 'procedure', $2, 'Precio de la clínica', $3)",
    )
    .bind(clinic)
    .bind(code)
    .bind(price)
    .execute(&mut *tx)
    .await
    .expect("insert override");
    tx.commit().await.expect("commit override");
}

async fn global_price(app: &TestApp, code: &str) -> i64 {
    sqlx::query_scalar(
        "SELECT price_cents FROM catalog_items
          WHERE clinic_id IS NULL AND kind = 'procedure' AND code = $1",
    )
    .bind(code)
    .fetch_one(&app.owner)
    .await
    .unwrap_or_else(|error| panic!("the migrations seed a global {code}: {error}"))
}

async fn compute(app: &TestApp, clinic: ClinicId, now: DateTime<Utc>) -> Dashboard {
    DashboardService::new(&app.state)
        .compute(clinic, now)
        .await
        .expect("compute the dashboard")
        .expect("the clinic exists")
}

async fn get_dashboard(
    app: &TestApp,
    clinic: &TestClinic,
    role: Role,
) -> pulso_tests::TestResponse {
    let router = shared::dashboard::router(app.state.clone());
    let token = app.token(clinic, role);
    app.client(&router, &token).get("/dashboard").await
}

/// Clinic A's agenda around Wednesday 2026-03-18 (Madrid), its prices and new patients, and
/// clinic B's day that must stay out of A's figures.
async fn seed_march_in_madrid(app: &TestApp, now: DateTime<Utc>) {
    let (a, b) = (app.clinic_a, app.clinic_b);
    let old = now - TimeDelta::days(400);
    let p = app.seed_patient_created_at(a.id, old).await;
    let d1 = a.dentist;
    let d2 = a.second_dentist;

    // (Madrid wall clock, dentist, minutes, status, procedure)
    let agenda = [
        // Today, in Madrid. 00:15 is still the 17th in UTC; 23:30 is still the 18th.
        ("2026-03-18 00:15", d1, 45, "completed", Some("EXT")),
        ("2026-03-18 09:00", d1, 30, "completed", Some("REV")),
        ("2026-03-18 10:00", d1, 45, "no_show", Some("LIMP")),
        ("2026-03-18 12:00", d2, 45, "confirmed", Some("EMP")),
        ("2026-03-18 13:00", d2, 60, "scheduled", Some("ENDO")),
        ("2026-03-18 16:00", d1, 30, "cancelled", Some("REV")),
        ("2026-03-18 23:30", d1, 30, "scheduled", None),
        // Tomorrow in Madrid although still the 18th in UTC (23:30Z).
        ("2026-03-19 00:30", d2, 30, "scheduled", None),
        // The last of the seven days, and the first day after them.
        ("2026-03-24 10:00", d2, 30, "scheduled", None),
        ("2026-03-25 10:00", d2, 30, "scheduled", None),
        // Yesterday: in the 30 days, not in today or the seven days.
        ("2026-03-17 10:00", d1, 30, "cancelled", None),
        // Earlier this month (in Madrid), and just before it.
        ("2026-03-10 09:00", d1, 30, "completed", Some("REV")),
        ("2026-03-10 09:00", d2, 30, "completed", Some("REV")),
        ("2026-03-12 09:00", d1, 30, "completed", None),
        ("2026-03-13 09:00", d1, 30, "completed", Some("NOPE")),
        ("2026-03-01 00:30", d2, 45, "completed", Some("LIMP")),
        ("2026-02-28 23:30", d2, 45, "completed", Some("LIMP")),
        ("2026-03-02 09:00", d1, 30, "no_show", Some("REV")),
        ("2026-03-05 09:00", d1, 30, "cancelled", Some("REV")),
        ("2026-03-16 09:00", d1, 30, "scheduled", Some("REV")),
        ("2026-02-20 09:00", d1, 30, "completed", Some("EXT")),
        // Over 30 days ago.
        ("2026-02-10 09:00", d1, 30, "no_show", Some("REV")),
    ];
    for (wall_clock, dentist, minutes, status, procedure) in agenda {
        let starts_at = local(app, MADRID, wall_clock).await;
        let seed = AppointmentSeed {
            patient: p,
            dentist,
            starts_at,
            minutes,
            status,
            procedure,
        };
        app.seed_appointment(a.id, seed).await;
    }

    // Prices: the clinic's REV override wins; its LIMP override sets no price, so the global
    // price stands; clinic B's override must not leak into A.
    price_override(app, a.id, "REV", Some(4_000)).await;
    price_override(app, a.id, "LIMP", None).await;
    price_override(app, b.id, "REV", Some(99_999)).await;

    // New patients: 2 and 6 days ago (and one archived 3 days ago), 10 and 29 days ago, 40.
    for days in [2, 6, 10, 29, 40] {
        app.seed_patient_created_at(a.id, now - TimeDelta::days(days))
            .await;
    }
    let duplicate = app
        .seed_patient_created_at(a.id, now - TimeDelta::days(3))
        .await;
    archive(app, a.id, duplicate).await;

    // Clinic B's day must stay out of A's figures.
    let pb = app
        .seed_patient_created_at(b.id, now - TimeDelta::days(1))
        .await;
    for (wall_clock, status) in [
        ("2026-03-18 09:00", "no_show"),
        ("2026-03-11 09:00", "completed"),
    ] {
        let starts_at = local(app, MADRID, wall_clock).await;
        let seed = AppointmentSeed {
            patient: pb,
            dentist: b.dentist,
            starts_at,
            minutes: 30,
            status,
            procedure: Some("REV"),
        };
        app.seed_appointment(b.id, seed).await;
    }
}

#[tokio::test]
async fn figures_follow_the_clinic_calendar_prices_and_statuses() {
    let app = TestApp::spawn().await;
    let a = app.clinic_a;
    let b = app.clinic_b;
    // Wednesday 2026-03-18, 11:00 in Madrid (UTC+1 until the end of March).
    let now = utc("2026-03-18T10:00:00Z");
    seed_march_in_madrid(&app, now).await;
    let (d1, d2) = (a.dentist, a.second_dentist);

    let dashboard = compute(&app, a.id, now).await;
    assert_eq!(dashboard.generated_at, now);
    assert_eq!(dashboard.timezone, MADRID);

    let today = &dashboard.appointments_today;
    assert_eq!(today.date, date("2026-03-18"));
    assert_eq!(
        today.by_status,
        StatusCounts {
            scheduled: 2,
            confirmed: 1,
            completed: 2,
            cancelled: 1,
            no_show: 1,
        }
    );
    assert_eq!(today.total, 7);

    let load = &dashboard.load_next_7_days;
    assert_eq!(
        (load.from, load.to),
        (date("2026-03-18"), date("2026-03-24"))
    );
    let names: Vec<&str> = load.dentists.iter().map(|d| d.name.as_str()).collect();
    assert_eq!(names, ["Test dentist", "Test dentist2"]);
    let first = &load.dentists[0];
    assert_eq!(first.dentist_id, d1);
    // 00:15 (45), 09:00 (30), 10:00 (45, a no-show still took the time), 23:30 (30); the
    // cancelled 16:00 frees its slot.
    assert_eq!((first.appointments, first.booked_minutes), (4, 150));
    assert_eq!(first.days.len(), 7);
    assert_eq!(
        (
            first.days[0].date,
            first.days[0].appointments,
            first.days[0].booked_minutes
        ),
        (date("2026-03-18"), 4, 150)
    );
    assert!(
        first.days[1..]
            .iter()
            .all(|day| day.appointments == 0 && day.booked_minutes == 0)
    );
    let second = &load.dentists[1];
    assert_eq!(second.dentist_id, d2);
    let per_day: Vec<(i64, i64)> = second
        .days
        .iter()
        .map(|day| (day.appointments, day.booked_minutes))
        .collect();
    assert_eq!(
        per_day,
        [(2, 105), (1, 30), (0, 0), (0, 0), (0, 0), (0, 0), (1, 30)]
    );
    assert_eq!(second.days[6].date, date("2026-03-24"));
    assert_eq!((second.appointments, second.booked_minutes), (4, 165));

    // Closed in the 30 days before now: today 00:15, 09:00 and the 10:00 no-show, the 10th
    // (two), the 12th, the 13th, 1 March, 28 February (in Madrid), the 2nd's no-show and
    // 20 February. Cancelled, still-open, older and clinic B's appointments are left out.
    let no_shows = &dashboard.no_show_rate_30_days;
    assert_eq!((no_shows.no_shows, no_shows.closed_appointments), (2, 11));
    assert_eq!(no_shows.rate, Some(0.1818));
    assert_eq!(no_shows.since, now - TimeDelta::days(30));

    assert_eq!(
        (
            dashboard.new_patients.last_7_days,
            dashboard.new_patients.last_30_days
        ),
        (2, 4)
    );

    // Completed in March (Madrid): EXT and REV today, REV twice on the 10th (the clinic's
    // 40.00), LIMP on 1 March at 00:30 (global price; still 28 February in UTC), and two
    // without a price (no procedure; an unknown code). 28 February 23:30 is February's.
    let revenue = &dashboard.estimated_revenue_this_month;
    assert_eq!(revenue.month, "2026-03");
    assert_eq!(revenue.currency, "EUR");
    assert_eq!(revenue.completed_appointments, 7);
    assert_eq!(revenue.unpriced_appointments, 2);
    assert_eq!(
        revenue.amount_cents,
        global_price(&app, "EXT").await + 3 * 4_000 + global_price(&app, "LIMP").await
    );

    // Clinic B sees only its own: its dentists, its no-show, its own REV price.
    let other = compute(&app, b.id, now).await;
    assert_eq!(other.appointments_today.total, 1);
    assert_eq!(other.appointments_today.by_status.no_show, 1);
    let ids: Vec<UserId> = other
        .load_next_7_days
        .dentists
        .iter()
        .map(|d| d.dentist_id)
        .collect();
    assert_eq!(ids, [b.dentist, b.second_dentist]);
    assert_eq!(
        (
            other.no_show_rate_30_days.no_shows,
            other.no_show_rate_30_days.closed_appointments
        ),
        (1, 2)
    );
    assert_eq!(other.estimated_revenue_this_month.amount_cents, 99_999);
    assert_eq!(other.new_patients.last_30_days, 1);
}

#[tokio::test]
async fn an_empty_clinic_has_zeros_and_no_rate() {
    let app = TestApp::spawn().await;
    let dashboard = compute(&app, app.clinic_a.id, Utc::now()).await;
    assert_eq!(
        dashboard.appointments_today.by_status,
        StatusCounts::default()
    );
    assert_eq!(dashboard.no_show_rate_30_days.rate, None);
    assert_eq!(dashboard.estimated_revenue_this_month.amount_cents, 0);
    assert_eq!(dashboard.estimated_revenue_this_month.currency, "EUR");
    // Every active dentist is listed, with seven empty days.
    assert_eq!(dashboard.load_next_7_days.dentists.len(), 2);
    assert!(
        dashboard
            .load_next_7_days
            .dentists
            .iter()
            .all(|d| d.days.len() == 7 && d.appointments == 0)
    );
    // A clinic that does not exist has no dashboard (not someone else's).
    let missing = DashboardService::new(&app.state)
        .compute(ClinicId::new_random(), Utc::now())
        .await
        .expect("query");
    assert!(missing.is_none());
}

#[tokio::test]
async fn a_clinic_in_another_time_zone_has_its_own_today() {
    let app = TestApp::spawn().await;
    let a = app.clinic_a;
    let mut tx = app.owner_tx(a.id).await;
    sqlx::query("UPDATE clinics SET timezone = 'America/New_York' WHERE id = $1")
        .bind(a.id)
        .execute(&mut *tx)
        .await
        .expect("set time zone");
    tx.commit().await.expect("commit");
    let p = app
        .seed_patient_created_at(a.id, Utc::now() - TimeDelta::days(100))
        .await;
    // 2026-11-23 at 23:30 in New York is 04:30 on the 24th in UTC.
    let late = local(&app, "America/New_York", "2026-11-23 23:30").await;
    assert_eq!(late, utc("2026-11-24T04:30:00Z"));
    let seed = AppointmentSeed {
        patient: p,
        dentist: a.dentist,
        starts_at: late,
        minutes: 30,
        status: "scheduled",
        procedure: None,
    };
    app.seed_appointment(a.id, seed).await;

    let dashboard = compute(&app, a.id, utc("2026-11-23T20:00:00Z")).await;
    assert_eq!(dashboard.timezone, "America/New_York");
    assert_eq!(dashboard.appointments_today.date, date("2026-11-23"));
    assert_eq!(dashboard.appointments_today.by_status.scheduled, 1);
    // Seen from the next New York day, it is yesterday's.
    let next_day = compute(&app, a.id, utc("2026-11-24T12:00:00Z")).await;
    assert_eq!(next_day.appointments_today.date, date("2026-11-24"));
    assert_eq!(next_day.appointments_today.total, 0);
}

#[tokio::test]
async fn admins_and_dentists_read_the_dashboard_reception_does_not() {
    let app = TestApp::spawn().await;
    let a = app.clinic_a;
    for role in [Role::Admin, Role::Dentist] {
        let response = get_dashboard(&app, &a, role).await;
        assert_eq!(response.status, 200, "{role:?}: {}", response.body);
        let body = &response.body;
        for section in [
            "generated_at",
            "timezone",
            "appointments_today",
            "load_next_7_days",
            "no_show_rate_30_days",
            "new_patients",
            "estimated_revenue_this_month",
        ] {
            assert!(!body[section].is_null(), "{section} missing: {body}");
        }
        let by_status = body["appointments_today"]["by_status"]
            .as_object()
            .expect("by_status");
        let mut statuses: Vec<&str> = by_status.keys().map(String::as_str).collect();
        statuses.sort_unstable();
        assert_eq!(
            statuses,
            [
                "cancelled",
                "completed",
                "confirmed",
                "no_show",
                "scheduled"
            ]
        );
        assert!(by_status.values().all(|count| count == 0));
        let dentists = body["load_next_7_days"]["dentists"]
            .as_array()
            .expect("dentists");
        assert_eq!(dentists.len(), 2);
        assert_eq!(dentists[0]["days"].as_array().map(Vec::len), Some(7));
        assert!(dentists[0]["dentist_id"].is_string() && dentists[0]["name"].is_string());
        let no_shows = &body["no_show_rate_30_days"];
        assert_eq!(
            (
                no_shows["no_shows"].as_i64(),
                no_shows["closed_appointments"].as_i64()
            ),
            (Some(0), Some(0))
        );
        assert!(no_shows["rate"].is_null());
        let revenue = &body["estimated_revenue_this_month"];
        assert_eq!(revenue["amount_cents"].as_i64(), Some(0));
        assert_eq!(revenue["currency"], "EUR");
    }

    let refused = get_dashboard(&app, &a, Role::Receptionist).await;
    let problem = refused.problem(403);
    assert_eq!(problem["type"], "/problems/forbidden");
    assert!(
        problem["detail"]
            .as_str()
            .is_some_and(|d| d.contains("admin") && d.contains("dentist"))
    );

    let router = shared::dashboard::router(app.state.clone());
    let anonymous = app.anonymous(&router).get("/dashboard").await;
    assert_eq!(anonymous.problem(401)["type"], "/problems/unauthorized");
    let wrong_method = app
        .client(&router, &app.token(&a, Role::Admin))
        .post_empty("/dashboard")
        .await;
    wrong_method.problem(405);
}

#[tokio::test]
async fn a_second_read_is_served_from_the_cache_until_a_refresh() {
    let app = TestApp::spawn().await;
    let a = app.clinic_a;
    let first = get_dashboard(&app, &a, Role::Admin).await;
    assert_eq!(first.status, 200, "{}", first.body);
    assert_eq!(first.body["new_patients"]["last_7_days"], 0);

    // Written straight to PostgreSQL: nothing tells the cache.
    app.seed_patient_created_at(a.id, Utc::now() - TimeDelta::hours(1))
        .await;
    let second = get_dashboard(&app, &a, Role::Dentist).await;
    assert_eq!(second.status, 200, "{}", second.body);
    assert_eq!(
        second.body["new_patients"]["last_7_days"], 0,
        "served from the cache"
    );
    assert_eq!(second.body["generated_at"], first.body["generated_at"]);

    // Another clinic's dashboard is its own value, not A's.
    let other = get_dashboard(&app, &app.clinic_b, Role::Admin).await;
    assert_eq!(other.status, 200, "{}", other.body);
    assert_ne!(
        other.body["load_next_7_days"],
        first.body["load_next_7_days"]
    );

    let refreshed = DashboardService::new(&app.state)
        .refresh(a.id)
        .await
        .expect("refresh");
    assert!(refreshed);
    let third = get_dashboard(&app, &a, Role::Admin).await;
    assert_eq!(third.body["new_patients"]["last_7_days"], 1);
    assert_ne!(third.body["generated_at"], first.body["generated_at"]);
}

fn dashboards(outcome: &TaskOutcome) -> &shared::dashboard::refresh::RefreshReport {
    match outcome {
        TaskOutcome::Dashboards(report) => report,
        other => panic!("the dashboard task did not run: {other:?}"),
    }
}

#[tokio::test]
async fn the_scheduler_refreshes_every_active_clinic_once_per_cycle() {
    let app = TestApp::spawn().await;
    let (a, b) = (app.clinic_a, app.clinic_b);
    // A third, archived clinic: not active, never refreshed.
    let archived = app.add_clinic("cerrada").await.id;
    let mut tx = app.owner_tx(archived).await;
    sqlx::query("UPDATE clinics SET archived_at = now() WHERE id = $1")
        .bind(archived)
        .execute(&mut *tx)
        .await
        .expect("archived clinic");
    tx.commit().await.expect("commit");

    for clinic in [&a, &b] {
        let cached = get_dashboard(&app, clinic, Role::Admin).await;
        assert_eq!(cached.body["new_patients"]["last_30_days"], 0);
        app.seed_patient_created_at(clinic.id, Utc::now() - TimeDelta::days(2))
            .await;
    }

    let scheduler = Scheduler::new(app.system_state());
    // With the default five-minute freshness every clinic is due once in four ticks.
    let start = Utc::now();
    let mut due = 0;
    let mut refreshed = 0;
    for minute in 0..4 {
        let report = scheduler
            .run(Tick {
                at: start + TimeDelta::minutes(minute),
                stop_at: Instant::now() + std::time::Duration::from_secs(30),
            })
            .await;
        assert!(report.failed_tasks().is_empty(), "{report:?}");
        let done = dashboards(&report.tasks[0].outcome);
        assert_eq!(done.clinics, 2, "archived clinics are not active: {done:?}");
        assert_eq!((done.failed, done.out_of_time), (0, 0), "{done:?}");
        due += done.due;
        refreshed += done.refreshed;
    }
    assert_eq!((due, refreshed), (2, 2));

    for clinic in [&a, &b] {
        let fresh = get_dashboard(&app, clinic, Role::Admin).await;
        assert_eq!(
            fresh.body["new_patients"]["last_30_days"], 1,
            "{}",
            fresh.body
        );
    }

    // A tick with no time left starts nothing and says so.
    let late = scheduler
        .run(Tick {
            at: start,
            stop_at: Instant::now(),
        })
        .await;
    assert_eq!(late.failed_tasks(), shared::scheduler::TASKS);
}

#[tokio::test]
async fn only_the_system_role_lists_every_clinic() {
    let app = TestApp::spawn().await;
    let count = |pool: sqlx::PgPool| async move {
        sqlx::query_scalar::<_, i64>("SELECT count(*) FROM clinics")
            .fetch_one(&pool)
            .await
            .expect("count clinics")
    };
    // The app role outside a tenant transaction sees no clinic at all; pulso_system sees both.
    assert_eq!(count(app.state.db.clone()).await, 0);
    let system = app.system_state();
    assert_eq!(count(system.db.clone()).await, 2);
    // pulso_system reads clinics, nothing else across tenants: its other tables stay tenant-scoped.
    app.seed_patient_created_at(app.clinic_a.id, Utc::now())
        .await;
    let patients: i64 = sqlx::query_scalar("SELECT count(*) FROM patients")
        .fetch_one(&system.db)
        .await
        .expect("count patients");
    assert_eq!(patients, 0);
    // And it cannot change a clinic it can see.
    let renamed = sqlx::query("UPDATE clinics SET name = 'Otra' WHERE id = $1")
        .bind(app.clinic_b.id)
        .execute(&system.db)
        .await
        .expect("update runs")
        .rows_affected();
    assert_eq!(renamed, 0);

    let listed = shared::scheduler::active_clinics(&system)
        .await
        .expect("list");
    let mut expected = vec![app.clinic_a.id, app.clinic_b.id];
    expected.sort();
    assert_eq!(listed, expected);
}

#[tokio::test]
async fn the_large_clinic_generator_respects_the_schema() {
    let app = TestApp::spawn().await;
    let options = pulso_devtool::large_clinic::LargeClinicOptions {
        patients: 300,
        appointments: 3_000,
        reset: false,
    };
    let clinic = pulso_devtool::large_clinic::seed_large(&app.owner, &options)
        .await
        .expect("seed the large clinic");
    assert!(clinic.created);
    assert_eq!(clinic.patients, 300);
    assert_eq!(clinic.appointment_count(), 3_000);
    assert!(clinic.dentists.len() >= 2);

    // Idempotent: a second run leaves it as it is.
    let again = pulso_devtool::large_clinic::seed_large(&app.owner, &options)
        .await
        .expect("second run");
    assert!(!again.created);
    assert_eq!(again.appointment_count(), 3_000);

    assert!(clinic.admin.is_some());

    // Its dashboard covers every generated dentist, and a month of closed appointments.
    let dashboard = compute(&app, clinic.id, Utc::now()).await;
    assert_eq!(
        dashboard.load_next_7_days.dentists.len(),
        clinic.dentists.len()
    );
    assert!(dashboard.no_show_rate_30_days.closed_appointments > 0);
    let json: Value = serde_json::to_value(&dashboard).expect("json");
    assert!(json["estimated_revenue_this_month"]["amount_cents"].is_i64());

    // The same generator fills an existing clinic, beside its own staff, without colliding
    // with the rows it generated for the large clinic.
    let b = app.clinic_b;
    let filled = pulso_devtool::large_clinic::populate(&app.owner, b.id, &options)
        .await
        .expect("populate clinic B");
    assert_eq!(filled.id, b.id);
    assert_eq!(filled.admin, Some(b.admin));
    assert_eq!(filled.patients, 300);
    assert_eq!(filled.patient_ids.len(), 300);
    assert_eq!(filled.appointment_count(), 3_000);
    assert!(filled.dentists.contains(&b.dentist) && filled.dentists.len() > 2);
    assert_eq!(app.count("appointments", app.clinic_a.id).await, 0);
}

/// Utilisation divides the booked minutes by the working ones: hours less time off and
/// closures, day by day in the clinic's calendar (a fixed week, so no real date is crossed).
#[tokio::test]
async fn utilisation_is_booked_over_working_time_day_by_day() {
    let app = TestApp::spawn().await;
    let a = app.clinic_a;
    let mut tx = app.owner_tx(a.id).await;
    // The dentist works Monday to Friday 09:00–14:00 (300 minutes) instead of around the clock.
    for statement in [
        "DELETE FROM working_hours WHERE clinic_id = $1 AND dentist_id = $2",
        "INSERT INTO working_hours (clinic_id, dentist_id, weekday, start_minute, end_minute,
                                    valid_from)
         SELECT $1, $2, weekday, 540, 840, DATE '2000-01-01' FROM generate_series(1, 5) AS d(weekday)",
        // Training on Tuesday morning, and the clinic closed on Thursday.
        "INSERT INTO time_off (clinic_id, dentist_id, kind, starts_at, ends_at)
         VALUES ($1, $2, 'training', '2026-11-24 09:00 Europe/Madrid', '2026-11-24 11:00 Europe/Madrid'),
                ($1, NULL, 'closure', '2026-11-26 00:00 Europe/Madrid', '2026-11-27 00:00 Europe/Madrid')",
    ] {
        sqlx::query(statement)
            .bind(a.id)
            .bind(a.dentist)
            .execute(&mut *tx)
            .await
            .expect("set the dentist's week");
    }
    tx.commit().await.expect("commit the week");
    let patient = app.seed_patient(a.id, "Ana").await;
    for (wall_clock, minutes) in [("2026-11-23 09:00", 90), ("2026-11-24 12:00", 60)] {
        let seed = AppointmentSeed {
            patient,
            dentist: a.dentist,
            starts_at: local(&app, MADRID, wall_clock).await,
            minutes,
            status: "scheduled",
            procedure: None,
        };
        app.seed_appointment(a.id, seed).await;
    }

    // Monday 23 November 2026, 08:00 in Madrid.
    let dashboard = compute(&app, a.id, utc("2026-11-23T07:00:00Z")).await;
    let load = &dashboard.load_next_7_days;
    let mine = load
        .dentists
        .iter()
        .find(|dentist| dentist.dentist_id == a.dentist)
        .expect("the dentist's load");
    let days: Vec<(i64, i64, Option<f64>)> = mine
        .days
        .iter()
        .map(|day| (day.booked_minutes, day.working_minutes, day.utilisation))
        .collect();
    assert_eq!(
        days,
        [
            (90, 300, Some(0.3)),
            (60, 180, Some(0.3333)),
            (0, 300, Some(0.0)),
            (0, 0, None),
            (0, 300, Some(0.0)),
            (0, 0, None),
            (0, 0, None),
        ]
    );
    assert_eq!(
        (mine.booked_minutes, mine.working_minutes, mine.utilisation),
        (150, 1080, Some(0.1389))
    );
}
