//! Schedule use cases: a dentist's weekly hours read and replaced, time off entered and removed,
//! the clinic's chairs. Each write is recorded in the audit trail and, once committed, drops the
//! clinic's cached free time (`super::forget`).

use super::calendar::{self, Span};
use super::capacity::{clinic_calendar, read_calendar};
use super::repository::{self, Lock, TimeOffEntry};
use super::{
    Chair, CreatedTimeOff, MAX_LISTING_DAYS, NewTimeOff, TimeOff, TimeOffQuery, TimeOffWhen,
    WeeklySchedule, WorkingInterval, query_range,
};
use crate::audit::{self, Action, Actor, Changes, FieldPolicy};
use crate::auth::Role;
use crate::db::{self, DbError};
use crate::http::{ApiError, ConflictKind};
use crate::ids::{ChairId, ClinicId, TimeOffId, UserId};
use crate::input::InputError;
use crate::state::AppState;
use chrono::{NaiveDate, Utc};
use chrono_tz::Tz;
use serde::Serialize;
use sqlx::{PgConnection, PgPool};

/// Stored ids and timestamps are not what a change is about.
const AUDITED: FieldPolicy = FieldPolicy {
    ignored: &["id", "created_at", "updated_at"],
    redacted: &[],
};

/// What a replaced weekly schedule recorded in the audit trail looks like.
#[derive(Serialize)]
struct ScheduleRecord {
    intervals: Vec<IntervalRecord>,
}

#[derive(Serialize)]
struct IntervalRecord {
    weekday: super::types::DayOfWeek,
    start: String,
    end: String,
    valid_from: NaiveDate,
    valid_until: Option<NaiveDate>,
}

impl ScheduleRecord {
    fn of(intervals: &[WorkingInterval]) -> Self {
        Self {
            intervals: intervals
                .iter()
                .map(|i| IntervalRecord {
                    weekday: i.weekday,
                    start: i.start.to_string(),
                    end: i.end.to_string(),
                    valid_from: i.valid_from,
                    valid_until: i.valid_until,
                })
                .collect(),
        }
    }
}

pub struct ScheduleService<'a> {
    state: &'a AppState,
    db: &'a PgPool,
}

impl<'a> ScheduleService<'a> {
    pub fn new(state: &'a AppState) -> Self {
        Self {
            state,
            db: &state.db,
        }
    }

    pub async fn working_hours(
        &self,
        clinic: ClinicId,
        dentist: Option<UserId>,
    ) -> Result<Vec<WorkingInterval>, ApiError> {
        let mut tx = db::begin_tenant(self.db, clinic).await?;
        let hours = repository::working_hours(&mut tx, clinic, dentist)
            .await
            .map_err(DbError::from)?;
        tx.commit().await.map_err(DbError::from)?;
        Ok(hours)
    }

    /// Replaces `dentist`'s weekly schedule with `schedule`, recorded in the audit trail.
    pub async fn replace_working_hours(
        &self,
        clinic: ClinicId,
        actor: &Actor,
        dentist: UserId,
        schedule: &WeeklySchedule,
    ) -> Result<Vec<WorkingInterval>, ApiError> {
        let mut tx = db::begin_tenant(self.db, clinic).await?;
        require_dentist(&mut tx, clinic, dentist, DentistIn::Path).await?;
        let before = repository::working_hours(&mut tx, clinic, Some(dentist))
            .await
            .map_err(DbError::from)?;
        repository::replace_working_hours(&mut tx, clinic, dentist, &schedule.0)
            .await
            .map_err(|error| match DbError::from(error) {
                // Only a bug in the request's own check could get here: say so as a 422 all
                // the same, since the request is what overlaps.
                error if error.constraint() == Some("working_hours_no_overlap") => ApiError::from(
                    InputError::invalid("intervals", "two intervals overlap on a date both apply"),
                ),
                error => error.into(),
            })?;
        let after = repository::working_hours(&mut tx, clinic, Some(dentist))
            .await
            .map_err(DbError::from)?;
        let changes = Changes::between(
            Some(&ScheduleRecord::of(&before)),
            Some(&ScheduleRecord::of(&after)),
            &AUDITED,
        );
        if !changes.is_empty() {
            audit::record(
                &mut tx,
                actor,
                Some(clinic),
                Action::WorkingHoursReplace,
                &dentist.to_string(),
                &changes,
            )
            .await
            .map_err(DbError::from)?;
        }
        tx.commit().await.map_err(DbError::from)?;
        super::forget_schedule(self.state, clinic).await;
        Ok(after)
    }

