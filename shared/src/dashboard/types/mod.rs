//! Dashboard types: the one row the figures query returns, and the response (also the cached
//! value) assembled from it by `assemble`.
//!
//! Calendar figures (today, the next seven days, this month) use the clinic's days, in its
//! time zone. Rolling figures (no-shows over 30 days, new patients over 7 and 30 days) count
//! back from the moment the dashboard was generated.

mod assemble;

pub use assemble::estimate_revenue;

use crate::appointments::AppointmentStatus;
use crate::ids::UserId;
use chrono::{DateTime, NaiveDate, TimeDelta, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// Days in the load section: today and the six days after it.
pub const LOAD_DAYS: usize = 7;
/// The rolling windows of the no-show rate and of new patients.
pub const NO_SHOW_WINDOW: TimeDelta = TimeDelta::days(30);
/// The currency reported when no completed appointment of the month has a price (the catalog's
/// default currency).
pub const DEFAULT_CURRENCY: &str = "EUR";

/// What `repository::figures` returns: aggregates as parallel arrays (much cheaper for
/// PostgreSQL to build than JSON), assembled into a [`Dashboard`] by [`Dashboard::assemble`].
#[derive(Debug, sqlx::FromRow)]
pub struct FiguresRow {
    pub timezone: String,
    /// The clinic's date at the moment asked for.
    pub today: NaiveDate,
    pub today_statuses: Vec<String>,
    pub today_counts: Vec<i64>,
    /// Active dentists, and anyone else booked in the next seven days, ordered by name.
    pub dentist_ids: Vec<Uuid>,
    pub dentist_names: Vec<String>,
    /// One entry per (dentist, day) with bookings; `load_days` counts from today (0) to 6.
    pub load_dentists: Vec<Uuid>,
    pub load_days: Vec<i32>,
    pub load_appointments: Vec<i64>,
    pub load_minutes: Vec<i64>,
    pub no_shows: i64,
    pub closed: i64,
    pub new_patients_7_days: i64,
    pub new_patients_30_days: i64,
    /// Completed appointments of the month per procedure code, with the price that applies to the
    /// clinic (its override when it sets a price, else the global one).
    pub revenue_appointments: Vec<i64>,
    pub revenue_prices: Vec<Option<i64>>,
    pub revenue_currencies: Vec<Option<String>>,
}

/// `GET /dashboard`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Dashboard {
    /// When these figures were computed; a cached dashboard can be up to a few minutes old.
    pub generated_at: DateTime<Utc>,
    /// The clinic's time zone: the one "today", the seven days and "this month" are in.
    pub timezone: String,
    pub appointments_today: AppointmentsToday,
    pub load_next_7_days: LoadNext7Days,
    pub no_show_rate_30_days: NoShowRate,
    pub new_patients: NewPatients,
    pub estimated_revenue_this_month: EstimatedRevenue,
}

/// Appointments starting today (the clinic's day), whatever their status.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct AppointmentsToday {
    pub date: NaiveDate,
    pub total: i64,
    pub by_status: StatusCounts,
}

/// One count per status, zeros included.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct StatusCounts {
    pub scheduled: i64,
    pub confirmed: i64,
    pub completed: i64,
    pub cancelled: i64,
    pub no_show: i64,
}

impl StatusCounts {
    fn add(&mut self, status: AppointmentStatus, count: i64) {
        let slot = match status {
            AppointmentStatus::Scheduled => &mut self.scheduled,
            AppointmentStatus::Confirmed => &mut self.confirmed,
            AppointmentStatus::Completed => &mut self.completed,
            AppointmentStatus::Cancelled => &mut self.cancelled,
            AppointmentStatus::NoShow => &mut self.no_show,
        };
        *slot += count;
    }

    pub fn total(&self) -> i64 {
        self.scheduled + self.confirmed + self.completed + self.cancelled + self.no_show
    }
}

/// Each dentist's bookings from today to six days ahead (`from`..=`to`, the clinic's days).
/// Cancelled appointments do not count: they free the time.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct LoadNext7Days {
    pub from: NaiveDate,
    pub to: NaiveDate,
    pub dentists: Vec<DentistLoad>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct DentistLoad {
    pub dentist_id: UserId,
    pub name: String,
    pub appointments: i64,
    pub booked_minutes: i64,
    /// Their working hours over the seven days, less their time off and the clinic's closures.
    pub working_minutes: i64,
    /// `booked_minutes ÷ working_minutes` (0.75 is 75 %); above 1 when an admin booked outside
    /// the hours; `null` without working time.
    pub utilisation: Option<f64>,
    /// Always seven days, in order, zeros included.
    pub days: Vec<DayLoad>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct DayLoad {
    pub date: NaiveDate,
    pub appointments: i64,
    pub booked_minutes: i64,
    pub working_minutes: i64,
    pub utilisation: Option<f64>,
}

/// Of the appointments that started in the 30 days before `generated_at` and were closed as
/// completed or as a no-show, the share of no-shows. Cancelled and still-open appointments are
/// in neither figure. `rate` is `null` when there is nothing to divide by.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct NoShowRate {
    pub since: DateTime<Utc>,
    pub no_shows: i64,
    pub closed_appointments: i64,
    pub rate: Option<f64>,
}

/// Patients registered in the 7 and 30 days before `generated_at`, archived records excluded
/// (an archived record is usually a duplicate or a mistake, not a new patient).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct NewPatients {
    pub last_7_days: i64,
    pub last_30_days: i64,
}

/// The appointments completed this month (the clinic's calendar month, by start time), each at
/// its procedure's catalog price: the clinic's override when it sets a price, else the global
/// price. Appointments without a procedure, or whose procedure has no price (in `currency`),
/// are counted in `unpriced_appointments` and add nothing.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct EstimatedRevenue {
    /// `YYYY-MM`.
    pub month: String,
    pub amount_cents: i64,
    pub currency: String,
    pub completed_appointments: i64,
    pub unpriced_appointments: i64,
}

/// Completed appointments of one procedure and the price that applies to them.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PricedProcedure {
    pub appointments: i64,
    pub price_cents: Option<i64>,
    pub currency: Option<String>,
}

/// Why a figures row could not be read; only a schema and code out of step can cause it.
#[derive(Debug, thiserror::Error)]
#[error("the dashboard figures do not fit: {0}")]
pub struct MalformedFigures(&'static str);
