//! Rows and runs that many tests need: patients and appointments written straight to the
//! database (bypassing the API's rules, so past and present can be laid out freely), and a
//! worker drained until the queue is idle.

use crate::{TestApp, TestClinic};
use chrono::{DateTime, TimeDelta, Utc};
use shared::AppState;
use shared::auth::Role;
use shared::ids::{ClinicId, PatientId, UserId};
use shared::queue::{Drain, DrainReport, StopReason};
use shared::worker::{Handlers, Worker};
use std::time::Duration;
use tokio::time::Instant;

/// An appointment as it would be after its life so far (status included).
pub struct AppointmentSeed<'a> {
    pub patient: PatientId,
    pub dentist: UserId,
    pub starts_at: DateTime<Utc>,
    pub minutes: i64,
    /// An `appointment_status` value.
    pub status: &'a str,
    pub procedure: Option<&'a str>,
}

impl TestApp {
    /// Puts a catalog item of `clinic` through the API, as its admin would (`kind` is
    /// `procedure` or `insurer`; `body` the fields to set).
    pub async fn put_catalog_item(
        &self,
        clinic: &TestClinic,
        kind: &str,
        code: &str,
        body: &serde_json::Value,
    ) {
        let catalogs = shared::catalogs::router(self.state.clone());
        let token = self.token(clinic, Role::Admin);
        let response = self
            .client(&catalogs, &token)
            .put(&format!("/catalogs/{kind}/{code}"), body)
            .await;
        assert!(response.status.is_success(), "{}", response.body);
    }

    /// A patient `first_name` Prueba of `clinic`, created now.
    pub async fn seed_patient(&self, clinic: ClinicId, first_name: &str) -> PatientId {
        let mut tx = self.owner_tx(clinic).await;
        let id: PatientId = sqlx::query_scalar(
            "INSERT INTO patients (clinic_id, first_name, last_name, search_name)
             VALUES ($1, $2, 'Prueba', lower($2) || ' prueba') RETURNING id",
        )
        .bind(clinic)
        .bind(first_name)
        .fetch_one(&mut *tx)
        .await
        .expect("insert patient");
        tx.commit().await.expect("commit patient");
        id
    }

    /// A patient Paciente Prueba of `clinic`, created (and last updated) at `created_at`.
    pub async fn seed_patient_created_at(
        &self,
        clinic: ClinicId,
        created_at: DateTime<Utc>,
    ) -> PatientId {
        let mut tx = self.owner_tx(clinic).await;
        let id = sqlx::query_scalar(
            "INSERT INTO patients (clinic_id, first_name, last_name, search_name, created_at, updated_at)
             VALUES ($1, 'Paciente', 'Prueba', 'paciente prueba', $2, $2) RETURNING id",
        )
        .bind(clinic)
        .bind(created_at)
        .fetch_one(&mut *tx)
        .await
        .expect("insert patient");
        tx.commit().await.expect("commit patient");
        id
    }

    /// Inserts `seed` into `clinic`'s agenda, bypassing the booking window.
    pub async fn seed_appointment(&self, clinic: ClinicId, seed: AppointmentSeed<'_>) {
        let mut tx = self.owner_tx(clinic).await;
        sqlx::query(
            "INSERT INTO appointments (clinic_id, patient_id, dentist_id, starts_at, ends_at, status,
                                       procedure_code)
             VALUES ($1, $2, $3, $4, $5, $6::appointment_status, $7)",
        )
        .bind(clinic)
        .bind(seed.patient)
        .bind(seed.dentist)
        .bind(seed.starts_at)
        .bind(seed.starts_at + TimeDelta::minutes(seed.minutes))
        .bind(seed.status)
        .bind(seed.procedure)
        .execute(&mut *tx)
        .await
        .expect("insert appointment");
        tx.commit().await.expect("commit appointment");
    }
}

/// Runs a worker over `state` with `handlers` until nothing is left to do, and asserts it
/// stopped because it was idle (20 s without getting there is a test failure).
pub async fn drain_jobs(state: AppState, handlers: Handlers) -> DrainReport {
    drain_worker(&Worker::new(state, handlers)).await
}

/// [`drain_jobs`] with a worker the test keeps (to inspect or drain again).
pub async fn drain_worker(worker: &Worker) -> DrainReport {
    let report = worker
        .drain(
            Drain {
                stop_at: Some(Instant::now() + Duration::from_secs(20)),
                finish_by: Some(Instant::now() + Duration::from_secs(25)),
                stop_when_idle: true,
                ..Drain::default()
            },
            std::future::pending(),
        )
        .await;
    assert_eq!(report.stopped_by, StopReason::Idle, "{report:?}");
    report
}

/// What the media upkeep does for `clinic` within ten minutes: one scheduler tick at a minute of
/// the clinic's slice (in window `round` from now, so each round of a test gets a job of its
/// own), then the worker until idle. The tick's media report comes back.
pub async fn run_media_upkeep(
    app: &TestApp,
    clinic: ClinicId,
    round: i64,
) -> shared::scheduler::UpkeepReport {
    use shared::scheduler::{Scheduler, TaskOutcome, Tick, media::in_slice};
    let from = Utc::now() + TimeDelta::minutes(10 * round);
    let at = (0..10)
        .map(|minute| from + TimeDelta::minutes(minute))
        .find(|at| in_slice(clinic, *at))
        .expect("a minute of the clinic's slice");
    let report = Scheduler::new(app.system_state())
        .run(Tick {
            at,
            stop_at: Instant::now() + Duration::from_secs(30),
        })
        .await;
    assert!(report.failed_tasks().is_empty(), "{report:?}");
    let media = report
        .tasks
        .iter()
        .find_map(|task| match &task.outcome {
            TaskOutcome::Media(done) => Some(done.clone()),
            _ => None,
        })
        .expect("the media task ran");
    drain_jobs(app.system_state(), shared::worker::handlers()).await;
    media
}

/// A small PNG that passes every upload check (64×64 of 8-bit grey with some texture).
pub fn small_png() -> Vec<u8> {
    use shared::xrays::test_images::{png, textured};
    png(&textured(64, 64))
}
