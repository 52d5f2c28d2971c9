//! Real-time notifications against real PostgreSQL and Redis (issue 6): the connection registry,
//! the inbox and its REST routes, `ws-default`'s frames, announcements, document-ready notices
//! and the scheduler's reminders. Pushes go to the in-memory recorder here; the end-to-end tests
//! (`realtime_e2e.rs`) push through the real SDK and the local gateway.

use aws_lambda_events::apigw::{ApiGatewayProxyResponse, ApiGatewayWebsocketProxyRequest};
use aws_lambda_events::encodings::Body;
use chrono::{DateTime, TimeDelta, Utc};
use http::Method;
use pulso_tests::{TestApp, TestClinic, TestOptions};
use redis::AsyncCommands;
use serde_json::{Value, json};
use shared::AppState;
use shared::auth::{Principal, Role};
use shared::ids::{AppointmentId, ClinicId, JobId, UserId, XrayId};
use shared::realtime::{
    self, Audience, ConnectionRegistry, DocumentReady, LiveConnection, NewNotification, Notice,
    Notifier, Recorder,
};
use shared::scheduler::{Scheduler, TaskOutcome, Tick};
use std::sync::Arc;
use std::time::Duration;
use uuid::Uuid;

// ---------------------------------------------------------------------------------- helpers

fn now_ms() -> i64 {
    Utc::now().timestamp_millis()
}

/// An event as API Gateway (and the local gateway) hands it to the WebSocket functions.
fn event(
    route: &str,
    connection_id: &str,
    query: Option<Value>,
    body: Option<&str>,
) -> ApiGatewayWebsocketProxyRequest {
    let event_type = match route {
        "$connect" => "CONNECT",
        "$disconnect" => "DISCONNECT",
        _ => "MESSAGE",
    };
    serde_json::from_value(json!({
        "requestContext": {
            "routeKey": route,
            "eventType": event_type,
            "messageDirection": "IN",
            "connectionId": connection_id,
            "connectedAt": now_ms(),
            "requestTimeEpoch": now_ms(),
            "requestId": "test-request",
            "extendedRequestId": "test-request",
            "domainName": "127.0.0.1:4401",
            "stage": "dev",
            "apiId": "local",
            "identity": {"sourceIp": "127.0.0.1"},
        },
        "queryStringParameters": query,
        "body": body,
        "isBase64Encoded": false,
    }))
    .expect("a WebSocket event")
}

fn with_recorder(app: &TestApp) -> (AppState, Arc<Recorder>) {
    let (notifier, recorder) = Notifier::recorder();
    let mut state = app.state.clone();
    state.notifier = notifier;
    (state, recorder)
}

async fn connect(state: &AppState, id: &str, token: &str) -> ApiGatewayProxyResponse {
    realtime::ws::connect(
        state,
        event("$connect", id, Some(json!({"token": token})), None),
    )
    .await
}

async fn connected(state: &AppState, id: &str, token: &str) {
    let answer = connect(state, id, token).await;
    assert_eq!(answer.status_code, 200, "{:?}", answer.body);
}

fn body_json(answer: &ApiGatewayProxyResponse) -> Value {
    match &answer.body {
        Some(Body::Text(text)) => serde_json::from_str(text).unwrap_or(Value::Null),
        _ => Value::Null,
    }
}

/// Sends one frame to `ws-default` as connection `id`; the frame it answers.
async fn frame(state: &AppState, id: &str, body: &str) -> Value {
    let answer = realtime::ws::default(state, event("$default", id, None, Some(body))).await;
    assert_eq!(answer.status_code, 200);
    body_json(&answer)
}

fn principal(clinic: &TestClinic, role: Role) -> Principal {
    Principal {
        user_id: clinic.user(role),
        clinic_id: clinic.id,
        role,
        platform_admin: false,
    }
}

async fn note(state: &AppState, audience: Audience, title: &str) -> i64 {
    realtime::notify(
        state,
        NewNotification::new(audience, title, Notice::announcement(title)),
    )
    .await
    .expect("notify")
    .notification
    .id
}

async fn note_everyone(state: &AppState, app: &TestApp, title: &str) -> i64 {
    let author = Principal {
        platform_admin: true,
        ..principal(&app.clinic_a, Role::Admin)
    };
    realtime::notify_everyone(
        state,
        &author,
        NewNotification::new(Audience::Everyone, title, Notice::announcement(title)),
    )
    .await
    .expect("notify everyone")
    .notification
    .id
}

