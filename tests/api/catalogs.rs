//! `/catalogs` through the real router, PostgreSQL and Redis: the seeded global catalog, clinic
//! overrides, the cached view and its invalidation, global changes by platform admins.

use axum::Router;
use http::Method;
use pulso_tests::{Client, TestApp, TestClinic};
use redis::AsyncCommands;
use serde_json::{Value, json};
use shared::auth::Role;
use shared::catalogs::CatalogKind;

/// The procedure codes the demo books appointments with: the migration must provide them.
const DEMO_PROCEDURES: [&str; 6] = ["REV", "LIMP", "EMP", "ENDO", "EXT", "ORTO"];

fn router(app: &TestApp) -> Router {
    shared::catalogs::router(app.state.clone())
}

async fn get(client: &Client, uri: &str) -> Value {
    let response = client.get(uri).await;
    assert_eq!(response.status, 200, "GET {uri}: {}", response.body);
    response.body
}

/// The item with `code` in a view, if listed.
fn item<'a>(view: &'a Value, code: &str) -> Option<&'a Value> {
    view["items"]
        .as_array()
        .expect("items")
        .iter()
        .find(|item| item["code"] == code)
}

fn codes(view: &Value) -> Vec<String> {
    view["items"]
        .as_array()
        .expect("items")
        .iter()
        .map(|item| item["code"].as_str().expect("code").to_string())
        .collect()
}

async fn global_rows(app: &TestApp) -> i64 {
    let mut tx = app.owner_tx(app.clinic_a.id).await;
    let count = sqlx::query_scalar("SELECT count(*) FROM catalog_items WHERE clinic_id IS NULL")
        .fetch_one(&mut *tx)
        .await
        .expect("count global rows");
    tx.rollback().await.ok();
    count
}

async fn global_price(app: &TestApp, code: &str) -> Option<i64> {
    let mut tx = app.owner_tx(app.clinic_a.id).await;
    let price = sqlx::query_scalar(
        "SELECT price_cents FROM catalog_items WHERE clinic_id IS NULL AND code = $1",
    )
    .bind(code)
    .fetch_one(&mut *tx)
    .await
    .expect("global price");
    tx.rollback().await.ok();
    price
}

/// A clinic row written behind the API's back (the cache does not know about it).
async fn write_behind(app: &TestApp, clinic: &TestClinic, sql: &str) {
    let mut tx = app.owner_tx(clinic.id).await;
    sqlx::query(sql)
        .bind(clinic.id)
        .execute(&mut *tx)
        .await
        .expect("write behind the API");
    tx.commit().await.expect("commit");
}

