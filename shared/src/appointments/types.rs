//! Appointment types: validated domain values built once at the edge (time slots, statuses
//! and their transitions, list filters), the stored row, and the request/response shapes.

use crate::ids::{AppointmentId, ClinicId, PatientId, UserId};
use crate::input::{InputError, not_null, nullable};
use crate::text::free_text;
use chrono::{DateTime, Months, NaiveTime, SecondsFormat, SubsecRound, TimeDelta, Utc};
use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;

/// Shortest and longest appointment a clinic books (the schema allows at most 12 hours).
pub const MIN_LENGTH: TimeDelta = TimeDelta::minutes(5);
pub const MAX_LENGTH: TimeDelta = TimeDelta::hours(12);
/// Reception records walk-ins and phone bookings a little after the fact; anything older is
/// a typo in the date, not a late entry.
pub const MAX_BOOKING_DELAY: TimeDelta = TimeDelta::days(1);
/// Nobody books further ahead than this; a date beyond it is a typo in the year.
pub const BOOKING_HORIZON: Months = Months::new(24);
/// `GET /appointments` without `to` shows a week; no request may ask for more than a quarter.
pub const DEFAULT_LIST_RANGE: TimeDelta = TimeDelta::days(7);
pub const MAX_LIST_RANGE: TimeDelta = TimeDelta::days(92);

/// Where an appointment is in its life, as the `appointment_status` PostgreSQL enum.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, sqlx::Type)]
#[serde(rename_all = "snake_case")]
#[sqlx(type_name = "appointment_status", rename_all = "snake_case")]
pub enum AppointmentStatus {
    Scheduled,
    Confirmed,
    Completed,
    Cancelled,
    NoShow,
}

impl AppointmentStatus {
    pub const ALL: [AppointmentStatus; 5] = [
        AppointmentStatus::Scheduled,
        AppointmentStatus::Confirmed,
        AppointmentStatus::Completed,
        AppointmentStatus::Cancelled,
        AppointmentStatus::NoShow,
    ];

    pub fn as_str(&self) -> &'static str {
        match self {
            AppointmentStatus::Scheduled => "scheduled",
            AppointmentStatus::Confirmed => "confirmed",
            AppointmentStatus::Completed => "completed",
            AppointmentStatus::Cancelled => "cancelled",
            AppointmentStatus::NoShow => "no_show",
        }
    }

    /// Scheduled and confirmed appointments are still ahead of the clinic: they can be edited
    /// and closed. The other three are history.
    pub fn is_open(&self) -> bool {
        matches!(
            self,
            AppointmentStatus::Scheduled | AppointmentStatus::Confirmed
        )
    }

    /// How the status reads in a sentence: "an appointment that is …".
    fn in_words(&self) -> &'static str {
        match self {
            AppointmentStatus::NoShow => "marked as a no-show",
            other => other.as_str(),
        }
    }
}

impl fmt::Display for AppointmentStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown appointment status")]
pub struct UnknownStatus;

impl FromStr for AppointmentStatus {
    type Err = UnknownStatus;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        AppointmentStatus::ALL
            .into_iter()
            .find(|status| status.as_str() == s)
            .ok_or(UnknownStatus)
    }
}

/// A status change asked for by `POST /appointments/{id}/{action}`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Action {
    Confirm,
    Cancel,
    Complete,
    NoShow,
}

impl Action {
    pub const ALL: [Action; 4] = [
        Action::Confirm,
        Action::Cancel,
        Action::Complete,
        Action::NoShow,
    ];

    /// The action named by the last path segment; `None` for anything the API does not have.
    pub fn from_path(segment: &str) -> Option<Action> {
        Action::ALL
            .into_iter()
            .find(|action| action.as_str() == segment)
    }

    /// The path segment.
    pub fn as_str(&self) -> &'static str {
        match self {
            Action::Confirm => "confirm",
            Action::Cancel => "cancel",
            Action::Complete => "complete",
            Action::NoShow => "no-show",
        }
    }

    pub fn target(&self) -> AppointmentStatus {
        match self {
            Action::Confirm => AppointmentStatus::Confirmed,
            Action::Cancel => AppointmentStatus::Cancelled,
            Action::Complete => AppointmentStatus::Completed,
            Action::NoShow => AppointmentStatus::NoShow,
        }
    }

    /// Completing a visit or recording that the patient did not come describes what happened,
    /// so the appointment must have begun.
    pub fn needs_started(&self) -> bool {
        matches!(self, Action::Complete | Action::NoShow)
    }
}

