//! `/appointments` through the real router and PostgreSQL.

use axum::Router;
use chrono::{DateTime, NaiveTime, SecondsFormat, TimeDelta, Utc};
use http::Method;
use pulso_tests::{Client, TestApp, TestClinic};
use serde_json::{Value, json};
use shared::auth::Role;
use shared::ids::{ClinicId, PatientId, UserId};

/// Tomorrow (UTC) at `hh:mm`: always in the future, always inside the booking window.
fn tomorrow_at(hour: u32, minute: u32) -> DateTime<Utc> {
    let date = Utc::now().date_naive() + TimeDelta::days(1);
    date.and_time(NaiveTime::from_hms_opt(hour, minute, 0).unwrap())
        .and_utc()
}

fn ts(at: DateTime<Utc>) -> String {
    at.to_rfc3339_opts(SecondsFormat::Secs, true)
}

fn at(value: &Value) -> DateTime<Utc> {
    value
        .as_str()
        .and_then(|s| DateTime::parse_from_rfc3339(s).ok())
        .unwrap_or_else(|| panic!("not a time: {value}"))
        .with_timezone(&Utc)
}

/// Percent-encodes an instant for a query string (`+` in an offset).
fn q(at: DateTime<Utc>) -> String {
    ts(at).replace('+', "%2B")
}

fn booking(patient: PatientId, dentist: UserId, starts_at: DateTime<Utc>, minutes: u32) -> Value {
    json!({
        "patient_id": patient,
        "dentist_id": dentist,
        "starts_at": ts(starts_at),
        "duration_minutes": minutes,
    })
}

async fn book(client: &Client, body: Value) -> Value {
    let response = client.post("/appointments", &body).await;
    assert_eq!(response.status, 201, "{}", response.body);
    response.body
}

fn id_of(body: &Value) -> String {
    body["id"].as_str().expect("id").to_string()
}

async fn act(client: &Client, id: &str, action: &str) -> pulso_tests::TestResponse {
    client
        .post_empty(&format!("/appointments/{id}/{action}"))
        .await
}

async fn show(client: &Client, id: &str) -> Value {
    let response = client.get(&format!("/appointments/{id}")).await;
    assert_eq!(response.status, 200, "{}", response.body);
    response.body
}

fn ids(body: &Value) -> Vec<String> {
    body["items"]
        .as_array()
        .unwrap_or_else(|| panic!("items: {body}"))
        .iter()
        .map(id_of)
        .collect()
}

struct Setup {
    app: TestApp,
    router: Router,
    token: String,
    a: TestClinic,
    maria: PatientId,
}

async fn setup() -> Setup {
    let app = TestApp::spawn().await;
    let router = shared::appointments::router(app.state.clone());
    let token = app.token(&app.clinic_a, Role::Receptionist);
    let a = app.clinic_a;
    let maria = app.seed_patient(a.id, "María").await;
    Setup {
        app,
        router,
        token,
        a,
        maria,
    }
}

#[tokio::test]
async fn book_read_reschedule_and_edit_an_appointment() {
    let Setup {
        app,
        router,
        token,
        a,
        maria,
    } = setup().await;
    let client = app.client(&router, &token);

    // The time is given with an offset: 12:00+02:00 is 10:00Z.
    let start = tomorrow_at(10, 0);
    let local = (start + TimeDelta::hours(2))
        .format("%Y-%m-%dT%H:%M:%S+02:00")
        .to_string();
    let created = client
        .post(
            "/appointments",
            &json!({
                "patient_id": maria,
                "dentist_id": a.dentist,
                "starts_at": local,
                "ends_at": ts(start + TimeDelta::minutes(45)),
                "reason": "  Revisión anual ",
                "procedure_code": "REV",
            }),
        )
        .await;
    assert_eq!(created.status, 201, "{}", created.body);
    let body = &created.body;
    let id = id_of(body);
    assert_eq!(
        created
            .headers
            .get("location")
            .and_then(|v| v.to_str().ok()),
        Some(format!("/appointments/{id}").as_str())
    );
    assert_eq!(body["patient_id"], json!(maria));
    assert_eq!(body["dentist_id"], json!(a.dentist));
    assert_eq!(at(&body["starts_at"]), start);
    assert_eq!(at(&body["ends_at"]), start + TimeDelta::minutes(45));
    assert_eq!(body["status"], "scheduled");
    assert_eq!(body["reason"], "Revisión anual");
    assert_eq!(body["procedure_code"], "REV");
    for field in ["created_at", "updated_at", "status_changed_at"] {
        assert!(body[field].is_string(), "{field}: {body}");
    }
    // Who booked it is recorded.
    let mut tx = app.owner_tx(a.id).await;
    let created_by: Option<UserId> =
        sqlx::query_scalar("SELECT created_by FROM appointments WHERE id = $1::uuid")
            .bind(&id)
            .fetch_one(&mut *tx)
            .await
            .unwrap();
    tx.rollback().await.unwrap();
    assert_eq!(created_by, Some(a.receptionist));

    assert_eq!(show(&client, &id).await, created.body);

    let patch = |body: Value| {
        let (app, router, token, id) = (&app, &router, &token, &id);
        async move {
            let response = app
                .client(router, token)
                .patch(&format!("/appointments/{id}"), &body)
                .await;
            assert_eq!(response.status, 200, "{}", response.body);
            response.body
        }
    };
    // Moving the start alone keeps the length.
    let moved = patch(json!({"starts_at": ts(tomorrow_at(16, 0))})).await;
    assert_eq!(at(&moved["starts_at"]), tomorrow_at(16, 0));
    assert_eq!(at(&moved["ends_at"]), tomorrow_at(16, 45));
    assert_eq!(moved["status"], "scheduled");
    assert_ne!(moved["updated_at"], created.body["updated_at"]);
    assert_eq!(
        moved["status_changed_at"],
        created.body["status_changed_at"]
    );
    let longer = patch(json!({"duration_minutes": 90})).await;
    assert_eq!(at(&longer["starts_at"]), tomorrow_at(16, 0));
    assert_eq!(at(&longer["ends_at"]), tomorrow_at(17, 30));
    let shorter = patch(json!({"ends_at": ts(tomorrow_at(16, 20))})).await;
    assert_eq!(at(&shorter["ends_at"]), tomorrow_at(16, 20));
    // Overlapping its own old time is fine: the appointment does not clash with itself.
    let nudged = patch(json!({"starts_at": ts(tomorrow_at(16, 10)), "duration_minutes": 30})).await;
    assert_eq!(at(&nudged["ends_at"]), tomorrow_at(16, 40));
    let handed_over =
        patch(json!({"dentist_id": a.second_dentist, "procedure_code": null, "reason": "Dolor"}))
            .await;
    assert_eq!(handed_over["dentist_id"], json!(a.second_dentist));
    assert_eq!(handed_over["procedure_code"], Value::Null);
    assert_eq!(handed_over["reason"], "Dolor");
    assert_eq!(handed_over["patient_id"], json!(maria));
    assert_eq!(show(&client, &id).await, handed_over);

    // Dentists and admins book too; everyone reads.
    for role in [Role::Dentist, Role::Admin] {
        let hour = if role == Role::Dentist { 8 } else { 9 };
        book(
            &app.client(&router, &app.token(&a, role)),
            booking(maria, a.dentist, tomorrow_at(hour, 0), 30),
        )
        .await;
    }
    assert_eq!(app.count("appointments", a.id).await, 3);
}

