//! `GET /health`: liveness for anyone, touching nothing; `GET /health/deep`: per-dependency
//! status and latency and the queue's figures for platform admins, 503 only when PostgreSQL is
//! down.

use pulso_tests::{TestApp, TestOptions, TestResponse};
use serde_json::json;
use shared::auth::Role;

#[tokio::test]
async fn liveness_answers_anyone_without_touching_a_dependency() {
    // With both dependencies unreachable, liveness still answers: it asks neither.
    let app = TestApp::spawn_with(TestOptions {
        database_unreachable: true,
        redis_unreachable: true,
        ..TestOptions::default()
    })
    .await;
    let router = shared::contract::router(app.state.clone());
    let response = app.anonymous(&router).get("/health").await;
    assert_eq!(response.status, 200, "{}", response.body);
    assert_eq!(
        response.body,
        json!({"status": "ok", "version": env!("CARGO_PKG_VERSION")})
    );
    assert_eq!(response.headers.get("cache-control").unwrap(), "no-store");
}

#[tokio::test]
async fn the_deep_check_is_for_platform_admins() {
    let app = TestApp::spawn().await;
    let router = shared::contract::router(app.state.clone());
    app.anonymous(&router)
        .get("/health/deep")
        .await
        .problem(401);
    for role in [Role::Admin, Role::Dentist, Role::Receptionist] {
        let token = app.token(&app.clinic_a, role);
        let response = app.client(&router, &token).get("/health/deep").await;
        assert_eq!(
            response.problem(403)["type"],
            "/problems/forbidden",
            "{role:?}"
        );
    }
}

#[tokio::test]
async fn healthy_when_both_dependencies_answer() {
    let app = TestApp::spawn().await;
    let response = deep(&app).await;
    assert_eq!(response.status, 200, "{}", response.body);
    assert_eq!(response.body["status"], "ok");
    assert_eq!(response.body["database"]["status"], "up");
    assert_eq!(response.body["redis"]["status"], "up");
    assert!(response.body["database"]["latency_ms"].as_f64().is_some());
    assert!(response.body["redis"]["latency_ms"].as_f64().is_some());
    assert_eq!(response.body["version"], env!("CARGO_PKG_VERSION"));
    assert_eq!(response.body["queue"]["depth"], 0);
    assert_eq!(response.headers.get("cache-control").unwrap(), "no-store");
}

#[tokio::test]
async fn degraded_but_200_when_only_redis_is_down() {
    let app = TestApp::spawn_with(TestOptions {
        redis_unreachable: true,
        ..TestOptions::default()
    })
    .await;
    let response = deep(&app).await;
    assert_eq!(response.status, 200, "{}", response.body);
    assert_eq!(response.body["status"], "degraded");
    assert_eq!(response.body["database"]["status"], "up");
    assert_eq!(response.body["redis"]["status"], "down");
    // The body says what is down, not why (no hosts, no error chains).
    assert_eq!(response.body["redis"]["error"], "unreachable");
}

#[tokio::test]
async fn unavailable_when_postgres_is_down() {
    let app = TestApp::spawn_with(TestOptions {
        database_unreachable: true,
        ..TestOptions::default()
    })
    .await;
    // Even the deep check cannot tell who is asking without the database (operators are
    // listed there): 503, which is what it would have reported.
    let response = deep(&app).await;
    assert_eq!(response.problem(503)["type"], "/problems/unavailable");
    assert!(response.headers.contains_key("retry-after"));

    // Every other route answers 503 problem+json with Retry-After, not a 500.
    patients_unavailable(&app, "127.0.0.1").await;
}

/// `GET /patients` answers 503 problem+json with Retry-After, and its body does not mention
/// `hidden` (a connection detail).
async fn patients_unavailable(app: &TestApp, hidden: &str) {
    let patients = shared::patients::router(app.state.clone());
    let token = app.token(&app.clinic_a, Role::Receptionist);
    let response = app.client(&patients, &token).get("/patients").await;
    let problem = response.problem(503);
    assert_eq!(problem["type"], "/problems/unavailable");
    assert!(response.headers.contains_key("retry-after"));
    assert!(
        !problem.to_string().contains(hidden),
        "no connection details in the body"
    );
}

async fn deep(app: &TestApp) -> TestResponse {
    let router = shared::contract::router(app.state.clone());
    let token = app.platform_admin_token(&app.clinic_a);
    app.client(&router, &token).get("/health/deep").await
}

#[tokio::test]
async fn refused_credentials_are_unavailable_not_an_internal_error() {
    // A role the server does not know, as after a rotation to a user not created yet (28000;
    // a refused password, 28P01, is answered the same way).
    let app = TestApp::spawn_with(TestOptions {
        env: vec![(
            "DATABASE_URL",
            "postgres://pulso_nobody:wrong@127.0.0.1:5432/pulso".to_string(),
        )],
        ..TestOptions::default()
    })
    .await;
    patients_unavailable(&app, "pulso_nobody").await;
}
