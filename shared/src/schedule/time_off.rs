//! The request and response shapes of `/time-off`, and the validated entry a request becomes.

use super::types::{MAX_LISTING_DAYS, plausible_date, plausible_instant};
use crate::ids::{TimeOffId, UserId};
use crate::input::InputError;
use chrono::{DateTime, NaiveDate, Utc};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

/// What the time away is. `closure` and `public_holiday` are the whole clinic's; the others a
/// dentist's.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, sqlx::Type, ToSchema)]
#[sqlx(type_name = "time_off_kind", rename_all = "snake_case")]
#[serde(rename_all = "snake_case")]
pub enum TimeOffKind {
    Holiday,
    SickLeave,
    Training,
    Personal,
    Closure,
    PublicHoliday,
}

impl TimeOffKind {
    pub fn is_clinic_wide(self) -> bool {
        matches!(self, Self::Closure | Self::PublicHoliday)
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Holiday => "holiday",
            Self::SickLeave => "sick_leave",
            Self::Training => "training",
            Self::Personal => "personal",
            Self::Closure => "closure",
            Self::PublicHoliday => "public_holiday",
        }
    }
}

/// A stretch of time away.
#[derive(Clone, Debug, PartialEq, Serialize, ToSchema)]
pub struct TimeOff {
    pub id: TimeOffId,
    /// `null`: the whole clinic (a closure or a public holiday).
    pub dentist_id: Option<UserId>,
    pub kind: TimeOffKind,
    pub starts_at: DateTime<Utc>,
    pub ends_at: DateTime<Utc>,
    /// Entered as whole days: `starts_at` and `ends_at` are local midnights.
    pub all_day: bool,
    /// A short name for the calendar ("Navidad"); never health details.
    pub label: String,
    pub created_at: DateTime<Utc>,
}

/// `GET /time-off`.
#[derive(Debug, Serialize, ToSchema)]
pub struct TimeOffList {
    pub items: Vec<TimeOff>,
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct TimeOffQuery {
    /// The first clinic date to list (default: today).
    pub from: Option<NaiveDate>,
    /// The last clinic date to list (default: 90 days after `from`; at most 366 days after).
    pub to: Option<NaiveDate>,
    /// Only this dentist's and the clinic's own.
    pub dentist_id: Option<UserId>,
}

/// `POST /time-off`: whole days (`first_day`, `last_day`) or a stretch (`starts_at`,
/// `ends_at`), not both.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"dentist_id": "6d1c0f0e-2b7f-4a57-8d0a-3d6c2c7b9a10",
    "kind": "holiday", "first_day": "2026-12-24", "last_day": "2026-12-31", "label": "Navidad"}))]
pub struct CreateTimeOffRequest {
    /// Whose time away; omitted for a clinic closure or public holiday.
    #[serde(default)]
    pub dentist_id: Option<UserId>,
    pub kind: TimeOffKind,
    /// Whole days, clinic time: the first.
    #[serde(default)]
    pub first_day: Option<NaiveDate>,
    /// Whole days, clinic time: the last (inclusive).
    #[serde(default)]
    pub last_day: Option<NaiveDate>,
    /// Part of a day or more: RFC 3339 with an offset.
    #[serde(default)]
    pub starts_at: Option<DateTime<Utc>>,
    #[serde(default)]
    pub ends_at: Option<DateTime<Utc>>,
    /// At most 100 characters; never health details.
    #[serde(default)]
    #[schema(max_length = 100)]
    pub label: Option<String>,
}

/// When a new time off is: whole clinic days or a stretch of instants.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TimeOffWhen {
    Days {
        first: NaiveDate,
        last: NaiveDate,
    },
    Stretch {
        starts_at: DateTime<Utc>,
        ends_at: DateTime<Utc>,
    },
}

/// A validated `POST /time-off`.
#[derive(Debug)]
pub struct NewTimeOff {
    pub dentist_id: Option<UserId>,
    pub kind: TimeOffKind,
    pub when: TimeOffWhen,
    pub label: String,
}

pub const MAX_LABEL_CHARS: usize = 100;

impl TryFrom<CreateTimeOffRequest> for NewTimeOff {
    type Error = InputError;

    fn try_from(request: CreateTimeOffRequest) -> Result<Self, InputError> {
        match (request.kind.is_clinic_wide(), request.dentist_id) {
            (true, Some(_)) => {
                return Err(InputError::invalid(
                    "dentist_id",
                    format!(
                        "a {} is the whole clinic's: send no dentist_id",
                        request.kind.as_str()
                    ),
                ));
            }
            (false, None) => {
                return Err(InputError::invalid(
                    "dentist_id",
                    format!("a {} is a dentist's: send their id", request.kind.as_str()),
                ));
            }
            _ => {}
        }
        let when = match (
            request.first_day,
            request.last_day,
            request.starts_at,
            request.ends_at,
        ) {
            (Some(first), Some(last), None, None) => {
                plausible_date("first_day", first)?;
                plausible_date("last_day", last)?;
                if last < first {
                    return Err(InputError::invalid(
                        "last_day",
                        "must not be before first_day",
                    ));
                }
                if (last - first).num_days() >= MAX_LISTING_DAYS {
                    return Err(InputError::invalid("last_day", "at most 366 days"));
                }
                TimeOffWhen::Days { first, last }
            }
            (None, None, Some(starts_at), Some(ends_at)) => {
                plausible_instant("starts_at", starts_at)?;
                plausible_instant("ends_at", ends_at)?;
                if ends_at <= starts_at {
                    return Err(InputError::invalid("ends_at", "must be after starts_at"));
                }
                if (ends_at - starts_at).num_days() >= MAX_LISTING_DAYS {
                    return Err(InputError::invalid("ends_at", "at most 366 days"));
                }
                TimeOffWhen::Stretch { starts_at, ends_at }
            }
            _ => {
                return Err(InputError::invalid(
                    "first_day",
                    "send first_day and last_day (whole days) or starts_at and ends_at, not a mix",
                ));
            }
        };
        let label = request.label.unwrap_or_default().trim().to_owned();
        if label.chars().count() > MAX_LABEL_CHARS || label.chars().any(char::is_control) {
            return Err(InputError::invalid(
                "label",
                format!("at most {MAX_LABEL_CHARS} characters, no control characters"),
            ));
        }
        Ok(Self {
            dentist_id: request.dentist_id,
            kind: request.kind,
            when,
            label,
        })
    }
}

/// `POST /time-off`'s answer: the entry, and the live appointments it now overlaps (they stay
/// booked: reception moves them).
#[derive(Debug, Serialize, ToSchema)]
pub struct CreatedTimeOff {
    #[serde(flatten)]
    pub time_off: TimeOff,
    pub overlapping_appointments: Vec<crate::ids::AppointmentId>,
}