#[tokio::test]
async fn a_walk_in_may_be_recorded_a_few_hours_late() {
    let Setup {
        app,
        router,
        token,
        a,
        maria,
    } = setup().await;
    let start = Utc::now() - TimeDelta::hours(3);
    let created = book(
        &app.client(&router, &token),
        booking(maria, a.dentist, start, 20),
    )
    .await;
    assert_eq!(created["status"], "scheduled");
}

/// Every malformed or contradictory list query is a 400 naming its parameter.
async fn refuses_bad_list_queries(
    client: &Client,
    clinic_b: ClinicId,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
) {
    let day = TimeDelta::days(1);
    let range = format!("from={}&to={}", q(from), q(to));
    for (query, field) in [
        (
            format!("?{range}&status=scheduled&status=confirmed"),
            "status",
        ),
        (format!("?{range}&status=pending"), "status"),
        (format!("?{range}&status=no-show"), "status"),
        (format!("?from={}&to={}", q(to), q(from)), "to"),
        (format!("?from={}&to={}", q(from), q(from)), "to"),
        (format!("?from={}&to={}", q(from), q(from + day * 93)), "to"),
        (format!("?from={}", q(to)).replace("Z", ""), "from"),
        ("?from=tomorrow".to_string(), "from"),
        ("?to=2030-13-01T00:00:00Z".to_string(), "to"),
        (format!("?{range}&dentist_id=dr-who"), "dentist_id"),
        (format!("?{range}&patient_id=42"), "patient_id"),
        (format!("?{range}&clinic_id={}", clinic_b), "clinic_id"),
        ("?limit=0".to_string(), "limit"),
        ("?cursor=garbage".to_string(), "cursor"),
        (format!("?{range}&include=notes"), "include"),
        (format!("?{range}&include=patient,"), "include"),
    ] {
        let response = client.get(&format!("/appointments{query}")).await;
        assert_eq!(response.problem(400)["field"], field, "{query}");
    }
}

/// Every listed item carries the documented fields (`range` holds one confirmed appointment).
async fn lists_items_with_their_documented_fields(client: &Client, range: &str) {
    let response = client
        .get(&format!("/appointments?{range}&status=confirmed"))
        .await;
    let item = &response.body["items"][0];
    for field in [
        "id",
        "patient_id",
        "dentist_id",
        "starts_at",
        "ends_at",
        "status",
        "reason",
        "procedure_code",
        "created_at",
        "updated_at",
        "status_changed_at",
    ] {
        assert!(item.get(field).is_some(), "{field} missing: {item}");
    }
    assert_eq!(response.body["next_cursor"], Value::Null);
    // No names unless asked for; asked, the calendar gets them without a call per row.
    assert!(item.get("patient").is_none() && item.get("dentist").is_none());
    let named = client
        .get(&format!(
            "/appointments?{range}&status=confirmed&include=patient,dentist"
        ))
        .await;
    let item = &named.body["items"][0];
    for embedded in ["patient", "dentist"] {
        let name = item[embedded]["name"].as_str().unwrap_or_default();
        assert!(!name.trim().is_empty(), "{embedded}: {item}");
    }
    let only_dentist = client
        .get(&format!(
            "/appointments?{range}&status=confirmed&include=dentist"
        ))
        .await;
    assert!(only_dentist.body["items"][0].get("patient").is_none());
    assert_eq!(only_dentist.body["items"][0]["dentist"], item["dentist"]);
}

