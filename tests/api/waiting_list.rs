//! The waiting list (`/waiting-list`) and what reception hears when time frees up, through the
//! real routers, PostgreSQL and Redis.

use crate::schedule::{Desk, booking, desk, madrid, next_monday, set_office_hours, ts};
use chrono::{Duration, NaiveDate, Utc};
use serde_json::{Value, json};
use shared::auth::Role;

async fn add(d: &Desk, body: Value) -> Value {
    let added = d.desk.post("/waiting-list", &body).await;
    assert_eq!(added.status, 201, "{}", added.body);
    let id = added.body["id"].as_str().unwrap().to_owned();
    assert_eq!(
        added.headers.get("location").and_then(|v| v.to_str().ok()),
        Some(format!("/waiting-list/{id}").as_str())
    );
    added.body
}

/// The receptionists' `waiting_list.match` notifications, oldest first.
async fn matches(d: &Desk) -> Vec<Value> {
    let realtime = shared::realtime::router(d.app.state.clone());
    let desk = d
        .app
        .client(&realtime, &d.app.token(&d.a, Role::Receptionist));
    let page = desk.get("/notifications?since=0").await;
    assert_eq!(page.status, 200, "{}", page.body);
    page.body["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|item| item["kind"] == "waiting_list.match")
        .cloned()
        .collect()
}

#[tokio::test]
async fn reception_keeps_the_list_and_the_trail_keeps_every_change() {
    let d = desk().await;
    let today = Utc::now().date_naive();
    let first = add(
        &d,
        json!({"patient_id": d.patient, "notes": "Mañanas; llamar antes"}),
    )
    .await;
    // Defaults: the clinic's default length, any dentist, today and the next 90 days (the test
    // clinic's today is Madrid's, within a day of UTC's).
    assert_eq!(first["duration_minutes"], 30);
    assert_eq!(first["dentist_id"], Value::Null);
    let from: NaiveDate = serde_json::from_value(first["window_from"].clone()).unwrap();
    assert!((from - today).num_days().abs() <= 1);
    assert_eq!(first["window_until"], json!(from + Duration::days(90)));
    let second = add(
        &d,
        json!({"patient_id": d.patient, "dentist_id": d.a.second_dentist, "duration_minutes": 60,
               "window_from": today + Duration::days(2), "window_until": today + Duration::days(9)}),
    )
    .await;

    let listed = d.desk.get("/waiting-list").await;
    assert_eq!(listed.status, 200, "{}", listed.body);
    let ids: Vec<&Value> = listed.body["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| &e["id"])
        .collect();
    assert_eq!(
        ids,
        [&first["id"], &second["id"]],
        "first come first served"
    );
    // For a dentist: theirs and the ones that take anyone.
    let theirs = d
        .desk
        .get(&format!("/waiting-list?dentist_id={}", d.a.dentist))
        .await;
    assert_eq!(theirs.body["items"].as_array().unwrap().len(), 1);
    let paged = d.desk.get("/waiting-list?limit=1").await;
    assert_eq!(paged.body["items"][0]["id"], first["id"]);
    let cursor = paged.body["next_cursor"].as_str().unwrap().to_owned();
    let next = d
        .desk
        .get(&format!("/waiting-list?limit=1&cursor={cursor}"))
        .await;
    assert_eq!(next.body["items"][0]["id"], second["id"]);
    assert_eq!(
        d.desk.get("/waiting-list?expired=true").await.body["items"],
        json!([])
    );

    // Every member reads; dentists do not edit.
    let dentist = d.app.client(
        &shared::schedule::router(d.app.state.clone()),
        &d.app.token(&d.a, Role::Dentist),
    );
    assert_eq!(dentist.get("/waiting-list").await.status, 200);
    dentist
        .post("/waiting-list", &json!({"patient_id": d.patient}))
        .await
        .problem(403);
    dentist
        .delete(&format!("/waiting-list/{}", first["id"].as_str().unwrap()))
        .await
        .problem(403);

    let path = format!("/waiting-list/{}", first["id"].as_str().unwrap());
    assert_eq!(d.desk.delete(&path).await.status, 204);
    d.desk.delete(&path).await.problem(404);
    assert_eq!(d.app.count("waiting_list", d.a.id).await, 1);

    let admin_router = shared::admin::router(d.app.state.clone());
    let trail = d
        .app
        .client(&admin_router, &d.app.token(&d.a, Role::Admin))
        .get("/admin/audit")
        .await;
    assert_eq!(trail.status, 200, "{}", trail.body);
    let trail = trail.body["items"].as_array().unwrap().clone();
    let actions: Vec<&str> = trail
        .iter()
        .map(|e| e["action"].as_str().unwrap())
        .collect();
    assert!(actions.contains(&"waiting_list.add") && actions.contains(&"waiting_list.remove"));
    let added = trail
        .iter()
        .find(|e| e["action"] == "waiting_list.add")
        .unwrap();
    assert!(
        !added.to_string().contains("Mañanas"),
        "notes are redacted: {added}"
    );
}

#[tokio::test]
async fn bad_entries_are_refused_and_nothing_is_written() {
    let d = desk().await;
    let b = d.app.clinic_b;
    let foreign_patient = d.app.seed_patient(b.id, "Otra").await;
    let today = Utc::now().date_naive();
    let long_notes = "x".repeat(501);
    let cases: Vec<(Value, &str)> = vec![
        (json!({"patient_id": foreign_patient}), "patient_id"),
        (
            json!({"patient_id": d.patient, "dentist_id": b.dentist}),
            "dentist_id",
        ),
        (
            json!({"patient_id": d.patient, "dentist_id": d.a.receptionist}),
            "dentist_id",
        ),
        (
            json!({"patient_id": d.patient, "procedure_code": "NOPE"}),
            "procedure_code",
        ),
        (
            json!({"patient_id": d.patient, "procedure_code": "bad code!"}),
            "procedure_code",
        ),
        (
            json!({"patient_id": d.patient, "duration_minutes": 4}),
            "duration_minutes",
        ),
        (
            json!({"patient_id": d.patient, "duration_minutes": 721}),
            "duration_minutes",
        ),
        (
            json!({"patient_id": d.patient, "window_from": today + Duration::days(5),
                "window_until": today + Duration::days(4)}),
            "window_until",
        ),
        (
            json!({"patient_id": d.patient, "window_until": today + Duration::days(400)}),
            "window_until",
        ),
        (
            json!({"patient_id": d.patient, "window_from": today - Duration::days(30),
                "window_until": today - Duration::days(3)}),
            "window_until",
        ),
        (
            json!({"patient_id": d.patient, "window_from": "1999-12-31"}),
            "window_from",
        ),
        (
            json!({"patient_id": d.patient, "notes": long_notes}),
            "notes",
        ),
        (
            json!({"patient_id": d.patient, "notes": "a\u{0007}b"}),
            "notes",
        ),
    ];
    for (body, field) in cases {
        let problem = d.desk.post("/waiting-list", &body).await.problem(422);
        assert_eq!(problem.field.as_deref(), Some(field), "{body}");
    }
    // Not JSON the API knows: 422 for an unknown field, 400 for a malformed document.
    d.desk
        .post(
            "/waiting-list",
            &json!({"patient_id": d.patient, "urgent": true}),
        )
        .await
        .problem(422);
    d.desk
        .post("/waiting-list", &json!("patient"))
        .await
        .problem(422);
    d.desk.get("/waiting-list?limit=0").await.problem(400);
    d.desk.get("/waiting-list?cursor=%%%").await.problem(400);
    d.desk.delete("/waiting-list/not-an-id").await.problem(400);
    assert_eq!(d.app.count("waiting_list", d.a.id).await, 0);
    assert_eq!(d.app.count("audit_events", d.a.id).await, 0);

    // Another clinic's entries are a 404 and never listed.
    let b_desk = d.app.client(
        &shared::schedule::router(d.app.state.clone()),
        &d.app.token(&b, Role::Receptionist),
    );
    let theirs = b_desk
        .post("/waiting-list", &json!({"patient_id": foreign_patient}))
        .await;
    assert_eq!(theirs.status, 201, "{}", theirs.body);
    let path = format!("/waiting-list/{}", theirs.body["id"].as_str().unwrap());
    d.desk.delete(&path).await.problem(404);
    assert_eq!(d.desk.get("/waiting-list").await.body["items"], json!([]));
}

#[tokio::test]
async fn a_cancellation_tells_reception_which_entries_fit_and_books_nothing() {
    let d = desk().await;
    set_office_hours(&d).await;
    let (dentist, day) = (d.a.dentist, next_monday());
    let at = |hour, minute| madrid(day, hour, minute);
    // The morning is full: 09:00–10:00, 10:00–10:30, 10:30–14:00.
    let mut ids = Vec::new();
    for (hour, minute, minutes) in [(9, 0, 60), (10, 0, 30), (10, 30, 210)] {
        let booked = d
            .desk_books
            .post(
                "/appointments",
                &booking(d.patient, dentist, at(hour, minute), minutes),
            )
            .await;
        assert_eq!(booked.status, 201, "{}", booked.body);
        ids.push(booked.body["id"].as_str().unwrap().to_owned());
    }
    let waiting = d.app.seed_patient(d.a.id, "Marta").await;
    let window =
        json!({"window_from": day - Duration::days(1), "window_until": day + Duration::days(1)});
    let entry = |extra: Value| {
        let mut body = json!({"patient_id": waiting});
        body.as_object_mut()
            .unwrap()
            .extend(window.as_object().unwrap().clone());
        body.as_object_mut()
            .unwrap()
            .extend(extra.as_object().unwrap().clone());
        body
    };
    let fits = add(&d, entry(json!({"duration_minutes": 30}))).await;
    let theirs = add(
        &d,
        entry(json!({"duration_minutes": 30, "dentist_id": dentist})),
    )
    .await;
    add(&d, entry(json!({"duration_minutes": 60}))).await; // too long for the half hour
    add(
        &d,
        entry(json!({"duration_minutes": 30, "dentist_id": d.a.second_dentist})),
    )
    .await;
    add(
        &d,
        json!({"patient_id": waiting, "duration_minutes": 30,
               "window_from": day + Duration::days(1), "window_until": day + Duration::days(20)}),
    )
    .await; // not that day
    assert!(matches(&d).await.is_empty(), "nothing freed yet");

    let cancel = format!("/appointments/{}/cancel", ids[1]);
    assert_eq!(d.desk_books.post(&cancel, &json!({})).await.status, 200);
    // Cancelling again changes nothing and tells nobody twice.
    assert_eq!(d.desk_books.post(&cancel, &json!({})).await.status, 200);
    let told = matches(&d).await;
    assert_eq!(told.len(), 1, "{told:?}");
    let body = &told[0]["body"];
    assert_eq!(body["dentist_id"], json!(dentist));
    assert_eq!(body["starts_at"], json!(ts(at(10, 0))));
    assert_eq!(body["ends_at"], json!(ts(at(10, 30))));
    let entries: Vec<&Value> = body["entries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| &e["entry_id"])
        .collect();
    assert_eq!(entries, [&fits["id"], &theirs["id"]]);
    assert_eq!(body["entries"][0]["patient_id"], json!(waiting));
    assert!(
        !told[0].to_string().contains("Marta"),
        "ids only: {}",
        told[0]
    );
    // Nothing was booked: the half hour is free, and the list is as it was.
    let day_agenda = d
        .desk_books
        .get(&format!("/agenda?date={day}&dentist_id={dentist}"))
        .await;
    assert_eq!(
        day_agenda.body["dentists"][0]["gaps"][0],
        json!({"starts_at": ts(at(10, 0)), "ends_at": ts(at(10, 30))})
    );
    assert_eq!(d.app.count("waiting_list", d.a.id).await, 5);

    // Moving the long appointment to the afternoon frees 10:30–14:00 too: a second notice.
    let moved = d
        .desk_books
        .patch(
            &format!("/appointments/{}", ids[2]),
            &json!({"starts_at": ts(at(16, 0))}),
        )
        .await;
    assert_eq!(moved.status, 200, "{}", moved.body);
    let told = matches(&d).await;
    assert_eq!(told.len(), 2, "{told:?}");
    assert_eq!(told[1]["body"]["starts_at"], json!(ts(at(10, 0))));
    assert_eq!(told[1]["body"]["ends_at"], json!(ts(at(14, 0))));
    assert_eq!(
        told[1]["body"]["entries"].as_array().unwrap().len(),
        3,
        "the hour-long one fits now"
    );
}
