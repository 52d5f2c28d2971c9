//! Patients of a clinic: register, search, read (cached), correct and archive.

pub(crate) mod repository;
mod routes;
mod service;
mod types;

pub use routes::{router, routes};
pub use service::PatientService;
pub use types::*;