#[tokio::test]
async fn list_filters_by_range_dentist_patient_and_status() {
    let Setup {
        app,
        router,
        token,
        a,
        maria,
    } = setup().await;
    let client = app.client(&router, &token);
    let jose = app.seed_patient(a.id, "José").await;
    let day = TimeDelta::days(1);

    let book30 = |patient: PatientId, dentist: UserId, starts_at: DateTime<Utc>| {
        let client = &client;
        async move { id_of(&book(client, booking(patient, dentist, starts_at, 30)).await) }
    };
    let m1 = book30(maria, a.dentist, tomorrow_at(9, 0)).await;
    let j1 = book30(jose, a.second_dentist, tomorrow_at(9, 0)).await;
    let j2 = book30(jose, a.dentist, tomorrow_at(11, 0)).await;
    let m2 = book30(maria, a.second_dentist, tomorrow_at(12, 0) + day).await;
    let far = book30(maria, a.dentist, tomorrow_at(9, 0) + day * 10).await;
    assert_eq!(act(&client, &j1, "confirm").await.status, 200);
    assert_eq!(act(&client, &m2, "cancel").await.status, 200);

    let list = |query: String| {
        let client = &client;
        async move {
            let response = client.get(&format!("/appointments{query}")).await;
            assert_eq!(response.status, 200, "{query}: {}", response.body);
            ids(&response.body)
        }
    };
    let sorted = |mut ids: Vec<String>| {
        ids.sort();
        ids
    };
    // Default: today 00:00 UTC for a week, ordered by start then id.
    let week = list(String::new()).await;
    assert_eq!(week.len(), 4, "{week:?}");
    assert_eq!(
        sorted(week[..2].to_vec()),
        sorted(vec![m1.clone(), j1.clone()])
    );
    assert_eq!(week[2..], [j2.clone(), m2.clone()]);

    let from = tomorrow_at(0, 0);
    let to = tomorrow_at(0, 0) + day * 30;
    let all = list(format!("?from={}&to={}", q(from), q(to))).await;
    assert_eq!(all.len(), 5);
    assert_eq!(all.last(), Some(&far));
    // Only appointments *starting* in [from, to).
    let morning = list(format!(
        "?from={}&to={}",
        q(tomorrow_at(9, 0)),
        q(tomorrow_at(11, 0))
    ))
    .await;
    assert_eq!(sorted(morning), sorted(vec![m1.clone(), j1.clone()]));
    // An offset; and an unencoded `+`, which arrives as a space.
    let local_from = (tomorrow_at(10, 0) + TimeDelta::hours(2))
        .format("%Y-%m-%dT%H:%M:%S")
        .to_string();
    let later = list(format!(
        "?from={local_from}%2B02:00&to={}",
        q(tomorrow_at(13, 0))
    ))
    .await;
    assert_eq!(later, vec![j2.clone()]);
    let later = list(format!(
        "?from={local_from}+02:00&to={}",
        q(tomorrow_at(13, 0))
    ))
    .await;
    assert_eq!(later, vec![j2.clone()]);

    let range = format!("from={}&to={}", q(from), q(to));
    assert_eq!(
        list(format!("?{range}&dentist_id={}", a.second_dentist)).await,
        vec![j1.clone(), m2.clone()]
    );
    assert_eq!(
        list(format!("?{range}&patient_id={jose}")).await,
        vec![j1.clone(), j2.clone()]
    );
    assert_eq!(
        list(format!(
            "?{range}&patient_id={maria}&dentist_id={}",
            a.dentist
        ))
        .await,
        vec![m1.clone(), far.clone()]
    );
    assert_eq!(
        list(format!("?{range}&status=confirmed")).await,
        vec![j1.clone()]
    );
    assert_eq!(
        list(format!("?{range}&status=cancelled,confirmed")).await,
        vec![j1.clone(), m2.clone()]
    );
    assert_eq!(
        sorted(list(format!("?{range}&status=scheduled")).await),
        sorted(vec![m1.clone(), j2.clone(), far.clone()])
    );
    assert_eq!(
        list(format!("?{range}&status=no_show")).await,
        Vec::<String>::new()
    );

    lists_items_with_their_documented_fields(&client, &range).await;
    refuses_bad_list_queries(&client, app.clinic_b.id, from, to).await;
    // A 92-day range is allowed.
    list(format!("?from={}&to={}", q(from), q(from + day * 92))).await;
}

#[tokio::test]
async fn cursor_pagination_walks_every_appointment_once_in_order() {
    let Setup {
        app,
        router,
        token,
        a,
        maria,
    } = setup().await;
    let client = app.client(&router, &token);
    // Pairs with the same start (two dentists) exercise the id tie-break.
    let mut expected = Vec::new();
    for slot in 0..4 {
        let start = tomorrow_at(9, 0) + TimeDelta::minutes(30 * slot);
        for dentist in [a.dentist, a.second_dentist] {
            let body = book(&client, booking(maria, dentist, start, 30)).await;
            expected.push((start, id_of(&body)));
        }
    }
    expected.sort();
    let expected: Vec<String> = expected.into_iter().map(|(_, id)| id).collect();

    let range = format!("from={}&to={}", q(tomorrow_at(0, 0)), q(tomorrow_at(23, 0)));
    let mut seen = Vec::new();
    let mut uri = format!("/appointments?{range}&limit=3");
    let mut pages = 0;
    loop {
        let page = client.get(&uri).await;
        assert_eq!(page.status, 200, "{}", page.body);
        let items = ids(&page.body);
        assert!(items.len() <= 3);
        seen.extend(items);
        pages += 1;
        match page.body["next_cursor"].as_str() {
            Some(cursor) => uri = format!("/appointments?{range}&limit=3&cursor={cursor}"),
            None => break,
        }
    }
    assert_eq!(pages, 3);
    assert_eq!(seen, expected);
}

