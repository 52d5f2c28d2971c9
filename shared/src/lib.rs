//! Everything two Pulso functions need: infrastructure (config, telemetry, db, redis, auth, http,
//! cache) and one module per bounded context (patients, appointments).
//!
//! Infrastructure never imports a context; a context may use any infrastructure.

pub mod auth;
pub mod cache;
pub mod config;
pub mod db;
pub mod health;
pub mod http;
pub mod ids;
pub mod keys;
pub mod redis;
pub mod state;
pub mod telemetry;
pub mod text;

pub mod appointments;
pub mod patients;

pub use config::Config;
pub use state::AppState;
