//! Per-clinic quotas: what one clinic may hold of what every clinic shares.

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

#[tokio::test]
async fn a_clinic_cannot_queue_more_than_its_share_of_jobs() {
    let app = TestApp::spawn_with(TestOptions {
        env: vec![("QUEUE_MAX_PENDING_PER_CLINIC", "2".into())],
        ..TestOptions::default()
    })
    .await;
    let (a, b) = (app.clinic_a, app.clinic_b);
    let token = app.token(&a, Role::Receptionist);
    for _ in 0..2 {
        assert_eq!(upload(&app, a.id, &token).await.status, 202);
    }
    let refused = upload(&app, a.id, &token).await;
    assert_eq!(refused.problem(429)["type"], "/problems/quota-exceeded");
    assert_eq!(refused.headers["retry-after"], "30");
    // Nothing of the refused upload was kept: its X-ray and its job went back together.
    assert_eq!(app.count("xrays", a.id).await, 2);
    assert_eq!(app.count("jobs", a.id).await, 2);
    // Another clinic's queue is its own.
    let other = upload(&app, b.id, &app.token(&b, Role::Receptionist)).await;
    assert_eq!(other.status, 202, "{}", other.body);
}