#[tokio::test]
async fn overlaps_are_conflicts_and_cancelled_slots_are_free() {
    let Setup {
        app,
        router,
        token,
        a,
        maria,
    } = setup().await;
    let client = app.client(&router, &token);
    let jose = app.seed_patient(a.id, "José").await;
    let first = book(&client, booking(maria, a.dentist, tomorrow_at(10, 0), 30)).await;

    for (start, minutes) in [
        (tomorrow_at(10, 15), 30), // starts inside
        (tomorrow_at(9, 45), 30),  // ends inside
        (tomorrow_at(9, 0), 180),  // contains it
        (tomorrow_at(10, 5), 10),  // inside it
        (tomorrow_at(10, 0), 30),  // the very same slot
    ] {
        let response = client
            .post("/appointments", &booking(jose, a.dentist, start, minutes))
            .await;
        let problem = response.problem(409);
        assert_eq!(problem["type"], "/problems/appointment-overlap");
        assert_eq!(problem["field"], "starts_at");
        let detail = problem["detail"].as_str().unwrap();
        assert!(detail.contains(&ts(tomorrow_at(10, 0))), "{detail}");
        assert!(detail.contains(&ts(tomorrow_at(10, 30))), "{detail}");
        assert!(
            !detail.contains("María") && !detail.contains("José"),
            "{detail}"
        );
    }
    assert_eq!(
        app.count("appointments", a.id).await,
        1,
        "nothing was written"
    );

    // Back to back on both sides is fine, and so is the same slot with another dentist.
    book(&client, booking(jose, a.dentist, tomorrow_at(10, 30), 30)).await;
    book(&client, booking(jose, a.dentist, tomorrow_at(9, 30), 30)).await;
    book(
        &client,
        booking(jose, a.second_dentist, tomorrow_at(10, 0), 30),
    )
    .await;
    // Another clinic's dentist timetable is its own.
    let other = app.token(&app.clinic_b, Role::Receptionist);
    let b_patient = app.seed_patient(app.clinic_b.id, "Lucía").await;
    book(
        &app.client(&router, &other),
        booking(b_patient, app.clinic_b.dentist, tomorrow_at(10, 0), 30),
    )
    .await;

    // A cancelled appointment frees its slot.
    assert_eq!(act(&client, &id_of(&first), "cancel").await.status, 200);
    let again = book(&client, booking(jose, a.dentist, tomorrow_at(10, 0), 30)).await;
    assert_eq!(again["status"], "scheduled");
    assert_eq!(app.count("appointments", a.id).await, 5);
}

#[tokio::test]
async fn concurrent_bookings_of_one_slot_let_exactly_one_through() {
    let Setup {
        app,
        router,
        token,
        a,
        maria,
    } = setup().await;
    let body = booking(maria, a.dentist, tomorrow_at(10, 0), 30);
    let client = app.client(&router, &token);
    let call = || client.post("/appointments", &body);
    let responses = tokio::join!(call(), call(), call(), call());
    let responses = [responses.0, responses.1, responses.2, responses.3];
    let created = responses.iter().filter(|r| r.status == 201).count();
    assert_eq!(created, 1, "exactly one booking wins");
    for response in responses.iter().filter(|r| r.status != 201) {
        // Whether the check or the exclusion constraint caught it, the answer is the same.
        let problem = response.problem(409);
        assert_eq!(problem["type"], "/problems/appointment-overlap");
        assert_eq!(problem["field"], "starts_at");
    }
    assert_eq!(app.count("appointments", a.id).await, 1);
}

#[tokio::test]
async fn a_booking_that_loses_a_race_is_stopped_by_the_exclusion_constraint() {
    let Setup {
        app,
        router,
        token,
        a,
        maria,
    } = setup().await;
    // Another booking of the slot, not yet committed: the service's check cannot see it, so
    // the insert waits on the `appointments_no_overlap` constraint until this one commits.
    let mut racer = app.owner_tx(a.id).await;
    sqlx::query(
        "INSERT INTO appointments (clinic_id, patient_id, dentist_id, starts_at, ends_at)
         VALUES ($1, $2, $3, $4, $5)",
    )
    .bind(a.id)
    .bind(maria)
    .bind(a.dentist)
    .bind(tomorrow_at(10, 15))
    .bind(tomorrow_at(10, 45))
    .execute(&mut *racer)
    .await
    .unwrap();
    let client = app.client(&router, &token);
    let body = booking(maria, a.dentist, tomorrow_at(10, 0), 30);
    let booking_call = client.post("/appointments", &body);
    let commit_once_blocked = async {
        for _ in 0..500 {
            let waiting: i64 = sqlx::query_scalar(
                "SELECT count(*) FROM pg_locks l JOIN pg_stat_activity s ON s.pid = l.pid
                 WHERE NOT l.granted AND s.datname = current_database()",
            )
            .fetch_one(&app.owner)
            .await
            .unwrap();
            if waiting > 0 {
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        }
        racer.commit().await.unwrap();
    };
    let (response, ()) = tokio::join!(booking_call, commit_once_blocked);
    let problem = response.problem(409);
    assert_eq!(problem["type"], "/problems/appointment-overlap");
    assert_eq!(problem["field"], "starts_at");
    assert_eq!(
        problem["detail"],
        "The dentist already has another appointment at that time."
    );
    assert_eq!(app.count("appointments", a.id).await, 1);
}

type RawCase<'a> = (&'a str, Option<&'a str>, Vec<u8>, u16, Option<&'a str>);

/// An archived patient and an inactive dentist of `clinic`: neither may be booked.
async fn archived_patient_and_inactive_dentist(
    app: &TestApp,
    clinic: ClinicId,
) -> (PatientId, UserId) {
    let archived = app.seed_patient(clinic, "Archivada").await;
    let inactive_dentist = UserId::new_random();
    let mut tx = app.owner_tx(clinic).await;
    sqlx::query("UPDATE patients SET archived_at = now() WHERE id = $1")
        .bind(archived)
        .execute(&mut *tx)
        .await
        .unwrap();
    sqlx::query(
        "INSERT INTO users (id, email, full_name) VALUES ($1, 'gone@clinic-a.pulso.test', 'Test gone')",
    )
    .bind(inactive_dentist)
    .execute(&mut *tx)
    .await
    .unwrap();
    sqlx::query(
        "INSERT INTO memberships (clinic_id, user_id, role, active) VALUES ($1, $2, 'dentist', false)",
    )
    .bind(clinic)
    .bind(inactive_dentist)
    .execute(&mut *tx)
    .await
    .unwrap();
    tx.commit().await.unwrap();
    (archived, inactive_dentist)
}

