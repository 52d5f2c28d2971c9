//! Clinical catalogs (procedures, insurers): a global catalog every clinic shares, each clinic's
//! overrides and extra items merged over it, read through a one-hour cache.

// `merged` is shared with the reports, which price procedures inside their own transaction.
pub(crate) mod repository;
mod routes;
mod service;
mod types;

pub use routes::{router, routes};
pub use service::{CatalogError, CatalogService, SavedItem};
pub use types::*;