    /// Time off overlapping the clinic dates of `query` (today and the next 90 days when it
    /// names none; at most 366 days).
    pub async fn time_off(
        &self,
        clinic: ClinicId,
        query: &TimeOffQuery,
    ) -> Result<Vec<TimeOff>, ApiError> {
        let mut tx = db::begin_tenant(self.db, clinic).await?;
        let zone = clinic_calendar(&mut tx, clinic).await?.zone;
        let today = calendar::local_date(zone, Utc::now());
        let (from, to) = query_range(query.from, query.to, today, 90, MAX_LISTING_DAYS + 1)?;
        let range = days_span(zone, from, to)?;
        let items = repository::time_off(&mut tx, clinic, &range, query.dentist_id)
            .await
            .map_err(DbError::from)?;
        tx.commit().await.map_err(DbError::from)?;
        if items.len() as i64 > repository::MAX_TIME_OFF_ROWS {
            return Err(InputError::malformed(
                "to",
                format!(
                    "more than {} entries in the range: ask for fewer days",
                    repository::MAX_TIME_OFF_ROWS
                ),
            )
            .into());
        }
        Ok(items)
    }

    pub async fn add_time_off(
        &self,
        clinic: ClinicId,
        actor: &Actor,
        created_by: UserId,
        new: &NewTimeOff,
    ) -> Result<CreatedTimeOff, ApiError> {
        let mut tx = db::begin_tenant(self.db, clinic).await?;
        // Locks out bookings that would check against the schedule as it was.
        let zone = match new.dentist_id {
            Some(dentist) => {
                require_dentist(&mut tx, clinic, dentist, DentistIn::Body).await?;
                clinic_calendar(&mut tx, clinic).await?.zone
            }
            None => read_calendar(&mut tx, clinic, Lock::Update).await?.zone,
        };
        let (span, all_day) = match new.when {
            TimeOffWhen::Days { first, last } => (days_span(zone, first, last)?, true),
            TimeOffWhen::Stretch { starts_at, ends_at } => (
                Span::new(starts_at, ends_at)
                    .ok_or_else(|| InputError::invalid("ends_at", "must be after starts_at"))?,
                false,
            ),
        };
        let entry = TimeOffEntry {
            dentist_id: new.dentist_id,
            kind: new.kind,
            span,
            all_day,
            label: &new.label,
        };
        let time_off = repository::insert_time_off(&mut tx, clinic, created_by, &entry)
            .await
            .map_err(DbError::from)?;
        let overlapping =
            repository::overlapping_appointments(&mut tx, clinic, new.dentist_id, &span)
                .await
                .map_err(DbError::from)?;
        audit::record(
            &mut tx,
            actor,
            Some(clinic),
            Action::TimeOffCreate,
            &time_off.id.to_string(),
            &Changes::between(None, Some(&time_off), &AUDITED),
        )
        .await
        .map_err(DbError::from)?;
        tx.commit().await.map_err(DbError::from)?;
        super::forget_schedule(self.state, clinic).await;
        Ok(CreatedTimeOff {
            time_off,
            overlapping_appointments: overlapping,
        })
    }

    pub async fn remove_time_off(
        &self,
        clinic: ClinicId,
        actor: &Actor,
        id: TimeOffId,
    ) -> Result<(), ApiError> {
        let mut tx = db::begin_tenant(self.db, clinic).await?;
        let removed = repository::delete_time_off(&mut tx, clinic, id)
            .await
            .map_err(DbError::from)?
            .ok_or(ApiError::NotFound { what: "time off" })?;
        audit::record(
            &mut tx,
            actor,
            Some(clinic),
            Action::TimeOffDelete,
            &id.to_string(),
            &Changes::between(Some(&removed), None, &AUDITED),
        )
        .await
        .map_err(DbError::from)?;
        tx.commit().await.map_err(DbError::from)?;
        super::forget_schedule(self.state, clinic).await;
        Ok(())
    }