#[tokio::test]
async fn bad_bookings_are_rejected_with_a_problem_and_write_nothing() {
    let Setup {
        app,
        router,
        token,
        a,
        maria,
    } = setup().await;
    let client = app.client(&router, &token);
    let b = app.clinic_b;
    let b_patient = app.seed_patient(b.id, "Lucía").await;
    let (archived, inactive_dentist) = archived_patient_and_inactive_dentist(&app, a.id).await;

    let start = tomorrow_at(10, 0);
    let valid = booking(maria, a.dentist, start, 30);
    let with = |changes: Value| {
        let mut body = valid.clone();
        for (key, value) in changes.as_object().unwrap() {
            if value.is_null() {
                body.as_object_mut().unwrap().remove(key);
            } else {
                body[key] = value.clone();
            }
        }
        body.to_string().into_bytes()
    };
    let json = Some("application/json");
    // (name, content type, body, status, field)
    #[rustfmt::skip]
    let cases: Vec<RawCase> = vec![
        ("malformed JSON", json, b"{\"patient_id\": ".to_vec(), 400, None),
        ("wrong type", json, with(json!({"duration_minutes": "thirty"})), 422, Some("duration_minutes")),
        ("negative duration", json, with(json!({"duration_minutes": -30})), 422, Some("duration_minutes")),
        ("unknown field", json, with(json!({"clinic_id": b.id})), 422, Some("clinic_id")),
        ("status is not settable", json, with(json!({"status": "confirmed"})), 422, Some("status")),
        ("missing patient", json, with(json!({"patient_id": null})), 422, Some("patient_id")),
        ("missing dentist", json, with(json!({"dentist_id": null})), 422, Some("dentist_id")),
        ("missing start", json, with(json!({"starts_at": null})), 422, Some("starts_at")),
        ("no end", json, with(json!({"duration_minutes": null})), 422, Some("ends_at")),
        ("both end and duration", json, with(json!({"ends_at": ts(start + TimeDelta::minutes(30))})), 422, Some("duration_minutes")),
        ("end before start", json, with(json!({"duration_minutes": null, "ends_at": ts(start - TimeDelta::minutes(30))})), 422, Some("ends_at")),
        ("end at start", json, with(json!({"duration_minutes": null, "ends_at": ts(start)})), 422, Some("ends_at")),
        ("shorter than 5 minutes", json, with(json!({"duration_minutes": null, "ends_at": ts(start + TimeDelta::minutes(4))})), 422, Some("ends_at")),
        ("longer than 12 hours", json, with(json!({"duration_minutes": null, "ends_at": ts(start + TimeDelta::minutes(721))})), 422, Some("ends_at")),
        ("duration too short", json, with(json!({"duration_minutes": 4})), 422, Some("duration_minutes")),
        ("duration too long", json, with(json!({"duration_minutes": 721})), 422, Some("duration_minutes")),
        ("start without offset", json, with(json!({"starts_at": "2030-05-06T10:00:00"})), 422, Some("starts_at")),
        ("impossible date", json, with(json!({"starts_at": "2030-02-30T10:00:00Z"})), 422, Some("starts_at")),
        ("more than two years ahead", json, with(json!({"starts_at": ts(Utc::now() + TimeDelta::days(3 * 365))})), 422, Some("starts_at")),
        ("more than a day late", json, with(json!({"starts_at": ts(Utc::now() - TimeDelta::hours(25))})), 422, Some("starts_at")),
        ("bad patient id", json, with(json!({"patient_id": "42"})), 422, Some("patient_id")),
        ("unknown patient", json, with(json!({"patient_id": PatientId::new_random()})), 422, Some("patient_id")),
        ("another clinic's patient", json, with(json!({"patient_id": b_patient})), 422, Some("patient_id")),
        ("archived patient", json, with(json!({"patient_id": archived})), 422, Some("patient_id")),
        ("unknown dentist", json, with(json!({"dentist_id": UserId::new_random()})), 422, Some("dentist_id")),
        ("another clinic's dentist", json, with(json!({"dentist_id": b.dentist})), 422, Some("dentist_id")),
        ("receptionist as dentist", json, with(json!({"dentist_id": a.receptionist})), 422, Some("dentist_id")),
        ("admin as dentist", json, with(json!({"dentist_id": a.admin})), 422, Some("dentist_id")),
        ("inactive dentist", json, with(json!({"dentist_id": inactive_dentist})), 422, Some("dentist_id")),
        ("reason too long", json, with(json!({"reason": "x".repeat(501)})), 422, Some("reason")),
        ("NUL in the reason", json, with(json!({"reason": "dolor\u{0}"})), 422, Some("reason")),
        ("bidi override in the reason", json, with(json!({"reason": "x\u{202E}y"})), 422, Some("reason")),
        ("bad procedure code", json, with(json!({"procedure_code": "LIMP 2"})), 422, Some("procedure_code")),
        ("not JSON content type", Some("text/plain"), with(json!({})), 415, None),
    ];
    for (name, content_type, body, status, field) in cases {
        let response = client
            .send_bytes(Method::POST, "/appointments", content_type, body)
            .await;
        let problem = response.problem(status);
        assert_eq!(problem["field"].as_str(), field, "{name}: {problem}");
        assert!(
            !problem.to_string().contains("xxxxxxxx"),
            "{name}: reasons are never echoed"
        );
    }
    let unknown = client
        .post(
            "/appointments",
            &booking(PatientId::new_random(), a.dentist, start, 30),
        )
        .await;
    assert_eq!(
        unknown.problem(422)["detail"],
        "no such patient in your clinic"
    );
    let receptionist = client
        .post("/appointments", &booking(maria, a.receptionist, start, 30))
        .await;
    assert!(
        receptionist.problem(422)["detail"]
            .as_str()
            .unwrap()
            .contains("receptionist")
    );

    assert_eq!(
        app.count("appointments", a.id).await,
        0,
        "nothing was written"
    );
    assert_eq!(
        app.count("appointments", b.id).await,
        0,
        "nothing was written"
    );
    // The valid body itself books fine: the cases above failed for their own reason.
    book(&client, valid).await;

    let anonymous = app.anonymous(&router).get("/appointments").await;
    anonymous.problem(401);
    let wrong_method = client.delete("/appointments").await;
    wrong_method.problem(405);
}

