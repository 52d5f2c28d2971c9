//! Keeping the cached free time (`super::availability`) true after a write, once it committed:
//! a booking, reschedule or status change deletes the clinic days it touches ([`forget_booking`]:
//! by the clinic's cached calendar, so usually one) and the clinic's few cached answers, in one
//! command; a change of hours, time
//! off, chairs, staff or the clinic's zone bumps the clinic's schedule generation
//! ([`forget_schedule`]), dropping all its days at once. Deleting a value also cancels a fill in
//! flight (its lease), so a search that loaded before the write never stores what it read.

use super::availability::answers;
use super::calendar::{self, Span};
use super::capacity::cached_calendar;
use crate::cache::AVAILABILITY;
use crate::ids::ClinicId;
use crate::state::AppState;
use chrono::{Duration, NaiveDate};

/// Deletes the cached days a booking's slot touches and every cached answer of the clinic.
/// After the commit.
pub async fn forget_booking(state: &AppState, clinic: ClinicId, slots: &[Span]) {
    let zone = match cached_calendar(state, clinic).await {
        Ok(calendar) => Some(calendar.zone),
        Err(error) => {
            tracing::warn!(%error, "the clinic's zone is unknown; forgetting every date the booking may fall on");
            None
        }
    };
    let mut dates: Vec<NaiveDate> = slots
        .iter()
        .flat_map(|slot| {
            let (first, last) = match zone {
                // The clinic dates from the slot's first instant to its last.
                Some(zone) => (
                    calendar::local_date(zone, slot.start),
                    calendar::local_date(zone, slot.end - Duration::microseconds(1)),
                ),
                // Its UTC dates and one either side hold every clinic date it can fall on: UTC
                // offsets stay within ±14 h.
                None => (
                    slot.start.date_naive() - Duration::days(1),
                    slot.end.date_naive() + Duration::days(1),
                ),
            };
            first.iter_days().take_while(move |d| *d <= last)
        })
        .collect();
    dates.sort_unstable();
    dates.dedup();
    let keys: Vec<_> = dates
        .into_iter()
        .map(|date| state.keys.availability_day(clinic, date))
        .chain((0..answers::SLOTS).map(|slot| state.keys.availability_answer(clinic, slot)))
        .collect();
    state.cache.invalidate_all(AVAILABILITY, &keys).await;
}

/// Drops every cached day of the clinic (hours, time off, chairs, staff or its zone changed).
pub async fn forget_schedule(state: &AppState, clinic: ClinicId) {
    if let Err(error) = state.cache.invalidate_schedule(clinic).await {
        tracing::error!(%error, "the clinic's cached availability was not dropped; it may be stale until its TTL");
    }
}
