//! Appointments (next).