#[tokio::test]
async fn reschedules_follow_the_booking_rules_and_change_nothing_when_refused() {
    let Setup {
        app,
        router,
        token,
        a,
        maria,
    } = setup().await;
    let client = app.client(&router, &token);
    let jose = app.seed_patient(a.id, "José").await;
    let id = id_of(&book(&client, booking(maria, a.dentist, tomorrow_at(10, 0), 30)).await);
    book(&client, booking(jose, a.dentist, tomorrow_at(11, 0), 30)).await;
    let second_dentist_busy = booking(jose, a.second_dentist, tomorrow_at(10, 0), 30);
    book(&client, second_dentist_busy).await;
    let before = show(&client, &id).await;
    let uri = format!("/appointments/{id}");

    #[rustfmt::skip]
    let cases: Vec<(Value, u16, Option<&str>, &str)> = vec![
        (json!({}), 400, None, "/problems/bad-request"),
        (json!({"patient_id": jose}), 422, Some("patient_id"), "/problems/validation"),
        (json!({"status": "confirmed"}), 422, Some("status"), "/problems/validation"),
        (json!({"starts_at": null}), 422, Some("starts_at"), "/problems/validation"),
        (json!({"dentist_id": null}), 422, Some("dentist_id"), "/problems/validation"),
        (json!({"reason": null}), 422, Some("reason"), "/problems/validation"),
        (json!({"starts_at": 1700000000}), 422, Some("starts_at"), "/problems/validation"),
        (json!({"ends_at": ts(tomorrow_at(9, 0))}), 422, Some("ends_at"), "/problems/validation"),
        (json!({"ends_at": ts(tomorrow_at(11, 0)), "duration_minutes": 60}), 422, Some("duration_minutes"), "/problems/validation"),
        (json!({"duration_minutes": 0}), 422, Some("duration_minutes"), "/problems/validation"),
        (json!({"starts_at": ts(Utc::now() + TimeDelta::days(800))}), 422, Some("starts_at"), "/problems/validation"),
        (json!({"dentist_id": a.receptionist}), 422, Some("dentist_id"), "/problems/validation"),
        (json!({"dentist_id": app.clinic_b.dentist}), 422, Some("dentist_id"), "/problems/validation"),
        // Into the 11:00 appointment of the same dentist.
        (json!({"starts_at": ts(tomorrow_at(10, 45))}), 409, Some("starts_at"), "/problems/appointment-overlap"),
        (json!({"duration_minutes": 61}), 409, Some("starts_at"), "/problems/appointment-overlap"),
        // To a dentist who is busy then.
        (json!({"dentist_id": a.second_dentist}), 409, Some("starts_at"), "/problems/appointment-overlap"),
    ];
    for (body, status, field, kind) in cases {
        let response = client.patch(&uri, &body).await;
        let problem = response.problem(status);
        assert_eq!(problem["field"].as_str(), field, "{body}: {problem}");
        assert_eq!(problem["type"], kind, "{body}");
    }
    let malformed = client
        .send_bytes(
            Method::PATCH,
            &uri,
            Some("application/json"),
            "{\"reason\": ",
        )
        .await;
    malformed.problem(400);
    assert_eq!(
        show(&client, &id).await,
        before,
        "refused PATCHes changed nothing"
    );

    let bad_id = client
        .patch("/appointments/not-a-uuid", &json!({"reason": "x"}))
        .await;
    assert_eq!(bad_id.problem(400)["field"], "id");
    let bad_id = client.get("/appointments/42").await;
    assert_eq!(bad_id.problem(400)["field"], "id");
    let missing = client
        .patch(
            &format!("/appointments/{}", uuid::Uuid::new_v4()),
            &json!({"reason": "x"}),
        )
        .await;
    assert_eq!(missing.problem(404)["type"], "/problems/not-found");

    // An open appointment from two days ago (never closed) may be edited, and a form that
    // sends its unchanged start back is fine; moving it to another past time is not.
    let stale_start = Utc::now() - TimeDelta::days(2);
    let mut tx = app.owner_tx(a.id).await;
    let stale: uuid::Uuid = sqlx::query_scalar(
        "INSERT INTO appointments (clinic_id, patient_id, dentist_id, starts_at, ends_at)
         VALUES ($1, $2, $3, $4, $4 + interval '30 minutes') RETURNING id",
    )
    .bind(a.id)
    .bind(maria)
    .bind(a.dentist)
    .bind(stale_start)
    .fetch_one(&mut *tx)
    .await
    .unwrap();
    tx.commit().await.unwrap();
    let stale_uri = format!("/appointments/{stale}");
    let stale_before = show(&client, &stale.to_string()).await;
    let resent = client
        .patch(
            &stale_uri,
            &json!({"starts_at": stale_before["starts_at"], "reason": "Urgencia"}),
        )
        .await;
    assert_eq!(resent.status, 200, "{}", resent.body);
    assert_eq!(resent.body["reason"], "Urgencia");
    let moved_back = client
        .patch(
            &stale_uri,
            &json!({"starts_at": ts(stale_start + TimeDelta::hours(1))}),
        )
        .await;
    assert_eq!(moved_back.problem(422)["field"], "starts_at");

    // Closed appointments are history: no more edits.
    assert_eq!(act(&client, &id, "cancel").await.status, 200);
    let closed = client
        .patch(&uri, &json!({"starts_at": ts(tomorrow_at(15, 0))}))
        .await;
    let problem = closed.problem(409);
    assert_eq!(problem["type"], "/problems/appointment-closed");
    assert!(problem["detail"].as_str().unwrap().contains("cancelled"));
    let after = show(&client, &id).await;
    assert_eq!(after["starts_at"], before["starts_at"]);
}