fn titles(page: &Value) -> Vec<String> {
    page["items"]
        .as_array()
        .map(|items| {
            items
                .iter()
                .filter_map(|item| item["title"].as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default()
}

fn pushed_titles(recorder: &Recorder, id: &str) -> Vec<String> {
    recorder
        .sent_to(id)
        .iter()
        .filter_map(|frame| frame["notification"]["title"].as_str().map(str::to_owned))
        .collect()
}

async fn pttl(app: &TestApp, key: &str) -> i64 {
    let mut redis = app.redis().await;
    redis::cmd("PTTL")
        .arg(key)
        .query_async(&mut redis)
        .await
        .expect("PTTL")
}

async fn members(app: &TestApp, key: &str) -> Vec<String> {
    let mut redis = app.redis().await;
    let mut members: Vec<String> = redis.smembers(key).await.expect("SMEMBERS");
    members.sort();
    members
}

// ---------------------------------------------------------------------------------- registry

#[tokio::test]
async fn connect_registers_in_every_index_for_the_two_hour_connection_limit() {
    let app = TestApp::spawn().await;
    let clinic = app.clinic_a;
    // A day-long token: the connection's own two hours are the shorter limit.
    let token = app.token_for(
        Some(clinic.id),
        clinic.receptionist,
        24 * 3600,
        pulso_tests::JWT_SECRET,
    );
    let answer = connect(&app.state, "L0SM9cOFvHcCIhw=", &token).await;
    assert_eq!(answer.status_code, 200);
    assert!(answer.body.is_none());

    let keys = app.state.keys.ws_connection(
        clinic.id,
        Role::Receptionist,
        clinic.receptionist,
        "L0SM9cOFvHcCIhw=",
    );
    let mut redis = app.redis().await;
    let hash: std::collections::HashMap<String, String> =
        redis.hgetall(&keys.connection).await.expect("HGETALL");
    assert_eq!(hash["user"], clinic.receptionist.to_string());
    assert_eq!(hash["role"], "receptionist");
    assert_eq!(hash["clinic"], clinic.id.to_string());
    let connected_at: i64 = hash["connected_at"].parse().expect("connected_at");
    assert!((now_ms() - connected_at).abs() < 60_000);
    for set in [&keys.clinic, &keys.role, &keys.user] {
        assert_eq!(
            members(&app, set).await,
            vec!["L0SM9cOFvHcCIhw=".to_string()]
        );
        let ttl = pttl(&app, set).await;
        assert!((7_100_000..=7_200_000).contains(&ttl), "{set}: {ttl}");
    }
    // The hash (and the locator) end when API Gateway ends the connection: connectedAt + 2 h.
    for key in [&keys.connection, &keys.locator] {
        let ttl = pttl(&app, key).await;
        assert!((7_100_000..=7_200_000).contains(&ttl), "{key}: {ttl}");
    }
    let located: Option<String> = redis.get(&keys.locator).await.expect("GET");
    assert_eq!(located, Some(clinic.id.to_string()));
    let live: Option<f64> = redis
        .zscore(app.state.keys.ws_live_clinics(), clinic.id.to_string())
        .await
        .expect("ZSCORE");
    assert!(live.is_some_and(|ends| ends > now_ms() as f64));
    // `since` is kept for the connection's replay.
    let answer = realtime::ws::connect(
        &app.state,
        event(
            "$connect",
            "c-since",
            Some(json!({"token": token, "since": "41"})),
            None,
        ),
    )
    .await;
    assert_eq!(answer.status_code, 200);
    let found = ConnectionRegistry::new(&app.state)
        .lookup("c-since")
        .await
        .expect("lookup");
    assert_eq!(found.and_then(|c| c.since), Some(41));
}

#[tokio::test]
async fn a_user_holds_at_most_the_allowed_live_connections() {
    let app = TestApp::spawn_with(TestOptions {
        env: vec![("WS_MAX_CONNECTIONS_PER_USER", "2".into())],
        ..TestOptions::default()
    })
    .await;
    let clinic = app.clinic_a;
    let token = app.token(&clinic, Role::Dentist);
    connected(&app.state, "tab-1", &token).await;
    connected(&app.state, "tab-2", &token).await;
    let refused = connect(&app.state, "tab-3", &token).await;
    assert_eq!(refused.status_code, 429, "{:?}", refused.body);
    assert_eq!(body_json(&refused)["type"], "/problems/quota-exceeded");
    assert_eq!(
        ConnectionRegistry::new(&app.state)
            .lookup("tab-3")
            .await
            .expect("lookup"),
        None,
        "nothing of the refused connection was written"
    );
    // The same connection registering again is not one more; a colleague has their own.
    connected(&app.state, "tab-1", &token).await;
    connected(
        &app.state,
        "colleague",
        &app.token(&clinic, Role::Receptionist),
    )
    .await;
    // A registration that ended (its hash expired, its $disconnect never came) stops counting.
    let ended = app.state.keys.ws_connection_hash(clinic.id, "tab-2");
    let _: i64 = app.redis().await.del(&ended).await.expect("DEL");
    connected(&app.state, "tab-3", &token).await;
}

#[tokio::test]
async fn disconnect_removes_the_connection_from_every_index() {
    let app = TestApp::spawn().await;
    let clinic = app.clinic_a;
    connected(&app.state, "gone-soon", &app.token(&clinic, Role::Dentist)).await;
    connected(&app.state, "stays", &app.token(&clinic, Role::Dentist)).await;
    let keys = app
        .state
        .keys
        .ws_connection(clinic.id, Role::Dentist, clinic.dentist, "gone-soon");

    let answer =
        realtime::ws::disconnect(&app.state, event("$disconnect", "gone-soon", None, None)).await;
    assert_eq!(answer.status_code, 200);
    let mut redis = app.redis().await;
    let exists: i64 = redis
        .exists(&[&keys.connection, &keys.locator])
        .await
        .expect("EXISTS");
    assert_eq!(exists, 0);
    for set in [&keys.clinic, &keys.role, &keys.user] {
        assert_eq!(members(&app, set).await, vec!["stays".to_string()], "{set}");
    }
    // A second $disconnect (or one for an id never seen) is harmless.
    let again =
        realtime::ws::disconnect(&app.state, event("$disconnect", "gone-soon", None, None)).await;
    assert_eq!(again.status_code, 200);
    assert!(
        !ConnectionRegistry::new(&app.state)
            .unregister("never-seen")
            .await
            .expect("unregister")
    );
}

#[tokio::test]
async fn a_person_at_two_clinics_connects_to_the_one_clinic_names() {
    let app = TestApp::spawn().await;
    let (a, b) = (app.clinic_a, app.clinic_b);
    app.add_membership(b.id, a.dentist, Role::Dentist).await;
    let token = app.token_for(None, a.dentist, 600, pulso_tests::JWT_SECRET);
    let connect_to = |clinic: Value| {
        let query = json!({"token": token, "clinic": clinic});
        realtime::ws::connect(
            &app.state,
            event("$connect", "two-clinics", Some(query), None),
        )
    };
    let answer = connect_to(json!(b.id.to_string())).await;
    assert_eq!(answer.status_code, 200, "{:?}", answer.body);
    let registered = ConnectionRegistry::new(&app.state)
        .lookup("two-clinics")
        .await
        .unwrap()
        .expect("registered");
    assert_eq!((registered.clinic, registered.role), (b.id, Role::Dentist));

    let unnamed = realtime::ws::connect(
        &app.state,
        event("$connect", "unnamed", Some(json!({"token": token})), None),
    )
    .await;
    assert_eq!(unnamed.status_code, 400);
    assert_eq!(body_json(&unnamed)["type"], "/problems/clinic-required");
    let cases = [
        (json!("not-a-clinic"), 400, "/problems/bad-request"),
        (
            json!(ClinicId::new_random().to_string()),
            403,
            "/problems/not-a-member",
        ),
    ];
    for (clinic, status, problem) in cases {
        let refused = connect_to(clinic).await;
        assert_eq!(refused.status_code, status);
        assert_eq!(body_json(&refused)["type"], problem);
    }
}

#[tokio::test]
async fn a_deactivated_or_re_roled_member_loses_their_open_connections_at_once() {
    let app = TestApp::spawn().await;
    let (state, recorder) = with_recorder(&app);
    let a = app.clinic_a;
    connected(&state, "dentist-ws", &app.token(&a, Role::Dentist)).await;
    connected(
        &state,
        "second-ws",
        &app.token_for(Some(a.id), a.second_dentist, 600, pulso_tests::JWT_SECRET),
    )
    .await;
    connected(&state, "desk-ws", &app.token(&a, Role::Receptionist)).await;
    let router = shared::clinics::router(state.clone());
    let admin = app.client(&router, &app.token(&a, Role::Admin));
    let registry = ConnectionRegistry::new(&state);

    assert_eq!(
        admin.delete(&format!("/staff/{}", a.dentist)).await.status,
        204
    );
    let changed = admin
        .patch(
            &format!("/staff/{}", a.second_dentist),
            &json!({"role": "receptionist"}),
        )
        .await;
    assert_eq!(changed.status, 200, "{}", changed.body);
    for gone in ["dentist-ws", "second-ws"] {
        let last = recorder.sent_to(gone);
        assert_eq!(last.last().unwrap()["error"], "access_revoked", "{gone}");
        assert!(recorder.deleted().contains(&gone.to_owned()));
        assert!(registry.lookup(gone).await.unwrap().is_none());
    }
    // A colour is no change of access: nobody else's socket is touched.
    let recolored = admin
        .patch(
            &format!("/staff/{}", a.receptionist),
            &json!({"color": "#112233"}),
        )
        .await;
    assert_eq!(recolored.status, 200);
    assert!(!recorder.deleted().contains(&"desk-ws".to_owned()));
    assert!(registry.lookup("desk-ws").await.unwrap().is_some());
}

#[tokio::test]
async fn an_archived_clinics_connections_are_closed_and_no_other_clinics() {
    let app = TestApp::spawn().await;
    let (state, recorder) = with_recorder(&app);
    let (a, b) = (app.clinic_a, app.clinic_b);
    connected(&state, "b-desk", &app.token(&b, Role::Receptionist)).await;
    connected(&state, "b-dentist", &app.token(&b, Role::Dentist)).await;
    connected(&state, "a-desk", &app.token(&a, Role::Receptionist)).await;
    let router = shared::clinics::router(state.clone());
    let operator = app.client(&router, &app.platform_admin_token(&a));
    let archived = operator
        .post_empty(&format!("/platform/clinics/{}/archive", b.id))
        .await;
    assert_eq!(archived.status, 200, "{}", archived.body);
    for gone in ["b-desk", "b-dentist"] {
        assert_eq!(
            recorder.sent_to(gone).last().unwrap()["error"],
            "access_revoked"
        );
        assert!(recorder.deleted().contains(&gone.to_owned()));
    }
    assert!(!recorder.deleted().contains(&"a-desk".to_owned()));
    let reconnect = connect(&state, "b-again", &app.token(&b, Role::Receptionist)).await;
    assert_eq!(reconnect.status_code, 403);
    assert_eq!(body_json(&reconnect)["type"], "/problems/clinic-archived");
}

#[tokio::test]
async fn connect_refuses_missing_expired_and_forged_tokens_and_a_bad_since() {
    let app = TestApp::spawn().await;
    let clinic = app.clinic_a;
    let expired = app.token_for(
        Some(clinic.id),
        clinic.receptionist,
        -3600,
        pulso_tests::JWT_SECRET,
    );
    let forged = app.token_for(
        Some(clinic.id),
        clinic.receptionist,
        3600,
        "another-secret-another-secret-another-secret",
    );
    let cases = [
        (None, "Pass the access token"),
        (Some(json!({"token": ""})), "Pass the access token"),
        (Some(json!({"token": expired})), "expired"),
        (Some(json!({"token": forged})), "not valid"),
        (Some(json!({"token": "garbage"})), "not valid"),
    ];
    for (query, detail) in cases {
        let answer = realtime::ws::connect(&app.state, event("$connect", "c1", query, None)).await;
        assert_eq!(answer.status_code, 401);
        let problem = body_json(&answer);
        assert_eq!(problem["type"], "/problems/unauthorized");
        assert_eq!(problem["status"], 401);
        assert!(
            problem["detail"]
                .as_str()
                .is_some_and(|d| d.contains(detail)),
            "{problem}"
        );
        assert_eq!(
            answer
                .headers
                .get("content-type")
                .and_then(|v| v.to_str().ok()),
            Some("application/problem+json")
        );
    }
    let token = app.token(&clinic, Role::Receptionist);
    for since in ["-1", "abc", "1.5"] {
        let answer = realtime::ws::connect(
            &app.state,
            event(
                "$connect",
                "c1",
                Some(json!({"token": token, "since": since})),
                None,
            ),
        )
        .await;
        assert_eq!(answer.status_code, 400, "{since}");
        assert_eq!(body_json(&answer)["field"], "since");
    }
    // Nothing was registered by any refused attempt.
    assert_eq!(
        ConnectionRegistry::new(&app.state)
            .lookup("c1")
            .await
            .expect("lookup"),
        None
    );
}

#[tokio::test]
async fn connect_answers_503_when_redis_is_down() {
    let app = TestApp::spawn_with(TestOptions {
        redis_unreachable: true,
        ..TestOptions::default()
    })
    .await;
    let answer = connect(&app.state, "c1", &app.token(&app.clinic_a, Role::Dentist)).await;
    assert_eq!(answer.status_code, 503);
    assert_eq!(
        answer
            .headers
            .get("retry-after")
            .and_then(|v| v.to_str().ok()),
        Some("5")
    );
    assert_eq!(body_json(&answer)["type"], "/problems/unavailable");
    // Frames say so too, and a notification is still stored (the inbox works without Redis).
    let frame = frame(&app.state, "c1", r#"{"action":"ping"}"#).await;
    assert_eq!(frame["type"], "error");
    assert_eq!(frame["error"], "unavailable");
    let delivery = realtime::notify(
        &app.state,
        NewNotification::new(
            Audience::Clinic(app.clinic_a.id),
            "Hola",
            Notice::announcement("Hola"),
        ),
    )
    .await
    .expect("stored without Redis");
    assert!(delivery.created);
    assert_eq!(delivery.push.skipped, Some("off"));
}

#[tokio::test]
async fn a_registration_ends_with_its_token_when_that_is_sooner() {
    let app = TestApp::spawn().await;
    let clinic = app.clinic_a;
    let hour = app.token(&clinic, Role::Dentist);
    assert_eq!(connect(&app.state, "c-1h", &hour).await.status_code, 200);
    let keys = app
        .state
        .keys
        .ws_connection(clinic.id, Role::Dentist, clinic.dentist, "c-1h");
    for key in [&keys.connection, &keys.locator] {
        let ttl = pttl(&app, key).await;
        assert!((3_500_000..=3_600_000).contains(&ttl), "{key}: {ttl}");
    }
}

#[tokio::test]
async fn a_gone_connection_is_removed_from_every_index_on_the_first_410() {
    let app = TestApp::spawn().await;
    let (state, recorder) = with_recorder(&app);
    let clinic = app.clinic_a;
    let token = app.token(&clinic, Role::Receptionist);
    connected(&state, "alive", &token).await;
    connected(&state, "vanished", &token).await;
    // A member whose hash expired long ago (its $disconnect never came): only its set knows it.
    let role_set = state
        .keys
        .ws_role_connections(clinic.id, Role::Receptionist);
    let mut redis = app.redis().await;
    let _: i64 = redis.sadd(&role_set, "stale").await.expect("SADD");
    recorder.mark_gone("vanished");
    recorder.mark_gone("stale");

    let audience = Audience::Role {
        clinic: clinic.id,
        role: Role::Receptionist,
    };
    let first = realtime::notify(
        &state,
        NewNotification::new(audience, "one", Notice::announcement("one")),
    )
    .await
    .expect("notify");
    assert_eq!(
        (
            first.push.connections,
            first.push.delivered,
            first.push.gone,
            first.push.failed
        ),
        // "stale" has no registration left: dropped before any post, not counted.
        (2, 1, 1, 0)
    );
    for set in [
        state.keys.ws_clinic_connections(clinic.id),
        role_set.clone(),
        state
            .keys
            .ws_user_connections(clinic.id, clinic.receptionist),
    ] {
        assert_eq!(
            members(&app, &set).await,
            vec!["alive".to_string()],
            "{set}"
        );
    }
    assert_eq!(
        ConnectionRegistry::new(&state)
            .lookup("vanished")
            .await
            .expect("lookup"),
        None
    );
    let second = realtime::notify(
        &state,
        NewNotification::new(audience, "two", Notice::announcement("two")),
    )
    .await
    .expect("notify");
    assert_eq!((second.push.connections, second.push.delivered), (1, 1));
    assert_eq!(pushed_titles(&recorder, "alive"), vec!["one", "two"]);
}

#[tokio::test]
async fn one_slow_connection_does_not_hold_up_the_others() {
    let app = TestApp::spawn_with(TestOptions {
        env: vec![("WS_PUSH_TIMEOUT_MS", "300".into())],
        ..TestOptions::default()
    })
    .await;
    let (state, recorder) = with_recorder(&app);
    let clinic = app.clinic_a;
    let token = app.token(&clinic, Role::Dentist);
    for n in 0..20 {
        connected(&state, &format!("fast-{n}"), &token).await;
    }
    connected(&state, "slow", &token).await;
    recorder.delay("slow", Duration::from_secs(30));

    let started = std::time::Instant::now();
    let delivery = realtime::notify(
        &state,
        NewNotification::new(
            Audience::Clinic(clinic.id),
            "hola",
            Notice::announcement("hola"),
        ),
    )
    .await
    .expect("notify");
    // Behaviour, not a benchmark: the push returned long before the slow post would have.
    assert!(started.elapsed() < Duration::from_secs(10));
    assert_eq!(
        (
            delivery.push.connections,
            delivery.push.delivered,
            delivery.push.failed
        ),
        (21, 20, 1)
    );
    for n in 0..20 {
        assert_eq!(pushed_titles(&recorder, &format!("fast-{n}")), vec!["hola"]);
    }
    // A slow connection is not a gone one: it stays registered.
    assert!(
        ConnectionRegistry::new(&state)
            .lookup("slow")
            .await
            .expect("lookup")
            .is_some()
    );
}

#[tokio::test]
async fn pushes_reach_exactly_their_audience_and_never_another_clinic() {
    let app = TestApp::spawn().await;
    let (state, recorder) = with_recorder(&app);
    let (a, b) = (app.clinic_a, app.clinic_b);
    connected(&state, "a-desk", &app.token(&a, Role::Receptionist)).await;
    connected(&state, "a-dentist", &app.token(&a, Role::Dentist)).await;
    connected(&state, "a-admin", &app.token(&a, Role::Admin)).await;
    connected(&state, "b-desk", &app.token(&b, Role::Receptionist)).await;
    connected(&state, "b-admin", &app.token(&b, Role::Admin)).await;

    note(
        &state,
        Audience::User {
            clinic: a.id,
            user: a.dentist,
        },
        "to the dentist",
    )
    .await;
    note(
        &state,
        Audience::Role {
            clinic: a.id,
            role: Role::Receptionist,
        },
        "to a's desk",
    )
    .await;
    note(&state, Audience::Clinic(a.id), "to clinic a").await;
    note_everyone(&state, &app, "to everyone").await;

    assert_eq!(
        pushed_titles(&recorder, "a-dentist"),
        vec!["to the dentist", "to clinic a", "to everyone"]
    );
    assert_eq!(
        pushed_titles(&recorder, "a-desk"),
        vec!["to a's desk", "to clinic a", "to everyone"]
    );
    assert_eq!(
        pushed_titles(&recorder, "a-admin"),
        vec!["to clinic a", "to everyone"]
    );
    assert_eq!(pushed_titles(&recorder, "b-desk"), vec!["to everyone"]);
    assert_eq!(pushed_titles(&recorder, "b-admin"), vec!["to everyone"]);
}

// ---------------------------------------------------------------------------------- inbox

#[tokio::test]
async fn the_inbox_resolves_audiences_pages_in_order_and_keeps_read_marks() {
    let app = TestApp::spawn().await;
    let state = &app.state;
    let (a, b) = (app.clinic_a, app.clinic_b);
    let router = realtime::router(state.clone());
    let desk = app.token(&a, Role::Receptionist);
    let as_desk = app.client(&router, &desk);
    let dentist = app.token(&a, Role::Dentist);
    let as_dentist = app.client(&router, &dentist);

    let to_dentist = note(
        state,
        Audience::User {
            clinic: a.id,
            user: a.dentist,
        },
        "dentist only",
    )
    .await;
    let to_desk = note(
        state,
        Audience::Role {
            clinic: a.id,
            role: Role::Receptionist,
        },
        "desk only",
    )
    .await;
    let to_clinic = note(state, Audience::Clinic(a.id), "clinic a").await;
    let to_b = note(state, Audience::Clinic(b.id), "clinic b").await;
    let to_all = note_everyone(state, &app, "everyone").await;
    assert!(to_dentist < to_desk && to_desk < to_clinic && to_clinic < to_b && to_b < to_all);

    // Catch-up (since): oldest first, only what is addressed to the caller.
    let page = as_desk.get("/notifications?since=0").await;
    assert_eq!(page.status, 200, "{}", page.body);
    assert_eq!(
        titles(&page.body),
        vec!["desk only", "clinic a", "everyone"]
    );
    assert_eq!(page.body["has_more"], false);
    assert_eq!(page.body["next_since"], to_all);
    assert!(page.body["items"][0]["read"] == false);
    assert_eq!(page.body["items"][0]["audience"], "role");
    assert_eq!(page.body["items"][0]["kind"], "announcement");

    let page = as_desk
        .get(&format!("/notifications?since={to_desk}&limit=1"))
        .await;
    assert_eq!(titles(&page.body), vec!["clinic a"]);
    assert_eq!(page.body["has_more"], true);
    assert_eq!(page.body["next_since"], to_clinic);

    // The list (no since): newest first, paged backwards.
    let page = as_dentist.get("/notifications?limit=2").await;
    assert_eq!(titles(&page.body), vec!["everyone", "clinic a"]);
    assert_eq!(page.body["has_more"], true);
    assert_eq!(page.body["next_before"], to_clinic);
    let page = as_dentist
        .get(&format!("/notifications?limit=2&before={to_clinic}"))
        .await;
    assert_eq!(titles(&page.body), vec!["dentist only"]);
    assert_eq!(page.body["has_more"], false);
    assert!(page.body.get("next_before").is_none());

    // Read marks are per user.
    let read = as_desk
        .post_empty(&format!("/notifications/{to_clinic}/read"))
        .await;
    assert_eq!(read.status, 204);
    let again = as_desk
        .post_empty(&format!("/notifications/{to_clinic}/read"))
        .await;
    assert_eq!(again.status, 204);
    let page = as_desk.get("/notifications?since=0").await;
    let read_flags: Vec<bool> = page.body["items"]
        .as_array()
        .map(|items| items.iter().map(|i| i["read"] == true).collect())
        .unwrap_or_default();
    assert_eq!(read_flags, vec![false, true, false]);
    // The badge counts what this user has not read, whichever page is asked for.
    assert_eq!(page.body["unread"], 2);
    let newest = as_desk.get("/notifications?limit=1").await;
    assert_eq!(newest.body["unread"], 2);
    let page = as_dentist.get("/notifications?since=0").await;
    assert_eq!(page.body["unread"], 3);
    assert!(
        page.body["items"]
            .as_array()
            .is_some_and(|items| items.iter().all(|i| i["read"] == false))
    );

    let all = as_desk.post_empty("/notifications/read-all").await;
    assert_eq!(all.status, 200);
    assert_eq!(all.body, json!({"marked": 2}));
    assert_eq!(as_desk.get("/notifications").await.body["unread"], 0);
    let all = as_desk.post_empty("/notifications/read-all").await;
    assert_eq!(all.body, json!({"marked": 0}));

    // Clinic B sees only its own and the announcement to everyone; A's are 404 to B.
    let b_desk = app.token(&b, Role::Receptionist);
    let as_b_desk = app.client(&router, &b_desk);
    let page = as_b_desk.get("/notifications?since=0").await;
    assert_eq!(titles(&page.body), vec!["clinic b", "everyone"]);
    for id in [to_dentist, to_desk, to_clinic] {
        let answer = as_b_desk
            .post_empty(&format!("/notifications/{id}/read"))
            .await;
        assert_eq!(answer.problem(404)["type"], "/problems/not-found");
    }
    // Another user's or another role's notification is 404 too.
    let answer = as_desk
        .post_empty(&format!("/notifications/{to_dentist}/read"))
        .await;
    answer.problem(404);
    let answer = as_dentist
        .post_empty(&format!("/notifications/{to_desk}/read"))
        .await;
    answer.problem(404);
}

#[tokio::test]
async fn inbox_routes_answer_problems_for_bad_requests() {
    let app = TestApp::spawn().await;
    let router = realtime::router(app.state.clone());
    let token = app.token(&app.clinic_a, Role::Dentist);
    let client = app.client(&router, &token);

    let answer = app.anonymous(&router).get("/notifications").await;
    assert_eq!(answer.problem(401)["type"], "/problems/unauthorized");
    let answer = app
        .client(&router, "not-a-token")
        .post_empty("/notifications/read-all")
        .await;
    answer.problem(401);
    let answer = app
        .anonymous(&router)
        .post_empty("/notifications/1/read")
        .await;
    answer.problem(401);

    for (uri, field) in [
        ("/notifications?since=-1", "since"),
        ("/notifications?since=x", "since"),
        ("/notifications?limit=0", "limit"),
        ("/notifications?limit=201", "limit"),
        ("/notifications?before=0", "before"),
        ("/notifications?since=1&before=5", "before"),
        ("/notifications?colour=red", "colour"),
    ] {
        let answer = client.get(uri).await;
        let problem = answer.problem(400);
        assert_eq!(problem["type"], "/problems/bad-request", "{uri}");
        assert_eq!(problem["field"], field, "{uri}: {problem}");
    }
    for id in ["0", "-3", "abc", "1.5"] {
        let answer = client
            .post_empty(&format!("/notifications/{id}/read"))
            .await;
        assert_eq!(answer.problem(400)["field"], "id", "{id}");
    }
    let answer = client.post_empty("/notifications/999999/read").await;
    assert_eq!(answer.problem(404)["type"], "/problems/not-found");
    let answer = client.delete("/notifications/1/read").await;
    answer.problem(405);
    // A token whose user is not on the clinic's staff is not let in at all.
    let stranger = app.token_for(
        Some(app.clinic_a.id),
        UserId::new_random(),
        3600,
        pulso_tests::JWT_SECRET,
    );
    let id = note(&app.state, Audience::Clinic(app.clinic_a.id), "hola").await;
    let answer = app
        .client(&router, &stranger)
        .post_empty(&format!("/notifications/{id}/read"))
        .await;
    assert_eq!(answer.problem(401)["type"], "/problems/unknown-user");
}

// ---------------------------------------------------------------------------------- frames

#[tokio::test]
async fn ws_default_answers_ping_ack_replay_and_an_error_frame_for_anything_else() {
    let app = TestApp::spawn().await;
    let state = &app.state;
    let a = app.clinic_a;
    connected(state, "desk", &app.token(&a, Role::Receptionist)).await;

    assert_eq!(
        frame(state, "desk", r#"{"action":"ping"}"#).await,
        json!({"type": "pong", "registered": true})
    );
    assert_eq!(
        frame(state, "unknown", r#"{"action":"ping"}"#).await,
        json!({"type": "pong", "registered": false})
    );
    for (body, code) in [
        ("hello", "bad_frame"),
        ("", "bad_frame"),
        ("{}", "bad_frame"),
        ("[1,2,3]", "bad_frame"),
        (r#"{"action":"dance"}"#, "unknown_action"),
        (r#"{"action":"ack"}"#, "bad_frame"),
        (r#"{"action":"ack","id":"seven"}"#, "bad_frame"),
        (r#"{"action":"ack","id":0}"#, "bad_frame"),
        (r#"{"action":"replay","since":-4}"#, "bad_frame"),
        (r#"{"action":"replay","since":"x"}"#, "bad_frame"),
    ] {
        let answer = frame(state, "desk", body).await;
        assert_eq!(answer["type"], "error", "{body}");
        assert_eq!(answer["error"], code, "{body}: {answer}");
        assert!(answer["message"].is_string());
    }
    let answer = frame(state, "unknown", r#"{"action":"ack","id":1}"#).await;
    assert_eq!(answer["error"], "unknown_connection");
    let answer = realtime::ws::default(state, event("$default", "desk", None, None)).await;
    assert_eq!(body_json(&answer)["error"], "bad_frame");

    let first = note(state, Audience::Clinic(a.id), "one").await;
    let second = note(
        state,
        Audience::Role {
            clinic: a.id,
            role: Role::Receptionist,
        },
        "two",
    )
    .await;
    note(
        state,
        Audience::Role {
            clinic: a.id,
            role: Role::Dentist,
        },
        "not for the desk",
    )
    .await;
    let b_only = note(state, Audience::Clinic(app.clinic_b.id), "clinic b").await;

    // Ack marks read (seen over REST); someone else's notification is not found.
    assert_eq!(
        frame(
            state,
            "desk",
            &format!(r#"{{"action":"ack","id":{first}}}"#)
        )
        .await,
        json!({"type": "ack", "id": first})
    );
    let answer = frame(
        state,
        "desk",
        &format!(r#"{{"action":"ack","id":{b_only}}}"#),
    )
    .await;
    assert_eq!(answer["error"], "not_found");
    let router = realtime::router(state.clone());
    let page = app
        .client(&router, &app.token(&a, Role::Receptionist))
        .get("/notifications?since=0")
        .await;
    assert_eq!(page.body["items"][0]["read"], true);

    // Replay: what came after `since`, in order, for this connection's user only.
    let replay = frame(state, "desk", r#"{"action":"replay","since":0}"#).await;
    assert_eq!(replay["type"], "replay");
    assert_eq!(replay["complete"], true);
    assert_eq!(replay["last_id"], second);
    let replayed: Vec<&str> = replay["notifications"]
        .as_array()
        .map(|items| items.iter().filter_map(|n| n["title"].as_str()).collect())
        .unwrap_or_default();
    assert_eq!(replayed, vec!["one", "two"]);
    let replay = frame(
        state,
        "desk",
        &format!(r#"{{"action":"replay","since":{second}}}"#),
    )
    .await;
    assert_eq!(replay["notifications"], json!([]));
    assert_eq!(replay["last_id"], second);
}

#[tokio::test]
async fn replay_defaults_to_the_since_given_at_connect_and_comes_in_bounded_frames() {
    let app = TestApp::spawn().await;
    let state = &app.state;
    let a = app.clinic_a;
    let mut ids = Vec::new();
    for n in 0..105 {
        ids.push(note(state, Audience::Clinic(a.id), &format!("n{n}")).await);
    }
    let answer = realtime::ws::connect(
        state,
        event(
            "$connect",
            "phone",
            Some(json!({"token": app.token(&a, Role::Dentist), "since": ids[2].to_string()})),
            None,
        ),
    )
    .await;
    assert_eq!(answer.status_code, 200);
    let replay = frame(state, "phone", r#"{"action":"replay"}"#).await;
    let got: Vec<i64> = replay["notifications"]
        .as_array()
        .map(|items| items.iter().filter_map(|n| n["id"].as_i64()).collect())
        .unwrap_or_default();
    assert_eq!(got, ids[3..103].to_vec());
    assert_eq!(replay["complete"], false);
    assert_eq!(replay["last_id"], ids[102]);
    let rest = frame(
        state,
        "phone",
        &format!(r#"{{"action":"replay","since":{}}}"#, ids[102]),
    )
    .await;
    let got: Vec<i64> = rest["notifications"]
        .as_array()
        .map(|items| items.iter().filter_map(|n| n["id"].as_i64()).collect())
        .unwrap_or_default();
    assert_eq!(got, ids[103..].to_vec());
    assert_eq!(rest["complete"], true);
}

// ---------------------------------------------------------------------------------- announcements

#[tokio::test]
async fn admins_announce_to_their_clinic_and_platform_admins_to_everyone() {
    let app = TestApp::spawn().await;
    let (state, recorder) = with_recorder(&app);
    let (a, b) = (app.clinic_a, app.clinic_b);
    let router = shared::admin::router(state.clone());
    connected(&state, "a-desk", &app.token(&a, Role::Receptionist)).await;
    connected(&state, "b-desk", &app.token(&b, Role::Receptionist)).await;

    let answer = app.client(&router, &app.token(&a, Role::Admin)).post("/admin/announcements", &json!({"title": "Cerrado el viernes", "message": "Festivo local.", "link": "/calendar"}))
        .await;
    assert_eq!(answer.status, 201, "{}", answer.body);
    assert_eq!(answer.body["notification"]["audience"], "clinic");
    assert_eq!(answer.body["notification"]["kind"], "announcement");
    assert_eq!(
        answer.body["notification"]["body"],
        json!({"message": "Festivo local.", "link": "/calendar"})
    );
    assert_eq!(answer.body["push"]["delivered"], 1);
    assert_eq!(
        pushed_titles(&recorder, "a-desk"),
        vec!["Cerrado el viernes"]
    );
    assert!(pushed_titles(&recorder, "b-desk").is_empty());

    // `everyone` needs the platform-admin claim.
    let answer = app
        .client(&router, &app.token(&a, Role::Admin))
        .post(
            "/admin/announcements",
            &json!({"title": "Mantenimiento", "message": "Esta noche.", "everyone": true}),
        )
        .await;
    assert_eq!(answer.problem(403)["type"], "/problems/forbidden");
    let answer = app
        .client(&router, &app.platform_admin_token(&a))
        .post(
            "/admin/announcements",
            &json!({"title": "Mantenimiento", "message": "Esta noche.", "everyone": true}),
        )
        .await;
    assert_eq!(answer.status, 201, "{}", answer.body);
    assert_eq!(answer.body["notification"]["audience"], "everyone");
    assert_eq!(answer.body["push"]["delivered"], 2);
    assert_eq!(pushed_titles(&recorder, "b-desk"), vec!["Mantenimiento"]);
    // Clinic B's inbox has it, though a clinic A admin sent it.
    let inbox = realtime::router(state.clone());
    let page = app
        .client(&inbox, &app.token(&b, Role::Dentist))
        .get("/notifications?since=0")
        .await;
    assert_eq!(titles(&page.body), vec!["Mantenimiento"]);
}

#[tokio::test]
async fn announcements_check_role_input_and_idempotency_keys() {
    let app = TestApp::spawn().await;
    let router = shared::admin::router(app.state.clone());
    let admin = app.token(&app.clinic_a, Role::Admin);
    let body = json!({"title": "Aviso", "message": "Texto"});

    let answer = app
        .anonymous(&router)
        .post("/admin/announcements", &body)
        .await;
    answer.problem(401);
    for role in [Role::Dentist, Role::Receptionist] {
        let answer = app
            .client(&router, &app.token(&app.clinic_a, role))
            .post("/admin/announcements", &body)
            .await;
        assert_eq!(answer.problem(403)["type"], "/problems/forbidden");
    }
    for (bad, field) in [
        (json!({"title": " ", "message": "x"}), "title"),
        (json!({"title": "t".repeat(201), "message": "x"}), "title"),
        (json!({"title": "t", "message": ""}), "message"),
        (
            json!({"title": "t", "message": "m".repeat(2001)}),
            "message",
        ),
        (
            json!({"title": "t", "message": "x", "link": "javascript:alert(1)"}),
            "link",
        ),
        (
            json!({"title": "t", "message": "x", "link": "//evil.example"}),
            "link",
        ),
        (
            json!({"title": "t", "message": "x", "link": "/a b"}),
            "link",
        ),
        (
            json!({"title": "t", "message": "x", "link": "/\\evil.example"}),
            "link",
        ),
        (
            json!({"title": "t", "message": "x", "link": "https://evil.example/"}),
            "link",
        ),
        (
            json!({"title": "t", "message": "x", "link": "/\tevil"}),
            "link",
        ),
        (json!({"title": "t\u{0}", "message": "x"}), "title"),
        (
            json!({"title": "Cierre \u{202E}odacilpa", "message": "x"}),
            "title",
        ),
        (json!({"title": "t", "message": "x\u{0}y"}), "message"),
        (
            json!({"title": "t", "message": "x", "urgent": true}),
            "urgent",
        ),
        (json!({"message": "x"}), "title"),
        (json!({"title": 5, "message": "x"}), "title"),
    ] {
        let answer = app
            .client(&router, &admin)
            .post("/admin/announcements", &bad)
            .await;
        let problem = answer.problem(422);
        assert_eq!(problem["type"], "/problems/validation");
        assert_eq!(problem["field"], field, "{bad}: {problem}");
    }
    assert_eq!(app.count("notifications", app.clinic_a.id).await, 0);

    let as_admin = app.client(&router, &admin);
    let send = |key: &'static str, body: Value| {
        let request = as_admin
            .request(Method::POST, "/admin/announcements")
            .header("content-type", "application/json")
            .header("idempotency-key", key)
            .body(axum::body::Body::from(body.to_string()))
            .expect("request");
        as_admin.raw(request)
    };
    let first = send("k-1", body.clone()).await;
    assert_eq!(first.status, 201);
    let again = send("k-1", body.clone()).await;
    assert_eq!(again.status, 200);
    assert_eq!(
        again
            .headers
            .get("idempotent-replayed")
            .and_then(|v| v.to_str().ok()),
        Some("true")
    );
    assert_eq!(
        again.body["notification"]["id"],
        first.body["notification"]["id"]
    );
    assert_eq!(again.body["push"]["skipped"], "duplicate");
    let other = send("k-1", json!({"title": "Otro", "message": "Texto"})).await;
    assert_eq!(other.problem(422)["field"], "Idempotency-Key");
    assert_eq!(app.count("notifications", app.clinic_a.id).await, 1);
}

// ---------------------------------------------------------------------------------- producers

#[tokio::test]
async fn a_finished_document_notifies_its_requester_and_the_desk_once() {
    let app = TestApp::spawn().await;
    let (state, recorder) = with_recorder(&app);
    let a = app.clinic_a;
    connected(&state, "dentist", &app.token(&a, Role::Dentist)).await;
    connected(&state, "desk", &app.token(&a, Role::Receptionist)).await;
    connected(
        &state,
        "other-dentist",
        &app.token_for(Some(a.id), a.second_dentist, 3600, pulso_tests::JWT_SECRET),
    )
    .await;

    let xray = XrayId::new_random();
    let job = JobId::new_random();
    for _ in 0..2 {
        // A job delivered twice: the second run notifies nobody.
        realtime::document_ready(
            &state,
            a.id,
            Some(a.dentist),
            DocumentReady::xray_analysed(xray, job),
        )
        .await;
    }
    let link = format!("/xrays/{xray}");
    for id in ["dentist", "desk"] {
        let frames = recorder.sent_to(id);
        assert_eq!(frames.len(), 1, "{id}: {frames:?}");
        let notification = &frames[0]["notification"];
        assert_eq!(notification["kind"], "xray.analysed");
        assert_eq!(notification["title"], "X-ray analysed");
        assert_eq!(notification["body"]["link"], link);
        assert_eq!(notification["body"]["xray_id"], xray.to_string());
        assert_eq!(notification["body"]["job_id"], job.to_string());
    }
    assert!(recorder.sent_to("other-dentist").is_empty());

    // A receptionist who asked hears it once, as part of the desk.
    let report = shared::ids::ReportId::new_random();
    realtime::document_ready(
        &state,
        a.id,
        Some(a.receptionist),
        DocumentReady::report_ready(report, job),
    )
    .await;
    assert_eq!(recorder.sent_to("desk").len(), 2);
    assert_eq!(recorder.sent_to("dentist").len(), 1);
    assert_eq!(app.count("notifications", a.id).await, 3);
}

// ---------------------------------------------------------------------------------- reminders

async fn appointment(
    app: &TestApp,
    clinic: &TestClinic,
    dentist: UserId,
    starts_at: DateTime<Utc>,
    status: &str,
) -> AppointmentId {
    let mut tx = app.owner_tx(clinic.id).await;
    let patient: Uuid = sqlx::query_scalar(
        "INSERT INTO patients (clinic_id, first_name, last_name, search_name) \
         VALUES ($1, 'Lucía', 'Serrano', 'lucia serrano') RETURNING id",
    )
    .bind(clinic.id)
    .fetch_one(&mut *tx)
    .await
    .expect("patient");
    let id: Uuid = sqlx::query_scalar(
        "INSERT INTO appointments (clinic_id, patient_id, dentist_id, starts_at, ends_at, status, reason) \
         VALUES ($1, $2, $3, $4, $4 + interval '30 minutes', $5::appointment_status, 'dolor de muelas') \
         RETURNING id",
    )
    .bind(clinic.id)
    .bind(patient)
    .bind(dentist)
    .bind(starts_at)
    .bind(status)
    .fetch_one(&mut *tx)
    .await
    .expect("appointment");
    tx.commit().await.expect("commit");
    AppointmentId::from(id)
}

fn tick_at(at: DateTime<Utc>) -> Tick {
    Tick {
        at,
        stop_at: tokio::time::Instant::now() + Duration::from_secs(50),
    }
}

async fn dedupe_keys(app: &TestApp, clinic: ClinicId) -> Vec<String> {
    let mut tx = app.owner_tx(clinic).await;
    let keys: Vec<String> = sqlx::query_scalar(
        "SELECT dedupe_key FROM notifications WHERE clinic_id = $1 AND dedupe_key IS NOT NULL ORDER BY dedupe_key",
    )
    .bind(clinic)
    .fetch_all(&mut *tx)
    .await
    .expect("dedupe keys");
    tx.rollback().await.ok();
    keys
}

#[tokio::test]
async fn reminders_and_no_shows_go_to_the_desk_once_however_often_the_scheduler_runs() {
    let app = TestApp::spawn().await;
    let (a, b) = (app.clinic_a, app.clinic_b);
    let at = Utc::now();
    let minutes = |m: i64| at + TimeDelta::minutes(m);
    let tomorrow = appointment(&app, &a, a.dentist, minutes(24 * 60 - 10), "scheduled").await;
    let soon = appointment(&app, &a, a.second_dentist, minutes(50), "confirmed").await;
    let late = appointment(&app, &a, a.dentist, minutes(-20), "scheduled").await;
    // Not due: attended, cancelled, already marked, too far, not started long enough.
    appointment(&app, &a, a.dentist, minutes(-100), "completed").await;
    appointment(&app, &a, a.dentist, minutes(-60), "no_show").await;
    appointment(&app, &a, a.dentist, minutes(55), "cancelled").await;
    appointment(&app, &a, a.dentist, minutes(3 * 24 * 60), "scheduled").await;
    appointment(&app, &a, a.second_dentist, minutes(-5), "scheduled").await;
    let b_late = appointment(&app, &b, b.dentist, minutes(-30), "confirmed").await;

    let (notifier, recorder) = Notifier::recorder();
    let mut system = app.system_state();
    system.notifier = notifier;
    connected(&system, "a-desk", &app.token(&a, Role::Receptionist)).await;
    connected(&system, "a-dentist", &app.token(&a, Role::Dentist)).await;
    connected(&system, "b-desk", &app.token(&b, Role::Receptionist)).await;

    let scheduler = Scheduler::new(system.clone());
    let first = scheduler.run(tick_at(at)).await;
    assert!(first.failed_tasks().is_empty(), "{first:?}");
    // The same tick again, then two at once: nothing new.
    scheduler.run(tick_at(at)).await;
    let (x, y) = tokio::join!(
        scheduler.run(tick_at(at + TimeDelta::seconds(30))),
        scheduler.run(tick_at(at + TimeDelta::seconds(30)))
    );
    assert!(x.failed_tasks().is_empty() && y.failed_tasks().is_empty());

    assert_eq!(dedupe_keys(&app, a.id).await, {
        let mut keys = vec![
            format!("no-show:{late}"),
            format!("reminder-1h:{soon}"),
            format!("reminder-24h:{tomorrow}"),
        ];
        keys.sort();
        keys
    });
    assert_eq!(
        dedupe_keys(&app, b.id).await,
        vec![format!("no-show:{b_late}")]
    );

    let desk = recorder.sent_to("a-desk");
    let mut kinds: Vec<(String, String)> = desk
        .iter()
        .map(|frame| {
            (
                frame["notification"]["kind"]
                    .as_str()
                    .unwrap_or_default()
                    .to_owned(),
                frame["notification"]["body"]["appointment_id"]
                    .as_str()
                    .unwrap_or_default()
                    .to_owned(),
            )
        })
        .collect();
    kinds.sort();
    let mut expected = vec![
        ("appointment.possible_no_show".to_owned(), late.to_string()),
        ("appointment.reminder".to_owned(), soon.to_string()),
        ("appointment.reminder".to_owned(), tomorrow.to_string()),
    ];
    // Both sides sorted: the two reminders' order follows their random ids.
    expected.sort();
    assert_eq!(kinds, expected);
    for frame in &desk {
        let body = &frame["notification"]["body"];
        assert!(
            body["link"]
                .as_str()
                .is_some_and(|l| l.starts_with("/appointments/"))
        );
        // Ids and times only: never the patient's name or the visit's reason.
        let text = frame.to_string();
        assert!(
            !text.contains("Serrano") && !text.contains("muelas"),
            "{text}"
        );
    }
    assert!(recorder.sent_to("a-dentist").is_empty());
    let b_frames = recorder.sent_to("b-desk");
    assert_eq!(b_frames.len(), 1);
    assert_eq!(
        b_frames[0]["notification"]["body"]["appointment_id"],
        b_late.to_string()
    );
}

#[tokio::test]
async fn a_connection_whose_token_expired_is_told_and_closed_by_the_scheduler() {
    let app = TestApp::spawn().await;
    let (notifier, recorder) = Notifier::recorder();
    let mut system = app.system_state();
    system.notifier = notifier;
    let registry = ConnectionRegistry::new(&system);
    let now = now_ms();
    let connection = |id: &str, token_expires_at_ms: i64| LiveConnection {
        id: id.to_owned(),
        clinic: app.clinic_a.id,
        user: app.clinic_a.user(Role::Dentist),
        role: Role::Dentist,
        connected_at_ms: now,
        since: None,
        token_expires_at_ms: Some(token_expires_at_ms),
    };
    registry
        .register(&connection("expiring", now + 200))
        .await
        .unwrap();
    registry
        .register(&connection("fresh", now + 3_600_000))
        .await
        .unwrap();
    assert_eq!(realtime::close_ended(&system).await.unwrap().ended, 0);

    tokio::time::sleep(Duration::from_millis(400)).await;
    let report = Scheduler::new(system.clone())
        .run(tick_at(Utc::now()))
        .await;
    assert!(report.failed_tasks().is_empty(), "{report:?}");
    let closed = report
        .tasks
        .iter()
        .find_map(|task| match &task.outcome {
            TaskOutcome::Connections(done) => Some(*done),
            _ => None,
        })
        .expect("the scheduler closes ended connections");
    assert_eq!((closed.ended, closed.closed, closed.failed), (1, 1, 0));
    // Told why, then closed; the other connection is left alone.
    let told = recorder.sent_to("expiring");
    assert_eq!(told.len(), 1, "{told:?}");
    assert_eq!(told[0]["type"], "error");
    assert_eq!(told[0]["error"], "token_expired");
    assert_eq!(recorder.deleted(), vec!["expiring".to_owned()]);
    assert!(registry.lookup("expiring").await.unwrap().is_none());
    assert!(registry.lookup("fresh").await.unwrap().is_some());
    // Once: the next round finds nothing.
    assert_eq!(realtime::close_ended(&system).await.unwrap().ended, 0);
    assert_eq!(recorder.deleted().len(), 1);
}

#[tokio::test]
async fn a_connection_that_could_not_be_closed_is_tried_again() {
    let app = TestApp::spawn_with(TestOptions {
        env: vec![("WS_PUSH_TIMEOUT_MS", "100".into())],
        ..TestOptions::default()
    })
    .await;
    let (notifier, recorder) = Notifier::recorder();
    let mut state = app.state.clone();
    state.notifier = notifier;
    let registry = ConnectionRegistry::new(&state);
    let now = now_ms();
    registry
        .register(&LiveConnection {
            id: "slow".to_owned(),
            clinic: app.clinic_b.id,
            user: app.clinic_b.user(Role::Receptionist),
            role: Role::Receptionist,
            connected_at_ms: now,
            since: None,
            token_expires_at_ms: Some(now + 100),
        })
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    // The frame and the close outlast WS_PUSH_TIMEOUT_MS: nothing is removed.
    recorder.delay("slow", Duration::from_millis(300));
    let report = realtime::close_ended(&state).await.unwrap();
    assert_eq!((report.ended, report.closed), (1, 0));
    assert_eq!(
        realtime::close_ended(&state).await.unwrap().ended,
        1,
        "still there to close"
    );
}
