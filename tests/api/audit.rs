//! The audit trail: patient records' changes recorded in their own transactions (clinical text
//! only as "changed"), read by each clinic's admins and by Pulso's operators across clinics.

use pulso_tests::TestApp;
use serde_json::{Value, json};
use shared::auth::Role;

fn actions(page: &Value) -> Vec<&str> {
    page["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|event| event["action"].as_str().unwrap())
        .collect()
}

#[tokio::test]
async fn a_patients_record_leaves_a_trail_without_its_clinical_text() {
    let app = TestApp::spawn().await;
    let a = app.clinic_a;
    let patients = shared::patients::router(app.state.clone());
    let desk = app.client(&patients, &app.token(&a, Role::Receptionist));
    let created = desk
        .post(
            "/patients",
            &json!({"first_name": "Ana", "last_name": "Ruiz",
                                    "notes": "alergia a la penicilina"}),
        )
        .await;
    assert_eq!(created.status, 201, "{}", created.body);
    let id = created.body["id"].as_str().unwrap().to_owned();
    let path = format!("/patients/{id}");
    let changed = desk
        .patch(
            &path,
            &json!({"last_name": "Ruiz Gómez", "notes": "sin alergias conocidas"}),
        )
        .await;
    assert_eq!(changed.status, 200, "{}", changed.body);
    assert_eq!(
        desk.patch(&path, &json!({"last_name": "Ruiz Gómez"}))
            .await
            .status,
        200
    );
    assert_eq!(desk.delete(&path).await.status, 204);
    assert_eq!(desk.delete(&path).await.status, 204);

    let admin = shared::admin::router(app.state.clone());
    let trail = app
        .client(&admin, &app.token(&a, Role::Admin))
        .get(&format!("/admin/audit?target_id={id}"))
        .await;
    assert_eq!(trail.status, 200, "{}", trail.body);
    // Newest first; the change that changed nothing and the second archive left nothing.
    assert_eq!(
        actions(&trail.body),
        ["patient.archive", "patient.update", "patient.create"]
    );
    let [archive, update, create] = [0, 1, 2].map(|i| &trail.body["items"][i]);
    assert_eq!(create["changes"]["first_name"], json!({"after": "Ana"}));
    assert_eq!(create["changes"]["notes"], json!({"changed": true}));
    assert_eq!(
        update["changes"],
        json!({"last_name": {"before": "Ruiz", "after": "Ruiz Gómez"},
               "notes": {"changed": true}})
    );
    assert!(archive["changes"]["archived_at"]["after"].is_string());
    assert_eq!(update["actor"]["id"], a.receptionist.to_string());
    assert_eq!(update["actor"]["full_name"], "Test reception");
    assert!(
        !trail.body.to_string().contains("alergia"),
        "no clinical text"
    );
}

#[tokio::test]
async fn each_clinic_reads_its_own_trail_and_operators_read_all() {
    let app = TestApp::spawn().await;
    let (a, b) = (app.clinic_a, app.clinic_b);
    let patients = shared::patients::router(app.state.clone());
    for clinic in [&a, &b] {
        let desk = app.client(&patients, &app.token(clinic, Role::Receptionist));
        for name in ["Uno", "Dos"] {
            let body = json!({"first_name": name, "last_name": "Prueba"});
            assert_eq!(desk.post("/patients", &body).await.status, 201);
        }
    }
    let admin = shared::admin::router(app.state.clone());
    let a_admin = app.client(&admin, &app.token(&a, Role::Admin));
    let own = a_admin.get("/admin/audit").await;
    assert_eq!(
        own.body["items"].as_array().unwrap().len(),
        2,
        "{}",
        own.body
    );
    assert!(
        own.body["items"]
            .as_array()
            .unwrap()
            .iter()
            .all(|event| event["clinic_id"] == a.id.to_string())
    );
    // Another clinic's events are not there, whatever the filter.
    let b_event = app
        .client(&admin, &app.token(&b, Role::Admin))
        .get("/admin/audit?limit=1")
        .await;
    let b_target = b_event.body["items"][0]["target_id"]
        .as_str()
        .unwrap()
        .to_owned();
    let foreign = a_admin
        .get(&format!("/admin/audit?target_id={b_target}"))
        .await;
    assert_eq!(foreign.body["items"], json!([]));

    // Pages of one cover the clinic's events once each.
    let first = a_admin.get("/admin/audit?limit=1").await;
    let cursor = first.body["next_cursor"].as_str().unwrap();
    let second = a_admin
        .get(&format!("/admin/audit?limit=1&cursor={cursor}"))
        .await;
    assert_ne!(first.body["items"][0]["id"], second.body["items"][0]["id"]);
    assert!(second.body["next_cursor"].is_null());

    let all = app
        .client(&admin, &app.platform_admin_token(&a))
        .get("/admin/audit?scope=platform")
        .await;
    assert_eq!(
        all.body["items"].as_array().unwrap().len(),
        4,
        "{}",
        all.body
    );
    let refused = a_admin.get("/admin/audit?scope=platform").await;
    assert_eq!(refused.problem(403)["type"], "/problems/forbidden");
    let desk = app.client(&admin, &app.token(&a, Role::Receptionist));
    desk.get("/admin/audit").await.problem(403);

    for query in [
        "action=patient.erase",
        "actor_id=someone",
        "since=yesterday",
        "limit=500",
        "cursor=-1",
        "scope=everywhere",
        "colour=red",
    ] {
        let refused = a_admin.get(&format!("/admin/audit?{query}")).await;
        refused.problem(400);
    }
    let long = "x".repeat(201);
    a_admin
        .get(&format!("/admin/audit?target_id={long}"))
        .await
        .problem(400);
}

#[tokio::test]
async fn global_catalog_changes_are_in_the_platform_trail() {
    let app = TestApp::spawn().await;
    let a = app.clinic_a;
    let catalogs = shared::catalogs::router(app.state.clone());
    let operator = app.client(&catalogs, &app.platform_admin_token(&a));
    let item = json!({"name": "Ferulización", "default_minutes": 45, "price_cents": 9000});
    let path = "/catalogs/procedure/FERUL?scope=global";
    let saved = operator.put(path, &item).await;
    assert_eq!(saved.status, 201, "{}", saved.body);
    assert_eq!(operator.delete(path).await.status, 204);
    assert_eq!(
        operator.delete(path).await.status,
        204,
        "retiring twice is a no-op"
    );

    let admin = shared::admin::router(app.state.clone());
    let trail = app
        .client(&admin, &app.platform_admin_token(&a))
        .get("/admin/audit?scope=platform&target_id=procedure/FERUL")
        .await;
    assert_eq!(trail.status, 200, "{}", trail.body);
    assert_eq!(
        actions(&trail.body),
        ["catalog.global_retire", "catalog.global_save"]
    );
    let [retire, save] = [0, 1].map(|i| &trail.body["items"][i]);
    assert!(save["clinic_id"].is_null());
    assert_eq!(save["changes"]["price_cents"], json!({"after": 9000}));
    assert_eq!(
        retire["changes"],
        json!({"active": {"before": true, "after": false}})
    );
    // Not in any clinic's own trail.
    let own = app
        .client(&admin, &app.token(&a, Role::Admin))
        .get("/admin/audit")
        .await;
    assert_eq!(own.body["items"], json!([]));
}
