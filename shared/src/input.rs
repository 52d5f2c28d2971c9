//! Why a client's input was refused, as the domain's parsers say it: the field to blame and a
//! sentence about it, in one of two kinds (malformed, or well-formed but invalid).
//!
//! Domain types are built from requests at the edge (`TryFrom`, `parse`) and must not know the
//! HTTP layer, so they answer with [`InputError`]; `crate::http` turns it into a 400 or a 422
//! problem. The PATCH helpers for `null` ([`nullable`], [`not_null`]) are here for the same
//! reason. This module is a leaf: it imports nothing of the crate (`layers.rs` checks it).

use serde::{Deserialize, Deserializer};

/// A refused input, naming the field to blame where there is one.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum InputError {
    /// The request cannot be read as meant: a query parameter of the wrong shape, a body that
    /// changes nothing. An HTTP 400.
    #[error("malformed request: {detail}")]
    Malformed {
        field: Option<String>,
        detail: String,
    },
    /// The request reads fine but a value breaks a rule: too long, out of range, in the past.
    /// An HTTP 422.
    #[error("invalid field: {detail}")]
    Invalid { field: String, detail: String },
}

impl InputError {
    /// A value that breaks a rule of `field`; `detail` reads after the field's name
    /// ("must be at most 500 characters").
    pub fn invalid(field: impl Into<String>, detail: impl Into<String>) -> Self {
        InputError::Invalid {
            field: field.into(),
            detail: detail.into(),
        }
    }

    /// A parameter that cannot be read; `detail` is a whole sentence.
    pub fn malformed(field: impl Into<String>, detail: impl Into<String>) -> Self {
        InputError::Malformed {
            field: Some(field.into()),
            detail: detail.into(),
        }
    }

    /// A request that cannot be read as a whole, with no single field to blame.
    pub fn malformed_request(detail: impl Into<String>) -> Self {
        InputError::Malformed {
            field: None,
            detail: detail.into(),
        }
    }

    /// The field to blame, if one is.
    pub fn field(&self) -> Option<&str> {
        match self {
            InputError::Malformed { field, .. } => field.as_deref(),
            InputError::Invalid { field, .. } => Some(field),
        }
    }

    pub fn detail(&self) -> &str {
        match self {
            InputError::Malformed { detail, .. } | InputError::Invalid { detail, .. } => detail,
        }
    }
}

/// Distinguishes an absent field (leave unchanged) from an explicit `null` (clear it) in PATCH
/// bodies: use with `#[serde(default, deserialize_with = "nullable")]` on `Option<Option<T>>`.
pub fn nullable<'de, D, T>(deserializer: D) -> Result<Option<Option<T>>, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de>,
{
    Option::<T>::deserialize(deserializer).map(Some)
}

/// A PATCH field that may be omitted but, when present, cannot be cleared: invalid on `null`.
pub fn not_null<T>(field: &str, value: Option<Option<T>>) -> Result<Option<T>, InputError> {
    match value {
        Some(None) => Err(InputError::invalid(field, "cannot be null")),
        Some(Some(value)) => Ok(Some(value)),
        None => Ok(None),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_kind_names_its_field_and_detail() {
        let invalid = InputError::invalid("reason", "must be at most 500 characters");
        assert_eq!(invalid.field(), Some("reason"));
        assert_eq!(invalid.detail(), "must be at most 500 characters");
        let malformed = InputError::malformed("limit", "limit must be between 1 and 200.");
        assert_eq!(malformed.field(), Some("limit"));
        let whole = InputError::malformed_request("The body changes nothing.");
        assert_eq!(whole.field(), None);
        assert_eq!(whole.detail(), "The body changes nothing.");
    }

    #[test]
    fn null_is_refused_only_when_sent() {
        assert_eq!(not_null::<u32>("active", None), Ok(None));
        assert_eq!(not_null("active", Some(Some(3))), Ok(Some(3)));
        assert_eq!(
            not_null::<u32>("active", Some(None)),
            Err(InputError::invalid("active", "cannot be null"))
        );
    }
}
