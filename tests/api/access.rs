//! The gate of every request (`shared::access`): the database decides what a token may do —
//! deactivation, a changed role, an archived clinic and the operator list take effect at the
//! next request — and the rate limits answer 429 with the IETF draft's headers.

use pulso_tests::{TestApp, TestOptions, TestResponse};
use shared::auth::Role;
use shared::ids::{ClinicId, UserId};
use std::time::Duration;

/// Changes one row as a migration or an operator's psql would, behind the API's back.
async fn update<Id>(app: &TestApp, clinic: ClinicId, sql: &str, id: Id)
where
    Id: for<'q> sqlx::Encode<'q, sqlx::Postgres> + sqlx::Type<sqlx::Postgres> + Send,
{
    let mut tx = app.owner_tx(clinic).await;
    sqlx::query(sql)
        .bind(id)
        .execute(&mut *tx)
        .await
        .expect("update");
    tx.commit().await.expect("commit");
}

async fn patients_as(app: &TestApp, token: &str) -> TestResponse {
    let router = shared::patients::router(app.state.clone());
    app.client(&router, token).get("/patients").await
}

#[tokio::test]
async fn a_deactivated_user_is_refused_at_the_next_request() {
    let app = TestApp::spawn().await;
    let a = app.clinic_a;
    let token = app.token(&a, Role::Receptionist);
    assert_eq!(patients_as(&app, &token).await.status, 200);

    let deactivate = "UPDATE memberships SET active = false WHERE user_id = $1";
    update(&app, a.id, deactivate, a.receptionist).await;
    app.state
        .access
        .forget_user(a.id, a.receptionist)
        .await
        .unwrap();
    let refused = patients_as(&app, &token).await;
    assert_eq!(refused.problem(403)["type"], "/problems/user-deactivated");
    // Still signed in, only not at this clinic: nothing tells the browser to sign out.
    assert!(!refused.headers.contains_key("www-authenticate"));
    // Their colleagues are not affected.
    let colleague = app.token(&a, Role::Dentist);
    assert_eq!(patients_as(&app, &colleague).await.status, 200);
}

#[tokio::test]
async fn a_change_behind_the_apis_back_takes_effect_within_the_cache_lifetime() {
    let app = TestApp::spawn_with(TestOptions {
        env: vec![("CALLER_CACHE_TTL_SECONDS", "1".into())],
        ..TestOptions::default()
    })
    .await;
    let a = app.clinic_a;
    let token = app.token(&a, Role::Receptionist);
    assert_eq!(patients_as(&app, &token).await.status, 200);
    let deactivate = "UPDATE memberships SET active = false WHERE user_id = $1";
    update(&app, a.id, deactivate, a.receptionist).await;
    // Still cached (nobody told the gate)...
    assert_eq!(patients_as(&app, &token).await.status, 200);
    // ...until the entry expires.
    tokio::time::sleep(Duration::from_millis(1_200)).await;
    patients_as(&app, &token).await.problem(403);
}

#[tokio::test]
async fn the_role_used_is_the_databases() {
    let app = TestApp::spawn().await;
    let a = app.clinic_a;
    let admin_token = app.token(&a, Role::Admin);
    let admin = shared::admin::router(app.state.clone());
    let stats = app
        .client(&admin, &admin_token)
        .get("/admin/cache/stats")
        .await;
    assert_eq!(stats.status, 200, "{}", stats.body);

    let demote = "UPDATE memberships SET role = 'receptionist' WHERE user_id = $1";
    update(&app, a.id, demote, a.admin).await;
    app.state.access.forget_user(a.id, a.admin).await.unwrap();
    // The token still says admin; the database says receptionist.
    let refused = app
        .client(&admin, &admin_token)
        .get("/admin/cache/stats")
        .await;
    assert_eq!(refused.problem(403)["type"], "/problems/forbidden");
}

#[tokio::test]
async fn an_archived_clinic_is_closed_to_all_its_staff_and_only_to_them() {
    let app = TestApp::spawn().await;
    let (a, b) = (app.clinic_a, app.clinic_b);
    let archive = "UPDATE clinics SET archived_at = now() WHERE id = $1";
    update(&app, a.id, archive, a.id).await;
    app.state.access.forget_clinic(a.id).await.unwrap();
    for role in [Role::Admin, Role::Dentist, Role::Receptionist] {
        let refused = patients_as(&app, &app.token(&a, role)).await;
        assert_eq!(refused.problem(403)["type"], "/problems/clinic-archived");
    }
    let other = patients_as(&app, &app.token(&b, Role::Receptionist)).await;
    assert_eq!(other.status, 200);
}

