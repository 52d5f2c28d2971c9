//! Catalog types: the kind and code from the path, the validated values of an item and of its
//! changes, the stored and merged rows, and the item a clinic sees. The query strings and
//! bodies of the API, and how a PUT body becomes [`ItemChanges`], are `api`'s, re-exported here.

mod api;

pub use api::{CatalogViewResponse, PutItemRequest, Scope, ViewQuery, WriteQuery};

use crate::input::InputError;
use serde::{Deserialize, Serialize};

/// Which catalog: the path segment of `/catalogs/{kind}`, spelled as the database stores it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum CatalogKind {
    /// Treatments a clinic books and bills: name, default duration, price.
    Procedure,
    /// Health insurers a clinic works with: a name, no duration, no price.
    Insurer,
}

impl CatalogKind {
    pub const ALL: [CatalogKind; 2] = [CatalogKind::Procedure, CatalogKind::Insurer];

    /// The kind named by the path segment; `None` for anything the API does not have.
    pub fn from_path(segment: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|kind| kind.as_str() == segment)
    }

    pub fn as_str(&self) -> &'static str {
        match self {
            CatalogKind::Procedure => "procedure",
            CatalogKind::Insurer => "insurer",
        }
    }

    /// Only procedures take time in the agenda and have a price.
    pub fn is_billable(&self) -> bool {
        matches!(self, CatalogKind::Procedure)
    }
}

/// A catalog code as the database's check spells it: 1–32 of A–Z, a–z, 0–9, `.`, `_`, `-`.
/// Codes are case-sensitive (`EXT` and `ext` are two items), so the case is kept.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CatalogCode(String);

