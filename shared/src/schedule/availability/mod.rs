//! Free-slot search (`GET /availability`, `GET /availability/next`): for the clinic days asked,
//! every active dentist's free time from the next whole minute on, and the starts where an
//! appointment of the length asked fits on the clinic's grid (and the chair asked is free).
//!
//! Two caches make a repeated question cheap and never wrong: each clinic day's free time
//! ([`days`], loaded in one transaction for all the days a search misses) and each question's
//! whole answer for its minute ([`answers`]). Both are dropped by the writes that change them
//! (`super::forget`).

pub(super) mod answers;
mod days;
mod rfc3339;

use super::calendar::{self, Offsets, Span};
use super::capacity::cached_calendar;
use super::types::query_range;
use crate::cache::{Prefetched, RawJson};
use crate::catalogs::{CatalogCode, CatalogError, CatalogKind, CatalogService};
use crate::http::ApiError;
use crate::ids::{ChairId, ClinicId, UserId};
use crate::input::InputError;
use crate::keys::CacheKey;
use crate::state::AppState;
use chrono::{DateTime, Duration, NaiveDate, Utc};
use chrono_tz::Tz;
use days::{Day, days};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use utoipa::{IntoParams, ToSchema};

/// The most days one search covers.
pub const MAX_DAYS: i64 = 31;
/// `GET /availability/next`'s rounds: the last day each reads, in days after today.
const NEXT_ROUNDS: [i64; 6] = [0, 6, 13, 20, 27, MAX_DAYS - 1];
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
    #[serde(serialize_with = "rfc3339::one")]
    pub starts_at: DateTime<Utc>,
    #[serde(serialize_with = "rfc3339::one")]
    pub ends_at: DateTime<Utc>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct DentistAvailability {
    pub dentist_id: UserId,
    /// Free stretches of any length in the range, from now on.
    pub free: Vec<FreeInterval>,
    /// Where an appointment of `duration_minutes` may start: on the clinic's grid of
    /// `slot_minutes`, in the future, inside one free stretch (and the chair's, if asked).
    #[serde(serialize_with = "rfc3339::many")]
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
    #[serde(serialize_with = "rfc3339::one")]
    pub starts_at: DateTime<Utc>,
    #[serde(serialize_with = "rfc3339::one")]
    pub ends_at: DateTime<Utc>,
}

/// `GET /availability/next`'s answer: the earliest starts across the dentists asked for.
#[derive(Debug, Serialize, ToSchema)]
pub struct NextSlots {
    pub timezone: String,
    pub duration_minutes: u32,
    pub slots: Vec<NextSlot>,
}

/// What a search is for, once its inputs are checked.
struct Search {
    zone: Tz,
    grid: u16,
    length: Duration,
    dentist: Option<UserId>,
    chair: Option<ChairId>,
}

/// The filters both queries share, as sent.
#[derive(Debug)]
struct Wanted<'q> {
    procedure: Option<&'q str>,
    duration: Option<u32>,
    dentist: Option<UserId>,
    chair: Option<ChairId>,
}

impl<'q> Wanted<'q> {
    fn of(
        procedure: &'q Option<String>,
        duration: Option<u32>,
        (dentist, chair): (Option<UserId>, Option<ChairId>),
    ) -> Self {
        Self {
            procedure: procedure.as_deref(),
            duration,
            dentist,
            chair,
        }
    }
}

impl AvailabilityQuery {
    fn wanted(&self) -> Wanted<'_> {
        Wanted::of(
            &self.procedure,
            self.duration,
            (self.dentist_id, self.chair_id),
        )
    }
}

impl NextQuery {
    fn wanted(&self) -> Wanted<'_> {
        Wanted::of(
            &self.procedure,
            self.duration,
            (self.dentist_id, self.chair_id),
        )
    }
}

pub struct AvailabilityService<'a> {
    state: &'a AppState,
}

impl<'a> AvailabilityService<'a> {
    pub fn new(state: &'a AppState) -> Self {
        Self { state }
    }

    /// Where `GET /availability`'s answer to `query` is cached now: the request gate reads it
    /// on the way in (`Caller::admit_reading`).
    pub fn search_key(&self, clinic: ClinicId, query: &AvailabilityQuery) -> CacheKey {
        answers::key(
            self.state,
            clinic,
            &search_question(query, answers::since(Utc::now())),
        )
    }

