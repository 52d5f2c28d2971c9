//! The context's use cases and their transactions.

use super::permissions::operations_for;
use super::repository::{self, MembershipRow};
use super::settings::{ClinicChanges, ClinicSettings, unknown_time_zone};
use super::types::{
    ClinicSummary, Me, MembershipView, OrganizationSummary, StaffMember, StaffQuery, UserProfile,
    initials,
};
use crate::audit::{self, Action, Actor, Changes, FieldPolicy};
use crate::cache::{Cache, DASHBOARD};
use crate::db::{self, DbError};
use crate::http::ApiError;
use crate::http::conditional::{IfMatch, precondition_holds};
use crate::ids::{ClinicId, UserId};
use crate::keys::Keys;
use crate::pagination::{Page, PageRequest};
use crate::state::AppState;
use sqlx::PgPool;

/// A settings change names the fields that changed; `updated_at` moves with every one.
const SETTINGS_AUDIT: FieldPolicy = FieldPolicy {
    ignored: &["updated_at"],
    redacted: &[],
};

pub struct ClinicsService<'a> {
    db: &'a PgPool,
    cache: &'a Cache,
    keys: &'a Keys,
}

impl<'a> ClinicsService<'a> {
    pub fn new(state: &'a AppState) -> Self {
        Self {
            db: &state.db,
            cache: &state.cache,
            keys: &state.keys,
        }
    }

    /// The clinic's settings.
    pub async fn settings(&self, clinic: ClinicId) -> Result<ClinicSettings, ApiError> {
        let mut tx = db::begin_tenant(self.db, clinic).await?;
        let row = repository::settings(&mut tx, clinic, false)
            .await
            .map_err(DbError::from)?
            .ok_or(ApiError::NotFound { what: "clinic" })?;
        tx.commit().await.map_err(DbError::from)?;
        Ok(row.into())
    }

    /// Changes the clinic's settings (only while it is the `If-Match` version, when given), and
    /// records what changed in the audit trail, in one transaction. The dashboard, which counts
    /// days in the clinic's time zone, is recomputed at its next read.
    pub async fn update_settings(
        &self,
        clinic: ClinicId,
        changes: &ClinicChanges,
        if_match: Option<&IfMatch>,
        actor: &Actor,
    ) -> Result<ClinicSettings, ApiError> {
        let mut tx = db::begin_tenant(self.db, clinic).await?;
        let current: ClinicSettings = repository::settings(&mut tx, clinic, true)
            .await
            .map_err(DbError::from)?
            .ok_or(ApiError::NotFound { what: "clinic" })?
            .into();
        if !precondition_holds(if_match, || Some(current.clone())) {
            return Err(ApiError::PreconditionFailed { what: "clinic" });
        }
        if let Some(zone) = &changes.timezone
            && *zone != current.timezone
            && !repository::time_zone_known(&mut tx, zone)
                .await
                .map_err(DbError::from)?
        {
            return Err(unknown_time_zone().into());
        }
        let next = changes.applied_to(&current);
        let changed = Changes::between(Some(&current), Some(&next), &SETTINGS_AUDIT);
        if changed.is_empty() {
            // Nothing to write, nothing to record: the answer is the current version.
            tx.commit().await.map_err(DbError::from)?;
            return Ok(current);
        }
        repository::save_settings(&mut tx, &next)
            .await
            .map_err(DbError::from)?;
        let target = clinic.to_string();
        audit::record(
            &mut tx,
            actor,
            Some(clinic),
            Action::ClinicUpdate,
            &target,
            &changed,
        )
        .await
        .map_err(DbError::from)?;
        let saved = repository::settings(&mut tx, clinic, false)
            .await
            .map_err(DbError::from)?
            .ok_or(ApiError::NotFound { what: "clinic" })?;
        tx.commit().await.map_err(DbError::from)?;
        self.cache
            .invalidate(DASHBOARD, &self.keys.dashboard(clinic))
            .await;
        Ok(saved.into())
    }

    /// The person and their memberships, read as themselves.
    pub async fn me(&self, user: UserId) -> Result<Me, ApiError> {
        let mut tx = db::begin_user(self.db, user).await?;
        let profile = repository::profile(&mut tx, user)
            .await
            .map_err(db::DbError::from)?
            // The gate let them in a moment ago: only a deletion in between gets here.
            .ok_or(ApiError::UnknownUser)?;
        let memberships = repository::memberships(&mut tx, user)
            .await
            .map_err(db::DbError::from)?;
        tx.commit().await.map_err(db::DbError::from)?;
        Ok(Me {
            user: UserProfile {
                initials: initials(&profile.full_name),
                id: profile.id,
                email: profile.email,
                full_name: profile.full_name,
            },
            platform_operator: profile.operator,
            memberships: memberships.into_iter().map(MembershipView::from).collect(),
        })
    }

    /// One page of the clinic's staff, by name.
    pub async fn staff(
        &self,
        clinic: ClinicId,
        query: &StaffQuery,
    ) -> Result<Page<StaffMember>, ApiError> {
        let page = PageRequest::<(String, UserId)>::new(query.limit, query.cursor.as_deref())?;
        let mut tx = db::begin_tenant(self.db, clinic).await?;
        let rows = repository::staff(
            &mut tx,
            clinic,
            query.role,
            query.active,
            page.after.as_ref(),
            page.fetch_limit(),
        )
        .await
        .map_err(db::DbError::from)?;
        tx.commit().await.map_err(db::DbError::from)?;
        let page = Page::from_rows(rows, page.limit, |row| (row.full_name.clone(), row.id));
        Ok(page.map(StaffMember::from))
    }
}

impl From<MembershipRow> for MembershipView {
    fn from(row: MembershipRow) -> Self {
        let usable = row.active && !row.archived;
        MembershipView {
            operations: if usable {
                operations_for(row.role).to_vec()
            } else {
                Vec::new()
            },
            role: row.role,
            active: row.active,
            clinic: ClinicSummary {
                id: row.clinic_id,
                name: row.clinic_name,
                timezone: row.timezone,
                locale: row.locale,
                currency: row.currency,
                default_appointment_minutes: row.default_appointment_minutes,
                archived: row.archived,
                organization: OrganizationSummary {
                    id: row.organization_id,
                    name: row.organization_name,
                },
            },
        }
    }
}
