//! One clinic day's capacity as a calendar screen draws it (`appointments`' `GET /agenda`):
//! each dentist's working hours that day and the time off overlapping it.

use super::calendar::{self, Span};
use super::capacity::{CalendarError, CapacityError};
use super::repository;
use super::time_off::TimeOff;
use crate::ids::{ClinicId, UserId};
use chrono::NaiveDate;
use chrono_tz::Tz;
use sqlx::PgConnection;
use std::collections::BTreeMap;

pub struct DayPlan {
    /// The clinic's day, midnight to midnight in its zone.
    pub day: Span,
    /// Each active dentist's working hours that day (merged; empty when they have none).
    pub hours: BTreeMap<UserId, Vec<Span>>,
    /// The clinic's closures and the dentists' time off overlapping the day (only `dentist`'s
    /// and the clinic's when one is asked for).
    pub time_off: Vec<TimeOff>,
}

/// The clinic's `date` (in its `zone`) for every active dentist, or only `dentist`.
pub async fn plan_day(
    conn: &mut PgConnection,
    (clinic, zone): (ClinicId, Tz),
    date: NaiveDate,
    dentist: Option<UserId>,
) -> Result<DayPlan, CapacityError> {
    let day = calendar::local_days(zone, date, date).ok_or(CalendarError::EmptyDays)?;
    let hours = repository::active_rules_between(conn, clinic, date, date)
        .await?
        .into_iter()
        .filter(|(id, _)| dentist.is_none_or(|wanted| wanted == *id))
        .map(|(dentist, rules)| (dentist, calendar::working_spans(zone, &rules, date, date)))
        .collect();
    let time_off = repository::time_off(conn, clinic, &day, dentist).await?;
    Ok(DayPlan {
        day,
        hours,
        time_off,
    })
}

/// Each active dentist's working minutes on each clinic date of `from..=to` (in order), less
/// their time off and the clinic's closures: what the dashboard's utilisation divides by.
pub async fn working_minutes(
    conn: &mut PgConnection,
    clinic: ClinicId,
    zone: Tz,
    from: NaiveDate,
    to: NaiveDate,
) -> Result<BTreeMap<UserId, Vec<i64>>, CapacityError> {
    let range = calendar::local_days(zone, from, to).ok_or(CalendarError::EmptyDays)?;
    let rules = repository::active_rules_between(conn, clinic, from, to).await?;
    let away = repository::time_off_within(conn, clinic, &range).await?;
    let dates: Vec<NaiveDate> = from.iter_days().take_while(|date| *date <= to).collect();
    Ok(rules
        .into_iter()
        .map(|(dentist, rules)| {
            let taken: Vec<Span> = away
                .iter()
                .filter(|(whose, _)| whose.is_none_or(|whose| whose == dentist))
                .map(|(_, span)| *span)
                .collect();
            let minutes = dates
                .iter()
                .map(|date| {
                    let working = calendar::working_spans(zone, &rules, *date, *date);
                    calendar::subtract(&working, &taken)
                        .iter()
                        .map(|span| (span.end - span.start).num_minutes())
                        .sum()
                })
                .collect();
            (dentist, minutes)
        })
        .collect())
}
