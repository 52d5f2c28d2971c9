//! Free-slot search: for each clinic day, every active dentist's free time (working hours
//! without time off, closures and live appointments) and every active chair's booked time,
//! computed from PostgreSQL and cached per clinic and day (`cache::AVAILABILITY`, never served
//! stale), and dropped by the writes that change it (`super::forget`). The slot starts offered are derived on each
//! request from the cached free time, for the length and chair asked.

use super::calendar::{self, Span, WeeklyHours};
use super::capacity::{CapacityError, clinic_calendar};
use super::repository;
use super::types::query_range;
use crate::cache::AVAILABILITY;
use crate::catalogs::{CatalogCode, CatalogError, CatalogKind, CatalogService};
use crate::db::{self, DbError};
use crate::http::ApiError;
use crate::ids::{ChairId, ClinicId, UserId};
use crate::input::InputError;
use crate::state::AppState;
use chrono::{DateTime, Duration, NaiveDate, Utc};
use chrono_tz::Tz;
use futures_util::{StreamExt, TryStreamExt};
use serde::{Deserialize, Serialize};
use sqlx::PgConnection;
use std::collections::BTreeMap;
use utoipa::{IntoParams, ToSchema};

/// The most days one search covers.
pub const MAX_DAYS: i64 = 31;
/// Days read from the cache (or loaded) at once.
const CONCURRENCY: usize = 4;
/// The most starts `GET /availability/next` answers.
pub const MAX_NEXT: usize = 50;
const DEFAULT_NEXT: usize = 5;

/// `GET /availability`.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct AvailabilityQuery {
    /// The first clinic date (default: today).
    pub from: Option<NaiveDate>,
    /// The last clinic date (default: `from`; at most 30 days after it).
    pub to: Option<NaiveDate>,
    /// Only this dentist (default: every active dentist).
    pub dentist_id: Option<UserId>,
    /// A procedure of the clinic's catalog: its length is the appointment's (the clinic's
    /// override first).
    pub procedure: Option<String>,
    /// The appointment's length in minutes (5–720), instead of the procedure's; neither: the
    /// clinic's default length.
    #[param(minimum = 5, maximum = 720)]
    pub duration: Option<u32>,
    /// Only starts when this chair is free for the whole appointment too.
    pub chair_id: Option<ChairId>,
}

/// `GET /availability/next`.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct NextQuery {
    pub dentist_id: Option<UserId>,
    pub procedure: Option<String>,
    #[param(minimum = 5, maximum = 720)]
    pub duration: Option<u32>,
    pub chair_id: Option<ChairId>,
    /// How many starts (1–50, default 5).
    #[param(minimum = 1, maximum = 50)]
    pub limit: Option<u32>,
}

/// A free stretch.
#[derive(Clone, Debug, PartialEq, Serialize, ToSchema)]
pub struct FreeInterval {
    pub starts_at: DateTime<Utc>,
    pub ends_at: DateTime<Utc>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct DentistAvailability {
    pub dentist_id: UserId,
    /// Free stretches of any length in the range, from now on.
    pub free: Vec<FreeInterval>,
    /// Where an appointment of `duration_minutes` may start: on the clinic's grid of
    /// `slot_minutes`, in the future, inside one free stretch (and the chair's, if asked).
    pub starts: Vec<DateTime<Utc>>,
}

/// `GET /availability`'s answer.
#[derive(Debug, Serialize, ToSchema)]
pub struct Availability {
    pub from: NaiveDate,
    pub to: NaiveDate,
    pub timezone: String,
    pub slot_minutes: u16,
    pub duration_minutes: u32,
    /// By dentist id; only dentists with free time in the range.
    pub dentists: Vec<DentistAvailability>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct NextSlot {
    pub dentist_id: UserId,
    pub starts_at: DateTime<Utc>,
    pub ends_at: DateTime<Utc>,
}

/// `GET /availability/next`'s answer: the earliest starts across the dentists asked for.
#[derive(Debug, Serialize, ToSchema)]
pub struct NextSlots {
    pub timezone: String,
    pub duration_minutes: u32,
    pub slots: Vec<NextSlot>,
}

/// One clinic day as cached: each active dentist's free time, each active chair's booked time.
#[derive(Clone, Debug, Serialize, Deserialize)]
struct Day {
    dentists: Vec<(UserId, Vec<Span>)>,
    chairs: Vec<(ChairId, Vec<Span>)>,
}

/// What a search is for, once its inputs are checked.
struct Search {
    zone: Tz,
    grid: u16,
    length: Duration,
    dentist: Option<UserId>,
    chair: Option<ChairId>,
}

pub struct AvailabilityService<'a> {
    state: &'a AppState,
}

impl<'a> AvailabilityService<'a> {
    pub fn new(state: &'a AppState) -> Self {
        Self { state }
    }

