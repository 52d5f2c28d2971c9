//! The capacity check a booking or reschedule makes inside its own transaction
//! ([`check_booking`]): inside one stretch of the dentist's working hours, not on their time off
//! nor a clinic closure (unless an admin overrides), and in a chair that is active and free. The
//! schedule cannot change between the check and the write: the rows it depends on stay locked
//! until that transaction ends (`super::repository`'s locks). Also the clinic's calendar
//! settings every schedule computation starts from ([`clinic_calendar`]).

use super::calendar::{self, Span};
use super::repository::{self, Lock};
use super::{TimeOff, WorkingInterval};
use crate::cache::AVAILABILITY;
use crate::db::{self, DbError};
use crate::http::{ApiError, ConflictKind, ProblemInterval};
use crate::ids::{AppointmentId, ChairId, ClinicId, UserId};
use crate::state::AppState;
use chrono::{Duration, NaiveDate};
use chrono_tz::Tz;
use serde::{Deserialize, Serialize};
use sqlx::PgConnection;

/// A booking (or a reschedule) the capacity check looks at.
#[derive(Clone, Copy, Debug)]
pub struct Booking {
    pub dentist: UserId,
    pub slot: Span,
    pub chair: Option<ChairId>,
    /// The appointment being rescheduled: its own chair time is not in the way.
    pub except: Option<AppointmentId>,
    /// An admin's `override`: hours and time off are not checked (the chair still is).
    pub override_schedule: bool,
}

