//! Report types: the period and request a report is for, its status, the stored row and the
//! job's payload, and what an insurance report shows. The request/response shapes of the API,
//! and how a request becomes [`InsuranceReportParams`], are `api`'s, re-exported here.

mod api;

pub use api::{
    AcceptedResponse, InsuranceReportRequest, ReportLinks, ReportMedia, ReportResponse, job_path,
    pdf_path, report_path, signed_pdf_path,
};

use crate::catalogs::CatalogCode;
use crate::ids::{JobId, PatientId, ReportId, UserId};
use crate::input::InputError;
use crate::media::Download;
use chrono::{DateTime, Datelike, Months, NaiveDate, NaiveDateTime, Utc};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::fmt;

/// The longest period one report covers: a year of treatment is what insurers ask for; longer
/// ranges are typos in the year (and documents nobody reads).
pub const MAX_PERIOD: Months = Months::new(12);
/// Periods start in this century: anything earlier is a typo, not a clinic's history.
pub const EARLIEST_YEAR: i32 = 2000;
pub const LATEST_YEAR: i32 = 2099;

/// Where a report is in its life, as the `document_status` PostgreSQL enum.
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, sqlx::Type, utoipa::ToSchema,
)]
#[serde(rename_all = "snake_case")]
#[sqlx(type_name = "document_status", rename_all = "snake_case")]
pub enum ReportStatus {
    /// Requested; the `report.insurance` job has not finished it yet.
    Pending,
    /// The PDF is stored and can be downloaded.
    Ready,
    /// The job gave up; `error` says why (never clinical text).
    Failed,
}

impl ReportStatus {
    pub fn as_str(&self) -> &'static str {
        match self {
            ReportStatus::Pending => "pending",
            ReportStatus::Ready => "ready",
            ReportStatus::Failed => "failed",
        }
    }
}

impl fmt::Display for ReportStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A calendar period in the clinic's time zone, both ends included: `from` ≤ `to`, shorter than
/// [`MAX_PERIOD`], within [`EARLIEST_YEAR`]..=[`LATEST_YEAR`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ReportPeriod {
    from: NaiveDate,
    to: NaiveDate,
}

impl ReportPeriod {
    pub fn new(from: NaiveDate, to: NaiveDate) -> Result<Self, InputError> {
        for (field, date) in [("from", from), ("to", to)] {
            if !(EARLIEST_YEAR..=LATEST_YEAR).contains(&date.year()) {
                return Err(InputError::invalid(
                    field,
                    format!("must be a date between {EARLIEST_YEAR}-01-01 and {LATEST_YEAR}-12-31"),
                ));
            }
        }
        if to < from {
            return Err(InputError::invalid("to", "must be on or after from"));
        }
        // `from + 12 months` exists for every date (chrono clamps 29 February).
        if from
            .checked_add_months(MAX_PERIOD)
            .is_none_or(|limit| to >= limit)
        {
            return Err(InputError::invalid(
                "to",
                "the period must be shorter than one year (for example 2026-01-01 to 2026-12-31)",
            ));
        }
        Ok(Self { from, to })
    }

    pub fn from(&self) -> NaiveDate {
        self.from
    }

    pub fn to(&self) -> NaiveDate {
        self.to
    }
}

/// A date exactly as `YYYY-MM-DD`: chrono alone would also take `2026-5-4` or a leading `+`.
pub fn parse_date(field: &str, raw: &str) -> Result<NaiveDate, InputError> {
    let shaped = raw.len() == 10
        && raw.bytes().enumerate().all(|(index, byte)| match index {
            4 | 7 => byte == b'-',
            _ => byte.is_ascii_digit(),
        });
    shaped
        .then(|| NaiveDate::parse_from_str(raw, "%Y-%m-%d").ok())
        .flatten()
        .ok_or_else(|| InputError::invalid(field, "must be a date as YYYY-MM-DD, like 2026-05-04"))
}

/// An insurance report request, validated as far as the request alone allows; the service then
/// checks the patient and the insurer against the clinic's data.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct InsuranceReportParams {
    pub patient_id: PatientId,
    pub period: ReportPeriod,
    pub insurer: CatalogCode,
}

impl InsuranceReportParams {
    pub fn stored(&self) -> StoredParams {
        StoredParams {
            from: self.period.from(),
            to: self.period.to(),
            insurer: self.insurer.as_str().to_owned(),
        }
    }
}

