//! The job queue at the HTTP edge: a route that enqueues (the way the X-ray and report routes
//! do: stage in the request's transaction, dispatch after commit, 202), `GET /jobs/{id}`, and the
//! admin routes (`/admin/queues`, `/admin/jobs`, `/admin/jobs/{id}/retry`): tenancy, roles,
//! idempotency, Redis down at enqueue, and every bad input as problem+json.

use axum::Router;
use axum::extract::State;
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use http::{HeaderMap, Method, StatusCode, header};
use pulso_tests::{Client, TestApp, TestOptions, TestResponse, drain_jobs};
use serde::Deserialize;
use serde_json::{Value, json};
use shared::auth::{Principal, Role};
use shared::http::{ApiError, ApiJson, ApiPath};
use shared::ids::JobId;
use shared::queue::{IdempotencyKey, JobFailure, JobKind, NewJob, Queue};
use shared::redis::RedisConnector;
use shared::worker::Handlers;
use shared::{AppState, db};
use std::sync::Arc;
use std::time::Duration;

const ECHO: JobKind = JobKind::new("test.echo");
const BROKEN: JobKind = JobKind::new("test.broken");

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct EnqueueBody {
    message: String,
}

/// A route shaped like the contexts' enqueueing routes: `POST /test/{kind}` with an optional
/// `Idempotency-Key`, answering 202 with the job and its status URL.
fn enqueue_router(state: AppState) -> Router {
    let edge = state.edge();
    shared::http::finish(
        Router::new().route("/test/{kind}", post(enqueue)).into(),
        state,
        edge,
    )
}

async fn enqueue(
    State(state): State<AppState>,
    principal: Principal,
    ApiPath(kind): ApiPath<String>,
    headers: HeaderMap,
    ApiJson(body): ApiJson<EnqueueBody>,
) -> Result<Response, ApiError> {
    let key = IdempotencyKey::from_headers(&headers)?;
    let kind = match kind.as_str() {
        "echo" => ECHO,
        "broken" => BROKEN,
        _ => return Err(ApiError::NotFound { what: "job kind" }),
    };
    let mut tx = db::begin_tenant(&state.db, principal.clinic_id).await?;
    let staged = state
        .queue
        .stage(
            &mut tx,
            principal.clinic_id,
            NewJob {
                kind,
                payload: json!({"message": body.message}),
                idempotency_key: key,
                created_by: Some(principal.user_id),
                max_attempts: None,
            },
        )
        .await?;
    tx.commit().await.map_err(db::DbError::from)?;
    state.queue.dispatch(&staged).await;
    Ok((
        StatusCode::ACCEPTED,
        [(header::LOCATION, format!("/jobs/{}", staged.id))],
        axum::Json(json!({"job_id": staged.id})),
    )
        .into_response())
}

fn handlers() -> Handlers {
    Handlers::new()
        .on(ECHO, |_, job| async move {
            Ok(json!({"echo": job.payload["message"], "location": "/things/42"}))
        })
        .on(BROKEN, |_, _| async {
            Err(JobFailure::permanent("the file does not decode"))
        })
}

async fn post_job(client: &Client, kind: &str, key: Option<&str>, body: Value) -> TestResponse {
    let mut request = client
        .request(Method::POST, &format!("/test/{kind}"))
        .header("content-type", "application/json");
    if let Some(key) = key {
        request = request.header("idempotency-key", key);
    }
    let request = request
        .body(axum::body::Body::from(body.to_string()))
        .unwrap();
    client.raw(request).await
}

fn job_id(response: &TestResponse) -> String {
    assert_eq!(response.status, 202, "{}", response.body);
    let id = response.body["job_id"]
        .as_str()
        .expect("job_id")
        .to_string();
    assert_eq!(
        response.headers.get(header::LOCATION).unwrap(),
        &format!("/jobs/{id}")
    );
    id
}

