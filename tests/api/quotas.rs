//! Per-clinic quotas: what one clinic may hold of what every clinic shares (unfinished jobs,
//! X-ray uploads and bytes per day).

use pulso_tests::{TestApp, TestOptions, small_png};
use shared::auth::Role;
use shared::ids::ClinicId;

async fn upload(app: &TestApp, clinic: ClinicId, token: &str) -> pulso_tests::TestResponse {
    let patient = app.seed_patient(clinic, "Ana").await;
    let xrays = shared::xrays::router(app.state.clone());
    app.client(&xrays, token)
        .send_bytes(
            http::Method::POST,
            &format!("/patients/{patient}/xrays"),
            Some("image/png"),
            small_png(),
        )
        .await
}

/// Two uploads of `clinic` pass; the third is refused with 429 `/problems/quota-exceeded`, and
/// nothing of it was kept: its X-ray and its job went back together. The refused answer.
async fn third_upload_refused(
    app: &TestApp,
    clinic: ClinicId,
    token: &str,
) -> pulso_tests::TestResponse {
    for _ in 0..2 {
        assert_eq!(upload(app, clinic, token).await.status, 202);
    }
    let refused = upload(app, clinic, token).await;
    assert_eq!(refused.problem(429)["type"], "/problems/quota-exceeded");
    assert_eq!(app.count("xrays", clinic).await, 2);
    assert_eq!(app.count("jobs", clinic).await, 2);
    refused
}

#[tokio::test]
async fn a_clinic_cannot_queue_more_than_its_share_of_jobs() {
    let app = TestApp::spawn_with(TestOptions {
        env: vec![("QUEUE_MAX_PENDING_PER_CLINIC", "2".into())],
        ..TestOptions::default()
    })
    .await;
    let (a, b) = (app.clinic_a, app.clinic_b);
    let token = app.token(&a, Role::Receptionist);
    let refused = third_upload_refused(&app, a.id, &token).await;
    assert_eq!(refused.headers["retry-after"], "30");
    // Another clinic's queue is its own.
    let other = upload(&app, b.id, &app.token(&b, Role::Receptionist)).await;
    assert_eq!(other.status, 202, "{}", other.body);
}

#[tokio::test]
async fn a_clinic_uploads_at_most_its_daily_x_rays_and_yesterdays_do_not_count() {
    let app = TestApp::spawn_with(TestOptions {
        env: vec![("XRAY_DAILY_UPLOADS_PER_CLINIC", "2".into())],
        ..TestOptions::default()
    })
    .await;
    let (a, b) = (app.clinic_a, app.clinic_b);
    let token = app.token(&a, Role::Dentist);
    let refused = third_upload_refused(&app, a.id, &token).await;
    let problem = refused.problem(429);
    assert!(
        problem["detail"]
            .as_str()
            .unwrap()
            .contains("2 X-rays for today"),
        "{problem}"
    );
    // Until the clinic's next midnight: at most a day (25 h on the night clocks go back).
    let retry_after: u64 = refused.headers["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=25 * 3600).contains(&retry_after), "{retry_after}");
    // Another clinic's day is its own.
    let other = upload(&app, b.id, &app.token(&b, Role::Dentist)).await;
    assert_eq!(other.status, 202, "{}", other.body);

    // The same uploads a day earlier, in the clinic's time: today is empty again.
    let mut tx = app.owner_tx(a.id).await;
    sqlx::query("UPDATE xrays SET created_at = created_at - interval '1 day' WHERE clinic_id = $1")
        .bind(a.id)
        .execute(&mut *tx)
        .await
        .unwrap();
    tx.commit().await.unwrap();
    assert_eq!(upload(&app, a.id, &token).await.status, 202);
}

#[tokio::test]
async fn an_upload_that_would_pass_the_daily_bytes_is_refused() {
    let size = small_png().len();
    let app = TestApp::spawn_with(TestOptions {
        env: vec![(
            "XRAY_DAILY_BYTES_PER_CLINIC",
            (2 * size + size / 2).to_string(),
        )],
        ..TestOptions::default()
    })
    .await;
    let a = app.clinic_a;
    let token = app.token(&a, Role::Receptionist);
    let refused = third_upload_refused(&app, a.id, &token).await;
    let problem = refused.problem(429);
    assert!(
        problem["detail"]
            .as_str()
            .unwrap()
            .contains("bytes of uploads for today"),
        "{problem}"
    );
}
