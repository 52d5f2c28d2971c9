//! The `report.insurance` job: gathers the clinic's data for a pending report, renders the PDF,
//! puts it in S3 (`clinics/{clinic}/reports/{id}.pdf`) and marks the report ready, in one tenant
//! transaction under the report's row lock. A put whose commit fails is overwritten by the next
//! delivery: the key is the report's.
//!
//! Delivery is at least once, so a run finds the report as it is: ready means a previous run
//! finished (nothing to do), pending or failed (an admin replaying a dead job) means build it.

use super::REPORTERS;
use super::pdf;
use super::repository;
use super::types::{
    InsurancePayload, InsuranceReport, Money, PdfDownload, ReportLine, ReportPeriod, ReportRecord,
    ReportStatus, Totals,
};
use crate::catalogs::{self, CatalogCode, CatalogKind, MergedRow};
use crate::db;
use crate::http::conditional::Sha256Digest;
use crate::ids::{ClinicId, ReportId};
use crate::media::MediaKey;
use crate::queue::{Job, JobFailure, JobKind};
use crate::state::AppState;
use bytes::Bytes;
use sqlx::{PgConnection, PgPool};
use std::collections::HashMap;

/// A report holds a patient's procedures over at most a year and the PDF being written.
pub const REPORT_INSURANCE: JobKind = JobKind::new("report.insurance")
    .readable_by(REPORTERS)
    .with_peak_memory_mib(32);

/// The `reports.error` check constraint, in characters.
const ERROR_LIMIT: usize = 4_000;

/// Runs one delivery of a `report.insurance` job. `Ok` carries figures for `jobs.result`
/// (counts and totals, no names). When this attempt is the job's last, the report is marked
/// failed with the reason, so its status link stops saying pending.
pub async fn build_insurance_report(
    state: AppState,
    job: Job,
) -> Result<serde_json::Value, JobFailure> {
    let payload: InsurancePayload = serde_json::from_value(job.payload.clone()).map_err(|_| {
        JobFailure::permanent("the job's payload does not name a report (expected report_id)")
    })?;
    let report = payload.report_id;
    match build(&state, job.clinic, report).await {
        Ok(outcome) => {
            tracing::info!(report_id = %report, pages = outcome.pages, "insurance report ready");
            // Realtime (issue 6): the requester and the reception desk hear it is ready; once.
            let ready = crate::realtime::DocumentReady::report_ready(report, job.id);
            crate::realtime::document_ready(&state, job.clinic, job.created_by, ready).await;
            Ok(outcome.into_json(report))
        }
        Err(failure) => {
            let last =
                matches!(failure, JobFailure::Permanent(_)) || job.attempt >= job.max_attempts;
            if last {
                record_failure(&state.db, job.clinic, report, failure.message()).await;
            }
            Err(failure)
        }
    }
}

/// What a run did.
#[derive(Debug)]
struct Outcome {
    /// `false`: a previous delivery had built the report already.
    built: bool,
    pages: usize,
    procedures: usize,
    bytes: usize,
    totals: Totals,
}

impl Outcome {
    fn into_json(self, report: ReportId) -> serde_json::Value {
        serde_json::json!({
            "report_id": report,
            "built": self.built,
            "pages": self.pages,
            "procedures": self.procedures,
            "unpriced": self.totals.unpriced,
            "total_cents": self.totals.by_currency,
            "bytes": self.bytes,
        })
    }
}

async fn build(state: &AppState, clinic: ClinicId, id: ReportId) -> Result<Outcome, JobFailure> {
    let media = state.media()?;
    let mut tx = db::begin_tenant(&state.db, clinic).await?;
    let record = repository::find(&mut tx, clinic, id, true)
        .await?
        .ok_or_else(|| JobFailure::permanent("the report does not exist in the job's clinic"))?;
    if record.status == ReportStatus::Ready {
        tx.commit().await?;
        return Ok(Outcome {
            built: false,
            pages: 0,
            procedures: 0,
            bytes: record
                .pdf_bytes
                .and_then(|bytes| usize::try_from(bytes).ok())
                .unwrap_or(0),
            totals: Totals::default(),
        });
    }
    let report = gather(&mut tx, clinic, &record).await?;
    let rendered = pdf::render(&report);
    let bytes = rendered.bytes.len();
    let key = MediaKey::report_pdf(clinic, id.0);
    let digest = Sha256Digest::of(&rendered.bytes);
    let download = PdfDownload::of(&record);
    media
        .put(
            &key,
            Bytes::from(rendered.bytes),
            &download.as_download(),
            &digest.0,
        )
        .await?;
    repository::mark_ready(&mut tx, clinic, id, &key, bytes).await?;
    tx.commit().await?;
    Ok(Outcome {
        built: true,
        pages: rendered.pages,
        procedures: report.lines.len(),
        bytes,
        totals: report.totals(),
    })
}

/// Moves one of the clinic's older report PDFs (made before PDFs moved to S3) to its key, under
/// the report's row lock: `Some(id)` when one was moved, `None` when the clinic holds none any
/// more. Run by the `media.upkeep` job (`crate::scheduler::media`).
pub async fn move_held_pdf(
    state: &AppState,
    clinic: ClinicId,
) -> Result<Option<ReportId>, JobFailure> {
    let media = state.media()?;
    let mut tx = db::begin_tenant(&state.db, clinic).await?;
    let Some((record, pdf)) = repository::lock_held(&mut tx, clinic).await? else {
        tx.commit().await?;
        return Ok(None);
    };
    let key = MediaKey::report_pdf(clinic, record.id.0);
    let size = pdf.len();
    let digest = Sha256Digest::of(&pdf);
    let download = PdfDownload::of(&record);
    media
        .put(&key, Bytes::from(pdf), &download.as_download(), &digest.0)
        .await?;
    repository::pdf_moved(&mut tx, clinic, record.id, &key, size).await?;
    tx.commit().await?;
    Ok(Some(record.id))
}