impl CatalogCode {
    pub fn parse(field: &str, raw: &str) -> Result<Self, InputError> {
        let valid = !raw.is_empty()
            && raw.len() <= 32
            && raw
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'));
        if valid {
            Ok(Self(raw.to_string()))
        } else {
            Err(InputError::invalid(
                field,
                "must be 1 to 32 letters, digits, dots, underscores or dashes",
            ))
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// The name an item is shown with: trimmed, 1–200 characters, no control characters.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ItemName(String);

impl ItemName {
    pub fn parse(field: &str, raw: &str) -> Result<Self, InputError> {
        crate::text::single_line(field, raw, 200).map(Self)
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// How long a procedure is booked for by default: 5 minutes to 12 hours.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DefaultMinutes(i32);

impl DefaultMinutes {
    pub fn parse(field: &str, raw: i64) -> Result<Self, InputError> {
        match i32::try_from(raw) {
            Ok(minutes) if (5..=720).contains(&minutes) => Ok(Self(minutes)),
            _ => Err(InputError::invalid(
                field,
                "must be between 5 and 720 minutes",
            )),
        }
    }

    pub fn get(&self) -> i32 {
        self.0
    }
}

/// A price in cents of the catalog's currency (EUR): zero (free) up to 1,000,000.00, which
/// catches a price typed in cents twice over without limiting any real treatment.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PriceCents(i64);

impl PriceCents {
    pub const MAX: i64 = 100_000_000;

    pub fn parse(field: &str, raw: i64) -> Result<Self, InputError> {
        if raw < 0 {
            return Err(InputError::invalid(field, "must be zero or more"));
        }
        if raw > Self::MAX {
            return Err(InputError::invalid(
                field,
                "must be at most 100000000 (1,000,000.00)",
            ));
        }
        Ok(Self(raw))
    }

    pub fn get(&self) -> i64 {
        self.0
    }
}

/// One field of a PUT: absent leaves the stored value as it is, `null` clears it (an override
/// then shows the global value again), a value replaces it.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub enum Change<T> {
    #[default]
    Keep,
    Clear,
    Set(T),
}

impl<T> Change<T> {
    fn parse<R>(
        value: Option<Option<R>>,
        parse: impl FnOnce(R) -> Result<T, InputError>,
    ) -> Result<Self, InputError> {
        match value {
            None => Ok(Change::Keep),
            Some(None) => Ok(Change::Clear),
            Some(Some(raw)) => parse(raw).map(Change::Set),
        }
    }

    pub fn is_keep(&self) -> bool {
        matches!(self, Change::Keep)
    }

    /// Whether the field holds a value after the change, given the stored one.
    pub fn is_present<U>(&self, current: Option<&U>) -> bool {
        match self {
            Change::Keep => current.is_some(),
            Change::Clear => false,
            Change::Set(_) => true,
        }
    }

    /// `(whether to write, the value to write)`, as the upsert binds them.
    pub fn bind<U>(&self, value: impl FnOnce(&T) -> U) -> (bool, Option<U>) {
        match self {
            Change::Keep => (false, None),
            Change::Clear => (true, None),
            Change::Set(v) => (true, Some(value(v))),
        }
    }
}

/// A validated PUT body for one item of one kind.
#[derive(Clone, Debug, Default)]
pub struct ItemChanges {
    pub name: Change<ItemName>,
    pub default_minutes: Change<DefaultMinutes>,
    pub price_cents: Change<PriceCents>,
    /// `None` leaves the current state (a new row is active).
    pub active: Option<bool>,
}

impl ItemChanges {
    pub fn is_empty(&self) -> bool {
        self.name.is_keep()
            && self.default_minutes.is_keep()
            && self.price_cents.is_keep()
            && self.active.is_none()
    }

    /// An item that stands on its own (a clinic's extra item, or a global item) must end up
    /// with a name, and a procedure with a default duration: there is nothing to inherit them
    /// from. `current` is the row as stored before this change, if any; `why` ends the message.
    pub fn check_complete(
        &self,
        kind: CatalogKind,
        current: Option<&StoredItem>,
        why: &'static str,
    ) -> Result<(), Incomplete> {
        let name = self.name.is_present(current.and_then(|c| c.name.as_ref()));
        if !name {
            return Err(Incomplete {
                field: "name",
                detail: format!("is required: {why}"),
            });
        }
        let minutes = self
            .default_minutes
            .is_present(current.and_then(|c| c.default_minutes.as_ref()));
        if kind.is_billable() && !minutes {
            return Err(Incomplete {
                field: "default_minutes",
                detail: format!("is required for a procedure: {why}"),
            });
        }
        Ok(())
    }
}

/// A write that would leave an item without a value it cannot inherit.
#[derive(Debug, thiserror::Error)]
#[error("{field} {detail}")]
pub struct Incomplete {
    pub field: &'static str,
    pub detail: String,
}

/// A row as stored, global or a clinic's: `None` fields of an override show the global value.
#[derive(Clone, Debug, sqlx::FromRow)]
pub struct StoredItem {
    pub name: Option<String>,
    pub default_minutes: Option<i32>,
    pub price_cents: Option<i64>,
    pub active: bool,
}

/// One row of the merged query: a global item, a clinic's override of it, or both.
#[derive(Clone, Debug, sqlx::FromRow)]
pub struct MergedRow {
    pub code: String,
    pub name: String,
    pub default_minutes: Option<i32>,
    pub price_cents: Option<i64>,
    pub currency: String,
    pub active: bool,
    pub in_global: bool,
    pub in_clinic: bool,
}

/// Where the item a clinic sees comes from.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ItemSource {
    /// The global catalog, unchanged by the clinic.
    Global,
    /// A global item the clinic changed (price, name, duration or availability).
    Override,
    /// An item only this clinic has.
    Clinic,
}

/// An item as a clinic sees it, and as its cached view holds it (format version in the key).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct CatalogItem {
    pub code: String,
    pub name: String,
    /// Procedures only; `null` for insurers.
    pub default_minutes: Option<i32>,
    /// Procedures only; `null` for insurers (and for a procedure priced on request).
    pub price_cents: Option<i64>,
    pub currency: String,
    pub active: bool,
    pub source: ItemSource,
}

impl From<MergedRow> for CatalogItem {
    fn from(row: MergedRow) -> Self {
        let source = match (row.in_global, row.in_clinic) {
            (true, false) => ItemSource::Global,
            (true, true) => ItemSource::Override,
            (false, _) => ItemSource::Clinic,
        };
        CatalogItem {
            code: row.code,
            name: row.name,
            default_minutes: row.default_minutes,
            price_cents: row.price_cents,
            currency: row.currency,
            active: row.active,
            source,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds_and_codes_are_parsed_at_the_edge() {
        assert_eq!(
            CatalogKind::from_path("procedure").unwrap(),
            CatalogKind::Procedure
        );
        assert_eq!(CatalogKind::from_path("procedures"), None);
        assert_eq!(
            CatalogCode::parse("code", "ENDO-MR").unwrap().as_str(),
            "ENDO-MR"
        );
        assert_eq!(
            CatalogCode::parse("code", "v2.a_b").unwrap().as_str(),
            "v2.a_b"
        );
        for bad in ["", "con espacio", "ñ", &"X".repeat(33)] {
            assert!(CatalogCode::parse("code", bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn standalone_items_need_a_name_and_a_duration() {
        // What a PUT of `{"name": "Injerto óseo"}` parses into.
        let changes = ItemChanges {
            name: Change::Set(ItemName::parse("name", "Injerto óseo").unwrap()),
            ..ItemChanges::default()
        };
        let missing = changes.check_complete(CatalogKind::Procedure, None, "new item");
        assert_eq!(missing.map_err(|e| e.field), Err("default_minutes"));
        assert!(
            changes
                .check_complete(CatalogKind::Insurer, None, "new item")
                .is_ok()
        );
        let stored = StoredItem {
            name: Some("Injerto".into()),
            default_minutes: Some(60),
            price_cents: None,
            active: true,
        };
        let clear_name = ItemChanges {
            name: Change::Clear,
            ..ItemChanges::default()
        };
        assert_eq!(
            clear_name
                .check_complete(CatalogKind::Procedure, Some(&stored), "x")
                .map_err(|e| e.field),
            Err("name")
        );
    }
}