#[tokio::test]
async fn every_role_reads_the_global_catalog_seeded_by_migration() {
    let app = TestApp::spawn().await;
    let router = router(&app);

    let receptionist = app.token(&app.clinic_a, Role::Receptionist);
    let view = get(&app.client(&router, &receptionist), "/catalogs/procedure").await;
    assert_eq!(view["kind"], "procedure");
    let listed = codes(&view);
    assert!(listed.len() >= 18, "{listed:?}");
    for code in DEMO_PROCEDURES {
        assert!(listed.iter().any(|c| c == code), "{code} missing");
    }
    assert_eq!(
        item(&view, "LIMP"),
        Some(&json!({
            "code": "LIMP",
            "name": "Limpieza dental (profilaxis)",
            "default_minutes": 45,
            "price_cents": 5500,
            "currency": "EUR",
            "active": true,
            "source": "global"
        }))
    );
    // Alphabetical by name as people read it.
    let names: Vec<String> = view["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| shared::text::search_key(i["name"].as_str().unwrap()))
        .collect();
    let mut sorted = names.clone();
    sorted.sort();
    assert_eq!(names, sorted);

    let dentist = app.token(&app.clinic_b, Role::Dentist);
    let insurers = get(&app.client(&router, &dentist), "/catalogs/insurer").await;
    assert_eq!(insurers["kind"], "insurer");
    for code in ["SANITAS", "ADESLAS", "DKV", "MAPFRE", "ASISA"] {
        let insurer = item(&insurers, code).unwrap_or_else(|| panic!("{code} missing"));
        assert_eq!(insurer["default_minutes"], Value::Null);
        assert_eq!(insurer["price_cents"], Value::Null);
        assert_eq!(insurer["source"], "global");
    }

    let anonymous = app.anonymous(&router).get("/catalogs/procedure").await;
    assert_eq!(anonymous.problem(401)["type"], "/problems/unauthorized");
}

#[tokio::test]
async fn an_override_changes_one_clinic_only_and_can_be_removed() {
    let app = TestApp::spawn().await;
    let router = router(&app);
    let admin_a = app.token(&app.clinic_a, Role::Admin);
    let as_admin_a = app.client(&router, &admin_a);
    let reception_b = app.token(&app.clinic_b, Role::Receptionist);

    let created = as_admin_a
        .put(
            "/catalogs/procedure/LIMP",
            &json!({"price_cents": 4900, "name": "Limpieza con pulido"}),
        )
        .await;
    assert_eq!(created.status, 201, "{}", created.body);
    assert_eq!(
        created
            .headers
            .get("location")
            .and_then(|v| v.to_str().ok()),
        Some("/catalogs/procedure/LIMP")
    );
    assert_eq!(
        created.body,
        json!({
            "code": "LIMP",
            "name": "Limpieza con pulido",
            "default_minutes": 45,
            "price_cents": 4900,
            "currency": "EUR",
            "active": true,
            "source": "override"
        })
    );

    // Fields left out stay as the override had them; a second PUT is an update.
    let updated = as_admin_a
        .put("/catalogs/procedure/LIMP", &json!({"price_cents": 5000}))
        .await;
    assert_eq!(updated.status, 200, "{}", updated.body);
    assert_eq!(updated.body["name"], "Limpieza con pulido");
    assert_eq!(updated.body["price_cents"], 5000);
    assert_eq!(app.count("catalog_items", app.clinic_a.id).await, 1);

    let view_a = get(&as_admin_a, "/catalogs/procedure").await;
    assert_eq!(item(&view_a, "LIMP"), Some(&updated.body));
    let view_b = get(&app.client(&router, &reception_b), "/catalogs/procedure").await;
    let limp_b = item(&view_b, "LIMP").expect("LIMP for clinic B");
    assert_eq!(limp_b["price_cents"], 5500);
    assert_eq!(limp_b["name"], "Limpieza dental (profilaxis)");
    assert_eq!(limp_b["source"], "global");
    assert_eq!(app.count("catalog_items", app.clinic_b.id).await, 0);

    // `null` gives a field back to the global catalog.
    let reverted = as_admin_a
        .put("/catalogs/procedure/LIMP", &json!({"name": null}))
        .await;
    assert_eq!(reverted.status, 200, "{}", reverted.body);
    assert_eq!(reverted.body["name"], "Limpieza dental (profilaxis)");
    assert_eq!(reverted.body["price_cents"], 5000);
    assert_eq!(reverted.body["source"], "override");

    // Another clinic cannot remove it: it has no override of its own.
    let admin_b = app.token(&app.clinic_b, Role::Admin);
    let foreign = app
        .client(&router, &admin_b)
        .delete("/catalogs/procedure/LIMP")
        .await;
    assert_eq!(foreign.problem(404)["type"], "/problems/not-found");
    assert_eq!(app.count("catalog_items", app.clinic_a.id).await, 1);

    let removed = as_admin_a.delete("/catalogs/procedure/LIMP").await;
    assert_eq!(removed.status, 204, "{}", removed.body);
    assert_eq!(app.count("catalog_items", app.clinic_a.id).await, 0);
    let view_a = get(&as_admin_a, "/catalogs/procedure").await;
    assert_eq!(item(&view_a, "LIMP"), item(&view_b, "LIMP"));

    // Nothing left to delete.
    let again = as_admin_a.delete("/catalogs/procedure/LIMP").await;
    assert_eq!(again.problem(404)["type"], "/problems/not-found");
    let never = as_admin_a.delete("/catalogs/insurer/NOPE").await;
    never.problem(404);
}

#[tokio::test]
async fn a_clinic_adds_its_own_items_with_a_name_and_a_duration() {
    let app = TestApp::spawn().await;
    let router = router(&app);
    let admin = app.token(&app.clinic_a, Role::Admin);
    let put = |uri: &'static str, body: Value| {
        let (app, router, admin) = (&app, &router, &admin);
        async move { app.client(router, admin).put(uri, &body).await }
    };

    let nameless = put("/catalogs/procedure/INJERTO", json!({"price_cents": 30000})).await;
    let problem = nameless.problem(422);
    assert_eq!(problem["type"], "/problems/validation");
    assert_eq!(problem["field"], "name");
    let timeless = put(
        "/catalogs/procedure/INJERTO",
        json!({"name": "Injerto óseo", "price_cents": 30000}),
    )
    .await;
    assert_eq!(timeless.problem(422)["field"], "default_minutes");
    assert_eq!(app.count("catalog_items", app.clinic_a.id).await, 0);

    let created = put(
        "/catalogs/procedure/INJERTO",
        json!({"name": "Injerto óseo", "default_minutes": 60, "price_cents": 30000}),
    )
    .await;
    assert_eq!(created.status, 201, "{}", created.body);
    assert_eq!(created.body["source"], "clinic");
    assert_eq!(created.body["default_minutes"], 60);
    // An extra item cannot lose what it has nothing to inherit from.
    let cleared = put("/catalogs/procedure/INJERTO", json!({"name": null})).await;
    assert_eq!(cleared.problem(422)["field"], "name");

    let insurer = put(
        "/catalogs/insurer/MUTUA-LOCAL",
        json!({"name": "Mutua Local"}),
    )
    .await;
    assert_eq!(insurer.status, 201, "{}", insurer.body);
    assert_eq!(insurer.body["price_cents"], Value::Null);
    let priced = put("/catalogs/insurer/SANITAS", json!({"price_cents": 100})).await;
    assert_eq!(priced.problem(422)["field"], "price_cents");
    assert_eq!(app.count("catalog_items", app.clinic_a.id).await, 2);

    let view = get(&app.client(&router, &admin), "/catalogs/procedure").await;
    assert_eq!(item(&view, "INJERTO"), Some(&created.body));
    let other = app.token(&app.clinic_b, Role::Admin);
    let as_other = app.client(&router, &other);
    let view_b = get(&as_other, "/catalogs/procedure").await;
    assert!(item(&view_b, "INJERTO").is_none());
    let insurers_b = get(&as_other, "/catalogs/insurer").await;
    assert!(item(&insurers_b, "MUTUA-LOCAL").is_none());
}