#[tokio::test]
async fn a_job_is_accepted_then_its_status_and_result_are_shown_to_its_clinic_only() {
    let app = TestApp::spawn().await;
    let enqueue = enqueue_router(app.state.clone());
    let jobs = shared::queue::router(app.state.clone());
    let token = app.token(&app.clinic_a, Role::Receptionist);
    let jobs_client = app.client(&jobs, &token);

    let id = job_id(
        &post_job(
            &app.client(&enqueue, &token),
            "echo",
            None,
            json!({"message": "hola"}),
        )
        .await,
    );
    let queued = jobs_client.get(&format!("/jobs/{id}")).await;
    assert_eq!(queued.status, 200, "{}", queued.body);
    assert_eq!(queued.body["status"], "queued");
    assert_eq!(queued.body["kind"], "test.echo");
    assert_eq!(queued.body["attempts"], 0);
    assert_eq!(queued.body["max_attempts"], 3);
    assert_eq!(queued.body["result"], Value::Null);
    assert_eq!(
        queued.body["created_by"],
        app.clinic_a.receptionist.to_string()
    );

    drain_jobs(app.system_state(), handlers()).await;
    let done = jobs_client.get(&format!("/jobs/{id}")).await;
    assert_eq!(done.status, 200, "{}", done.body);
    assert_eq!(done.body["status"], "succeeded");
    assert_eq!(done.body["attempts"], 1);
    assert_eq!(done.body["result"]["echo"], "hola");
    assert_eq!(done.body["result_url"], "/things/42");
    for field in ["created_at", "started_at", "finished_at", "updated_at"] {
        assert!(done.body[field].is_string(), "{field}: {}", done.body);
    }
    assert!(done.body.get("next_attempt_at").is_none());

    // Another clinic: exactly like a job that does not exist.
    let other = app.token(&app.clinic_b, Role::Admin);
    let jobs_as_other = app.client(&jobs, &other);
    let hidden = jobs_as_other.get(&format!("/jobs/{id}")).await;
    let missing = jobs_as_other
        .get(&format!("/jobs/{}", JobId::new_random()))
        .await;
    assert_eq!(hidden.problem(404), missing.problem(404));
    assert_eq!(hidden.body["type"], "/problems/not-found");
}

#[tokio::test]
async fn a_repeated_request_with_the_same_idempotency_key_gets_the_same_job() {
    let app = TestApp::spawn().await;
    let enqueue = enqueue_router(app.state.clone());
    let a = app.token(&app.clinic_a, Role::Dentist);
    let enqueue_as_a = app.client(&enqueue, &a);
    let b = app.token(&app.clinic_b, Role::Dentist);
    let body = json!({"message": "once"});

    let first = job_id(&post_job(&enqueue_as_a, "echo", Some("key-1"), body.clone()).await);
    let again = job_id(&post_job(&enqueue_as_a, "echo", Some("key-1"), body.clone()).await);
    assert_eq!(first, again);
    // The IETF draft's quoted form is the same key.
    let quoted = job_id(&post_job(&enqueue_as_a, "echo", Some("\"key-1\""), body.clone()).await);
    assert_eq!(first, quoted);
    assert_eq!(app.count("jobs", app.clinic_a.id).await, 1);
    let sizes = app.state.queue.redis_sizes().await.unwrap();
    assert_eq!(sizes.ready, 1, "pushed once");

    // Keys are per clinic: another clinic's identical key is another job.
    let theirs = job_id(
        &post_job(
            &app.client(&enqueue, &b),
            "echo",
            Some("key-1"),
            body.clone(),
        )
        .await,
    );
    assert_ne!(first, theirs);

    // The same key for a different request (another job kind): 422, nothing written.
    let reused = post_job(&enqueue_as_a, "broken", Some("key-1"), body.clone()).await;
    let problem = reused.problem(422);
    assert_eq!(problem["type"], "/problems/validation");
    assert_eq!(problem["field"], "Idempotency-Key");
    assert_eq!(app.count("jobs", app.clinic_a.id).await, 1);

    // Without a key every request is a new job.
    post_job(&enqueue_as_a, "echo", None, body.clone()).await;
    post_job(&enqueue_as_a, "echo", None, body).await;
    assert_eq!(app.count("jobs", app.clinic_a.id).await, 3);
}

#[tokio::test]
async fn a_malformed_idempotency_key_is_a_400_naming_the_header() {
    let app = TestApp::spawn().await;
    let enqueue = enqueue_router(app.state.clone());
    let token = app.token(&app.clinic_a, Role::Dentist);
    let too_long = "k".repeat(256);
    for key in ["", "two words", too_long.as_str()] {
        let response = post_job(
            &app.client(&enqueue, &token),
            "echo",
            Some(key),
            json!({"message": "x"}),
        )
        .await;
        let problem = response.problem(400);
        assert_eq!(problem["field"], "Idempotency-Key", "{key:?}");
        assert_eq!(problem["type"], "/problems/bad-request");
    }
    assert_eq!(app.count("jobs", app.clinic_a.id).await, 0);
}