    pub async fn chairs(
        &self,
        clinic: ClinicId,
        active: Option<bool>,
    ) -> Result<Vec<Chair>, ApiError> {
        let mut tx = db::begin_tenant(self.db, clinic).await?;
        let chairs = repository::chairs(&mut tx, clinic, active)
            .await
            .map_err(DbError::from)?;
        tx.commit().await.map_err(DbError::from)?;
        Ok(chairs)
    }

    pub async fn add_chair(
        &self,
        clinic: ClinicId,
        actor: &Actor,
        name: &str,
    ) -> Result<Chair, ApiError> {
        let mut tx = db::begin_tenant(self.db, clinic).await?;
        let chair = repository::insert_chair(&mut tx, clinic, name)
            .await
            .map_err(|error| name_taken_or(error, name))?;
        audit::record(
            &mut tx,
            actor,
            Some(clinic),
            Action::ChairCreate,
            &chair.id.to_string(),
            &Changes::between(None, Some(&chair), &AUDITED),
        )
        .await
        .map_err(DbError::from)?;
        tx.commit().await.map_err(DbError::from)?;
        super::forget_schedule(self.state, clinic).await;
        Ok(chair)
    }

    /// Renames or (de)activates a chair; a change to nothing answers the chair as it is.
    pub async fn change_chair(
        &self,
        clinic: ClinicId,
        actor: &Actor,
        id: ChairId,
        name: Option<String>,
        active: Option<bool>,
    ) -> Result<Chair, ApiError> {
        let mut tx = db::begin_tenant(self.db, clinic).await?;
        let current = repository::chair(&mut tx, clinic, id, Lock::Update)
            .await
            .map_err(DbError::from)?
            .ok_or(ApiError::NotFound { what: "chair" })?;
        let next = Chair {
            name: name.unwrap_or_else(|| current.name.clone()),
            active: active.unwrap_or(current.active),
            ..current.clone()
        };
        let changes = Changes::between(Some(&current), Some(&next), &AUDITED);
        if changes.is_empty() {
            tx.commit().await.map_err(DbError::from)?;
            return Ok(current);
        }
        let saved = repository::update_chair(&mut tx, clinic, &next)
            .await
            .map_err(|error| name_taken_or(error, &next.name))?;
        audit::record(
            &mut tx,
            actor,
            Some(clinic),
            Action::ChairUpdate,
            &id.to_string(),
            &changes,
        )
        .await
        .map_err(DbError::from)?;
        tx.commit().await.map_err(DbError::from)?;
        super::forget_schedule(self.state, clinic).await;
        Ok(saved)
    }
}

/// The instants from `first`'s local midnight to the midnight after `last`.
fn days_span(zone: Tz, first: NaiveDate, last: NaiveDate) -> Result<Span, ApiError> {
    let start = calendar::local_instant(zone, first, 0);
    let end = calendar::local_instant(zone, last, calendar::MINUTES_PER_DAY);
    Span::new(start, end)
        .ok_or_else(|| InputError::invalid("last_day", "must not be before first_day").into())
}

/// Where the dentist was named: a path parameter (unknown → 404) or a body field (→ 422).
#[derive(Clone, Copy)]
enum DentistIn {
    Path,
    Body,
}

/// `user` is a dentist of the clinic (active or not); their membership is locked for update,
/// so no booking checks against their schedule while it changes.
async fn require_dentist(
    conn: &mut PgConnection,
    clinic: ClinicId,
    user: UserId,
    named_in: DentistIn,
) -> Result<(), ApiError> {
    let role = repository::member_role(conn, clinic, user, Lock::Update)
        .await
        .map_err(DbError::from)?
        .map(|(role, _)| role);
    match (role, named_in) {
        (Some(Role::Dentist), _) => Ok(()),
        (None, DentistIn::Path) => Err(ApiError::NotFound {
            what: "staff member",
        }),
        (None, DentistIn::Body) => Err(ApiError::validation(
            "dentist_id",
            "no such dentist in your clinic",
        )),
        (Some(role), _) => Err(ApiError::validation(
            "dentist_id",
            format!("must be a dentist; this member is a {}", role.as_str()),
        )),
    }
}

fn name_taken_or(error: sqlx::Error, name: &str) -> ApiError {
    let error = DbError::from(error);
    if error.constraint() == Some("chairs_clinic_name_key") {
        return ApiError::Conflict {
            kind: ConflictKind::ChairNameTaken,
            detail: format!("The clinic has a chair named {name} already."),
            field: Some("name".into()),
        };
    }
    error.into()
}
