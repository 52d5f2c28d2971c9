//! Onboarding by Pulso's operators, without SQL: an organization (a chain), then a clinic in it
//! together with its first admin, in one platform transaction (`db::begin_platform`, after the
//! caller proved the platform power). Both are safe to retry: the same request again answers
//! with what the first created (200 instead of 201); a slug taken by something else is 409
//! `/problems/slug-taken`. The first admin is found by email when they are already someone at
//! another clinic, else created, and invited through the identity provider as
//! `POST /staff` invites (`invitations.rs`).

use super::invitations;
use super::repository;
use super::settings::{ClinicChanges, ClinicSettings, UpdateClinicRequest, unknown_time_zone};
use super::types::StaffMember;
use crate::audit::{self, Action, Actor, Changes, FieldPolicy};
use crate::auth::{Principal, Role};
use crate::cache::CLINIC_LIST;
use crate::contact::{Country, Email, PhoneNumber};
use crate::db::{self, DbError};
use crate::http::{ApiError, ConflictKind};
use crate::ids::{ClinicId, OrganizationId};
use crate::input::InputError;
use crate::state::AppState;
use crate::text::single_line;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use sqlx::PgConnection;
use utoipa::ToSchema;

const CREATED: FieldPolicy = FieldPolicy {
    ignored: &["created_at", "updated_at", "id"],
    redacted: &[],
};

/// `POST /platform/organizations`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewOrganizationRequest {
    /// Lower-case letters, digits and dashes, 2–63 characters.
    #[schema(pattern = "^[a-z0-9][a-z0-9-]{1,62}$", example = "grupo-sonrisa")]
    pub slug: String,
    #[schema(min_length = 1, max_length = 200)]
    pub name: String,
}

#[derive(Clone, Debug, Serialize, Deserialize, ToSchema, sqlx::FromRow)]
pub struct OrganizationView {
    pub id: OrganizationId,
    pub slug: String,
    pub name: String,
    pub created_at: DateTime<Utc>,
}

/// `POST /platform/clinics`: the clinic, its settings (defaults: Europe/Madrid, es-ES, EUR, and
/// the country of the locale) and its first admin.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewClinicRequest {
    pub organization_id: OrganizationId,
    #[schema(pattern = "^[a-z0-9][a-z0-9-]{1,62}$", example = "sonrisa-norte")]
    pub slug: String,
    #[schema(min_length = 1, max_length = 200)]
    pub name: String,
    #[schema(max_length = 500)]
    pub address: Option<String>,
    /// Read in `country`; stored in E.164.
    #[schema(max_length = 64)]
    pub phone: Option<String>,
    /// ISO 3166-1 alpha-2; by default the region of `locale` (`es-ES` → `ES`).
    #[schema(pattern = "^[A-Z]{2}$", example = "ES")]
    pub country: Option<String>,
    #[schema(example = "Europe/Madrid")]
    pub timezone: Option<String>,
    pub locale: Option<String>,
    pub currency: Option<String>,
    pub admin: FirstAdmin,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct FirstAdmin {
    #[schema(max_length = 254)]
    pub email: String,
    #[schema(min_length = 1, max_length = 200)]
    pub full_name: String,
}

/// What onboarding a clinic made (or had made, on a retry).
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct OnboardedClinic {
    pub clinic: ClinicSettings,
    pub admin: StaffMember,
}

/// The locale of a clinic created without one.
const DEFAULT_LOCALE: &str = "es-ES";

/// A validated `POST /platform/clinics`.
pub struct NewClinic {
    organization: OrganizationId,
    slug: String,
    settings: ClinicChanges,
    admin_email: Email,
    admin_name: String,
}

impl TryFrom<NewClinicRequest> for NewClinic {
    type Error = InputError;