#[tokio::test]
async fn redis_down_at_enqueue_still_answers_202_and_the_sweep_dispatches_the_job_later() {
    let app = TestApp::spawn_with(TestOptions {
        redis_unreachable: true,
        env: vec![("JOB_SWEEP_GRACE_SECONDS", "0".into())],
        ..TestOptions::default()
    })
    .await;
    let enqueue = enqueue_router(app.state.clone());
    let jobs = shared::queue::router(app.state.clone());
    let token = app.token(&app.clinic_a, Role::Receptionist);
    let jobs_client = app.client(&jobs, &token);

    let started = std::time::Instant::now();
    let id = job_id(
        &post_job(
            &app.client(&enqueue, &token),
            "echo",
            None,
            json!({"message": "later"}),
        )
        .await,
    );
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "Redis being down does not stall it"
    );
    let queued = jobs_client.get(&format!("/jobs/{id}")).await;
    assert_eq!(queued.body["status"], "queued", "{}", queued.body);

    // Redis is back: the scheduler's sweep finds the job PostgreSQL has and Redis lacks.
    let system = app.system_state();
    let redis_config = shared::config::RedisConfig {
        url: shared::config::Secret::new(pulso_tests::redis_url()),
        ..system.config.redis.clone()
    };
    let redis = Arc::new(RedisConnector::new(&redis_config).unwrap());
    let healed = AppState {
        queue: Queue::new(redis.clone(), &system.keys, &system.config.queue),
        redis,
        ..system
    };
    let report = healed.queue.maintain(&healed.db).await.unwrap();
    assert_eq!(report.sweep.pushed, 1, "{report:?}");
    drain_jobs(healed, handlers()).await;

    let done = jobs_client.get(&format!("/jobs/{id}")).await;
    assert_eq!(done.body["status"], "succeeded", "{}", done.body);
    assert_eq!(done.body["result"]["echo"], "later");
}

/// The queue figures after two of clinic A's jobs and one of clinic B's died and one of A's
/// succeeded: this clinic's from PostgreSQL, counters from the workers.
async fn assert_dead_letter_figures(admin_as_admin_a: &Client, admin_as_platform: &Client) {
    let queues = admin_as_admin_a.get("/admin/queues").await;
    assert_eq!(queues.status, 200, "{}", queues.body);
    assert_eq!(queues.body["scope"], "clinic");
    assert_eq!(queues.body["dead"], 2);
    assert_eq!(queues.body["depth"], 0);
    assert_eq!(queues.body["processing"], 0);
    assert_eq!(queues.body["delayed"], 0);
    assert_eq!(queues.body["oldest_waiting_seconds"], Value::Null);
    assert_eq!(queues.body["counters"]["processed"], 1);
    assert_eq!(queues.body["counters"]["failed"], 2);
    assert_eq!(queues.body["counters"]["dead"], 2);
    assert!(
        queues.body.get("redis").is_none(),
        "shared structures: platform only"
    );
    let platform_queues = admin_as_platform.get("/admin/queues?scope=platform").await;
    assert_eq!(platform_queues.body["scope"], "platform");
    assert_eq!(platform_queues.body["dead"], 3);
    assert_eq!(platform_queues.body["counters"]["dead"], 3);
    assert_eq!(platform_queues.body["redis"]["reachable"], true);
    assert_eq!(platform_queues.body["redis"]["sizes"]["ready"], 0);
}