/// Everything the PDF shows, read in the report's transaction: the stored request, the patient
/// and clinic, and each completed procedure of the period, named and priced.
async fn gather(
    conn: &mut PgConnection,
    clinic: ClinicId,
    record: &ReportRecord,
) -> Result<InsuranceReport, JobFailure> {
    let params = &record.params.0;
    let period = ReportPeriod::new(params.from, params.to)
        .map_err(|_| JobFailure::permanent("the report's stored period is not valid"))?;
    let insurer_code = CatalogCode::parse("insurer", &params.insurer)
        .map_err(|_| JobFailure::permanent("the report's stored insurer code is not valid"))?;
    let subject = repository::subject(conn, clinic, record.patient_id)
        .await?
        .ok_or_else(|| JobFailure::permanent("the report's patient or clinic does not exist"))?;
    // The insurer was active when the report was requested; if the clinic hid it since, the
    // report still names it.
    let insurer_name = catalogs::repository::merged(
        conn,
        Some(clinic),
        CatalogKind::Insurer,
        Some(&insurer_code),
    )
    .await?
    .pop()
    .map_or_else(|| insurer_code.as_str().to_owned(), |row| row.name);
    let appointments = repository::completed_procedures(
        conn,
        clinic,
        record.patient_id,
        period.from(),
        period.to(),
        &subject.timezone,
    )
    .await?;
    // Every procedure the clinic has priced, inactive ones included: a treatment done before
    // the clinic stopped offering it is still billed at its catalog price.
    let catalog: HashMap<String, MergedRow> =
        catalogs::repository::merged(conn, Some(clinic), CatalogKind::Procedure, None)
            .await?
            .into_iter()
            .map(|row| (row.code.clone(), row))
            .collect();
    let lines = appointments
        .into_iter()
        .map(|(date, code)| line(date, code, &catalog))
        .collect();
    Ok(InsuranceReport {
        clinic_name: subject.clinic_name,
        timezone: subject.timezone,
        generated_at: subject.generated_at,
        utc_offset_minutes: subject.utc_offset_minutes,
        patient_name: format!("{} {}", subject.first_name, subject.last_name),
        national_id: subject.national_id,
        insurer_code: insurer_code.as_str().to_owned(),
        insurer_name,
        period,
        lines,
    })
}

/// One completed appointment, named and priced from the clinic's merged catalog.
fn line(
    date: chrono::NaiveDate,
    code: Option<String>,
    catalog: &HashMap<String, MergedRow>,
) -> ReportLine {
    let Some(code) = code else {
        return ReportLine {
            date,
            code: None,
            name: "Procedimiento no indicado".into(),
            price: None,
        };
    };
    match catalog.get(&code) {
        Some(item) => ReportLine {
            date,
            name: item.name.clone(),
            price: item.price_cents.map(|cents| Money {
                cents,
                currency: item.currency.clone(),
            }),
            code: Some(code),
        },
        None => ReportLine {
            date,
            name: "No figura en el catálogo de la clínica".into(),
            price: None,
            code: Some(code),
        },
    }
}

/// Best effort: the job's own row records the failure whatever happens here.
async fn record_failure(db: &PgPool, clinic: ClinicId, id: ReportId, message: &str) {
    let message: String = message.chars().take(ERROR_LIMIT).collect();
    let result = async {
        let mut tx = db::begin_tenant(db, clinic).await?;
        repository::mark_failed(&mut tx, clinic, id, &message).await?;
        tx.commit().await?;
        Ok::<_, db::DbError>(())
    }
    .await;
    if let Err(error) = result {
        tracing::error!(
            report_id = %id,
            error = %crate::telemetry::ErrorChain(&error),
            "the report's job failed for good, but the report could not be marked failed"
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::NaiveDate;

    fn item(code: &str, name: &str, price: Option<i64>) -> (String, MergedRow) {
        (
            code.to_string(),
            MergedRow {
                code: code.into(),
                name: name.into(),
                default_minutes: Some(30),
                price_cents: price,
                currency: "EUR".into(),
                active: true,
                in_global: true,
                in_clinic: false,
            },
        )
    }

    #[test]
    fn lines_take_name_and_price_from_the_catalog() {
        let catalog: HashMap<_, _> = [
            item("REV", "Revisión general", Some(3500)),
            item("CONSULTA", "Consulta", None),
        ]
        .into();
        let date = NaiveDate::from_ymd_opt(2026, 5, 4).unwrap();
        let priced = line(date, Some("REV".into()), &catalog);
        assert_eq!(priced.name, "Revisión general");
        assert_eq!(priced.price.map(|p| p.cents), Some(3500));
        assert_eq!(line(date, Some("CONSULTA".into()), &catalog).price, None);
        let unknown = line(date, Some("GONE".into()), &catalog);
        assert_eq!(unknown.code.as_deref(), Some("GONE"));
        assert_eq!(unknown.price, None);
        let uncoded = line(date, None, &catalog);
        assert_eq!((uncoded.code, uncoded.price), (None, None));
    }
}