    fn try_from(request: NewClinicRequest) -> Result<Self, InputError> {
        let settings = ClinicChanges::try_from(UpdateClinicRequest {
            name: Some(Some(request.name)),
            address: request.address.map(Some),
            phone: request.phone.map(Some),
            country: request.country.map(Some),
            timezone: request.timezone.map(Some),
            locale: request.locale.map(Some),
            currency: request.currency.map(Some),
            default_appointment_minutes: None,
            brand_color: None,
        })?;
        Ok(Self {
            organization: request.organization_id,
            slug: slug(&request.slug)?,
            settings,
            admin_email: Email::parse("admin.email", &request.admin.email)?,
            admin_name: single_line("admin.full_name", &request.admin.full_name, 200)?,
        })
    }
}

/// A slug as the `clinics` and `organizations` tables check it.
pub fn slug(raw: &str) -> Result<String, InputError> {
    let slug = raw.trim();
    let valid = (2..=63).contains(&slug.len())
        && slug
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !slug.starts_with('-');
    if valid {
        Ok(slug.to_owned())
    } else {
        Err(InputError::invalid(
            "slug",
            "must be 2–63 lower-case letters, digits and dashes, not starting with a dash",
        ))
    }
}

fn slug_taken(what: &str, slug: &str) -> ApiError {
    ApiError::Conflict {
        kind: ConflictKind::SlugTaken,
        detail: format!("Another {what} already has the slug {slug}."),
        field: Some("slug".into()),
    }
}

/// Creates the organization, or answers the one this request created before (`false`).
pub async fn create_organization(
    state: &AppState,
    principal: &Principal,
    actor: &Actor,
    request: NewOrganizationRequest,
) -> Result<(OrganizationView, bool), ApiError> {
    principal.require_platform_admin()?;
    let slug = slug(&request.slug)?;
    let name = single_line("name", &request.name, 200)?;
    let mut tx = db::begin_platform(&state.db, principal.clinic_id).await?;
    if let Some(existing) = organization_by_slug(&mut tx, &slug).await? {
        tx.commit().await.map_err(DbError::from)?;
        return if existing.name == name {
            Ok((existing, false))
        } else {
            Err(slug_taken("organization", &slug))
        };
    }
    let created: OrganizationView = sqlx::query_as(
        "INSERT INTO organizations (slug, name) VALUES ($1, $2)
         RETURNING id, slug, name, created_at",
    )
    .bind(&slug)
    .bind(&name)
    .fetch_one(&mut *tx)
    .await
    .map_err(|error| taken_or(error, "organization", &slug))?;
    let changes = Changes::between(None, Some(&created), &CREATED);
    audit::record(
        &mut tx,
        actor,
        None,
        Action::OrganizationCreate,
        &created.id.to_string(),
        &changes,
    )
    .await
    .map_err(DbError::from)?;
    tx.commit().await.map_err(DbError::from)?;
    Ok((created, true))
}

/// `POST /platform/organizations/{id}/admins`: the chain's manager, by email.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewOrganizationAdminRequest {
    #[schema(max_length = 254, example = "direccion@grupo-sonrisa.example")]
    pub email: String,
    /// Used when Pulso does not know the person yet.
    #[schema(min_length = 1, max_length = 200)]
    pub full_name: String,
}

/// An organization's admin as `POST /platform/organizations/{id}/admins` answers them.
#[derive(Debug, Serialize, Deserialize, ToSchema, sqlx::FromRow)]
pub struct OrganizationAdminView {
    pub organization_id: OrganizationId,
    pub user_id: crate::ids::UserId,
    pub email: String,
    pub full_name: String,
    pub active: bool,
}