#[tokio::test]
async fn inactive_items_are_hidden_unless_asked_for() {
    let app = TestApp::spawn().await;
    let router = router(&app);
    let admin = app.token(&app.clinic_a, Role::Admin);
    let as_admin = app.client(&router, &admin);
    let reception = app.token(&app.clinic_a, Role::Receptionist);
    let as_reception = app.client(&router, &reception);

    let hidden = as_admin
        .put("/catalogs/procedure/BLANQ", &json!({"active": false}))
        .await;
    assert_eq!(hidden.status, 201, "{}", hidden.body);
    assert_eq!(hidden.body["active"], false);

    let view = get(&as_reception, "/catalogs/procedure").await;
    assert!(item(&view, "BLANQ").is_none());
    let all = get(&as_admin, "/catalogs/procedure?include_inactive=true").await;
    let blanq = item(&all, "BLANQ").expect("listed when asked for");
    assert_eq!(blanq["active"], false);
    assert_eq!(blanq["source"], "override");
    let view_b = get(
        &app.client(&router, &app.token(&app.clinic_b, Role::Receptionist)),
        "/catalogs/procedure",
    )
    .await;
    assert!(item(&view_b, "BLANQ").is_some());

    let shown = as_admin
        .put("/catalogs/procedure/BLANQ", &json!({"active": true}))
        .await;
    assert_eq!(shown.status, 200);
    let view = get(&as_reception, "/catalogs/procedure").await;
    assert_eq!(
        item(&view, "BLANQ").map(|i| &i["active"]),
        Some(&json!(true))
    );
}

