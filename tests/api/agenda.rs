//! `GET /agenda`: one clinic day per dentist for a calendar screen, through the real router.

use crate::schedule::{Desk, booking, desk, madrid, next_monday, set_office_hours, ts};
use chrono::{DateTime, Utc};
use serde_json::{Value, json};
use shared::auth::Role;

fn interval(from: DateTime<Utc>, to: DateTime<Utc>) -> Value {
    json!({"starts_at": ts(from), "ends_at": ts(to)})
}

async fn agenda(d: &Desk, query: &str) -> Value {
    let found = d.desk_books.get(&format!("/agenda?{query}")).await;
    assert_eq!(found.status, 200, "{}", found.body);
    found.body
}

#[tokio::test]
async fn one_call_gives_a_dentists_day_with_its_gaps() {
    let d = desk().await;
    set_office_hours(&d).await;
    let (dentist, day) = (d.a.dentist, next_monday());
    let at = |hour, minute| madrid(day, hour, minute);
    let training = json!({"dentist_id": dentist, "kind": "training", "label": "Curso",
                          "starts_at": ts(at(16, 0)), "ends_at": ts(at(18, 0))});
    assert_eq!(d.desk.post("/time-off", &training).await.status, 201);
    for (hour, minute, minutes) in [(9, 0, 30), (10, 0, 60)] {
        let booked = d
            .desk_books
            .post(
                "/appointments",
                &booking(d.patient, dentist, at(hour, minute), minutes),
            )
            .await;
        assert_eq!(booked.status, 201, "{}", booked.body);
    }
    let cancelled = d
        .desk_books
        .post("/appointments", &booking(d.patient, dentist, at(12, 0), 30))
        .await;
    let id = cancelled.body["id"].as_str().unwrap().to_owned();
    let cancel = d
        .desk_books
        .post(&format!("/appointments/{id}/cancel"), &json!({}))
        .await;
    assert_eq!(cancel.status, 200, "{}", cancel.body);

    let body = agenda(&d, &format!("date={day}&dentist_id={dentist}")).await;
    assert_eq!(body["date"], json!(day));
    assert_eq!(body["timezone"], "Europe/Madrid");
    let dentists = body["dentists"].as_array().unwrap();
    assert_eq!(dentists.len(), 1, "{body}");
    let mine = &dentists[0];
    assert_eq!(mine["dentist_id"], json!(dentist));
    assert!(!mine["name"].as_str().unwrap().is_empty());
    assert_eq!(
        mine["hours"],
        json!([
            interval(at(9, 0), at(14, 0)),
            interval(at(16, 0), at(20, 0))
        ])
    );
    assert_eq!(mine["time_off"].as_array().unwrap().len(), 1);
    assert_eq!(mine["time_off"][0]["kind"], "training");
    // The cancelled one freed its time and is not shown.
    let appointments = mine["appointments"].as_array().unwrap();
    assert_eq!(appointments.len(), 2, "{body}");
    assert_eq!(appointments[0]["starts_at"], json!(ts(at(9, 0))));
    assert_eq!(appointments[0]["patient"]["name"], "Lucía Prueba");
    assert_eq!(appointments[1]["starts_at"], json!(ts(at(10, 0))));
    assert_eq!(
        mine["gaps"],
        json!([
            interval(at(9, 30), at(10, 0)),
            interval(at(11, 0), at(14, 0)),
            interval(at(18, 0), at(20, 0)),
        ])
    );

    // Without a dentist: every active dentist with hours that day, by name, the same day for
    // this one.
    let everyone = agenda(&d, &format!("date={day}")).await;
    let listed = everyone["dentists"].as_array().unwrap();
    let again = listed
        .iter()
        .find(|entry| entry["dentist_id"] == json!(dentist))
        .expect("the dentist is listed");
    assert_eq!(again["gaps"], mine["gaps"]);
    let names: Vec<&str> = listed.iter().map(|e| e["name"].as_str().unwrap()).collect();
    let mut sorted = names.clone();
    sorted.sort_unstable();
    assert_eq!(names, sorted);
}

#[tokio::test]
async fn the_agenda_stays_in_its_clinic_and_refuses_bad_input() {
    let d = desk().await;
    let b = d.app.clinic_b;
    let day = next_monday();
    let booked = d
        .desk_books
        .post(
            "/appointments",
            &booking(d.patient, d.a.dentist, madrid(day, 10, 0), 30),
        )
        .await;
    assert_eq!(booked.status, 201, "{}", booked.body);

    // Another clinic's dentist is a 404; that clinic's agenda never shows this one's bookings.
    let foreign = d
        .desk_books
        .get(&format!("/agenda?date={day}&dentist_id={}", b.dentist))
        .await
        .problem(404);
    assert_eq!(foreign.kind, "/problems/not-found");
    let b_desk = d.app.client(
        &shared::appointments::router(d.app.state.clone()),
        &d.app.token(&b, Role::Receptionist),
    );
    let theirs = b_desk.get(&format!("/agenda?date={day}")).await;
    assert_eq!(theirs.status, 200, "{}", theirs.body);
    for entry in theirs.body["dentists"].as_array().unwrap() {
        assert_ne!(entry["dentist_id"], json!(d.a.dentist));
        assert_eq!(entry["appointments"], json!([]));
    }

    for bad in [
        "date=2026-13-01",
        "date=9999-01-01",
        "date=tomorrow",
        "dentist_id=7",
    ] {
        let problem = d
            .desk_books
            .get(&format!("/agenda?{bad}"))
            .await
            .problem(400);
        assert!(!problem.detail.is_empty(), "{bad}");
    }
}
