//! Appointment SQL. Every query runs inside a tenant transaction (row-level security) and also
//! filters on `clinic_id`, which is what the `(clinic_id, …)` indexes are built for.

use super::types::{
    AppointmentChanges, AppointmentFilter, AppointmentRecord, AppointmentStatus, NewAppointment,
    TimeSlot,
};
use crate::auth::Role;
use crate::ids::{AppointmentId, ChairId, ClinicId, PatientId, UserId};
use crate::pagination::PageRequest;
use crate::schedule::calendar::Span;
use chrono::{DateTime, Utc};
use sqlx::PgConnection;

const COLUMNS: &str = "id, clinic_id, patient_id, dentist_id, starts_at, ends_at, status, reason, \
                       procedure_code, created_by, created_at, updated_at, status_changed_at, \
                       chair_id, booked_with_override";

/// The staff member's role and whether they are active, share-locked until commit so they
/// cannot be deactivated under a booking being made.
pub(super) async fn staff_member(
    conn: &mut PgConnection,
    clinic: ClinicId,
    user: UserId,
) -> Result<Option<(Role, bool)>, sqlx::Error> {
    sqlx::query_as(
        "SELECT role, active FROM memberships WHERE clinic_id = $1 AND user_id = $2 FOR SHARE",
    )
    .bind(clinic)
    .bind(user)
    .fetch_optional(conn)
    .await
}

/// The earliest live appointment of `dentist` overlapping `slot`, other than `except`. Same
/// expression and predicate as the `appointments_no_overlap` constraint, so its GiST index
/// answers it and the two can never disagree.
pub(super) async fn first_overlap(
    conn: &mut PgConnection,
    clinic: ClinicId,
    dentist: UserId,
    slot: &TimeSlot,
    except: Option<AppointmentId>,
) -> Result<Option<TimeSlot>, sqlx::Error> {
    let row: Option<(DateTime<Utc>, DateTime<Utc>)> = sqlx::query_as(
        "SELECT starts_at, ends_at FROM appointments
         WHERE clinic_id = $1 AND dentist_id = $2 AND status <> 'cancelled'
           AND tstzrange(starts_at, ends_at, '[)') && tstzrange($3, $4, '[)')
           AND ($5::uuid IS NULL OR id <> $5)
         ORDER BY starts_at
         LIMIT 1",
    )
    .bind(clinic)
    .bind(dentist)
    .bind(slot.starts_at())
    .bind(slot.ends_at())
    .bind(except)
    .fetch_optional(conn)
    .await?;
    Ok(row.map(|(starts_at, ends_at)| TimeSlot::stored(starts_at, ends_at)))
}

pub(super) async fn insert(
    conn: &mut PgConnection,
    clinic: ClinicId,
    created_by: UserId,
    appointment: &NewAppointment,
) -> Result<AppointmentRecord, sqlx::Error> {
    sqlx::query_as(&format!(
        "INSERT INTO appointments (clinic_id, patient_id, dentist_id, starts_at, ends_at, reason,
                                   procedure_code, created_by, chair_id, booked_with_override)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)
         RETURNING {COLUMNS}"
    ))
    .bind(clinic)
    .bind(appointment.patient_id)
    .bind(appointment.dentist_id)
    .bind(appointment.slot.starts_at())
    .bind(appointment.slot.ends_at())
    .bind(appointment.reason.as_str())
    .bind(appointment.procedure_code.as_ref().map(|c| c.as_str()))
    .bind(created_by)
    .bind(appointment.chair_id)
    .bind(appointment.override_schedule)
    .fetch_one(conn)
    .await
}

pub(super) async fn find(
    conn: &mut PgConnection,
    clinic: ClinicId,
    id: AppointmentId,
    lock: bool,
) -> Result<Option<AppointmentRecord>, sqlx::Error> {
    let lock = if lock { " FOR UPDATE" } else { "" };
    sqlx::query_as(&format!(
        "SELECT {COLUMNS} FROM appointments WHERE clinic_id = $1 AND id = $2{lock}"
    ))
    .bind(clinic)
    .bind(id)
    .fetch_optional(conn)
    .await
}

/// The "first last" of each of `patients` found in the clinic.
pub(super) async fn patient_names(
    conn: &mut PgConnection,
    clinic: ClinicId,
    patients: &[PatientId],
) -> Result<Vec<(PatientId, String)>, sqlx::Error> {
    sqlx::query_as(
        "SELECT id, first_name || ' ' || last_name FROM patients \
         WHERE clinic_id = $1 AND id = ANY($2)",
    )
    .bind(clinic)
    .bind(patients)
    .fetch_all(conn)
    .await
}

/// The full name of each of `users` found in the clinic.
pub(super) async fn user_names(
    conn: &mut PgConnection,
    clinic: ClinicId,
    users: &[UserId],
) -> Result<Vec<(UserId, String)>, sqlx::Error> {
    sqlx::query_as(
        "SELECT u.id, u.full_name
           FROM memberships m JOIN users u ON u.id = m.user_id
          WHERE m.clinic_id = $1 AND m.user_id = ANY($2)",
    )
    .bind(clinic)
    .bind(users)
    .fetch_all(conn)
    .await
}

