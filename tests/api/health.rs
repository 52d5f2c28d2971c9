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

/// `url` with `sslmode` set to `mode`.
fn with_ssl_mode(url: String, mode: &str) -> String {
    let separator = if url.contains('?') { '&' } else { '?' };
    format!("{url}{separator}sslmode={mode}")
}

#[tokio::test]
async fn a_server_that_cannot_prove_who_it_is_gets_no_query() {
    // The local server offers TLS with a self-signed certificate (Debian's default, ssl = on),
    // the kind a man in the middle would offer: verify-full refuses it, whatever the roots.
    let url =
        |app: &TestApp, mode: &str| with_ssl_mode(pulso_tests::app_url_for(&app.database), mode);
    let app = TestApp::spawn().await;
    let config = shared::config::DatabaseConfig {
        url: shared::config::Secret::new(url(&app, "verify-full")),
        ..app.state.config.database.clone()
    };
    let pool = shared::db::pool(&config).expect("options");
    let error = sqlx::query("SELECT 1")
        .execute(&pool)
        .await
        .expect_err("an unknown issuer is refused");
    // Refused for its issuer: the built-in authorities were read (a bad bundle fails earlier,
    // as "Invalid certificate") and checked.
    assert!(
        error.to_string().contains("UnknownIssuer"),
        "refused for another reason (is ssl on in postgresql.conf?): {error}"
    );
    assert!(matches!(
        shared::db::DbError::from(error),
        shared::db::DbError::Unavailable(_)
    ));

    // Through a function: 503 problem+json, not a 500, and nothing about certificates.
    let verifying = TestApp::spawn_with(TestOptions {
        env: vec![("DATABASE_URL", url(&app, "verify-full"))],
        ..TestOptions::default()
    })
    .await;
    patients_unavailable(&verifying, "certificate").await;

    // The same server and database with encryption but no verification answer: what was
    // refused was the certificate, not TLS.
    let encrypting = TestApp::spawn_with(TestOptions {
        env: vec![("DATABASE_URL", url(&app, "require"))],
        ..TestOptions::default()
    })
    .await;
    let patients = shared::patients::router(encrypting.state.clone());
    let token = encrypting.token(&app.clinic_a, Role::Receptionist);
    let response = encrypting.client(&patients, &token).get("/patients").await;
    assert_eq!(response.status, 200, "{}", response.body);
}