/// Books an appointment that started an hour or so ago (so every action is possible) and
/// brings it to `status` through the API.
async fn appointment_in(
    client: &Client,
    patient: PatientId,
    dentist: UserId,
    index: i64,
    status: &str,
) -> String {
    let start = Utc::now() - TimeDelta::hours(20) + TimeDelta::minutes(10 * index);
    let id = id_of(&book(client, booking(patient, dentist, start, 5)).await);
    let action = match status {
        "scheduled" => None,
        "confirmed" => Some("confirm"),
        "cancelled" => Some("cancel"),
        "completed" => Some("complete"),
        "no_show" => Some("no-show"),
        other => panic!("unknown status {other}"),
    };
    if let Some(action) = action {
        let response = act(client, &id, action).await;
        assert_eq!(response.status, 200, "{}", response.body);
        assert_eq!(response.body["status"], status);
    }
    id
}

#[tokio::test]
async fn the_whole_transition_table_through_the_api() {
    let Setup {
        app,
        router,
        token,
        a,
        maria,
    } = setup().await;
    let client = app.client(&router, &token);
    let statuses = [
        "scheduled",
        "confirmed",
        "completed",
        "cancelled",
        "no_show",
    ];
    let actions = [
        ("confirm", "confirmed"),
        ("cancel", "cancelled"),
        ("complete", "completed"),
        ("no-show", "no_show"),
    ];
    let allowed = |from: &str, action: &str| match action {
        "confirm" => matches!(from, "scheduled" | "confirmed"),
        "cancel" => matches!(from, "scheduled" | "confirmed" | "cancelled"),
        "complete" => matches!(from, "scheduled" | "confirmed" | "completed"),
        "no-show" => matches!(from, "scheduled" | "confirmed" | "no_show"),
        _ => unreachable!(),
    };
    let mut index = 0;
    for from in statuses {
        for (action, target) in actions {
            index += 1;
            let id = appointment_in(&client, maria, a.dentist, index, from).await;
            let before = show(&client, &id).await;
            let response = act(&client, &id, action).await;
            if allowed(from, action) {
                assert_eq!(response.status, 200, "{from} + {action}: {}", response.body);
                assert_eq!(response.body["status"], target, "{from} + {action}");
                if from == target {
                    // A repeat is answered as is: clients retry.
                    assert_eq!(response.body, before, "{from} + {action}");
                } else {
                    assert!(
                        at(&response.body["status_changed_at"]) > at(&before["status_changed_at"]),
                        "{from} + {action}"
                    );
                }
            } else {
                let problem = response.problem(409);
                assert_eq!(
                    problem["type"], "/problems/invalid-transition",
                    "{from} + {action}"
                );
                let detail = problem["detail"].as_str().unwrap().to_lowercase();
                let from_words = if from == "no_show" { "no-show" } else { from };
                assert!(detail.contains(from_words), "{from} + {action}: {detail}");
                assert!(detail.contains(action), "{from} + {action}: {detail}");
                assert_eq!(show(&client, &id).await, before, "{from} + {action}");
            }
        }
    }
    // The wording the desk sees.
    let id = appointment_in(&client, maria, a.dentist, 30, "cancelled").await;
    let response = act(&client, &id, "complete").await;
    assert_eq!(
        response.problem(409)["detail"],
        "Cannot complete an appointment that is cancelled."
    );
}

#[tokio::test]
async fn complete_and_no_show_wait_for_the_start() {
    let Setup {
        app,
        router,
        token,
        a,
        maria,
    } = setup().await;
    let client = app.client(&router, &token);
    let id = id_of(&book(&client, booking(maria, a.dentist, tomorrow_at(10, 0), 30)).await);
    for action in ["complete", "no-show"] {
        let response = act(&client, &id, action).await;
        let problem = response.problem(409);
        assert_eq!(problem["type"], "/problems/appointment-not-started");
        assert!(
            problem["detail"]
                .as_str()
                .unwrap()
                .contains(&ts(tomorrow_at(10, 0)))
        );
    }
    assert_eq!(show(&client, &id).await["status"], "scheduled");
    // Confirming and cancelling ahead of time is what they are for.
    let confirmed = act(&client, &id, "confirm").await;
    assert_eq!(confirmed.body["status"], "confirmed");
    let dentist = app.token(&a, Role::Dentist);
    let cancelled = act(&app.client(&router, &dentist), &id, "cancel").await;
    assert_eq!(cancelled.body["status"], "cancelled");
}