/// Why the agenda has no room for a booking.
#[derive(Debug, thiserror::Error)]
pub enum CapacityError {
    /// Outside the dentist's hours; `day` is their working time on the slot's date.
    #[error("outside the dentist's working hours")]
    OutsideHours {
        zone: Tz,
        date: NaiveDate,
        day: Vec<Span>,
    },
    #[error("the dentist is away")]
    DentistAway(TimeOff),
    #[error("the clinic is closed")]
    ClinicClosed(TimeOff),
    #[error("no such chair in the clinic")]
    NoSuchChair,
    #[error("the chair is deactivated")]
    ChairInactive,
    /// The chair's other booking, when the check found it (not when the constraint caught a
    /// concurrent one).
    #[error("the chair is taken")]
    ChairTaken(Option<Span>),
    #[error(transparent)]
    Calendar(#[from] CalendarError),
    #[error(transparent)]
    Db(#[from] DbError),
}

impl From<sqlx::Error> for CapacityError {
    fn from(error: sqlx::Error) -> Self {
        Self::Db(error.into())
    }
}

/// The clinic's calendar could not be read: a time zone Pulso's database of zones lacks.
#[derive(Debug, thiserror::Error)]
pub enum CalendarError {
    #[error("the clinic's time zone {0:?} is not in the tz database Pulso was built with")]
    UnknownZone(String),
    #[error("no such clinic")]
    NoClinic,
    #[error("a range of clinic days that ends before it starts")]
    EmptyDays,
}

fn interval(span: &Span) -> ProblemInterval {
    ProblemInterval {
        starts_at: span.start,
        ends_at: span.end,
    }
}

fn away_detail(what: &str, time_off: &TimeOff) -> String {
    let label = if time_off.label.is_empty() {
        String::new()
    } else {
        format!(" \"{}\"", time_off.label)
    };
    format!(
        "{what} then ({}{label}): see `intervals`. An admin may book anyway with \"override\": \
         true.",
        time_off.kind.as_str()
    )
}

impl From<CapacityError> for ApiError {
    fn from(error: CapacityError) -> Self {
        match error {
            CapacityError::OutsideHours { zone, date, day } => {
                let hours: Vec<String> = day
                    .iter()
                    .map(|span| {
                        format!(
                            "{}–{}",
                            span.start.with_timezone(&zone).format("%H:%M"),
                            span.end.with_timezone(&zone).format("%H:%M")
                        )
                    })
                    .collect();
                let detail = if hours.is_empty() {
                    format!(
                        "The dentist does not work at this clinic on {date}: nothing is bookable \
                         that day (PUT /working-hours/{{dentist_id}} sets their hours; an admin \
                         may book anyway with \"override\": true)."
                    )
                } else {
                    format!(
                        "The dentist works {} on {date} ({zone}); the appointment must fit in \
                         one of those stretches (see `intervals`). An admin may book anyway \
                         with \"override\": true.",
                        hours.join(", ")
                    )
                };
                ApiError::CapacityConflict {
                    kind: ConflictKind::OutsideWorkingHours,
                    detail,
                    field: Some("starts_at".into()),
                    intervals: day.iter().map(interval).collect(),
                }
            }
            CapacityError::DentistAway(time_off) => ApiError::CapacityConflict {
                kind: ConflictKind::DentistAway,
                detail: away_detail("The dentist is away", &time_off),
                field: Some("starts_at".into()),
                intervals: vec![ProblemInterval {
                    starts_at: time_off.starts_at,
                    ends_at: time_off.ends_at,
                }],
            },
            CapacityError::ClinicClosed(time_off) => ApiError::CapacityConflict {
                kind: ConflictKind::ClinicClosed,
                detail: away_detail("The clinic is closed", &time_off),
                field: Some("starts_at".into()),
                intervals: vec![ProblemInterval {
                    starts_at: time_off.starts_at,
                    ends_at: time_off.ends_at,
                }],
            },
            CapacityError::NoSuchChair => {
                ApiError::validation("chair_id", "no such chair in your clinic")
            }
            CapacityError::ChairInactive => ApiError::validation(
                "chair_id",
                "the chair is deactivated; choose another or reactivate it",
            ),
            CapacityError::ChairTaken(other) => ApiError::CapacityConflict {
                kind: ConflictKind::ChairTaken,
                detail: "The chair is taken then by another appointment (see `intervals`); \
                         choose another chair or time."
                    .into(),
                field: Some("chair_id".into()),
                intervals: other.iter().map(interval).collect(),
            },
            CapacityError::Calendar(error) => ApiError::internal(error),
            CapacityError::Db(error) => error.into(),
        }
    }
}

/// What the agenda needs of a clinic's settings.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct ClinicCalendar {
    /// As the tz database compiled into Pulso knows it.
    #[serde(with = "zone_name")]
    pub zone: Tz,
    /// The grid of bookable starts.
    pub slot_minutes: u16,
    /// An appointment's length when nothing else says.
    pub default_minutes: u32,
}

pub async fn clinic_calendar(
    conn: &mut PgConnection,
    clinic: ClinicId,
) -> Result<ClinicCalendar, CapacityError> {
    read_calendar(conn, clinic, Lock::None).await
}

/// The clinic's calendar read through the cache (`cache::AVAILABILITY`, under the clinic's
/// schedule generation, which a change of its zone, grid or default length bumps): what a
/// free-slot search or a waiting-list match reads first, for one Redis round trip instead of a
/// transaction.
pub async fn cached_calendar(
    state: &AppState,
    clinic: ClinicId,
) -> Result<ClinicCalendar, CapacityError> {
    let key = state.keys.clinic_calendar(clinic);
    let found = state
        .cache
        .get_or_load(AVAILABILITY, &key, || async {
            let mut tx = db::begin_tenant(&state.db, clinic).await?;
            let calendar = clinic_calendar(&mut tx, clinic).await?;
            tx.commit().await.map_err(DbError::from)?;
            Ok::<_, CapacityError>(Some(calendar))
        })
        .await?;
    Ok(found.ok_or(CalendarError::NoClinic)?)
}

/// A zone kept by its tz database name.
mod zone_name {
    use chrono_tz::Tz;
    use serde::de::Error;
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(zone: &Tz, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(zone.name())
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Tz, D::Error> {
        let name = String::deserialize(deserializer)?;
        name.parse()
            .map_err(|_| D::Error::custom("not a tz database zone"))
    }
}

/// The clinic's time zone from its `clinics.timezone`.
pub fn clinic_zone(name: String) -> Result<Tz, CalendarError> {
    name.parse::<Tz>()
        .map_err(|_| CalendarError::UnknownZone(name))
}

pub(super) async fn read_calendar(
    conn: &mut PgConnection,
    clinic: ClinicId,
    lock: Lock,
) -> Result<ClinicCalendar, CapacityError> {
    let (name, slot_minutes, default_minutes) = repository::clinic_calendar(conn, clinic, lock)
        .await?
        .ok_or(CalendarError::NoClinic)?;
    let zone = clinic_zone(name)?;
    Ok(ClinicCalendar {
        zone,
        slot_minutes: slot_minutes.clamp(1, 60) as u16,
        default_minutes: default_minutes.clamp(5, 720) as u32,
    })
}

/// Whether the agenda has room for `booking`: inside the dentist's hours, not on their time off
/// nor a clinic closure (unless overridden), and in a chair that is active and free. Inside the
/// caller's transaction, which must have share-locked the dentist's membership (the appointment
/// checks do); this share-locks the clinic row and the chair (`repository`'s locks).
pub async fn check_booking(
    conn: &mut PgConnection,
    clinic: ClinicId,
    booking: &Booking,
) -> Result<(), CapacityError> {
    if !booking.override_schedule {
        check_hours(conn, clinic, booking).await?;
        if let Some(time_off) =
            repository::first_time_off(conn, clinic, booking.dentist, &booking.slot).await?
        {
            return Err(match time_off.dentist_id {
                Some(_) => CapacityError::DentistAway(time_off),
                None => CapacityError::ClinicClosed(time_off),
            });
        }
    }
    if let Some(chair) = booking.chair {
        let found = repository::chair(conn, clinic, chair, Lock::Share)
            .await?
            .ok_or(CapacityError::NoSuchChair)?;
        if !found.active {
            return Err(CapacityError::ChairInactive);
        }
        if let Some(other) =
            repository::first_chair_overlap(conn, clinic, chair, &booking.slot, booking.except)
                .await?
        {
            return Err(CapacityError::ChairTaken(Some(other)));
        }
    }
    Ok(())
}

async fn check_hours(
    conn: &mut PgConnection,
    clinic: ClinicId,
    booking: &Booking,
) -> Result<(), CapacityError> {
    let zone = read_calendar(conn, clinic, Lock::Share).await?.zone;
    let rules: Vec<_> = repository::working_hours(conn, clinic, Some(booking.dentist))
        .await?
        .iter()
        .map(WorkingInterval::rule)
        .collect();
    let date = calendar::local_date(zone, booking.slot.start);
    // From the day before: an interval that ends at 24:00 belongs to its own date.
    let last = calendar::local_date(zone, booking.slot.end);
    let working = calendar::working_spans(zone, &rules, date - Duration::days(1), last);
    if calendar::covers(&working, &booking.slot) {
        return Ok(());
    }
    Err(CapacityError::OutsideHours {
        zone,
        date,
        day: calendar::working_spans(zone, &rules, date, date),
    })
}
