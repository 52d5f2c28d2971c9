//! The context's rows and API shapes.

use crate::auth::Role;
use crate::ids::{ClinicId, OrganizationId, UserId};
use crate::input::{InputError, not_null, nullable};
use crate::text::hex_color;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

/// `GET /me`: the signed-in person and every clinic they belong to.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct Me {
    pub user: UserProfile,
    /// Listed as one of Pulso's operators (the platform routes also need the token's claim).
    pub platform_operator: bool,
    /// Every membership, active or not, by clinic name. A deactivated one stays listed so the
    /// frontend can say why that clinic is closed to the person.
    pub memberships: Vec<MembershipView>,
    /// The organizations they administer (`org_admin`): `GET /organization` and
    /// `GET /organization/dashboard` read them, named by `Pulso-Organization`.
    pub organizations: Vec<AdministeredOrganization>,
}

#[derive(Debug, Serialize, Deserialize, ToSchema, sqlx::FromRow)]
pub struct AdministeredOrganization {
    pub id: OrganizationId,
    pub slug: String,
    pub name: String,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct UserProfile {
    pub id: UserId,
    pub email: String,
    pub full_name: String,
    /// Up to two letters for an avatar.
    pub initials: String,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct MembershipView {
    pub clinic: ClinicSummary,
    pub role: Role,
    pub active: bool,
    /// The `operationId`s of the OpenAPI document this membership may call (from each
    /// operation's `x-roles`), so the frontend can hide what would answer 403. Empty when the
    /// membership is inactive or the clinic archived.
    pub operations: Vec<String>,
}

/// What a frontend needs of a clinic to show it and to act in it.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct ClinicSummary {
    /// Send it as the `Pulso-Clinic` header to act in this clinic.
    pub id: ClinicId,
    pub name: String,
    /// The IANA time zone the clinic's days and hours are in.
    #[schema(example = "Europe/Madrid")]
    pub timezone: String,
    #[schema(example = "es-ES")]
    pub locale: String,
    /// ISO 4217.
    #[schema(example = "EUR")]
    pub currency: String,
    /// The length a new appointment gets when the procedure sets none.
    pub default_appointment_minutes: i32,
    pub archived: bool,
    pub organization: OrganizationSummary,
}

#[derive(Clone, Debug, Serialize, Deserialize, ToSchema)]
pub struct OrganizationSummary {
    pub id: OrganizationId,
    pub name: String,
}

/// `GET /staff` query string.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct StaffQuery {
    /// Only members with this role (the booking form asks for `dentist`).
    pub role: Option<Role>,
    /// Only active (`true`) or deactivated (`false`) members; both when absent.
    pub active: Option<bool>,
    /// Page size, 1–200 (default 50).
    #[param(minimum = 1, maximum = 200)]
    pub limit: Option<u32>,
    /// The `next_cursor` of the previous page.
    pub cursor: Option<String>,
}

/// A member of the clinic's staff, as a calendar and a booking form show them.
#[derive(Clone, Debug, Serialize, Deserialize, ToSchema)]
pub struct StaffMember {
    pub id: UserId,
    pub full_name: String,
    pub initials: String,
    pub email: String,
    pub role: Role,
    pub active: bool,
    /// The colour the calendar draws their appointments in: chosen by an admin, else one
    /// derived from the id (the same on every request).
    #[schema(example = "#2563eb")]
    pub color: String,
}

/// `PATCH /staff/{id}`: only the fields present change.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateStaffRequest {
    #[serde(default, deserialize_with = "nullable")]
    pub role: Option<Option<Role>>,
    /// `false` deactivates the membership (as `DELETE` does): refused at the next request.
    #[serde(default, deserialize_with = "nullable")]
    pub active: Option<Option<bool>>,
    /// `#rrggbb`; `null` goes back to the colour derived from the id.
    #[serde(default, deserialize_with = "nullable")]
    #[schema(pattern = "^#[0-9a-fA-F]{6}$")]
    pub color: Option<Option<String>>,
}

/// A validated change of a membership.
#[derive(Debug, Default)]
pub struct StaffChanges {
    pub role: Option<Role>,
    pub active: Option<bool>,
    pub color: Option<Option<String>>,
}

impl StaffChanges {
    /// Deactivation, as `DELETE /staff/{id}` asks for it.
    pub fn deactivation() -> Self {
        Self {
            active: Some(false),
            ..Self::default()
        }
    }
}

impl TryFrom<UpdateStaffRequest> for StaffChanges {
    type Error = InputError;

    fn try_from(request: UpdateStaffRequest) -> Result<Self, InputError> {
        let changes = StaffChanges {
            role: not_null("role", request.role)?,
            active: not_null("active", request.active)?,
            color: request
                .color
                .map(|color| color.map(|c| hex_color("color", &c)).transpose())
                .transpose()?,
        };
        if changes.role.is_none() && changes.active.is_none() && changes.color.is_none() {
            return Err(InputError::malformed_request(
                "The body changes nothing: send at least one field.",
            ));
        }
        Ok(changes)
    }
}

#[derive(Debug, sqlx::FromRow)]
pub(super) struct StaffRow {
    pub id: UserId,
    pub full_name: String,
    pub email: String,
    pub role: Role,
    pub active: bool,
    pub calendar_color: Option<String>,
}

impl From<StaffRow> for StaffMember {
    fn from(row: StaffRow) -> Self {
        StaffMember {
            initials: initials(&row.full_name),
            color: row
                .calendar_color
                .unwrap_or_else(|| color_of(row.id).to_owned()),
            id: row.id,
            full_name: row.full_name,
            email: row.email,
            role: row.role,
            active: row.active,
        }
    }
}

/// Calendar colours a default is drawn from: distinct at a glance, readable with white text.
const PALETTE: [&str; 12] = [
    "#2563eb", "#16a34a", "#dc2626", "#9333ea", "#ea580c", "#0891b2", "#c026d3", "#4d7c0f",
    "#b45309", "#0f766e", "#be123c", "#4338ca",
];

/// The default calendar colour of a person.
pub fn color_of(user: UserId) -> &'static str {
    let index = user.as_uuid().as_u128() % PALETTE.len() as u128;
    PALETTE[index as usize]
}

/// The first letters of the first two words of a name, skipping titles such as "Dra.".
pub fn initials(full_name: &str) -> String {
    full_name
        .split_whitespace()
        .filter(|word| !word.ends_with('.'))
        .filter_map(|word| word.chars().find(|c| c.is_alphanumeric()))
        .take(2)
        // One character per initial, even where uppercasing makes two ("ß" → "SS").
        .filter_map(|c| c.to_uppercase().next())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn initials_skip_titles_and_take_the_first_two_names() {
        assert_eq!(initials("Dra. Lucía Ruiz Pérez"), "LR");
        assert_eq!(initials("álvaro"), "Á");
        assert_eq!(initials("  María   del Mar "), "MD");
        assert_eq!(initials("(Pepe) Gómez"), "PG");
        assert_eq!(initials(""), "");
    }

    proptest! {
        #[test]
        fn initials_are_at_most_two_letters_and_colours_are_stable(name in "\\PC{0,60}", id: u128) {
            let letters = initials(&name);
            prop_assert!(letters.chars().count() <= 2, "{}", letters);
            prop_assert!(letters.chars().all(|c| !c.is_whitespace()));
            let user = UserId(uuid::Uuid::from_u128(id));
            prop_assert_eq!(color_of(user), color_of(user));
            prop_assert!(PALETTE.contains(&color_of(user)));
        }
    }
}
