//! Everything two Pulso functions need: infrastructure (config, telemetry, db, redis, keys, auth,
//! the audit trail, http, cache, the job queue, real-time notifications, signed media URLs,
//! health), the leaves every layer builds on (ids, contact details, the input errors of the
//! domain's parsers) and one module per bounded context (clinics, patients, appointments,
//! catalogs, schedule, dashboard, xrays, reports, admin).
//!
//! Infrastructure never imports a context; a context may use any infrastructure.

pub mod access;
pub mod audit;
pub mod auth;
pub mod aws;
pub mod cache;
pub mod config;
pub mod contact;
pub mod contract;
pub mod db;
pub mod health;
pub mod http;
pub mod identity;
pub mod ids;
pub mod input;
pub mod invocation;
pub mod keys;
pub mod media;
pub mod pagination;
pub mod queue;
pub mod ratelimit;
pub mod realtime;
pub mod redis;
pub mod secrets;
pub mod signed_urls;
pub mod state;
pub mod telemetry;
pub mod text;

pub mod admin;
pub mod appointments;
pub mod catalogs;
pub mod clinics;
pub mod dashboard;
pub mod patients;
pub mod reports;
pub mod schedule;
pub mod xrays;

// Scheduled work: composes contexts, like a function's main.
pub mod scheduler;
// The worker's job handlers: composes contexts, like a function's main.
pub mod worker;
// Migrations on deploy (the `migrate` function and the dev tool).
pub mod migrate;

#[cfg(test)]
mod layers;
#[cfg(test)]
mod parsing_properties;

pub use config::Config;
pub use state::AppState;
