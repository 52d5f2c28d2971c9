//! Real-time notifications end to end (issue 6): a real WebSocket client (tokio-tungstenite)
//! connects through the local gateway (`infra/gateway`, reading template.yaml) to the
//! `ws-connect` / `ws-default` / `ws-disconnect` handlers with real PostgreSQL and Redis, and
//! notifications are pushed with the real AWS SDK to the gateway's @connections API.

use chrono::{TimeDelta, Utc};
use futures_util::{SinkExt, StreamExt};
use http::Method;
use pulso_tests::realtime::LocalGateway;
use pulso_tests::{TestApp, TestClinic};
use redis::AsyncCommands;
use serde_json::{Value, json};
use shared::AppState;
use shared::auth::Role;
use shared::ids::{JobId, UserId};
use shared::queue::Job;
use shared::realtime::{
    self, Audience, ConnectionRegistry, LiveConnection, NewNotification, Notice,
};
use shared::scheduler::{Scheduler, Tick};
use std::time::Duration;
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::{self, Message};
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};
use uuid::Uuid;

type Socket = WebSocketStream<MaybeTlsStream<TcpStream>>;

const WAIT: Duration = Duration::from_secs(10);

async fn open(gateway: &LocalGateway, query: &str) -> Socket {
    let (socket, response) = tokio_tungstenite::connect_async(gateway.url(query))
        .await
        .expect("the WebSocket handshake succeeds");
    assert_eq!(response.status().as_u16(), 101);
    socket
}

/// The HTTP status a refused handshake answered.
async fn refused(gateway: &LocalGateway, query: &str) -> u16 {
    match tokio_tungstenite::connect_async(gateway.url(query)).await {
        Err(tungstenite::Error::Http(response)) => response.status().as_u16(),
        Err(other) => panic!("expected an HTTP refusal, got {other}"),
        Ok(_) => panic!("the handshake was accepted"),
    }
}

/// The next text frame, as JSON.
async fn next_frame(socket: &mut Socket) -> Value {
    loop {
        match tokio::time::timeout(WAIT, socket.next()).await {
            Ok(Some(Ok(Message::Text(text)))) => {
                return serde_json::from_str(text.as_str()).expect("a JSON frame");
            }
            Ok(Some(Ok(Message::Ping(_) | Message::Pong(_)))) => continue,
            other => panic!("expected a text frame, got {other:?}"),
        }
    }
}