    pub async fn search(
        &self,
        clinic: ClinicId,
        query: &AvailabilityQuery,
    ) -> Result<Availability, ApiError> {
        let (search, today) = self
            .prepare(
                clinic,
                query.procedure.as_deref(),
                query.duration,
                query.dentist_id,
                query.chair_id,
            )
            .await?;
        let (from, to) = query_range(query.from, query.to, today, 0, MAX_DAYS)?;
        let days = self.days(clinic, search.zone, from, to).await?;
        let now = Utc::now();
        let mut dentists: Vec<DentistAvailability> = Vec::new();
        for (dentist, free) in merged_free(&days, &search, now) {
            if free.is_empty() {
                continue;
            }
            let starts = starts_in(&search, &free, &days);
            dentists.push(DentistAvailability {
                dentist_id: dentist,
                free: free
                    .iter()
                    .map(|span| FreeInterval {
                        starts_at: span.start,
                        ends_at: span.end,
                    })
                    .collect(),
                starts,
            });
        }
        Ok(Availability {
            from,
            to,
            timezone: search.zone.name().to_owned(),
            slot_minutes: search.grid,
            duration_minutes: search.length.num_minutes() as u32,
            dentists,
        })
    }

    /// The first `limit` starts from now, across the dentists asked for, within 31 days.
    pub async fn next(&self, clinic: ClinicId, query: &NextQuery) -> Result<NextSlots, ApiError> {
        let limit = match query.limit {
            None => DEFAULT_NEXT,
            Some(limit) if (1..=MAX_NEXT as u32).contains(&limit) => limit as usize,
            Some(_) => {
                return Err(InputError::malformed("limit", "limit must be from 1 to 50").into());
            }
        };
        let (search, today) = self
            .prepare(
                clinic,
                query.procedure.as_deref(),
                query.duration,
                query.dentist_id,
                query.chair_id,
            )
            .await?;
        let now = Utc::now();
        let mut slots: Vec<NextSlot> = Vec::new();
        // A week at a time: the first free slot is usually in the first one.
        let mut first = today;
        while slots.len() < limit && (first - today).num_days() < MAX_DAYS {
            let last = (first + Duration::days(6)).min(today + Duration::days(MAX_DAYS - 1));
            let days = self.days(clinic, search.zone, first, last).await?;
            let mut found: Vec<NextSlot> = merged_free(&days, &search, now)
                .into_iter()
                .flat_map(|(dentist, free)| {
                    starts_in(&search, &free, &days)
                        .into_iter()
                        .map(move |start| (dentist, start))
                })
                .map(|(dentist, start)| NextSlot {
                    dentist_id: dentist,
                    starts_at: start,
                    ends_at: start + search.length,
                })
                .collect();
            found.sort_by_key(|slot| (slot.starts_at, slot.dentist_id));
            slots.extend(found.into_iter().take(limit - slots.len()));
            first = last + Duration::days(1);
        }
        Ok(NextSlots {
            timezone: search.zone.name().to_owned(),
            duration_minutes: search.length.num_minutes() as u32,
            slots,
        })
    }

    /// The clinic's calendar, the appointment's length and the filters, checked.
    async fn prepare(
        &self,
        clinic: ClinicId,
        procedure: Option<&str>,
        duration: Option<u32>,
        dentist: Option<UserId>,
        chair: Option<ChairId>,
    ) -> Result<(Search, NaiveDate), ApiError> {
        let mut tx = db::begin_tenant(&self.state.db, clinic).await?;
        let calendar = clinic_calendar(&mut tx, clinic).await?;
        tx.commit().await.map_err(DbError::from)?;
        let minutes = match (duration, procedure) {
            (Some(minutes), _) => {
                if !(5..=720).contains(&minutes) {
                    return Err(InputError::malformed(
                        "duration",
                        "duration must be 5 to 720 minutes",
                    )
                    .into());
                }
                minutes
            }
            (None, Some(code)) => self
                .procedure_minutes(clinic, code)
                .await?
                .unwrap_or(calendar.default_minutes),
            (None, None) => calendar.default_minutes,
        };
        let search = Search {
            zone: calendar.zone,
            grid: calendar.slot_minutes,
            length: Duration::minutes(i64::from(minutes)),
            dentist,
            chair,
        };
        Ok((search, calendar::local_date(calendar.zone, Utc::now())))
    }

    /// The procedure's length in the clinic's catalog (its override first); 422 when the clinic
    /// does not offer it.
    async fn procedure_minutes(
        &self,
        clinic: ClinicId,
        code: &str,
    ) -> Result<Option<u32>, ApiError> {
        let code = CatalogCode::parse("procedure", code).map_err(|error| {
            ApiError::from(InputError::malformed(
                "procedure",
                error.detail().to_owned(),
            ))
        })?;
        let not_offered = || {
            ApiError::from(InputError::malformed(
                "procedure",
                "no such procedure in your clinic's catalog (or it is no longer offered)",
            ))
        };
        let item = match CatalogService::new(self.state)
            .item(clinic, CatalogKind::Procedure, &code)
            .await
        {
            Ok(item) if item.active => item,
            Ok(_) | Err(CatalogError::NotFound) => return Err(not_offered()),
            Err(error) => return Err(error.into()),
        };
        Ok(item.default_minutes.and_then(|m| u32::try_from(m).ok()))
    }

