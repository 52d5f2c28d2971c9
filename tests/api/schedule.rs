//! The agenda's capacity through the real routers: working hours, time off and chairs
//! (`/working-hours`, `/time-off`, `/chairs`) and what they let `/appointments` book.

use chrono::{DateTime, Datelike, Duration, NaiveDate, SecondsFormat, Utc, Weekday};
use chrono_tz::Europe::Madrid;
use pulso_tests::{Client, TestApp, TestClinic};
use serde_json::{Value, json};
use shared::auth::Role;
use shared::ids::{PatientId, UserId};
use shared::schedule::calendar::local_instant;

/// The Monday at least a week ahead: inside the booking window, outside any test's "today".
pub(crate) fn next_monday() -> NaiveDate {
    let mut day = Utc::now().date_naive() + Duration::days(7);
    while day.weekday() != Weekday::Mon {
        day += Duration::days(1);
    }
    day
}

/// `date` at `hh:mm` on the clinic's wall clock (the test clinics are in Madrid).
pub(crate) fn madrid(date: NaiveDate, hour: u16, minute: u16) -> DateTime<Utc> {
    local_instant(Madrid, date, hour * 60 + minute)
}

pub(crate) fn ts(at: DateTime<Utc>) -> String {
    at.to_rfc3339_opts(SecondsFormat::Secs, true)
}

pub(crate) fn booking(
    patient: PatientId,
    dentist: UserId,
    at: DateTime<Utc>,
    minutes: u32,
) -> Value {
    json!({"patient_id": patient, "dentist_id": dentist, "starts_at": ts(at),
           "duration_minutes": minutes})
}

/// Monday to Friday, 09:00–14:00 and 16:00–20:00.
pub(crate) fn office_hours() -> Value {
    let days = ["monday", "tuesday", "wednesday", "thursday", "friday"];
    let intervals: Vec<Value> = days
        .iter()
        .flat_map(|day| {
            [
                json!({"weekday": day, "start": "09:00", "end": "14:00"}),
                json!({"weekday": day, "start": "16:00", "end": "20:00"}),
            ]
        })
        .collect();
    json!({ "intervals": intervals })
}

pub(crate) struct Desk {
    pub(crate) app: TestApp,
    pub(crate) a: TestClinic,
    pub(crate) admin: Client,
    pub(crate) desk: Client,
    pub(crate) admin_books: Client,
    pub(crate) desk_books: Client,
    pub(crate) patient: PatientId,
}

pub(crate) async fn desk() -> Desk {
    let app = TestApp::spawn().await;
    let a = app.clinic_a;
    let schedule = shared::schedule::router(app.state.clone());
    let appointments = shared::appointments::router(app.state.clone());
    let (admin, reception) = (
        app.token(&a, Role::Admin),
        app.token(&a, Role::Receptionist),
    );
    let patient = app.seed_patient(a.id, "Lucía").await;
    Desk {
        admin: app.client(&schedule, &admin),
        desk: app.client(&schedule, &reception),
        admin_books: app.client(&appointments, &admin),
        desk_books: app.client(&appointments, &reception),
        app,
        a,
        patient,
    }
}

pub(crate) async fn set_office_hours(d: &Desk) {
    let path = format!("/working-hours/{}", d.a.dentist);
    let set = d.admin.put(&path, &office_hours()).await;
    assert_eq!(set.status, 200, "{}", set.body);
    assert_eq!(set.body["items"].as_array().unwrap().len(), 10);
}