/// The `params` column of an insurance report (the patient has a column of its own).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoredParams {
    pub from: NaiveDate,
    pub to: NaiveDate,
    pub insurer: String,
}

/// The job's payload: the report to build. The clinic travels with the job itself.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InsurancePayload {
    pub report_id: ReportId,
}

impl InsurancePayload {
    /// The payload as the job row stores it (built by hand: it cannot fail, unlike serializing).
    pub fn to_json(&self) -> serde_json::Value {
        let mut object = serde_json::Map::new();
        object.insert(
            "report_id".into(),
            serde_json::Value::String(self.report_id.to_string()),
        );
        serde_json::Value::Object(object)
    }
}

/// A report as stored, without its PDF (which is read only by the download).
#[derive(Clone, Debug, sqlx::FromRow)]
pub struct ReportRecord {
    pub id: ReportId,
    pub patient_id: PatientId,
    pub params: sqlx::types::Json<StoredParams>,
    pub status: ReportStatus,
    pub error: Option<String>,
    pub job_id: Option<JobId>,
    pub requested_by: Option<UserId>,
    pub created_at: DateTime<Utc>,
    pub completed_at: Option<DateTime<Utc>>,
    /// The PDF's size: present once the report is ready.
    pub pdf_bytes: Option<i32>,
    /// The PDF's S3 key; `None` before it is ready, or for an older report whose PDF is still
    /// in PostgreSQL.
    pub pdf_key: Option<String>,
}

impl ReportRecord {
    /// `informe-sanitas-2026-01-01-2026-03-31.pdf`: ASCII only (safe in any header and file
    /// system), no patient name (downloads folders and proxies' logs see file names).
    pub fn filename(&self) -> String {
        let params = &self.params.0;
        let insurer: String = params
            .insurer
            .chars()
            .filter(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'))
            .map(|c| c.to_ascii_lowercase())
            .collect();
        let insurer = if insurer.is_empty() {
            "aseguradora".to_string()
        } else {
            insurer
        };
        format!("informe-{insurer}-{}-{}.pdf", params.from, params.to)
    }

    /// Whether this stored report is what `params` asks for: an Idempotency-Key replayed with
    /// another body must not silently return a different patient's report.
    pub fn answers(&self, params: &InsuranceReportParams) -> bool {
        self.patient_id == params.patient_id && self.params.0 == params.stored()
    }
}

/// How a report's PDF is served: a download under its file name, and never kept (patient data:
/// no shared cache keeps it, and the browser does not keep a copy).
pub struct PdfDownload {
    disposition: String,
}

impl PdfDownload {
    pub fn of(record: &ReportRecord) -> Self {
        // The name is built from ASCII letters, digits, dots, dashes and a date: always a
        // valid, quote-free header value.
        PdfDownload {
            disposition: format!("attachment; filename=\"{}\"", record.filename()),
        }
    }

    pub fn as_download(&self) -> Download<'_> {
        Download {
            content_type: "application/pdf",
            disposition: &self.disposition,
            cache_control: "private, no-store",
        }
    }
}

/// An amount in cents of a currency (ISO 4217 code, as the catalog stores it).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Money {
    pub cents: i64,
    pub currency: String,
}

/// One completed appointment as the report lists it. No reason or notes: an insurer gets the
/// procedure, not the clinical story.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ReportLine {
    /// The day of the appointment in the clinic's time zone.
    pub date: NaiveDate,
    /// `None` when the appointment was completed without a procedure code.
    pub code: Option<String>,
    pub name: String,
    /// `None` when the catalog has no price for the procedure (or no such procedure).
    pub price: Option<Money>,
}

/// Everything an insurance report shows, gathered in one tenant transaction.
#[derive(Clone, Debug)]
pub struct InsuranceReport {
    pub clinic_name: String,
    /// IANA name of the clinic's time zone: every date in the report is local to it.
    pub timezone: String,
    /// When the report was generated, in the clinic's time zone.
    pub generated_at: NaiveDateTime,
    /// `generated_at` minus UTC, for the PDF's creation date.
    pub utc_offset_minutes: i32,
    pub patient_name: String,
    pub national_id: Option<String>,
    pub insurer_code: String,
    pub insurer_name: String,
    pub period: ReportPeriod,
    pub lines: Vec<ReportLine>,
}

/// The sums at the foot of a report.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Totals {
    /// Cents per currency; a clinic normally bills in one (EUR).
    pub by_currency: BTreeMap<String, i64>,
    pub priced: usize,
    pub unpriced: usize,
}

