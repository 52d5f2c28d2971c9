//! Fair queueing across clinics (`shared::queue`'s `claim.lua` and `ready.lua`) against the real
//! PostgreSQL and Redis: a clinic that had nothing waiting is served by the next claim, then
//! claims go round the clinics with ready work, one job per clinic per turn, oldest first within
//! a clinic; a clinic's backlog does not hold another's job back; and over random sequences of
//! enqueues and claims the queue does exactly what a model of the two lists does.

use proptest::prelude::*;
use proptest::test_runner::{Config as ProptestConfig, TestRunner};
use pulso_tests::{TestApp, TestOptions, any_room};
use serde_json::Value;
use shared::ids::{ClinicId, JobId};
use shared::queue::{ClaimRoom, Drain, DrainReport, JobKind, NewJob};
use shared::worker::{Handlers, Worker};
use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::Duration;

const FAIR: JobKind = JobKind::new("test.fair");

fn job() -> NewJob {
    NewJob {
        kind: FAIR,
        payload: Value::Null,
        idempotency_key: None,
        created_by: None,
        max_attempts: None,
    }
}

async fn enqueue(app: &TestApp, clinic: ClinicId) -> JobId {
    app.state
        .queue
        .enqueue(&app.state.db, clinic, job())
        .await
        .expect("enqueue")
        .id
}

/// Enqueues `count` jobs of `clinic` in one statement and pushes them, as that many enqueues
/// would (the proptest cases and the big backlog need hundreds quickly).
async fn enqueue_many(app: &TestApp, clinic: ClinicId, count: usize) -> Vec<JobId> {
    let mut tx = app.owner_tx(clinic).await;
    let ids: Vec<JobId> = sqlx::query_scalar(
        "INSERT INTO jobs (clinic_id, kind) SELECT $1, $2 FROM generate_series(1, $3) RETURNING id",
    )
    .bind(clinic)
    .bind(FAIR.as_str())
    .bind(count as i64)
    .fetch_all(&mut *tx)
    .await
    .expect("insert jobs");
    tx.commit().await.expect("commit");
    let jobs: Vec<_> = ids.iter().map(|&id| (id, clinic)).collect();
    app.state.queue.push_ready(&jobs, FAIR).await.expect("push");
    ids
}

/// The jobs one claim of at most `most` took, with their clinics, sorted: a claim's jobs all
/// start at once, so which jobs it took is what fairness is about, not their order.
async fn claim(app: &TestApp, most: usize) -> Vec<(ClinicId, JobId)> {
    let system = app.system_state();
    let claim = app
        .state
        .queue
        .claim(&system.db, most, &any_room())
        .await
        .expect("claim");
    assert_eq!((claim.duplicates, claim.exhausted), (0, 0));
    let mut taken: Vec<_> = claim
        .leases
        .iter()
        .map(|lease| (lease.job.clinic, lease.job.id))
        .collect();
    taken.sort();
    taken
}

/// Drains until the queue is idle (at most a minute).
async fn drain_until_idle(worker: Worker) -> DrainReport {
    worker
        .drain(
            Drain {
                stop_at: Some(tokio::time::Instant::now() + Duration::from_secs(60)),
                finish_by: None,
                stop_when_idle: true,
                ..Drain::default()
            },
            std::future::pending(),
        )
        .await
}

fn sorted(jobs: &[(ClinicId, JobId)]) -> Vec<(ClinicId, JobId)> {
    let mut jobs = jobs.to_vec();
    jobs.sort();
    jobs
}

