//! The context's use cases and their transactions.

use super::permissions::operations_for;
use super::repository::{self, MembershipRow};
use super::settings::{ClinicChanges, ClinicSettings, unknown_time_zone};
use super::types::{
    ClinicSummary, Me, MembershipView, OrganizationSummary, StaffChanges, StaffMember, StaffQuery,
    UserProfile, color_of, initials,
};
use crate::audit::{self, Action, Actor, Changes, FieldPolicy};
use crate::auth::Role;
use crate::cache::{Cache, DASHBOARD};
use crate::db::{self, DbError};
use crate::http::ApiError;
use crate::http::ConflictKind;
use crate::http::conditional::{IfMatch, precondition_holds};
use crate::ids::{ClinicId, UserId};
use crate::keys::Keys;
use crate::pagination::{Page, PageRequest};
use crate::realtime;
use crate::state::AppState;
use crate::telemetry::ErrorChain;
use sqlx::PgPool;

/// A membership change names what changed of role, standing and colour.
const MEMBERSHIP_AUDIT: FieldPolicy = FieldPolicy {
    ignored: &["full_name", "email", "initials"],
    redacted: &[],
};

/// A settings change names the fields that changed; `updated_at` moves with every one.
const SETTINGS_AUDIT: FieldPolicy = FieldPolicy {
    ignored: &["updated_at"],
    redacted: &[],
};

pub struct ClinicsService<'a> {
    state: &'a AppState,
    db: &'a PgPool,
    cache: &'a Cache,
    keys: &'a Keys,
}

impl<'a> ClinicsService<'a> {
    pub fn new(state: &'a AppState) -> Self {
        Self {
            state,
            db: &state.db,
            cache: &state.cache,
            keys: &state.keys,
        }
    }

    /// Changes a member's role, standing or colour, recorded in the audit trail in the same
    /// transaction. A clinic keeps at least one active admin (409 otherwise). A deactivation or
    /// a new role takes effect at the member's next request, and their open WebSockets to the
    /// clinic are closed (a connection keeps the role it was opened with).
    pub async fn update_member(
        &self,
        clinic: ClinicId,
        user: UserId,
        changes: &StaffChanges,
        actor: &Actor,
    ) -> Result<StaffMember, ApiError> {
        let not_found = ApiError::NotFound {
            what: "staff member",
        };
        let mut tx = db::begin_tenant(self.db, clinic).await?;
        let row = repository::member(&mut tx, clinic, user, true)
            .await
            .map_err(DbError::from)?
            .ok_or(not_found)?;
        let color = match &changes.color {
            Some(chosen) => chosen.clone(),
            None => row.calendar_color.clone(),
        };
        let current = StaffMember::from(row);
        let mut next = current.clone();
        next.role = changes.role.unwrap_or(current.role);
        next.active = changes.active.unwrap_or(current.active);
        next.color = color.clone().unwrap_or_else(|| color_of(user).to_owned());
        let was_admin = current.active && current.role == Role::Admin;
        let stays_admin = next.active && next.role == Role::Admin;
        if was_admin
            && !stays_admin
            && repository::other_active_admins(&mut tx, clinic, user)
                .await
                .map_err(DbError::from)?
                .is_empty()
        {
            return Err(ApiError::Conflict {
                kind: ConflictKind::LastAdmin,
                detail: "This is the clinic's last active admin: make someone else an admin \
                         first."
                    .into(),
                field: None,
            });
        }
        let changed = Changes::between(Some(&current), Some(&next), &MEMBERSHIP_AUDIT);
        if changed.is_empty() {
            tx.commit().await.map_err(DbError::from)?;
            return Ok(current);
        }
        repository::save_member(
            &mut tx,
            clinic,
            user,
            (next.role, next.active, color.as_deref()),
        )
        .await
        .map_err(DbError::from)?;
        let action = if current.active && !next.active {
            Action::MembershipDeactivate
        } else {
            Action::MembershipUpdate
        };
        audit::record(
            &mut tx,
            actor,
            Some(clinic),
            action,
            &user.to_string(),
            &changed,
        )
        .await
        .map_err(DbError::from)?;
        tx.commit().await.map_err(DbError::from)?;
        if let Err(error) = self.state.access.forget_user(clinic, user).await {
            // Redis refused the deletion: the cached standing serves out its short lifetime.
            tracing::error!(error = %ErrorChain(&error), "a member's cached standing was not cleared");
        }
        if next.role != current.role || next.active != current.active {
            // A dentist who joins or leaves the agenda changes every day's free time.
            crate::schedule::forget_schedule(self.state, clinic).await;
        }
        let access_changed = next.role != current.role || !next.active;
        if access_changed && let Err(error) = realtime::close_user(self.state, clinic, user).await {
            tracing::warn!(error = %ErrorChain(&error), "a member's connections were not closed");
        }
        Ok(next)
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
        let next = changes.applied_to(&current)?;
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
        // A new time zone moves every day's working hours; a new grid is applied on reading.
        crate::schedule::forget_schedule(self.state, clinic).await;
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
        let organizations = sqlx::query_as(
            "SELECT o.id, o.slug, o.name
               FROM organization_admins a JOIN organizations o ON o.id = a.organization_id
              WHERE a.user_id = $1 AND a.active
              ORDER BY o.name, o.id",
        )
        .bind(user)
        .fetch_all(&mut *tx)
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
            organizations,
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
