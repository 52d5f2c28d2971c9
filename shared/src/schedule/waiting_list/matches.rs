//! When time frees up (an appointment cancelled, or moved away from its slot), the waiting-list
//! entries it fits, told to reception over the WebSocket (`waiting_list.match`).
//!
//! After the change committed, and best effort: the change stands whatever happens here, and a
//! failure is logged (reception still sees the list and the agenda). The freed stretch is the
//! dentist's whole free time around the slot as the agenda now has it (hours, time off, other
//! bookings), from the next minute on; an entry fits when it wants this dentist or any, its
//! window of clinic dates overlaps the stretch for at least its length, and it is that long.

use super::WaitingListEntry;
use super::repository;
use crate::auth::Role;
use crate::db::{self, DbError};
use crate::http::ApiError;
use crate::ids::{ClinicId, UserId};
use crate::realtime::{
    Audience, NewNotification, Notice, WaitingListMatch, WaitingListMatchEntry, notify,
};
use crate::schedule::availability::{answers, free_time};
use crate::schedule::calendar::{self, Span};
use crate::schedule::capacity::cached_calendar;
use crate::state::AppState;
use crate::telemetry::ErrorChain;
use chrono::{Duration, Utc};
use chrono_tz::Tz;

/// Tells reception which entries the time `freed` of `dentist` fits, once per `dedupe_key`
/// (the change that freed it).
pub async fn time_freed(
    state: &AppState,
    clinic: ClinicId,
    dentist: UserId,
    freed: Span,
    dedupe_key: String,
) {
    match matching(state, clinic, dentist, freed).await {
        Ok(None) => {}
        Ok(Some(found)) => {
            let entries = found.entries.len();
            let new = NewNotification::new(
                Audience::Role {
                    clinic,
                    role: Role::Receptionist,
                },
                "Time freed for the waiting list",
                Notice::WaitingListMatch(found),
            )
            .with_dedupe_key(dedupe_key);
            match notify(state, new).await {
                Ok(_) => tracing::info!(entries, "waiting-list matches sent to the desk"),
                Err(error) => tracing::error!(
                    error = %ErrorChain(&error),
                    "waiting-list matches could not be sent; reception still sees the list"
                ),
            }
        }
        Err(error) => tracing::error!(
            error = %ErrorChain(&error),
            "waiting-list matches could not be computed; reception still sees the list"
        ),
    }
}

/// The free stretch around `freed` and the entries it fits; `None` when nothing fits.
async fn matching(
    state: &AppState,
    clinic: ClinicId,
    dentist: UserId,
    freed: Span,
) -> Result<Option<WaitingListMatch>, ApiError> {
    let zone = cached_calendar(state, clinic).await?.zone;
    let since = answers::since(Utc::now());
    let (first, last) = (
        calendar::local_date(zone, freed.start),
        calendar::local_date(zone, freed.end),
    );
    let free = free_time(state, (clinic, zone), dentist, first, last).await?;
    let Some(stretch) = free
        .iter()
        .filter(|span| span.overlaps(&freed))
        .find_map(|span| Span::new(span.start.max(since), span.end))
    else {
        return Ok(None);
    };
    let candidates = {
        let mut tx = db::begin_tenant(&state.db, clinic).await?;
        let found = repository::candidates(
            &mut tx,
            clinic,
            dentist,
            (
                calendar::local_date(zone, stretch.start),
                calendar::local_date(zone, stretch.end),
            ),
            (stretch.end - stretch.start).num_minutes(),
        )
        .await
        .map_err(DbError::from)?;
        tx.commit().await.map_err(DbError::from)?;
        found
    };
    let entries: Vec<WaitingListMatchEntry> = candidates
        .iter()
        .filter(|entry| fits(zone, entry, &stretch))
        .map(|entry| WaitingListMatchEntry {
            entry_id: entry.id,
            patient_id: entry.patient_id,
        })
        .collect();
    if entries.is_empty() {
        return Ok(None);
    }
    Ok(Some(WaitingListMatch {
        link: format!("/waiting-list?dentist_id={dentist}"),
        dentist_id: dentist,
        starts_at: stretch.start,
        ends_at: stretch.end,
        entries,
    }))
}

/// Whether `entry`'s window holds at least its length of `stretch`.
fn fits(zone: Tz, entry: &WaitingListEntry, stretch: &Span) -> bool {
    let Some(window) = calendar::local_days(zone, entry.window_from, entry.window_until) else {
        return false;
    };
    let start = window.start.max(stretch.start);
    let end = window.end.min(stretch.end);
    end - start >= Duration::minutes(i64::from(entry.duration_minutes))
}