#[tokio::test]
async fn admins_list_the_dead_letter_queue_and_replay_a_job() {
    let app = TestApp::spawn().await;
    let enqueue = enqueue_router(app.state.clone());
    let admin = shared::admin::router(app.state.clone());
    let jobs = shared::queue::router(app.state.clone());
    let staff_a = app.token(&app.clinic_a, Role::Receptionist);
    let enqueue_as_staff_a = app.client(&enqueue, &staff_a);
    let staff_b = app.token(&app.clinic_b, Role::Receptionist);
    let admin_a = app.token(&app.clinic_a, Role::Admin);
    let admin_as_admin_a = app.client(&admin, &admin_a);
    let admin_b = app.token(&app.clinic_b, Role::Admin);

    let dead_a1 =
        job_id(&post_job(&enqueue_as_staff_a, "broken", None, json!({"message": "1"})).await);
    let dead_a2 =
        job_id(&post_job(&enqueue_as_staff_a, "broken", None, json!({"message": "2"})).await);
    let enqueue_as_staff_b = app.client(&enqueue, &staff_b);
    let dead_b =
        job_id(&post_job(&enqueue_as_staff_b, "broken", None, json!({"message": "3"})).await);
    let fine_a =
        job_id(&post_job(&enqueue_as_staff_a, "echo", None, json!({"message": "4"})).await);
    drain_jobs(app.system_state(), handlers()).await;

    let listed = admin_as_admin_a.get("/admin/jobs?status=dead").await;
    assert_eq!(listed.status, 200, "{}", listed.body);
    let ids: Vec<&str> = listed.body["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|job| job["id"].as_str().unwrap())
        .collect();
    assert_eq!(
        ids,
        vec![dead_a2.as_str(), dead_a1.as_str()],
        "newest first, own clinic only"
    );
    let item = &listed.body["items"][0];
    assert_eq!(item["status"], "dead");
    assert_eq!(item["last_error"], "the file does not decode");
    assert!(item.get("clinic_id").is_none());

    // Pages.
    let first = admin_as_admin_a
        .get("/admin/jobs?status=dead&limit=1")
        .await;
    assert_eq!(first.body["items"].as_array().unwrap().len(), 1);
    let cursor = first.body["next_cursor"].as_str().expect("a second page");
    let second = admin_as_admin_a
        .get(&format!("/admin/jobs?status=dead&limit=1&cursor={cursor}"))
        .await;
    assert_eq!(second.body["items"][0]["id"], dead_a1);
    assert_eq!(second.body["next_cursor"], Value::Null);

    // Every status when none is given.
    let all = admin_as_admin_a.get("/admin/jobs").await;
    assert_eq!(all.body["items"].as_array().unwrap().len(), 3);

    // A platform admin sees every clinic's, each with its clinic.
    let platform = app.platform_admin_token(&app.clinic_b);
    let admin_as_platform = app.client(&admin, &platform);
    let everyone = admin_as_platform
        .get("/admin/jobs?status=dead&scope=platform")
        .await;
    assert_eq!(everyone.status, 200, "{}", everyone.body);
    let clinics: Vec<&str> = everyone.body["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|job| job["clinic_id"].as_str().unwrap())
        .collect();
    assert_eq!(clinics.len(), 3);
    assert!(clinics.contains(&app.clinic_b.id.to_string().as_str()));
    let b_only = admin_as_platform.get("/admin/jobs?status=dead").await;
    assert_eq!(
        b_only.body["items"][0]["id"], dead_b,
        "default scope is the clinic"
    );

    assert_dead_letter_figures(&admin_as_admin_a, &admin_as_platform).await;

    // Replay: 202, queued again; runs on the next drain.
    let replayed = admin_as_admin_a
        .post_empty(&format!("/admin/jobs/{dead_a1}/retry"))
        .await;
    assert_eq!(replayed.status, 202, "{}", replayed.body);
    assert_eq!(replayed.body["status"], "queued");
    assert_eq!(replayed.body["attempts"], 0);
    assert_eq!(replayed.body["replays"], 1);
    assert_eq!(
        replayed.headers.get(header::LOCATION).unwrap(),
        &format!("/jobs/{dead_a1}")
    );
    let waiting = admin_as_admin_a.get("/admin/queues").await;
    assert_eq!(waiting.body["depth"], 1);
    assert!(waiting.body["oldest_waiting_seconds"].as_f64().unwrap() >= 0.0);
    drain_jobs(app.system_state(), handlers()).await;
    let after = app
        .client(&jobs, &staff_a)
        .get(&format!("/jobs/{dead_a1}"))
        .await;
    assert_eq!(after.body["status"], "dead", "still broken: dead again");
    assert_eq!(after.body["replays"], 1);

    // Another clinic's admin: 404, and the job is untouched.
    let foreign = app
        .client(&admin, &admin_b)
        .post_empty(&format!("/admin/jobs/{dead_a2}/retry"))
        .await;
    foreign.problem(404);
    // A job that is not dead or failed: 409.
    let not_dead = admin_as_admin_a
        .post_empty(&format!("/admin/jobs/{fine_a}/retry"))
        .await;
    let problem = not_dead.problem(409);
    assert_eq!(problem["type"], "/problems/job-not-replayable");
    assert!(problem["detail"].as_str().unwrap().contains("succeeded"));
}

#[tokio::test]
async fn bad_input_and_wrong_callers_get_problem_json() {
    let app = TestApp::spawn().await;
    let enqueue = enqueue_router(app.state.clone());
    let admin = shared::admin::router(app.state.clone());
    let jobs = shared::queue::router(app.state.clone());
    let staff = app.token(&app.clinic_a, Role::Dentist);
    let enqueue_as_staff = app.client(&enqueue, &staff);
    let jobs_as_staff = app.client(&jobs, &staff);
    let admin_as_staff = app.client(&admin, &staff);
    let admin_a = app.token(&app.clinic_a, Role::Admin);
    let admin_as_admin_a = app.client(&admin, &admin_a);

    let bad_id = jobs_as_staff.get("/jobs/not-a-uuid").await;
    assert_eq!(bad_id.problem(400)["field"], "id");
    let anonymous = app
        .anonymous(&jobs)
        .get(&format!("/jobs/{}", JobId::new_random()))
        .await;
    anonymous.problem(401);
    let wrong_method = jobs_as_staff
        .delete(&format!("/jobs/{}", JobId::new_random()))
        .await;
    wrong_method.problem(405);

    for (uri, field) in [
        ("/admin/jobs?status=lost", "status"),
        ("/admin/jobs?limit=0", "limit"),
        ("/admin/jobs?cursor=garbage", "cursor"),
        ("/admin/jobs?colour=red", "colour"),
        ("/admin/queues?scope=galaxy", "scope"),
    ] {
        let response = admin_as_admin_a.get(uri).await;
        assert_eq!(response.problem(400)["field"], field, "{uri}");
    }
    for uri in ["/admin/jobs", "/admin/queues"] {
        let response = admin_as_staff.get(uri).await;
        response.problem(403);
        let platform = admin_as_admin_a.get(&format!("{uri}?scope=platform")).await;
        platform.problem(403);
    }
    let retry_by_staff = admin_as_staff
        .post_empty(&format!("/admin/jobs/{}/retry", JobId::new_random()))
        .await;
    retry_by_staff.problem(403);
    let retry_missing = admin_as_admin_a
        .post_empty(&format!("/admin/jobs/{}/retry", JobId::new_random()))
        .await;
    retry_missing.problem(404);
    let retry_bad_id = admin_as_admin_a.post_empty("/admin/jobs/nope/retry").await;
    assert_eq!(retry_bad_id.problem(400)["field"], "id");

    // The enqueueing route's body: the queue writes nothing for a rejected request.
    let unknown_field = post_job(
        &enqueue_as_staff,
        "echo",
        None,
        json!({"message": "x", "extra": 1}),
    )
    .await;
    assert_eq!(unknown_field.problem(422)["field"], "extra");
    let not_json = enqueue_as_staff
        .send_bytes(Method::POST, "/test/echo", Some("application/json"), "{")
        .await;
    not_json.problem(400);
    assert_eq!(app.count("jobs", app.clinic_a.id).await, 0);
}

#[tokio::test]
async fn postgres_down_at_enqueue_is_a_503_with_retry_after() {
    let app = TestApp::spawn_with(TestOptions {
        database_unreachable: true,
        ..TestOptions::default()
    })
    .await;
    let enqueue = enqueue_router(app.state.clone());
    let jobs = shared::queue::router(app.state.clone());
    let token = app.token(&app.clinic_a, Role::Dentist);
    let refused = post_job(
        &app.client(&enqueue, &token),
        "echo",
        None,
        json!({"message": "x"}),
    )
    .await;
    refused.problem(503);
    assert!(refused.headers.get(header::RETRY_AFTER).is_some());
    let status = app
        .client(&jobs, &token)
        .get(&format!("/jobs/{}", JobId::new_random()))
        .await;
    status.problem(503);
}
