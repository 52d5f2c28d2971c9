//! Who works where: the signed-in person and their clinics (`GET /me`), a clinic's settings
//! (`GET` / `PATCH /clinic`, `settings.rs`), its staff (`GET /staff`: the booking form's
//! dentist list, with calendar colours and initials; `POST /staff` invites, `invitations.rs`;
//! `PATCH` / `DELETE /staff/{id}`), and what
//! Pulso's operators do to clinics (`/platform/…`: `onboarding.rs`, `platform.rs`); a chain's
//! clinics for its organization admins (`GET /organization`, `organization.rs`).
//!
//! People (`users`) and clinics meet in `memberships` (`migrations/…17_organizations_and_
//! memberships.sql`): one role per person per clinic, deactivated rather than deleted. Which
//! clinic a request acts in, and the role it acts with, is the gate's business
//! (`crate::access`); this context shows the same facts to the frontend.

pub mod invitations;
pub mod onboarding;
pub mod organization;
mod permissions;
pub mod platform;
mod repository;
mod routes;
mod service;
mod settings;
mod types;

pub use permissions::operations_for;
pub use routes::{router, routes};
pub use service::ClinicsService;
pub use settings::{ClinicChanges, ClinicSettings, LOCALES, UpdateClinicRequest};
pub use types::*;
