//! A clinic's settings (`GET /clinic`, `PATCH /clinic`): what its admins manage and what the
//! rest of Pulso reads (the time zone its days are counted in, its locale and currency, the
//! default appointment length, the name, address, phone and colour messages to patients carry).

use super::types::OrganizationSummary;
use crate::contact::{Country, PhoneInput};
use crate::ids::{ClinicId, OrganizationId};
use crate::input::{InputError, not_null, nullable};
use crate::text::{hex_color, single_line};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// The locales Pulso writes to patients in (its message templates) and formats dates for.
pub const LOCALES: &[&str] = &["es-ES", "en-GB", "en-US"];

/// A clinic's settings as the API returns them.
#[derive(Clone, Debug, Serialize, Deserialize, ToSchema)]
pub struct ClinicSettings {
    pub id: ClinicId,
    pub slug: String,
    pub name: String,
    pub address: Option<String>,
    /// E.164 (`+34912345678`); set before numbers were read that way, as it was typed.
    pub phone: Option<String>,
    /// ISO 3166-1 alpha-2: the country of phone numbers typed without their country code.
    #[schema(example = "ES")]
    pub country: String,
    /// The IANA time zone its days and hours are counted in.
    #[schema(example = "Europe/Madrid")]
    pub timezone: String,
    #[schema(example = "es-ES")]
    pub locale: String,
    /// ISO 4217.
    #[schema(example = "EUR")]
    pub currency: String,
    pub default_appointment_minutes: i32,
    /// The colour messages to patients and the frontend use for the clinic (`#rrggbb`).
    pub brand_color: Option<String>,
    pub organization: OrganizationSummary,
    pub archived: bool,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

#[derive(Debug, sqlx::FromRow)]
pub(super) struct SettingsRow {
    pub id: ClinicId,
    pub slug: String,
    pub name: String,
    pub address: Option<String>,
    pub phone: Option<String>,
    pub country: String,
    pub timezone: String,
    pub locale: String,
    pub currency: String,
    pub default_appointment_minutes: i32,
    pub brand_color: Option<String>,
    pub archived: bool,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub organization_id: OrganizationId,
    pub organization_name: String,
}

impl From<SettingsRow> for ClinicSettings {
    fn from(row: SettingsRow) -> Self {
        ClinicSettings {
            id: row.id,
            slug: row.slug,
            name: row.name,
            address: row.address,
            phone: row.phone,
            country: row.country,
            timezone: row.timezone,
            locale: row.locale,
            currency: row.currency,
            default_appointment_minutes: row.default_appointment_minutes,
            brand_color: row.brand_color,
            organization: OrganizationSummary {
                id: row.organization_id,
                name: row.organization_name,
            },
            archived: row.archived,
            created_at: row.created_at,
            updated_at: row.updated_at,
        }
    }
}

/// `PATCH /clinic`: only the fields present change; `null` clears an optional one.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateClinicRequest {
    #[serde(default, deserialize_with = "nullable")]
    #[schema(min_length = 1, max_length = 200)]
    pub name: Option<Option<String>>,
    #[serde(default, deserialize_with = "nullable")]
    #[schema(max_length = 500)]
    pub address: Option<Option<String>>,
    /// Read in the clinic's `country` unless it starts with `+` and a country code; stored in
    /// E.164.
    #[serde(default, deserialize_with = "nullable")]
    #[schema(max_length = 64)]
    pub phone: Option<Option<String>>,
    /// ISO 3166-1 alpha-2, such as `ES`: the country of phone numbers typed without their
    /// country code (the clinic's, its patients').
    #[serde(default, deserialize_with = "nullable")]
    #[schema(pattern = "^[A-Z]{2}$", example = "ES")]
    pub country: Option<Option<String>>,
    /// An IANA time zone name, such as `Europe/Madrid`.
    #[serde(default, deserialize_with = "nullable")]
    #[schema(max_length = 64, example = "Atlantic/Canary")]
    pub timezone: Option<Option<String>>,
    /// One of `es-ES`, `en-GB`, `en-US`.
    #[serde(default, deserialize_with = "nullable")]
    pub locale: Option<Option<String>>,
    /// ISO 4217: three capital letters.
    #[serde(default, deserialize_with = "nullable")]
    #[schema(pattern = "^[A-Z]{3}$")]
    pub currency: Option<Option<String>>,
    /// 5 to 480, in steps of 5.
    #[serde(default, deserialize_with = "nullable")]
    #[schema(minimum = 5, maximum = 480, multiple_of = 5)]
    pub default_appointment_minutes: Option<Option<i32>>,
    /// `#rrggbb`.
    #[serde(default, deserialize_with = "nullable")]
    #[schema(pattern = "^#[0-9a-fA-F]{6}$")]
    pub brand_color: Option<Option<String>>,
}

/// A validated `PATCH /clinic`. The time zone's shape is checked here; whether PostgreSQL knows
/// it, by the service in the same transaction as the change.
#[derive(Debug, Default)]
pub struct ClinicChanges {
    pub name: Option<String>,
    pub address: Option<Option<String>>,
    /// Read in the clinic's country (the new one, when it changes too).
    pub phone: Option<Option<PhoneInput>>,
    pub country: Option<Country>,
    pub timezone: Option<String>,
    pub locale: Option<String>,
    pub currency: Option<String>,
    pub default_appointment_minutes: Option<i32>,
    pub brand_color: Option<Option<String>>,
}

impl TryFrom<UpdateClinicRequest> for ClinicChanges {
    type Error = InputError;

