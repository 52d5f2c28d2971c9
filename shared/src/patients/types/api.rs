//! The request and response shapes of `/patients`, and how a request becomes a validated
//! [`NewPatient`] or [`PatientChanges`]: a value that breaks a rule is invalid (422) naming its
//! field, a PATCH that changes nothing is malformed (400).

use super::{
    BirthDate, ClinicalNotes, Email, NationalId, NewPatient, PatientChanges, PatientRecord,
    PersonName, PhoneInput,
};
use crate::ids::PatientId;
use crate::input::{InputError, not_null, nullable};
use chrono::{DateTime, NaiveDate, Utc};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

/// `POST /patients`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"first_name": "Lucía", "last_name": "García Pérez",
    "phone": "+34 657 741 344", "birth_date": "1984-03-09"}))]
pub struct CreatePatientRequest {
    /// 1–100 characters on one line.
    #[schema(min_length = 1, max_length = 100)]
    pub first_name: String,
    /// 1–100 characters on one line.
    #[schema(min_length = 1, max_length = 100)]
    pub last_name: String,
    /// 6–15 digits with an optional leading `+`; spaces, dots, dashes and parentheses are
    /// dropped. Without `+` and a country code it is read as a number of the clinic's
    /// `country`; it must be a valid number, and is stored in E.164.
    #[serde(default)]
    #[schema(max_length = 64)]
    pub phone: Option<String>,
    /// Stored lower-cased.
    #[serde(default)]
    #[schema(max_length = 254)]
    pub email: Option<String>,
    /// From 1900-01-01 to today.
    #[serde(default)]
    pub birth_date: Option<NaiveDate>,
    /// DNI/NIE: 1–32 letters, digits or dashes; unique in the clinic.
    #[serde(default)]
    #[schema(max_length = 32)]
    pub national_id: Option<String>,
    /// Clinical notes: never logged.
    #[serde(default)]
    #[schema(max_length = 10000)]
    pub notes: Option<String>,
}

// The schema's `max_length` of `notes` is this limit.
const _: () = assert!(super::ClinicalNotes::MAX_CHARS == 10_000);

impl TryFrom<CreatePatientRequest> for NewPatient {
    type Error = InputError;

    fn try_from(request: CreatePatientRequest) -> Result<Self, InputError> {
        Ok(NewPatient {
            first_name: PersonName::parse("first_name", &request.first_name)?,
            last_name: PersonName::parse("last_name", &request.last_name)?,
            phone: request
                .phone
                .as_deref()
                .map(|p| PhoneInput::parse("phone", p))
                .transpose()?,
            email: request
                .email
                .as_deref()
                .map(|e| Email::parse("email", e))
                .transpose()?,
            birth_date: request
                .birth_date
                .map(|d| BirthDate::parse("birth_date", d))
                .transpose()?,
            national_id: request
                .national_id
                .as_deref()
                .map(|n| NationalId::parse("national_id", n))
                .transpose()?,
            notes: ClinicalNotes::parse("notes", request.notes.unwrap_or_default())?,
        })
    }
}

/// `PATCH /patients/{id}`: only the fields present change; `null` clears an optional field.
/// The rules of each field are `CreatePatientRequest`'s; the names cannot be cleared.
#[derive(Debug, Deserialize, ToSchema)]
#[schema(example = json!({"phone": "+34 696 871 213", "email": null}))]
#[serde(deny_unknown_fields)]
pub struct UpdatePatientRequest {
    #[serde(default, deserialize_with = "nullable")]
    #[schema(min_length = 1, max_length = 100)]
    pub first_name: Option<Option<String>>,
    #[serde(default, deserialize_with = "nullable")]
    #[schema(min_length = 1, max_length = 100)]
    pub last_name: Option<Option<String>>,
    #[serde(default, deserialize_with = "nullable")]
    #[schema(max_length = 64)]
    pub phone: Option<Option<String>>,
    #[serde(default, deserialize_with = "nullable")]
    #[schema(max_length = 254)]
    pub email: Option<Option<String>>,
    #[serde(default, deserialize_with = "nullable")]
    pub birth_date: Option<Option<NaiveDate>>,
    #[serde(default, deserialize_with = "nullable")]
    #[schema(max_length = 32)]
    pub national_id: Option<Option<String>>,
    #[serde(default, deserialize_with = "nullable")]
    #[schema(max_length = 10000)]
    pub notes: Option<Option<String>>,
}

impl TryFrom<UpdatePatientRequest> for PatientChanges {
    type Error = InputError;

    fn try_from(request: UpdatePatientRequest) -> Result<Self, InputError> {
        let changes = PatientChanges {
            first_name: not_null("first_name", request.first_name)?
                .map(|n| PersonName::parse("first_name", &n))
                .transpose()?,
            last_name: not_null("last_name", request.last_name)?
                .map(|n| PersonName::parse("last_name", &n))
                .transpose()?,
            phone: request
                .phone
                .map(|p| {
                    p.as_deref()
                        .map(|p| PhoneInput::parse("phone", p))
                        .transpose()
                })
                .transpose()?,
            email: request
                .email
                .map(|e| e.as_deref().map(|e| Email::parse("email", e)).transpose())
                .transpose()?,
            birth_date: request
                .birth_date
                .map(|d| d.map(|d| BirthDate::parse("birth_date", d)).transpose())
                .transpose()?,
            national_id: request
                .national_id
                .map(|n| {
                    n.as_deref()
                        .map(|n| NationalId::parse("national_id", n))
                        .transpose()
                })
                .transpose()?,
            notes: not_null("notes", request.notes)?
                .map(|n| ClinicalNotes::parse("notes", n))
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

/// `GET /patients` query string.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct ListPatientsQuery {
    /// A name, phone or national id, or part of one (at most 100 characters).
    #[param(max_length = 100)]
    pub search: Option<String>,
    /// Page size, 1–200 (default 50).
    #[param(minimum = 1, maximum = 200)]
    pub limit: Option<u32>,
    /// The `next_cursor` of the previous page.
    pub cursor: Option<String>,
    /// Also list archived patients.
    #[serde(default)]
    pub include_archived: bool,
}

/// A patient as the API returns it.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct PatientResponse {
    pub id: PatientId,
    pub first_name: String,
    pub last_name: String,
    /// E.164 (`+34696871213`); a number stored before numbers were read that way, as typed.
    pub phone: Option<String>,
    pub email: Option<String>,
    pub birth_date: Option<NaiveDate>,
    pub national_id: Option<String>,
    pub notes: String,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub archived_at: Option<DateTime<Utc>>,
}

impl From<PatientRecord> for PatientResponse {
    fn from(record: PatientRecord) -> Self {
        PatientResponse {
            id: record.id,
            first_name: record.first_name,
            last_name: record.last_name,
            phone: record.phone,
            email: record.email,
            birth_date: record.birth_date,
            national_id: record.national_id,
            notes: record.notes,
            created_at: record.created_at,
            updated_at: record.updated_at,
            archived_at: record.archived_at,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_update_changes_something_and_clears_no_name() {
        let nothing: UpdatePatientRequest = serde_json::from_str("{}").expect("empty patch");
        assert_eq!(
            PatientChanges::try_from(nothing).map(|_| ()),
            Err(InputError::malformed_request(
                "The body changes nothing: send at least one field."
            ))
        );
        let cleared: UpdatePatientRequest =
            serde_json::from_str(r#"{"first_name": null}"#).expect("null name");
        assert_eq!(
            PatientChanges::try_from(cleared).map(|_| ()),
            Err(InputError::invalid("first_name", "cannot be null"))
        );
    }
}