impl InsuranceReport {
    pub fn totals(&self) -> Totals {
        let mut totals = Totals::default();
        for line in &self.lines {
            match &line.price {
                Some(price) => {
                    *totals
                        .by_currency
                        .entry(price.currency.clone())
                        .or_default() += price.cents;
                    totals.priced += 1;
                }
                None => totals.unpriced += 1,
            }
        }
        totals
    }
}

/// A `YYYY-MM-DD` date, for the tests of this module and of its children.
#[cfg(test)]
fn date(raw: &str) -> NaiveDate {
    NaiveDate::parse_from_str(raw, "%Y-%m-%d").unwrap()
}

/// The field an invalid input names; any other refusal fails the test.
#[cfg(test)]
fn field_of(error: InputError) -> String {
    match error {
        InputError::Invalid { field, .. } => field,
        other => panic!("expected a 422, got {other:?}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates_are_strictly_yyyy_mm_dd() {
        assert_eq!(
            parse_date("from", "2026-05-04").unwrap(),
            date("2026-05-04")
        );
        for bad in [
            "2026-5-4",
            "+2026-05-04",
            "2026/05/04",
            "2026-02-30",
            "2026-05-04T00:00:00Z",
            "04-05-2026",
            "",
            "２０２６-05-04",
        ] {
            assert_eq!(
                field_of(parse_date("from", bad).unwrap_err()),
                "from",
                "{bad}"
            );
        }
    }

    #[test]
    fn a_period_is_ordered_and_shorter_than_a_year() {
        let period = ReportPeriod::new(date("2026-01-01"), date("2026-12-31")).unwrap();
        assert_eq!(period.from(), date("2026-01-01"));
        assert!(ReportPeriod::new(date("2026-05-04"), date("2026-05-04")).is_ok());
        assert_eq!(
            field_of(ReportPeriod::new(date("2026-05-04"), date("2026-05-03")).unwrap_err()),
            "to"
        );
        assert_eq!(
            field_of(ReportPeriod::new(date("2026-01-01"), date("2027-01-01")).unwrap_err()),
            "to"
        );
        // 29 February plus a year is 28 February: the day before it is the last allowed.
        assert!(ReportPeriod::new(date("2028-02-29"), date("2029-02-27")).is_ok());
        assert!(ReportPeriod::new(date("2028-02-29"), date("2029-02-28")).is_err());
        assert_eq!(
            field_of(ReportPeriod::new(date("1999-12-31"), date("2000-01-05")).unwrap_err()),
            "from"
        );
        assert_eq!(
            field_of(ReportPeriod::new(date("2099-12-01"), date("2100-01-05")).unwrap_err()),
            "to"
        );
    }

    #[test]
    fn the_job_payload_round_trips() {
        let payload = InsurancePayload {
            report_id: ReportId::new_random(),
        };
        let json = payload.to_json();
        assert_eq!(json["report_id"], payload.report_id.to_string());
        assert_eq!(
            serde_json::from_value::<InsurancePayload>(json).unwrap(),
            payload
        );
        assert!(
            serde_json::from_value::<InsurancePayload>(serde_json::json!({"report_id": "x"}))
                .is_err()
        );
    }

    #[test]
    fn totals_add_priced_lines_per_currency() {
        let line = |cents: Option<i64>, currency: &str| ReportLine {
            date: date("2026-05-04"),
            code: Some("REV".into()),
            name: "Revisión".into(),
            price: cents.map(|cents| Money {
                cents,
                currency: currency.into(),
            }),
        };
        let report = InsuranceReport {
            clinic_name: "Clínica".into(),
            timezone: "Europe/Madrid".into(),
            generated_at: date("2026-06-01").and_hms_opt(10, 0, 0).unwrap(),
            utc_offset_minutes: 120,
            patient_name: "Ana".into(),
            national_id: None,
            insurer_code: "SANITAS".into(),
            insurer_name: "Sanitas".into(),
            period: ReportPeriod::new(date("2026-05-01"), date("2026-05-31")).unwrap(),
            lines: vec![
                line(Some(3500), "EUR"),
                line(None, "EUR"),
                line(Some(6500), "EUR"),
                line(Some(1000), "USD"),
            ],
        };
        let totals = report.totals();
        assert_eq!(totals.by_currency.get("EUR"), Some(&10_000));
        assert_eq!(totals.by_currency.get("USD"), Some(&1000));
        assert_eq!((totals.priced, totals.unpriced), (3, 1));
    }
}
