//! Appointment use cases: the transaction boundaries, the checks that give each refusal its
//! own field, and the mapping of the schema's constraints for what slips past them in a race.

use super::repository;
use super::types::{
    Action, AppointmentChanges, AppointmentFilter, AppointmentRecord, AppointmentResponse,
    AppointmentStatus, Include, IncludedName, InvalidTransition, NewAppointment, SlotError,
    TimeSlot, overlap_detail, transition,
};
use crate::auth::Role;
use crate::catalogs::{self, CatalogKind};
use crate::db::{self, DbError, TenantTx};
use crate::http::conditional::{IfMatch, precondition_holds};
use crate::http::{ApiError, ConflictKind};
use crate::ids::{AppointmentId, ClinicId, PatientId, UserId};
use crate::input::InputError;
use crate::pagination::{Page, PageRequest};
use crate::state::AppState;
use chrono::{DateTime, SecondsFormat, Utc};
use sqlx::PgPool;
use std::collections::HashMap;

#[derive(Debug, thiserror::Error)]
pub enum AppointmentError {
    #[error("appointment not found")]
    NotFound,
    /// `If-Match` named a version that is no longer current.
    #[error("the appointment changed since the version in If-Match")]
    PreconditionFailed,
    #[error("no such patient in the clinic")]
    NoSuchPatient,
    #[error("patient is archived")]
    PatientArchived,
    #[error("no such dentist in the clinic")]
    NoSuchDentist,
    #[error("dentist is not an active user")]
    DentistInactive,
    #[error("user is a {}, not a dentist", .0.as_str())]
    NotADentist(Role),
    /// Not in the clinic's merged catalog (another clinic's item included), or retired.
    #[error("procedure is not offered by the clinic")]
    NoSuchProcedure,
    /// The overlapping appointment's slot, when the check found it (not when the constraint
    /// caught a concurrent booking).
    #[error("the dentist has an overlapping appointment")]
    Overlap(Option<TimeSlot>),
    #[error("appointment is {0} and can no longer change")]
    Closed(AppointmentStatus),
    #[error(transparent)]
    InvalidTransition(#[from] InvalidTransition),
    #[error("cannot {action} an appointment before it starts")]
    NotStarted {
        action: Action,
        starts_at: DateTime<Utc>,
    },
    #[error(transparent)]
    Slot(#[from] SlotError),
    #[error(transparent)]
    Db(#[from] DbError),
}

impl From<sqlx::Error> for AppointmentError {
    fn from(error: sqlx::Error) -> Self {
        let error = DbError::from(error);
        match error.constraint() {
            Some("appointments_no_overlap") => AppointmentError::Overlap(None),
            Some("appointments_ends_after_start") => SlotError::EndsNotAfterStart.into(),
            Some("appointments_at_most_12_hours") => SlotError::TooLong.into(),
            Some("appointments_patient_fkey") => AppointmentError::NoSuchPatient,
            Some("appointments_dentist_fkey") => AppointmentError::NoSuchDentist,
            _ => AppointmentError::Db(error),
        }
    }
}

impl From<AppointmentError> for ApiError {
    fn from(error: AppointmentError) -> Self {
        match error {
            AppointmentError::PreconditionFailed => ApiError::PreconditionFailed {
                what: "appointment",
            },
            AppointmentError::NotFound => ApiError::NotFound {
                what: "appointment",
            },
            AppointmentError::NoSuchPatient => {
                ApiError::validation("patient_id", "no such patient in your clinic")
            }
            AppointmentError::PatientArchived => ApiError::validation(
                "patient_id",
                "the patient is archived; archived patients cannot be booked",
            ),
            AppointmentError::NoSuchDentist => {
                ApiError::validation("dentist_id", "no such dentist in your clinic")
            }
            AppointmentError::DentistInactive => {
                ApiError::validation("dentist_id", "the dentist is no longer an active user")
            }
            AppointmentError::NotADentist(role) => ApiError::validation(
                "dentist_id",
                format!("must be a dentist; this user is a {}", role.as_str()),
            ),
            AppointmentError::NoSuchProcedure => ApiError::validation(
                "procedure_code",
                "no such procedure in your clinic's catalog (or it is no longer offered)",
            ),
            AppointmentError::Overlap(other) => ApiError::Conflict {
                kind: ConflictKind::AppointmentOverlap,
                detail: overlap_detail(other),
                field: Some("starts_at".into()),
            },
            AppointmentError::Closed(status) => ApiError::Conflict {
                kind: ConflictKind::AppointmentClosed,
                detail: format!(
                    "The appointment is {status}; only scheduled or confirmed appointments can \
                     be changed."
                ),
                field: None,
            },
            AppointmentError::InvalidTransition(error) => ApiError::Conflict {
                kind: ConflictKind::InvalidTransition,
                detail: error.to_string(),
                field: None,
            },
            AppointmentError::NotStarted { action, starts_at } => ApiError::Conflict {
                kind: ConflictKind::AppointmentNotStarted,
                detail: format!(
                    "Cannot {} an appointment before it starts ({}).",
                    match action {
                        Action::NoShow => "record a no-show for",
                        other => other.as_str(),
                    },
                    starts_at.to_rfc3339_opts(SecondsFormat::AutoSi, true)
                ),
                field: None,
            },
            AppointmentError::Slot(error) => error.into(),
            AppointmentError::Db(error) => error.into(),
        }
    }
}

impl From<SlotError> for ApiError {
    fn from(error: SlotError) -> Self {
        InputError::from(error).into()
    }
}

/// The outcome of a status change; `from == record.status` when it was a repeat.
#[derive(Debug)]
pub struct Transitioned {
    pub record: AppointmentRecord,
    pub from: AppointmentStatus,
}

impl Transitioned {
    pub fn changed(&self) -> bool {
        self.from != self.record.status
    }
}

pub struct AppointmentService<'a> {
    db: &'a PgPool,
}

impl<'a> AppointmentService<'a> {
    pub fn new(state: &'a AppState) -> Self {
        Self { db: &state.db }
    }

    pub async fn book(
        &self,
        clinic: ClinicId,
        booked_by: UserId,
        appointment: &NewAppointment,
    ) -> Result<AppointmentRecord, AppointmentError> {
        let mut tx = db::begin_tenant(self.db, clinic).await?;
        check_patient(&mut tx, clinic, appointment.patient_id).await?;
        check_dentist(&mut tx, clinic, appointment.dentist_id).await?;
        if let Some(code) = &appointment.procedure_code {
            check_procedure(&mut tx, clinic, code.as_str()).await?;
        }
        check_free(
            &mut tx,
            clinic,
            appointment.dentist_id,
            &appointment.slot,
            None,
        )
        .await?;
        let record = repository::insert(&mut tx, clinic, booked_by, appointment).await?;
        tx.commit().await?;
        Ok(record)
    }

    pub async fn find(
        &self,
        clinic: ClinicId,
        id: AppointmentId,
    ) -> Result<AppointmentRecord, AppointmentError> {
        let mut tx = db::begin_tenant(self.db, clinic).await?;
        let record = repository::find(&mut tx, clinic, id, false).await?;
        tx.commit().await?;
        record.ok_or(AppointmentError::NotFound)
    }

    pub async fn list(
        &self,
        clinic: ClinicId,
        filter: &AppointmentFilter,
        page: &PageRequest<(DateTime<Utc>, AppointmentId)>,
        include: Include,
    ) -> Result<Page<AppointmentResponse>, AppointmentError> {
        let mut tx = db::begin_tenant(self.db, clinic).await?;
        let rows = repository::list(&mut tx, clinic, filter, page).await?;
        // One query per included name over the whole page, never one per row.
        let mut patients = HashMap::new();
        if include.patient {
            let ids: Vec<PatientId> = rows.iter().map(|row| row.patient_id).collect();
            patients.extend(repository::patient_names(&mut tx, clinic, &ids).await?);
        }
        let mut dentists = HashMap::new();
        if include.dentist {
            let ids: Vec<UserId> = rows.iter().map(|row| row.dentist_id).collect();
            dentists.extend(repository::user_names(&mut tx, clinic, &ids).await?);
        }
        tx.commit().await?;
        let page = Page::from_rows(rows, page.limit, |a| (a.starts_at, a.id));
        Ok(page.map(|record| {
            let patient = patients.get(&record.patient_id).cloned();
            let dentist = dentists.get(&record.dentist_id).cloned();
            let mut response = AppointmentResponse::from(record);
            response.patient = patient.map(|name| IncludedName { name });
            response.dentist = dentist.map(|name| IncludedName { name });
            response
        }))
    }

    /// Moves or edits an open appointment under a row lock (and, with `if_match`, only while it
    /// is still the version named), with the same rules as booking:
    /// a start that moves must land in the booking window, a new dentist must be an active dentist,
    /// and the resulting slot must be free (the appointment itself does not count).
    pub async fn reschedule(
        &self,
        clinic: ClinicId,
        id: AppointmentId,
        changes: &AppointmentChanges,
        if_match: Option<&IfMatch>,
    ) -> Result<AppointmentRecord, AppointmentError> {
        let mut tx = db::begin_tenant(self.db, clinic).await?;
        let current = repository::find(&mut tx, clinic, id, true)
            .await?
            .ok_or(AppointmentError::NotFound)?;
        if !precondition_holds(if_match, || {
            Some(AppointmentResponse::from(current.clone()))
        }) {
            return Err(AppointmentError::PreconditionFailed);
        }
        if !current.status.is_open() {
            return Err(AppointmentError::Closed(current.status));
        }
        let slot = changes.slot_after(current.slot())?;
        // Only a start that moves must be in the booking window: a form that sends the
        // unchanged start of last week's open appointment back is not moving it.
        if slot.starts_at() != current.starts_at {
            slot.check_bookable(Utc::now())?;
        }
        let dentist = changes.dentist_id.unwrap_or(current.dentist_id);
        if dentist != current.dentist_id {
            check_dentist(&mut tx, clinic, dentist).await?;
        }
        // Only a code that changes: an open appointment keeps a procedure retired since.
        if let Some(Some(code)) = &changes.procedure_code
            && current.procedure_code.as_deref() != Some(code.as_str())
        {
            check_procedure(&mut tx, clinic, code.as_str()).await?;
        }
        if dentist != current.dentist_id || slot != current.slot() {
            check_free(&mut tx, clinic, dentist, &slot, Some(current.id)).await?;
        }
        let record = repository::update(&mut tx, &current, &slot, dentist, changes).await?;
        tx.commit().await?;
        Ok(record)
    }

    /// Applies `action` under a row lock. A repeat (confirming a confirmed appointment)
    /// answers the appointment unchanged, without touching `status_changed_at`.
    pub async fn transition(
        &self,
        clinic: ClinicId,
        id: AppointmentId,
        action: Action,
    ) -> Result<Transitioned, AppointmentError> {
        let mut tx = db::begin_tenant(self.db, clinic).await?;
        let current = repository::find(&mut tx, clinic, id, true)
            .await?
            .ok_or(AppointmentError::NotFound)?;
        let from = current.status;
        let to = transition(from, action)?;
        if to == from {
            tx.commit().await?;
            return Ok(Transitioned {
                record: current,
                from,
            });
        }
        if action.needs_started() && current.starts_at > Utc::now() {
            return Err(AppointmentError::NotStarted {
                action,
                starts_at: current.starts_at,
            });
        }
        let record = repository::set_status(&mut tx, &current, to).await?;
        tx.commit().await?;
        Ok(Transitioned { record, from })
    }
}

async fn check_patient(
    tx: &mut TenantTx,
    clinic: ClinicId,
    patient: PatientId,
) -> Result<(), AppointmentError> {
    match crate::patients::repository::archived_for_update(tx, clinic, patient).await? {
        None => Err(AppointmentError::NoSuchPatient),
        Some(true) => Err(AppointmentError::PatientArchived),
        Some(false) => Ok(()),
    }
}

async fn check_dentist(
    tx: &mut TenantTx,
    clinic: ClinicId,
    dentist: UserId,
) -> Result<(), AppointmentError> {
    match repository::staff_member(tx, clinic, dentist).await? {
        None => Err(AppointmentError::NoSuchDentist),
        Some((Role::Dentist, true)) => Ok(()),
        Some((Role::Dentist, false)) => Err(AppointmentError::DentistInactive),
        Some((role, _)) => Err(AppointmentError::NotADentist(role)),
    }
}

async fn check_procedure(
    tx: &mut TenantTx,
    clinic: ClinicId,
    code: &str,
) -> Result<(), AppointmentError> {
    if catalogs::repository::offers(tx, clinic, CatalogKind::Procedure, code).await? {
        Ok(())
    } else {
        Err(AppointmentError::NoSuchProcedure)
    }
}

/// Finds a clash before writing, so the 409 can say when the other appointment is; the
/// exclusion constraint still decides between two bookings racing for the same minute.
async fn check_free(
    tx: &mut TenantTx,
    clinic: ClinicId,
    dentist: UserId,
    slot: &TimeSlot,
    except: Option<AppointmentId>,
) -> Result<(), AppointmentError> {
    match repository::first_overlap(tx, clinic, dentist, slot, except).await? {
        Some(other) => Err(AppointmentError::Overlap(Some(other))),
        None => Ok(()),
    }
}
