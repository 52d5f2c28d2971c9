//! The request and response shapes of `/reports`, the links a report answers with, and how a
//! request becomes [`InsuranceReportParams`]: each refusal is invalid (422) naming `from`, `to`
//! or `insurer`.

use super::{
    InsuranceReportParams, PdfDownload, ReportPeriod, ReportRecord, ReportStatus, parse_date,
};
use crate::catalogs::CatalogCode;
use crate::http::ApiError;
use crate::ids::{ClinicId, JobId, PatientId, ReportId, UserId};
use crate::input::InputError;
use crate::media::MediaKey;
use crate::signed_urls::MediaUrl;
use crate::state::AppState;
use chrono::{DateTime, NaiveDate, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// `POST /reports/insurance`: the patient's visits in a period, for one insurer.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"patient_id": "0b4f6a9e-5a38-4a8e-9b59-1f0d1c1e8c11",
    "from": "2026-01-01", "to": "2026-06-30", "insurer": "SANITAS"}))]
pub struct InsuranceReportRequest {
    pub patient_id: PatientId,
    /// First day (`YYYY-MM-DD`, the clinic's calendar), from year 2000.
    #[schema(format = Date)]
    pub from: String,
    /// Last day, included: on or after `from`, at most a year later, up to year 2099.
    #[schema(format = Date)]
    pub to: String,
    /// A code of the clinic's `insurer` catalog.
    #[schema(min_length = 1, max_length = 32)]
    pub insurer: String,
}

impl TryFrom<InsuranceReportRequest> for InsuranceReportParams {
    type Error = InputError;

    fn try_from(request: InsuranceReportRequest) -> Result<Self, InputError> {
        let from = parse_date("from", &request.from)?;
        let to = parse_date("to", &request.to)?;
        Ok(Self {
            patient_id: request.patient_id,
            period: ReportPeriod::new(from, to)?,
            insurer: CatalogCode::parse("insurer", request.insurer.trim())?,
        })
    }
}

pub fn report_path(id: ReportId) -> String {
    format!("/reports/{id}")
}

pub fn pdf_path(id: ReportId) -> String {
    format!("/reports/{id}/pdf")
}

/// The signed (token-free) route of a report's PDF.
pub fn signed_pdf_path(id: ReportId) -> String {
    format!("/media/reports/{id}/pdf")
}

pub fn job_path(id: JobId) -> String {
    format!("/jobs/{id}")
}

/// Where to look next: the report's status, its PDF (once ready) and the job building it.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct ReportLinks {
    #[serde(rename = "self")]
    pub report: String,
    pub pdf: Option<String>,
    pub job: Option<String>,
}

impl ReportLinks {
    fn of(record: &ReportRecord) -> Self {
        ReportLinks {
            report: report_path(record.id),
            pdf: (record.status == ReportStatus::Ready).then(|| pdf_path(record.id)),
            job: record.job_id.map(job_path),
        }
    }
}

/// `202 Accepted` for `POST /reports/insurance` (also for a replayed Idempotency-Key, whatever
/// the report's status is by then).
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct AcceptedResponse {
    pub report_id: ReportId,
    pub job_id: Option<JobId>,
    pub status: ReportStatus,
    pub links: ReportLinks,
}

impl From<&ReportRecord> for AcceptedResponse {
    fn from(record: &ReportRecord) -> Self {
        AcceptedResponse {
            report_id: record.id,
            job_id: record.job_id,
            status: record.status,
            links: ReportLinks::of(record),
        }
    }
}

/// A signed URL of the report's PDF, for a download link without a token; see
/// `crate::signed_urls`.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct ReportMedia {
    /// Present once the report is ready.
    pub pdf: Option<MediaUrl>,
}

impl ReportMedia {
    /// A presigned S3 GET of the PDF, or the API's own signed route (starting with `base`)
    /// for an older report whose PDF is still in PostgreSQL.
    pub async fn sign(
        state: &AppState,
        base: &str,
        clinic: ClinicId,
        record: &ReportRecord,
        now: DateTime<Utc>,
    ) -> Result<Self, ApiError> {
        if record.status != ReportStatus::Ready {
            return Ok(ReportMedia { pdf: None });
        }
        let pdf = match &record.pdf_key {
            Some(key) => {
                let download = PdfDownload::of(record);
                let key = MediaKey::stored(key.clone());
                state.presigned(&key, &download.as_download(), now).await?
            }
            None => {
                state
                    .signer
                    .sign(base, clinic, &signed_pdf_path(record.id), now)
                    .await?
            }
        };
        Ok(ReportMedia { pdf: Some(pdf) })
    }
}

/// `GET /reports/{id}`: what the report covers and where it is, never its content.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct ReportResponse {
    pub id: ReportId,
    pub kind: String,
    pub patient_id: PatientId,
    pub insurer: String,
    pub from: NaiveDate,
    pub to: NaiveDate,
    pub status: ReportStatus,
    pub error: Option<String>,
    pub job_id: Option<JobId>,
    pub requested_by: Option<UserId>,
    pub created_at: DateTime<Utc>,
    pub completed_at: Option<DateTime<Utc>>,
    pub pdf_bytes: Option<i32>,
    pub links: ReportLinks,
    pub media: ReportMedia,
}

impl ReportResponse {
    pub fn new(record: ReportRecord, media: ReportMedia) -> Self {
        let links = ReportLinks::of(&record);
        let params = record.params.0;
        ReportResponse {
            id: record.id,
            kind: "insurance".into(),
            patient_id: record.patient_id,
            insurer: params.insurer,
            from: params.from,
            to: params.to,
            status: record.status,
            error: record.error,
            job_id: record.job_id,
            requested_by: record.requested_by,
            created_at: record.created_at,
            completed_at: record.completed_at,
            pdf_bytes: record.pdf_bytes,
            links,
            media,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::{StoredParams, date, field_of};
    use super::*;

    #[test]
    fn requests_are_checked_field_by_field() {
        let request = |from: &str, to: &str, insurer: &str| InsuranceReportRequest {
            patient_id: PatientId::new_random(),
            from: from.into(),
            to: to.into(),
            insurer: insurer.into(),
        };
        let params =
            InsuranceReportParams::try_from(request("2026-01-01", "2026-03-31", " SANITAS "))
                .unwrap();
        assert_eq!(params.insurer.as_str(), "SANITAS");
        assert_eq!(
            params.stored(),
            StoredParams {
                from: date("2026-01-01"),
                to: date("2026-03-31"),
                insurer: "SANITAS".into()
            }
        );
        let field = |r| field_of(InsuranceReportParams::try_from(r).unwrap_err());
        assert_eq!(field(request("2026-1-01", "2026-03-31", "SANITAS")), "from");
        assert_eq!(field(request("2026-01-01", "tomorrow", "SANITAS")), "to");
        assert_eq!(field(request("2026-01-01", "2026-03-31", "")), "insurer");
        assert_eq!(
            field(request("2026-01-01", "2026-03-31", "SAN ITAS")),
            "insurer"
        );
    }
}