#[tokio::test]
async fn claims_take_one_job_per_clinic_per_turn_oldest_first() {
    let app = TestApp::spawn().await;
    let (a, b) = (app.clinic_a.id, app.clinic_b.id);
    let c = app.add_clinic("clinic-c").await.id;
    let mut a_jobs = Vec::new();
    for _ in 0..5 {
        a_jobs.push(enqueue(&app, a).await);
    }
    let b_jobs = [enqueue(&app, b).await, enqueue(&app, b).await];
    let c_job = enqueue(&app, c).await;

    let sizes = app.state.queue.redis_sizes().await.unwrap();
    assert_eq!((sizes.ready, sizes.ready_clinics, sizes.known), (8, 3, 8));

    let turns = [
        (a, a_jobs[0]),
        (b, b_jobs[0]),
        (c, c_job),
        (a, a_jobs[1]),
        (b, b_jobs[1]),
        (a, a_jobs[2]),
        (a, a_jobs[3]),
        (a, a_jobs[4]),
    ];
    // Claims of one job show the order of the turns: A, B, C; then one claim takes the rest.
    for turn in &turns[..3] {
        assert_eq!(claim(&app, 1).await, vec![*turn]);
    }
    assert_eq!(claim(&app, 8).await, sorted(&turns[3..]));
    let sizes = app.state.queue.redis_sizes().await.unwrap();
    assert_eq!(
        (sizes.ready, sizes.ready_clinics, sizes.processing),
        (0, 0, 8)
    );
    assert!(claim(&app, 8).await.is_empty());
}

#[tokio::test]
async fn a_clinic_that_had_nothing_waiting_is_served_by_the_next_claim() {
    let app = TestApp::spawn().await;
    let (a, b) = (app.clinic_a.id, app.clinic_b.id);
    let c = app.add_clinic("clinic-c").await.id;
    let a_jobs = enqueue_many(&app, a, 4).await;
    assert_eq!(claim(&app, 1).await, vec![(a, a_jobs[0])]);
    // B and then C arrive while A still waits: they are next, in their order, then A again.
    let b_job = enqueue(&app, b).await;
    let c_job = enqueue(&app, c).await;
    assert_eq!(claim(&app, 1).await, vec![(b, b_job)]);
    assert_eq!(claim(&app, 1).await, vec![(c, c_job)]);
    assert_eq!(claim(&app, 1).await, vec![(a, a_jobs[1])]);
    // B again, with two jobs: its first goes before A's next, its second after.
    let b_jobs = enqueue_many(&app, b, 2).await;
    assert_eq!(
        claim(&app, 2).await,
        sorted(&[(b, b_jobs[0]), (a, a_jobs[2])])
    );
    assert_eq!(
        claim(&app, 2).await,
        sorted(&[(b, b_jobs[1]), (a, a_jobs[3])])
    );
}

/// The case: clinic A has 500 jobs waiting, then clinic B enqueues one; B's job starts
/// within the next `WORKER_CONCURRENCY` jobs started (FIFO, it would have been the 501st).
#[tokio::test]
async fn one_job_of_a_clinic_starts_within_a_claim_of_another_clinics_500() {
    const CONCURRENCY: usize = 4;
    let app = TestApp::spawn_with(TestOptions {
        env: vec![
            ("WORKER_CONCURRENCY", CONCURRENCY.to_string()),
            ("WORKER_BATCH", CONCURRENCY.to_string()),
        ],
        ..TestOptions::default()
    })
    .await;
    enqueue_many(&app, app.clinic_a.id, 500).await;
    let b_job = enqueue(&app, app.clinic_b.id).await;

    let started: Arc<Mutex<Vec<JobId>>> = Arc::default();
    let seen = started.clone();
    let worker = Worker::new(
        app.system_state(),
        Handlers::new().on(FAIR, move |_, job| {
            seen.lock().unwrap().push(job.id);
            async { Ok(Value::Null) }
        }),
    );
    let drained = drain_until_idle(worker).await;
    assert_eq!(drained.succeeded, 501, "{drained:?}");
    let started = started.lock().unwrap();
    let position = started.iter().position(|id| *id == b_job).expect("B ran");
    assert!(
        position < CONCURRENCY,
        "B's job was started {}th of {}",
        position + 1,
        started.len()
    );
}

const HEAVY: JobKind = JobKind::new("test.heavy").with_peak_memory_mib(151);

/// Stages a job of `kind` for `clinic`.
async fn enqueue_kind(app: &TestApp, clinic: ClinicId, kind: JobKind) -> JobId {
    let job = NewJob { kind, ..job() };
    app.state
        .queue
        .enqueue(&app.state.db, clinic, job)
        .await
        .expect("enqueue")
        .id
}