#[tokio::test]
async fn the_cached_view_is_invalidated_by_put_and_delete() {
    let app = TestApp::spawn().await;
    let router = router(&app);
    let admin = app.token(&app.clinic_a, Role::Admin);
    let as_admin = app.client(&router, &admin);
    let key = app
        .state
        .keys
        .catalog_view(app.clinic_a.id, CatalogKind::Procedure.as_str());
    let mut redis = app.redis().await;

    let first = get(&as_admin, "/catalogs/procedure").await;
    let exists: bool = redis.exists(&key.value).await.expect("redis");
    assert!(exists, "the view is cached after a read");
    let ttl: i64 = redis.ttl(&key.value).await.expect("redis");
    assert!(
        (50 * 60..=70 * 60).contains(&ttl),
        "about an hour, got {ttl}"
    );

    // A row written behind the API's back is not seen: the read is a cache hit.
    write_behind(
        &app,
        &app.clinic_a,
        "INSERT INTO catalog_items (clinic_id, kind, code, price_cents)
         VALUES ($1, 'procedure', 'EXT', 100)",
    )
    .await;
    let hit = get(&as_admin, "/catalogs/procedure").await;
    assert_eq!(hit, first);

    // A PUT through the API commits, then invalidates: the next read loads the new rows.
    let put = as_admin
        .put(
            "/catalogs/procedure/EXT",
            &json!({"name": "Extracción simple"}),
        )
        .await;
    assert_eq!(put.status, 200, "{}", put.body);
    let after_put = get(&as_admin, "/catalogs/procedure").await;
    let ext = item(&after_put, "EXT").expect("EXT");
    assert_eq!(ext["name"], "Extracción simple");
    assert_eq!(ext["price_cents"], 100);

    // So does a DELETE.
    let deleted = as_admin.delete("/catalogs/procedure/EXT").await;
    assert_eq!(deleted.status, 204);
    let after_delete = get(&as_admin, "/catalogs/procedure").await;
    assert_eq!(item(&after_delete, "EXT"), item(&first, "EXT"));

    // A change to one kind leaves the other kind's cached view alone.
    let insurers = get(&as_admin, "/catalogs/insurer").await;
    write_behind(
        &app,
        &app.clinic_a,
        "INSERT INTO catalog_items (clinic_id, kind, code, name)
         VALUES ($1, 'insurer', 'SECRETA', 'Aseguradora oculta')",
    )
    .await;
    as_admin
        .put("/catalogs/procedure/REV", &json!({"price_cents": 3000}))
        .await;
    assert_eq!(get(&as_admin, "/catalogs/insurer").await, insurers);
}

