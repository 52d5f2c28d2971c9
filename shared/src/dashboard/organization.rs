//! An organization's dashboard (`GET /organization/dashboard`, for its admins): every active
//! clinic's figures side by side, and their totals, rolled up from the clinics' own cached
//! dashboards (`DashboardService::dashboard`: a clinic's miss is computed and cached for its
//! own readers too), and itself cached (`cache::ORGANIZATION_DASHBOARD`, stale served while one
//! caller rolls it up again). A hit is one Redis read whatever the number of clinics; a miss
//! reads each clinic's cached figures, [`CONCURRENCY`] at a time. Each clinic's row keeps its
//! `generated_at` and its own day ("today" is each clinic's, in its time zone); a row can be up
//! to two freshness periods old (the clinic's, then the rollup's).

use super::service::{DashboardError, DashboardService};
use super::types::{Dashboard, EstimatedRevenue, NewPatients, NoShowRate, StatusCounts};
use crate::cache::{ORGANIZATION_DASHBOARD, RawJson};
use crate::db::{self, DbError};
use crate::ids::{ClinicId, OrganizationId};
use crate::state::AppState;
use chrono::{DateTime, NaiveDate, Utc};
use futures_util::{StreamExt, TryStreamExt};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use utoipa::ToSchema;

/// Clinic dashboards read at once while rolling up (misses share the database pool).
const CONCURRENCY: usize = 8;
/// The most clinics one organization's dashboard rolls up.
pub const MAX_CLINICS: i64 = 1_000;

/// `GET /organization/dashboard`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct OrganizationDashboard {
    pub generated_at: DateTime<Utc>,
    pub organization: OrganizationRef,
    pub totals: OrganizationTotals,
    /// One row per active clinic, by name.
    pub clinics: Vec<ClinicFigures>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct OrganizationRef {
    pub id: OrganizationId,
    pub name: String,
}

/// The clinics' figures added up. Today's counts add each clinic's own today.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct OrganizationTotals {
    pub clinics: usize,
    pub appointments_today: i64,
    pub appointments_today_by_status: StatusCounts,
    pub appointments_next_7_days: i64,
    pub booked_minutes_next_7_days: i64,
    pub no_shows_30_days: i64,
    pub closed_appointments_30_days: i64,
    /// `null` when no appointment was closed in the 30 days.
    pub no_show_rate_30_days: Option<f64>,
    pub new_patients: NewPatients,
    /// One entry per currency the clinics price in, by currency.
    pub estimated_revenue_this_month: Vec<RevenueTotal>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct RevenueTotal {
    pub currency: String,
    pub amount_cents: i64,
    pub completed_appointments: i64,
    pub unpriced_appointments: i64,
}

/// One clinic's row: the headline figures of its dashboard (`GET /dashboard` has the detail).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct ClinicFigures {
    pub clinic_id: ClinicId,
    pub name: String,
    pub timezone: String,
    /// When this clinic's figures were computed.
    pub generated_at: DateTime<Utc>,
    /// The clinic's today.
    pub date: NaiveDate,
    pub appointments_today: i64,
    pub appointments_today_by_status: StatusCounts,
    pub appointments_next_7_days: i64,
    pub booked_minutes_next_7_days: i64,
    pub no_show_rate_30_days: NoShowRate,
    pub new_patients: NewPatients,
    pub estimated_revenue_this_month: EstimatedRevenue,
}

impl ClinicFigures {
    fn from_dashboard(clinic: ClinicId, name: String, dashboard: Dashboard) -> Self {
        let load = &dashboard.load_next_7_days.dentists;
        Self {
            clinic_id: clinic,
            name,
            timezone: dashboard.timezone,
            generated_at: dashboard.generated_at,
            date: dashboard.appointments_today.date,
            appointments_today: dashboard.appointments_today.total,
            appointments_today_by_status: dashboard.appointments_today.by_status,
            appointments_next_7_days: load.iter().map(|d| d.appointments).sum(),
            booked_minutes_next_7_days: load.iter().map(|d| d.booked_minutes).sum(),
            no_show_rate_30_days: dashboard.no_show_rate_30_days,
            new_patients: dashboard.new_patients,
            estimated_revenue_this_month: dashboard.estimated_revenue_this_month,
        }
    }
}

impl OrganizationTotals {
    fn of(clinics: &[ClinicFigures]) -> Self {
        let mut by_status = StatusCounts::default();
        let mut revenue: BTreeMap<&str, RevenueTotal> = BTreeMap::new();
        for clinic in clinics {
            let s = &clinic.appointments_today_by_status;
            by_status.scheduled += s.scheduled;
            by_status.confirmed += s.confirmed;
            by_status.completed += s.completed;
            by_status.cancelled += s.cancelled;
            by_status.no_show += s.no_show;
            let month = &clinic.estimated_revenue_this_month;
            let entry = revenue
                .entry(month.currency.as_str())
                .or_insert_with(|| RevenueTotal {
                    currency: month.currency.clone(),
                    amount_cents: 0,
                    completed_appointments: 0,
                    unpriced_appointments: 0,
                });
            entry.amount_cents += month.amount_cents;
            entry.completed_appointments += month.completed_appointments;
            entry.unpriced_appointments += month.unpriced_appointments;
        }
        let sum = |figure: fn(&ClinicFigures) -> i64| clinics.iter().map(figure).sum::<i64>();
        let no_shows = sum(|c| c.no_show_rate_30_days.no_shows);
        let closed = sum(|c| c.no_show_rate_30_days.closed_appointments);
        Self {
            clinics: clinics.len(),
            appointments_today: sum(|c| c.appointments_today),
            appointments_today_by_status: by_status,
            appointments_next_7_days: sum(|c| c.appointments_next_7_days),
            booked_minutes_next_7_days: sum(|c| c.booked_minutes_next_7_days),
            no_shows_30_days: no_shows,
            closed_appointments_30_days: closed,
            no_show_rate_30_days: (closed > 0).then(|| no_shows as f64 / closed as f64),
            new_patients: NewPatients {
                last_7_days: sum(|c| c.new_patients.last_7_days),
                last_30_days: sum(|c| c.new_patients.last_30_days),
            },
            estimated_revenue_this_month: revenue.into_values().collect(),
        }
    }
}

