//! Appointment types: the validated values a booking is made of (time slots, reasons, procedure
//! codes), the commands built from requests, and the stored row. The children hold the status
//! lifecycle (`lifecycle`), what a calendar list shows (`filter`) and the request/response
//! shapes (`api`); everything is re-exported here.

mod api;
mod filter;
mod lifecycle;

pub use api::{
    AppointmentResponse, CreateAppointmentRequest, IncludedName, UpdateAppointmentRequest,
};
pub use filter::{
    AppointmentFilter, DEFAULT_LIST_RANGE, Include, ListAppointmentsQuery, MAX_LIST_RANGE,
};
pub use lifecycle::{Action, AppointmentStatus, InvalidTransition, UnknownStatus, transition};

use crate::ids::{AppointmentId, ChairId, ClinicId, PatientId, UserId};
use crate::input::InputError;
use crate::text::free_text;
use chrono::{DateTime, Months, SecondsFormat, SubsecRound, TimeDelta, Utc};

/// Shortest and longest appointment a clinic books (the schema allows at most 12 hours).
pub const MIN_LENGTH: TimeDelta = TimeDelta::minutes(5);
pub const MAX_LENGTH: TimeDelta = TimeDelta::hours(12);
/// Reception records walk-ins and phone bookings a little after the fact; anything older is
/// a typo in the date, not a late entry.
pub const MAX_BOOKING_DELAY: TimeDelta = TimeDelta::days(1);
/// Nobody books further ahead than this; a date beyond it is a typo in the year.
pub const BOOKING_HORIZON: Months = Months::new(24);

/// PostgreSQL keeps microseconds; truncating at the edge makes what the client sent, what
/// the overlap check saw and what is stored the same instant.
pub fn instant(at: DateTime<Utc>) -> DateTime<Utc> {
    at.trunc_subsecs(6)
}

fn rfc3339(at: DateTime<Utc>) -> String {
    at.to_rfc3339_opts(SecondsFormat::AutoSi, true)
}

/// An appointment length given in minutes: 5 to 720.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LengthMinutes(u32);

impl LengthMinutes {
    pub fn parse(field: &str, minutes: u32) -> Result<Self, InputError> {
        let length = TimeDelta::minutes(i64::from(minutes));
        if length < MIN_LENGTH || length > MAX_LENGTH {
            return Err(InputError::invalid(
                field,
                "must be between 5 and 720 minutes",
            ));
        }
        Ok(Self(minutes))
    }

    pub fn duration(&self) -> TimeDelta {
        TimeDelta::minutes(i64::from(self.0))
    }
}

/// How the end of a slot was given: an instant (`ends_at`) or a length (`duration_minutes`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SlotEnd {
    At(DateTime<Utc>),
    Lasting(LengthMinutes),
}

/// Why a time slot cannot be booked; each names the request field to blame.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum SlotError {
    #[error("must be after starts_at")]
    EndsNotAfterStart,
    #[error("must be at least 5 minutes after starts_at")]
    TooShort,
    #[error("must be at most 12 hours after starts_at")]
    TooLong,
    #[error("must not be more than one day in the past")]
    StartsTooLongAgo,
    #[error("must not be more than two years ahead")]
    StartsTooFarAhead,
}

impl SlotError {
    pub fn field(&self) -> &'static str {
        match self {
            SlotError::EndsNotAfterStart | SlotError::TooShort | SlotError::TooLong => "ends_at",
            SlotError::StartsTooLongAgo | SlotError::StartsTooFarAhead => "starts_at",
        }
    }
}

/// A slot refused in a request is an invalid field, named by the error.
impl From<SlotError> for InputError {
    fn from(error: SlotError) -> Self {
        InputError::invalid(error.field(), error.to_string())
    }
}

/// A half-open interval `[starts_at, ends_at)` of 5 minutes to 12 hours: back-to-back
/// appointments (one ends at 10:30, the next starts at 10:30) do not overlap.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TimeSlot {
    starts_at: DateTime<Utc>,
    ends_at: DateTime<Utc>,
}

impl TimeSlot {
    pub fn new(starts_at: DateTime<Utc>, end: SlotEnd) -> Result<Self, SlotError> {
        let ends_at = match end {
            SlotEnd::At(at) => at,
            SlotEnd::Lasting(length) => starts_at
                .checked_add_signed(length.duration())
                .ok_or(SlotError::StartsTooFarAhead)?,
        };
        if ends_at <= starts_at {
            return Err(SlotError::EndsNotAfterStart);
        }
        let length = ends_at - starts_at;
        if length < MIN_LENGTH {
            return Err(SlotError::TooShort);
        }
        if length > MAX_LENGTH {
            return Err(SlotError::TooLong);
        }
        Ok(Self { starts_at, ends_at })
    }

    /// A slot read back from the database, where the schema's checks already hold.
    pub(super) fn stored(starts_at: DateTime<Utc>, ends_at: DateTime<Utc>) -> Self {
        Self { starts_at, ends_at }
    }