#[tokio::test]
async fn a_global_change_reaches_every_clinic_at_once() {
    let app = TestApp::spawn().await;
    let router = router(&app);
    let platform = app.platform_admin_token(&app.clinic_a);
    let as_platform = app.client(&router, &platform);
    let reception_a = app.token(&app.clinic_a, Role::Receptionist);
    let as_reception_a = app.client(&router, &reception_a);
    let reception_b = app.token(&app.clinic_b, Role::Receptionist);
    let as_reception_b = app.client(&router, &reception_b);
    let admin_b = app.token(&app.clinic_b, Role::Admin);
    let as_admin_b = app.client(&router, &admin_b);
    let mut redis = app.redis().await;

    // Clinic B renamed REV for itself; both clinics' views are cached.
    let renamed = as_admin_b
        .put("/catalogs/procedure/REV", &json!({"name": "Revisión"}))
        .await;
    assert_eq!(renamed.status, 201, "{}", renamed.body);
    let before_a = get(&as_reception_a, "/catalogs/procedure").await;
    let before_b = get(&as_reception_b, "/catalogs/procedure").await;
    for clinic in [&app.clinic_a, &app.clinic_b] {
        let key = app.state.keys.catalog_view(clinic.id, "procedure");
        let exists: bool = redis.exists(&key.value).await.expect("redis");
        assert!(exists, "view of {} cached", clinic.id);
    }
    assert_eq!(item(&before_a, "REV").unwrap()["price_cents"], 3500);
    let rev_b = item(&before_b, "REV").unwrap();
    assert_eq!(
        (&rev_b["name"], &rev_b["price_cents"]),
        (&json!("Revisión"), &json!(3500))
    );

    // One global write; no clinic's key is touched one by one.
    let changed = as_platform
        .put(
            "/catalogs/procedure/REV?scope=global",
            &json!({"price_cents": 3900}),
        )
        .await;
    assert_eq!(changed.status, 200, "{}", changed.body);
    assert_eq!(changed.body["source"], "global");
    assert_eq!(changed.body["price_cents"], 3900);
    assert_eq!(changed.body["name"], "Revisión general");
    assert_eq!(global_price(&app, "REV").await, Some(3900));

    let after_a = get(&as_reception_a, "/catalogs/procedure").await;
    let after_b = get(&as_reception_b, "/catalogs/procedure").await;
    assert_eq!(item(&after_a, "REV").unwrap()["price_cents"], 3900);
    let rev_b = item(&after_b, "REV").unwrap();
    assert_eq!(rev_b["price_cents"], 3900);
    assert_eq!(rev_b["name"], "Revisión", "B's own name stays");
    assert_eq!(rev_b["source"], "override");

    // A new global item appears for everyone.
    let globals = global_rows(&app).await;
    let added = as_platform
        .put(
            "/catalogs/procedure/CBCT?scope=global",
            &json!({"name": "TAC dental (CBCT)", "default_minutes": 20, "price_cents": 9000}),
        )
        .await;
    assert_eq!(added.status, 201, "{}", added.body);
    assert_eq!(global_rows(&app).await, globals + 1);
    assert_eq!(app.count("catalog_items", app.clinic_a.id).await, 0);
    for token in [&reception_a, &reception_b] {
        let view = get(&app.client(&router, token), "/catalogs/procedure").await;
        assert_eq!(item(&view, "CBCT").unwrap()["source"], "global");
    }
    let incomplete = as_platform
        .put(
            "/catalogs/procedure/NUEVO?scope=global",
            &json!({"name": "Sin duración"}),
        )
        .await;
    assert_eq!(incomplete.problem(422)["field"], "default_minutes");
    assert_eq!(global_rows(&app).await, globals + 1);

    // DELETE with scope=global retires the item for everyone; the row stays.
    let retired = as_platform
        .delete("/catalogs/procedure/CBCT?scope=global")
        .await;
    assert_eq!(retired.status, 204, "{}", retired.body);
    assert_eq!(global_rows(&app).await, globals + 1);
    for token in [&reception_a, &reception_b] {
        let view = get(&app.client(&router, token), "/catalogs/procedure").await;
        assert!(item(&view, "CBCT").is_none());
    }
    let all = get(&as_admin_b, "/catalogs/procedure?include_inactive=true").await;
    assert_eq!(item(&all, "CBCT").unwrap()["active"], false);
    // A clinic cannot revive what the platform retired.
    let revived = as_admin_b
        .put("/catalogs/procedure/CBCT", &json!({"active": true}))
        .await;
    assert_eq!(revived.status, 201, "{}", revived.body);
    assert_eq!(revived.body["active"], false);
    // The platform can.
    let back = as_platform
        .put(
            "/catalogs/procedure/CBCT?scope=global",
            &json!({"active": true}),
        )
        .await;
    assert_eq!(back.status, 200, "{}", back.body);
    let view = get(&as_reception_b, "/catalogs/procedure").await;
    assert_eq!(item(&view, "CBCT").unwrap()["active"], true);

    let unknown = as_platform
        .delete("/catalogs/procedure/NOPE?scope=global")
        .await;
    assert_eq!(unknown.problem(404)["type"], "/problems/not-found");
}