#[tokio::test]
async fn working_hours_decide_what_is_bookable() {
    let d = desk().await;
    set_office_hours(&d).await;
    let (monday, dentist) = (next_monday(), d.a.dentist);
    let listed = d
        .desk
        .get(&format!("/working-hours?dentist_id={dentist}"))
        .await;
    assert_eq!(listed.status, 200, "{}", listed.body);
    assert_eq!(listed.body["items"][0]["weekday"], "monday");
    assert_eq!(listed.body["items"][0]["start"], "09:00");
    assert_eq!(listed.body["items"][1]["end"], "20:00");

    let inside = booking(d.patient, dentist, madrid(monday, 9, 30), 30);
    let first = d.desk_books.post("/appointments", &inside).await;
    assert_eq!(first.status, 201, "{}", first.body);
    // 03:00 on a Sunday: no hours that day at all.
    let sunday = monday - Duration::days(1);
    let night = booking(d.patient, dentist, madrid(sunday, 3, 0), 30);
    let refused = d
        .desk_books
        .post("/appointments", &night)
        .await
        .problem(409);
    assert_eq!(refused.kind, "/problems/outside-working-hours");
    assert_eq!(refused.field.as_deref(), Some("starts_at"));
    assert_eq!(refused.body["intervals"], json!([]));
    // Across the lunch break: the body names the day's two stretches.
    let lunch = booking(d.patient, dentist, madrid(monday, 13, 30), 60);
    let refused = d
        .desk_books
        .post("/appointments", &lunch)
        .await
        .problem(409);
    assert_eq!(refused.kind, "/problems/outside-working-hours");
    assert_eq!(
        refused.body["intervals"],
        json!([
            {"starts_at": ts(madrid(monday, 9, 0)), "ends_at": ts(madrid(monday, 14, 0))},
            {"starts_at": ts(madrid(monday, 16, 0)), "ends_at": ts(madrid(monday, 20, 0))},
        ])
    );
    assert!(
        refused.detail.contains("09:00–14:00, 16:00–20:00"),
        "{}",
        refused.detail
    );
    assert_eq!(
        d.app.count("appointments", d.a.id).await,
        1,
        "nothing half-written"
    );

    // An admin may book against the hours on purpose; it is recorded.
    let mut overridden = night.clone();
    overridden["override"] = json!(true);
    d.desk_books
        .post("/appointments", &overridden)
        .await
        .problem(403);
    let booked = d.admin_books.post("/appointments", &overridden).await;
    assert_eq!(booked.status, 201, "{}", booked.body);
    assert_eq!(booked.body["booked_with_override"], true);
    let admin_router = shared::admin::router(d.app.state.clone());
    let trail = d
        .app
        .client(&admin_router, &d.app.token(&d.a, Role::Admin))
        .get(&format!(
            "/admin/audit?target_id={}",
            booked.body["id"].as_str().unwrap()
        ))
        .await;
    assert_eq!(
        trail.body["items"][0]["action"], "appointment.override",
        "{}",
        trail.body
    );

    // Moving the first booking across lunch is refused like a booking, and changes nothing.
    let path = format!("/appointments/{}", first.body["id"].as_str().unwrap());
    let moved = d
        .desk_books
        .patch(&path, &json!({"starts_at": ts(madrid(monday, 13, 45))}))
        .await;
    assert_eq!(moved.problem(409).kind, "/problems/outside-working-hours");
    let moved = d
        .desk_books
        .patch(&path, &json!({"starts_at": ts(madrid(monday, 16, 0))}))
        .await;
    assert_eq!(moved.status, 200, "{}", moved.body);
}

