//! Contact details as every context takes them (a patient's, a clinic's, a member of staff's),
//! parsed once at the edge.

use crate::ids::ClinicId;
use crate::input::InputError;
use crate::text::phone_digits;
use sqlx::PgConnection;

/// A country as ISO 3166-1 alpha-2 (`ES`), one the phone-number metadata knows: the region a
/// number typed without its country code belongs to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Country(phonenumber::country::Id);

impl Country {
    /// Pulso's first market: where a clinic without a country of its own is.
    pub const SPAIN: Country = Country(phonenumber::country::Id::ES);

    pub fn parse(field: &str, raw: &str) -> Result<Self, InputError> {
        let code = raw.trim();
        code.bytes()
            .all(|b| b.is_ascii_uppercase())
            .then(|| code.parse::<phonenumber::country::Id>().ok())
            .flatten()
            .map(Country)
            .ok_or_else(|| {
                InputError::invalid(
                    field,
                    "must be an ISO 3166-1 alpha-2 country code such as ES",
                )
            })
    }

    /// The clinic's country (`clinics.country`), read in the caller's tenant transaction.
    pub async fn of_clinic(conn: &mut PgConnection, clinic: ClinicId) -> Result<Self, sqlx::Error> {
        let code: String = sqlx::query_scalar("SELECT country FROM clinics WHERE id = $1")
            .bind(clinic)
            .fetch_one(conn)
            .await?;
        Self::parse("country", &code).map_err(|_| {
            sqlx::Error::Decode(format!("clinics.country {code:?} is not a known country").into())
        })
    }

    /// The country of a clinic's locale (`es-ES` → `ES`), if it names a known one.
    pub fn of_locale(locale: &str) -> Option<Self> {
        let (_, region) = locale.split_once('-')?;
        Self::parse("locale", region).ok()
    }

    pub fn as_str(&self) -> &str {
        self.0.as_ref()
    }
}

/// A phone number as typed: digits with an optional leading `+`, 6–15 digits (E.164 allows 15);
/// spaces, dots, slashes, dashes and parentheses typed by reception are dropped. Which number it
/// is depends on the clinic's country ([`PhoneInput::in_country`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PhoneInput {
    field: String,
    digits: String,
}

impl PhoneInput {
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
        Ok(Self {
            field: field.to_owned(),
            digits,
        })
    }

    /// The number in E.164, read as a number of `country` unless it starts with `+` (or that
    /// country's international prefix, `00` in Spain) and its own country code; one that is not
    /// a valid number there is invalid.
    pub fn in_country(&self, country: Country) -> Result<PhoneNumber, InputError> {
        phonenumber::parse(Some(country.0), &self.digits)
            .ok()
            .filter(phonenumber::is_valid)
            .map(|number| PhoneNumber(number.format().mode(phonenumber::Mode::E164).to_string()))
            .ok_or_else(|| {
                InputError::invalid(
                    &self.field,
                    format!(
                        "is not a valid phone number of {} (or, with + and its country code, of \
                         another country)",
                        country.as_str()
                    ),
                )
            })
    }
}

/// A valid phone number in E.164 (`+34696871213`): what Pulso stores, shows and sends SMS to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PhoneNumber(String);

impl PhoneNumber {
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
            && crate::text::is_plain_token(&email)
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

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        /// However reception spaces a number, it is one number: its E.164 form, which reads
        /// back as itself.
        #[test]
        fn a_number_is_one_number_however_it_is_typed(
            digits in "6[0-9]{8}",
            separators in proptest::collection::vec(prop::sample::select(vec!["", " ", ".", "-"]), 9),
            international in any::<bool>(),
        ) {
            let mut typed = if international { "+34 ".to_owned() } else { String::new() };
            for (digit, separator) in digits.chars().zip(&separators) {
                typed.push(digit);
                typed.push_str(separator);
            }
            let stored = PhoneInput::parse("phone", &typed)
                .and_then(|input| input.in_country(Country::SPAIN))
                .unwrap();
            prop_assert_eq!(stored.as_str(), format!("+34{digits}"));
            let again = PhoneInput::parse("phone", stored.as_str())
                .and_then(|input| input.in_country(Country::SPAIN))
                .unwrap();
            prop_assert_eq!(again, stored);
        }

        /// Whatever is typed, the answer is a number or a refusal naming the field.
        #[test]
        fn any_text_is_a_number_or_a_refusal(raw in "\\PC{0,24}") {
            let parsed = PhoneInput::parse("phone", &raw).and_then(|input| input.in_country(Country::SPAIN));
            match parsed {
                Ok(number) => prop_assert!(number.as_str().starts_with('+')),
                Err(error) => prop_assert_eq!(error.field(), Some("phone")),
            }
        }
    }

    fn spain() -> Country {
        Country::parse("country", "ES").unwrap()
    }

    #[test]
    fn numbers_become_e164_in_the_clinics_country() {
        for (typed, stored) in [
            ("696871213", "+34696871213"),
            ("696 87 12 13", "+34696871213"),
            ("+34 657-741-344", "+34657741344"),
            ("0034 657 741 344", "+34657741344"),
            ("(91) 123.45.67", "+34911234567"),
            // Another country's number, with its code.
            ("+44 20 7946 0018", "+442079460018"),
        ] {
            let number = PhoneInput::parse("phone", typed)
                .unwrap()
                .in_country(spain())
                .unwrap_or_else(|error| panic!("{typed}: {error:?}"));
            assert_eq!(number.as_str(), stored, "{typed}");
        }
        let uk = Country::parse("country", "GB").unwrap();
        let london = PhoneInput::parse("phone", "020 7946 0018").unwrap();
        assert_eq!(london.in_country(uk).unwrap().as_str(), "+442079460018");
        // The international prefix is the country's own: 011 from the United States.
        let us = Country::parse("country", "US").unwrap();
        let dialled = PhoneInput::parse("phone", "011 44 20 7946 0018").unwrap();
        assert_eq!(dialled.in_country(us).unwrap().as_str(), "+442079460018");
    }

    #[test]
    fn numbers_that_are_not_valid_there_are_refused() {
        for typed in ["123456", "5550000000", "+34 12345678", "696 87 12 1"] {
            let input = PhoneInput::parse("phone", typed).unwrap();
            assert!(input.in_country(spain()).is_err(), "{typed}");
        }
        assert!(PhoneInput::parse("phone", "12345").is_err());
        assert!(PhoneInput::parse("phone", "696-87-12-13 ext 4").is_err());
    }

    #[test]
    fn countries_are_upper_case_codes_the_metadata_knows() {
        assert_eq!(Country::parse("country", "ES").unwrap().as_str(), "ES");
        for bad in ["es", "ESP", "XX", "", "E"] {
            assert!(Country::parse("country", bad).is_err(), "{bad}");
        }
        assert_eq!(
            Country::of_locale("en-GB"),
            Country::parse("country", "GB").ok()
        );
        assert_eq!(Country::of_locale("es"), None);
    }
}
