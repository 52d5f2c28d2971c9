//! Authentication, roles, tenant isolation and row-level security.

use axum::Router;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use http::Method;
use pulso_tests::{TestApp, TestOptions};
use serde_json::{Value, json};
use shared::auth::{Claims, Role};
use shared::ids::ClinicId;
use sqlx::Connection;

async fn patient(
    app: &TestApp,
    router: &Router,
    clinic: &pulso_tests::TestClinic,
    name: &str,
) -> String {
    let token = app.token(clinic, Role::Receptionist);
    let response = app
        .client(router, &token)
        .post(
            "/patients",
            &json!({"first_name": name, "last_name": "Ruiz"}),
        )
        .await;
    assert_eq!(response.status, 201, "{}", response.body);
    response.body["id"].as_str().unwrap().to_string()
}

#[tokio::test]
async fn tokens_that_are_missing_expired_or_forged_get_401() {
    let app = TestApp::spawn().await;
    let router = shared::patients::router(app.state.clone());
    let clinic = app.clinic_a;
    let user = clinic.receptionist;
    let now = chrono::Utc::now().timestamp();
    let claims = |iss: &str, aud: &str| Claims {
        sub: user,
        clinic_id: Some(clinic.id),
        iss: iss.into(),
        aud: aud.into(),
        iat: now,
        exp: now + 600,
        platform_admin: false,
    };
    let sign = |claims: &Claims| {
        shared::auth::mint_hs256(pulso_tests::JWT_SECRET.as_bytes(), claims).unwrap()
    };
    let unsigned = format!(
        "{}.{}.",
        URL_SAFE_NO_PAD.encode(br#"{"alg":"none","typ":"JWT"}"#),
        URL_SAFE_NO_PAD.encode(serde_json::to_vec(&claims("pulso-local", "pulso")).unwrap())
    );
    // The good claims with one changed, signed with the right key.
    let with = |name: &str, value: Value| {
        let mut claims = serde_json::to_value(claims("pulso-local", "pulso")).unwrap();
        claims[name] = value;
        jsonwebtoken::encode(
            &jsonwebtoken::Header::default(),
            &claims,
            &jsonwebtoken::EncodingKey::from_secret(pulso_tests::JWT_SECRET.as_bytes()),
        )
        .unwrap()
    };

    #[rustfmt::skip]
    let cases: Vec<(&str, Option<String>, &str)> = vec![
        ("no token", None, "bearer token"),
        ("expired", Some(app.token_for(Some(clinic.id), user, -3600, pulso_tests::JWT_SECRET)), "expired"),
        ("wrong signature", Some(app.token_for(Some(clinic.id), user, 600, "another-secret-that-is-long-enough-0123")), "not valid"),
        ("alg none", Some(unsigned), "not valid"),
        ("wrong issuer", Some(sign(&claims("evil-issuer", "pulso"))), "not valid"),
        ("wrong audience", Some(sign(&claims("pulso-local", "other-app"))), "not valid"),
        ("a clinic_id that is no id", Some(with("clinic_id", json!("sonrisa"))), "not valid"),
        ("not valid before an hour from now", Some(with("nbf", json!(now + 3600))), "not valid"),
        ("issued an hour from now", Some(with("iat", json!(now + 3600))), "not valid"),
        ("issued two days ago, exp still ahead", Some(with("iat", json!(now - 2 * 86_400))), "expired"),
        ("garbage", Some("not.a.jwt".into()), "not valid"),
    ];
    for (name, token, detail) in cases {
        let response = app
            .anonymous(&router)
            .with_token(token.as_deref())
            .get("/patients")
            .await;
        let problem = response.problem(401);
        assert_eq!(problem["type"], "/problems/unauthorized", "{name}");
        assert!(
            problem["detail"].as_str().unwrap().contains(detail),
            "{name}: {problem}"
        );
        assert!(response.headers.contains_key("www-authenticate"), "{name}");
    }
    // A token valid since a minute ago is valid.
    let since = app
        .client(&router, &with("nbf", json!(now - 60)))
        .get("/patients")
        .await;
    assert_eq!(since.status, 200, "{}", since.body);

    // Not a bearer scheme.
    let response = app
        .anonymous(&router)
        .send_bytes(Method::GET, "/patients", None, axum::body::Body::empty())
        .await;
    response.problem(401);

    // A write with a bad token writes nothing, even with a perfectly valid body.
    let forged = app.token_for(
        Some(clinic.id),
        user,
        600,
        "another-secret-that-is-long-enough-0123",
    );
    let response = app
        .client(&router, &forged)
        .post("/patients", &json!({"first_name": "A", "last_name": "B"}))
        .await;
    response.problem(401);
    assert_eq!(app.count("patients", clinic.id).await, 0);
}

#[tokio::test]
async fn the_wrong_role_gets_403_and_changes_nothing() {
    let app = TestApp::spawn().await;
    let router = shared::patients::router(app.state.clone());
    let id = patient(&app, &router, &app.clinic_a, "Ana").await;
    let dentist = app.token(&app.clinic_a, Role::Dentist);
    let as_dentist = app.client(&router, &dentist);
    let response = as_dentist.delete(&format!("/patients/{id}")).await;
    let problem = response.problem(403);
    assert_eq!(problem["type"], "/problems/forbidden");
    assert!(
        problem["detail"]
            .as_str()
            .unwrap()
            .contains("admin, receptionist")
    );
    let shown = as_dentist.get(&format!("/patients/{id}")).await;
    assert_eq!(shown.body["archived_at"], Value::Null, "not archived");
}

#[tokio::test]
async fn another_clinics_patients_are_invisible() {
    let app = TestApp::spawn().await;
    let router = shared::patients::router(app.state.clone());
    let own = patient(&app, &router, &app.clinic_a, "Propia").await;
    let foreign = patient(&app, &router, &app.clinic_b, "Ajena").await;
    let token = app.token(&app.clinic_a, Role::Admin);
    let client = app.client(&router, &token);

    let missing = client
        .get(&format!("/patients/{}", uuid::Uuid::new_v4()))
        .await;
    for (method, body) in [
        (Method::GET, None),
        (Method::PATCH, Some(json!({"first_name": "Robada"}))),
        (Method::DELETE, None),
    ] {
        let response = client
            .send(
                method.clone(),
                &format!("/patients/{foreign}"),
                body.as_ref(),
            )
            .await;
        // Exactly the answer for a row that does not exist: nothing reveals it does.
        assert_eq!(response.problem(404), &missing.body, "{method}");
    }
    let listed = client.get("/patients?include_archived=true").await;
    let ids: Vec<&str> = listed.body["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, vec![own.as_str()]);
    let searched = client.get("/patients?search=ajena").await;
    assert_eq!(searched.body["items"].as_array().map(Vec::len), Some(0));

    // Clinic B's patient is untouched.
    let b = app.token(&app.clinic_b, Role::Admin);
    let theirs = app
        .client(&router, &b)
        .get(&format!("/patients/{foreign}"))
        .await;
    assert_eq!(theirs.body["first_name"], "Ajena");
    assert_eq!(theirs.body["archived_at"], Value::Null);
}

#[tokio::test]
async fn row_level_security_holds_without_any_where_clause() {
    let app = TestApp::spawn().await;
    let router = shared::patients::router(app.state.clone());
    for name in ["A1", "A2", "A3"] {
        patient(&app, &router, &app.clinic_a, name).await;
    }
    patient(&app, &router, &app.clinic_b, "B1").await;

    // The application role: not a superuser, cannot bypass RLS, owns no table.
    let mut tx = shared::db::begin_tenant(&app.state.db, app.clinic_a.id)
        .await
        .unwrap();
    let (superuser, bypass, owns): (bool, bool, i64) = sqlx::query_as(
        "SELECT r.rolsuper, r.rolbypassrls,
                (SELECT count(*) FROM pg_tables t WHERE t.schemaname = 'public' AND t.tableowner = current_user)
         FROM pg_roles r WHERE r.rolname = current_user",
    )
    .fetch_one(&mut *tx)
    .await
    .unwrap();
    assert!(!superuser && !bypass, "the app role must be subject to RLS");
    assert_eq!(owns, 0, "the app role must not own the tables");

    // No filter at all, yet only clinic A's rows.
    let names: Vec<String> =
        sqlx::query_scalar("SELECT first_name FROM patients ORDER BY first_name")
            .fetch_all(&mut *tx)
            .await
            .unwrap();
    assert_eq!(names, vec!["A1", "A2", "A3"]);
    let users: i64 = sqlx::query_scalar("SELECT count(*) FROM users")
        .fetch_one(&mut *tx)
        .await
        .unwrap();
    assert_eq!(users, 4);
    let clinics: Vec<ClinicId> = sqlx::query_scalar("SELECT id FROM clinics")
        .fetch_all(&mut *tx)
        .await
        .unwrap();
    assert_eq!(clinics, vec![app.clinic_a.id]);
    // Writing into another clinic is refused by the policy's WITH CHECK.
    let crossed = sqlx::query("INSERT INTO patients (clinic_id, first_name, last_name, search_name) VALUES ($1, 'X', 'Y', 'x y')")
        .bind(app.clinic_b.id)
        .execute(&mut *tx)
        .await
        .expect_err("RLS rejects a row of another clinic");
    assert!(
        crossed.to_string().contains("row-level security"),
        "{crossed}"
    );
    tx.rollback().await.unwrap();
    // Moving a row to another clinic is refused as well.
    let mut tx = shared::db::begin_tenant(&app.state.db, app.clinic_a.id)
        .await
        .unwrap();
    let moved = sqlx::query("UPDATE patients SET clinic_id = $1")
        .bind(app.clinic_b.id)
        .execute(&mut *tx)
        .await;
    assert!(moved.is_err(), "RLS rejects moving rows across clinics");
    tx.rollback().await.unwrap();

    // Outside a tenant transaction the app role sees nothing, even on a pooled connection that
    // served a tenant before (SET LOCAL ended with that transaction).
    let mut connection = app.state.db.acquire().await.unwrap();
    let visible: i64 = sqlx::query_scalar("SELECT count(*) FROM patients")
        .fetch_one(&mut *connection)
        .await
        .unwrap();
    assert_eq!(visible, 0);
    drop(connection);

    // A fresh connection with no setting at all: still nothing, and no cast error.
    let url = app.state.config.database.url.expose().to_string();
    let mut fresh = sqlx::PgConnection::connect(&url).await.unwrap();
    let visible: i64 = sqlx::query_scalar("SELECT count(*) FROM patients")
        .fetch_one(&mut fresh)
        .await
        .unwrap();
    assert_eq!(visible, 0);
    // Patients cannot be deleted by the app role at all: archive, never erase.
    let deleted = sqlx::query("DELETE FROM patients")
        .execute(&mut fresh)
        .await;
    assert!(deleted.is_err());
}

/// The free-slot search's one-round-trip read (`clinic_capacity`, migration 27) sets the clinic
/// for its own statement only: it sees that clinic's rows alone, and leaves no setting behind,
/// neither on a pooled connection nor inside a tenant transaction of another clinic.
#[tokio::test]
async fn the_capacity_read_sees_its_clinic_alone_and_leaves_no_setting_behind() {
    let app = TestApp::spawn().await;
    let router = shared::schedule::router(app.state.clone());
    let mut chairs = Vec::new();
    for clinic in [&app.clinic_a, &app.clinic_b] {
        let created = app
            .client(&router, &app.token(clinic, Role::Admin))
            .post("/chairs", &json!({"name": "Gabinete 1"}))
            .await;
        assert_eq!(created.status, 201, "{}", created.body);
        chairs.push(
            created.body["id"]
                .as_str()
                .unwrap()
                .parse::<uuid::Uuid>()
                .unwrap(),
        );
    }
    let read = "SELECT chairs FROM clinic_capacity($1, current_date, current_date, '{1}', \
                now(), now() + interval '1 day')";

    let mut connection = app.state.db.acquire().await.unwrap();
    let seen: Option<Vec<uuid::Uuid>> = sqlx::query_scalar(read)
        .bind(app.clinic_a.id)
        .fetch_one(&mut *connection)
        .await
        .unwrap();
    assert_eq!(seen, Some(vec![chairs[0]]));
    let after: i64 = sqlx::query_scalar("SELECT count(*) FROM chairs")
        .fetch_one(&mut *connection)
        .await
        .unwrap();
    assert_eq!(after, 0, "the setting ended with the statement");
    drop(connection);

    let mut tx = shared::db::begin_tenant(&app.state.db, app.clinic_b.id)
        .await
        .unwrap();
    let seen: Option<Vec<uuid::Uuid>> = sqlx::query_scalar(read)
        .bind(app.clinic_a.id)
        .fetch_one(&mut *tx)
        .await
        .unwrap();
    assert_eq!(seen, Some(vec![chairs[0]]));
    let after: Vec<uuid::Uuid> = sqlx::query_scalar("SELECT id FROM chairs")
        .fetch_all(&mut *tx)
        .await
        .unwrap();
    assert_eq!(
        after,
        vec![chairs[1]],
        "the transaction's own clinic is back"
    );
    tx.rollback().await.unwrap();
}

/// The test pools whose key set the test server serves (`KEYS_POOL`) or redirects (`MOVED_POOL`).
const KEYS_POOL: &str = "eu-west-1_keys";
const MOVED_POOL: &str = "eu-west-1_moved";
const CLIENT: &str = "testclient";

/// Serves the test key set where Cognito serves a pool's (`/{pool}/.well-known/jwks.json`) for
/// [`KEYS_POOL`], and a redirect there for [`MOVED_POOL`]; answers the server's address.
async fn jwks_server() -> std::net::SocketAddr {
    let jwks: Value = serde_json::from_str(include_str!("../fixtures/jwks-test.json")).unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    let server = Router::new()
        .route(
            &format!("/{KEYS_POOL}/.well-known/jwks.json"),
            axum::routing::get(move || async move { axum::Json(jwks) }),
        )
        .route(
            &format!("/{MOVED_POOL}/.well-known/jwks.json"),
            axum::routing::get(|| async {
                axum::response::Redirect::temporary(&format!("/{KEYS_POOL}/.well-known/jwks.json"))
            }),
        );
    tokio::spawn(async move { axum::serve(listener, server).await });
    address
}

/// An app trusting the test pool `pool`, whose keys the server at `address` serves.
async fn app_with_pool(address: std::net::SocketAddr, pool: &str) -> TestApp {
    TestApp::spawn_with(TestOptions {
        cognito: Some(pulso_tests::CognitoOptions {
            user_pool_id: pool.into(),
            client_id: CLIENT.into(),
            endpoint: format!("http://{address}"),
        }),
        ..TestOptions::default()
    })
    .await
}

fn issuer(pool: &str) -> String {
    format!("https://cognito-idp.eu-west-1.amazonaws.com/{pool}")
}

/// A token shaped like Cognito's, signed with the test key under `kid`: `claims` are added to
/// (or replace) those of an ID token of subject `sub` for [`CLIENT`].
fn cognito_token(kid: &str, sub: &str, claims: Value) -> String {
    let key =
        jsonwebtoken::EncodingKey::from_rsa_pem(include_bytes!("../fixtures/jwks-test-key.pem"))
            .unwrap();
    let now = chrono::Utc::now().timestamp();
    let mut body = json!({
        "iss": issuer(KEYS_POOL), "sub": sub, "aud": CLIENT, "token_use": "id",
        "iat": now, "exp": now + 600, "email": "someone@example.com",
    });
    for (name, value) in claims.as_object().unwrap() {
        body[name] = value.clone();
    }
    body.as_object_mut()
        .unwrap()
        .retain(|_, value| !value.is_null());
    let mut header = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::RS256);
    header.kid = Some(kid.into());
    jsonwebtoken::encode(&header, &body, &key).unwrap()
}

/// Maps the pool's `sub` to clinic A's receptionist, as an invitation would have.
async fn link_receptionist(app: &TestApp, sub: &str) {
    let mut tx = app.owner_tx(app.clinic_a.id).await;
    sqlx::query("INSERT INTO user_identities (issuer, subject, user_id) VALUES ($1, $2, $3)")
        .bind(issuer(KEYS_POOL))
        .bind(sub)
        .bind(app.clinic_a.receptionist)
        .execute(&mut *tx)
        .await
        .unwrap();
    tx.commit().await.unwrap();
}

#[tokio::test]
async fn cognito_tokens_are_verified_against_the_pools_keys_beside_pulsos_own() {
    let address = jwks_server().await;
    let app = app_with_pool(address, KEYS_POOL).await;
    let router = shared::patients::router(app.state.clone());
    let kid = "pulso-test-key-1";
    link_receptionist(&app, "cognito-sub-1").await;
    let call = |token: String| {
        let client = app.client(&router, &token);
        async move { client.get("/patients").await }
    };

    let id_token = call(cognito_token(kid, "cognito-sub-1", json!({}))).await;
    assert_eq!(id_token.status, 200, "{}", id_token.body);
    // An access token names the client in `client_id` and has no `aud`.
    let access = json!({"token_use": "access", "aud": null, "client_id": CLIENT});
    let access_token = call(cognito_token(kid, "cognito-sub-1", access)).await;
    assert_eq!(access_token.status, 200, "{}", access_token.body);
    // Pulso's own tokens still work beside the pool's.
    let own = call(app.token(&app.clinic_a, Role::Receptionist)).await;
    assert_eq!(own.status, 200, "{}", own.body);

    let refused = [
        (kid, json!({"aud": "another-client"})),
        (
            kid,
            json!({"token_use": "access", "aud": null, "client_id": "another"}),
        ),
        // An access token's client in `aud` is not how Cognito writes it.
        (kid, json!({"token_use": "access"})),
        (kid, json!({"token_use": "refresh"})),
        (kid, json!({"token_use": null})),
        (kid, json!({"iss": issuer("eu-west-1_other")})),
        (kid, json!({"exp": chrono::Utc::now().timestamp() - 120})),
        ("rotated-away", json!({})),
    ];
    for (kid, claims) in refused {
        let response = call(cognito_token(kid, "cognito-sub-1", claims.clone())).await;
        response.problem(401);
    }
    // A good token of an identity no person has: who it is, Pulso does not know.
    let stranger = call(cognito_token(kid, "cognito-sub-unknown", json!({}))).await;
    assert_eq!(stranger.problem(401)["type"], "/problems/unknown-user");
    // An HS256 token claiming the pool's issuer, signed with anything: the pool's tokens are
    // RS256 whatever the token says (algorithm confusion).
    let now = chrono::Utc::now().timestamp();
    let confused = jsonwebtoken::encode(
        &jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256),
        &json!({"iss": issuer(KEYS_POOL), "sub": "cognito-sub-1", "aud": CLIENT,
                "token_use": "id", "iat": now, "exp": now + 600}),
        &jsonwebtoken::EncodingKey::from_secret(pulso_tests::JWT_SECRET.as_bytes()),
    )
    .unwrap();
    call(confused).await.problem(401);
}

