//! The request and response shapes of `/appointments`, and how a request becomes a validated
//! command ([`NewAppointment`], [`AppointmentChanges`]). A value that breaks a rule is invalid
//! (422) naming its field; a body that changes nothing is malformed (400).

use super::{
    AppointmentChanges, AppointmentRecord, AppointmentStatus, LengthMinutes, NewAppointment,
    ProcedureCode, Reason, SlotEnd, TimeSlot, instant,
};
use crate::ids::{AppointmentId, PatientId, UserId};
use crate::input::{InputError, not_null, nullable};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

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

#[cfg(test)]
mod tests {
    use super::super::at;
    use super::*;

    #[test]
    fn an_end_is_ends_at_or_a_duration_not_both() {
        assert!(matches!(
            slot_end(Some(at("2030-05-06T10:00:00Z")), Some(30)),
            Err(InputError::Invalid { field, .. }) if field == "duration_minutes"
        ));
        assert_eq!(slot_end(None, None).unwrap(), None);
    }
}
