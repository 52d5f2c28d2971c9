//! Patient types: validated domain values built once at the edge, the stored row, and the
//! request/response shapes of the API.

use crate::ids::{ClinicId, PatientId};
use crate::input::{InputError, not_null, nullable};
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

/// Digits with an optional leading `+`, 6–15 digits (E.164 allows 15); spaces, dots,
/// dashes and parentheses typed by reception are dropped.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PhoneNumber(String);

impl PhoneNumber {
    pub fn parse(field: &str, raw: &str) -> Result<Self, InputError> {
        let digits = phone_digits(raw).ok_or_else(|| {
            InputError::invalid(
                field,
                "must contain only digits, spaces, dashes, dots, parentheses and a leading +",
            )
        })?;
        let count = digits.trim_start_matches('+').len();
        if !(6..=15).contains(&count) {
            return Err(InputError::invalid(
                field,
                "must have between 6 and 15 digits",
            ));
        }
        Ok(Self(digits))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// A lower-cased address with one `@`, a dot in the domain and no spaces.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Email(String);

impl Email {
    pub fn parse(field: &str, raw: &str) -> Result<Self, InputError> {
        let email = raw.trim().to_lowercase();
        let valid = email.len() <= 254
            && !email.chars().any(char::is_whitespace)
            && matches!(email.split_once('@'), Some((local, domain))
                if !local.is_empty() && domain.contains('.') && !domain.contains('@')
                    && !domain.starts_with('.') && !domain.ends_with('.'));
        if valid {
            Ok(Self(email))
        } else {
            Err(InputError::invalid(
                field,
                "must be an email address like name@example.com",
            ))
        }
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
    pub phone: Option<PhoneNumber>,
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
    pub phone: Option<Option<PhoneNumber>>,
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

/// `POST /patients`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CreatePatientRequest {
    pub first_name: String,
    pub last_name: String,
    #[serde(default)]
    pub phone: Option<String>,
    #[serde(default)]
    pub email: Option<String>,
    #[serde(default)]
    pub birth_date: Option<NaiveDate>,
    #[serde(default)]
    pub national_id: Option<String>,
    #[serde(default)]
    pub notes: Option<String>,
}

impl TryFrom<CreatePatientRequest> for NewPatient {
    type Error = InputError;

    fn try_from(request: CreatePatientRequest) -> Result<Self, InputError> {
        Ok(NewPatient {
            first_name: PersonName::parse("first_name", &request.first_name)?,
            last_name: PersonName::parse("last_name", &request.last_name)?,
            phone: request
                .phone
                .as_deref()
                .map(|p| PhoneNumber::parse("phone", p))
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
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UpdatePatientRequest {
    #[serde(default, deserialize_with = "nullable")]
    pub first_name: Option<Option<String>>,
    #[serde(default, deserialize_with = "nullable")]
    pub last_name: Option<Option<String>>,
    #[serde(default, deserialize_with = "nullable")]
    pub phone: Option<Option<String>>,
    #[serde(default, deserialize_with = "nullable")]
    pub email: Option<Option<String>>,
    #[serde(default, deserialize_with = "nullable")]
    pub birth_date: Option<Option<NaiveDate>>,
    #[serde(default, deserialize_with = "nullable")]
    pub national_id: Option<Option<String>>,
    #[serde(default, deserialize_with = "nullable")]
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
                        .map(|p| PhoneNumber::parse("phone", p))
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
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ListPatientsQuery {
    pub search: Option<String>,
    pub limit: Option<u32>,
    pub cursor: Option<String>,
    #[serde(default)]
    pub include_archived: bool,
}

/// A patient as the API returns it.
#[derive(Debug, Serialize, Deserialize)]
pub struct PatientResponse {
    pub id: PatientId,
    pub first_name: String,
    pub last_name: String,
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

    #[test]
    fn values_are_normalised_at_the_edge() {
        assert_eq!(
            PhoneNumber::parse("phone", "+34 600-123-456")
                .unwrap()
                .as_str(),
            "+34600123456"
        );
        assert!(PhoneNumber::parse("phone", "12345").is_err());
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