#[tokio::test]
async fn only_the_pools_platform_group_carries_the_operator_claim() {
    let address = jwks_server().await;
    let app = app_with_pool(address, KEYS_POOL).await;
    let router = shared::clinics::router(app.state.clone());
    let kid = "pulso-test-key-1";
    // Clinic A's admin is a listed operator (the harness's seed); map a sub to them.
    let mut tx = app.owner_tx(app.clinic_a.id).await;
    sqlx::query(
        "INSERT INTO user_identities (issuer, subject, user_id) VALUES ($1, 'admin-sub', $2)",
    )
    .bind(issuer(KEYS_POOL))
    .bind(app.clinic_a.admin)
    .execute(&mut *tx)
    .await
    .unwrap();
    tx.commit().await.unwrap();
    let as_group = |groups: Value| {
        let token = cognito_token(kid, "admin-sub", json!({"cognito:groups": groups}));
        let client = app.client(&router, &token);
        async move { client.get("/platform/clinics").await }
    };
    let operator = as_group(json!(["pulso-platform"])).await;
    assert_eq!(operator.status, 200, "{}", operator.body);
    as_group(json!(["admins"])).await.problem(403);
    as_group(json!(null)).await.problem(403);
}

#[tokio::test]
async fn the_jwks_client_does_not_follow_redirects() {
    let address = jwks_server().await;
    let app = app_with_pool(address, MOVED_POOL).await;
    let router = shared::patients::router(app.state.clone());
    let token = cognito_token(
        "pulso-test-key-1",
        "cognito-sub-1",
        json!({"iss": issuer(MOVED_POOL)}),
    );
    // The keys could not be fetched: the token can be judged neither way.
    let response = app.client(&router, &token).get("/patients").await;
    assert_eq!(response.problem(503)["type"], "/problems/unavailable");
}