#[tokio::test]
async fn bad_schedules_are_refused_and_change_nothing() {
    let d = desk().await;
    set_office_hours(&d).await;
    let path = format!("/working-hours/{}", d.a.dentist);
    let cases = [
        (
            json!({"intervals": [{"weekday": "monday", "start": "09:00", "end": "14:00"},
                              {"weekday": "monday", "start": "13:00", "end": "15:00"}]}),
            422,
            "intervals[1].start",
        ),
        (
            json!({"intervals": [{"weekday": "monday", "start": "14:00", "end": "09:00"}]}),
            422,
            "intervals[0].end",
        ),
        (
            json!({"intervals": [{"weekday": "monday", "start": "9:00", "end": "14:00"}]}),
            422,
            "intervals[0].start",
        ),
        (
            json!({"intervals": [{"weekday": "monday", "start": "09:00", "end": "24:30"}]}),
            422,
            "intervals[0].end",
        ),
        (
            json!({"intervals": [{"weekday": "monday", "start": "09:00", "end": "14:00",
                               "valid_from": "2027-02-01", "valid_until": "2027-01-01"}]}),
            422,
            "intervals[0].valid_until",
        ),
        (
            json!({"intervals": [{"weekday": "someday", "start": "09:00", "end": "14:00"}]}),
            422,
            "intervals[0].weekday",
        ),
        (
            json!({"intervals": [{"weekday": "monday", "start": "09:00", "end": "14:00",
                                  "valid_from": "1999-12-31"}]}),
            422,
            "intervals[0].valid_from",
        ),
        (json!({"intervals": [], "extra": 1}), 422, "extra"),
    ];
    for (body, status, field) in cases {
        let problem = d.admin.put(&path, &body).await.problem(status);
        assert_eq!(problem.field.as_deref(), Some(field), "{body}");
    }
    let many: Vec<Value> = (0..101)
        .map(|i| {
            json!({"weekday": "monday", "start": "00:00", "end": "00:01",
                        "valid_from": format!("2030-01-{:02}", i % 28 + 1)})
        })
        .collect();
    let problem = d
        .admin
        .put(&path, &json!({"intervals": many}))
        .await
        .problem(422);
    assert_eq!(problem.field.as_deref(), Some("intervals"));
    let listed = d
        .desk
        .get(&format!("/working-hours?dentist_id={}", d.a.dentist))
        .await;
    assert_eq!(
        listed.body["items"].as_array().unwrap().len(),
        10,
        "unchanged"
    );

    // Only admins set hours; only of their own clinic's dentists.
    d.desk.put(&path, &office_hours()).await.problem(403);
    let receptionist = format!("/working-hours/{}", d.a.receptionist);
    let problem = d
        .admin
        .put(&receptionist, &office_hours())
        .await
        .problem(422);
    assert_eq!(problem.field.as_deref(), Some("dentist_id"));
    let b = d.app.clinic_b;
    d.admin
        .put(&format!("/working-hours/{}", b.dentist), &office_hours())
        .await
        .problem(404);
}

#[tokio::test]
async fn time_off_and_closures_refuse_bookings_until_removed() {
    let d = desk().await;
    set_office_hours(&d).await;
    let (monday, dentist) = (next_monday(), d.a.dentist);
    let tuesday = monday + Duration::days(1);
    let early = booking(d.patient, dentist, madrid(tuesday, 10, 0), 30);
    let kept = d.desk_books.post("/appointments", &early).await;
    assert_eq!(kept.status, 201, "{}", kept.body);

    // A week's holiday over a booked appointment: recorded, the appointment named.
    let holiday = json!({"dentist_id": dentist, "kind": "holiday", "first_day": monday,
                         "last_day": monday + Duration::days(4), "label": "Congreso"});
    let created = d.desk.post("/time-off", &holiday).await;
    assert_eq!(created.status, 201, "{}", created.body);
    assert_eq!(created.body["all_day"], true);
    assert_eq!(created.body["starts_at"], ts(madrid(monday, 0, 0)));
    assert_eq!(
        created.body["overlapping_appointments"],
        json!([kept.body["id"]])
    );
    let refused = d
        .desk_books
        .post(
            "/appointments",
            &booking(d.patient, dentist, madrid(monday, 11, 0), 30),
        )
        .await
        .problem(409);
    assert_eq!(refused.kind, "/problems/dentist-away");
    assert_eq!(
        refused.body["intervals"][0]["starts_at"],
        ts(madrid(monday, 0, 0))
    );

    // A clinic's public holiday stops every dentist.
    let next_week = monday + Duration::days(7);
    let closure = json!({"kind": "public_holiday", "first_day": next_week,
                         "last_day": next_week, "label": "Fiesta local"});
    assert_eq!(d.admin.post("/time-off", &closure).await.status, 201);
    let other = booking(d.patient, d.a.second_dentist, madrid(next_week, 10, 0), 30);
    let refused = d
        .desk_books
        .post("/appointments", &other)
        .await
        .problem(409);
    assert_eq!(refused.kind, "/problems/clinic-closed");

    let listed = d
        .desk
        .get(&format!(
            "/time-off?from={monday}&to={next_week}&dentist_id={dentist}"
        ))
        .await;
    assert_eq!(listed.status, 200, "{}", listed.body);
    assert_eq!(listed.body["items"].as_array().unwrap().len(), 2);

    // Removed by mistake entered: bookable again.
    let id = created.body["id"].as_str().unwrap();
    assert_eq!(d.desk.delete(&format!("/time-off/{id}")).await.status, 204);
    d.desk.delete(&format!("/time-off/{id}")).await.problem(404);
    let again = booking(d.patient, dentist, madrid(monday, 11, 0), 30);
    assert_eq!(d.desk_books.post("/appointments", &again).await.status, 201);
}