    fn try_from(request: UpdateClinicRequest) -> Result<Self, InputError> {
        let optional = |field: &str, value: Option<Option<String>>, max: usize| {
            value
                .map(|value| value.map(|v| single_line(field, &v, max)).transpose())
                .transpose()
        };
        let changes = ClinicChanges {
            name: not_null("name", request.name)?
                .map(|name| single_line("name", &name, 200))
                .transpose()?,
            address: optional("address", request.address, 500)?,
            phone: request
                .phone
                .map(|phone| phone.map(|p| PhoneInput::parse("phone", &p)).transpose())
                .transpose()?,
            country: not_null("country", request.country)?
                .map(|code| Country::parse("country", &code))
                .transpose()?,
            timezone: not_null("timezone", request.timezone)?
                .map(|zone| time_zone_name(&zone))
                .transpose()?,
            locale: not_null("locale", request.locale)?
                .map(|locale| {
                    LOCALES
                        .iter()
                        .find(|known| **known == locale.trim())
                        .map(|known| (*known).to_owned())
                        .ok_or_else(|| {
                            InputError::invalid(
                                "locale",
                                format!("must be one of {}", LOCALES.join(", ")),
                            )
                        })
                })
                .transpose()?,
            currency: not_null("currency", request.currency)?
                .map(|code| {
                    let code = code.trim();
                    (code.len() == 3 && code.bytes().all(|b| b.is_ascii_uppercase()))
                        .then(|| code.to_owned())
                        .ok_or_else(|| {
                            InputError::invalid("currency", "must be an ISO 4217 code such as EUR")
                        })
                })
                .transpose()?,
            default_appointment_minutes: not_null(
                "default_appointment_minutes",
                request.default_appointment_minutes,
            )?
            .map(|minutes| {
                ((5..=480).contains(&minutes) && minutes % 5 == 0)
                    .then_some(minutes)
                    .ok_or_else(|| {
                        InputError::invalid(
                            "default_appointment_minutes",
                            "must be 5 to 480 minutes, in steps of 5",
                        )
                    })
            })
            .transpose()?,
            brand_color: request
                .brand_color
                .map(|color| color.map(|c| hex_color("brand_color", &c)).transpose())
                .transpose()?,
        };
        let untouched = changes.name.is_none()
            && changes.address.is_none()
            && changes.phone.is_none()
            && changes.country.is_none()
            && changes.timezone.is_none()
            && changes.locale.is_none()
            && changes.currency.is_none()
            && changes.default_appointment_minutes.is_none()
            && changes.brand_color.is_none();
        if untouched {
            return Err(InputError::malformed_request(
                "The body changes nothing: send at least one field.",
            ));
        }
        Ok(changes)
    }
}

impl ClinicChanges {
    /// `current` with these changes applied; a phone number that is not one of the clinic's
    /// country (the new one, when it changes too) is invalid.
    pub(super) fn applied_to(
        &self,
        current: &ClinicSettings,
    ) -> Result<ClinicSettings, InputError> {
        let mut next = current.clone();
        if let Some(country) = self.country {
            next.country = country.as_str().to_owned();
        }
        if let Some(phone) = &self.phone {
            let country = Country::parse("country", &next.country)?;
            next.phone = phone
                .as_ref()
                .map(|p| p.in_country(country).map(|p| p.as_str().to_owned()))
                .transpose()?;
        }
        if let Some(name) = &self.name {
            next.name = name.clone();
        }
        if let Some(address) = &self.address {
            next.address = address.clone();
        }
        if let Some(zone) = &self.timezone {
            next.timezone = zone.clone();
        }
        if let Some(locale) = &self.locale {
            next.locale = locale.clone();
        }
        if let Some(currency) = &self.currency {
            next.currency = currency.clone();
        }
        if let Some(minutes) = self.default_appointment_minutes {
            next.default_appointment_minutes = minutes;
        }
        if let Some(color) = &self.brand_color {
            next.brand_color = color.clone();
        }
        Ok(next)
    }
}

/// An IANA zone's shape: `Area/Location` (or `UTC`), letters, digits, `_`, `+`, `-`. POSIX
/// strings ("CET-1CEST") and abbreviations ("CET") PostgreSQL would also accept are refused:
/// a clinic's days must follow a real place's rules.
fn time_zone_name(raw: &str) -> Result<String, InputError> {
    let zone = raw.trim();
    let part_ok = |part: &str| {
        !part.is_empty()
            && part
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'+' | b'-'))
    };
    let shaped = zone == "UTC"
        || (zone.len() <= 64
            && zone.contains('/')
            && !zone.starts_with("posix/")
            && !zone.starts_with("right/")
            && zone.split('/').all(part_ok));
    if shaped {
        Ok(zone.to_owned())
    } else {
        Err(unknown_time_zone())
    }
}

/// The refusal of a zone that is not a real place's.
pub(super) fn unknown_time_zone() -> InputError {
    InputError::invalid(
        "timezone",
        "must be an IANA time zone name such as Europe/Madrid",
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn time_zones_must_be_a_places_name() {
        for good in [
            "Europe/Madrid",
            "Atlantic/Canary",
            "America/Argentina/Buenos_Aires",
            "UTC",
            "Etc/GMT+1",
        ] {
            assert_eq!(time_zone_name(good).unwrap(), good);
        }
        for bad in [
            "CET",
            "CET-1CEST",
            "posix/Europe/Madrid",
            "Europe/",
            "../etc/passwd",
            "Europe/Ma drid",
            "",
        ] {
            assert!(time_zone_name(bad).is_err(), "{bad:?}");
        }
    }
}
