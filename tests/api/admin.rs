//! The admin cache view: counters and Redis facts, invalidation by scope, roles, and what
//! happens when Redis is away.

use pulso_tests::{Client, TestApp, TestOptions};
use redis::AsyncCommands;
use serde_json::{Value, json};
use shared::auth::Role;

async fn register_patient(client: &Client) -> String {
    let created = client
        .post(
            "/patients",
            &json!({"first_name": "Lucía", "last_name": "Prieto"}),
        )
        .await;
    assert_eq!(created.status, 201, "{}", created.body);
    created.body["id"].as_str().unwrap().to_string()
}

async fn read_patient(client: &Client, id: &str) -> Value {
    let shown = client.get(&format!("/patients/{id}")).await;
    assert_eq!(shown.status, 200, "{}", shown.body);
    shown.body
}

#[tokio::test]
async fn admins_see_their_clinics_counters_and_only_platform_admins_the_redis_facts() {
    let app = TestApp::spawn().await;
    let patients = shared::patients::router(app.state.clone());
    let admin = shared::admin::router(app.state.clone());
    let token = app.token(&app.clinic_a, Role::Receptionist);
    let patients_client = app.client(&patients, &token);
    let id = register_patient(&patients_client).await;
    for _ in 0..4 {
        read_patient(&patients_client, &id).await;
    }

    let admin_a = app.token(&app.clinic_a, Role::Admin);
    let stats = app.client(&admin, &admin_a).get("/admin/cache/stats").await;
    assert_eq!(stats.status, 200, "{}", stats.body);
    let body = &stats.body;
    assert_eq!(body["scope"], "clinic");
    assert_eq!(body["clinic_id"], app.clinic_a.id.to_string());
    let profile = &body["caches"]["patient_profile"];
    assert_eq!(profile["misses"], 1);
    assert_eq!(profile["hits"], 3);
    assert_eq!(profile["loads"], 1);
    assert_eq!(profile["hit_rate"], 0.75);
    for name in ["catalog_view", "dashboard"] {
        assert_eq!(body["caches"][name]["hits"], 0, "{name} listed with zeros");
    }
    assert!(body["counting_since"].is_string());
    assert_eq!(body["circuit_open"], false);
    // The server's facts are shared by every clinic: platform scope only.
    assert_eq!(body["redis"], json!({"reachable": true}));

    // Clinic B's admin sees none of clinic A's reads.
    let admin_b = app.token(&app.clinic_b, Role::Admin);
    let other = app.client(&admin, &admin_b).get("/admin/cache/stats").await;
    assert_eq!(other.body["caches"]["patient_profile"]["misses"], 0);

    // A platform admin sees every clinic together, the shared caches and the server.
    let platform = app.platform_admin_token(&app.clinic_b);
    let all = app
        .client(&admin, &platform)
        .get("/admin/cache/stats?scope=platform")
        .await;
    assert_eq!(all.status, 200, "{}", all.body);
    assert_eq!(all.body["scope"], "platform");
    assert!(all.body.get("clinic_id").is_none());
    assert_eq!(all.body["caches"]["patient_profile"]["hits"], 3);
    assert!(all.body["caches"]["clinic_list"].is_object());
    assert_eq!(all.body["redis"]["reachable"], true);
    let redis = &all.body["redis"]["server"];
    assert!(redis["used_memory_bytes"].as_u64().unwrap() > 0);
    assert!(redis["connected_clients"].as_u64().unwrap() >= 1);
    assert!(redis["keys"].as_u64().unwrap() >= 1);
    assert!(redis["version"].is_string());
    for fact in ["evicted_keys", "keyspace_hit_ratio", "maxmemory_policy"] {
        assert!(redis.get(fact).is_some(), "{fact} reported");
    }
}

#[tokio::test]
async fn only_admins_use_the_cache_view_and_only_platform_admins_go_global() {
    let app = TestApp::spawn().await;
    let admin = shared::admin::router(app.state.clone());
    for role in [Role::Dentist, Role::Receptionist] {
        let token = app.token(&app.clinic_a, role);
        app.client(&admin, &token)
            .get("/admin/cache/stats")
            .await
            .problem(403);
        app.client(&admin, &token)
            .post("/admin/cache/invalidate", &json!({"scope": "clinic"}))
            .await
            .problem(403);
    }
    app.anonymous(&admin)
        .get("/admin/cache/stats")
        .await
        .problem(401);

    let clinic_admin = app.token(&app.clinic_a, Role::Admin);
    let admin_as_clinic_admin = app.client(&admin, &clinic_admin);
    admin_as_clinic_admin
        .get("/admin/cache/stats?scope=platform")
        .await
        .problem(403);
    let refused = admin_as_clinic_admin
        .post(
            "/admin/cache/invalidate",
            &json!({"scope": "global_catalog"}),
        )
        .await;
    assert!(
        refused.problem(403)["detail"]
            .as_str()
            .unwrap()
            .contains("platform admin")
    );
    let platform = app.platform_admin_token(&app.clinic_a);
    let done = app
        .client(&admin, &platform)
        .post(
            "/admin/cache/invalidate",
            &json!({"scope": "global_catalog"}),
        )
        .await;
    assert_eq!(done.status, 200, "{}", done.body);
    assert_eq!(done.body, json!({"scope": "global_catalog"}));
}