    /// New times must fall in the booking window: at most a day late, at most two years ahead.
    pub fn check_bookable(&self, now: DateTime<Utc>) -> Result<(), SlotError> {
        if self.starts_at < now - MAX_BOOKING_DELAY {
            return Err(SlotError::StartsTooLongAgo);
        }
        let horizon = now
            .checked_add_months(BOOKING_HORIZON)
            .unwrap_or(DateTime::<Utc>::MAX_UTC);
        if self.starts_at > horizon {
            return Err(SlotError::StartsTooFarAhead);
        }
        Ok(())
    }

    pub fn starts_at(&self) -> DateTime<Utc> {
        self.starts_at
    }

    pub fn ends_at(&self) -> DateTime<Utc> {
        self.ends_at
    }

    pub fn length(&self) -> TimeDelta {
        self.ends_at - self.starts_at
    }
}

/// Why the visit was booked, as reception typed it: trimmed, at most 500 characters. It can be
/// clinical text, so it is never logged and never part of an error message.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct Reason(String);

impl Reason {
    pub const MAX_CHARS: usize = 500;

    pub fn parse(field: &str, raw: &str) -> Result<Self, InputError> {
        let trimmed = raw.trim();
        free_text(field, trimmed, Self::MAX_CHARS)?;
        Ok(Self(trimmed.to_string()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// A procedure code as the catalogs spell it: 1–32 of A–Z, a–z, 0–9, `.`, `_`, `-`. Codes
/// are case-sensitive there, so the case is kept.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ProcedureCode(String);

impl ProcedureCode {
    pub fn parse(field: &str, raw: &str) -> Result<Self, InputError> {
        let code = raw.trim();
        if code.is_empty()
            || code.len() > 32
            || !code
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'))
        {
            return Err(InputError::invalid(
                field,
                "must be 1 to 32 letters, digits, dots, underscores or dashes",
            ));
        }
        Ok(Self(code.to_string()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// An appointment to book, fully validated.
#[derive(Clone, Debug)]
pub struct NewAppointment {
    pub patient_id: PatientId,
    pub dentist_id: UserId,
    pub slot: TimeSlot,
    pub reason: Reason,
    pub procedure_code: Option<ProcedureCode>,
    pub chair_id: Option<ChairId>,
    /// An admin books outside the dentist's hours or on time off, on purpose (audited).
    pub override_schedule: bool,
}

/// Changes to an appointment; `None` leaves a field as it is.
#[derive(Clone, Debug, Default)]
pub struct AppointmentChanges {
    pub starts_at: Option<DateTime<Utc>>,
    pub end: Option<SlotEnd>,
    pub dentist_id: Option<UserId>,
    pub reason: Option<Reason>,
    /// `Some(None)` clears the code.
    pub procedure_code: Option<Option<ProcedureCode>>,
    /// `Some(None)` frees the chair.
    pub chair_id: Option<Option<ChairId>>,
    /// An admin moves it outside the dentist's hours or onto time off, on purpose (audited).
    /// Not a change by itself.
    pub override_schedule: bool,
}

impl AppointmentChanges {
    pub fn is_empty(&self) -> bool {
        self.starts_at.is_none()
            && self.end.is_none()
            && self.dentist_id.is_none()
            && self.reason.is_none()
            && self.procedure_code.is_none()
            && self.chair_id.is_none()
    }

    /// The slot once these changes apply to `current`. Moving only the start keeps the
    /// length: "move it to 11:00" means the same visit an hour later.
    pub fn slot_after(&self, current: TimeSlot) -> Result<TimeSlot, SlotError> {
        let starts_at = self.starts_at.unwrap_or(current.starts_at);
        let end = match self.end {
            Some(end) => end,
            None if self.starts_at.is_some() => SlotEnd::At(
                starts_at
                    .checked_add_signed(current.length())
                    .ok_or(SlotError::StartsTooFarAhead)?,
            ),
            None => SlotEnd::At(current.ends_at),
        };
        TimeSlot::new(starts_at, end)
    }
}

/// An appointment as stored.
#[derive(Clone, Debug, sqlx::FromRow)]
pub struct AppointmentRecord {
    pub id: AppointmentId,
    pub clinic_id: ClinicId,
    pub patient_id: PatientId,
    pub dentist_id: UserId,
    pub starts_at: DateTime<Utc>,
    pub ends_at: DateTime<Utc>,
    pub status: AppointmentStatus,
    pub reason: String,
    pub procedure_code: Option<String>,
    pub created_by: Option<UserId>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub status_changed_at: DateTime<Utc>,
    pub chair_id: Option<ChairId>,
    pub booked_with_override: bool,
}

impl AppointmentRecord {
    pub fn slot(&self) -> TimeSlot {
        TimeSlot::stored(self.starts_at, self.ends_at)
    }
}

/// The sentence a 409 for an overlap carries: times only, never the other patient.
pub(super) fn overlap_detail(other: Option<TimeSlot>) -> String {
    match other {
        Some(other) => format!(
            "The dentist already has another appointment between {} and {}.",
            rfc3339(other.starts_at),
            rfc3339(other.ends_at)
        ),
        None => "The dentist already has another appointment at that time.".into(),
    }
}

/// An RFC 3339 instant, for the tests of this module and of its children.
#[cfg(test)]
fn at(raw: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(raw)
        .unwrap()
        .with_timezone(&Utc)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_slot_ends_after_it_starts_and_lasts_5_minutes_to_12_hours() {
        let start = at("2030-05-06T10:00:00Z");
        let slot = TimeSlot::new(start, SlotEnd::At(at("2030-05-06T10:30:00+00:00"))).unwrap();
        assert_eq!(slot.length(), TimeDelta::minutes(30));
        let slot = TimeSlot::new(
            start,
            SlotEnd::Lasting(LengthMinutes::parse("d", 45).unwrap()),
        )
        .unwrap();
        assert_eq!(slot.ends_at(), at("2030-05-06T10:45:00Z"));
        // Offsets are instants: 12:00+02:00 is 10:00Z.
        assert_eq!(
            TimeSlot::new(start, SlotEnd::At(at("2030-05-06T12:00:00+02:00"))),
            Err(SlotError::EndsNotAfterStart)
        );
        assert_eq!(
            TimeSlot::new(start, SlotEnd::At(at("2030-05-06T09:00:00Z"))),
            Err(SlotError::EndsNotAfterStart)
        );
        assert_eq!(
            TimeSlot::new(start, SlotEnd::At(at("2030-05-06T10:04:59Z"))),
            Err(SlotError::TooShort)
        );
        assert!(TimeSlot::new(start, SlotEnd::At(at("2030-05-06T22:00:00Z"))).is_ok());
        assert_eq!(
            TimeSlot::new(start, SlotEnd::At(at("2030-05-06T22:00:01Z"))),
            Err(SlotError::TooLong)
        );
        assert_eq!(SlotError::TooLong.field(), "ends_at");
        assert!(LengthMinutes::parse("d", 4).is_err());
        assert!(LengthMinutes::parse("d", 5).is_ok());
        assert!(LengthMinutes::parse("d", 720).is_ok());
        assert!(LengthMinutes::parse("d", 721).is_err());
    }

    #[test]
    fn the_booking_window_is_a_day_late_to_two_years_ahead() {
        let now = at("2030-05-06T10:00:00Z");
        let slot = |start: &str| {
            TimeSlot::new(
                at(start),
                SlotEnd::Lasting(LengthMinutes::parse("d", 30).unwrap()),
            )
            .unwrap()
        };
        assert!(slot("2030-05-05T10:00:00Z").check_bookable(now).is_ok());
        assert_eq!(
            slot("2030-05-05T09:59:59Z").check_bookable(now),
            Err(SlotError::StartsTooLongAgo)
        );
        assert!(slot("2032-05-06T10:00:00Z").check_bookable(now).is_ok());
        assert_eq!(
            slot("2032-05-06T10:00:01Z").check_bookable(now),
            Err(SlotError::StartsTooFarAhead)
        );
        assert_eq!(SlotError::StartsTooFarAhead.field(), "starts_at");
    }

    #[test]
    fn moving_only_the_start_keeps_the_length() {
        let current = TimeSlot::new(
            at("2030-05-06T10:00:00Z"),
            SlotEnd::At(at("2030-05-06T10:45:00Z")),
        )
        .unwrap();
        let moved = AppointmentChanges {
            starts_at: Some(at("2030-05-07T16:00:00Z")),
            ..Default::default()
        };
        assert_eq!(
            moved.slot_after(current).unwrap().ends_at(),
            at("2030-05-07T16:45:00Z")
        );
        let stretched = AppointmentChanges {
            end: Some(SlotEnd::Lasting(LengthMinutes::parse("d", 90).unwrap())),
            ..Default::default()
        };
        assert_eq!(
            stretched.slot_after(current).unwrap().ends_at(),
            at("2030-05-06T11:30:00Z")
        );
        let reversed = AppointmentChanges {
            end: Some(SlotEnd::At(at("2030-05-06T09:00:00Z"))),
            ..Default::default()
        };
        assert_eq!(
            reversed.slot_after(current),
            Err(SlotError::EndsNotAfterStart)
        );
        let unchanged = AppointmentChanges::default();
        assert_eq!(unchanged.slot_after(current), Ok(current));
    }

    #[test]
    fn instants_keep_microseconds_like_postgres() {
        let raw = at("2030-05-06T10:00:00.123456789Z");
        assert_eq!(instant(raw), at("2030-05-06T10:00:00.123456Z"));
    }

    #[test]
    fn request_fields_are_checked_at_the_edge() {
        assert_eq!(
            Reason::parse("reason", "  Revisión  ").unwrap().as_str(),
            "Revisión"
        );
        assert!(Reason::parse("reason", &"x".repeat(501)).is_err());
        assert_eq!(
            ProcedureCode::parse("c", " LIMP ").unwrap().as_str(),
            "LIMP"
        );
        assert!(ProcedureCode::parse("c", "").is_err());
        assert!(ProcedureCode::parse("c", "D 0120").is_err());
        assert!(ProcedureCode::parse("c", &"A".repeat(33)).is_err());
    }
}
