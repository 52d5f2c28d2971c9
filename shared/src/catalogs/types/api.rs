//! The query strings and bodies of `/catalogs`, and how a PUT body becomes the [`ItemChanges`]
//! of one kind: a value that breaks a rule is invalid (422) naming its field, a body that
//! changes nothing is malformed (400).

use super::{CatalogItem, CatalogKind, Change, DefaultMinutes, ItemChanges, ItemName, PriceCents};
use crate::input::{InputError, not_null, nullable};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

/// `GET /catalogs/{kind}` query string.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct ViewQuery {
    /// Inactive items (retired globally, or hidden by the clinic) are left out unless asked
    /// for; an admin asks to see what can be switched back on.
    #[serde(default)]
    pub include_inactive: bool,
}

/// Whose catalog a write changes.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Scope {
    /// The caller's clinic: its overrides and extra items (clinic admins).
    #[default]
    Clinic,
    /// The global catalog every clinic shares (platform admins).
    Global,
}

impl Scope {
    pub fn as_str(&self) -> &'static str {
        match self {
            Scope::Clinic => "clinic",
            Scope::Global => "global",
        }
    }
}

/// `PUT` / `DELETE /catalogs/{kind}/{code}` query string.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct WriteQuery {
    /// `clinic` (default, clinic admins) or `global` (platform admins).
    #[serde(default)]
    #[param(inline)]
    pub scope: Scope,
}

/// `PUT /catalogs/{kind}/{code}`: only the fields present change; `null` returns a field of an
/// override to the global value.
/// A new item needs a `name` (and, globally, every field of its kind); insurers have no
/// `default_minutes` or `price_cents`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"name": "Limpieza dental", "default_minutes": 30, "price_cents": 4500}))]
pub struct PutItemRequest {
    /// 1–100 characters on one line.
    #[serde(default, deserialize_with = "nullable")]
    #[schema(min_length = 1, max_length = 100)]
    pub name: Option<Option<String>>,
    /// Procedures: 5–720 minutes.
    #[serde(default, deserialize_with = "nullable")]
    #[schema(minimum = 5, maximum = 720)]
    pub default_minutes: Option<Option<i64>>,
    /// Procedures: 0–100,000,000 cents of the clinic's currency.
    #[serde(default, deserialize_with = "nullable")]
    #[schema(minimum = 0, maximum = 100000000)]
    pub price_cents: Option<Option<i64>>,
    #[serde(default, deserialize_with = "nullable")]
    pub active: Option<Option<bool>>,
}

/// `GET /catalogs/{kind}`.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct CatalogViewResponse {
    pub kind: CatalogKind,
    pub items: Vec<CatalogItem>,
}

// Beside the body it reads rather than beside ItemChanges: the domain type never sees a request.
impl ItemChanges {
    /// The changes a PUT body asks for, for an item of `kind`, checked field by field.
    pub fn parse(kind: CatalogKind, request: PutItemRequest) -> Result<Self, InputError> {
        if !kind.is_billable() {
            // `null` is harmless (there is nothing to clear), a value is a mistake.
            for (field, present) in [
                (
                    "default_minutes",
                    matches!(request.default_minutes, Some(Some(_))),
                ),
                ("price_cents", matches!(request.price_cents, Some(Some(_)))),
            ] {
                if present {
                    return Err(InputError::invalid(
                        field,
                        "insurers have no default duration and no price",
                    ));
                }
            }
        }
        let changes = ItemChanges {
            name: Change::parse(request.name, |n| ItemName::parse("name", &n))?,
            default_minutes: Change::parse(request.default_minutes, |m| {
                DefaultMinutes::parse("default_minutes", m)
            })?,
            price_cents: Change::parse(request.price_cents, |p| {
                PriceCents::parse("price_cents", p)
            })?,
            active: not_null("active", request.active)?,
        };
        if changes.is_empty() {
            return Err(InputError::malformed_request(
                "The body changes nothing: send at least one of name, default_minutes, \
                 price_cents, active.",
            ));
        }
        Ok(changes)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(json: &str) -> PutItemRequest {
        serde_json::from_str(json).expect("request json")
    }

    #[test]
    fn absent_null_and_values_are_three_different_changes() {
        let changes = ItemChanges::parse(
            CatalogKind::Procedure,
            request(r#"{"price_cents": 4500, "name": null}"#),
        )
        .unwrap();
        assert_eq!(changes.price_cents, Change::Set(PriceCents(4500)));
        assert_eq!(changes.name, Change::Clear);
        assert_eq!(changes.default_minutes, Change::Keep);
        assert_eq!(changes.active, None);
    }

    #[test]
    fn bad_values_name_their_field() {
        let field = |kind, json: &str| match ItemChanges::parse(kind, request(json)) {
            Err(InputError::Invalid { field, .. }) => field,
            other => panic!("{json}: {other:?}"),
        };
        let procedure = CatalogKind::Procedure;
        assert_eq!(field(procedure, r#"{"price_cents": -1}"#), "price_cents");
        assert_eq!(
            field(procedure, r#"{"default_minutes": 4}"#),
            "default_minutes"
        );
        assert_eq!(field(procedure, r#"{"name": "  "}"#), "name");
        assert_eq!(field(procedure, r#"{"active": null}"#), "active");
        assert_eq!(
            field(CatalogKind::Insurer, r#"{"price_cents": 100}"#),
            "price_cents"
        );
        assert!(matches!(
            ItemChanges::parse(procedure, request("{}")),
            Err(InputError::Malformed { .. })
        ));
    }
}
