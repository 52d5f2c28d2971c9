//! Phone numbers stored before they were read in E.164 (issue 15; `crate::contact`), rewritten
//! once per clinic by the `patients.phones` job that migration 32 stages for every clinic that
//! has any (SQL cannot read a number with libphonenumber's metadata). Each is read as a number
//! of the clinic's country, as reception's input is today, and stored in E.164. One that is not
//! a valid number there keeps the spelling it was typed with, for reception to correct; the job
//! counts it and does not come back for it.

use super::types::PhoneInput;
use crate::auth::Role;
use crate::cache::PATIENT_PROFILE;
use crate::contact::Country;
use crate::db;
use crate::ids::PatientId;
use crate::queue::{Job, JobFailure, JobKind};
use crate::state::AppState;

/// Admins read what it did: how many numbers it could not read.
pub const PATIENT_PHONES: JobKind = JobKind::new("patients.phones").readable_by(&[Role::Admin]);

/// Patients rewritten per transaction.
const BATCH: i64 = 500;

/// What E.164 looks like: a number already written so is left alone.
const E164: &str = r"^\+[1-9][0-9]{5,14}$";

/// Runs one delivery: every patient of the job's clinic whose phone is not E.164, a batch at a
/// time, each batch in one tenant transaction (a repeated delivery finds only what is left).
pub async fn normalise_phones(state: AppState, job: Job) -> Result<serde_json::Value, JobFailure> {
    let clinic = job.clinic;
    let (mut normalised, mut unreadable) = (0, 0);
    let mut after: Option<PatientId> = None;
    loop {
        let mut tx = db::begin_tenant(&state.db, clinic).await?;
        let country = Country::of_clinic(&mut tx, clinic).await?;
        let rows: Vec<(PatientId, String)> = sqlx::query_as(
            "SELECT id, phone FROM patients
              WHERE clinic_id = $1 AND phone !~ $2 AND ($3::uuid IS NULL OR id > $3)
              ORDER BY id
              LIMIT $4
              FOR UPDATE",
        )
        .bind(clinic)
        .bind(E164)
        .bind(after)
        .bind(BATCH)
        .fetch_all(&mut *tx)
        .await?;
        let Some((last, _)) = rows.last() else {
            tx.commit().await?;
            break;
        };
        after = Some(*last);
        let mut changed = Vec::new();
        for (id, typed) in &rows {
            let Ok(number) =
                PhoneInput::parse("phone", typed).and_then(|input| input.in_country(country))
            else {
                unreadable += 1;
                continue;
            };
            sqlx::query(
                "UPDATE patients SET phone = $3, updated_at = now()
                  WHERE clinic_id = $1 AND id = $2",
            )
            .bind(clinic)
            .bind(id)
            .bind(number.as_str())
            .execute(&mut *tx)
            .await?;
            changed.push(state.keys.patient_profile(clinic, *id));
        }
        tx.commit().await?;
        normalised += changed.len();
        state.cache.invalidate_all(PATIENT_PROFILE, &changed).await;
    }
    if normalised + unreadable > 0 {
        tracing::info!(
            normalised,
            unreadable,
            "patients' phone numbers rewritten in E.164"
        );
    }
    Ok(serde_json::json!({"normalised": normalised, "unreadable": unreadable}))
}
