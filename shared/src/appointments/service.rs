//! Appointment use cases: the transaction boundaries, the checks that give each refusal its
//! own field, and the mapping of the schema's constraints for what slips past them in a race.

use super::repository;
use super::repository::Placement;
use super::types::{
    Action, AppointmentChanges, AppointmentFilter, AppointmentRecord, AppointmentResponse,
    AppointmentStatus, Include, IncludedName, InvalidTransition, NewAppointment, SlotError,
    TimeSlot, overlap_detail, transition,
};
use crate::audit::{self, Actor, Changes, FieldPolicy};
use crate::auth::Role;
use crate::catalogs::{self, CatalogKind};
use crate::db::{self, DbError, TenantTx};
use crate::http::conditional::{IfMatch, precondition_holds};
use crate::http::{ApiError, ConflictKind};
use crate::ids::{AppointmentId, ClinicId, PatientId, UserId};
use crate::input::InputError;
use crate::pagination::{Page, PageRequest};
use crate::schedule::{self, Booking, CapacityError, calendar::Span, waiting_list};
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
    /// The agenda has no room: outside the dentist's hours, on time off, in a taken chair.
    #[error(transparent)]
    Capacity(#[from] CapacityError),
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
            Some("appointments_chair_no_overlap") => CapacityError::ChairTaken(None).into(),
            Some("appointments_chair_fkey") => CapacityError::NoSuchChair.into(),
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
            AppointmentError::Capacity(error) => error.into(),
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
    state: &'a AppState,
    db: &'a PgPool,
}

impl<'a> AppointmentService<'a> {
    pub fn new(state: &'a AppState) -> Self {
        Self {
            state,
            db: &state.db,
        }
    }

    /// Books `appointment` if the agenda has room (`crate::schedule::check_booking`) and the
    /// dentist is free, all in one transaction; an override is recorded in the audit trail.
    pub async fn book(
        &self,
        clinic: ClinicId,
        actor: &Actor,
        booked_by: UserId,
        appointment: &NewAppointment,
    ) -> Result<AppointmentRecord, AppointmentError> {
        let mut tx = db::begin_tenant(self.db, clinic).await?;
        check_patient(&mut tx, clinic, appointment.patient_id).await?;
        check_dentist(&mut tx, clinic, appointment.dentist_id).await?;
        if let Some(code) = &appointment.procedure_code {
            check_procedure(&mut tx, clinic, code.as_str()).await?;
        }
        let booking = Booking {
            dentist: appointment.dentist_id,
            slot: span(&appointment.slot),
            chair: appointment.chair_id,
            except: None,
            override_schedule: appointment.override_schedule,
        };
        schedule::check_booking(&mut tx, clinic, &booking).await?;
        check_free(
            &mut tx,
            clinic,
            appointment.dentist_id,
            &appointment.slot,
            None,
        )
        .await?;
        let record = repository::insert(&mut tx, clinic, booked_by, appointment).await?;
        if appointment.override_schedule {
            record_override(&mut tx, actor, &record).await?;
        }
        tx.commit().await?;
        schedule::forget_booking(self.state, clinic, &[span(&appointment.slot)]).await;
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
        actor: &Actor,
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
        let moves = dentist != current.dentist_id || slot != current.slot();
        if moves {
            // Also share-locks their membership: their schedule cannot change under the check.
            check_dentist(&mut tx, clinic, dentist).await?;
        }
        // Only a code that changes: an open appointment keeps a procedure retired since.
        if let Some(Some(code)) = &changes.procedure_code
            && current.procedure_code.as_deref() != Some(code.as_str())
        {
            check_procedure(&mut tx, clinic, code.as_str()).await?;
        }
        let chair = changes.chair_id.unwrap_or(current.chair_id);
        if moves || chair != current.chair_id {
            // The schedule is checked only when the appointment moves: a chair given to one
            // booked outside hours (with an override) is not refused for its hours.
            let booking = Booking {
                dentist,
                slot: span(&slot),
                chair,
                except: Some(current.id),
                override_schedule: changes.override_schedule || !moves,
            };
            schedule::check_booking(&mut tx, clinic, &booking).await?;
        }
        if moves {
            check_free(&mut tx, clinic, dentist, &slot, Some(current.id)).await?;
        }
        let placement = Placement {
            slot,
            dentist,
            chair,
            booked_with_override: if moves {
                changes.override_schedule
            } else {
                current.booked_with_override
            },
        };
        let record = repository::update(&mut tx, &current, &placement, changes).await?;
        if moves && changes.override_schedule {
            record_override(&mut tx, actor, &record).await?;
        }
        tx.commit().await?;
        if moves || chair != current.chair_id {
            let touched = [span(&current.slot()), span(&slot)];
            schedule::forget_booking(self.state, clinic, &touched).await;
        }
        if moves {
            let dedupe = format!(
                "waiting-list:{}:{}",
                record.id,
                record.updated_at.timestamp_micros()
            );
            let freed = span(&current.slot());
            waiting_list::time_freed(self.state, clinic, current.dentist_id, freed, dedupe).await;
        }
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
        // A cancellation frees the time; any other change is cheap to forget as well.
        schedule::forget_booking(self.state, clinic, &[span(&record.slot())]).await;
        if to == AppointmentStatus::Cancelled {
            let dedupe = format!("waiting-list:{}:cancelled", record.id);
            let freed = span(&record.slot());
            waiting_list::time_freed(self.state, clinic, record.dentist_id, freed, dedupe).await;
        }
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

fn span(slot: &TimeSlot) -> Span {
    Span {
        start: slot.starts_at(),
        end: slot.ends_at(),
    }
}

/// The audit event of an admin's override: where the appointment was put against the schedule.
async fn record_override(
    tx: &mut TenantTx,
    actor: &Actor,
    record: &AppointmentRecord,
) -> Result<(), AppointmentError> {
    #[derive(serde::Serialize)]
    struct Overridden {
        dentist_id: UserId,
        starts_at: DateTime<Utc>,
        ends_at: DateTime<Utc>,
    }
    let placed = Overridden {
        dentist_id: record.dentist_id,
        starts_at: record.starts_at,
        ends_at: record.ends_at,
    };
    let changes = Changes::between(None, Some(&placed), &OVERRIDE_AUDIT);
    audit::record(
        tx,
        actor,
        Some(record.clinic_id),
        audit::Action::AppointmentOverride,
        &record.id.to_string(),
        &changes,
    )
    .await
    .map_err(|error| AppointmentError::Db(error.into()))
}

const OVERRIDE_AUDIT: FieldPolicy = FieldPolicy {
    ignored: &[],
    redacted: &[],
};

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
