//! The request and response shapes of `/appointments`, and how a request becomes a validated
//! command ([`NewAppointment`], [`AppointmentChanges`]). A value that breaks a rule is invalid
//! (422) naming its field; a body that changes nothing is malformed (400).

use super::{
    AppointmentChanges, AppointmentRecord, AppointmentStatus, LengthMinutes, NewAppointment,
    ProcedureCode, Reason, SlotEnd, TimeSlot, instant,
};
use crate::ids::{AppointmentId, ChairId, PatientId, UserId};
use crate::input::{InputError, not_null, nullable};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

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

/// `POST /appointments`: `ends_at` or `duration_minutes`, not both.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"patient_id": "0b4f6a9e-5a38-4a8e-9b59-1f0d1c1e8c11",
    "dentist_id": "6d1c0f0e-2b7f-4a57-8d0a-3d6c2c7b9a10", "starts_at": "2026-12-09T09:30:00+01:00",
    "duration_minutes": 30, "reason": "Revisión", "procedure_code": "D0120"}))]
pub struct CreateAppointmentRequest {
    pub patient_id: PatientId,
    /// A dentist of the clinic.
    pub dentist_id: UserId,
    /// RFC 3339 with an offset; from a day ago to two years ahead.
    pub starts_at: DateTime<Utc>,
    /// At most 12 hours after `starts_at`.
    #[serde(default)]
    pub ends_at: Option<DateTime<Utc>>,
    /// 5–720 minutes.
    #[serde(default)]
    #[schema(minimum = 5, maximum = 720)]
    pub duration_minutes: Option<u32>,
    /// Why the visit was booked; never logged.
    #[serde(default)]
    #[schema(max_length = 500)]
    pub reason: Option<String>,
    /// A code of the clinic's `procedures` catalog.
    #[serde(default)]
    #[schema(max_length = 32)]
    pub procedure_code: Option<String>,
    /// A chair (treatment room) of the clinic, active and free for the whole slot.
    #[serde(default)]
    pub chair_id: Option<ChairId>,
    /// Admins only: book outside the dentist's working hours or on their time off or a
    /// closure, on purpose (recorded on the appointment and in the audit trail). Overlaps
    /// with other appointments are refused all the same.
    #[serde(default, rename = "override")]
    pub override_schedule: bool,
}

// The schema's `max_length` of `reason` is this limit.
const _: () = assert!(super::Reason::MAX_CHARS == 500);

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
            chair_id: request.chair_id,
            override_schedule: request.override_schedule,
        })
    }
}

/// `PATCH /appointments/{id}`: only the fields present change, with the rules of
/// `CreateAppointmentRequest`; only `procedure_code` can be cleared (`null`).
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"starts_at": "2026-12-09T11:00:00+01:00", "duration_minutes": 45}))]
pub struct UpdateAppointmentRequest {
    #[serde(default, deserialize_with = "nullable")]
    pub starts_at: Option<Option<DateTime<Utc>>>,
    #[serde(default, deserialize_with = "nullable")]
    pub ends_at: Option<Option<DateTime<Utc>>>,
    #[serde(default, deserialize_with = "nullable")]
    #[schema(minimum = 5, maximum = 720)]
    pub duration_minutes: Option<Option<u32>>,
    #[serde(default, deserialize_with = "nullable")]
    pub dentist_id: Option<Option<UserId>>,
    #[serde(default, deserialize_with = "nullable")]
    #[schema(max_length = 500)]
    pub reason: Option<Option<String>>,
    #[serde(default, deserialize_with = "nullable")]
    #[schema(max_length = 32)]
    pub procedure_code: Option<Option<String>>,
    /// `null` frees the chair.
    #[serde(default, deserialize_with = "nullable")]
    pub chair_id: Option<Option<ChairId>>,
    /// Admins only: move it outside the dentist's hours or onto time off, on purpose. Not a
    /// change by itself.
    #[serde(default, rename = "override")]
    pub override_schedule: bool,
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
            chair_id: request.chair_id,
            override_schedule: request.override_schedule,
        };
        if changes.is_empty() {
            return Err(InputError::malformed_request(
                "The body changes nothing: send at least one field.",
            ));
        }
        Ok(changes)
    }
}

/// A name embedded in a listed appointment (`?include=`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct IncludedName {
    /// The patient's "first last", or the dentist's full name.
    pub name: String,
}

/// An appointment as the API returns it. No names unless the list asks for them
/// (`?include=patient,dentist`): a calendar list should not carry identities it does not need.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
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
    /// The chair (treatment room) it takes, if any.
    pub chair_id: Option<ChairId>,
    /// Booked or last moved by an admin outside the dentist's hours or on time off.
    pub booked_with_override: bool,
    /// With `?include=patient` on a list.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub patient: Option<IncludedName>,
    /// With `?include=dentist` on a list.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dentist: Option<IncludedName>,
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
            chair_id: record.chair_id,
            booked_with_override: record.booked_with_override,
            patient: None,
            dentist: None,
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