#[tokio::test]
async fn bad_time_off_is_refused_and_writes_nothing() {
    let d = desk().await;
    let dentist = d.a.dentist;
    let day = next_monday();
    let cases = [
        (
            json!({"kind": "holiday", "first_day": day, "last_day": day}),
            "dentist_id",
        ),
        (
            json!({"kind": "closure", "dentist_id": dentist, "first_day": day, "last_day": day}),
            "dentist_id",
        ),
        (
            json!({"kind": "holiday", "dentist_id": dentist, "first_day": day,
                "last_day": day - Duration::days(1)}),
            "last_day",
        ),
        (
            json!({"kind": "holiday", "dentist_id": dentist, "first_day": day,
                "ends_at": ts(madrid(day, 10, 0))}),
            "first_day",
        ),
        (
            json!({"kind": "training", "dentist_id": dentist,
                "starts_at": ts(madrid(day, 10, 0)), "ends_at": ts(madrid(day, 9, 0))}),
            "ends_at",
        ),
        (
            json!({"kind": "holiday", "dentist_id": dentist, "first_day": day, "last_day": day,
                "label": "x".repeat(101)}),
            "label",
        ),
        (
            json!({"kind": "holiday", "dentist_id": d.a.receptionist, "first_day": day,
                "last_day": day}),
            "dentist_id",
        ),
        (
            json!({"kind": "holiday", "dentist_id": d.app.clinic_b.dentist, "first_day": day,
                "last_day": day}),
            "dentist_id",
        ),
        (
            json!({"kind": "vacation", "dentist_id": dentist, "first_day": day, "last_day": day}),
            "kind",
        ),
        (
            json!({"kind": "holiday", "dentist_id": dentist, "first_day": day,
                   "last_day": "9999-12-31"}),
            "last_day",
        ),
        (
            json!({"kind": "sick_leave", "dentist_id": dentist,
                   "starts_at": "+10000-01-01T00:00:00Z", "ends_at": "+10000-01-02T00:00:00Z"}),
            "starts_at",
        ),
    ];
    for (body, field) in cases {
        let problem = d.desk.post("/time-off", &body).await.problem(422);
        assert_eq!(problem.field.as_deref(), Some(field), "{body}");
    }
    assert_eq!(d.app.count("time_off", d.a.id).await, 0);
    let dentist_client = d.desk.with_token(Some(&d.app.token(&d.a, Role::Dentist)));
    let ok = json!({"kind": "holiday", "dentist_id": dentist, "first_day": day, "last_day": day});
    dentist_client.post("/time-off", &ok).await.problem(403);
    d.desk
        .get(&format!(
            "/time-off?from={day}&to={}",
            day - Duration::days(1)
        ))
        .await
        .problem(400);
    d.desk
        .get(&format!(
            "/time-off?from={day}&to={}",
            day + Duration::days(400)
        ))
        .await
        .problem(400);
    let far = d.desk.get("/time-off?from=9999-12-31").await.problem(400);
    assert_eq!(far.field.as_deref(), Some("from"));
}