    /// The clinic days `from..=to`, each read through the cache.
    async fn days(
        &self,
        clinic: ClinicId,
        zone: Tz,
        from: NaiveDate,
        to: NaiveDate,
    ) -> Result<Vec<Day>, ApiError> {
        let dates: Vec<NaiveDate> = from.iter_days().take_while(|d| *d <= to).collect();
        futures_util::stream::iter(dates)
            .map(|date| self.day(clinic, zone, date))
            .buffered(CONCURRENCY)
            .try_collect()
            .await
    }

    async fn day(&self, clinic: ClinicId, zone: Tz, date: NaiveDate) -> Result<Day, ApiError> {
        let key = self.state.keys.availability_day(clinic, date);
        let day = self
            .state
            .cache
            .get_or_load(AVAILABILITY, &key, || async {
                let mut tx = db::begin_tenant(&self.state.db, clinic).await?;
                let day = load_day(&mut tx, clinic, zone, date).await?;
                tx.commit().await.map_err(DbError::from)?;
                Ok::<_, CapacityError>(Some(day))
            })
            .await?;
        day.ok_or_else(|| ApiError::internal(std::io::Error::other("a loaded day came back empty")))
    }
}

/// Each dentist asked for, with their free time over all the days, from `now` on (merged, so a
/// stretch across midnight is one).
fn merged_free(days: &[Day], search: &Search, now: DateTime<Utc>) -> Vec<(UserId, Vec<Span>)> {
    let mut by_dentist: BTreeMap<UserId, Vec<Span>> = BTreeMap::new();
    for day in days {
        for (dentist, free) in &day.dentists {
            if search.dentist.is_some_and(|wanted| wanted != *dentist) {
                continue;
            }
            let entry = by_dentist.entry(*dentist).or_default();
            entry.extend(
                free.iter()
                    .filter_map(|span| Span::new(span.start.max(now), span.end)),
            );
        }
    }
    by_dentist
        .into_iter()
        .map(|(dentist, spans)| (dentist, calendar::merge(spans)))
        .collect()
}

/// The starts in `free` for the search's length, on the grid, with its chair free too.
fn starts_in(search: &Search, free: &[Span], days: &[Day]) -> Vec<DateTime<Utc>> {
    let free = match search.chair {
        None => free.to_vec(),
        Some(chair) => {
            let busy: Vec<Span> = days
                .iter()
                .flat_map(|day| day.chairs.iter())
                .filter(|(id, _)| *id == chair)
                .flat_map(|(_, busy)| busy.iter().copied())
                .collect();
            // A chair that is not active (or not the clinic's) is in no day: nothing is free.
            if !days
                .iter()
                .any(|day| day.chairs.iter().any(|(id, _)| *id == chair))
            {
                return Vec::new();
            }
            calendar::subtract(free, &busy)
        }
    };
    calendar::bookable_starts(search.zone, &free, search.length, search.grid)
}

/// One clinic day from PostgreSQL: its active dentists' hours that date, less the time off,
/// closures and live appointments overlapping it; its active chairs' booked time. `zone` is the
/// clinic's, read once by the search (a change of it drops every cached day).
async fn load_day(
    conn: &mut PgConnection,
    clinic: ClinicId,
    zone: Tz,
    date: NaiveDate,
) -> Result<Day, CapacityError> {
    let span = Span::new(
        calendar::local_instant(zone, date, 0),
        calendar::local_instant(zone, date, calendar::MINUTES_PER_DAY),
    )
    .ok_or_else(|| {
        CapacityError::Db(DbError::from(sqlx::Error::Protocol("an empty day".into())))
    })?;
    let hours = repository::active_hours_on(conn, clinic, date).await?;
    let away = repository::time_off_within(conn, clinic, &span).await?;
    let booked = repository::live_bookings_within(conn, clinic, &span).await?;
    let chairs = repository::active_chairs(conn, clinic).await?;

    let mut rules: BTreeMap<UserId, Vec<WeeklyHours>> = BTreeMap::new();
    for interval in &hours {
        rules
            .entry(interval.dentist_id)
            .or_default()
            .push(interval.rule());
    }
    let dentists = rules
        .into_iter()
        .map(|(dentist, rules)| {
            let working = calendar::working_spans(zone, &rules, date, date);
            let busy: Vec<Span> = away
                .iter()
                .filter(|(whose, _)| whose.is_none() || *whose == Some(dentist))
                .map(|(_, span)| *span)
                .chain(
                    booked
                        .iter()
                        .filter(|(whose, _, _)| *whose == dentist)
                        .map(|(_, _, span)| *span),
                )
                .collect();
            (dentist, calendar::subtract(&working, &busy))
        })
        .collect();
    let chairs = chairs
        .into_iter()
        .map(|chair| {
            let busy = booked
                .iter()
                .filter(|(_, taken, _)| *taken == Some(chair))
                .map(|(_, _, span)| *span)
                .collect();
            (chair, busy)
        })
        .collect();
    Ok(Day { dentists, chairs })
}
