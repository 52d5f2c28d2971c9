//! `/patients` through the real router, PostgreSQL and Redis.

use http::Method;
use pulso_tests::{Client, TestApp, TestOptions};
use redis::AsyncCommands;
use serde_json::{Value, json};
use shared::auth::Role;
use shared::ids::PatientId;

fn maria() -> Value {
    json!({
        "first_name": "María José",
        "last_name": "García Núñez",
        "phone": "+34 600 123 456",
        "email": "MJ.Garcia@Example.es",
        "birth_date": "1984-03-09",
        "national_id": "12345678z",
        "notes": "Alergia a la penicilina."
    })
}

async fn create(client: &Client, body: Value) -> Value {
    let response = client.post("/patients", &body).await;
    assert_eq!(response.status, 201, "{}", response.body);
    response.body
}

#[tokio::test]
async fn register_read_update_and_archive_a_patient() {
    let app = TestApp::spawn().await;
    let router = shared::patients::router(app.state.clone());
    let token = app.token(&app.clinic_a, Role::Receptionist);
    let client = app.client(&router, &token);

    let created = client.post("/patients", &maria()).await;
    assert_eq!(created.status, 201, "{}", created.body);
    let id = created.body["id"].as_str().expect("id").to_string();
    assert_eq!(
        created
            .headers
            .get("location")
            .and_then(|v| v.to_str().ok()),
        Some(format!("/patients/{id}").as_str())
    );
    // Normalised at the edge.
    assert_eq!(created.body["phone"], "+34600123456");
    assert_eq!(created.body["email"], "mj.garcia@example.es");
    assert_eq!(created.body["national_id"], "12345678Z");
    assert_eq!(created.body["archived_at"], Value::Null);
    assert!(created.headers.get("x-request-id").is_some());

    let shown = client.get(&format!("/patients/{id}")).await;
    assert_eq!(shown.status, 200);
    assert_eq!(shown.body, created.body);

    let updated = client
        .patch(
            &format!("/patients/{id}"),
            &json!({"phone": null, "last_name": "García López"}),
        )
        .await;
    assert_eq!(updated.status, 200, "{}", updated.body);
    assert_eq!(updated.body["phone"], Value::Null);
    assert_eq!(updated.body["last_name"], "García López");
    assert_eq!(updated.body["first_name"], "María José");
    assert_eq!(updated.body["email"], "mj.garcia@example.es");
    // A number typed as reception says it is read in the clinic's country (Spain) and stored
    // in E.164, what SMS need.
    let national = client
        .patch(
            &format!("/patients/{id}"),
            &json!({"phone": "696 87 12 13"}),
        )
        .await;
    assert_eq!(national.body["phone"], "+34696871213", "{}", national.body);

    let archived = client.delete(&format!("/patients/{id}")).await;
    assert_eq!(archived.status, 204);
    // Archived, not erased: still readable, hidden from lists, no longer editable.
    let shown = client.get(&format!("/patients/{id}")).await;
    assert_eq!(shown.status, 200);
    assert!(shown.body["archived_at"].is_string());
    let listed = client.get("/patients").await;
    assert_eq!(listed.body["items"].as_array().map(Vec::len), Some(0));
    let listed = client.get("/patients?include_archived=true").await;
    assert_eq!(listed.body["items"].as_array().map(Vec::len), Some(1));
    let patch = client
        .patch(&format!("/patients/{id}"), &json!({"first_name": "Ana"}))
        .await;
    assert_eq!(patch.problem(409)["type"], "/problems/patient-archived");
    // Archiving twice is harmless.
    let again = client.delete(&format!("/patients/{id}")).await;
    assert_eq!(again.status, 204);
}