#[tokio::test]
async fn a_chair_is_never_booked_twice_and_stays_in_its_clinic() {
    let d = desk().await;
    let monday = next_monday();
    let created = d
        .admin
        .post("/chairs", &json!({"name": " Gabinete 1 "}))
        .await;
    assert_eq!(created.status, 201, "{}", created.body);
    assert_eq!(created.body["name"], "Gabinete 1");
    let chair = created.body["id"].as_str().unwrap().to_owned();
    let taken = d
        .admin
        .post("/chairs", &json!({"name": "Gabinete 1"}))
        .await
        .problem(409);
    assert_eq!(taken.kind, "/problems/chair-name-taken");
    d.desk
        .post("/chairs", &json!({"name": "Gabinete 2"}))
        .await
        .problem(403);
    d.admin
        .post("/chairs", &json!({"name": ""}))
        .await
        .problem(422);

    let mut first = booking(d.patient, d.a.dentist, madrid(monday, 10, 0), 45);
    first["chair_id"] = json!(chair);
    let booked = d.desk_books.post("/appointments", &first).await;
    assert_eq!(booked.status, 201, "{}", booked.body);
    assert_eq!(booked.body["chair_id"], json!(chair));
    // Another dentist, overlapping time, same chair.
    let mut second = booking(d.patient, d.a.second_dentist, madrid(monday, 10, 30), 30);
    second["chair_id"] = json!(chair);
    let refused = d
        .desk_books
        .post("/appointments", &second)
        .await
        .problem(409);
    assert_eq!(refused.kind, "/problems/chair-taken");
    assert_eq!(refused.field.as_deref(), Some("chair_id"));
    assert_eq!(
        refused.body["intervals"],
        json!([{"starts_at": ts(madrid(monday, 10, 0)), "ends_at": ts(madrid(monday, 10, 45))}])
    );
    second["starts_at"] = json!(ts(madrid(monday, 10, 45)));
    assert_eq!(
        d.desk_books.post("/appointments", &second).await.status,
        201
    );

    // Deactivated: not bookable; another clinic's chair: no such chair.
    let path = format!("/chairs/{chair}");
    let off = d.admin.patch(&path, &json!({"active": false})).await;
    assert_eq!(off.body["active"], false, "{}", off.body);
    let mut third = booking(d.patient, d.a.dentist, madrid(monday, 12, 0), 30);
    third["chair_id"] = json!(chair);
    let problem = d
        .desk_books
        .post("/appointments", &third)
        .await
        .problem(422);
    assert_eq!(problem.field.as_deref(), Some("chair_id"));
    d.admin.patch(&path, &json!({})).await.problem(400);
    let listed = d.desk.get("/chairs?active=false").await;
    assert_eq!(listed.body["items"][0]["id"], json!(chair));

    let b = d.app.clinic_b;
    let b_admin = d.app.client(
        &shared::schedule::router(d.app.state.clone()),
        &d.app.token(&b, Role::Admin),
    );
    b_admin
        .patch(&path, &json!({"active": true}))
        .await
        .problem(404);
    assert_eq!(b_admin.get("/chairs").await.body["items"], json!([]));
    let b_patient = d.app.seed_patient(b.id, "Ana").await;
    let mut foreign = booking(b_patient, b.dentist, madrid(monday, 12, 0), 30);
    foreign["chair_id"] = json!(chair);
    let b_books = d.app.client(
        &shared::appointments::router(d.app.state.clone()),
        &d.app.token(&b, Role::Receptionist),
    );
    let problem = b_books.post("/appointments", &foreign).await.problem(422);
    assert_eq!(problem.field.as_deref(), Some("chair_id"));
}

/// The offered starts of `dentist` on `day` for `minutes`, as instants.
async fn offered(d: &Desk, day: NaiveDate, dentist: UserId, extra: &str) -> Vec<DateTime<Utc>> {
    let found = d
        .desk
        .get(&format!(
            "/availability?from={day}&to={day}&dentist_id={dentist}{extra}"
        ))
        .await;
    assert_eq!(found.status, 200, "{}", found.body);
    match found.body["dentists"].as_array().unwrap().first() {
        None => Vec::new(),
        Some(entry) => entry["starts"]
            .as_array()
            .unwrap()
            .iter()
            .map(|s| {
                DateTime::parse_from_rfc3339(s.as_str().unwrap())
                    .unwrap()
                    .to_utc()
            })
            .collect(),
    }
}