async fn send(socket: &mut Socket, text: &str) {
    socket
        .send(Message::text(text.to_owned()))
        .await
        .expect("send a frame");
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

fn desk(clinic: &TestClinic) -> Audience {
    Audience::Role {
        clinic: clinic.id,
        role: Role::Receptionist,
    }
}

/// The connection ids registered for one user (the client never learns its own id).
async fn user_connections(app: &TestApp, clinic: &TestClinic, user: UserId) -> Vec<String> {
    let mut redis = app.redis().await;
    redis
        .smembers(app.state.keys.ws_user_connections(clinic.id, user))
        .await
        .expect("SMEMBERS")
}

/// Waits until `user` has `count` registered connections.
async fn wait_for_connections(
    app: &TestApp,
    clinic: &TestClinic,
    user: UserId,
    count: usize,
) -> Vec<String> {
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let ids = user_connections(app, clinic, user).await;
        if ids.len() == count {
            return ids;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "{} connections registered, expected {count}",
            ids.len()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn png(width: u32, height: u32) -> Vec<u8> {
    let image = image::GrayImage::from_fn(width, height, |x, y| {
        image::Luma([((x * 7 + y * 3) % 256) as u8])
    });
    let mut bytes = std::io::Cursor::new(Vec::new());
    image
        .write_to(&mut bytes, image::ImageFormat::Png)
        .expect("encode a PNG");
    bytes.into_inner()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_analysed_xray_reaches_the_desk_and_the_requester_over_websocket() {
    let app = TestApp::spawn().await;
    let gateway = LocalGateway::start(&app).await;
    let clinic = app.clinic_a;
    let mut desk_socket = open(
        &gateway,
        &format!("token={}", app.token(&clinic, Role::Receptionist)),
    )
    .await;
    let mut dentist_socket = open(
        &gateway,
        &format!("token={}", app.token(&clinic, Role::Dentist)),
    )
    .await;
    wait_for_connections(&app, &clinic, clinic.dentist, 1).await;

    // The dentist uploads an X-ray; the upload stages the `xray.analyze` job.
    let patients = shared::patients::router(app.state.clone());
    let patient = app
        .client(&patients, &app.token(&clinic, Role::Receptionist))
        .post(
            "/patients",
            &json!({"first_name": "Lucía", "last_name": "Serrano"}),
        )
        .await;
    assert_eq!(patient.status, 201, "{}", patient.body);
    let patient = patient.body["id"].as_str().expect("patient id").to_owned();
    let xrays = shared::xrays::router(app.state.clone());
    let upload = app
        .client(&xrays, &app.token(&clinic, Role::Dentist))
        .send_bytes(
            Method::POST,
            &format!("/patients/{patient}/xrays"),
            Some("image/png"),
            png(320, 240),
        )
        .await;
    assert_eq!(upload.status, 202, "{}", upload.body);
    let xray_id = upload.body["xray_id"].as_str().expect("xray id").to_owned();
    let job_id = Uuid::parse_str(upload.body["job_id"].as_str().expect("job id")).expect("uuid");

    // The worker's handler runs the job with the state whose notifier is the real SDK client.
    let mut tx = app.owner_tx(clinic.id).await;
    let (payload, created_by): (Value, Option<Uuid>) =
        sqlx::query_as("SELECT payload, created_by FROM jobs WHERE clinic_id = $1 AND id = $2")
            .bind(clinic.id)
            .bind(job_id)
            .fetch_one(&mut *tx)
            .await
            .expect("the staged job");
    tx.rollback().await.ok();
    let job = Job {
        id: JobId::from(job_id),
        clinic: clinic.id,
        kind: "xray.analyze".into(),
        payload,
        attempt: 1,
        max_attempts: 3,
        created_by: created_by.map(UserId::from),
    };
    shared::xrays::analyze(gateway.state.clone(), job)
        .await
        .expect("the analysis succeeds");

    for socket in [&mut desk_socket, &mut dentist_socket] {
        let frame = next_frame(socket).await;
        assert_eq!(frame["type"], "notification", "{frame}");
        let notification = &frame["notification"];
        assert_eq!(notification["kind"], "xray.analysed");
        assert_eq!(notification["title"], "X-ray analysed");
        assert_eq!(notification["body"]["link"], format!("/xrays/{xray_id}"));
        assert_eq!(notification["read"], false);
        assert!(!frame.to_string().contains("Serrano"));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_missing_expired_or_forged_token_is_refused_with_401() {
    let app = TestApp::spawn().await;
    let gateway = LocalGateway::start(&app).await;
    let clinic = app.clinic_a;
    let expired = app.token_for(
        Some(clinic.id),
        clinic.dentist,
        -3600,
        pulso_tests::JWT_SECRET,
    );
    assert_eq!(refused(&gateway, "").await, 401);
    assert_eq!(refused(&gateway, &format!("token={expired}")).await, 401);
    assert_eq!(refused(&gateway, "token=not-a-jwt").await, 401);
    assert_eq!(
        refused(
            &gateway,
            &format!(
                "token={}&since=yesterday",
                app.token(&clinic, Role::Dentist)
            )
        )
        .await,
        400
    );
    assert!(
        user_connections(&app, &clinic, clinic.dentist)
            .await
            .is_empty()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_connection_ends_with_its_token_and_is_closed() {
    let app = TestApp::spawn().await;
    let gateway = LocalGateway::start(&app).await;
    let clinic = app.clinic_a;
    // Valid for two more seconds (within the verifier's leeway the handshake still passes).
    let short = app.token_for(
        Some(clinic.id),
        clinic.receptionist,
        2,
        pulso_tests::JWT_SECRET,
    );
    let mut socket = open(&gateway, &format!("token={short}")).await;
    wait_for_connections(&app, &clinic, clinic.receptionist, 1).await;
    send(&mut socket, r#"{"action":"ping"}"#).await;
    assert_eq!(next_frame(&mut socket).await["registered"], true);

    tokio::time::sleep(std::time::Duration::from_millis(2_500)).await;
    // No push reaches it any more, and it leaves the indexes the push looked in (the others
    // drop it the same way when a push looks there, or when they expire).
    let delivery = realtime::notify(
        &gateway.state,
        NewNotification::new(
            desk(&clinic),
            "after expiry",
            Notice::announcement("after expiry"),
        ),
    )
    .await
    .expect("notify");
    assert_eq!(delivery.push.connections, 0, "{:?}", delivery.push);
    let mut redis = app.redis().await;
    let clinic_set: Vec<String> = redis
        .smembers(app.state.keys.ws_clinic_connections(clinic.id))
        .await
        .expect("SMEMBERS");
    assert!(clinic_set.is_empty(), "{clinic_set:?}");
    // Its reads are refused: the client is told to reconnect with a fresh token.
    send(&mut socket, r#"{"action":"replay","since":0}"#).await;
    let refused = next_frame(&mut socket).await;
    assert_eq!(refused["type"], "error", "{refused}");

    // The scheduler's round closes it through DeleteConnection: a last frame saying why, then
    // the close.
    let closed = realtime::close_ended(&gateway.state).await.expect("close");
    assert_eq!((closed.ended, closed.closed), (1, 1), "{closed:?}");
    let last = next_frame(&mut socket).await;
    assert_eq!(last["error"], "token_expired", "{last}");
    match tokio::time::timeout(WAIT, socket.next()).await {
        Ok(Some(Ok(Message::Close(_))) | None) => {}
        other => panic!("expected the close, got {other:?}"),
    }
    assert_eq!(
        realtime::close_ended(&gateway.state).await.unwrap().ended,
        0
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn closing_the_socket_removes_the_connection_from_the_registry() {
    let app = TestApp::spawn().await;
    let gateway = LocalGateway::start(&app).await;
    let clinic = app.clinic_a;
    let mut socket = open(
        &gateway,
        &format!("token={}", app.token(&clinic, Role::Admin)),
    )
    .await;
    let ids = wait_for_connections(&app, &clinic, clinic.admin, 1).await;
    let registry = ConnectionRegistry::new(&app.state);
    assert!(registry.lookup(&ids[0]).await.expect("lookup").is_some());

    socket.close(None).await.expect("close");
    wait_for_connections(&app, &clinic, clinic.admin, 0).await;
    assert_eq!(registry.lookup(&ids[0]).await.expect("lookup"), None);
    let mut redis = app.redis().await;
    let left: Vec<String> = redis
        .smembers(app.state.keys.ws_clinic_connections(clinic.id))
        .await
        .expect("SMEMBERS");
    assert!(left.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_connection_that_vanished_without_disconnect_is_removed_on_the_first_410() {
    let app = TestApp::spawn().await;
    let gateway = LocalGateway::start(&app).await;
    let clinic = app.clinic_a;
    let mut socket = open(
        &gateway,
        &format!("token={}", app.token(&clinic, Role::Receptionist)),
    )
    .await;
    wait_for_connections(&app, &clinic, clinic.receptionist, 1).await;
    // A phone whose network died: API Gateway dropped it, but its $disconnect never came.
    let registry = ConnectionRegistry::new(&gateway.state);
    registry
        .register(&LiveConnection {
            id: "Zm9yZ290dGVuLWlk+/=".into(),
            clinic: clinic.id,
            user: clinic.receptionist,
            role: Role::Receptionist,
            connected_at_ms: Utc::now().timestamp_millis(),
            since: None,
            token_expires_at_ms: None,
        })
        .await
        .expect("register");
    assert_eq!(
        user_connections(&app, &clinic, clinic.receptionist)
            .await
            .len(),
        2
    );

    let delivery = realtime::notify(
        &gateway.state,
        NewNotification::new(
            desk(&clinic),
            "to the desk",
            Notice::announcement("to the desk"),
        ),
    )
    .await
    .expect("notify");
    assert_eq!(
        (
            delivery.push.connections,
            delivery.push.delivered,
            delivery.push.gone
        ),
        (2, 1, 1),
        "{:?}",
        delivery.push
    );
    assert_eq!(
        next_frame(&mut socket).await["notification"]["title"],
        "to the desk"
    );
    assert_eq!(
        registry
            .lookup("Zm9yZ290dGVuLWlk+/=")
            .await
            .expect("lookup"),
        None
    );
    assert_eq!(
        user_connections(&app, &clinic, clinic.receptionist)
            .await
            .len(),
        1
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reconnecting_with_since_replays_exactly_the_missed_notices() {
    let app = TestApp::spawn().await;
    let gateway = LocalGateway::start(&app).await;
    let (a, b) = (app.clinic_a, app.clinic_b);
    let token = app.token(&a, Role::Receptionist);
    let state = &gateway.state;

    let mut socket = open(&gateway, &format!("token={token}")).await;
    wait_for_connections(&app, &a, a.receptionist, 1).await;
    let seen = note(state, Audience::Clinic(a.id), "seen").await;
    let frame = next_frame(&mut socket).await;
    assert_eq!(frame["notification"]["id"], seen);
    socket.close(None).await.expect("close");
    wait_for_connections(&app, &a, a.receptionist, 0).await;

    // While the phone sleeps: two for the desk, and three that are not for it.
    let missed_one = note(state, desk(&a), "missed one").await;
    note(
        state,
        Audience::Role {
            clinic: a.id,
            role: Role::Dentist,
        },
        "dentists only",
    )
    .await;
    note(state, Audience::Clinic(b.id), "clinic b").await;
    note(
        state,
        Audience::User {
            clinic: a.id,
            user: a.admin,
        },
        "the admin only",
    )
    .await;
    let missed_two = note(state, Audience::Clinic(a.id), "missed two").await;

    let mut socket = open(&gateway, &format!("token={token}&since={seen}")).await;
    send(&mut socket, r#"{"action":"replay"}"#).await;
    let replay = next_frame(&mut socket).await;
    assert_eq!(replay["type"], "replay", "{replay}");
    let ids: Vec<i64> = replay["notifications"]
        .as_array()
        .map(|items| items.iter().filter_map(|n| n["id"].as_i64()).collect())
        .unwrap_or_default();
    assert_eq!(ids, vec![missed_one, missed_two]);
    assert_eq!(replay["complete"], true);
    assert_eq!(replay["last_id"], missed_two);

    // And the socket is live again: pings answer, new notices arrive.
    send(&mut socket, r#"{"action":"ping"}"#).await;
    assert_eq!(
        next_frame(&mut socket).await,
        json!({"type": "pong", "registered": true})
    );
    let fresh = note(state, desk(&a), "fresh").await;
    assert_eq!(next_frame(&mut socket).await["notification"]["id"], fresh);
    send(&mut socket, &format!(r#"{{"action":"ack","id":{fresh}}}"#)).await;
    assert_eq!(
        next_frame(&mut socket).await,
        json!({"type": "ack", "id": fresh})
    );
    send(&mut socket, "garbage").await;
    assert_eq!(next_frame(&mut socket).await["error"], "bad_frame");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_receptionist_of_clinic_b_never_receives_clinic_a_notices() {
    let app = TestApp::spawn().await;
    let gateway = LocalGateway::start(&app).await;
    let (a, b) = (app.clinic_a, app.clinic_b);
    let state = &gateway.state;
    let mut a_socket = open(
        &gateway,
        &format!("token={}", app.token(&a, Role::Receptionist)),
    )
    .await;
    let mut b_socket = open(
        &gateway,
        &format!("token={}", app.token(&b, Role::Receptionist)),
    )
    .await;
    wait_for_connections(&app, &a, a.receptionist, 1).await;
    wait_for_connections(&app, &b, b.receptionist, 1).await;

    note(state, Audience::Clinic(a.id), "a clinic").await;
    note(state, desk(&a), "a desk").await;
    note(
        state,
        Audience::User {
            clinic: a.id,
            user: a.receptionist,
        },
        "a receptionist",
    )
    .await;
    for title in ["a clinic", "a desk", "a receptionist"] {
        assert_eq!(
            next_frame(&mut a_socket).await["notification"]["title"],
            title
        );
    }
    // B's first frame is B's own notice: none of A's came before it.
    note(state, desk(&b), "b desk").await;
    assert_eq!(
        next_frame(&mut b_socket).await["notification"]["title"],
        "b desk"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reminders_are_pushed_once_even_when_the_scheduler_runs_twice() {
    let app = TestApp::spawn().await;
    let gateway = LocalGateway::start(&app).await;
    let clinic = app.clinic_a;
    let at = Utc::now();
    let starts_at = at + TimeDelta::minutes(45);
    let mut tx = app.owner_tx(clinic.id).await;
    let patient: Uuid = sqlx::query_scalar(
        "INSERT INTO patients (clinic_id, first_name, last_name, search_name) \
         VALUES ($1, 'Ana', 'Ruiz', 'ana ruiz') RETURNING id",
    )
    .bind(clinic.id)
    .fetch_one(&mut *tx)
    .await
    .expect("patient");
    let appointment: Uuid = sqlx::query_scalar(
        "INSERT INTO appointments (clinic_id, patient_id, dentist_id, starts_at, ends_at) \
         VALUES ($1, $2, $3, $4, $4 + interval '30 minutes') RETURNING id",
    )
    .bind(clinic.id)
    .bind(patient)
    .bind(clinic.dentist)
    .bind(starts_at)
    .fetch_one(&mut *tx)
    .await
    .expect("appointment");
    tx.commit().await.expect("commit");

    let mut socket = open(
        &gateway,
        &format!("token={}", app.token(&clinic, Role::Receptionist)),
    )
    .await;
    wait_for_connections(&app, &clinic, clinic.receptionist, 1).await;
    let mut system = app.system_state();
    system.notifier = gateway.state.notifier.clone();
    let scheduler = Scheduler::new(system);
    for _ in 0..2 {
        let report = scheduler
            .run(Tick {
                at,
                stop_at: tokio::time::Instant::now() + Duration::from_secs(50),
            })
            .await;
        assert!(report.failed_tasks().is_empty(), "{report:?}");
    }

    let reminder = next_frame(&mut socket).await;
    assert_eq!(reminder["notification"]["kind"], "appointment.reminder");
    assert_eq!(reminder["notification"]["title"], "Appointment in 1 hour");
    assert_eq!(
        reminder["notification"]["body"]["appointment_id"],
        appointment.to_string()
    );
    // The next frame is the sentinel: the second run pushed nothing.
    note(&gateway.state, desk(&clinic), "sentinel").await;
    assert_eq!(
        next_frame(&mut socket).await["notification"]["title"],
        "sentinel"
    );
}