async fn claim_in(app: &TestApp, most: usize, free_mib: u32) -> (Vec<JobId>, bool) {
    let room = ClaimRoom {
        free_mib,
        budget_mib: 614,
        ..any_room()
    };
    let claim = app
        .state
        .queue
        .claim(&app.system_state().db, most, &room)
        .await
        .expect("claim");
    let mut ids: Vec<JobId> = claim.leases.iter().map(|lease| lease.job.id).collect();
    ids.sort();
    (ids, claim.left_for_room)
}

#[tokio::test]
async fn a_claim_takes_only_what_fits_and_passes_over_a_clinic_whose_next_job_does_not() {
    let app = TestApp::spawn().await;
    let (a, b) = (app.clinic_a.id, app.clinic_b.id);
    let c = app.add_clinic("clinic-c").await.id;
    let mut a_heavy = Vec::new();
    for _ in 0..3 {
        a_heavy.push(enqueue_kind(&app, a, HEAVY).await);
    }
    let b_heavy = enqueue_kind(&app, b, HEAVY).await;
    let b_light = [enqueue(&app, b).await, enqueue(&app, b).await];
    let c_light = [enqueue(&app, c).await, enqueue(&app, c).await];

    // 400 MiB: A's and B's first heavy jobs (302), then A's next no longer fits while every
    // light job still does; A waits, the rest goes.
    let (taken, left_for_memory) = claim_in(&app, 10, 400).await;
    let mut expected = vec![
        a_heavy[0], b_heavy, b_light[0], b_light[1], c_light[0], c_light[1],
    ];
    expected.sort();
    assert_eq!(taken, expected);
    assert!(left_for_memory, "A's heavy jobs are still ready");
    // Each lease carries what it was counted for.
    let sizes = app.state.queue.redis_sizes().await.unwrap();
    assert_eq!((sizes.ready, sizes.ready_clinics), (2, 1));

    assert_eq!(claim_in(&app, 10, 150).await, (vec![], true));
    assert_eq!(claim_in(&app, 10, 151).await, (vec![a_heavy[1]], true));
    // A job heavier than the budget counts as the budget: with all of it free, it goes.
    assert_eq!(claim_in(&app, 10, 614).await.0, vec![a_heavy[2]]);
    assert_eq!(claim_in(&app, 10, 614).await, (vec![], false));
}

