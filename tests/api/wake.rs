//! The worker woken on demand (`shared::queue::presence`), through the real `aws-sdk-lambda`
//! client against a stand-in of Lambda's Invoke API: a burst of enqueues wakes one drain; a
//! woken drain runs the jobs, leaves when idle and the next enqueue wakes another; no job falls
//! between a drain leaving and an enqueue; a backlog wakes more drains, never more than the
//! most; a drain at its deadline hands over; a wake that cannot be sent is tried again only once
//! it lapses; the maintenance wakes the worker for jobs left ready.

use pulso_tests::lambda::{LambdaStandIn, WORKER_FUNCTION};
use pulso_tests::{TestApp, TestOptions, drain_jobs};
use redis::AsyncCommands;
use serde_json::{Value, json};
use shared::ids::{ClinicId, JobId};
use shared::queue::{JobKind, Leaving, Left, NewJob, StopReason};
use shared::worker::{Handlers, Worker};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;
use tokio::time::Instant;

/// Sleeps for its payload's `ms`.
const NAP: JobKind = JobKind::new("test.nap");

fn handlers(runs: &Arc<AtomicUsize>) -> Handlers {
    let runs = runs.clone();
    Handlers::new().on(NAP, move |_, job| {
        let runs = runs.clone();
        async move {
            let ms = job.payload["ms"].as_u64().unwrap_or(0);
            tokio::time::sleep(Duration::from_millis(ms)).await;
            runs.fetch_add(1, Ordering::SeqCst);
            Ok(json!({}))
        }
    })
}

