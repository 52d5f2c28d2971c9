//! The agenda's capacity: when each dentist works at a clinic (weekly hours with validity
//! dates), when they or the whole clinic are away (time off, closures, public holidays), and the
//! clinic's treatment rooms (chairs). Bookings are checked against it in their own transaction
//! ([`check_booking`]); the calendar arithmetic, daylight saving included, is pure
//! ([`calendar`]).

pub mod availability;
pub mod calendar;
mod capacity;
mod chairs;
mod forget;
mod plan;
mod repository;
mod routes;
mod service;
mod time_off;
mod types;
pub mod waiting_list;

pub use capacity::{
    Booking, CalendarError, CapacityError, ClinicCalendar, check_booking, clinic_calendar,
    clinic_zone,
};
pub use chairs::*;
pub use forget::{forget_booking, forget_schedule};
pub use plan::{DayPlan, plan_day, working_minutes};
pub use routes::{router, routes};
pub use service::ScheduleService;
pub use time_off::*;
pub use types::*;
