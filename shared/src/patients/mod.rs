//! Patients of a clinic: register, search, read (cached), correct and archive; and the
//! one-off rewrite of their older phone numbers in E.164 ([`normalise_phones`]).

mod phones;
pub(crate) mod repository;
mod routes;
mod service;
mod types;

pub use phones::{PATIENT_PHONES, normalise_phones};
pub use routes::{router, routes};
pub use service::PatientService;
pub use types::*;