    /// `GET /availability`, as the JSON document sent (cached whole for the minute: `answers`).
    pub async fn search(
        &self,
        clinic: ClinicId,
        query: &AvailabilityQuery,
        prefetched: Prefetched,
    ) -> Result<RawJson, ApiError> {
        let since = answers::since(Utc::now());
        let question = search_question(query, since);
        answers::answer(self.state, (clinic, question), prefetched, || {
            self.compute_search(clinic, query, since)
        })
        .await
    }

    async fn compute_search(
        &self,
        clinic: ClinicId,
        query: &AvailabilityQuery,
        since: DateTime<Utc>,
    ) -> Result<Availability, ApiError> {
        let wanted = query.wanted();
        let (search, today) = self.prepare(clinic, &wanted, since).await?;
        let (from, to) = query_range(query.from, query.to, today, 0, MAX_DAYS)?;
        let days = days(self.state, clinic, search.zone, from, to).await?;
        let offsets = offsets_over(search.zone, since, (from, to));
        let mut dentists: Vec<DentistAvailability> = Vec::new();
        for (dentist, free) in merged_free(&days, &search, since) {
            if free.is_empty() {
                continue;
            }
            let starts = starts_in(&search, &offsets, &free, &days);
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

    /// Where `GET /availability/next`'s answer to `query` is cached now (read by the gate).
    pub fn next_key(&self, clinic: ClinicId, query: &NextQuery) -> CacheKey {
        answers::key(
            self.state,
            clinic,
            &next_question(query, answers::since(Utc::now())),
        )
    }

    /// `GET /availability/next`: the first `limit` starts from the next minute on, across the
    /// dentists asked for, within 31 days; cached like a search.
    pub async fn next(
        &self,
        clinic: ClinicId,
        query: &NextQuery,
        prefetched: Prefetched,
    ) -> Result<RawJson, ApiError> {
        let since = answers::since(Utc::now());
        let question = next_question(query, since);
        answers::answer(self.state, (clinic, question), prefetched, || {
            self.compute_next(clinic, query, since)
        })
        .await
    }

    async fn compute_next(
        &self,
        clinic: ClinicId,
        query: &NextQuery,
        since: DateTime<Utc>,
    ) -> Result<NextSlots, ApiError> {
        let wanted = query.wanted();
        let limit = match query.limit {
            None => DEFAULT_NEXT,
            Some(limit) if (1..=MAX_NEXT as u32).contains(&limit) => limit as usize,
            Some(_) => {
                return Err(InputError::malformed("limit", "limit must be from 1 to 50").into());
            }
        };
        let (search, today) = self.prepare(clinic, &wanted, since).await?;
        let offsets = offsets_over(
            search.zone,
            since,
            (today, today + Duration::days(MAX_DAYS - 1)),
        );
        let mut slots: Vec<NextSlot> = Vec::new();
        // Today first, then the week, then a week more at a time: the first free slots are
        // usually close. Each round reads from today (the days already read are cache hits),
        // so a stretch across the end of a round is seen whole.
        for last in NEXT_ROUNDS {
            let last = today + Duration::days(last);
            let days = days(self.state, clinic, search.zone, today, last).await?;
            slots = merged_free(&days, &search, since)
                .into_iter()
                .flat_map(|(dentist, free)| {
                    starts_in(&search, &offsets, &free, &days)
                        .into_iter()
                        .map(move |start| (dentist, start))
                })
                .map(|(dentist, start)| NextSlot {
                    dentist_id: dentist,
                    starts_at: start,
                    ends_at: start + search.length,
                })
                .collect();
            if slots.len() >= limit {
                break;
            }
        }
        slots.sort_by_key(|slot| (slot.starts_at, slot.dentist_id));
        slots.truncate(limit);
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
        wanted: &Wanted<'_>,
        since: DateTime<Utc>,
    ) -> Result<(Search, NaiveDate), ApiError> {
        let calendar = cached_calendar(self.state, clinic).await?;
        let minutes = match (wanted.duration, wanted.procedure) {
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
            (None, Some(code)) => {
                procedure_minutes(self.state, clinic, ("procedure", code), |field, detail| {
                    InputError::malformed(field, detail)
                })
                .await?
                .unwrap_or(calendar.default_minutes)
            }
            (None, None) => calendar.default_minutes,
        };
        let search = Search {
            zone: calendar.zone,
            grid: calendar.slot_minutes,
            length: Duration::minutes(i64::from(minutes)),
            dentist: wanted.dentist,
            chair: wanted.chair,
        };
        Ok((search, calendar::local_date(calendar.zone, since)))
    }
}

/// A search as a line of text: the query as sent and the minute it is asked in.
fn search_question(query: &AvailabilityQuery, since: DateTime<Utc>) -> String {
    let wanted = query.wanted();
    format!(
        "search from={:?} to={:?} {wanted:?} since={since:?}",
        query.from, query.to
    )
}

fn next_question(query: &NextQuery, since: DateTime<Utc>) -> String {
    let wanted = query.wanted();
    format!("next limit={:?} {wanted:?} since={since:?}", query.limit)
}

/// `dentist`'s free time on the clinic dates `from..=to`, merged across midnights, read
/// through the cached days (the waiting list's matches).
pub(super) async fn free_time(
    state: &AppState,
    (clinic, zone): (ClinicId, Tz),
    dentist: UserId,
    from: NaiveDate,
    to: NaiveDate,
) -> Result<Vec<Span>, ApiError> {
    let days = days(state, clinic, zone, from, to).await?;
    let spans = days
        .iter()
        .flat_map(|day| day.dentists.iter())
        .filter(|(id, _)| *id == dentist)
        .flat_map(|(_, free)| free.iter().copied())
        .collect();
    Ok(calendar::merge(spans))
}

/// How a bad procedure code is refused: 400 in a query, 422 in a body.
pub(super) type Refuse = fn(&'static str, String) -> InputError;

/// The length of the procedure `code` in the clinic's catalog (its override first; `None` when
/// it has none); refused as `field` when the clinic does not offer it.
pub(super) async fn procedure_minutes(
    state: &AppState,
    clinic: ClinicId,
    (field, code): (&'static str, &str),
    refuse: Refuse,
) -> Result<Option<u32>, ApiError> {
    let code = CatalogCode::parse(field, code)
        .map_err(|error| ApiError::from(refuse(field, error.detail().to_owned())))?;
    let item = match CatalogService::new(state)
        .item(clinic, CatalogKind::Procedure, &code)
        .await
    {
        Ok(item) if item.active => item,
        Ok(_) | Err(CatalogError::NotFound) => {
            return Err(refuse(
                field,
                "no such procedure in your clinic's catalog (or it is no longer offered)".into(),
            )
            .into());
        }
        Err(error) => return Err(error.into()),
    };
    Ok(item.default_minutes.and_then(|m| u32::try_from(m).ok()))
}

/// Each dentist asked for, with their free time over all the days, from `since` on (merged, so
/// a stretch across midnight is one).
fn merged_free(days: &[Day], search: &Search, since: DateTime<Utc>) -> Vec<(UserId, Vec<Span>)> {
    let mut by_dentist: BTreeMap<UserId, Vec<Span>> = BTreeMap::new();
    for day in days {
        for (dentist, free) in &day.dentists {
            if search.dentist.is_some_and(|wanted| wanted != *dentist) {
                continue;
            }
            let entry = by_dentist.entry(*dentist).or_default();
            entry.extend(
                free.iter()
                    .filter_map(|span| Span::new(span.start.max(since), span.end)),
            );
        }
    }
    by_dentist
        .into_iter()
        .map(|(dentist, spans)| (dentist, calendar::merge(spans)))
        .collect()
}

/// The zone's offsets over the clinic dates `first..=last` from `since` on, where starts are
/// offered (the dates only: a range far ahead costs no more than one close by).
fn offsets_over(zone: Tz, since: DateTime<Utc>, (first, last): (NaiveDate, NaiveDate)) -> Offsets {
    let start = calendar::local_instant(zone, first, 0).max(since);
    let end = calendar::local_instant(zone, last, calendar::MINUTES_PER_DAY);
    Offsets::over(zone, start, end.max(start))
}

/// The starts in `free` for the search's length, on the grid, with its chair free too.
fn starts_in(
    search: &Search,
    offsets: &Offsets,
    free: &[Span],
    days: &[Day],
) -> Vec<DateTime<Utc>> {
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
    calendar::bookable_starts(offsets, &free, search.length, search.grid)
}
