//! What Pulso's operators do to clinics without SQL: list every clinic, archive one (every
//! member is refused with 403 `clinic-archived` at their next request, its WebSockets closed,
//! its data kept) and restore it. Platform transactions only (`db::begin_platform`), after the
//! caller proved the platform power (`Principal::require_platform_admin`); each change is
//! recorded in the archived clinic's own audit trail.

use super::repository;
use super::settings::ClinicSettings;
use crate::audit::{self, Action, Actor, Changes, FieldPolicy};
use crate::auth::Principal;
use crate::cache::CLINIC_LIST;
use crate::db::{self, DbError};
use crate::http::{ApiError, ConflictKind};
use crate::ids::{ClinicId, OrganizationId};
use crate::pagination::{Page, PageRequest};
use crate::realtime;
use crate::state::AppState;
use crate::telemetry::ErrorChain;
use serde::Deserialize;
use utoipa::IntoParams;

/// An archive or a restore names `archived`; `updated_at` moves with it.
const ARCHIVE_AUDIT: FieldPolicy = FieldPolicy {
    ignored: &["updated_at"],
    redacted: &[],
};

/// `GET /platform/clinics` query string.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct PlatformClinicsQuery {
    /// Only the clinics of this organization.
    pub organization_id: Option<OrganizationId>,
    /// Only archived (`true`) or active (`false`) clinics; both when absent.
    pub archived: Option<bool>,
    /// Page size, 1–200 (default 50).
    #[param(minimum = 1, maximum = 200)]
    pub limit: Option<u32>,
    /// The `next_cursor` of the previous page.
    pub cursor: Option<String>,
}

/// One page of every clinic, by slug.
pub async fn clinics(
    state: &AppState,
    principal: &Principal,
    query: &PlatformClinicsQuery,
) -> Result<Page<ClinicSettings>, ApiError> {
    principal.require_platform_admin()?;
    let page = PageRequest::<String>::new(query.limit, query.cursor.as_deref())?;
    let mut tx = db::begin_platform(&state.db, principal.clinic_id).await?;
    let rows = repository::all_clinics(
        &mut tx,
        query.organization_id,
        query.archived,
        page.after.as_ref(),
        page.fetch_limit(),
    )
    .await
    .map_err(DbError::from)?;
    tx.commit().await.map_err(DbError::from)?;
    let page = Page::from_rows(rows, page.limit, |row| row.slug.clone());
    Ok(page.map(ClinicSettings::from))
}

/// Archives (`true`) or restores (`false`) `clinic`; doing what is already done changes and
/// records nothing. Archiving takes effect at every member's next request (their cached
/// standing is cleared) and closes the clinic's WebSockets; the scheduler stops refreshing its
/// dashboard.
pub async fn set_archived(
    state: &AppState,
    principal: &Principal,
    actor: &Actor,
    clinic: ClinicId,
    archived: bool,
) -> Result<ClinicSettings, ApiError> {
    principal.require_platform_admin()?;
    if archived && clinic == principal.clinic_id {
        // The platform power needs an active clinic to act in: archiving this one could
        // leave no way to restore it without SQL.
        return Err(ApiError::Conflict {
            kind: ConflictKind::ActingClinic,
            detail: "This request acts in that clinic: archive it from another one \
                     (Pulso-Clinic), so you keep a way back."
                .into(),
            field: None,
        });
    }
    let mut tx = db::begin_platform(&state.db, principal.clinic_id).await?;
    let current: ClinicSettings = repository::settings(&mut tx, clinic, true)
        .await
        .map_err(DbError::from)?
        .ok_or(ApiError::NotFound { what: "clinic" })?
        .into();
    if current.archived == archived {
        tx.commit().await.map_err(DbError::from)?;
        return Ok(current);
    }
    repository::set_archived(&mut tx, clinic, archived)
        .await
        .map_err(DbError::from)?;
    let saved: ClinicSettings = repository::settings(&mut tx, clinic, false)
        .await
        .map_err(DbError::from)?
        .ok_or(ApiError::NotFound { what: "clinic" })?
        .into();
    let action = if archived {
        Action::ClinicArchive
    } else {
        Action::ClinicRestore
    };
    let changes = Changes::between(Some(&current), Some(&saved), &ARCHIVE_AUDIT);
    audit::record(
        &mut tx,
        actor,
        Some(clinic),
        action,
        &clinic.to_string(),
        &changes,
    )
    .await
    .map_err(DbError::from)?;
    tx.commit().await.map_err(DbError::from)?;
    if let Err(error) = state.access.forget_clinic(clinic).await {
        tracing::error!(error = %ErrorChain(&error), "a clinic's cached standing was not cleared");
    }
    state
        .cache
        .invalidate(CLINIC_LIST, &state.keys.clinic_list())
        .await;
    if archived && let Err(error) = realtime::close_clinic(state, clinic).await {
        tracing::warn!(error = %ErrorChain(&error), "an archived clinic's connections were not closed");
    }
    Ok(saved)
}
