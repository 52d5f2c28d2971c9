//! What an organization's admin reads of their chain (`GET /organization`): the organization
//! and its clinics with their settings, in a transaction that sees that organization and
//! nothing else (`db::begin_organization`, after the gate `access::OrgAdmin`). Its figures are
//! the dashboard context's (`GET /organization/dashboard`).

use super::onboarding::OrganizationView;
use super::repository;
use super::settings::ClinicSettings;
use crate::access::OrgAdmin;
use crate::db::{self, DbError};
use crate::http::ApiError;
use crate::pagination::{Page, PageRequest};
use crate::state::AppState;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

/// `GET /organization` query string.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct OrganizationQuery {
    /// Only archived (`true`) or active (`false`) clinics; both when absent.
    pub archived: Option<bool>,
    /// Page size, 1–200 (default 50).
    #[param(minimum = 1, maximum = 200)]
    pub limit: Option<u32>,
    /// The `next_cursor` of the previous page.
    pub cursor: Option<String>,
}

/// `GET /organization`: the organization, and one page of its clinics by slug.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct OrganizationClinics {
    pub organization: OrganizationView,
    pub items: Vec<ClinicSettings>,
    /// Pass it as `cursor` to get the next page; `null` on the last page.
    pub next_cursor: Option<String>,
}

pub async fn clinics(
    state: &AppState,
    admin: &OrgAdmin,
    query: OrganizationQuery,
) -> Result<OrganizationClinics, ApiError> {
    let page = PageRequest::<String>::new(query.limit, query.cursor.as_deref())?;
    let mut tx = db::begin_organization(&state.db, admin.organization_id).await?;
    let organization: OrganizationView =
        sqlx::query_as("SELECT id, slug, name, created_at FROM organizations WHERE id = $1")
            .bind(admin.organization_id)
            .fetch_optional(&mut *tx)
            .await
            .map_err(DbError::from)?
            .ok_or(ApiError::NotFound {
                what: "organization",
            })?;
    let rows = repository::all_clinics(
        &mut tx,
        Some(admin.organization_id),
        query.archived,
        page.after.as_ref(),
        page.fetch_limit(),
    )
    .await
    .map_err(DbError::from)?;
    tx.commit().await.map_err(DbError::from)?;
    let page = Page::from_rows(rows, page.limit, |row| row.slug.clone()).map(ClinicSettings::from);
    Ok(OrganizationClinics {
        organization,
        items: page.items,
        next_cursor: page.next_cursor,
    })
}
