//! The admin cache view: counters of every Lambda environment (kept in Redis), the server's own
//! facts, and invalidation of one patient, a clinic's catalogs or dashboard, a whole clinic, or
//! (platform admins) the global catalog — each O(1).

use crate::cache::{
    CATALOG_VIEW, CLINIC_LIST, CacheNameStats, CacheUnavailable, DASHBOARD, PATIENT_PROFILE,
};
use crate::catalogs::CatalogKind;
use crate::http::ApiError;
use crate::ids::{ClinicId, PatientId};
use crate::redis::ServerFacts;
use crate::state::AppState;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct CacheStatsResponse {
    /// `clinic` (the caller's clinic) or `platform` (every clinic, platform admins only).
    pub scope: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub clinic_id: Option<ClinicId>,
    /// When the counters started (first flush after Redis last lost them).
    pub counting_since: Option<DateTime<Utc>>,
    /// Per cache name; every cache Pulso has is listed, zeros included.
    pub caches: BTreeMap<String, CacheNameStats>,
    /// Whether the Lambda environment answering this request currently skips Redis.
    pub circuit_open: bool,
    pub redis: RedisView,
}

/// The server's own facts (version, memory, hit ratio of every tenant together) are Pulso's
/// operators' business: a clinic admin sees only whether Redis answered.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct RedisView {
    pub reachable: bool,
    /// The server's facts: at platform scope, when Redis answered.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub server: Option<ServerFacts>,
}

pub async fn stats(state: &AppState, clinic: Option<ClinicId>) -> CacheStatsResponse {
    // This environment's own recent counts go in first, so the answer includes them.
    state.cache.flush_metrics().await;
    let server_facts = async {
        match clinic {
            Some(_) => None,
            None => Some(state.redis.server_facts().await),
        }
    };
    let (counters, server) = tokio::join!(state.cache.stats(clinic), server_facts);
    let counters_read = counters.is_ok();
    let (mut caches, since) = counters
        .inspect_err(|error| tracing::warn!(%error, "cache counters unavailable"))
        .unwrap_or_default();
    let known = match clinic {
        Some(_) => &[PATIENT_PROFILE, CATALOG_VIEW, DASHBOARD][..],
        None => &[PATIENT_PROFILE, CATALOG_VIEW, DASHBOARD, CLINIC_LIST][..],
    };
    for policy in known {
        caches.entry(policy.name.to_string()).or_default();
    }
    let (reachable, server) = match server {
        None => (counters_read, None),
        Some(facts) => {
            let facts = facts
                .inspect_err(|error| tracing::warn!(%error, "Redis INFO unavailable"))
                .ok();
            (facts.is_some(), facts)
        }
    };
    CacheStatsResponse {
        scope: if clinic.is_some() {
            "clinic"
        } else {
            "platform"
        },
        clinic_id: clinic,
        counting_since: since.and_then(|seconds| DateTime::from_timestamp(seconds, 0)),
        caches,
        circuit_open: state.cache.circuit_open(),
        redis: RedisView { reachable, server },
    }
}

/// The body of `POST /admin/cache/invalidate`: `{"scope": "...", "patient_id": "..."}`.
/// A flat struct (not a tagged enum) so a bad field is named in the 422.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"scope": "patient", "patient_id": "0b4f6a9e-5a38-4a8e-9b59-1f0d1c1e8c11"}))]
pub struct InvalidateBody {
    /// `patient` (needs `patient_id`), `catalog`, `dashboard`, `clinic` (everything of the
    /// clinic) or `global_catalog` (platform admins).
    scope: ScopeName,
    #[serde(default)]
    patient_id: Option<PatientId>,
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
enum ScopeName {
    Patient,
    Catalog,
    Dashboard,
    Clinic,
    GlobalCatalog,
}

/// What to invalidate. Everything but `global_catalog` is the caller's own clinic.
#[derive(Debug)]
pub enum InvalidateRequest {
    /// One patient's cached profile.
    Patient { patient_id: PatientId },
    /// The clinic's merged catalog views (every kind).
    Catalog,
    /// The clinic's dashboard.
    Dashboard,
    /// Every cached value of the clinic.
    Clinic,
    /// Every clinic's catalog view (platform admins only).
    GlobalCatalog,
}

impl TryFrom<InvalidateBody> for InvalidateRequest {
    type Error = ApiError;

    fn try_from(body: InvalidateBody) -> Result<Self, ApiError> {
        let request = match (body.scope, body.patient_id) {
            (ScopeName::Patient, Some(patient_id)) => return Ok(Self::Patient { patient_id }),
            (ScopeName::Patient, None) => {
                return Err(ApiError::validation(
                    "patient_id",
                    "The patient scope needs the patient's id.",
                ));
            }
            (_, Some(_)) => {
                return Err(ApiError::validation(
                    "patient_id",
                    "patient_id belongs to the patient scope only.",
                ));
            }
            (ScopeName::Catalog, None) => Self::Catalog,
            (ScopeName::Dashboard, None) => Self::Dashboard,
            (ScopeName::Clinic, None) => Self::Clinic,
            (ScopeName::GlobalCatalog, None) => Self::GlobalCatalog,
        };
        Ok(request)
    }
}

impl InvalidateRequest {
    pub fn is_global(&self) -> bool {
        matches!(self, InvalidateRequest::GlobalCatalog)
    }

    pub fn scope(&self) -> &'static str {
        match self {
            InvalidateRequest::Patient { .. } => "patient",
            InvalidateRequest::Catalog => "catalog",
            InvalidateRequest::Dashboard => "dashboard",
            InvalidateRequest::Clinic => "clinic",
            InvalidateRequest::GlobalCatalog => "global_catalog",
        }
    }
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct Invalidated {
    pub scope: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub clinic_id: Option<ClinicId>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub patient_id: Option<PatientId>,
}

pub async fn invalidate(
    state: &AppState,
    clinic: ClinicId,
    request: &InvalidateRequest,
) -> Result<Invalidated, CacheUnavailable> {
    let (cache, keys) = (&state.cache, &state.keys);
    let mut done = Invalidated {
        scope: request.scope(),
        clinic_id: Some(clinic),
        patient_id: None,
    };
    match request {
        InvalidateRequest::Patient { patient_id } => {
            cache
                .try_invalidate(PATIENT_PROFILE, &keys.patient_profile(clinic, *patient_id))
                .await?;
            done.patient_id = Some(*patient_id);
        }
        InvalidateRequest::Catalog => {
            for kind in CatalogKind::ALL {
                cache
                    .try_invalidate(CATALOG_VIEW, &keys.catalog_view(clinic, kind.as_str()))
                    .await?;
            }
        }
        InvalidateRequest::Dashboard => {
            cache
                .try_invalidate(DASHBOARD, &keys.dashboard(clinic))
                .await?
        }
        InvalidateRequest::Clinic => cache.invalidate_clinic(clinic).await?,
        InvalidateRequest::GlobalCatalog => {
            cache.invalidate_global_catalog().await?;
            done.clinic_id = None;
        }
    }
    Ok(done)
}
