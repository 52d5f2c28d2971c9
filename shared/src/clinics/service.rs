//! The context's use cases and their transactions.

use super::permissions::operations_for;
use super::repository::{self, MembershipRow};
use super::types::{
    ClinicSummary, Me, MembershipView, OrganizationSummary, StaffMember, StaffQuery, UserProfile,
    initials,
};
use crate::db;
use crate::http::ApiError;
use crate::ids::{ClinicId, UserId};
use crate::pagination::{Page, PageRequest};
use sqlx::PgPool;

pub struct ClinicsService<'a> {
    db: &'a PgPool,
}

impl<'a> ClinicsService<'a> {
    pub fn new(db: &'a PgPool) -> Self {
        Self { db }
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