#[tokio::test]
async fn forged_cursors_are_a_400_on_every_list() {
    let app = TestApp::spawn().await;
    let a = app.clinic_a;
    let patient = app.seed_patient(a.id, "Ana").await;
    let admin = app.token(&a, Role::Admin);
    let id = uuid::Uuid::new_v4();
    // Lists sorted by time, then the patients list, sorted by folded name.
    let by_time = [
        format!(r#"["-100000-01-01T00:00:00Z", "{id}"]"#),
        format!(r#"["+200000-01-01T00:00:00Z", "{id}"]"#),
        format!(r#"["2026-01-01T00:00:00Z\u0000", "{id}"]"#),
        r#"{"after": 1}"#.to_string(),
    ];
    let by_name = [
        format!(r#"["a\u0000b", "{id}"]"#),
        format!(r#"["{}", "{id}"]"#, "a".repeat(1001)),
        r#"["ana", "not-a-uuid"]"#.to_string(),
    ];
    let lists = [
        (
            shared::appointments::router(app.state.clone()),
            "/appointments".to_string(),
            &by_time[..],
        ),
        (
            shared::admin::router(app.state.clone()),
            "/admin/jobs".to_string(),
            &by_time[..],
        ),
        (
            shared::xrays::router(app.state.clone()),
            format!("/patients/{patient}/xrays"),
            &by_time[..],
        ),
        (
            shared::patients::router(app.state.clone()),
            "/patients".to_string(),
            &by_name[..],
        ),
    ];
    for (router, path, forged) in &lists {
        for cursor in forged.iter() {
            let encoded = URL_SAFE_NO_PAD.encode(cursor);
            let response = app
                .client(router, &admin)
                .get(&format!("{path}?cursor={encoded}"))
                .await;
            assert_eq!(response.problem(400)["field"], "cursor", "{path} {cursor}");
        }
    }
}
