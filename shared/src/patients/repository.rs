//! Patient SQL. Every query runs inside a tenant transaction (row-level security) and also
//! filters on `clinic_id`, which is what the `(clinic_id, …)` indexes are built for.

use super::types::{NewPatient, PatientChanges, PatientRecord, PatientSearch, PhoneNumber};
use crate::ids::{ClinicId, PatientId};
use crate::pagination::PageRequest;
use sqlx::PgConnection;

const COLUMNS: &str = "id, clinic_id, first_name, last_name, search_name, phone, email, birth_date, \
                       national_id, notes, created_at, updated_at, archived_at";

/// Inserts `patient` with `phone`, its number read in the clinic's country.
pub(super) async fn insert(
    conn: &mut PgConnection,
    clinic: ClinicId,
    patient: &NewPatient,
    phone: Option<&PhoneNumber>,
) -> Result<PatientRecord, sqlx::Error> {
    sqlx::query_as(&format!(
        "INSERT INTO patients (clinic_id, first_name, last_name, search_name, phone, email, \
                               birth_date, national_id, notes)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)
         RETURNING {COLUMNS}"
    ))
    .bind(clinic)
    .bind(patient.first_name.as_str())
    .bind(patient.last_name.as_str())
    .bind(patient.search_name())
    .bind(phone.map(PhoneNumber::as_str))
    .bind(patient.email.as_ref().map(|e| e.as_str()))
    .bind(patient.birth_date.map(|d| d.date()))
    .bind(patient.national_id.as_ref().map(|n| n.as_str()))
    .bind(patient.notes.as_str())
    .fetch_one(conn)
    .await
}

pub(super) async fn find(
    conn: &mut PgConnection,
    clinic: ClinicId,
    id: PatientId,
    lock: bool,
) -> Result<Option<PatientRecord>, sqlx::Error> {
    let lock = if lock { " FOR UPDATE" } else { "" };
    sqlx::query_as(&format!(
        "SELECT {COLUMNS} FROM patients WHERE clinic_id = $1 AND id = $2{lock}"
    ))
    .bind(clinic)
    .bind(id)
    .fetch_optional(conn)
    .await
}

/// Keyset pagination over `(search_name, id)`: stable under inserts, no OFFSET scans.
pub(super) async fn list(
    conn: &mut PgConnection,
    clinic: ClinicId,
    search: &PatientSearch,
    include_archived: bool,
    page: &PageRequest<(String, PatientId)>,
) -> Result<Vec<PatientRecord>, sqlx::Error> {
    let (words, phone_pattern) = match search {
        PatientSearch::All => (None, None),
        PatientSearch::Name(words) => (Some(words.clone()), None),
        PatientSearch::PhonePrefix(digits) => (None, Some(phone_regex(digits))),
    };
    let (after_name, after_id) = match &page.after {
        Some((name, id)) => (Some(name.as_str()), Some(*id)),
        None => (None, None),
    };
    sqlx::query_as(&format!(
        "SELECT {COLUMNS} FROM patients
         WHERE clinic_id = $1
           AND ($2 OR archived_at IS NULL)
           AND ($3::text[] IS NULL OR NOT EXISTS (
                 SELECT 1 FROM unnest($3::text[]) AS w(word)
                 WHERE strpos(' ' || search_name, ' ' || w.word) = 0))
           AND ($4::text IS NULL OR phone ~ $4)
           AND ($5::text IS NULL OR (search_name, id) > ($5, $6))
         ORDER BY search_name, id
         LIMIT $7"
    ))
    .bind(clinic)
    .bind(include_archived)
    .bind(words)
    .bind(phone_pattern)
    .bind(after_name)
    .bind(after_id)
    .bind(page.fetch_limit())
    .fetch_all(conn)
    .await
}

