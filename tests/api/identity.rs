//! Staff sign-in end to end, against the local Cognito stand-in (`infra/scripts/cognito.sh`),
//! each test on a pool of its own: an admin invites someone (`POST /staff`), the sign-in
//! service creates them, they sign in as the frontend would and act at each of their clinics;
//! invitations are safe to retry, also after a failure between the pool and PostgreSQL.

use pulso_tests::{CognitoOptions, TestApp, TestOptions, stand_in_pool};
use serde_json::{Value, json};
use shared::auth::Role;
use shared::contact::Email;
use shared::identity::StandIn;

const PASSWORD: &str = "Sonrisa-2026-demo";

async fn app_with(cognito: &CognitoOptions) -> TestApp {
    TestApp::spawn_with(TestOptions {
        cognito: Some(cognito.clone()),
        ..TestOptions::default()
    })
    .await
}

/// Counts across every clinic (the owner sees them as a platform transaction does).
async fn count_everywhere(app: &TestApp, sql: &str, email: &str) -> i64 {
    let mut tx = app.owner.begin().await.unwrap();
    sqlx::query("SET LOCAL app.platform_admin = 'on'")
        .execute(&mut *tx)
        .await
        .unwrap();
    let count = sqlx::query_scalar(sql)
        .bind(email)
        .fetch_one(&mut *tx)
        .await
        .unwrap();
    tx.rollback().await.unwrap();
    count
}

async fn memberships_of(app: &TestApp, email: &str) -> i64 {
    count_everywhere(
        app,
        "SELECT count(*) FROM memberships m JOIN users u ON u.id = m.user_id WHERE u.email = $1",
        email,
    )
    .await
}

async fn sign_in(stand_in: &StandIn, cognito: &CognitoOptions, email: &str) -> (String, String) {
    stand_in
        .set_password(&cognito.pool(), email, PASSWORD, false)
        .await
        .expect("set the password");
    stand_in
        .sign_in(&cognito.pool(), email, PASSWORD)
        .await
        .expect("sign in")
}