/// Heavy jobs of clinic A (100 MiB each in a 307 MiB budget: three at a time), light jobs of
/// clinic C, and one heavy job of clinic B enqueued once A's first three run: the heavy ones
/// never exceed the budget, the light ones run beside them, and B's starts as soon as memory
/// frees (when
/// claimed jobs queued for memory in the worker, it started after all of A's).
#[tokio::test]
async fn heavy_jobs_stay_in_the_budget_and_another_clinics_heavy_job_is_next() {
    const HUNDRED: JobKind = JobKind::new("test.hundred").with_peak_memory_mib(100);
    let app = TestApp::spawn_with(TestOptions {
        env: vec![("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "512".into())],
        ..TestOptions::default()
    })
    .await;
    assert_eq!(app.state.config.queue.worker_memory_budget_mib, 307);
    let c = app.add_clinic("clinic-c").await.id;
    let mut a_jobs = Vec::new();
    for _ in 0..9 {
        a_jobs.push(enqueue_kind(&app, app.clinic_a.id, HUNDRED).await);
    }
    for _ in 0..20 {
        enqueue(&app, c).await;
    }

    #[derive(Default)]
    struct Seen {
        heavy_running: usize,
        most_heavy: usize,
        heavy_started: Vec<JobId>,
        light_beside_heavy: usize,
    }
    let seen: Arc<Mutex<Seen>> = Arc::default();
    let (heavy_seen, light_seen) = (seen.clone(), seen.clone());
    let worker = Worker::new(
        app.system_state(),
        Handlers::new()
            .on(HUNDRED, move |_, job| {
                let seen = heavy_seen.clone();
                async move {
                    {
                        let mut seen = seen.lock().unwrap();
                        seen.heavy_running += 1;
                        seen.most_heavy = seen.most_heavy.max(seen.heavy_running);
                        seen.heavy_started.push(job.id);
                    }
                    tokio::time::sleep(Duration::from_millis(150)).await;
                    seen.lock().unwrap().heavy_running -= 1;
                    Ok(Value::Null)
                }
            })
            .on(FAIR, move |_, _| {
                let seen = light_seen.clone();
                async move {
                    let mut seen = seen.lock().unwrap();
                    if seen.heavy_running > 0 {
                        seen.light_beside_heavy += 1;
                    }
                    Ok(Value::Null)
                }
            }),
    );
    let draining = tokio::spawn(drain_until_idle(worker));
    while seen.lock().unwrap().heavy_running < 3 {
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    let b_job = enqueue_kind(&app, app.clinic_b.id, HUNDRED).await;
    let drained = draining.await.expect("drain");
    assert_eq!(drained.succeeded, 30, "{drained:?}");
    let seen = seen.lock().unwrap();
    assert_eq!(
        seen.most_heavy, 3,
        "three 100 MiB jobs fit in 307 MiB, four do not"
    );
    let b_position = seen.heavy_started.iter().position(|id| *id == b_job);
    // The first claim with room for a heavy job takes B's first; it may take two of A's with
    // it (three fit), whose handlers may be seen starting first: B is among the first six.
    assert!(
        b_position.is_some_and(|position| position <= 5),
        "B's heavy job started {b_position:?}th of {:?}",
        seen.heavy_started.len()
    );
    assert!(
        seen.light_beside_heavy > 0,
        "light jobs ran beside heavy ones"
    );
}

/// Clinic A's backlog of slow jobs takes at most its share of the slots (7 of 8): clinic B's
/// job, enqueued once A's fill them, starts at once, before any of A's has ended.
#[tokio::test]
async fn a_clinics_backlog_leaves_a_slot_for_another_clinics_job() {
    const SLOW: JobKind = JobKind::new("test.slow_fair");
    let app = TestApp::spawn_with(TestOptions {
        env: vec![
            ("WORKER_CONCURRENCY", "8".into()),
            ("WORKER_BATCH", "8".into()),
        ],
        ..TestOptions::default()
    })
    .await;
    for _ in 0..30 {
        enqueue_kind(&app, app.clinic_a.id, SLOW).await;
    }
    #[derive(Default)]
    struct Seen {
        a_running: usize,
        a_most: usize,
        a_ended: usize,
        b_started_after_a_ended: Option<usize>,
    }
    let seen: Arc<Mutex<Seen>> = Arc::default();
    let (a_seen, b_seen) = (seen.clone(), seen.clone());
    let worker = Worker::new(
        app.system_state(),
        Handlers::new()
            .on(SLOW, move |_, _| {
                let seen = a_seen.clone();
                async move {
                    {
                        let mut seen = seen.lock().unwrap();
                        seen.a_running += 1;
                        seen.a_most = seen.a_most.max(seen.a_running);
                    }
                    tokio::time::sleep(Duration::from_millis(300)).await;
                    let mut seen = seen.lock().unwrap();
                    seen.a_running -= 1;
                    seen.a_ended += 1;
                    Ok(Value::Null)
                }
            })
            .on(FAIR, move |_, _| {
                let mut seen = b_seen.lock().unwrap();
                seen.b_started_after_a_ended = Some(seen.a_ended);
                async { Ok(Value::Null) }
            }),
    );
    let draining = tokio::spawn(drain_until_idle(worker));
    while seen.lock().unwrap().a_running < 7 {
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    enqueue(&app, app.clinic_b.id).await;
    let drained = draining.await.expect("drain");
    assert_eq!(drained.succeeded, 31, "{drained:?}");
    let seen = seen.lock().unwrap();
    assert_eq!(seen.a_most, 7, "A holds at most 7 of the 8 slots");
    assert_eq!(
        seen.b_started_after_a_ended,
        Some(0),
        "B's job started before any of A's ended"
    );
}

/// One step of a random scenario.
#[derive(Clone, Debug)]
enum Step {
    /// Clinic number `clinic` enqueues `count` jobs.
    Enqueue { clinic: usize, count: usize },
    /// One claim of at most `most` jobs.
    Claim { most: usize },
}

fn step(clinics: usize) -> impl Strategy<Value = Step> {
    prop_oneof![
        (0..clinics, 1_usize..6).prop_map(|(clinic, count)| Step::Enqueue { clinic, count }),
        (1_usize..8).prop_map(|most| Step::Claim { most }),
    ]
}

/// The design's queue: clinics that just got work (`fresh`, by arrival), the ring of the other
/// clinics with work in turn order, and each clinic's ready jobs oldest first.
#[derive(Default)]
struct Model {
    fresh: VecDeque<ClinicId>,
    ring: VecDeque<ClinicId>,
    ready: HashMap<ClinicId, VecDeque<JobId>>,
}

impl Model {
    fn push(&mut self, clinic: ClinicId, ids: &[JobId]) {
        let list = self.ready.entry(clinic).or_default();
        if list.is_empty() && !ids.is_empty() {
            self.fresh.push_back(clinic);
        }
        list.extend(ids);
    }

    fn claim(&mut self, most: usize) -> Vec<(ClinicId, JobId)> {
        let mut taken = Vec::new();
        while taken.len() < most {
            let Some(clinic) = self.fresh.pop_front().or_else(|| self.ring.pop_front()) else {
                break;
            };
            let list = self
                .ready
                .get_mut(&clinic)
                .expect("a listed clinic has a list");
            taken.push((clinic, list.pop_front().expect("a listed clinic has work")));
            if !list.is_empty() {
                self.ring.push_back(clinic);
            }
        }
        taken
    }

    fn clinics(&self) -> usize {
        self.fresh.len() + self.ring.len()
    }

    fn ready(&self) -> usize {
        self.ready.values().map(VecDeque::len).sum()
    }
}

/// Over random interleavings of enqueues (of four clinics) and claims, every claim takes exactly
/// what the ring model predicts, and the sizes Redis reports match the model's.
#[test]
fn claims_follow_the_ring_model_over_random_scenarios() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let app = runtime.block_on(TestApp::spawn());
    let clinics: Vec<ClinicId> = runtime.block_on(async {
        let mut clinics = vec![app.clinic_a.id, app.clinic_b.id];
        for slug in ["clinic-c", "clinic-d"] {
            clinics.push(app.add_clinic(slug).await.id);
        }
        clinics
    });
    let mut runner = TestRunner::new(ProptestConfig {
        cases: 24,
        failure_persistence: None,
        ..ProptestConfig::default()
    });
    let scenarios = proptest::collection::vec(step(clinics.len()), 1..24);
    runner
        .run(&scenarios, |steps| {
            runtime.block_on(run_scenario(&app, &clinics, &steps));
            Ok(())
        })
        .unwrap();
}

/// Plays `steps`, checking each claim against the model, then claims whatever is left so the
/// next scenario starts from an empty ring (its claimed jobs stay leased, out of the way).
async fn run_scenario(app: &TestApp, clinics: &[ClinicId], steps: &[Step]) {
    let mut model = Model::default();
    for step in steps.iter().chain([&Step::Claim { most: usize::MAX }]) {
        match *step {
            Step::Enqueue { clinic, count } => {
                let ids = enqueue_many(app, clinics[clinic], count).await;
                model.push(clinics[clinic], &ids);
            }
            Step::Claim { most } => {
                let most = most.min(1_000);
                assert_eq!(
                    claim(app, most).await,
                    sorted(&model.claim(most)),
                    "{steps:?}"
                );
            }
        }
        let sizes = app.state.queue.redis_sizes().await.unwrap();
        assert_eq!(
            (sizes.ready as usize, sizes.ready_clinics as usize),
            (model.ready(), model.clinics()),
            "{steps:?}"
        );
    }
}