#[tokio::test]
async fn free_slots_follow_hours_bookings_and_cancellations_at_once() {
    let d = desk().await;
    set_office_hours(&d).await;
    let (monday, dentist) = (next_monday(), d.a.dentist);
    let booked = d
        .desk_books
        .post(
            "/appointments",
            &booking(d.patient, dentist, madrid(monday, 10, 0), 60),
        )
        .await;
    assert_eq!(booked.status, 201, "{}", booked.body);

    let day = d
        .desk
        .get(&format!(
            "/availability?from={monday}&dentist_id={dentist}&duration=30"
        ))
        .await;
    assert_eq!(day.status, 200, "{}", day.body);
    assert_eq!(day.body["timezone"], "Europe/Madrid");
    assert_eq!(day.body["slot_minutes"], 15);
    assert_eq!(
        day.body["dentists"][0]["free"],
        json!([
            {"starts_at": ts(madrid(monday, 9, 0)), "ends_at": ts(madrid(monday, 10, 0))},
            {"starts_at": ts(madrid(monday, 11, 0)), "ends_at": ts(madrid(monday, 14, 0))},
            {"starts_at": ts(madrid(monday, 16, 0)), "ends_at": ts(madrid(monday, 20, 0))},
        ])
    );
    let starts = offered(&d, monday, dentist, "&duration=30").await;
    assert_eq!(starts.first(), Some(&madrid(monday, 9, 0)));
    assert!(
        starts.contains(&madrid(monday, 9, 30)),
        "ends as the booking starts"
    );
    assert!(
        !starts.contains(&madrid(monday, 9, 45)),
        "would run into the booking"
    );
    assert!(!starts.contains(&madrid(monday, 10, 30)));
    assert_eq!(starts.last(), Some(&madrid(monday, 19, 30)));
    assert_eq!(starts.len(), 3 + 11 + 15);

    // Booking an offered start takes it off at once (the day was cached by the reads above).
    let take = booking(d.patient, dentist, madrid(monday, 16, 0), 30);
    let taken = d.desk_books.post("/appointments", &take).await;
    assert_eq!(taken.status, 201, "{}", taken.body);
    let after = offered(&d, monday, dentist, "&duration=30").await;
    assert!(!after.contains(&madrid(monday, 16, 0)));
    assert_eq!(
        after.len(),
        starts.len() - 2,
        "16:00 and 15:45 can no longer start"
    );
    // Cancelled: free again.
    let id = taken.body["id"].as_str().unwrap();
    let cancelled = d
        .desk_books
        .post_empty(&format!("/appointments/{id}/cancel"))
        .await;
    assert_eq!(cancelled.status, 200, "{}", cancelled.body);
    assert_eq!(offered(&d, monday, dentist, "&duration=30").await, starts);
    // New hours: every cached day of the clinic goes.
    let path = format!("/working-hours/{dentist}");
    let mornings = json!({"intervals": [{"weekday": "monday", "start": "09:00", "end": "12:00"}]});
    assert_eq!(d.admin.put(&path, &mornings).await.status, 200);
    let short = offered(&d, monday, dentist, "&duration=30").await;
    assert_eq!(short.last(), Some(&madrid(monday, 11, 30)));
    // A procedure's length comes from the catalog: a cleaning (LIMP) is 45 minutes.
    let cleaning = offered(&d, monday, dentist, "&procedure=LIMP").await;
    assert_eq!(cleaning.last(), Some(&madrid(monday, 11, 15)));
}

#[tokio::test]
async fn the_next_free_slot_is_one_call() {
    let d = desk().await;
    set_office_hours(&d).await;
    let dentist = d.a.dentist;
    let next = d
        .desk
        .get(&format!(
            "/availability/next?dentist_id={dentist}&procedure=LIMP&limit=3"
        ))
        .await;
    assert_eq!(next.status, 200, "{}", next.body);
    assert_eq!(next.body["duration_minutes"], 45);
    let slots = next.body["slots"].as_array().unwrap();
    assert_eq!(slots.len(), 3);
    let first = DateTime::parse_from_rfc3339(slots[0]["starts_at"].as_str().unwrap())
        .unwrap()
        .to_utc();
    assert!(first > Utc::now());
    // The first one can be booked, and is then no longer the first.
    let take = booking(d.patient, dentist, first, 45);
    assert_eq!(d.desk_books.post("/appointments", &take).await.status, 201);
    let again = d
        .desk
        .get(&format!(
            "/availability/next?dentist_id={dentist}&procedure=LIMP&limit=3"
        ))
        .await;
    assert_ne!(again.body["slots"][0]["starts_at"], slots[0]["starts_at"]);

    // Bad searches answer 4xx and say which parameter.
    for (query, status, field) in [
        ("/availability/next?procedure=NOPE", 400, "procedure"),
        ("/availability/next?duration=3", 400, "duration"),
        ("/availability/next?limit=51", 400, "limit"),
        ("/availability?from=2030-01-10&to=2030-01-09", 400, "to"),
        ("/availability?from=2030-01-01&to=2030-02-01", 400, "to"),
        ("/availability?from=1990-01-01", 400, "from"),
        ("/availability?from=0495-02-22", 400, "from"),
        ("/availability?dentist_id=nope", 400, "dentist_id"),
    ] {
        let problem = d.desk.get(query).await.problem(status);
        assert_eq!(problem.field.as_deref(), Some(field), "{query}");
    }
}