#[tokio::test]
async fn an_invited_dentist_signs_in_and_acts_at_both_of_their_clinics() {
    let (stand_in, cognito) = stand_in_pool().await;
    let app = app_with(&cognito).await;
    let router = shared::clinics::router(app.state.clone());
    let patients = shared::patients::router(app.state.clone());
    let (a, b) = (app.clinic_a, app.clinic_b);
    let email = "marta.vidal@example.com";
    let invite = json!({"email": "  Marta.Vidal@Example.com ", "full_name": "Marta Vidal",
                        "role": "dentist", "color": "#0891B2"});

    let admin_a = app.client(&router, &app.token(&a, Role::Admin));
    let created = admin_a.post("/staff", &invite).await;
    assert_eq!(created.status, 201, "{}", created.body);
    let member = created.body.clone();
    assert_eq!(member["email"], email);
    assert_eq!(member["role"], "dentist");
    assert_eq!(member["color"], "#0891b2");
    assert_eq!(member["initials"], "MV");
    // The same request again: the same member, nothing more.
    let again = admin_a.post("/staff", &invite).await;
    assert_eq!(again.status, 200, "{}", again.body);
    assert_eq!(again.body, member);
    assert_eq!(memberships_of(&app, email).await, 1);
    let audit = app
        .client(
            &shared::admin::router(app.state.clone()),
            &app.token(&a, Role::Admin),
        )
        .get("/admin/audit?action=membership.create")
        .await;
    assert_eq!(audit.status, 200, "{}", audit.body);
    let events = audit.body["items"].as_array().unwrap();
    assert_eq!(events.len(), 1, "{}", audit.body);
    assert_eq!(events[0]["target_id"], member["id"]);
    assert_eq!(events[0]["changes"]["role"]["after"], "dentist");

    // She signs in as the frontend would, and her tokens name her.
    let (id_token, access_token) = sign_in(&stand_in, &cognito, email).await;
    for token in [&id_token, &access_token] {
        let me = app.client(&router, token).get("/me").await;
        assert_eq!(me.status, 200, "{}", me.body);
        assert_eq!(me.body["user"]["id"], member["id"]);
        let clinics: Vec<&Value> = me.body["memberships"].as_array().unwrap().iter().collect();
        assert_eq!(clinics.len(), 1);
        assert_eq!(clinics[0]["role"], "dentist");
    }
    let own = app.client(&patients, &id_token).get("/patients").await;
    assert_eq!(own.status, 200, "{}", own.body);

    // Clinic B's admin invites the same person as a receptionist: one person, two clinics,
    // found in the pool rather than created again.
    let admin_b = app.client(&router, &app.token(&b, Role::Admin));
    let joined = admin_b
        .post(
            "/staff",
            &json!({"email": email, "full_name": "Someone Else", "role": "receptionist"}),
        )
        .await;
    assert_eq!(joined.status, 201, "{}", joined.body);
    assert_eq!(joined.body["id"], member["id"]);
    assert_eq!(
        joined.body["full_name"], "Marta Vidal",
        "a known person keeps their name"
    );
    let dentist = app.client(&patients, &id_token);
    let unnamed = dentist.get("/patients").await;
    assert_eq!(unnamed.problem(400)["type"], "/problems/clinic-required");
    for clinic in [a.id, b.id] {
        let named = dentist.in_clinic(clinic).get("/patients").await;
        assert_eq!(named.status, 200, "{}", named.body);
    }
    let me = app.client(&router, &id_token).get("/me").await;
    assert_eq!(
        me.body["memberships"].as_array().unwrap().len(),
        2,
        "{}",
        me.body
    );

    // Asking for another role of a member is a change, not an invitation.
    let other_role = admin_a
        .post(
            "/staff",
            &json!({"email": email, "full_name": "Marta Vidal", "role": "admin"}),
        )
        .await;
    let problem = other_role.problem(409);
    assert_eq!(problem["type"], "/problems/already-member");
    assert_eq!(problem["field"], "email");
    // Deactivated, she is refused at once at A only; inviting her again does not reactivate.
    let id = member["id"].as_str().unwrap();
    assert_eq!(admin_a.delete(&format!("/staff/{id}")).await.status, 204);
    dentist.in_clinic(a.id).get("/patients").await.problem(403);
    assert_eq!(dentist.in_clinic(b.id).get("/patients").await.status, 200);
    admin_a.post("/staff", &invite).await.problem(409);
    stand_in.delete_pool(&cognito.pool()).await.unwrap();
}

#[tokio::test]
async fn bad_invitations_are_refused_and_write_nothing() {
    let (stand_in, cognito) = stand_in_pool().await;
    let app = app_with(&cognito).await;
    let router = shared::clinics::router(app.state.clone());
    let a = app.clinic_a;
    let admin = app.client(&router, &app.token(&a, Role::Admin));
    let good = json!({"email": "nuevo@example.com", "full_name": "Nuevo", "role": "dentist"});
    let with = |field: &str, value: Value| {
        let mut body = good.clone();
        body[field] = value;
        body
    };
    let cases = [
        (with("email", json!("not-an-address")), 422, "email"),
        (
            with("email", json!(format!("{}@example.com", "a".repeat(250)))),
            422,
            "email",
        ),
        (with("full_name", json!("")), 422, "full_name"),
        (with("full_name", json!("Line\nbreak")), 422, "full_name"),
        (with("role", json!("owner")), 422, "role"),
        (with("color", json!("blue")), 422, "color"),
        (with("extra", json!(true)), 422, "extra"),
    ];
    for (body, status, field) in cases {
        let response = admin.post("/staff", &body).await;
        let problem = response.problem(status);
        assert!(
            problem["field"]
                .as_str()
                .unwrap_or_default()
                .contains(field),
            "{body}: {problem:?}"
        );
    }
    for role in [Role::Dentist, Role::Receptionist] {
        let caller = app.client(&router, &app.token(&a, role));
        caller.post("/staff", &good).await.problem(403);
    }
    assert_eq!(memberships_of(&app, "nuevo@example.com").await, 0);
    let users = count_everywhere(
        &app,
        "SELECT count(*) FROM users WHERE email = $1",
        "nuevo@example.com",
    )
    .await;
    assert_eq!(users, 0);
    stand_in.delete_pool(&cognito.pool()).await.unwrap();
}