/// Makes the person an admin of the organization (`true`), inviting them through the identity
/// provider as `POST /staff` does, or answers the row an identical earlier request made.
pub async fn add_organization_admin(
    state: &AppState,
    principal: &Principal,
    actor: &Actor,
    organization: OrganizationId,
    request: NewOrganizationAdminRequest,
) -> Result<(OrganizationAdminView, bool), ApiError> {
    principal.require_platform_admin()?;
    let email = Email::parse("email", &request.email)?;
    let full_name = single_line("full_name", &request.full_name, 200)?;
    let mut tx = db::begin_platform(&state.db, principal.clinic_id).await?;
    let known: bool =
        sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM organizations WHERE id = $1)")
            .bind(organization)
            .fetch_one(&mut *tx)
            .await
            .map_err(DbError::from)?;
    if !known {
        return Err(ApiError::NotFound {
            what: "organization",
        });
    }
    if let Some(existing) = organization_admin(&mut tx, organization, email.as_str()).await? {
        tx.commit().await.map_err(DbError::from)?;
        return Ok((existing, false));
    }
    let pool_user = invitations::provision(state, &email, &full_name).await?;
    let user = invitations::person(&mut tx, &email, &full_name).await?;
    sqlx::query(
        "INSERT INTO organization_admins (organization_id, user_id) VALUES ($1, $2)
         ON CONFLICT (organization_id, user_id) DO UPDATE SET active = true",
    )
    .bind(organization)
    .bind(user)
    .execute(&mut *tx)
    .await
    .map_err(DbError::from)?;
    if let Some(pool_user) = &pool_user {
        invitations::link(&mut tx, pool_user, user).await?;
    }
    let added = organization_admin(&mut tx, organization, email.as_str())
        .await?
        .ok_or(ApiError::NotFound {
            what: "organization admin",
        })?;
    let changes = Changes::between(None, Some(&added), &CREATED);
    audit::record(
        &mut tx,
        actor,
        None,
        Action::OrganizationAdminAdd,
        &organization.to_string(),
        &changes,
    )
    .await
    .map_err(DbError::from)?;
    tx.commit().await.map_err(DbError::from)?;
    Ok((added, true))
}

/// The organization's active admin with this email, if any.
async fn organization_admin(
    conn: &mut PgConnection,
    organization: OrganizationId,
    email: &str,
) -> Result<Option<OrganizationAdminView>, ApiError> {
    Ok(sqlx::query_as(
        "SELECT a.organization_id, a.user_id, u.email, u.full_name, a.active
           FROM organization_admins a JOIN users u ON u.id = a.user_id
          WHERE a.organization_id = $1 AND u.email = $2 AND a.active",
    )
    .bind(organization)
    .bind(email)
    .fetch_optional(conn)
    .await
    .map_err(DbError::from)?)
}