#[tokio::test]
async fn search_by_name_without_accents_and_by_phone_prefix() {
    let app = TestApp::spawn().await;
    let router = shared::patients::router(app.state.clone());
    let token = app.token(&app.clinic_a, Role::Receptionist);
    let client = app.client(&router, &token);
    create(&client, maria()).await;
    create(
        &client,
        json!({"first_name": "José", "last_name": "Martínez Ruiz", "phone": "915550101"}),
    )
    .await;
    create(
        &client,
        json!({"first_name": "Lucía", "last_name": "Garcés", "phone": "+34 611 000 000"}),
    )
    .await;

    let names = |body: &Value| -> Vec<String> {
        body["items"]
            .as_array()
            .expect("items")
            .iter()
            .map(|p| {
                format!(
                    "{} {}",
                    p["first_name"].as_str().unwrap(),
                    p["last_name"].as_str().unwrap()
                )
            })
            .collect()
    };
    let found = client.get("/patients?search=garcia").await;
    assert_eq!(names(&found.body), vec!["María José García Núñez"]);
    let found = client.get("/patients?search=GAR").await;
    assert_eq!(
        names(&found.body),
        vec!["Lucía Garcés", "María José García Núñez"]
    );
    let found = client.get("/patients?search=jose%20nu").await;
    assert_eq!(names(&found.body), vec!["María José García Núñez"]);
    // With or without the country code, spaces as typed.
    let found = client.get("/patients?search=600%2012").await;
    assert_eq!(names(&found.body), vec!["María José García Núñez"]);
    let found = client.get("/patients?search=%2B3461").await;
    assert_eq!(names(&found.body), vec!["Lucía Garcés"]);
    let found = client.get("/patients?search=9155").await;
    assert_eq!(names(&found.body), vec!["José Martínez Ruiz"]);
    let found = client.get("/patients?search=zzz").await;
    assert!(names(&found.body).is_empty());
}

#[tokio::test]
async fn cursor_pagination_walks_every_patient_once() {
    let app = TestApp::spawn().await;
    let router = shared::patients::router(app.state.clone());
    let token = app.token(&app.clinic_a, Role::Admin);
    let client = app.client(&router, &token);
    for i in 0..7 {
        create(
            &client,
            json!({"first_name": format!("Paciente{i}"), "last_name": "Pérez"}),
        )
        .await;
    }
    let mut seen = Vec::new();
    let mut uri = "/patients?limit=3".to_string();
    loop {
        let page = client.get(&uri).await;
        assert_eq!(page.status, 200, "{}", page.body);
        let items = page.body["items"].as_array().expect("items").clone();
        assert!(items.len() <= 3);
        seen.extend(
            items
                .iter()
                .map(|p| p["first_name"].as_str().unwrap().to_string()),
        );
        match page.body["next_cursor"].as_str() {
            Some(cursor) => uri = format!("/patients?limit=3&cursor={cursor}"),
            None => break,
        }
    }
    let expected: Vec<String> = (0..7).map(|i| format!("Paciente{i}")).collect();
    assert_eq!(seen, expected);

    let bad = client.get("/patients?cursor=garbage").await;
    assert_eq!(bad.problem(400)["field"], "cursor");
    let bad = client.get("/patients?limit=0").await;
    assert_eq!(bad.problem(400)["field"], "limit");
    let bad = client.get("/patients?limit=ten").await;
    assert_eq!(bad.problem(400)["field"], "limit");
    let bad = client.get("/patients?colour=red").await;
    assert_eq!(bad.problem(400)["field"], "colour");
}

