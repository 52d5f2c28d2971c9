//! `ETag` and `If-Match` against lost updates (`shared::http::conditional`) on the three
//! resources staff edit side by side: a patient, an appointment, a catalog item. A write
//! carrying a stale tag answers 412 and changes nothing; one carrying the current tag applies
//! and answers the new tag; one without `If-Match` applies as before.

use chrono::{Duration, Utc};
use http::Method;
use pulso_tests::{Client, TestApp, TestResponse};
use serde_json::{Value, json};
use shared::auth::Role;

fn etag(response: &TestResponse) -> String {
    response
        .headers
        .get("etag")
        .and_then(|value| value.to_str().ok())
        .expect("an ETag")
        .to_owned()
}

/// The same resource edited by two people: `first` reads it, `second` changes it, `first`'s
/// change with the old tag is refused, then applied with the fresh one.
async fn two_editors(client: &Client, method: Method, uri: &str, change: Value, other: Value) {
    let read = client.get(uri).await;
    assert_eq!(read.status, 200, "{uri}: {}", read.body);
    let seen = etag(&read);
    assert!(seen.starts_with('"') && seen.ends_with('"'), "{seen}");

    // Revalidation: the same version answers 304 without a body.
    let cached = client
        .send_with_headers(Method::GET, uri, None, &[("if-none-match", &seen)])
        .await;
    assert_eq!(cached.status, 304, "{uri}");
    assert_eq!(etag(&cached), seen);

    // Someone else changes it with the right tag: applied, with a new tag (201 for a clinic's
    // first override of a global catalog item).
    let meanwhile = client
        .send_with_headers(method.clone(), uri, Some(&other), &[("if-match", &seen)])
        .await;
    assert!(
        matches!(meanwhile.status.as_u16(), 200 | 201),
        "{uri}: {} {}",
        meanwhile.status,
        meanwhile.body
    );
    let current = etag(&meanwhile);
    assert_ne!(current, seen);
    assert_eq!(
        etag(&client.get(uri).await),
        current,
        "the write's tag is the read's"
    );

    // The first editor's change, made against what they saw: refused, nothing written.
    let stale = client
        .send_with_headers(method.clone(), uri, Some(&change), &[("if-match", &seen)])
        .await;
    let problem = stale.problem(412);
    assert_eq!(problem["type"], "/problems/precondition-failed");
    assert_eq!(problem["field"], "If-Match");
    assert_eq!(
        client.get(uri).await.body,
        meanwhile.body,
        "nothing was written"
    );

    // A weak tag never matches; a malformed header is a 400 naming it.
    let weak = format!("W/{current}");
    let refused = client
        .send_with_headers(method.clone(), uri, Some(&change), &[("if-match", &weak)])
        .await;
    refused.problem(412);
    let malformed = client
        .send_with_headers(method.clone(), uri, Some(&change), &[("if-match", "abc")])
        .await;
    assert_eq!(malformed.problem(400)["field"], "If-Match");

    // With the current tag (or `*`) it applies.
    let applied = client
        .send_with_headers(method, uri, Some(&change), &[("if-match", "*")])
        .await;
    assert_eq!(applied.status, 200, "{uri}: {}", applied.body);
}

#[tokio::test]
async fn a_stale_if_match_changes_no_patient() {
    let app = TestApp::spawn().await;
    let router = shared::patients::router(app.state.clone());
    let client = app.client(&router, &app.token(&app.clinic_a, Role::Receptionist));
    let created = client
        .post(
            "/patients",
            &json!({"first_name": "Lucía", "last_name": "Serrano"}),
        )
        .await;
    let uri = format!("/patients/{}", created.body["id"].as_str().expect("id"));
    two_editors(
        &client,
        Method::PATCH,
        &uri,
        json!({"phone": "+34600111222"}),
        json!({"notes": "Prefiere por la tarde"}),
    )
    .await;
    let missing = format!("/patients/{}", uuid::Uuid::new_v4());
    let stale = client
        .send_with_headers(
            Method::PATCH,
            &missing,
            Some(&json!({"notes": "x"})),
            &[("if-match", "*")],
        )
        .await;
    stale.problem(404);
}

#[tokio::test]
async fn a_stale_if_match_changes_no_appointment() {
    let app = TestApp::spawn().await;
    let router = shared::appointments::router(app.state.clone());
    let client = app.client(&router, &app.token(&app.clinic_a, Role::Receptionist));
    let patient = app.seed_patient(app.clinic_a.id, "María").await;
    let start = (Utc::now() + Duration::days(2))
        .date_naive()
        .and_hms_opt(10, 0, 0);
    let start = start.expect("a time").and_utc();
    let booked = client
        .post(
            "/appointments",
            &json!({
                "patient_id": patient,
                "dentist_id": app.clinic_a.dentist,
                "starts_at": start.to_rfc3339(),
                "duration_minutes": 30,
                "reason": "Revisión",
            }),
        )
        .await;
    assert_eq!(booked.status, 201, "{}", booked.body);
    let uri = format!("/appointments/{}", booked.body["id"].as_str().expect("id"));
    two_editors(
        &client,
        Method::PATCH,
        &uri,
        json!({"reason": "Dolor de muelas"}),
        json!({"starts_at": (start + Duration::hours(1)).to_rfc3339()}),
    )
    .await;
}

#[tokio::test]
async fn a_stale_if_match_changes_no_catalog_item() {
    let app = TestApp::spawn().await;
    let router = shared::catalogs::router(app.state.clone());
    let client = app.client(&router, &app.token(&app.clinic_a, Role::Admin));
    let uri = "/catalogs/procedure/REV";
    two_editors(
        &client,
        Method::PUT,
        uri,
        json!({"price_cents": 4_000}),
        json!({"price_cents": 3_800}),
    )
    .await;
    // The item as a list shows it is the one the tag describes.
    let list = client.get("/catalogs/procedure").await;
    let listed = list.body["items"]
        .as_array()
        .and_then(|items| items.iter().find(|item| item["code"] == "REV"))
        .cloned()
        .unwrap_or(Value::Null);
    assert_eq!(client.get(uri).await.body, listed);
    // No such item: 404 to a read, 412 to a conditional write (nothing to match).
    client.get("/catalogs/procedure/NOPE").await.problem(404);
    let created = client
        .send_with_headers(
            Method::PUT,
            "/catalogs/procedure/NOPE",
            Some(&json!({"name": "Nuevo", "default_minutes": 30})),
            &[("if-match", "*")],
        )
        .await;
    created.problem(412);
    client.get("/catalogs/procedure/NOPE").await.problem(404);
}