impl fmt::Display for Action {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A status change the lifecycle does not allow.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{}", transition_detail(*.from, *.action))]
pub struct InvalidTransition {
    pub from: AppointmentStatus,
    pub action: Action,
}

fn transition_detail(from: AppointmentStatus, action: Action) -> String {
    let from = from.in_words();
    match action {
        Action::NoShow => format!("Cannot mark an appointment that is {from} as a no-show."),
        other => format!("Cannot {other} an appointment that is {from}."),
    }
}

/// The lifecycle: scheduled → confirmed; scheduled or confirmed → cancelled, completed or
/// no_show. Asking for the status an appointment already has returns it unchanged, because
/// clients retry requests whose answer they lost.
pub fn transition(
    from: AppointmentStatus,
    action: Action,
) -> Result<AppointmentStatus, InvalidTransition> {
    use AppointmentStatus::{Confirmed, Scheduled};
    match (from, action) {
        (Scheduled, Action::Confirm) => Ok(Confirmed),
        (Scheduled | Confirmed, Action::Cancel | Action::Complete | Action::NoShow) => {
            Ok(action.target())
        }
        (from, action) if from == action.target() => Ok(from),
        (from, action) => Err(InvalidTransition { from, action }),
    }
}

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
}

impl AppointmentChanges {
    pub fn is_empty(&self) -> bool {
        self.starts_at.is_none()
            && self.end.is_none()
            && self.dentist_id.is_none()
            && self.reason.is_none()
            && self.procedure_code.is_none()
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

/// The end of a slot from a request's `ends_at` / `duration_minutes`: one or the other.
fn slot_end(
    ends_at: Option<DateTime<Utc>>,
    duration_minutes: Option<u32>,
) -> Result<Option<SlotEnd>, InputError> {
    match (ends_at, duration_minutes) {
        (Some(_), Some(_)) => Err(InputError::invalid(
            "duration_minutes",
            "send either ends_at or duration_minutes, not both",
        )),
        (Some(at), None) => Ok(Some(SlotEnd::At(instant(at)))),
        (None, Some(minutes)) => Ok(Some(SlotEnd::Lasting(LengthMinutes::parse(
            "duration_minutes",
            minutes,
        )?))),
        (None, None) => Ok(None),
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
}

impl AppointmentRecord {
    pub fn slot(&self) -> TimeSlot {
        TimeSlot::stored(self.starts_at, self.ends_at)
    }
}

/// `POST /appointments`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CreateAppointmentRequest {
    pub patient_id: PatientId,
    pub dentist_id: UserId,
    /// RFC 3339 with an offset; a time without one is rejected by the parser.
    pub starts_at: DateTime<Utc>,
    #[serde(default)]
    pub ends_at: Option<DateTime<Utc>>,
    #[serde(default)]
    pub duration_minutes: Option<u32>,
    #[serde(default)]
    pub reason: Option<String>,
    #[serde(default)]
    pub procedure_code: Option<String>,
}

impl TryFrom<CreateAppointmentRequest> for NewAppointment {
    type Error = InputError;

    fn try_from(request: CreateAppointmentRequest) -> Result<Self, InputError> {
        let starts_at = instant(request.starts_at);
        let end = slot_end(request.ends_at, request.duration_minutes)?
            .ok_or_else(|| InputError::invalid("ends_at", "send ends_at or duration_minutes"))?;
        let slot = TimeSlot::new(starts_at, end)?;
        slot.check_bookable(Utc::now())?;
        Ok(NewAppointment {
            patient_id: request.patient_id,
            dentist_id: request.dentist_id,
            slot,
            reason: Reason::parse("reason", request.reason.as_deref().unwrap_or_default())?,
            procedure_code: request
                .procedure_code
                .as_deref()
                .map(|code| ProcedureCode::parse("procedure_code", code))
                .transpose()?,
        })
    }
}

/// `PATCH /appointments/{id}`: only the fields present change.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UpdateAppointmentRequest {
    #[serde(default, deserialize_with = "nullable")]
    pub starts_at: Option<Option<DateTime<Utc>>>,
    #[serde(default, deserialize_with = "nullable")]
    pub ends_at: Option<Option<DateTime<Utc>>>,
    #[serde(default, deserialize_with = "nullable")]
    pub duration_minutes: Option<Option<u32>>,
    #[serde(default, deserialize_with = "nullable")]
    pub dentist_id: Option<Option<UserId>>,
    #[serde(default, deserialize_with = "nullable")]
    pub reason: Option<Option<String>>,
    #[serde(default, deserialize_with = "nullable")]
    pub procedure_code: Option<Option<String>>,
}

impl TryFrom<UpdateAppointmentRequest> for AppointmentChanges {
    type Error = InputError;

