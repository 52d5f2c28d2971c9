//! Reports: documents built in the background from a clinic's data. An insurance report lists
//! a patient's completed procedures over a period, priced from the clinic's catalog (its
//! overrides applied), as a PDF that the `report.insurance` job renders and stores.

mod jobs;
pub mod pdf;
mod repository;
mod routes;
mod service;
mod types;

pub use jobs::{REPORT_INSURANCE, build_insurance_report, move_held_pdf};
pub use repository::holds_pdfs;

use crate::auth::Role;

/// Insurance reports are billing documents: reception and the clinic's management request and
/// read them (their routes and their jobs' results). Dentists see the procedures in the
/// appointments themselves.
const REPORTERS: &[Role] = &[Role::Admin, Role::Receptionist];
pub use routes::{router, routes};
pub use service::{ReportError, ReportPdf, ReportService, Requested};
pub use types::*;