#[tokio::test]
async fn profile_is_cached_and_invalidated_by_every_change() {
    let app = TestApp::spawn().await;
    let router = shared::patients::router(app.state.clone());
    let token = app.token(&app.clinic_a, Role::Dentist);
    let client = app.client(&router, &token);
    let id: PatientId = create(&client, maria()).await["id"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    let key = app.state.keys.patient_profile(app.clinic_a.id, id).value;
    let mut redis = app.redis().await;

    let first = client.get(&format!("/patients/{id}")).await;
    assert_eq!(first.status, 200);
    let cached: Option<String> = redis.get(&key).await.unwrap();
    assert!(
        cached.is_some_and(|v| v.contains("María José")),
        "profile stored in Redis"
    );
    let ttl: i64 = redis.ttl(&key).await.unwrap();
    assert!(
        (13 * 60..=17 * 60).contains(&ttl),
        "15 min ± jitter, got {ttl}"
    );

    // A change in PostgreSQL made behind the API's back is not seen: the read is a cache hit.
    let mut tx = app.owner_tx(app.clinic_a.id).await;
    sqlx::query("UPDATE patients SET first_name = 'Oculta' WHERE id = $1")
        .bind(id)
        .execute(&mut *tx)
        .await
        .unwrap();
    tx.commit().await.unwrap();
    let hit = client.get(&format!("/patients/{id}")).await;
    assert_eq!(hit.body["first_name"], "María José");

    // A PATCH through the API invalidates: the next read loads the new row.
    let patched = client
        .patch(
            &format!("/patients/{id}"),
            &json!({"first_name": "Mariajo"}),
        )
        .await;
    assert_eq!(patched.status, 200);
    let exists: bool = redis.exists(&key).await.unwrap();
    assert!(!exists, "PATCH removed the cached profile");
    let fresh = client.get(&format!("/patients/{id}")).await;
    assert_eq!(fresh.body["first_name"], "Mariajo");

    // Archiving invalidates too.
    app.client(&router, &app.token(&app.clinic_a, Role::Admin))
        .delete(&format!("/patients/{id}"))
        .await;
    let archived = client.get(&format!("/patients/{id}")).await;
    assert!(archived.body["archived_at"].is_string());

    // A value that no longer decodes (an older format, corruption) is a miss, then overwritten.
    let _: () = redis.set(&key, "{not json").await.unwrap();
    let reread = client.get(&format!("/patients/{id}")).await;
    assert_eq!(reread.status, 200);
    assert_eq!(reread.body["first_name"], "Mariajo");
    let repaired: String = redis.get(&key).await.unwrap();
    assert!(repaired.contains("Mariajo"));
}

#[tokio::test]
async fn reads_and_writes_work_while_redis_is_unreachable() {
    let app = TestApp::spawn_with(TestOptions {
        redis_unreachable: true,
        ..TestOptions::default()
    })
    .await;
    let router = shared::patients::router(app.state.clone());
    let token = app.token(&app.clinic_a, Role::Receptionist);
    let client = app.client(&router, &token);
    let id = create(&client, maria()).await["id"]
        .as_str()
        .unwrap()
        .to_string();
    for _ in 0..3 {
        let shown = client.get(&format!("/patients/{id}")).await;
        assert_eq!(shown.status, 200, "{}", shown.body);
        assert_eq!(shown.body["first_name"], "María José");
    }
    let patched = client
        .patch(&format!("/patients/{id}"), &json!({"notes": ""}))
        .await;
    assert_eq!(patched.status, 200);
    let shown = client.get(&format!("/patients/{id}")).await;
    assert_eq!(shown.body["notes"], "");
}

#[tokio::test]
async fn duplicate_national_id_is_a_conflict() {
    let app = TestApp::spawn().await;
    let router = shared::patients::router(app.state.clone());
    let token = app.token(&app.clinic_a, Role::Receptionist);
    let client = app.client(&router, &token);
    create(&client, maria()).await;
    let again = client.post("/patients", &maria()).await;
    let problem = again.problem(409);
    assert_eq!(problem["type"], "/problems/duplicate-national-id");
    assert_eq!(problem["field"], "national_id");
    assert_eq!(app.count("patients", app.clinic_a.id).await, 1);
    // Another clinic may register the same person.
    let other = app.token(&app.clinic_b, Role::Receptionist);
    create(&app.client(&router, &other), maria()).await;
}

#[tokio::test]
async fn bad_input_is_rejected_with_a_problem_and_writes_nothing() {
    let app = TestApp::spawn_with(TestOptions {
        max_body_bytes: Some(4096),
        ..TestOptions::default()
    })
    .await;
    let router = shared::patients::router(app.state.clone());
    let token = app.token(&app.clinic_a, Role::Receptionist);
    let client = app.client(&router, &token);
    let clinic = app.clinic_a.id;

    // (case, content type, body, expected status, expected field)
    type Case<'a> = (&'a str, Option<&'a str>, Vec<u8>, u16, Option<&'a str>);
    #[rustfmt::skip]
    let cases: Vec<Case> = vec![
        ("malformed JSON", Some("application/json"), b"{\"first_name\": \"Ana\",".to_vec(), 400, None),
        ("trailing garbage", Some("application/json"), b"{\"first_name\":\"A\",\"last_name\":\"B\"} x".to_vec(), 400, None),
        ("wrong type", Some("application/json"), br#"{"first_name": 42, "last_name": "B"}"#.to_vec(), 422, Some("first_name")),
        ("unknown field", Some("application/json"), br#"{"first_name": "A", "last_name": "B", "clinic_id": "x"}"#.to_vec(), 422, Some("clinic_id")),
        ("missing field", Some("application/json"), br#"{"first_name": "A"}"#.to_vec(), 422, Some("last_name")),
        ("empty name", Some("application/json"), br#"{"first_name": "  ", "last_name": "B"}"#.to_vec(), 422, Some("first_name")),
        ("bad phone", Some("application/json"), br#"{"first_name": "A", "last_name": "B", "phone": "call me"}"#.to_vec(), 422, Some("phone")),
        ("no number of the clinic's country", Some("application/json"), br#"{"first_name": "A", "last_name": "B", "phone": "123 456 78"}"#.to_vec(), 422, Some("phone")),
        ("bad email", Some("application/json"), br#"{"first_name": "A", "last_name": "B", "email": "nope"}"#.to_vec(), 422, Some("email")),
        ("NUL in the email", Some("application/json"), br#"{"first_name": "A", "last_name": "B", "email": "a\u0000@b.es"}"#.to_vec(), 422, Some("email")),
        ("NUL in the notes", Some("application/json"), br#"{"first_name": "A", "last_name": "B", "notes": "al\u0000rgia"}"#.to_vec(), 422, Some("notes")),
        ("bidi override in a name", Some("application/json"), br#"{"first_name": "A\u202Eanelo", "last_name": "B"}"#.to_vec(), 422, Some("first_name")),
        ("zero-width space in a name", Some("application/json"), br#"{"first_name": "A\u200Bna", "last_name": "B"}"#.to_vec(), 422, Some("first_name")),
        ("impossible date", Some("application/json"), br#"{"first_name": "A", "last_name": "B", "birth_date": "2023-02-30"}"#.to_vec(), 422, Some("birth_date")),
        ("future birth", Some("application/json"), br#"{"first_name": "A", "last_name": "B", "birth_date": "2999-01-01"}"#.to_vec(), 422, Some("birth_date")),
        ("an array for an object", Some("application/json"), br#"["A", "B"]"#.to_vec(), 422, Some(".")),
        ("a string for an object", Some("application/json"), br#""A B""#.to_vec(), 422, Some(".")),
        ("not UTF-8", Some("application/json"), b"{\"first_name\": \"\xff\", \"last_name\": \"B\"}".to_vec(), 400, None),
        ("UTF-16", Some("application/json"), utf16le(r#"{"first_name": "A", "last_name": "B"}"#), 400, None),
        ("not JSON content type", Some("text/plain"), br#"{"first_name": "A", "last_name": "B"}"#.to_vec(), 415, None),
        ("no content type", None, br#"{"first_name": "A", "last_name": "B"}"#.to_vec(), 415, None),
        ("body over the limit", Some("application/json"), format!(r#"{{"first_name": "A", "last_name": "B", "notes": "{}"}}"#, "x".repeat(5000)).into_bytes(), 413, None),
    ];
    for (name, content_type, body, status, field) in cases {
        let response = client
            .send_bytes(Method::POST, "/patients", content_type, body)
            .await;
        let problem = response.problem(status);
        assert_eq!(problem["field"].as_str(), field, "{name}: {problem}");
        // Never echo clinical text back in an error.
        assert!(!problem.to_string().contains("xxxxxxxx"), "{name}");
    }
    assert_eq!(
        app.count("patients", clinic).await,
        0,
        "nothing was written"
    );

    // Updates: same rules, plus an empty change set and a bad id.
    let id = create(&client, maria()).await["id"]
        .as_str()
        .unwrap()
        .to_string();
    let before = client.get(&format!("/patients/{id}")).await.body;
    for (body, status, field) in [
        (json!({}), 400, None),
        (json!({"first_name": ""}), 422, Some("first_name")),
        (json!({"first_name": null}), 422, Some("first_name")),
        (
            json!({"archived_at": "2020-01-01T00:00:00Z"}),
            422,
            Some("archived_at"),
        ),
        (json!({"email": 5}), 422, Some("email")),
    ] {
        let response = client.patch(&format!("/patients/{id}"), &body).await;
        assert_eq!(response.problem(status)["field"].as_str(), field, "{body}");
    }
    let after = client.get(&format!("/patients/{id}")).await.body;
    assert_eq!(before, after, "rejected PATCHes changed nothing");

    let bad_id = client.get("/patients/not-a-uuid").await;
    assert_eq!(bad_id.problem(400)["field"], "id");
    let bad_id = client
        .patch("/patients/123", &json!({"first_name": "A"}))
        .await;
    assert_eq!(bad_id.problem(400)["field"], "id");
    let missing = client
        .get(&format!("/patients/{}", uuid::Uuid::new_v4()))
        .await;
    assert_eq!(missing.problem(404)["type"], "/problems/not-found");
    let wrong_method = client.put_empty("/patients").await;
    wrong_method.problem(405);
    let unknown = client.get("/nothing-here").await;
    unknown.problem(404);
}

/// Text as a Windows tool might send it: UTF-16LE with a byte-order mark.
fn utf16le(text: &str) -> Vec<u8> {
    [0xFF, 0xFE]
        .into_iter()
        .chain(text.encode_utf16().flat_map(u16::to_le_bytes))
        .collect()
}

/// A patient of `clinic` with `phone` as it was stored before numbers were read in E.164.
async fn with_old_phone(app: &TestApp, clinic: shared::ids::ClinicId, phone: &str) -> PatientId {
    let id = app.seed_patient(clinic, "Antigua").await;
    let mut tx = app.owner_tx(clinic).await;
    sqlx::query("UPDATE patients SET phone = $3 WHERE clinic_id = $1 AND id = $2")
        .bind(clinic)
        .bind(id)
        .bind(phone)
        .execute(&mut *tx)
        .await
        .expect("the old number");
    tx.commit().await.expect("commit");
    id
}

#[tokio::test]
async fn older_numbers_are_rewritten_in_e164_by_their_job() {
    let app = TestApp::spawn().await;
    let router = shared::patients::router(app.state.clone());
    let client = app.client(&router, &app.token(&app.clinic_a, Role::Receptionist));
    let a = app.clinic_a.id;
    let national = with_old_phone(&app, a, "696871213").await;
    let dialled = with_old_phone(&app, a, "0034657741344").await;
    let unreadable = with_old_phone(&app, a, "12345678").await;
    let other_clinic = with_old_phone(&app, app.clinic_b.id, "696871213").await;
    // Read (and cached) before the job.
    let before = client.get(&format!("/patients/{national}")).await;
    assert_eq!(before.body["phone"], "696871213");

    // What migration 32 stages for each clinic with such numbers.
    let mut tx = app.owner_tx(a).await;
    let job = shared::queue::NewJob {
        kind: shared::patients::PATIENT_PHONES,
        payload: json!({}),
        idempotency_key: None,
        created_by: None,
        max_attempts: None,
    };
    let staged = app
        .state
        .queue
        .stage(&mut tx, a, job)
        .await
        .expect("staged");
    tx.commit().await.expect("commit");
    app.state.queue.dispatch(&staged).await;
    pulso_tests::drain_jobs(app.system_state(), shared::worker::handlers()).await;

    let phone_of = |id: PatientId, clinic| {
        let app = &app;
        async move {
            let mut tx = app.owner_tx(clinic).await;
            let phone: String = sqlx::query_scalar("SELECT phone FROM patients WHERE id = $1")
                .bind(id)
                .fetch_one(&mut *tx)
                .await
                .expect("the patient");
            phone
        }
    };
    assert_eq!(phone_of(national, a).await, "+34696871213");
    assert_eq!(phone_of(dialled, a).await, "+34657741344");
    // Not a number of Spain: kept as typed, for reception to correct.
    assert_eq!(phone_of(unreadable, a).await, "12345678");
    assert_eq!(phone_of(other_clinic, app.clinic_b.id).await, "696871213");
    // The cached profile went with the change.
    let after = client.get(&format!("/patients/{national}")).await;
    assert_eq!(after.body["phone"], "+34696871213");

    let mut tx = app.owner_tx(a).await;
    let result: Value = sqlx::query_scalar("SELECT result FROM jobs WHERE id = $1")
        .bind(staged.id)
        .fetch_one(&mut *tx)
        .await
        .expect("the job");
    assert_eq!(result, json!({"normalised": 2, "unreadable": 1}));
}
