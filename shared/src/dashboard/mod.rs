//! The clinic dashboard for admins and dentists: today's appointments by status, the next
//! seven days' load per dentist, the no-show rate over 30 days, new patients over 7 and 30 days,
//! and the estimated revenue of the month's completed appointments.
//!
//! Every figure comes from one SQL statement (`repository::figures`) driven by range scans of
//! the indexes of migration 20261123000005. Days and months are the clinic's own
//! (`clinics.timezone`), computed by PostgreSQL. The result is cached stale-while-revalidate
//! (`cache::DASHBOARD`), and the scheduler refreshes the dashboards of active clinics before
//! they go stale (`refresh`). An organization's admins read its clinics' dashboards rolled up
//! (`organization`).

pub mod organization;
mod repository;
mod routes;
mod service;
mod types;

pub mod refresh;

pub use routes::{router, routes};
pub use service::{DashboardError, DashboardService};
pub use types::*;