/// The organization's dashboard through its cache, as the JSON document the route sends.
pub async fn dashboard(
    state: &AppState,
    organization: OrganizationId,
) -> Result<RawJson, DashboardError> {
    let key = state.keys.organization_dashboard(organization);
    state
        .cache
        .get_or_load(ORGANIZATION_DASHBOARD, &key, || async {
            let rolled = roll_up(state, organization).await?;
            Ok::<_, DashboardError>(rolled.as_ref().map(RawJson::to_json).transpose()?)
        })
        .await?
        .ok_or(DashboardError::ClinicNotFound)
}

/// Rolls the organization's dashboard up now; `None` when there is no such organization.
pub async fn roll_up(
    state: &AppState,
    organization: OrganizationId,
) -> Result<Option<OrganizationDashboard>, DashboardError> {
    let mut tx = db::begin_organization(&state.db, organization).await?;
    let name: Option<String> = sqlx::query_scalar("SELECT name FROM organizations WHERE id = $1")
        .bind(organization)
        .fetch_optional(&mut *tx)
        .await?;
    let Some(name) = name else {
        return Ok(None);
    };
    let clinics: Vec<(ClinicId, String)> = sqlx::query_as(
        "SELECT id, name FROM clinics
          WHERE organization_id = $1 AND archived_at IS NULL
          ORDER BY name, id LIMIT $2",
    )
    .bind(organization)
    .bind(MAX_CLINICS)
    .fetch_all(&mut *tx)
    .await?;
    tx.commit().await.map_err(DbError::from)?;
    let service = DashboardService::new(state);
    let rows: Vec<ClinicFigures> = futures_util::stream::iter(clinics)
        .map(|(clinic, name)| {
            let service = &service;
            async move {
                let json = service.dashboard(clinic, Default::default()).await?;
                let dashboard: Dashboard =
                    serde_json::from_str(json.as_str()).map_err(DashboardError::Encode)?;
                Ok::<_, DashboardError>(ClinicFigures::from_dashboard(clinic, name, dashboard))
            }
        })
        .buffered(CONCURRENCY)
        .try_collect()
        .await?;
    Ok(Some(OrganizationDashboard {
        generated_at: Utc::now(),
        organization: OrganizationRef {
            id: organization,
            name,
        },
        totals: OrganizationTotals::of(&rows),
        clinics: rows,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(no_shows: i64, closed: i64, currency: &str, cents: i64) -> ClinicFigures {
        ClinicFigures {
            clinic_id: ClinicId::new_random(),
            name: "c".into(),
            timezone: "Europe/Madrid".into(),
            generated_at: Utc::now(),
            date: NaiveDate::from_ymd_opt(2026, 12, 6).unwrap(),
            appointments_today: 3,
            appointments_today_by_status: StatusCounts {
                scheduled: 1,
                confirmed: 1,
                completed: 1,
                cancelled: 0,
                no_show: 0,
            },
            appointments_next_7_days: 10,
            booked_minutes_next_7_days: 300,
            no_show_rate_30_days: NoShowRate {
                since: Utc::now(),
                no_shows,
                closed_appointments: closed,
                rate: None,
            },
            new_patients: NewPatients {
                last_7_days: 1,
                last_30_days: 4,
            },
            estimated_revenue_this_month: EstimatedRevenue {
                month: "2026-12".into(),
                amount_cents: cents,
                currency: currency.into(),
                completed_appointments: 2,
                unpriced_appointments: 1,
            },
        }
    }

    #[test]
    fn totals_add_up_and_keep_currencies_apart() {
        let rows = [
            row(1, 10, "EUR", 1000),
            row(3, 10, "EUR", 500),
            row(0, 0, "GBP", 700),
        ];
        let totals = OrganizationTotals::of(&rows);
        assert_eq!(totals.clinics, 3);
        assert_eq!(totals.appointments_today, 9);
        assert_eq!(totals.appointments_today_by_status.total(), 9);
        assert_eq!(totals.booked_minutes_next_7_days, 900);
        assert_eq!(totals.no_show_rate_30_days, Some(0.2));
        assert_eq!(totals.new_patients.last_30_days, 12);
        let revenue: Vec<(&str, i64, i64)> = totals
            .estimated_revenue_this_month
            .iter()
            .map(|r| {
                (
                    r.currency.as_str(),
                    r.amount_cents,
                    r.completed_appointments,
                )
            })
            .collect();
        assert_eq!(revenue, [("EUR", 1500, 4), ("GBP", 700, 2)]);
        let empty = OrganizationTotals::of(&[]);
        assert_eq!(empty.no_show_rate_30_days, None);
        assert!(empty.estimated_revenue_this_month.is_empty());
    }
}