/// Every appointment that is not cancelled overlapping `span` (only `dentist`'s when given), by
/// start. Bounded without a limit: a dentist's live appointments never overlap (a constraint).
pub(super) async fn live_within(
    conn: &mut PgConnection,
    clinic: ClinicId,
    span: &Span,
    dentist: Option<UserId>,
) -> Result<Vec<AppointmentRecord>, sqlx::Error> {
    sqlx::query_as(&format!(
        // An appointment lasts at most 12 hours (a table constraint): bounding the start from
        // both sides keeps this a short range scan of (clinic_id, starts_at).
        "SELECT {COLUMNS} FROM appointments
          WHERE clinic_id = $1 AND status <> 'cancelled'
            AND starts_at > $2 - interval '12 hours' AND starts_at < $3 AND ends_at > $2
            AND ($4::uuid IS NULL OR dentist_id = $4)
          ORDER BY starts_at, id"
    ))
    .bind(clinic)
    .bind(span.start)
    .bind(span.end)
    .bind(dentist)
    .fetch_all(conn)
    .await
}

/// Appointments starting in `[from, to)`, keyset-paginated over `(starts_at, id)`: stable
/// under inserts, no OFFSET scans, served by `(clinic_id, starts_at, id)`.
pub(super) async fn list(
    conn: &mut PgConnection,
    clinic: ClinicId,
    filter: &AppointmentFilter,
    page: &PageRequest<(DateTime<Utc>, AppointmentId)>,
) -> Result<Vec<AppointmentRecord>, sqlx::Error> {
    let (after_start, after_id) = match page.after {
        Some((starts_at, id)) => (Some(starts_at), Some(id)),
        None => (None, None),
    };
    sqlx::query_as(&format!(
        "SELECT {COLUMNS} FROM appointments
         WHERE clinic_id = $1
           AND starts_at >= $2 AND starts_at < $3
           AND ($4::uuid IS NULL OR dentist_id = $4)
           AND ($5::uuid IS NULL OR patient_id = $5)
           AND ($6::appointment_status[] IS NULL OR status = ANY($6))
           AND ($7::timestamptz IS NULL OR (starts_at, id) > ($7, $8))
         ORDER BY starts_at, id
         LIMIT $9"
    ))
    .bind(clinic)
    .bind(filter.from)
    .bind(filter.to)
    .bind(filter.dentist_id)
    .bind(filter.patient_id)
    .bind(filter.statuses.as_deref())
    .bind(after_start)
    .bind(after_id)
    .bind(page.fetch_limit())
    .fetch_all(conn)
    .await
}

/// Writes the full row after `changes` were applied to the locked current version.
/// Where a rescheduled appointment ends up: its slot, dentist and chair, and whether an admin
/// overrode the schedule to put it there.
pub(super) struct Placement {
    pub slot: TimeSlot,
    pub dentist: UserId,
    pub chair: Option<ChairId>,
    pub booked_with_override: bool,
}

pub(super) async fn update(
    conn: &mut PgConnection,
    current: &AppointmentRecord,
    placement: &Placement,
    changes: &AppointmentChanges,
) -> Result<AppointmentRecord, sqlx::Error> {
    let reason = changes
        .reason
        .as_ref()
        .map_or(current.reason.as_str(), |r| r.as_str());
    let procedure_code = match &changes.procedure_code {
        Some(code) => code.as_ref().map(|c| c.as_str()),
        None => current.procedure_code.as_deref(),
    };
    sqlx::query_as(&format!(
        "UPDATE appointments
         SET starts_at = $3, ends_at = $4, dentist_id = $5, reason = $6, procedure_code = $7,
             chair_id = $8, booked_with_override = $9, updated_at = now()
         WHERE clinic_id = $1 AND id = $2
         RETURNING {COLUMNS}"
    ))
    .bind(current.clinic_id)
    .bind(current.id)
    .bind(placement.slot.starts_at())
    .bind(placement.slot.ends_at())
    .bind(placement.dentist)
    .bind(reason)
    .bind(procedure_code)
    .bind(placement.chair)
    .bind(placement.booked_with_override)
    .fetch_one(conn)
    .await
}

pub(super) async fn set_status(
    conn: &mut PgConnection,
    current: &AppointmentRecord,
    status: AppointmentStatus,
) -> Result<AppointmentRecord, sqlx::Error> {
    sqlx::query_as(&format!(
        "UPDATE appointments
         SET status = $3, status_changed_at = now(), updated_at = now()
         WHERE clinic_id = $1 AND id = $2
         RETURNING {COLUMNS}"
    ))
    .bind(current.clinic_id)
    .bind(current.id)
    .bind(status)
    .fetch_one(conn)
    .await
}
