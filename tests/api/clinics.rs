//! People, clinics and staff: `GET /me`, `GET /staff`, and choosing the clinic a request acts
//! in with `Pulso-Clinic`, for a person who works at one clinic and for one who works at two.

use http::Method;
use pulso_tests::{TestApp, TestClinic};
use redis::AsyncCommands;
use serde_json::{Value, json};
use shared::auth::Role;
use shared::ids::{ClinicId, UserId};
use shared::ratelimit::RouteClass;

/// A token that names no clinic: the request (or the person's only clinic) chooses.
fn person_token(app: &TestApp, user: UserId) -> String {
    app.token_for(None, user, 600, pulso_tests::JWT_SECRET)
}

fn names(page: &Value) -> Vec<&str> {
    page["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|item| item["full_name"].as_str().unwrap())
        .collect()
}

fn operations(membership: &Value) -> Vec<&str> {
    membership["operations"]
        .as_array()
        .unwrap()
        .iter()
        .map(|op| op.as_str().unwrap())
        .collect()
}

/// Clinic A's first dentist, who also works at clinic B (as a dentist there too).
async fn two_clinic_dentist(app: &TestApp) -> (TestClinic, TestClinic, UserId) {
    let (a, b) = (app.clinic_a, app.clinic_b);
    app.add_membership(b.id, a.dentist, Role::Dentist).await;
    (a, b, a.dentist)
}

#[tokio::test]
async fn me_shows_the_person_their_clinic_and_what_their_role_may_call() {
    let app = TestApp::spawn().await;
    let router = shared::clinics::router(app.state.clone());
    let a = app.clinic_a;
    // With the old `clinic_id` claim and without it alike.
    for token in [
        app.token(&a, Role::Receptionist),
        person_token(&app, a.receptionist),
    ] {
        let me = app.client(&router, &token).get("/me").await;
        assert_eq!(me.status, 200, "{}", me.body);
        assert_eq!(me.body["user"]["id"], a.receptionist.to_string());
        assert_eq!(me.body["user"]["full_name"], "Test reception");
        assert_eq!(me.body["user"]["initials"], "TR");
        assert_eq!(me.body["platform_operator"], false);
        let memberships = me.body["memberships"].as_array().unwrap();
        assert_eq!(memberships.len(), 1);
        let membership = &memberships[0];
        assert_eq!(membership["role"], "receptionist");
        assert_eq!(membership["active"], true);
        assert_eq!(membership["clinic"]["id"], a.id.to_string());
        assert_eq!(membership["clinic"]["timezone"], "Europe/Madrid");
        assert_eq!(membership["clinic"]["currency"], "EUR");
        assert_eq!(
            membership["clinic"]["organization"]["name"],
            "Grupo clinic-a"
        );
        let allowed = operations(membership);
        assert!(allowed.contains(&"createAppointment") && allowed.contains(&"listStaff"));
        assert!(
            !allowed.contains(&"getDashboard"),
            "admins and dentists only"
        );
    }
    let admin = app
        .client(&router, &app.token(&a, Role::Admin))
        .get("/me")
        .await;
    assert!(operations(&admin.body["memberships"][0]).contains(&"getDashboard"));
}

#[tokio::test]
async fn a_person_at_two_clinics_acts_in_the_one_the_header_names() {
    let app = TestApp::spawn().await;
    let (a, b, dentist) = two_clinic_dentist(&app).await;
    app.seed_patient(a.id, "SoloEnA").await;
    app.seed_patient(b.id, "SoloEnB").await;
    let patients = shared::patients::router(app.state.clone());
    let client = app.client(&patients, &person_token(&app, dentist));

    let unnamed = client.get("/patients").await;
    let problem = unnamed.problem(400);
    assert_eq!(problem["type"], "/problems/clinic-required");
    assert_eq!(problem["field"], "Pulso-Clinic");

    let in_a = client.in_clinic(a.id).get("/patients").await;
    let in_b = client.in_clinic(b.id).get("/patients").await;
    assert_eq!(
        in_a.body["items"][0]["first_name"], "SoloEnA",
        "{}",
        in_a.body
    );
    assert_eq!(
        in_b.body["items"][0]["first_name"], "SoloEnB",
        "{}",
        in_b.body
    );
    assert_eq!(in_a.body["items"].as_array().unwrap().len(), 1);

    // `/me` answers without the header, listing both.
    let clinics = shared::clinics::router(app.state.clone());
    let me = app
        .client(&clinics, &person_token(&app, dentist))
        .get("/me")
        .await;
    assert_eq!(me.status, 200, "{}", me.body);
    let mut ids: Vec<&str> = me.body["memberships"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["clinic"]["id"].as_str().unwrap())
        .collect();
    ids.sort();
    let mut expected = [a.id.to_string(), b.id.to_string()];
    expected.sort();
    assert_eq!(ids, expected);
}

#[tokio::test]
async fn a_clinic_one_does_not_belong_to_is_refused_before_its_quota_is_touched() {
    let app = TestApp::spawn().await;
    let (a, b) = (app.clinic_a, app.clinic_b);
    let patients = shared::patients::router(app.state.clone());
    let client = app.client(&patients, &person_token(&app, a.receptionist));
    let strangers = [b.id, ClinicId::new_random()];
    for clinic in strangers {
        let refused = client.in_clinic(clinic).get("/patients").await;
        assert_eq!(refused.problem(403)["type"], "/problems/not-a-member");
    }
    // Nothing was charged to clinic B's (or anyone's) bucket for those requests.
    let mut redis = app.redis().await;
    for clinic in strangers {
        let bucket = app
            .state
            .keys
            .rate_clinic_bucket(clinic, RouteClass::Reads.as_str());
        let exists: bool = redis.exists(&bucket).await.unwrap();
        assert!(!exists, "{bucket} was charged");
    }
    for bad in ["not-a-uuid", "", "  "] {
        let refused = client.in_clinic(bad).get("/patients").await;
        assert_eq!(refused.problem(400)["field"], "Pulso-Clinic", "{bad:?}");
    }
    // With the header naming their own clinic, the same person is let in.
    assert_eq!(client.in_clinic(a.id).get("/patients").await.status, 200);
}

#[tokio::test]
async fn deactivating_one_membership_closes_that_clinic_at_once_and_only_that_one() {
    let app = TestApp::spawn().await;
    let (a, b, dentist) = two_clinic_dentist(&app).await;
    let patients = shared::patients::router(app.state.clone());
    let client = app.client(&patients, &person_token(&app, dentist));
    assert_eq!(client.in_clinic(b.id).get("/patients").await.status, 200);

    let mut tx = app.owner_tx(b.id).await;
    sqlx::query("UPDATE memberships SET active = false WHERE clinic_id = $1 AND user_id = $2")
        .bind(b.id)
        .bind(dentist)
        .execute(&mut *tx)
        .await
        .unwrap();
    tx.commit().await.unwrap();
    app.state.access.forget_user(b.id, dentist).await.unwrap();

    let refused = client.in_clinic(b.id).get("/patients").await;
    assert_eq!(refused.problem(403)["type"], "/problems/user-deactivated");
    assert_eq!(client.in_clinic(a.id).get("/patients").await.status, 200);
    // One active clinic left: it is the default again.
    assert_eq!(client.get("/patients").await.status, 200);
    // `/me` still lists the closed one, with nothing to call there.
    let clinics = shared::clinics::router(app.state.clone());
    let me = app
        .client(&clinics, &person_token(&app, dentist))
        .get("/me")
        .await;
    let closed = me.body["memberships"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["clinic"]["id"] == b.id.to_string())
        .unwrap();
    assert_eq!(closed["active"], false);
    assert!(operations(closed).is_empty());
}

#[tokio::test]
async fn the_staff_list_is_the_clinics_own_with_filters_pages_and_calendar_details() {
    let app = TestApp::spawn().await;
    let (a, b) = (app.clinic_a, app.clinic_b);
    // B's first dentist also works at A: listed there; B's other staff are not.
    app.add_membership(a.id, b.dentist, Role::Dentist).await;
    let mut tx = app.owner_tx(a.id).await;
    sqlx::query("UPDATE users SET full_name = 'Álvaro Ruiz' WHERE id = $1")
        .bind(a.second_dentist)
        .execute(&mut *tx)
        .await
        .unwrap();
    tx.commit().await.unwrap();
    let router = shared::clinics::router(app.state.clone());
    let desk = app.client(&router, &app.token(&a, Role::Receptionist));

    let all = desk.get("/staff").await;
    assert_eq!(all.status, 200, "{}", all.body);
    assert_eq!(all.body["items"].as_array().unwrap().len(), 5);
    let dentists = desk.get("/staff?role=dentist&active=true").await;
    // By name as a reader sorts them (an accent does not send Álvaro to the end).
    assert_eq!(
        names(&dentists.body),
        ["Álvaro Ruiz", "Test dentist", "Test dentist"]
    );
    let ids: Vec<&str> = dentists.body["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["id"].as_str().unwrap())
        .collect();
    assert!(ids.contains(&b.dentist.to_string().as_str()));
    assert!(!ids.contains(&b.second_dentist.to_string().as_str()));
    let first = &dentists.body["items"][1];
    assert_eq!(first["initials"], "TD");
    assert!(first["color"].as_str().unwrap().starts_with('#'));
    assert_eq!(first["role"], "dentist");

    // Pages of one, by name then id, cover the list exactly once.
    let mut seen = Vec::new();
    let mut path = "/staff?limit=2".to_owned();
    loop {
        let page = desk.get(&path).await;
        assert_eq!(page.status, 200, "{}", page.body);
        seen.extend(names(&page.body).into_iter().map(str::to_owned));
        match page.body["next_cursor"].as_str() {
            Some(cursor) => path = format!("/staff?limit=2&cursor={cursor}"),
            None => break,
        }
    }
    assert_eq!(seen, names(&all.body));
    assert!(names(&desk.get("/staff?active=false").await.body).is_empty());

    for (query, field) in [
        ("role=owner", "role"),
        ("active=maybe", "active"),
        ("limit=0", "limit"),
        ("cursor=bm9wZQ", "cursor"),
        ("sort=name", "sort"),
    ] {
        let refused = desk.get(&format!("/staff?{query}")).await;
        let problem = refused.problem(400);
        assert!(
            problem["detail"].as_str().unwrap().contains(field) || problem["field"] == field,
            "{query}: {}",
            refused.body
        );
    }
}

#[tokio::test]
async fn admins_change_the_clinics_settings_and_the_trail_says_what_changed() {
    let app = TestApp::spawn().await;
    let a = app.clinic_a;
    let router = shared::clinics::router(app.state.clone());
    let admin = app.client(&router, &app.token(&a, Role::Admin));
    let desk = app.client(&router, &app.token(&a, Role::Receptionist));

    let read = desk.get("/clinic").await;
    assert_eq!(read.status, 200, "{}", read.body);
    assert_eq!(read.body["timezone"], "Europe/Madrid");
    assert_eq!(read.body["locale"], "es-ES");
    assert_eq!(read.body["country"], "ES");
    let etag = read.headers["etag"].to_str().unwrap().to_owned();
    let schedule = shared::schedule::router(app.state.clone());
    let search = app.client(&schedule, &app.token(&a, Role::Receptionist));
    let before = search.get("/availability").await;
    assert_eq!(before.body["timezone"], "Europe/Madrid", "{}", before.body);

    // A number typed without its country code is the clinic's country's, stored in E.164.
    let change = json!({"timezone": "Atlantic/Canary", "phone": "928 00 11 22",
                        "brand_color": "#1D4ED8", "default_appointment_minutes": 45});
    desk.patch("/clinic", &change).await.problem(403);
    let changed = admin
        .send_with_headers(
            Method::PATCH,
            "/clinic",
            Some(&change),
            &[("if-match", &etag)],
        )
        .await;
    assert_eq!(changed.status, 200, "{}", changed.body);
    assert_eq!(changed.body["timezone"], "Atlantic/Canary");
    assert_eq!(changed.body["phone"], "+34928001122");
    assert_eq!(changed.body["brand_color"], "#1d4ed8");
    // The old version's tag no longer matches: 412, nothing written.
    let stale = admin
        .send_with_headers(
            Method::PATCH,
            "/clinic",
            Some(&json!({"name": "Otra"})),
            &[("if-match", &etag)],
        )
        .await;
    assert_eq!(stale.problem(412)["type"], "/problems/precondition-failed");
    assert_eq!(desk.get("/clinic").await.body["name"], "Clínica clinic-a");

    // The dashboard counts days in the new zone from its next read.
    let dashboard = shared::dashboard::router(app.state.clone());
    let figures = app
        .client(&dashboard, &app.token(&a, Role::Admin))
        .get("/dashboard")
        .await;
    assert_eq!(
        figures.body["timezone"], "Atlantic/Canary",
        "{}",
        figures.body
    );
    // So does the free-slot search, with the new default length: the calendar it had cached
    // went with the clinic's days.
    let after = search.get("/availability").await;
    assert_eq!(after.body["timezone"], "Atlantic/Canary", "{}", after.body);
    assert_eq!(after.body["duration_minutes"], 45);

    let admin_router = shared::admin::router(app.state.clone());
    let trail = app
        .client(&admin_router, &app.token(&a, Role::Admin))
        .get("/admin/audit?action=clinic.update")
        .await;
    assert_eq!(trail.status, 200, "{}", trail.body);
    let events = trail.body["items"].as_array().unwrap();
    assert_eq!(
        events.len(),
        1,
        "the refused and stale changes left no trace"
    );
    let event = &events[0];
    assert_eq!(event["actor"]["id"], a.admin.to_string());
    assert_eq!(event["target_id"], a.id.to_string());
    assert_eq!(
        event["changes"]["timezone"],
        json!({"before": "Europe/Madrid", "after": "Atlantic/Canary"})
    );
    assert_eq!(event["changes"]["default_appointment_minutes"]["after"], 45);
    assert!(event["changes"].get("updated_at").is_none());

    // A clinic that moves its country reads numbers in the new one, in the same change.
    let moved = admin
        .patch(
            "/clinic",
            &json!({"country": "GB", "phone": "020 7946 0018", "locale": "en-GB"}),
        )
        .await;
    assert_eq!(moved.status, 200, "{}", moved.body);
    assert_eq!(moved.body["country"], "GB");
    assert_eq!(moved.body["phone"], "+442079460018");
    assert!(
        event["request_id"]
            .as_str()
            .is_some_and(|id| !id.is_empty())
    );
}

#[tokio::test]
async fn bad_settings_are_refused_with_a_problem_and_change_nothing() {
    let app = TestApp::spawn().await;
    let a = app.clinic_a;
    let router = shared::clinics::router(app.state.clone());
    let admin = app.client(&router, &app.token(&a, Role::Admin));
    let before = admin.get("/clinic").await.body;
    let cases = [
        (json!({"timezone": "Mars/Olympus_Mons"}), 422, "timezone"),
        (json!({"timezone": "CET-1CEST"}), 422, "timezone"),
        (json!({"timezone": null}), 422, "timezone"),
        (json!({"locale": "fr-FR"}), 422, "locale"),
        (json!({"currency": "eur"}), 422, "currency"),
        (
            json!({"default_appointment_minutes": 7}),
            422,
            "default_appointment_minutes",
        ),
        (
            json!({"default_appointment_minutes": 600}),
            422,
            "default_appointment_minutes",
        ),
        (json!({"brand_color": "blue"}), 422, "brand_color"),
        (json!({"phone": "call me"}), 422, "phone"),
        // Well formed, but no number of Spain (nor of the country it names).
        (json!({"phone": "12 34 56 78"}), 422, "phone"),
        (json!({"phone": "+34 1234 5678"}), 422, "phone"),
        (json!({"country": "es"}), 422, "country"),
        (json!({"country": "XX"}), 422, "country"),
        (json!({"country": null}), 422, "country"),
        // The number is read in the country the same change sets.
        (
            json!({"country": "GB", "phone": "928 00 11 22"}),
            422,
            "phone",
        ),
        (json!({"name": ""}), 422, "name"),
        (json!({"name": null}), 422, "name"),
        (json!({"address": "x".repeat(501)}), 422, "address"),
        (json!({"slug": "otra"}), 422, "slug"),
    ];
    for (body, status, field) in cases {
        let refused = admin.patch("/clinic", &body).await;
        let problem = refused.problem(status);
        assert_eq!(problem["field"], field, "{body}: {}", refused.body);
    }
    let empty = admin.patch("/clinic", &json!({})).await;
    assert_eq!(empty.problem(400)["type"], "/problems/bad-request");
    assert_eq!(admin.get("/clinic").await.body, before);
    assert_eq!(app.count("audit_events", a.id).await, 0);
}

#[tokio::test]
async fn admins_change_roles_and_deactivate_members_at_once_and_the_trail_keeps_it() {
    let app = TestApp::spawn().await;
    let (a, b) = (app.clinic_a, app.clinic_b);
    let router = shared::clinics::router(app.state.clone());
    let admin = app.client(&router, &app.token(&a, Role::Admin));
    let dentist_token = app.token(&a, Role::Dentist);
    let dashboard = shared::dashboard::router(app.state.clone());
    let dentist = app.client(&dashboard, &dentist_token);
    assert_eq!(dentist.get("/dashboard").await.status, 200);

    let member = format!("/staff/{}", a.dentist);
    let changed = admin
        .patch(
            &member,
            &json!({"role": "receptionist", "color": "#0EA5E9"}),
        )
        .await;
    assert_eq!(changed.status, 200, "{}", changed.body);
    assert_eq!(changed.body["role"], "receptionist");
    assert_eq!(changed.body["color"], "#0ea5e9");
    // The next request already has the new role: the dashboard is not the desk's.
    assert_eq!(
        dentist.get("/dashboard").await.problem(403)["type"],
        "/problems/forbidden"
    );

    assert_eq!(admin.delete(&member).await.status, 204);
    let refused = dentist.get("/dashboard").await;
    assert_eq!(refused.problem(403)["type"], "/problems/user-deactivated");
    assert_eq!(
        admin.delete(&member).await.status,
        204,
        "deactivating twice is harmless"
    );
    let restored = admin
        .patch(&member, &json!({"active": true, "role": "dentist"}))
        .await;
    assert_eq!(restored.body["active"], true);
    assert_eq!(dentist.get("/dashboard").await.status, 200);

    let admin_router = shared::admin::router(app.state.clone());
    let trail = app
        .client(&admin_router, &app.token(&a, Role::Admin))
        .get(&format!("/admin/audit?target_id={}", a.dentist))
        .await;
    let events = trail.body["items"].as_array().unwrap();
    let actions: Vec<&str> = events
        .iter()
        .map(|e| e["action"].as_str().unwrap())
        .collect();
    assert_eq!(
        actions,
        [
            "membership.update",
            "membership.deactivate",
            "membership.update"
        ]
    );
    assert_eq!(
        events[2]["changes"]["role"],
        json!({"before": "dentist", "after": "receptionist"})
    );
    assert_eq!(
        events[1]["changes"],
        json!({"active": {"before": true, "after": false}})
    );

    // Not the admin's to change: another clinic's member, nobody, or as a receptionist.
    admin
        .patch(&format!("/staff/{}", b.dentist), &json!({"active": false}))
        .await
        .problem(404);
    admin
        .delete(&format!("/staff/{}", UserId::new_random()))
        .await
        .problem(404);
    let desk = app.client(&router, &app.token(&a, Role::Receptionist));
    desk.delete(&member).await.problem(403);
    assert_eq!(
        app.client(&dashboard, &app.token(&b, Role::Dentist))
            .get("/dashboard")
            .await
            .status,
        200,
        "clinic B's dentist untouched"
    );
}

#[tokio::test]
async fn a_clinic_keeps_an_admin_and_bad_member_changes_are_refused() {
    let app = TestApp::spawn().await;
    let a = app.clinic_a;
    let router = shared::clinics::router(app.state.clone());
    let admin = app.client(&router, &app.token(&a, Role::Admin));
    let me = format!("/staff/{}", a.admin);
    for (body, action) in [
        (json!({"active": false}), "deactivate"),
        (json!({"role": "dentist"}), "demote"),
    ] {
        let refused = admin.patch(&me, &body).await;
        assert_eq!(
            refused.problem(409)["type"],
            "/problems/last-admin",
            "{action}"
        );
    }
    admin.delete(&me).await.problem(409);

    let member = format!("/staff/{}", a.receptionist);
    for (body, field) in [
        (json!({"role": "owner"}), "role"),
        (json!({"role": null}), "role"),
        (json!({"active": null}), "active"),
        (json!({"active": "no"}), "active"),
        (json!({"color": "red"}), "color"),
        (json!({"email": "x@y.z"}), "email"),
    ] {
        let refused = admin.patch(&member, &body).await;
        let problem = refused.problem(422);
        assert!(
            problem["field"] == field || problem["detail"].as_str().unwrap().contains(field),
            "{body}: {}",
            refused.body
        );
    }
    admin.patch(&member, &json!({})).await.problem(400);
    admin
        .patch("/staff/not-an-id", &json!({"active": false}))
        .await
        .problem(400);
    assert_eq!(app.count("audit_events", a.id).await, 0);

    // With a second admin, the first may step down.
    let promoted = admin.patch(&member, &json!({"role": "admin"})).await;
    assert_eq!(promoted.status, 200, "{}", promoted.body);
    assert_eq!(
        admin.patch(&me, &json!({"role": "dentist"})).await.status,
        200
    );
}

#[tokio::test]
async fn a_deactivation_and_a_reactivation_take_effect_at_once_on_another_instance() {
    let app = TestApp::spawn().await;
    let (_, b, dentist) = two_clinic_dentist(&app).await;
    let router = shared::clinics::router(app.state.clone());
    let admin = app.client(&router, &app.token(&b, Role::Admin));
    let member = format!("/staff/{dentist}");
    assert_eq!(admin.delete(&member).await.status, 204);

    // Another Lambda environment: its own gate and membership directory, the same Redis. It
    // learns the person's memberships while the one at B is inactive.
    let elsewhere = shared::AppState::build((*app.state.config).clone()).expect("second instance");
    let patients = shared::patients::router(elsewhere);
    let client = app
        .client(&patients, &person_token(&app, dentist))
        .in_clinic(b.id);
    let refused = client.get("/patients").await;
    assert_eq!(refused.problem(403)["type"], "/problems/user-deactivated");

    let restored = admin.patch(&member, &json!({"active": true})).await;
    assert_eq!(restored.status, 200, "{}", restored.body);
    assert_eq!(
        client.get("/patients").await.status,
        200,
        "no stale refusal"
    );
    assert_eq!(admin.delete(&member).await.status, 204);
    client.get("/patients").await.problem(403);
}

#[tokio::test]
async fn an_operator_archives_a_clinic_and_restores_it_without_sql() {
    let app = TestApp::spawn().await;
    let (a, b) = (app.clinic_a, app.clinic_b);
    let router = shared::clinics::router(app.state.clone());
    let operator = app.client(&router, &app.platform_admin_token(&a));
    let patients = shared::patients::router(app.state.clone());
    let b_desk = app.client(&patients, &app.token(&b, Role::Receptionist));
    let a_desk = app.client(&patients, &app.token(&a, Role::Receptionist));
    assert_eq!(b_desk.get("/patients").await.status, 200);

    let all = operator.get("/platform/clinics").await;
    assert_eq!(all.status, 200, "{}", all.body);
    let slugs: Vec<&str> = all.body["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["slug"].as_str().unwrap())
        .collect();
    assert_eq!(slugs, ["clinic-a", "clinic-b"]);

    let archive = format!("/platform/clinics/{}/archive", b.id);
    let archived = operator.post_empty(&archive).await;
    assert_eq!(archived.status, 200, "{}", archived.body);
    assert_eq!(archived.body["archived"], true);
    let refused = b_desk.get("/patients").await;
    assert_eq!(refused.problem(403)["type"], "/problems/clinic-archived");
    assert_eq!(
        a_desk.get("/patients").await.status,
        200,
        "clinic A untouched"
    );
    assert_eq!(
        operator.post_empty(&archive).await.status,
        200,
        "twice is harmless"
    );
    let listed = operator.get("/platform/clinics?archived=true").await;
    assert_eq!(listed.body["items"][0]["id"], b.id.to_string());

    let restored = operator
        .post_empty(&format!("/platform/clinics/{}/restore", b.id))
        .await;
    assert_eq!(restored.body["archived"], false);
    assert_eq!(b_desk.get("/patients").await.status, 200);

    // The operator's changes are in clinic B's own trail, once each.
    let admin = shared::admin::router(app.state.clone());
    let trail = app
        .client(&admin, &app.token(&b, Role::Admin))
        .get("/admin/audit")
        .await;
    let actions: Vec<&str> = trail.body["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["action"].as_str().unwrap())
        .collect();
    assert_eq!(actions, ["clinic.restore", "clinic.archive"]);
    assert_eq!(trail.body["items"][1]["actor"]["id"], a.admin.to_string());

    // Only Pulso's operators: an admin without the power, or a receptionist, gets 403.
    for token in [
        app.token(&a, Role::Admin),
        app.token(&a, Role::Receptionist),
    ] {
        let client = app.client(&router, &token);
        client.post_empty(&archive).await.problem(403);
        client.get("/platform/clinics").await.problem(403);
    }
    operator
        .post_empty(&format!(
            "/platform/clinics/{}/archive",
            ClinicId::new_random()
        ))
        .await
        .problem(404);
    operator
        .post_empty("/platform/clinics/nope/archive")
        .await
        .problem(400);
    // Not the clinic the operator acts in: the platform power needs it to come back.
    let own = operator
        .post_empty(&format!("/platform/clinics/{}/archive", a.id))
        .await;
    assert_eq!(own.problem(409)["type"], "/problems/acting-clinic");
    assert_eq!(a_desk.get("/patients").await.status, 200);
    operator
        .get("/platform/clinics?archived=maybe")
        .await
        .problem(400);
}

#[tokio::test]
async fn an_operator_onboards_a_chain_and_a_clinic_whose_admin_then_works_there() {
    let app = TestApp::spawn().await;
    let a = app.clinic_a;
    let router = shared::clinics::router(app.state.clone());
    let operator = app.client(&router, &app.platform_admin_token(&a));

    let chain = json!({"slug": "grupo-norte", "name": "Grupo Dental Norte"});
    let created = operator.post("/platform/organizations", &chain).await;
    assert_eq!(created.status, 201, "{}", created.body);
    let organization = created.body["id"].as_str().unwrap().to_owned();
    let again = operator.post("/platform/organizations", &chain).await;
    assert_eq!(again.status, 200);
    assert_eq!(again.body["id"], created.body["id"]);
    let taken = operator
        .post(
            "/platform/organizations",
            &json!({"slug": "grupo-norte", "name": "Otro"}),
        )
        .await;
    assert_eq!(taken.problem(409)["type"], "/problems/slug-taken");

    let clinic = json!({
        "organization_id": organization, "slug": "norte-bilbao", "name": "Clínica Norte",
        "timezone": "Europe/Madrid", "phone": "944 00 00 00",
        "admin": {"email": "Marta.Diaz@norte.example", "full_name": "Marta Díaz"}
    });
    let onboarded = operator.post("/platform/clinics", &clinic).await;
    assert_eq!(onboarded.status, 201, "{}", onboarded.body);
    // The country of its locale (es-ES by default), and its number read there.
    assert_eq!(onboarded.body["clinic"]["country"], "ES");
    assert_eq!(onboarded.body["clinic"]["phone"], "+34944000000");
    assert_eq!(
        onboarded.body["clinic"]["organization"]["name"],
        "Grupo Dental Norte"
    );
    assert_eq!(onboarded.body["admin"]["email"], "marta.diaz@norte.example");
    assert_eq!(onboarded.body["admin"]["role"], "admin");
    let retried = operator.post("/platform/clinics", &clinic).await;
    assert_eq!(retried.status, 200, "{}", retried.body);
    assert_eq!(retried.body["clinic"]["id"], onboarded.body["clinic"]["id"]);

    // The new admin works there at once (a token names the person; the clinic is their only one).
    let admin: UserId = onboarded.body["admin"]["id"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    let new_admin = app.client(&router, &person_token(&app, admin));
    let settings = new_admin.get("/clinic").await;
    assert_eq!(settings.body["name"], "Clínica Norte", "{}", settings.body);
    let staff = new_admin.get("/staff").await;
    assert_eq!(names(&staff.body), ["Marta Díaz"]);
    let admin_router = shared::admin::router(app.state.clone());
    let trail = app
        .client(&admin_router, &person_token(&app, admin))
        .get("/admin/audit")
        .await;
    assert_eq!(trail.body["items"][0]["action"], "clinic.create");
    assert_eq!(
        trail.body["items"][0]["changes"]["admin"]["after"],
        "marta.diaz@norte.example"
    );

    // An existing person becomes the admin of another new clinic: one person, two clinics.
    let second = json!({
        "organization_id": organization, "slug": "norte-santander", "name": "Clínica Norte 2",
        "admin": {"email": "marta.diaz@norte.example", "full_name": "Marta Díaz"}
    });
    let onboarded = operator.post("/platform/clinics", &second).await;
    assert_eq!(onboarded.body["admin"]["id"], admin.to_string());
    assert_eq!(
        new_admin.get("/clinic").await.problem(400)["type"],
        "/problems/clinic-required"
    );
}

#[tokio::test]
async fn onboarding_refuses_bad_requests_and_non_operators_and_writes_nothing() {
    let app = TestApp::spawn().await;
    let a = app.clinic_a;
    let router = shared::clinics::router(app.state.clone());
    let operator = app.client(&router, &app.platform_admin_token(&a));
    let org = operator
        .post(
            "/platform/organizations",
            &json!({"slug": "grupo-sur", "name": "Sur"}),
        )
        .await;
    let organization = org.body["id"].as_str().unwrap().to_owned();
    let base = json!({
        "organization_id": organization, "slug": "sur-malaga", "name": "Clínica Sur",
        "admin": {"email": "ana@sur.example", "full_name": "Ana Sur"}
    });
    let with = |field: &str, value: Value| {
        let mut body = base.clone();
        body[field] = value;
        body
    };
    let cases = [
        (with("slug", json!("Sur Málaga")), "slug"),
        (with("slug", json!("clinic-a")), "slug"),
        (with("timezone", json!("Mars/Olympus_Mons")), "timezone"),
        (with("locale", json!("xx-XX")), "locale"),
        (with("country", json!("Spain")), "country"),
        (with("phone", json!("0000 0000")), "phone"),
        (
            with("organization_id", json!(UserId::new_random())),
            "organization_id",
        ),
        (
            with("admin", json!({"email": "not-an-email", "full_name": "X"})),
            "admin.email",
        ),
        (
            with("admin", json!({"email": "x@y.example", "full_name": ""})),
            "admin.full_name",
        ),
        (with("owner", json!("me")), "owner"),
    ];
    for (body, field) in cases {
        let refused = operator.post("/platform/clinics", &body).await;
        assert!(
            matches!(refused.status.as_u16(), 409 | 422),
            "{field}: {}",
            refused.body
        );
        let problem = &refused.body;
        assert!(
            problem["field"] == field || problem["detail"].as_str().unwrap().contains(field),
            "{field}: {problem}"
        );
    }
    for token in [
        app.token(&a, Role::Admin),
        app.token(&a, Role::Receptionist),
    ] {
        let client = app.client(&router, &token);
        client.post("/platform/clinics", &base).await.problem(403);
        client
            .post(
                "/platform/organizations",
                &json!({"slug": "x-y", "name": "X"}),
            )
            .await
            .problem(403);
    }
    let listed = operator.get("/platform/clinics").await;
    assert_eq!(
        listed.body["items"].as_array().unwrap().len(),
        2,
        "only clinic-a and clinic-b"
    );
}