#[tokio::test]
async fn an_invitation_that_failed_half_way_completes_when_retried() {
    let (stand_in, cognito) = stand_in_pool().await;
    let email = "reintento@example.com";
    // The sign-in service unreachable: 503, and nothing written in PostgreSQL.
    let down = app_with(&CognitoOptions {
        endpoint: "http://127.0.0.1:1".into(),
        ..cognito.clone()
    })
    .await;
    let router = shared::clinics::router(down.state.clone());
    let admin = down.client(&router, &down.token(&down.clinic_a, Role::Admin));
    let invite = json!({"email": email, "full_name": "Re Intento", "role": "receptionist"});
    let refused = admin.post("/staff", &invite).await;
    assert_eq!(refused.problem(503)["type"], "/problems/unavailable");
    assert_eq!(memberships_of(&down, email).await, 0);

    // The pool created the person, then PostgreSQL failed (here: the call ends there).
    let app = app_with(&cognito).await;
    let provider = app.state.identity.as_ref().expect("a pool is configured");
    let first = provider
        .invite(&Email::parse("email", email).unwrap(), "Re Intento")
        .await
        .unwrap();
    assert!(first.created);
    // The retry finds them in the pool and completes: their sign-in names the member.
    let router = shared::clinics::router(app.state.clone());
    let admin = app.client(&router, &app.token(&app.clinic_a, Role::Admin));
    let completed = admin.post("/staff", &invite).await;
    assert_eq!(completed.status, 201, "{}", completed.body);
    let (id_token, _) = sign_in(&stand_in, &cognito, email).await;
    let me = app.client(&router, &id_token).get("/me").await;
    assert_eq!(me.status, 200, "{}", me.body);
    assert_eq!(me.body["user"]["id"], completed.body["id"]);
    stand_in.delete_pool(&cognito.pool()).await.unwrap();
}

#[tokio::test]
async fn an_onboarded_clinics_first_admin_signs_in_and_invites() {
    let (stand_in, cognito) = stand_in_pool().await;
    let app = app_with(&cognito).await;
    let router = shared::clinics::router(app.state.clone());
    let operator = app.client(&router, &app.platform_admin_token(&app.clinic_a));
    let organization = operator
        .post(
            "/platform/organizations",
            &json!({"slug": "grupo-norte", "name": "Grupo Norte"}),
        )
        .await;
    assert_eq!(organization.status, 201, "{}", organization.body);
    let onboard = json!({
        "organization_id": organization.body["id"], "slug": "norte-centro",
        "name": "Clínica Norte Centro",
        "admin": {"email": "jefa@norte.example", "full_name": "Inés Jefa"},
    });
    let onboarded = operator.post("/platform/clinics", &onboard).await;
    assert_eq!(onboarded.status, 201, "{}", onboarded.body);
    let retried = operator.post("/platform/clinics", &onboard).await;
    assert_eq!(retried.status, 200, "{}", retried.body);

    let (id_token, _) = sign_in(&stand_in, &cognito, "jefa@norte.example").await;
    let boss = app.client(&router, &id_token);
    let me = boss.get("/me").await;
    assert_eq!(me.status, 200, "{}", me.body);
    assert_eq!(me.body["memberships"][0]["role"], "admin");
    assert_eq!(
        me.body["memberships"][0]["clinic"]["id"],
        onboarded.body["clinic"]["id"]
    );
    let invited = boss
        .post(
            "/staff",
            &json!({"email": "dr.sol@norte.example", "full_name": "Dr. Sol", "role": "dentist"}),
        )
        .await;
    assert_eq!(invited.status, 201, "{}", invited.body);
    let (dentist_token, _) = sign_in(&stand_in, &cognito, "dr.sol@norte.example").await;
    let staff = app
        .client(&router, &dentist_token)
        .get("/staff?role=dentist")
        .await;
    assert_eq!(staff.status, 200, "{}", staff.body);
    assert_eq!(staff.body["items"][0]["email"], "dr.sol@norte.example");
    stand_in.delete_pool(&cognito.pool()).await.unwrap();
}

