//! Patient types: the validated values of a patient, built once at the edge, the commands and
//! the search they make up, and the stored row. The request/response shapes of the API, and
//! how a request becomes a command, are `api`'s, re-exported here.

mod api;

pub use api::{CreatePatientRequest, ListPatientsQuery, PatientResponse, UpdatePatientRequest};

pub use crate::contact::{Email, PhoneInput, PhoneNumber};

use crate::ids::{ClinicId, PatientId};
use crate::input::InputError;
use crate::text::{free_text, phone_digits, search_key, single_line};
use chrono::{DateTime, NaiveDate, Utc};
use serde::{Deserialize, Serialize};

/// A first or last name: trimmed, 1–100 characters, no control characters.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PersonName(String);

impl PersonName {
    pub fn parse(field: &str, raw: &str) -> Result<Self, InputError> {
        single_line(field, raw, 100).map(Self)
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// A birth date between 1900-01-01 and today.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BirthDate(NaiveDate);

impl BirthDate {
    pub fn parse(field: &str, date: NaiveDate) -> Result<Self, InputError> {
        let earliest = NaiveDate::from_ymd_opt(1900, 1, 1).unwrap_or(NaiveDate::MIN);
        if date < earliest {
            return Err(InputError::invalid(field, "must be on or after 1900-01-01"));
        }
        if date > Utc::now().date_naive() {
            return Err(InputError::invalid(field, "must not be in the future"));
        }
        Ok(Self(date))
    }

    pub fn date(&self) -> NaiveDate {
        self.0
    }
}

/// A national identity document number (DNI/NIE in Spain): upper-cased, 1–32 of A–Z, 0–9, `-`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NationalId(String);

impl NationalId {
    pub fn parse(field: &str, raw: &str) -> Result<Self, InputError> {
        let value: String = raw.trim().to_uppercase();
        if value.is_empty()
            || value.len() > 32
            || !value.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
        {
            return Err(InputError::invalid(
                field,
                "must be 1 to 32 letters, digits or dashes",
            ));
        }
        Ok(Self(value))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// Free clinical text. Never logged, never part of an error message.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct ClinicalNotes(String);

impl ClinicalNotes {
    pub const MAX_CHARS: usize = 10_000;

    pub fn parse(field: &str, raw: String) -> Result<Self, InputError> {
        free_text(field, &raw, Self::MAX_CHARS)?;
        Ok(Self(raw))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// A patient to register, fully validated.
#[derive(Clone, Debug)]
pub struct NewPatient {
    pub first_name: PersonName,
    pub last_name: PersonName,
    /// Read in the clinic's country by the service.
    pub phone: Option<PhoneInput>,
    pub email: Option<Email>,
    pub birth_date: Option<BirthDate>,
    pub national_id: Option<NationalId>,
    pub notes: ClinicalNotes,
}

impl NewPatient {
    pub fn search_name(&self) -> String {
        search_key(&format!(
            "{} {}",
            self.first_name.as_str(),
            self.last_name.as_str()
        ))
    }
}

/// Changes to a patient; `None` leaves a field as it is, `Some(None)` clears it.
#[derive(Clone, Debug, Default)]
pub struct PatientChanges {
    pub first_name: Option<PersonName>,
    pub last_name: Option<PersonName>,
    /// Read in the clinic's country by the service.
    pub phone: Option<Option<PhoneInput>>,
    pub email: Option<Option<Email>>,
    pub birth_date: Option<Option<BirthDate>>,
    pub national_id: Option<Option<NationalId>>,
    pub notes: Option<ClinicalNotes>,
}

impl PatientChanges {
    pub fn is_empty(&self) -> bool {
        self.first_name.is_none()
            && self.last_name.is_none()
            && self.phone.is_none()
            && self.email.is_none()
            && self.birth_date.is_none()
            && self.national_id.is_none()
            && self.notes.is_none()
    }
}

/// What a patient search asks for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PatientSearch {
    All,
    /// Every word must start a word of the (accent-free) full name: "gar mar" finds "María García".
    Name(Vec<String>),
    /// Digits the phone number starts with, with or without the country code.
    PhonePrefix(String),
}

impl PatientSearch {
    pub fn parse(raw: Option<&str>) -> Result<Self, InputError> {
        let Some(raw) = raw.map(str::trim).filter(|s| !s.is_empty()) else {
            return Ok(PatientSearch::All);
        };
        if raw.chars().count() > 100 {
            return Err(InputError::malformed(
                "search",
                "search must be at most 100 characters.",
            ));
        }
        if let Some(digits) = phone_digits(raw).filter(|d| d.trim_start_matches('+').len() >= 3) {
            return Ok(PatientSearch::PhonePrefix(digits));
        }
        let words: Vec<String> = search_key(raw)
            .split(' ')
            .filter(|w| !w.is_empty())
            .map(str::to_owned)
            .collect();
        if words.is_empty() {
            return Err(InputError::malformed(
                "search",
                "search needs at least one letter or three digits.",
            ));
        }
        Ok(PatientSearch::Name(words))
    }
}

/// A patient as stored, and as cached: the cache holds exactly this shape (format version in
/// the key).
#[derive(Clone, Debug, Serialize, Deserialize, sqlx::FromRow)]
pub struct PatientRecord {
    pub id: PatientId,
    pub clinic_id: ClinicId,
    pub first_name: String,
    pub last_name: String,
    pub search_name: String,
    pub phone: Option<String>,
    pub email: Option<String>,
    pub birth_date: Option<NaiveDate>,
    pub national_id: Option<String>,
    pub notes: String,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub archived_at: Option<DateTime<Utc>>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn search_distinguishes_phone_from_name() {
        assert_eq!(PatientSearch::parse(None).unwrap(), PatientSearch::All);
        assert_eq!(
            PatientSearch::parse(Some("  ")).unwrap(),
            PatientSearch::All
        );
        assert_eq!(
            PatientSearch::parse(Some("600 12")).unwrap(),
            PatientSearch::PhonePrefix("60012".into())
        );
        assert_eq!(
            PatientSearch::parse(Some("García  Már")).unwrap(),
            PatientSearch::Name(vec!["garcia".into(), "mar".into()])
        );
        assert!(PatientSearch::parse(Some("%%")).is_err());
    }

    #[test]
    fn refusals_keep_their_kind_and_field() {
        assert_eq!(
            PatientSearch::parse(Some(&"a".repeat(101))),
            Err(InputError::malformed(
                "search",
                "search must be at most 100 characters."
            ))
        );
        assert_eq!(
            ClinicalNotes::parse("notes", "x".repeat(10_001)),
            Err(InputError::invalid(
                "notes",
                "must be at most 10000 characters"
            ))
        );
    }

    #[test]
    fn values_are_normalised_at_the_edge() {
        assert!(PhoneInput::parse("phone", "+34 600-123-456").is_ok());
        assert!(PhoneInput::parse("phone", "12345").is_err());
        assert_eq!(
            Email::parse("email", " Ana@Clinica.ES ").unwrap().as_str(),
            "ana@clinica.es"
        );
        assert!(Email::parse("email", "ana@clinica").is_err());
        assert_eq!(
            NationalId::parse("national_id", "12345678z")
                .unwrap()
                .as_str(),
            "12345678Z"
        );
        assert!(PersonName::parse("first_name", "  ").is_err());
        assert!(
            BirthDate::parse("birth_date", NaiveDate::from_ymd_opt(1899, 12, 31).unwrap()).is_err()
        );
    }
}