/// Stored numbers may carry a country code the receptionist does not type: "600" must find
/// "+34600…" as well as "600…". `digits` holds only digits and an optional leading `+`.
fn phone_regex(digits: &str) -> String {
    match digits.strip_prefix('+') {
        Some(rest) => format!(r"^\+{rest}"),
        None => format!(r"^(\+[0-9]{{1,3}})?{digits}"),
    }
}

/// Writes the full row after `changes` were applied to the locked current version; `phone` is
/// the change of phone number read in the clinic's country.
pub(super) async fn update(
    conn: &mut PgConnection,
    current: &PatientRecord,
    changes: &PatientChanges,
    phone: Option<Option<&PhoneNumber>>,
) -> Result<PatientRecord, sqlx::Error> {
    let first_name = changes
        .first_name
        .as_ref()
        .map_or(current.first_name.as_str(), |n| n.as_str());
    let last_name = changes
        .last_name
        .as_ref()
        .map_or(current.last_name.as_str(), |n| n.as_str());
    let search_name = crate::text::search_key(&format!("{first_name} {last_name}"));
    let phone = match phone {
        Some(value) => value.map(PhoneNumber::as_str),
        None => current.phone.as_deref(),
    };
    let email = match &changes.email {
        Some(value) => value.as_ref().map(|e| e.as_str()),
        None => current.email.as_deref(),
    };
    let birth_date = match &changes.birth_date {
        Some(value) => value.map(|d| d.date()),
        None => current.birth_date,
    };
    let national_id = match &changes.national_id {
        Some(value) => value.as_ref().map(|n| n.as_str()),
        None => current.national_id.as_deref(),
    };
    let notes = changes
        .notes
        .as_ref()
        .map_or(current.notes.as_str(), |n| n.as_str());
    sqlx::query_as(&format!(
        "UPDATE patients
         SET first_name = $3, last_name = $4, search_name = $5, phone = $6, email = $7,
             birth_date = $8, national_id = $9, notes = $10, updated_at = now()
         WHERE clinic_id = $1 AND id = $2
         RETURNING {COLUMNS}"
    ))
    .bind(current.clinic_id)
    .bind(current.id)
    .bind(first_name)
    .bind(last_name)
    .bind(search_name)
    .bind(phone)
    .bind(email)
    .bind(birth_date)
    .bind(national_id)
    .bind(notes)
    .fetch_one(conn)
    .await
}

/// Sets `archived_at` once; an already archived patient keeps its original date.
pub(super) async fn archive(
    conn: &mut PgConnection,
    clinic: ClinicId,
    id: PatientId,
) -> Result<Option<PatientRecord>, sqlx::Error> {
    sqlx::query_as(&format!(
        "UPDATE patients SET archived_at = COALESCE(archived_at, now()), updated_at = now()
         WHERE clinic_id = $1 AND id = $2
         RETURNING {COLUMNS}"
    ))
    .bind(clinic)
    .bind(id)
    .fetch_optional(conn)
    .await
}

/// Whether the patient exists in the clinic, and if so whether it is archived, for another
/// context about to attach something to the patient (an appointment, an X-ray). The row is
/// share-locked until commit, so the patient cannot be archived under that write.
pub(crate) async fn archived_for_update(
    conn: &mut PgConnection,
    clinic: ClinicId,
    patient: PatientId,
) -> Result<Option<bool>, sqlx::Error> {
    sqlx::query_scalar(
        "SELECT archived_at IS NOT NULL FROM patients WHERE clinic_id = $1 AND id = $2 FOR SHARE",
    )
    .bind(clinic)
    .bind(patient)
    .fetch_optional(conn)
    .await
}

/// Whether the patient exists in the clinic, archived or not (their records stay readable).
pub(crate) async fn exists(
    conn: &mut PgConnection,
    clinic: ClinicId,
    patient: PatientId,
) -> Result<bool, sqlx::Error> {
    sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM patients WHERE clinic_id = $1 AND id = $2)")
        .bind(clinic)
        .bind(patient)
        .fetch_one(conn)
        .await
}