/// Over random weekly hours and bookings (a few cancelled): every start offered can be booked,
/// no live booking is ever overlapped by one, and two receptionists racing for one offered
/// start get exactly one booking.
#[tokio::test]
async fn an_offered_slot_can_be_booked_and_a_booked_one_is_never_offered() {
    use rand::{Rng, SeedableRng};
    let d = desk().await;
    let monday = next_monday();
    let dentists = [d.a.dentist, d.a.second_dentist];
    let mut rng = rand::rngs::StdRng::seed_from_u64(0x5106);
    for round in 0..4 {
        let day = monday + Duration::days(7 * round);
        for dentist in dentists {
            let start = rng.random_range(7..11) * 60 + rng.random_range(0..4) * 15;
            let end = start + rng.random_range(2..8) * 45;
            let hours = json!({"intervals": [{"weekday": "monday",
                "start": format!("{:02}:{:02}", start / 60, start % 60),
                "end": format!("{:02}:{:02}", end / 60, end % 60)}]});
            let set = d
                .admin
                .put(&format!("/working-hours/{dentist}"), &hours)
                .await;
            assert_eq!(set.status, 200, "{}", set.body);
            // A few bookings where they fit, some cancelled again.
            for _ in 0..4 {
                let starts = offered(&d, day, dentist, "&duration=20").await;
                if starts.is_empty() {
                    break;
                }
                let at = starts[rng.random_range(0..starts.len())];
                let made = d
                    .desk_books
                    .post("/appointments", &booking(d.patient, dentist, at, 20))
                    .await;
                assert_eq!(
                    made.status, 201,
                    "an offered start was refused: {}",
                    made.body
                );
                if rng.random_bool(0.3) {
                    let id = made.body["id"].as_str().unwrap();
                    d.desk_books
                        .post_empty(&format!("/appointments/{id}/cancel"))
                        .await;
                }
            }
        }
        let live = d
            .desk_books
            .get(&format!(
                "/appointments?from={}&to={}&status=scheduled&limit=200",
                ts(madrid(day, 0, 0)).replace('+', "%2B"),
                ts(madrid(day + Duration::days(1), 0, 0)).replace('+', "%2B")
            ))
            .await;
        assert_eq!(live.status, 200, "{}", live.body);
        for dentist in dentists {
            for start in offered(&d, day, dentist, "&duration=20").await {
                let end = start + Duration::minutes(20);
                for booked in live.body["items"].as_array().unwrap() {
                    if booked["dentist_id"] != json!(dentist) {
                        continue;
                    }
                    let at = |name: &str| {
                        DateTime::parse_from_rfc3339(booked[name].as_str().unwrap())
                            .unwrap()
                            .to_utc()
                    };
                    assert!(
                        end <= at("starts_at") || start >= at("ends_at"),
                        "offered {start} overlaps a booking {booked}"
                    );
                }
            }
        }
        // Two desks race for the same offered start: exactly one wins.
        let Some(&contested) = offered(&d, day, dentists[0], "&duration=20").await.first() else {
            continue;
        };
        let body = booking(d.patient, dentists[0], contested, 20);
        let (one, two) = tokio::join!(
            d.desk_books.post("/appointments", &body),
            d.admin_books.post("/appointments", &body)
        );
        let mut statuses = [one.status.as_u16(), two.status.as_u16()];
        statuses.sort_unstable();
        assert_eq!(statuses, [201, 409], "{} / {}", one.body, two.body);
        assert!(
            !offered(&d, day, dentists[0], "&duration=20")
                .await
                .contains(&contested)
        );
    }
}
