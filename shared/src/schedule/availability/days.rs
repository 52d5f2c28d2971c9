//! The clinic days a search covers: for each, every active dentist's free time (working hours
//! less time off, closures and live appointments) and every active chair's booked time. Each day
//! is cached on its own (`cache::AVAILABILITY`, never served stale) and dropped by the writes
//! that change it (`super::super::forget`); the days a search misses are loaded together, in one
//! round trip (`repository::capacity_within`), whatever their number.

use crate::cache::AVAILABILITY;
use crate::http::ApiError;
use crate::ids::{ChairId, ClinicId, UserId};
use crate::schedule::calendar::{self, Span};
use crate::schedule::capacity::{CalendarError, CapacityError};
use crate::schedule::repository::{self, CapacityRows};
use crate::state::AppState;
use chrono::NaiveDate;
use chrono_tz::Tz;
use serde::{Deserialize, Serialize};
use sqlx::PgPool;
use std::collections::BTreeMap;

/// One clinic day as cached: each active dentist's free time, each active chair's booked time.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub(super) struct Day {
    #[serde(with = "micros")]
    pub(super) dentists: Vec<(UserId, Vec<Span>)>,
    #[serde(with = "micros")]
    pub(super) chairs: Vec<(ChairId, Vec<Span>)>,
}

/// Spans cached as Unix microseconds (PostgreSQL's precision): a large clinic's day holds
/// hundreds of them, and a search reads up to 31 days, so they are kept as integers, which
/// encode and parse several times faster than timestamps as text.
mod micros {
    use super::Span;
    use chrono::DateTime;
    use serde::de::Error;
    use serde::{Deserialize, Deserializer, Serialize, Serializer};

    pub fn serialize<S: Serializer, I: Serialize>(
        list: &[(I, Vec<Span>)],
        serializer: S,
    ) -> Result<S::Ok, S::Error> {
        let compact: Vec<(&I, Vec<[i64; 2]>)> = list
            .iter()
            .map(|(id, spans)| {
                let spans = spans
                    .iter()
                    .map(|span| [span.start.timestamp_micros(), span.end.timestamp_micros()])
                    .collect();
                (id, spans)
            })
            .collect();
        compact.serialize(serializer)
    }

    pub fn deserialize<'de, D: Deserializer<'de>, I: Deserialize<'de>>(
        deserializer: D,
    ) -> Result<Vec<(I, Vec<Span>)>, D::Error> {
        let compact: Vec<(I, Vec<[i64; 2]>)> = Vec::deserialize(deserializer)?;
        compact
            .into_iter()
            .map(|(id, spans)| {
                let spans = spans
                    .into_iter()
                    .map(|[start, end]| {
                        DateTime::from_timestamp_micros(start)
                            .zip(DateTime::from_timestamp_micros(end))
                            .and_then(|(start, end)| Span::new(start, end))
                            .ok_or_else(|| D::Error::custom("not a span"))
                    })
                    .collect::<Result<_, _>>()?;
                Ok((id, spans))
            })
            .collect()
    }
}

/// The clinic days `from..=to`, in order, read through the cache. `zone` is the clinic's, read
/// once by the search (a change of it drops every cached day).
pub(super) async fn days(
    state: &AppState,
    clinic: ClinicId,
    zone: Tz,
    from: NaiveDate,
    to: NaiveDate,
) -> Result<Vec<Day>, ApiError> {
    let dates: Vec<NaiveDate> = from.iter_days().take_while(|d| *d <= to).collect();
    let keys: Vec<_> = dates
        .iter()
        .map(|date| state.keys.availability_day(clinic, *date))
        .collect();
    let days = state
        .cache
        .get_many_or_load(AVAILABILITY, &keys, |positions| async move {
            let wanted: Vec<NaiveDate> = positions.iter().map(|at| dates[*at]).collect();
            load_days(&state.db, clinic, zone, &wanted).await
        })
        .await?;
    Ok(days)
}

/// Booked time by dentist or chair.
type Busy<K> = BTreeMap<K, Vec<Span>>;

/// The clinic days `dates` (ascending) from PostgreSQL, in their order: the range they span is
/// read once, then cut into days.
async fn load_days(
    db: &PgPool,
    clinic: ClinicId,
    zone: Tz,
    dates: &[NaiveDate],
) -> Result<Vec<Day>, CapacityError> {
    let (Some(first), Some(last)) = (dates.first(), dates.last()) else {
        return Ok(Vec::new());
    };
    let range = calendar::local_days(zone, *first, *last).ok_or(CalendarError::EmptyDays)?;
    let CapacityRows {
        rules,
        away,
        booked,
        chairs,
    } = repository::capacity_within(db, clinic, (*first, *last), &range).await?;

    let spans = dates
        .iter()
        .map(|date| calendar::local_days(zone, *date, *date).ok_or(CalendarError::EmptyDays))
        .collect::<Result<Vec<Span>, _>>()?;
    // Each appointment goes to the days it overlaps (nearly always one), by dentist and chair.
    let mut booked_on: Vec<(Busy<UserId>, Busy<ChairId>)> = vec![Default::default(); dates.len()];
    for (dentist, chair, span) in &booked {
        let first = spans.partition_point(|day| day.end <= span.start);
        let overlapped = spans[first..]
            .iter()
            .take_while(|day| day.start < span.end)
            .count();
        for (by_dentist, by_chair) in &mut booked_on[first..first + overlapped] {
            by_dentist.entry(*dentist).or_default().push(*span);
            if let Some(chair) = chair {
                by_chair.entry(*chair).or_default().push(*span);
            }
        }
    }
    let mut days = Vec::with_capacity(dates.len());
    for ((date, day), (by_dentist, mut by_chair)) in dates.iter().zip(&spans).zip(booked_on) {
        let dentists = rules
            .iter()
            .map(|(dentist, rules)| {
                let working = calendar::working_spans(zone, rules, *date, *date);
                let mut taken: Vec<Span> = away
                    .iter()
                    .filter(|(whose, span)| {
                        whose.is_none_or(|whose| whose == *dentist) && span.overlaps(day)
                    })
                    .map(|(_, span)| *span)
                    .chain(by_dentist.get(dentist).into_iter().flatten().copied())
                    .collect();
                taken.sort_unstable();
                (*dentist, calendar::subtract(&working, &taken))
            })
            .collect();
        let chairs = chairs
            .iter()
            .map(|chair| {
                let mut taken = by_chair.remove(chair).unwrap_or_default();
                taken.sort_unstable();
                (*chair, taken)
            })
            .collect();
        days.push(Day { dentists, chairs });
    }
    Ok(days)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cache::CacheValue;
    use chrono::{TimeZone, Utc};
    use uuid::Uuid;

    #[test]
    fn a_day_survives_the_cache_to_the_microsecond() {
        let at = |minute, micros| {
            Utc.with_ymd_and_hms(2026, 3, 29, 1, minute, 0).unwrap()
                + chrono::Duration::microseconds(micros)
        };
        let day = Day {
            dentists: vec![(
                UserId::from(Uuid::from_u128(7)),
                vec![
                    Span::new(at(0, 0), at(30, 17)).unwrap(),
                    Span::new(at(45, 1), at(59, 0)).unwrap(),
                ],
            )],
            chairs: vec![(ChairId::from(Uuid::from_u128(9)), Vec::new())],
        };
        let bytes = day.encode().expect("encode");
        assert_eq!(Day::decode(&bytes), Some(day));
        assert_eq!(
            Day::decode(
                br#"{"dentists":[["00000000-0000-0000-0000-000000000007",[[5,1]]]],"chairs":[]}"#
            ),
            None
        );
    }
}
