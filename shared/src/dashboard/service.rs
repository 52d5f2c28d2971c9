//! Dashboard use cases: read through the stale-while-revalidate cache, refresh it ahead of
//! expiry (the scheduler), or compute it straight from PostgreSQL.

use super::repository;
use super::types::{Dashboard, LOAD_DAYS, MalformedFigures};
use crate::cache::{Cache, DASHBOARD, Prefetched, RawJson};
use crate::db::{self, DbError};
use crate::http::ApiError;
use crate::ids::ClinicId;
use crate::keys::{CacheKey, Keys};
use crate::schedule::{self, CapacityError};
use crate::state::AppState;
use chrono::{DateTime, TimeDelta, Utc};
use sqlx::PgPool;

#[derive(Debug, thiserror::Error)]
pub enum DashboardError {
    /// The token names a clinic that does not exist (any more).
    #[error("clinic not found")]
    ClinicNotFound,
    #[error(transparent)]
    Malformed(#[from] MalformedFigures),
    #[error("the dashboard could not be encoded")]
    Encode(#[from] serde_json::Error),
    /// Reading the dentists' hours and time off.
    #[error(transparent)]
    Schedule(#[from] CapacityError),
    #[error(transparent)]
    Db(#[from] DbError),
}

impl From<sqlx::Error> for DashboardError {
    fn from(error: sqlx::Error) -> Self {
        DashboardError::Db(DbError::from(error))
    }
}

impl From<DashboardError> for ApiError {
    fn from(error: DashboardError) -> Self {
        match error {
            DashboardError::ClinicNotFound => ApiError::NotFound { what: "clinic" },
            DashboardError::Malformed(error) => ApiError::internal(error),
            DashboardError::Encode(error) => ApiError::internal(error),
            DashboardError::Schedule(error) => error.into(),
            DashboardError::Db(error) => error.into(),
        }
    }
}

pub struct DashboardService<'a> {
    db: &'a PgPool,
    cache: &'a Cache,
    keys: &'a Keys,
}

impl<'a> DashboardService<'a> {
    pub fn new(state: &'a AppState) -> Self {
        Self {
            db: &state.db,
            cache: &state.cache,
            keys: &state.keys,
        }
    }

    /// The clinic's dashboard through the cache, as the JSON document the route sends: fresh for
    /// five minutes, then served stale while one caller recomputes it (the `DASHBOARD` policy); a
    /// miss computes it now.
    ///
    /// Cached as the JSON document itself ([`RawJson`]): a hit hands the stored text to the
    /// response instead of parsing the figures and serializing them again — tens of KB for a
    /// clinic with fifty dentists.
    ///
    /// `prefetched`: what the request gate read of it (`shared::access::Caller`).
    pub async fn dashboard(
        &self,
        clinic: ClinicId,
        prefetched: Prefetched,
    ) -> Result<RawJson, DashboardError> {
        let key = self.key(clinic);
        self.cache
            .get_or_load_prefetched(DASHBOARD, &key, prefetched, || self.compute_json(clinic))
            .await?
            .ok_or(DashboardError::ClinicNotFound)
    }

    /// Recomputes the cached dashboard now. `false` when another caller is already filling it
    /// (or Redis is unavailable): the value then comes from them, or from the next request.
    pub async fn refresh(&self, clinic: ClinicId) -> Result<bool, DashboardError> {
        let key = self.key(clinic);
        self.cache
            .refresh(DASHBOARD, &key, || self.compute_json(clinic))
            .await
    }

    /// Where the clinic's dashboard is cached.
    pub fn key(&self, clinic: ClinicId) -> CacheKey {
        self.keys.dashboard(clinic)
    }

    async fn compute_json(&self, clinic: ClinicId) -> Result<Option<RawJson>, DashboardError> {
        let computed = self.compute(clinic, Utc::now()).await?;
        Ok(computed.as_ref().map(RawJson::to_json).transpose()?)
    }

    /// The dashboard as of `now`, straight from PostgreSQL (one statement); `None` when the
    /// clinic does not exist.
    pub async fn compute(
        &self,
        clinic: ClinicId,
        now: DateTime<Utc>,
    ) -> Result<Option<Dashboard>, DashboardError> {
        let mut tx = db::begin_tenant(self.db, clinic).await?;
        let Some(row) = repository::figures(&mut tx, clinic, now).await? else {
            return Ok(None);
        };
        let zone = schedule::clinic_zone(row.timezone.clone()).map_err(CapacityError::from)?;
        let last = row.today + TimeDelta::days(LOAD_DAYS as i64 - 1);
        let working = schedule::working_minutes(&mut tx, clinic, zone, row.today, last).await?;
        tx.commit().await?;
        Ok(Some(Dashboard::assemble(row, now, &working)?))
    }
}