    fn try_from(request: UpdateAppointmentRequest) -> Result<Self, InputError> {
        let starts_at = not_null("starts_at", request.starts_at)?.map(instant);
        let ends_at = not_null("ends_at", request.ends_at)?;
        let duration_minutes = not_null("duration_minutes", request.duration_minutes)?;
        let changes = AppointmentChanges {
            starts_at,
            end: slot_end(ends_at, duration_minutes)?,
            dentist_id: not_null("dentist_id", request.dentist_id)?,
            reason: not_null("reason", request.reason)?
                .map(|reason| Reason::parse("reason", &reason))
                .transpose()?,
            procedure_code: request
                .procedure_code
                .map(|code| {
                    code.as_deref()
                        .map(|code| ProcedureCode::parse("procedure_code", code))
                        .transpose()
                })
                .transpose()?,
        };
        if changes.is_empty() {
            return Err(InputError::malformed_request(
                "The body changes nothing: send at least one field.",
            ));
        }
        Ok(changes)
    }
}

/// `GET /appointments` query string. Times are parsed by [`AppointmentFilter::parse`] so a
/// `+` that arrived unencoded (as a space) is still understood.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ListAppointmentsQuery {
    pub from: Option<String>,
    pub to: Option<String>,
    pub dentist_id: Option<UserId>,
    pub patient_id: Option<PatientId>,
    /// Comma-separated: `status=scheduled,confirmed`. A repeated `status` key is rejected.
    pub status: Option<String>,
    pub limit: Option<u32>,
    pub cursor: Option<String>,
}

/// Which appointments a list shows: those *starting* in `[from, to)`, optionally of one
/// dentist, one patient and some statuses.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AppointmentFilter {
    pub from: DateTime<Utc>,
    pub to: DateTime<Utc>,
    pub dentist_id: Option<UserId>,
    pub patient_id: Option<PatientId>,
    /// `None` shows every status.
    pub statuses: Option<Vec<AppointmentStatus>>,
}

impl AppointmentFilter {
    /// Without `from`, the list starts at 00:00 UTC today; without `to`, it spans a week.
    pub fn parse(query: &ListAppointmentsQuery, now: DateTime<Utc>) -> Result<Self, InputError> {
        let from = match query.from.as_deref() {
            Some(raw) => parse_query_instant("from", raw)?,
            None => now.date_naive().and_time(NaiveTime::MIN).and_utc(),
        };
        let to = match query.to.as_deref() {
            Some(raw) => parse_query_instant("to", raw)?,
            None => from
                .checked_add_signed(DEFAULT_LIST_RANGE)
                .ok_or_else(|| InputError::malformed("from", "from is too far in the future."))?,
        };
        if to <= from {
            return Err(InputError::malformed("to", "to must be after from."));
        }
        if to - from > MAX_LIST_RANGE {
            return Err(InputError::malformed(
                "to",
                "The range from..to must be at most 92 days.",
            ));
        }
        let statuses = query
            .status
            .as_deref()
            .map(str::trim)
            .filter(|raw| !raw.is_empty())
            .map(parse_statuses)
            .transpose()?;
        Ok(Self {
            from,
            to,
            dentist_id: query.dentist_id,
            patient_id: query.patient_id,
            statuses,
        })
    }
}

