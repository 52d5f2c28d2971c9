//! The context's queries. `GET /me` runs as the person (`db::begin_user`: their own
//! memberships and clinics only); the staff list as the clinic (`db::begin_tenant`).

use super::settings::{ClinicSettings, SettingsRow};
use super::types::StaffRow;
use crate::auth::Role;
use crate::ids::{ClinicId, OrganizationId, UserId};
use sqlx::PgConnection;

#[derive(Debug, sqlx::FromRow)]
pub(super) struct ProfileRow {
    pub id: UserId,
    pub email: String,
    pub full_name: String,
    pub operator: bool,
}

/// The person as themselves; `None` when no such user exists.
pub(super) async fn profile(
    conn: &mut PgConnection,
    user: UserId,
) -> Result<Option<ProfileRow>, sqlx::Error> {
    sqlx::query_as(
        "SELECT u.id, u.email, u.full_name,
                EXISTS (SELECT 1 FROM platform_operators o WHERE o.user_id = u.id) AS operator
           FROM users u
          WHERE u.id = $1",
    )
    .bind(user)
    .fetch_optional(conn)
    .await
}

#[derive(Debug, sqlx::FromRow)]
pub(super) struct MembershipRow {
    pub clinic_id: ClinicId,
    pub clinic_name: String,
    pub timezone: String,
    pub locale: String,
    pub currency: String,
    pub default_appointment_minutes: i32,
    pub archived: bool,
    pub organization_id: OrganizationId,
    pub organization_name: String,
    pub role: Role,
    pub active: bool,
}

/// The person's memberships with their clinics, by clinic name.
pub(super) async fn memberships(
    conn: &mut PgConnection,
    user: UserId,
) -> Result<Vec<MembershipRow>, sqlx::Error> {
    sqlx::query_as(
        "SELECT c.id AS clinic_id, c.name AS clinic_name, c.timezone, c.locale, c.currency,
                c.default_appointment_minutes, c.archived_at IS NOT NULL AS archived,
                o.id AS organization_id, o.name AS organization_name, m.role, m.active
           FROM memberships m
           JOIN clinics c ON c.id = m.clinic_id
           JOIN organizations o ON o.id = c.organization_id
          WHERE m.user_id = $1
          ORDER BY c.name, c.id",
    )
    .bind(user)
    .fetch_all(conn)
    .await
}

/// One page of the clinic's staff by name, after the `(full_name, id)` of `after`. Names sort
/// by the Unicode root collation (ICU, which RDS and the local server have), so "Álvaro" comes
/// before "Elena" as a reader expects, not after "Zoe" as bytes would have it.
pub(super) async fn staff(
    conn: &mut PgConnection,
    clinic: ClinicId,
    role: Option<Role>,
    active: Option<bool>,
    after: Option<&(String, UserId)>,
    limit: i64,
) -> Result<Vec<StaffRow>, sqlx::Error> {
    let (after_name, after_id) = after.cloned().unzip();
    sqlx::query_as(
        r#"SELECT u.id, u.full_name, u.email, m.role, m.active, m.calendar_color
           FROM memberships m JOIN users u ON u.id = m.user_id
          WHERE m.clinic_id = $1
            AND ($2::user_role IS NULL OR m.role = $2)
            AND ($3::boolean IS NULL OR m.active = $3)
            AND ($4::text IS NULL
                 OR (u.full_name COLLATE "und-x-icu", u.id) > ($4 COLLATE "und-x-icu", $5))
          ORDER BY u.full_name COLLATE "und-x-icu", u.id
          LIMIT $6"#,
    )
    .bind(clinic)
    .bind(role)
    .bind(active)
    .bind(after_name)
    .bind(after_id)
    .bind(limit)
    .fetch_all(conn)
    .await
}

/// The clinic's settings, locked for a change when `for_update`.
pub(super) async fn settings(
    conn: &mut PgConnection,
    clinic: ClinicId,
    for_update: bool,
) -> Result<Option<SettingsRow>, sqlx::Error> {
    let lock = if for_update { " FOR UPDATE OF c" } else { "" };
    sqlx::query_as(&format!(
        "SELECT c.id, c.slug, c.name, c.address, c.phone, c.country, c.timezone, c.locale,
                c.currency,
                c.default_appointment_minutes, c.brand_color,
                c.archived_at IS NOT NULL AS archived, c.created_at, c.updated_at,
                o.id AS organization_id, o.name AS organization_name
           FROM clinics c JOIN organizations o ON o.id = c.organization_id
          WHERE c.id = $1{lock}"
    ))
    .bind(clinic)
    .fetch_optional(conn)
    .await
}

