//! The waiting list (`/waiting-list`): patients who want an appointment (sooner than the one
//! they have, or any), for a procedure and a length, with a preferred dentist or any, within a
//! window of clinic dates. Reception adds and removes entries; when a cancellation or a
//! reschedule frees time that fits entries, reception is told over the WebSocket with the
//! matching ones ([`matches`]); nothing is booked by itself.

mod matches;
mod repository;
mod routes;
mod service;

pub use matches::time_freed;
pub use routes::routes;
pub use service::WaitingListService;

use super::types::plausible_date;
use crate::ids::{PatientId, UserId, WaitingListEntryId};
use crate::input::InputError;
use chrono::{DateTime, Duration, NaiveDate, Utc};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

/// The longest window an entry may have, in days after its first.
pub const MAX_WINDOW_DAYS: i64 = 366;
/// The window when none is given: today and the next 90 days.
const DEFAULT_WINDOW_DAYS: i64 = 90;
const MAX_NOTES_CHARS: usize = 500;

/// An entry of the waiting list.
#[derive(Clone, Debug, PartialEq, Serialize, ToSchema, sqlx::FromRow)]
pub struct WaitingListEntry {
    pub id: WaitingListEntryId,
    pub patient_id: PatientId,
    /// A procedure of the clinic's catalog, if the patient waits for one.
    pub procedure_code: Option<String>,
    /// The appointment's length: what a freed stretch must hold.
    pub duration_minutes: i32,
    /// The dentist the patient wants; `null`: any.
    pub dentist_id: Option<UserId>,
    /// The first and last clinic dates the patient can come.
    pub window_from: NaiveDate,
    pub window_until: NaiveDate,
    /// For reception ("mornings only, call first"); never clinical details.
    pub notes: String,
    pub created_by: Option<UserId>,
    pub created_at: DateTime<Utc>,
}

/// `POST /waiting-list`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"patient_id": "5f0c6c1e-8f7a-4d55-9a53-7c1b2f0e3a11",
    "procedure_code": "LIMP", "dentist_id": "0b9d4c3e-2a1f-4e5d-8c7b-6a5f4e3d2c1b",
    "window_until": "2027-01-31", "notes": "Mañanas; llamar antes"}))]
pub struct AddToWaitingListRequest {
    pub patient_id: PatientId,
    /// Its catalog length is the appointment's, unless `duration_minutes` is given.
    pub procedure_code: Option<String>,
    /// 5–720; default: the procedure's length, else the clinic's default.
    pub duration_minutes: Option<u32>,
    /// An active dentist of the clinic; default: any.
    pub dentist_id: Option<UserId>,
    /// Default: today.
    pub window_from: Option<NaiveDate>,
    /// Default: 90 days after `window_from`; at most 366 days after it, and not before today.
    pub window_until: Option<NaiveDate>,
    /// At most 500 characters.
    pub notes: Option<String>,
}

/// A request checked on its own; the catalog, the patient and the dentist are checked by the
/// service against the clinic.
#[derive(Debug)]
pub struct NewEntry {
    pub patient_id: PatientId,
    pub procedure_code: Option<String>,
    pub duration_minutes: Option<u32>,
    pub dentist_id: Option<UserId>,
    pub window_from: NaiveDate,
    pub window_until: NaiveDate,
    pub notes: String,
}

impl NewEntry {
    /// Checks `request` on the clinic's `today`.
    pub fn parse(request: AddToWaitingListRequest, today: NaiveDate) -> Result<Self, InputError> {
        let window_from = match request.window_from {
            Some(date) => plausible_date("window_from", date)?,
            None => today,
        };
        let window_until = match request.window_until {
            Some(date) => plausible_date("window_until", date)?,
            None => window_from + Duration::days(DEFAULT_WINDOW_DAYS),
        };
        if window_until < window_from {
            return Err(InputError::invalid(
                "window_until",
                "must not be before window_from",
            ));
        }
        if (window_until - window_from).num_days() > MAX_WINDOW_DAYS {
            return Err(InputError::invalid(
                "window_until",
                "a window is at most 366 days long",
            ));
        }
        if window_until < today {
            return Err(InputError::invalid(
                "window_until",
                "the window is over: it ends before today",
            ));
        }
        if let Some(minutes) = request.duration_minutes
            && !(5..=720).contains(&minutes)
        {
            return Err(InputError::invalid(
                "duration_minutes",
                "must be 5 to 720 minutes",
            ));
        }
        let notes = request.notes.unwrap_or_default().trim().to_owned();
        if notes.chars().count() > MAX_NOTES_CHARS
            || notes.chars().any(|c| c.is_control() && c != '\n')
        {
            return Err(InputError::invalid(
                "notes",
                "at most 500 characters, without control characters",
            ));
        }
        Ok(Self {
            patient_id: request.patient_id,
            procedure_code: request.procedure_code,
            duration_minutes: request.duration_minutes,
            dentist_id: request.dentist_id,
            window_from,
            window_until,
            notes,
        })
    }
}

/// `GET /waiting-list`.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct WaitingListQuery {
    /// Entries that want this dentist (or any dentist).
    pub dentist_id: Option<UserId>,
    pub patient_id: Option<PatientId>,
    /// `true`: only the entries whose window is over; default: the others.
    pub expired: Option<bool>,
    /// 1–100, default 50.
    pub limit: Option<u32>,
    pub cursor: Option<String>,
}