/// An RFC 3339 instant with an offset. A query string decodes an unencoded `+` to a space,
/// so `10:00:00 02:00` is read as `10:00:00+02:00`.
fn parse_query_instant(field: &str, raw: &str) -> Result<DateTime<Utc>, InputError> {
    let raw = raw.trim();
    DateTime::parse_from_rfc3339(raw)
        .or_else(|error| match raw.rsplit_once(' ') {
            Some((head, offset)) if offset.len() == 5 && offset.as_bytes()[2] == b':' => {
                DateTime::parse_from_rfc3339(&format!("{head}+{offset}"))
            }
            _ => Err(error),
        })
        .map(|at| instant(at.with_timezone(&Utc)))
        .map_err(|_| {
            InputError::malformed(
                field,
                format!(
                    "{field} must be an RFC 3339 time with an offset, like \
                     2026-05-04T09:00:00Z or 2026-05-04T09:00:00%2B02:00."
                ),
            )
        })
}

fn parse_statuses(raw: &str) -> Result<Vec<AppointmentStatus>, InputError> {
    let mut statuses = Vec::new();
    for part in raw.split(',') {
        let status: AppointmentStatus = part.trim().parse().map_err(|_| {
            InputError::malformed(
                "status",
                "status must be one or more of scheduled, confirmed, completed, cancelled, \
                 no_show, separated by commas.",
            )
        })?;
        if !statuses.contains(&status) {
            statuses.push(status);
        }
    }
    Ok(statuses)
}

/// An appointment as the API returns it. No patient name: the client already has the
/// patient, and a calendar list should not carry identities it does not need.
#[derive(Debug, Serialize, Deserialize)]
pub struct AppointmentResponse {
    pub id: AppointmentId,
    pub patient_id: PatientId,
    pub dentist_id: UserId,
    pub starts_at: DateTime<Utc>,
    pub ends_at: DateTime<Utc>,
    pub status: AppointmentStatus,
    pub reason: String,
    pub procedure_code: Option<String>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub status_changed_at: DateTime<Utc>,
}

