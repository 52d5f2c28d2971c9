//! Appointments of a clinic: book, list a calendar range, read, reschedule and move through
//! the status lifecycle (scheduled → confirmed → completed / cancelled / no-show).
//!
//! A dentist is never booked twice for the same minute: the service checks first so the
//! caller gets a clear 409, and the `appointments_no_overlap` exclusion constraint settles
//! races between concurrent bookings.

mod agenda;
mod repository;
mod routes;
mod service;
mod types;

pub use agenda::{Agenda, AgendaQuery, DentistDay, Interval, agenda};
pub use routes::{router, routes};
pub use service::{AppointmentError, AppointmentService, Transitioned};
pub use types::*;