/// An app that wakes its worker on `lambda`, with a 1 s idle stop and `env` on top.
async fn spawn(lambda: &LambdaStandIn, env: &[(&'static str, &str)]) -> TestApp {
    let mut vars = lambda.env();
    vars.push(("WORKER_IDLE_STOP_SECONDS", "1".into()));
    vars.extend(env.iter().map(|(name, value)| (*name, (*value).to_owned())));
    TestApp::spawn_with(TestOptions {
        env: vars,
        ..TestOptions::default()
    })
    .await
}

/// Makes every invocation of `lambda` a drain of the app's worker, as Lambda would run it
/// (a 60 s deadline); each drain's stop is kept.
fn run_worker_on(lambda: &LambdaStandIn, app: &TestApp, runs: &Arc<AtomicUsize>) -> Reports {
    let worker = Worker::new(app.system_state(), handlers(runs));
    let reports = Reports::default();
    let kept = reports.clone();
    lambda.run_with(move |payload: Value| {
        let worker = worker.clone();
        let kept = kept.clone();
        async move {
            let deadline = chrono::Utc::now() + Duration::from_secs(60);
            let report = worker
                .invocation(deadline.timestamp_millis() as u64, &payload)
                .await;
            kept.0.lock().unwrap().push(report.stopped_by);
        }
    });
    reports
}

#[derive(Clone, Default)]
struct Reports(Arc<std::sync::Mutex<Vec<StopReason>>>);

impl Reports {
    fn stops(&self) -> Vec<StopReason> {
        self.0.lock().unwrap().clone()
    }
}

async fn enqueue(app: &TestApp, clinic: ClinicId, ms: u64) {
    app.state
        .queue
        .enqueue(
            &app.state.db,
            clinic,
            NewJob {
                kind: NAP,
                payload: json!({"ms": ms}),
                idempotency_key: None,
                created_by: None,
                max_attempts: None,
            },
        )
        .await
        .expect("enqueue");
}

/// Waits until `done` holds (a failure after 15 s: something never happened, not a timing).
async fn until(what: &str, mut done: impl AsyncFnMut() -> bool) {
    let give_up = Instant::now() + Duration::from_secs(15);
    while !done().await {
        assert!(Instant::now() < give_up, "never: {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

async fn waking(app: &TestApp) -> Option<String> {
    let mut redis = app.redis().await;
    redis
        .get(&app.state.queue.keys().waking)
        .await
        .expect("read waking")
}

#[tokio::test]
async fn a_burst_of_enqueues_with_no_drain_alive_wakes_the_worker_once() {
    let lambda = LambdaStandIn::start().await;
    let app = spawn(&lambda, &[]).await;
    for _ in 0..5 {
        enqueue(&app, app.clinic_a.id, 0).await;
    }

    let invoked = lambda.invocations();
    assert_eq!(invoked.len(), 1, "{invoked:?}");
    assert_eq!(invoked[0].function, WORKER_FUNCTION);
    assert_eq!(invoked[0].invocation_type.as_deref(), Some("Event"));
    assert_eq!(invoked[0].payload["source"], "pulso.queue");
    assert_eq!(invoked[0].payload["reason"], "enqueue");
    // The wake in flight is the one sent: the woken drain clears it when it joins.
    let token = invoked[0].payload["wake"].as_str().expect("a token");
    assert_eq!(waking(&app).await.as_deref(), Some(token));
}

#[tokio::test]
async fn a_woken_drain_runs_the_jobs_leaves_when_idle_and_the_next_enqueue_wakes_another() {
    let lambda = LambdaStandIn::start().await;
    let app = spawn(&lambda, &[]).await;
    let runs = Arc::new(AtomicUsize::new(0));
    let reports = run_worker_on(&lambda, &app, &runs);
    let queue = app.state.queue.clone();

    for _ in 0..3 {
        enqueue(&app, app.clinic_a.id, 0).await;
    }
    until("the woken drain ran the three jobs", async || {
        runs.load(Ordering::SeqCst) == 3
    })
    .await;
    assert_eq!(queue.drains_alive().await.unwrap(), 1);
    assert_eq!(waking(&app).await, None, "the drain cleared its wake");
    // While it is alive, an enqueue wakes nobody: the drain takes the job.
    enqueue(&app, app.clinic_b.id, 0).await;
    until(
        "the drain ran the job enqueued while it was alive",
        async || runs.load(Ordering::SeqCst) == 4,
    )
    .await;
    until("the drain left after its idle stop", async || {
        queue.drains_alive().await.unwrap() == 0
    })
    .await;
    until("its invocation returned", async || {
        !reports.stops().is_empty()
    })
    .await;
    assert_eq!(reports.stops(), vec![StopReason::Idle]);
    assert_eq!(lambda.reasons(), vec!["enqueue"]);

    enqueue(&app, app.clinic_a.id, 0).await;
    until("a new drain ran the job", async || {
        runs.load(Ordering::SeqCst) == 5
    })
    .await;
    assert_eq!(lambda.reasons(), vec!["enqueue", "enqueue"]);
}

#[tokio::test]
async fn no_job_falls_between_a_drain_leaving_and_an_enqueue() {
    let lambda = LambdaStandIn::start().await;
    let app = spawn(&lambda, &[]).await;
    let queue = &app.state.queue;

    // The enqueue comes first: it sees the drain alive and wakes nobody, so the leaving drain
    // sees the job and stays.
    let drain = queue.join(None, Some(3), true).await.unwrap().expect("in");
    enqueue(&app, app.clinic_a.id, 0).await;
    assert!(lambda.invocations().is_empty());
    assert_eq!(
        queue.leave(&drain, Leaving::Idle).await.unwrap(),
        Left::Stayed
    );
    assert_eq!(queue.drains_alive().await.unwrap(), 1);
    // At its deadline it cannot stay: it hands over to a new drain.
    assert_eq!(
        queue.leave(&drain, Leaving::Deadline).await.unwrap(),
        Left::HandedOver
    );
    assert_eq!(lambda.reasons(), vec!["handover"]);

    // With nothing left the drain is gone, and the next enqueue wakes a worker.
    let runs = Arc::new(AtomicUsize::new(0));
    drain_jobs(app.system_state(), handlers(&runs)).await;
    let arrived = lambda.invocations()[0].payload["wake"].clone();
    let drain = queue
        .join(arrived.as_str(), Some(3), true)
        .await
        .unwrap()
        .expect("in");
    assert_eq!(
        queue.leave(&drain, Leaving::Idle).await.unwrap(),
        Left::Gone
    );
    enqueue(&app, app.clinic_a.id, 0).await;
    assert_eq!(lambda.reasons(), vec!["handover", "enqueue"]);
}

#[tokio::test]
async fn an_invocation_beyond_the_most_drains_leaves_at_once() {
    let lambda = LambdaStandIn::start().await;
    let app = spawn(&lambda, &[("WORKER_MAX_DRAINS", "2")]).await;
    let queue = &app.state.queue;
    let _first = queue.join(None, Some(2), true).await.unwrap().expect("in");
    let _second = queue.join(None, Some(2), true).await.unwrap().expect("in");
    assert!(queue.join(None, Some(2), true).await.unwrap().is_none());

    let runs = Arc::new(AtomicUsize::new(0));
    let worker = Worker::new(app.system_state(), handlers(&runs));
    let deadline = chrono::Utc::now() + Duration::from_secs(60);
    let report = worker
        .invocation(deadline.timestamp_millis() as u64, &json!({}))
        .await;
    assert_eq!(report.stopped_by, StopReason::Covered);
    assert_eq!(queue.drains_alive().await.unwrap(), 2);
}

#[tokio::test]
async fn a_backlog_wakes_more_drains_but_never_more_than_the_most() {
    let lambda = LambdaStandIn::start().await;
    let app = spawn(
        &lambda,
        &[("WORKER_CONCURRENCY", "1"), ("WORKER_MAX_DRAINS", "2")],
    )
    .await;
    let runs = Arc::new(AtomicUsize::new(0));
    let _reports = run_worker_on(&lambda, &app, &runs);
    for _ in 0..8 {
        enqueue(&app, app.clinic_a.id, 200).await;
    }
    let mut most_alive = 0;
    until("eight jobs ran", async || {
        most_alive = most_alive.max(app.state.queue.drains_alive().await.unwrap());
        runs.load(Ordering::SeqCst) == 8
    })
    .await;
    assert_eq!(most_alive, 2, "{:?}", lambda.reasons());
    let reasons = lambda.reasons();
    assert_eq!(reasons[0], "enqueue");
    assert!(
        reasons.iter().any(|reason| reason == "backlog"),
        "{reasons:?}"
    );
}

#[tokio::test]
async fn a_drain_at_its_deadline_with_work_left_hands_over_to_the_next() {
    let lambda = LambdaStandIn::start().await;
    let app = spawn(
        &lambda,
        &[
            ("WORKER_CONCURRENCY", "1"),
            ("WORKER_MAX_DRAINS", "1"),
            ("WORKER_DEADLINE_MARGIN_SECONDS", "1"),
        ],
    )
    .await;
    let runs = Arc::new(AtomicUsize::new(0));
    for _ in 0..30 {
        enqueue(&app, app.clinic_a.id, 100).await;
    }
    // The enqueues' wake arrives; the drain has a second to claim (its deadline is 2 s away,
    // its margin 1 s).
    let wake = lambda.invocations()[0].payload.clone();
    let worker = Worker::new(app.system_state(), handlers(&runs));
    let deadline = chrono::Utc::now() + Duration::from_secs(2);
    let report = worker
        .invocation(deadline.timestamp_millis() as u64, &wake)
        .await;
    assert_eq!(report.stopped_by, StopReason::Deadline);
    assert_eq!(report.woke, 1, "{report:?}");
    assert!(runs.load(Ordering::SeqCst) < 30);
    assert_eq!(lambda.reasons(), vec!["enqueue", "handover"]);
}

#[tokio::test]
async fn a_wake_that_cannot_be_sent_is_tried_once_per_lapse_and_the_job_waits_in_the_queue() {
    let app = TestApp::spawn_with(TestOptions {
        env: vec![
            ("WORKER_FUNCTION_NAME", WORKER_FUNCTION.into()),
            ("LAMBDA_ENDPOINT_URL", "http://127.0.0.1:1".into()),
            ("AWS_REGION", "us-east-1".into()),
        ],
        ..TestOptions::default()
    })
    .await;
    enqueue(&app, app.clinic_a.id, 0).await;
    let failed = waking(&app)
        .await
        .expect("the failed wake stays in flight until it lapses");
    // The next enqueue does not try (and wait for) another: one try per lapse, not per request.
    enqueue(&app, app.clinic_b.id, 0).await;
    assert_eq!(waking(&app).await, Some(failed));
    assert_eq!(app.state.queue.redis_sizes().await.unwrap().ready, 2);
}

#[tokio::test]
async fn the_maintenance_wakes_the_worker_for_jobs_ready_with_no_drain_alive() {
    let lambda = LambdaStandIn::start().await;
    let app = spawn(&lambda, &[]).await;
    // Ready in Redis without an enqueue's wake (as after a lost wake).
    let ids = [(JobId::new_random(), app.clinic_a.id)];
    app.state.queue.push_ready(&ids, NAP).await.unwrap();
    assert!(lambda.invocations().is_empty());

    let system = app.system_state();
    app.state.queue.maintain(&system.db).await.unwrap();
    assert_eq!(lambda.reasons(), vec!["maintenance"]);
    app.state.queue.maintain(&system.db).await.unwrap();
    assert_eq!(
        lambda.reasons(),
        vec!["maintenance"],
        "one wake in flight at a time"
    );
}

/// One step of the property below.
#[derive(Clone, Debug)]
enum Step {
    /// A job of clinic A or B is enqueued (and its wake checked).
    Enqueue { clinic_b: bool },
    /// A drain joins on its own (a stray invocation).
    Join,
    /// The wake in flight arrives: a drain joins with its token.
    Arrive,
    /// Drain `drain` (among those joined) leaves: idle, or at its deadline.
    Leave { drain: usize, deadline: bool },
    /// A drain alive claims up to `most` jobs.
    Claim { most: usize },
}

fn step() -> impl proptest::strategy::Strategy<Value = Step> {
    use proptest::prelude::*;
    prop_oneof![
        3 => any::<bool>().prop_map(|clinic_b| Step::Enqueue { clinic_b }),
        1 => Just(Step::Join),
        2 => Just(Step::Arrive),
        3 => (0..4_usize, any::<bool>()).prop_map(|(drain, deadline)| Step::Leave { drain, deadline }),
        2 => (1..4_usize).prop_map(|most| Step::Claim { most }),
    ]
}

/// Whatever the interleaving of enqueues, arrivals, leaves and claims, work that is ready always
/// has a drain alive or a wake on its way to it: no job waits for the maintenance unless a
/// drain crashed or a wake was lost (what the maintenance is for).
#[test]
fn ready_work_always_has_a_drain_alive_or_a_wake_on_its_way() {
    use proptest::test_runner::{Config, TestRunner};
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let (lambda, app) = runtime.block_on(async {
        let lambda = LambdaStandIn::start().await;
        let app = spawn(&lambda, &[]).await;
        (lambda, app)
    });
    let mut runner = TestRunner::new(Config {
        cases: 48,
        failure_persistence: None,
        ..Config::default()
    });
    runner
        .run(&proptest::collection::vec(step(), 1..30), |steps| {
            runtime.block_on(play(&app, &steps));
            Ok(())
        })
        .unwrap();
    assert!(
        !lambda.invocations().is_empty(),
        "the scenarios woke workers"
    );
}

async fn play(app: &TestApp, steps: &[Step]) {
    use shared::queue::Presence;
    let queue = &app.state.queue;
    let system = app.system_state();
    let mut drains: Vec<Presence> = Vec::new();
    for step in steps {
        match step {
            Step::Enqueue { clinic_b } => {
                let clinic = if *clinic_b {
                    app.clinic_b.id
                } else {
                    app.clinic_a.id
                };
                enqueue(app, clinic, 0).await;
            }
            Step::Join => drains.extend(queue.join(None, Some(3), true).await.unwrap()),
            Step::Arrive => {
                if let Some(token) = waking(app).await {
                    drains.extend(queue.join(Some(&token), Some(3), true).await.unwrap());
                }
            }
            Step::Leave { drain, deadline } => {
                if !drains.is_empty() {
                    let presence = drains.remove(drain % drains.len());
                    let leaving = if *deadline {
                        Leaving::Deadline
                    } else {
                        Leaving::Idle
                    };
                    if queue.leave(&presence, leaving).await.unwrap() == Left::Stayed {
                        drains.push(presence);
                    }
                }
            }
            Step::Claim { most } => {
                if !drains.is_empty() {
                    queue
                        .claim(&system.db, *most, &pulso_tests::any_room())
                        .await
                        .unwrap();
                }
            }
        }
        let ready = queue.redis_sizes().await.unwrap().ready;
        let alive = queue.drains_alive().await.unwrap();
        assert!(
            ready == 0 || alive > 0 || waking(app).await.is_some(),
            "{ready} jobs ready, no drain alive and no wake on its way after {step:?} in {steps:?}"
        );
    }
    // The next scenario starts with nothing ready and no drain.
    while queue.redis_sizes().await.unwrap().ready > 0 {
        queue
            .claim(&system.db, 1_000, &pulso_tests::any_room())
            .await
            .unwrap();
    }
    for presence in &drains {
        queue.leave(presence, Leaving::Quit).await.unwrap();
    }
    let mut redis = app.redis().await;
    let _: () = redis.del(&queue.keys().waking).await.unwrap();
}