#[tokio::test]
async fn invalidating_a_patient_or_the_clinic_makes_the_next_read_fresh() {
    let app = TestApp::spawn().await;
    let patients = shared::patients::router(app.state.clone());
    let admin = shared::admin::router(app.state.clone());
    let staff = app.token(&app.clinic_a, Role::Receptionist);
    let admin_token = app.token(&app.clinic_a, Role::Admin);
    let admin_as_admin_token = app.client(&admin, &admin_token);
    let id = register_patient(&app.client(&patients, &staff)).await;
    read_patient(&app.client(&patients, &staff), &id).await;

    // A change made behind the API's back (a data fix in SQL) is not seen while cached...
    let rename = |name: &'static str| {
        let app = &app;
        let id = id.clone();
        async move {
            let mut tx = app.owner_tx(app.clinic_a.id).await;
            sqlx::query("UPDATE patients SET first_name = $1 WHERE id = $2::uuid")
                .bind(name)
                .bind(&id)
                .execute(&mut *tx)
                .await
                .unwrap();
            tx.commit().await.unwrap();
        }
    };
    rename("Lucía María").await;
    let cached = read_patient(&app.client(&patients, &staff), &id).await;
    assert_eq!(cached["first_name"], "Lucía");

    // ...until an admin invalidates that patient.
    let done = admin_as_admin_token
        .post(
            "/admin/cache/invalidate",
            &json!({"scope": "patient", "patient_id": id}),
        )
        .await;
    assert_eq!(done.status, 200, "{}", done.body);
    assert_eq!(
        done.body,
        json!({"scope": "patient", "clinic_id": app.clinic_a.id, "patient_id": id})
    );
    let key = app
        .state
        .keys
        .patient_profile(app.clinic_a.id, id.parse().unwrap());
    let gone: Option<Vec<u8>> = app.redis().await.get(&key.value).await.unwrap();
    assert_eq!(gone, None);
    assert_eq!(
        read_patient(&app.client(&patients, &staff), &id).await["first_name"],
        "Lucía María"
    );

    // The same through the clinic scope (a new clinic generation, O(1)).
    rename("María").await;
    assert_eq!(
        read_patient(&app.client(&patients, &staff), &id).await["first_name"],
        "Lucía María"
    );
    let done = admin_as_admin_token
        .post("/admin/cache/invalidate", &json!({"scope": "clinic"}))
        .await;
    assert_eq!(done.status, 200, "{}", done.body);
    assert_eq!(
        read_patient(&app.client(&patients, &staff), &id).await["first_name"],
        "María"
    );

    for scope in ["catalog", "dashboard"] {
        let done = admin_as_admin_token
            .post("/admin/cache/invalidate", &json!({ "scope": scope }))
            .await;
        assert_eq!(done.status, 200, "{}", done.body);
        assert_eq!(done.body["scope"], scope);
    }
}

#[tokio::test]
async fn malformed_invalidations_are_rejected_naming_the_field() {
    let app = TestApp::spawn().await;
    let admin = shared::admin::router(app.state.clone());
    let token = app.token(&app.clinic_a, Role::Admin);
    let admin_client = app.client(&admin, &token);
    for (body, field) in [
        (json!({"scope": "everything"}), "scope"),
        (json!({}), "scope"),
        (json!({"scope": "patient"}), "patient_id"),
        (
            json!({"scope": "patient", "patient_id": "nope"}),
            "patient_id",
        ),
        (
            json!({"scope": "clinic", "clinic_id": app.clinic_b.id}),
            "clinic_id",
        ),
    ] {
        let rejected = admin_client.post("/admin/cache/invalidate", &body).await;
        let problem = rejected.problem(422);
        assert!(
            problem["field"].as_str().unwrap_or("").contains(field)
                || problem["detail"].as_str().unwrap_or("").contains(field),
            "{body} → {problem}"
        );
    }
    admin_client
        .get("/admin/cache/stats?scope=galaxy")
        .await
        .problem(400);
}

#[tokio::test]
async fn without_redis_the_view_says_so_and_invalidation_is_a_503() {
    let app = TestApp::spawn_with(TestOptions {
        redis_unreachable: true,
        ..TestOptions::default()
    })
    .await;
    let admin = shared::admin::router(app.state.clone());
    let token = app.token(&app.clinic_a, Role::Admin);
    let admin_client = app.client(&admin, &token);
    let stats = admin_client.get("/admin/cache/stats").await;
    assert_eq!(stats.status, 200, "{}", stats.body);
    assert_eq!(stats.body["redis"], json!({"reachable": false}));
    assert_eq!(stats.body["caches"]["patient_profile"]["hits"], 0);

    let refused = admin_client
        .post("/admin/cache/invalidate", &json!({"scope": "clinic"}))
        .await;
    refused.problem(503);
    assert!(refused.headers.get("retry-after").is_some());
}