#[tokio::test]
async fn only_admins_edit_and_only_platform_admins_edit_the_global_catalog() {
    let app = TestApp::spawn().await;
    let router = router(&app);
    let body = json!({"price_cents": 1});

    for role in [Role::Receptionist, Role::Dentist] {
        let token = app.token(&app.clinic_a, role);
        let put = app
            .client(&router, &token)
            .put("/catalogs/procedure/REV", &body)
            .await;
        let problem = put.problem(403);
        assert_eq!(problem["type"], "/problems/forbidden");
        assert!(problem["detail"].as_str().unwrap().contains("admin"));
        let delete = app
            .client(&router, &token)
            .delete("/catalogs/procedure/REV")
            .await;
        delete.problem(403);
    }

    // A clinic admin without the platform claim changes only their own clinic.
    let admin = app.token(&app.clinic_a, Role::Admin);
    let as_admin = app.client(&router, &admin);
    let global_put = as_admin
        .put("/catalogs/procedure/REV?scope=global", &body)
        .await;
    assert_eq!(global_put.problem(403)["type"], "/problems/forbidden");
    let global_delete = as_admin
        .delete("/catalogs/procedure/REV?scope=global")
        .await;
    global_delete.problem(403);
    // Even a platform-admin claim on a non-admin token is not honoured.
    let now = chrono::Utc::now().timestamp();
    let claims = shared::auth::Claims {
        sub: app.clinic_a.dentist,
        clinic_id: Some(app.clinic_a.id),
        iss: "pulso-local".into(),
        aud: "pulso".into(),
        iat: now,
        exp: now + 600,
        platform_admin: true,
    };
    let claims_token =
        shared::auth::mint_hs256(pulso_tests::JWT_SECRET.as_bytes(), &claims).expect("sign");
    let dentist_global = app
        .client(&router, &claims_token)
        .put("/catalogs/procedure/REV?scope=global", &body)
        .await;
    dentist_global.problem(403);

    assert_eq!(app.count("catalog_items", app.clinic_a.id).await, 0);
    assert_eq!(global_price(&app, "REV").await, Some(3500));

    // A platform admin is a clinic admin too: without scope it writes their clinic.
    let platform = app.platform_admin_token(&app.clinic_a);
    let own = app
        .client(&router, &platform)
        .put("/catalogs/procedure/REV", &body)
        .await;
    assert_eq!(own.status, 201, "{}", own.body);
    assert_eq!(own.body["source"], "override");
    assert_eq!(global_price(&app, "REV").await, Some(3500));
}

#[tokio::test]
async fn bad_input_is_refused_naming_the_field_and_writes_nothing() {
    let app = TestApp::spawn().await;
    let router = router(&app);
    let admin = app.token(&app.clinic_a, Role::Admin);
    let as_admin = app.client(&router, &admin);
    let platform = app.platform_admin_token(&app.clinic_a);
    let globals = global_rows(&app).await;

    let unknown_kind = as_admin.get("/catalogs/treatment").await;
    assert_eq!(unknown_kind.problem(404)["type"], "/problems/not-found");
    let unknown_kind = as_admin
        .put("/catalogs/procedures/REV", &json!({"price_cents": 1}))
        .await;
    unknown_kind.problem(404);
    let unknown_kind = as_admin.delete("/catalogs/drug/REV").await;
    unknown_kind.problem(404);

    let long_code = format!("/catalogs/procedure/{}", "X".repeat(33));
    let rev = "/catalogs/procedure/REV";
    #[rustfmt::skip]
    let cases: Vec<(&str, &str, Value, u16, Option<&str>)> = vec![
        ("PUT", "/catalogs/procedure/bad%20code", json!({"price_cents": 1}), 400, Some("code")),
        ("PUT", "/catalogs/procedure/%C3%91U", json!({"price_cents": 1}), 400, Some("code")),
        ("PUT", &long_code, json!({"name": "x", "default_minutes": 30}), 400, Some("code")),
        ("PUT", rev, json!({"price_cents": -1}), 422, Some("price_cents")),
        ("PUT", rev, json!({"price_cents": 100_000_001}), 422, Some("price_cents")),
        ("PUT", rev, json!({"price_cents": "35"}), 422, Some("price_cents")),
        ("PUT", rev, json!({"price_cents": 12.5}), 422, Some("price_cents")),
        ("PUT", rev, json!({"default_minutes": 1000}), 422, Some("default_minutes")),
        ("PUT", rev, json!({"name": ""}), 422, Some("name")),
        ("PUT", rev, json!({"name": "a\u{7}b"}), 422, Some("name")),
        ("PUT", rev, json!({"active": null}), 422, Some("active")),
        ("PUT", rev, json!({"active": "no"}), 422, Some("active")),
        ("PUT", rev, json!({"colour": "red"}), 422, Some("colour")),
        ("PUT", rev, json!({"currency": "USD"}), 422, Some("currency")),
        ("PUT", "/catalogs/insurer/DKV", json!({"default_minutes": 30}), 422, Some("default_minutes")),
        ("PUT", rev, json!({}), 400, None),
        ("PUT", rev, json!([1, 2]), 422, None),
        ("PUT", "/catalogs/procedure/REV?scope=everyone", json!({"price_cents": 1}), 400, Some("scope")),
        ("DELETE", "/catalogs/procedure/REV?scope=everyone", Value::Null, 400, Some("scope")),
        ("DELETE", "/catalogs/procedure/bad%20code", Value::Null, 400, Some("code")),
        ("GET", "/catalogs/procedure?include_inactive=maybe", Value::Null, 400, Some("include_inactive")),
        ("GET", "/catalogs/procedure?colour=red", Value::Null, 400, Some("colour")),
    ];
    for (method, uri, body, status, field) in cases {
        for token in [&admin, &platform] {
            let body = (!body.is_null()).then(|| body.clone());
            let uri = if token == &platform && method == "PUT" && !uri.contains('?') {
                format!("{uri}?scope=global")
            } else {
                uri.to_string()
            };
            let response = app
                .client(&router, token)
                .send(method.parse().unwrap(), &uri, body.as_ref())
                .await;
            let problem = response.problem(status);
            if let Some(field) = field {
                assert_eq!(problem["field"], field, "{method} {uri}: {problem}");
            }
        }
    }

    let malformed = as_admin
        .send_bytes(
            Method::PUT,
            "/catalogs/procedure/REV",
            Some("application/json"),
            r#"{"price_cents": 1"#,
        )
        .await;
    assert_eq!(malformed.problem(400)["type"], "/problems/bad-request");
    let not_json = as_admin
        .send_bytes(
            Method::PUT,
            "/catalogs/procedure/REV",
            Some("text/plain"),
            "price=1",
        )
        .await;
    not_json.problem(415);

    assert_eq!(app.count("catalog_items", app.clinic_a.id).await, 0);
    assert_eq!(global_rows(&app).await, globals);
    assert_eq!(global_price(&app, "REV").await, Some(3500));
}

