//! Contact details as every context takes them (a patient's, a clinic's, a member of staff's),
//! parsed once at the edge.

use crate::input::InputError;
use crate::text::phone_digits;

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
