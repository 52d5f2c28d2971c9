//! Fair queueing across clinics (`shared::queue`'s `claim.lua` and `ready.lua`) against the real
//! PostgreSQL and Redis: a clinic that had nothing waiting is served by the next claim, then
//! claims go round the clinics with ready work, one job per clinic per turn, oldest first within
//! a clinic; a clinic's backlog does not hold another's job back; and over random sequences of
//! enqueues and claims the queue does exactly what a model of the two lists does.

use proptest::prelude::*;
use proptest::test_runner::{Config as ProptestConfig, TestRunner};
use pulso_tests::{TestApp, TestOptions};
use serde_json::Value;
use shared::ids::{ClinicId, JobId};
use shared::queue::{Drain, JobKind, NewJob};
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
    app.state.queue.push_ready(&jobs).await.expect("push");
    ids
}

/// The jobs one claim of at most `most` took, with their clinics, sorted: a claim's jobs all
/// start at once, so which jobs it took is what fairness is about, not their order.
async fn claim(app: &TestApp, most: usize) -> Vec<(ClinicId, JobId)> {
    let system = app.system_state();
    let claim = app
        .state
        .queue
        .claim(&system.db, most)
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
    let drained = worker
        .drain(
            Drain {
                stop_at: Some(tokio::time::Instant::now() + Duration::from_secs(60)),
                finish_by: None,
                stop_when_idle: true,
            },
            std::future::pending(),
        )
        .await;
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