#[tokio::test]
async fn action_routes_take_no_body_and_only_known_actions() {
    let Setup {
        app,
        router,
        token,
        a,
        maria,
    } = setup().await;
    let client = app.client(&router, &token);
    let id = id_of(&book(&client, booking(maria, a.dentist, tomorrow_at(10, 0), 30)).await);
    let before = show(&client, &id).await;

    for action in ["delete", "no_show", "Confirm", "reschedule"] {
        let response = act(&client, &id, action).await;
        assert_eq!(
            response.problem(404)["type"],
            "/problems/not-found",
            "{action}"
        );
    }
    let bad_id = act(&client, "not-a-uuid", "confirm").await;
    assert_eq!(bad_id.problem(400)["field"], "id");
    let missing = act(&client, &uuid::Uuid::new_v4().to_string(), "confirm").await;
    assert_eq!(
        missing.problem(404)["detail"],
        "No appointment with that id exists in your clinic."
    );
    let wrong_method = client.get(&format!("/appointments/{id}/confirm")).await;
    wrong_method.problem(405);

    let uri = format!("/appointments/{id}/cancel");
    let with_reason = client.post(&uri, &json!({"reason": "xxxxxxxx"})).await;
    let problem = with_reason.problem(422);
    assert_eq!(problem["field"], "reason");
    assert!(!problem.to_string().contains("xxxxxxxx"));
    let malformed = client
        .send_bytes(Method::POST, &uri, Some("application/json"), "{")
        .await;
    malformed.problem(400);
    // serde would read `[]` as the empty object; an array is no body for an action.
    let array = client.post(&uri, &json!([])).await;
    assert_eq!(array.problem(422)["field"], ".");
    let text = client
        .send_bytes(Method::POST, &uri, Some("text/plain"), "cancel please")
        .await;
    text.problem(415);
    assert_eq!(
        show(&client, &id).await,
        before,
        "refused actions changed nothing"
    );

    // `{}` is accepted for clients that always send a JSON body.
    let confirmed = client
        .post(&format!("/appointments/{id}/confirm"), &json!({}))
        .await;
    assert_eq!(confirmed.status, 200, "{}", confirmed.body);
    assert_eq!(confirmed.body["status"], "confirmed");
    let anonymous = app.anonymous(&router).post_empty(&uri).await;
    anonymous.problem(401);
}

#[tokio::test]
async fn another_clinic_can_neither_see_nor_touch_an_appointment() {
    let Setup {
        app,
        router,
        token,
        a,
        maria,
    } = setup().await;
    let client = app.client(&router, &token);
    let created = book(&client, booking(maria, a.dentist, tomorrow_at(10, 0), 30)).await;
    let id = id_of(&created);
    let uri = format!("/appointments/{id}");
    for role in [Role::Admin, Role::Receptionist, Role::Dentist] {
        let other = app.token(&app.clinic_b, role);
        let shown = app.client(&router, &other).get(&uri).await;
        assert_eq!(shown.problem(404)["type"], "/problems/not-found");
        let patched = app
            .client(&router, &other)
            .patch(&uri, &json!({"reason": "x"}))
            .await;
        patched.problem(404);
        for action in ["confirm", "cancel", "complete", "no-show"] {
            let response = act(&app.client(&router, &other), &id, action).await;
            response.problem(404);
        }
        let range = format!("from={}&to={}", q(tomorrow_at(0, 0)), q(tomorrow_at(23, 0)));
        for query in [
            String::new(),
            format!("?{range}"),
            format!("?{range}&patient_id={maria}"),
            format!("?{range}&dentist_id={}", a.dentist),
        ] {
            let listed = app
                .client(&router, &other)
                .get(&format!("/appointments{query}"))
                .await;
            assert_eq!(listed.status, 200);
            assert!(ids(&listed.body).is_empty(), "{query}: {}", listed.body);
        }
        // Booking into clinic A's calendar from clinic B is not possible either.
        let booked = app
            .client(&router, &other)
            .post(
                "/appointments",
                &booking(maria, a.dentist, tomorrow_at(12, 0), 30),
            )
            .await;
        booked.problem(422);
    }
    assert_eq!(show(&client, &id).await, created, "untouched");
    assert_eq!(app.count("appointments", app.clinic_b.id).await, 0);
}

#[tokio::test]
async fn a_booking_names_a_procedure_its_clinic_offers() {
    let Setup {
        app,
        router,
        token,
        a,
        maria,
    } = setup().await;
    let client = app.client(&router, &token);
    let b = app.clinic_b;
    // Clinic B's own item, clinic A's own item, and a global one clinic A hides.
    let item = |name| json!({"name": name, "default_minutes": 30});
    app.put_catalog_item(&b, "procedure", "B-ONLY", &item("Solo en B"))
        .await;
    app.put_catalog_item(&a, "procedure", "A-ONLY", &item("Solo en A"))
        .await;
    app.put_catalog_item(&a, "procedure", "EXT", &json!({"active": false}))
        .await;

    let at = |hour| booking(maria, a.dentist, tomorrow_at(hour, 0), 30);
    let with_code = |hour, code: &str| {
        let mut body = at(hour);
        body["procedure_code"] = json!(code);
        body
    };
    for code in ["B-ONLY", "NOPE", "EXT"] {
        let refused = client.post("/appointments", &with_code(9, code)).await;
        assert_eq!(refused.problem(422)["field"], "procedure_code", "{code}");
    }
    assert_eq!(
        app.count("appointments", a.id).await,
        0,
        "nothing was booked"
    );

    // The global catalog and the clinic's own items are offered.
    let global = book(&client, with_code(9, "REV")).await;
    book(&client, with_code(10, "A-ONLY")).await;

    // A change of procedure is checked the same way; nothing changes when refused.
    let id = id_of(&global);
    let moved = client
        .patch(
            &format!("/appointments/{id}"),
            &json!({"procedure_code": "B-ONLY"}),
        )
        .await;
    assert_eq!(moved.problem(422)["field"], "procedure_code");
    assert_eq!(show(&client, &id).await["procedure_code"], "REV");

    // An open appointment keeps a procedure retired after it was booked.
    app.put_catalog_item(&a, "procedure", "REV", &json!({"active": false}))
        .await;
    let edited = client
        .patch(
            &format!("/appointments/{id}"),
            &json!({"procedure_code": "REV", "reason": "Control"}),
        )
        .await;
    assert_eq!(edited.status, 200, "{}", edited.body);
}