#[tokio::test]
async fn an_organizations_admin_reads_its_clinics_and_their_dashboards_rolled_up() {
    let (stand_in, cognito) = stand_in_pool().await;
    let app = app_with(&cognito).await;
    let clinics = shared::clinics::router(app.state.clone());
    let dashboards = shared::dashboard::router(app.state.clone());
    let a = app.clinic_a;
    let organization: uuid::Uuid =
        sqlx::query_scalar("SELECT organization_id FROM clinics WHERE id = $1")
            .bind(a.id)
            .fetch_one(&mut *app.owner_tx(a.id).await)
            .await
            .unwrap();
    app.seed_patient(a.id, "Ana").await;
    let operator = app.client(&clinics, &app.platform_admin_token(&a));
    let path = format!("/platform/organizations/{organization}/admins");
    let body = json!({"email": "direccion@cadena.example", "full_name": "Isabel Navarro"});
    let named = operator.post(&path, &body).await;
    assert_eq!(named.status, 201, "{}", named.body);
    assert_eq!(operator.post(&path, &body).await.status, 200);
    operator
        .post(
            &format!("/platform/organizations/{}/admins", uuid::Uuid::new_v4()),
            &body,
        )
        .await
        .problem(404);
    // Staff of a clinic cannot name one, nor read the organization.
    let dentist = app.token(&a, Role::Dentist);
    app.client(&clinics, &dentist)
        .post(&path, &body)
        .await
        .problem(403);
    app.client(&clinics, &dentist)
        .get("/organization")
        .await
        .problem(403);
    app.client(&dashboards, &dentist)
        .get("/organization/dashboard")
        .await
        .problem(403);

    // She signs in; on no clinic's staff, `/me` still answers and names the organization.
    let (token, _) = sign_in(&stand_in, &cognito, "direccion@cadena.example").await;
    let me = app.client(&clinics, &token).get("/me").await;
    assert_eq!(me.status, 200, "{}", me.body);
    assert_eq!(me.body["memberships"], json!([]));
    assert_eq!(me.body["organizations"][0]["id"], organization.to_string());
    let overview = app.client(&clinics, &token).get("/organization").await;
    assert_eq!(overview.status, 200, "{}", overview.body);
    let ids: Vec<&str> = overview.body["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|clinic| clinic["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, [a.id.to_string()], "only her organization's clinics");
    // Not a clinic's staff: clinic routes stay closed to her.
    app.client(&shared::patients::router(app.state.clone()), &token)
        .get("/patients")
        .await
        .problem(403);
    let dashboard = app
        .client(&dashboards, &token)
        .get("/organization/dashboard")
        .await;
    assert_eq!(dashboard.status, 200, "{}", dashboard.body);
    assert_eq!(dashboard.body["totals"]["clinics"], 1);
    assert_eq!(dashboard.body["clinics"][0]["clinic_id"], a.id.to_string());
    assert_eq!(dashboard.body["totals"]["new_patients"]["last_7_days"], 1);
    // Another organization named: 403; a malformed one: 400.
    let other = app
        .client(&dashboards, &token)
        .send_with_headers(
            http::Method::GET,
            "/organization/dashboard",
            None,
            &[("pulso-organization", &uuid::Uuid::new_v4().to_string())],
        )
        .await;
    other.problem(403);
    stand_in.delete_pool(&cognito.pool()).await.unwrap();
}