#[tokio::test]
async fn row_level_security_keeps_global_rows_for_platform_transactions() {
    let app = TestApp::spawn().await;
    let clinic = app.clinic_a.id;

    // A tenant transaction of the application role sees global rows but cannot change them.
    let mut tx = shared::db::begin_tenant(&app.state.db, clinic)
        .await
        .expect("tenant transaction");
    let changed = sqlx::query("UPDATE catalog_items SET price_cents = 1 WHERE clinic_id IS NULL")
        .execute(&mut *tx)
        .await
        .expect("update runs");
    assert_eq!(changed.rows_affected(), 0);
    let deleted = sqlx::query("DELETE FROM catalog_items WHERE clinic_id IS NULL")
        .execute(&mut *tx)
        .await
        .expect("delete runs");
    assert_eq!(deleted.rows_affected(), 0);
    let inserted = sqlx::query(
        "INSERT INTO catalog_items (kind, code, name, default_minutes) VALUES ('procedure', 'X', 'x', 30)",
    )
    .execute(&mut *tx)
    .await;
    assert!(inserted.is_err(), "a tenant cannot insert a global row");
    tx.rollback().await.ok();

    // A platform transaction can, and only global rows: another clinic's stay out of reach.
    let mut tx = shared::db::begin_platform(&app.state.db, clinic)
        .await
        .expect("platform transaction");
    let changed = sqlx::query(
        "UPDATE catalog_items SET price_cents = 1 WHERE clinic_id IS NULL AND code = 'REV'",
    )
    .execute(&mut *tx)
    .await
    .expect("update runs");
    assert_eq!(changed.rows_affected(), 1);
    let foreign = sqlx::query(
        "INSERT INTO catalog_items (clinic_id, kind, code, name) VALUES ($1, 'insurer', 'X', 'x')",
    )
    .bind(app.clinic_b.id)
    .execute(&mut *tx)
    .await;
    assert!(
        foreign.is_err(),
        "a platform transaction is still its clinic's tenant"
    );
    tx.rollback().await.ok();

    // The flag ends with its transaction: the pooled connection is a plain tenant again.
    let mut tx = shared::db::begin_tenant(&app.state.db, clinic)
        .await
        .expect("tenant transaction");
    let flag: bool = sqlx::query_scalar("SELECT app_platform_admin()")
        .fetch_one(&mut *tx)
        .await
        .expect("flag");
    assert!(!flag);
    tx.rollback().await.ok();
    assert_eq!(global_price(&app, "REV").await, Some(3500));
}
