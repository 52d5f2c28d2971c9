//! The `waiting_list` table.

use super::{NewEntry, WaitingListEntry};
use crate::ids::{ClinicId, PatientId, UserId, WaitingListEntryId};
use crate::pagination::PageRequest;
use chrono::{DateTime, NaiveDate, Utc};
use sqlx::PgConnection;

const COLUMNS: &str = "id, patient_id, procedure_code, duration_minutes, dentist_id, window_from, \
                       window_until, notes, created_by, created_at";

pub(super) async fn insert(
    conn: &mut PgConnection,
    clinic: ClinicId,
    created_by: UserId,
    entry: &NewEntry,
    minutes: u32,
) -> Result<WaitingListEntry, sqlx::Error> {
    sqlx::query_as(&format!(
        "INSERT INTO waiting_list (clinic_id, patient_id, procedure_code, duration_minutes,
                                   dentist_id, window_from, window_until, notes, created_by)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)
         RETURNING {COLUMNS}"
    ))
    .bind(clinic)
    .bind(entry.patient_id)
    .bind(entry.procedure_code.as_deref())
    .bind(i32::try_from(minutes).unwrap_or(i32::MAX))
    .bind(entry.dentist_id)
    .bind(entry.window_from)
    .bind(entry.window_until)
    .bind(&entry.notes)
    .bind(created_by)
    .fetch_one(conn)
    .await
}

/// Who and what a listing asks for.
pub(super) struct Filter {
    pub dentist: Option<UserId>,
    pub patient: Option<PatientId>,
    pub expired: bool,
    pub today: NaiveDate,
}

/// One page, first come first served.
pub(super) async fn list(
    conn: &mut PgConnection,
    clinic: ClinicId,
    filter: &Filter,
    page: &PageRequest<(DateTime<Utc>, WaitingListEntryId)>,
) -> Result<Vec<WaitingListEntry>, sqlx::Error> {
    let (after_at, after_id) = match page.after {
        Some((at, id)) => (Some(at), Some(id)),
        None => (None, None),
    };
    sqlx::query_as(&format!(
        "SELECT {COLUMNS} FROM waiting_list
          WHERE clinic_id = $1
            AND ($2::uuid IS NULL OR dentist_id = $2 OR dentist_id IS NULL)
            AND ($3::uuid IS NULL OR patient_id = $3)
            AND (window_until < $4) = $5
            AND ($6::timestamptz IS NULL OR (created_at, id) > ($6, $7))
          ORDER BY created_at, id
          LIMIT $8"
    ))
    .bind(clinic)
    .bind(filter.dentist)
    .bind(filter.patient)
    .bind(filter.today)
    .bind(filter.expired)
    .bind(after_at)
    .bind(after_id)
    .bind(page.fetch_limit())
    .fetch_all(conn)
    .await
}

pub(super) async fn delete(
    conn: &mut PgConnection,
    clinic: ClinicId,
    id: WaitingListEntryId,
) -> Result<Option<WaitingListEntry>, sqlx::Error> {
    sqlx::query_as(&format!(
        "DELETE FROM waiting_list WHERE clinic_id = $1 AND id = $2 RETURNING {COLUMNS}"
    ))
    .bind(clinic)
    .bind(id)
    .fetch_optional(conn)
    .await
}

/// The most entries one freed stretch is matched against, first come first served.
const MAX_CANDIDATES: i64 = 200;

/// The entries that might take time freed for `dentist` on the clinic dates `first..=last`:
/// theirs or any dentist's, whose window reaches those dates, short enough for `minutes`.
pub(super) async fn candidates(
    conn: &mut PgConnection,
    clinic: ClinicId,
    dentist: UserId,
    (first, last): (NaiveDate, NaiveDate),
    minutes: i64,
) -> Result<Vec<WaitingListEntry>, sqlx::Error> {
    sqlx::query_as(&format!(
        "SELECT {COLUMNS} FROM waiting_list
          WHERE clinic_id = $1 AND (dentist_id = $2 OR dentist_id IS NULL)
            AND window_from <= $4 AND window_until >= $3 AND duration_minutes <= $5
          ORDER BY created_at, id
          LIMIT $6"
    ))
    .bind(clinic)
    .bind(dentist)
    .bind(first)
    .bind(last)
    .bind(minutes)
    .bind(MAX_CANDIDATES)
    .fetch_all(conn)
    .await
}