#[tokio::test]
async fn a_token_of_nobody_is_a_401_and_a_clinic_one_does_not_belong_to_a_403() {
    let app = TestApp::spawn().await;
    let a = app.clinic_a;
    let secret = pulso_tests::JWT_SECRET;
    let cases = [
        (
            "unknown user",
            Some(a.id),
            UserId::new_random(),
            401,
            "unknown-user",
        ),
        (
            "unknown user, no claim",
            None,
            UserId::new_random(),
            401,
            "unknown-user",
        ),
        (
            "unknown clinic",
            Some(ClinicId::new_random()),
            a.receptionist,
            403,
            "not-a-member",
        ),
        (
            "another clinic",
            Some(app.clinic_b.id),
            a.receptionist,
            403,
            "not-a-member",
        ),
    ];
    for (name, clinic, user, status, problem) in cases {
        let token = app.token_for(clinic, user, 600, secret);
        let refused = patients_as(&app, &token).await;
        assert_eq!(
            refused.problem(status)["type"],
            format!("/problems/{problem}"),
            "{name}"
        );
    }
}

#[tokio::test]
async fn platform_power_needs_a_row_in_platform_operators() {
    let app = TestApp::spawn().await;
    let b = app.clinic_b;
    let admin = shared::admin::router(app.state.clone());
    let platform = app.platform_admin_token(&b);
    let global = |token: String| {
        let client = app.client(&admin, &token);
        async move { client.get("/admin/cache/stats?scope=platform").await }
    };
    assert_eq!(global(platform.clone()).await.status, 200);

    let revoke = "DELETE FROM platform_operators WHERE user_id = $1";
    update(&app, b.id, revoke, b.admin).await;
    app.state.access.forget_user(b.id, b.admin).await.unwrap();
    // The claim is still in the token; without the row it is only a clinic admin's.
    let refused = global(platform).await;
    assert_eq!(refused.problem(403)["type"], "/problems/forbidden");
}

/// Three reads and one upload per user a minute; a roomy clinic.
fn tight() -> TestOptions {
    TestOptions {
        env: vec![
            (
                "RATE_LIMITS_PER_USER",
                "reads=3,writes=1000,uploads=1".into(),
            ),
            (
                "RATE_LIMITS_PER_CLINIC",
                pulso_tests::ROOMY_RATE_LIMITS.into(),
            ),
        ],
        ..TestOptions::default()
    }
}

fn header<'a>(response: &'a TestResponse, name: &str) -> &'a str {
    response
        .headers
        .get(name)
        .and_then(|value| value.to_str().ok())
        .unwrap_or_else(|| panic!("no {name} header"))
}

#[tokio::test]
async fn over_the_limit_a_caller_gets_429_with_retry_after_and_ratelimit_headers() {
    let app = TestApp::spawn_with(tight()).await;
    let token = app.token(&app.clinic_a, Role::Receptionist);
    for remaining in (0..3).rev() {
        let response = patients_as(&app, &token).await;
        assert_eq!(response.status, 200, "{}", response.body);
        assert_eq!(
            header(&response, "ratelimit-policy"),
            "\"user-reads\";q=3;w=60, \"clinic-reads\";q=100000;w=60"
        );
        assert!(
            header(&response, "ratelimit").starts_with(&format!("\"user-reads\";r={remaining};t=")),
            "{}",
            header(&response, "ratelimit")
        );
    }
    let limited = patients_as(&app, &token).await;
    let problem = limited.problem(429);
    assert_eq!(problem["type"], "/problems/rate-limited");
    assert!(problem["detail"].as_str().unwrap().contains("reads"));
    let retry_after: u64 = header(&limited, "retry-after").parse().unwrap();
    assert!((1..=20).contains(&retry_after), "{retry_after}");
    assert!(header(&limited, "ratelimit").starts_with("\"user-reads\";r=0;t="));
    // A colleague's reads are their own.
    let colleague = app.token(&app.clinic_a, Role::Dentist);
    assert_eq!(patients_as(&app, &colleague).await.status, 200);
}

#[tokio::test]
async fn an_upload_counts_as_an_upload_not_as_a_write() {
    let app = TestApp::spawn_with(tight()).await;
    let a = app.clinic_a;
    let token = app.token(&a, Role::Receptionist);
    let patient = app.seed_patient(a.id, "Ana").await;
    let xrays = shared::xrays::router(app.state.clone());
    let client = app.client(&xrays, &token);
    let image = pulso_tests::small_png();
    let path = format!("/patients/{patient}/xrays");
    let upload = || client.send_bytes(http::Method::POST, &path, Some("image/png"), image.clone());
    assert_eq!(upload().await.status, 202);
    let limited = upload().await;
    assert_eq!(limited.problem(429)["type"], "/problems/rate-limited");
    assert!(header(&limited, "ratelimit-policy").contains("\"user-uploads\";q=1;w=60"));
    // Writes have their own bucket.
    let patients = shared::patients::router(app.state.clone());
    let edit = app
        .client(&patients, &token)
        .patch(
            &format!("/patients/{patient}"),
            &serde_json::json!({"notes": "x"}),
        )
        .await;
    assert_eq!(edit.status, 200, "{}", edit.body);
}