impl From<AppointmentRecord> for AppointmentResponse {
    fn from(record: AppointmentRecord) -> Self {
        AppointmentResponse {
            id: record.id,
            patient_id: record.patient_id,
            dentist_id: record.dentist_id,
            starts_at: record.starts_at,
            ends_at: record.ends_at,
            status: record.status,
            reason: record.reason,
            procedure_code: record.procedure_code,
            created_at: record.created_at,
            updated_at: record.updated_at,
            status_changed_at: record.status_changed_at,
        }
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

#[cfg(test)]
mod tests {
    use super::*;
    use AppointmentStatus::{Cancelled, Completed, Confirmed, NoShow, Scheduled};

    fn at(raw: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(raw)
            .unwrap()
            .with_timezone(&Utc)
    }

    #[test]
    fn the_whole_transition_table() {
        // (from, action, expected): Some(to) allowed, None refused.
        let table = [
            (Scheduled, Action::Confirm, Some(Confirmed)),
            (Scheduled, Action::Cancel, Some(Cancelled)),
            (Scheduled, Action::Complete, Some(Completed)),
            (Scheduled, Action::NoShow, Some(NoShow)),
            (Confirmed, Action::Confirm, Some(Confirmed)),
            (Confirmed, Action::Cancel, Some(Cancelled)),
            (Confirmed, Action::Complete, Some(Completed)),
            (Confirmed, Action::NoShow, Some(NoShow)),
            (Completed, Action::Confirm, None),
            (Completed, Action::Cancel, None),
            (Completed, Action::Complete, Some(Completed)),
            (Completed, Action::NoShow, None),
            (Cancelled, Action::Confirm, None),
            (Cancelled, Action::Cancel, Some(Cancelled)),
            (Cancelled, Action::Complete, None),
            (Cancelled, Action::NoShow, None),
            (NoShow, Action::Confirm, None),
            (NoShow, Action::Cancel, None),
            (NoShow, Action::Complete, None),
            (NoShow, Action::NoShow, Some(NoShow)),
        ];
        assert_eq!(
            table.len(),
            AppointmentStatus::ALL.len() * Action::ALL.len()
        );
        for (from, action, expected) in table {
            let result = transition(from, action);
            match expected {
                Some(to) => assert_eq!(result, Ok(to), "{from} + {action}"),
                None => assert_eq!(
                    result,
                    Err(InvalidTransition { from, action }),
                    "{from} + {action}"
                ),
            }
        }
    }

    #[test]
    fn refused_transitions_name_both_ends() {
        let error = transition(Cancelled, Action::Complete).unwrap_err();
        assert_eq!(
            error.to_string(),
            "Cannot complete an appointment that is cancelled."
        );
        let error = transition(Completed, Action::NoShow).unwrap_err();
        assert_eq!(
            error.to_string(),
            "Cannot mark an appointment that is completed as a no-show."
        );
        let error = transition(NoShow, Action::Confirm).unwrap_err();
        assert_eq!(
            error.to_string(),
            "Cannot confirm an appointment that is marked as a no-show."
        );
    }

    #[test]
    fn actions_and_statuses_parse_their_wire_names_only() {
        assert_eq!(Action::from_path("no-show"), Some(Action::NoShow));
        assert_eq!(Action::from_path("confirm"), Some(Action::Confirm));
        assert_eq!(Action::from_path("no_show"), None);
        assert_eq!(Action::from_path("Confirm"), None);
        assert_eq!(Action::from_path("delete"), None);
        for status in AppointmentStatus::ALL {
            assert_eq!(status.as_str().parse(), Ok(status));
            assert_eq!(serde_json::to_value(status).unwrap(), status.as_str());
        }
        assert_eq!("no-show".parse::<AppointmentStatus>(), Err(UnknownStatus));
    }

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
    fn list_filter_defaults_and_limits() {
        let now = at("2030-05-06T15:20:00Z");
        let filter = AppointmentFilter::parse(&ListAppointmentsQuery::default(), now).unwrap();
        assert_eq!(filter.from, at("2030-05-06T00:00:00Z"));
        assert_eq!(filter.to, at("2030-05-13T00:00:00Z"));
        assert_eq!(filter.statuses, None);

        let query = |from: &str, to: Option<&str>, status: Option<&str>| ListAppointmentsQuery {
            from: Some(from.into()),
            to: to.map(Into::into),
            status: status.map(Into::into),
            ..Default::default()
        };
        // An unencoded `+` arrives as a space.
        let filter =
            AppointmentFilter::parse(&query("2030-05-06T09:00:00 02:00", None, None), now).unwrap();
        assert_eq!(filter.from, at("2030-05-06T07:00:00Z"));
        let filter = AppointmentFilter::parse(
            &query(
                "2030-05-06T00:00:00Z",
                Some("2030-08-06T00:00:00Z"),
                Some("confirmed, scheduled,confirmed"),
            ),
            now,
        )
        .unwrap();
        assert_eq!(filter.statuses, Some(vec![Confirmed, Scheduled]));

        let field = |q: ListAppointmentsQuery| match AppointmentFilter::parse(&q, now) {
            Err(InputError::Malformed { field, .. }) => field,
            other => panic!("expected a 400, got {other:?}"),
        };
        assert_eq!(
            field(query("2030-05-06", None, None)).as_deref(),
            Some("from")
        );
        assert_eq!(
            field(query("2030-05-06T10:00:00", None, None)).as_deref(),
            Some("from")
        );
        assert_eq!(
            field(query(
                "2030-05-06T00:00:00Z",
                Some("2030-05-06T00:00:00Z"),
                None
            ))
            .as_deref(),
            Some("to")
        );
        assert_eq!(
            field(query(
                "2030-05-06T00:00:00Z",
                Some("2030-08-06T00:00:01Z"),
                None
            ))
            .as_deref(),
            Some("to")
        );
        assert_eq!(
            field(query(
                "2030-05-06T00:00:00Z",
                None,
                Some("scheduled,no-show")
            ))
            .as_deref(),
            Some("status")
        );
        assert_eq!(
            field(query("2030-05-06T00:00:00Z", None, Some("scheduled,"))).as_deref(),
            Some("status")
        );
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
        assert!(matches!(
            slot_end(Some(at("2030-05-06T10:00:00Z")), Some(30)),
            Err(InputError::Invalid { field, .. }) if field == "duration_minutes"
        ));
        assert_eq!(slot_end(None, None).unwrap(), None);
    }
}