/// Writes `next` as the clinic's settings.
pub(super) async fn save_settings(
    conn: &mut PgConnection,
    next: &ClinicSettings,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "UPDATE clinics
            SET name = $2, address = $3, phone = $4, timezone = $5, locale = $6, currency = $7,
                default_appointment_minutes = $8, brand_color = $9, country = $10,
                updated_at = now()
          WHERE id = $1",
    )
    .bind(next.id)
    .bind(&next.name)
    .bind(&next.address)
    .bind(&next.phone)
    .bind(&next.timezone)
    .bind(&next.locale)
    .bind(&next.currency)
    .bind(next.default_appointment_minutes)
    .bind(&next.brand_color)
    .bind(&next.country)
    .execute(conn)
    .await?;
    Ok(())
}

/// Whether PostgreSQL, which counts the clinic's days, knows the zone (its own tz database).
pub(super) async fn time_zone_known(
    conn: &mut PgConnection,
    zone: &str,
) -> Result<bool, sqlx::Error> {
    sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM pg_timezone_names WHERE name = $1)")
        .bind(zone)
        .fetch_one(conn)
        .await
}

/// A member of the clinic's staff, locked for a change when `for_update`.
pub(super) async fn member(
    conn: &mut PgConnection,
    clinic: ClinicId,
    user: UserId,
    for_update: bool,
) -> Result<Option<StaffRow>, sqlx::Error> {
    let lock = if for_update { " FOR UPDATE OF m" } else { "" };
    sqlx::query_as(&format!(
        "{MEMBER} WHERE m.clinic_id = $1 AND m.user_id = $2{lock}"
    ))
    .bind(clinic)
    .bind(user)
    .fetch_optional(conn)
    .await
}

/// The member of the clinic's staff with this email, active or not.
pub(super) async fn member_by_email(
    conn: &mut PgConnection,
    clinic: ClinicId,
    email: &str,
) -> Result<Option<StaffRow>, sqlx::Error> {
    sqlx::query_as(&format!("{MEMBER} WHERE m.clinic_id = $1 AND u.email = $2"))
        .bind(clinic)
        .bind(email)
        .fetch_optional(conn)
        .await
}

const MEMBER: &str = "SELECT u.id, u.full_name, u.email, m.role, m.active, m.calendar_color
                        FROM memberships m JOIN users u ON u.id = m.user_id";

/// The clinic's active admins other than `except`, locked until commit: two admins demoting
/// each other at once cannot both succeed and leave the clinic without one.
pub(super) async fn other_active_admins(
    conn: &mut PgConnection,
    clinic: ClinicId,
    except: UserId,
) -> Result<Vec<UserId>, sqlx::Error> {
    sqlx::query_scalar(
        "SELECT user_id FROM memberships
          WHERE clinic_id = $1 AND role = 'admin' AND active AND user_id <> $2
          FOR UPDATE",
    )
    .bind(clinic)
    .bind(except)
    .fetch_all(conn)
    .await
}

/// Writes a membership's role, standing and colour.
pub(super) async fn save_member(
    conn: &mut PgConnection,
    clinic: ClinicId,
    user: UserId,
    (role, active, color): (Role, bool, Option<&str>),
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "UPDATE memberships SET role = $3, active = $4, calendar_color = $5, updated_at = now()
          WHERE clinic_id = $1 AND user_id = $2",
    )
    .bind(clinic)
    .bind(user)
    .bind(role)
    .bind(active)
    .bind(color)
    .execute(conn)
    .await?;
    Ok(())
}

/// One page of every clinic (a platform transaction sees them all), by slug.
pub(super) async fn all_clinics(
    conn: &mut PgConnection,
    organization: Option<OrganizationId>,
    archived: Option<bool>,
    after: Option<&String>,
    limit: i64,
) -> Result<Vec<SettingsRow>, sqlx::Error> {
    sqlx::query_as(
        "SELECT c.id, c.slug, c.name, c.address, c.phone, c.country, c.timezone, c.locale,
                c.currency,
                c.default_appointment_minutes, c.brand_color,
                c.archived_at IS NOT NULL AS archived, c.created_at, c.updated_at,
                o.id AS organization_id, o.name AS organization_name
           FROM clinics c JOIN organizations o ON o.id = c.organization_id
          WHERE ($1::uuid IS NULL OR c.organization_id = $1)
            AND ($2::boolean IS NULL OR (c.archived_at IS NOT NULL) = $2)
            AND ($3::text IS NULL OR c.slug > $3)
          ORDER BY c.slug
          LIMIT $4",
    )
    .bind(organization)
    .bind(archived)
    .bind(after)
    .bind(limit)
    .fetch_all(conn)
    .await
}

/// Archives (now) or restores the clinic.
pub(super) async fn set_archived(
    conn: &mut PgConnection,
    clinic: ClinicId,
    archived: bool,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "UPDATE clinics
            SET archived_at = CASE WHEN $2 THEN now() END, updated_at = now()
          WHERE id = $1",
    )
    .bind(clinic)
    .bind(archived)
    .execute(conn)
    .await?;
    Ok(())
}
