//! Cross-function integration tests, one module per area, linked as one binary: on a 2-core
//! machine one link instead of fourteen, and one process whose tests all run in parallel.
//! The harness they share (`TestApp`, its `Client`, fixtures) is the `pulso_tests` library.

mod access;
mod admin;
mod agenda;
mod appointments;
mod audit;
mod cache;
mod cache_many;
mod catalogs;
mod clinics;
mod contract;
mod dashboard;
mod demo;
mod fairness;
mod health;
mod identity;
mod jobs;
mod lost_updates;
mod migrate;
mod patients;
mod queue;
mod quotas;
mod ratelimit;
mod realtime;
mod realtime_e2e;
mod reports;
mod schedule;
mod secrets;
mod security;
mod waiting_list;
mod wake;
mod xray_uploads;
mod xrays;