/// Creates the clinic with its first admin, or answers the one this request created before
/// (`false`).
pub async fn create_clinic(
    state: &AppState,
    principal: &Principal,
    actor: &Actor,
    new: NewClinic,
) -> Result<(OnboardedClinic, bool), ApiError> {
    principal.require_platform_admin()?;
    let mut tx = db::begin_platform(&state.db, principal.clinic_id).await?;
    let organization_known: bool =
        sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM organizations WHERE id = $1)")
            .bind(new.organization)
            .fetch_one(&mut *tx)
            .await
            .map_err(DbError::from)?;
    if !organization_known {
        return Err(InputError::invalid("organization_id", "is no organization").into());
    }
    let existing: Option<(ClinicId, OrganizationId)> =
        sqlx::query_as("SELECT id, organization_id FROM clinics WHERE slug = $1")
            .bind(&new.slug)
            .fetch_optional(&mut *tx)
            .await
            .map_err(DbError::from)?;
    if let Some((clinic, organization)) = existing {
        let admin = repository::member_by_email(&mut tx, clinic, new.admin_email.as_str())
            .await
            .map_err(DbError::from)?
            .map(StaffMember::from)
            .filter(|admin| admin.active && admin.role == Role::Admin);
        let onboarded = match admin {
            Some(admin) if organization == new.organization => Some(OnboardedClinic {
                clinic: settings(&mut tx, clinic).await?,
                admin,
            }),
            _ => None,
        };
        tx.commit().await.map_err(DbError::from)?;
        return onboarded
            .map(|onboarded| (onboarded, false))
            .ok_or_else(|| slug_taken("clinic", &new.slug));
    }
    if let Some(zone) = &new.settings.timezone
        && !repository::time_zone_known(&mut tx, zone)
            .await
            .map_err(DbError::from)?
    {
        return Err(unknown_time_zone().into());
    }
    let clinic = ClinicId::new_random();
    let locale = new.settings.locale.as_deref().unwrap_or(DEFAULT_LOCALE);
    let country = new
        .settings
        .country
        .or_else(|| Country::of_locale(locale))
        .unwrap_or(Country::SPAIN);
    let phone = match new.settings.phone.clone().flatten() {
        Some(phone) => Some(phone.in_country(country)?),
        None => None,
    };
    sqlx::query(
        "INSERT INTO clinics (id, organization_id, slug, name, address, phone, timezone, locale,
                              currency, country)
         VALUES ($1, $2, $3, $4, $5, $6, COALESCE($7, 'Europe/Madrid'), $8, COALESCE($9, 'EUR'),
                 $10)",
    )
    .bind(clinic)
    .bind(new.organization)
    .bind(&new.slug)
    .bind(&new.settings.name)
    .bind(new.settings.address.clone().flatten())
    .bind(phone.as_ref().map(PhoneNumber::as_str))
    .bind(&new.settings.timezone)
    .bind(locale)
    .bind(&new.settings.currency)
    .bind(country.as_str())
    .execute(&mut *tx)
    .await
    .map_err(|error| taken_or(error, "clinic", &new.slug))?;
    // The one call out of the transaction's hands: a failure after it is undone by the
    // rollback here, and the same request again finds the person in the pool.
    let pool_user = invitations::provision(state, &new.admin_email, &new.admin_name).await?;
    let user = invitations::person(&mut tx, &new.admin_email, &new.admin_name).await?;
    sqlx::query("INSERT INTO memberships (clinic_id, user_id, role) VALUES ($1, $2, 'admin')")
        .bind(clinic)
        .bind(user)
        .execute(&mut *tx)
        .await
        .map_err(DbError::from)?;
    if let Some(pool_user) = &pool_user {
        invitations::link(&mut tx, pool_user, user).await?;
    }
    let onboarded = OnboardedClinic {
        clinic: settings(&mut tx, clinic).await?,
        admin: repository::member(&mut tx, clinic, user, false)
            .await
            .map_err(DbError::from)?
            .map(StaffMember::from)
            .ok_or(ApiError::NotFound { what: "admin" })?,
    };
    let mut changes = Changes::between(None, Some(&onboarded.clinic), &CREATED);
    changes.insert(
        "admin",
        serde_json::json!({ "after": new.admin_email.as_str() }),
    );
    audit::record(
        &mut tx,
        actor,
        Some(clinic),
        Action::ClinicCreate,
        &clinic.to_string(),
        &changes,
    )
    .await
    .map_err(DbError::from)?;
    tx.commit().await.map_err(DbError::from)?;
    state
        .cache
        .invalidate(CLINIC_LIST, &state.keys.clinic_list())
        .await;
    // A person who already worked elsewhere now has two clinics: their next request without
    // `Pulso-Clinic` must name one (on other instances within the directory's freshness).
    if let Err(error) = state.access.forget_user(clinic, user).await {
        tracing::warn!(error = %crate::telemetry::ErrorChain(&error), "the new admin's cached standing was not cleared");
    }
    Ok((onboarded, true))
}

async fn organization_by_slug(
    conn: &mut PgConnection,
    slug: &str,
) -> Result<Option<OrganizationView>, ApiError> {
    Ok(
        sqlx::query_as("SELECT id, slug, name, created_at FROM organizations WHERE slug = $1")
            .bind(slug)
            .fetch_optional(conn)
            .await
            .map_err(DbError::from)?,
    )
}

async fn settings(conn: &mut PgConnection, clinic: ClinicId) -> Result<ClinicSettings, ApiError> {
    Ok(repository::settings(conn, clinic, false)
        .await
        .map_err(DbError::from)?
        .ok_or(ApiError::NotFound { what: "clinic" })?
        .into())
}

/// A unique violation on the slug (a concurrent onboarding won the race) is 409.
fn taken_or(error: sqlx::Error, what: &str, slug: &str) -> ApiError {
    let error = DbError::from(error);
    match error.constraint() {
        Some("organizations_slug_key" | "clinics_slug_key") => slug_taken(what, slug),
        _ => error.into(),
    }
}
