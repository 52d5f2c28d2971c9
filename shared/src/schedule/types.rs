//! The request and response shapes of the working-hours routes, the validated weekly schedule
//! they become, and the date and time values every schedule route parses. Wall-clock times are `"HH:MM"` in the clinic's time zone (`"24:00"` ends a day);
//! dates are the clinic's.

use super::calendar::{MINUTES_PER_DAY, WeeklyHours};
use crate::ids::{UserId, WorkingHoursId};
use crate::input::InputError;
use chrono::{DateTime, NaiveDate, Utc, Weekday};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

/// The most weekly intervals one dentist may have (several a day, across validity periods).
pub const MAX_INTERVALS: usize = 100;
/// The longest range a time-off listing covers.
pub const MAX_LISTING_DAYS: i64 = 366;

/// A day of the week, as the clinic's calendar names it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum DayOfWeek {
    Monday,
    Tuesday,
    Wednesday,
    Thursday,
    Friday,
    Saturday,
    Sunday,
}

impl DayOfWeek {
    /// ISO 8601: 1 is Monday, 7 Sunday (the `working_hours.weekday` column).
    pub fn iso(self) -> i16 {
        self.weekday().number_from_monday() as i16
    }

    pub fn from_iso(number: i16) -> Option<Self> {
        let days = [
            Self::Monday,
            Self::Tuesday,
            Self::Wednesday,
            Self::Thursday,
            Self::Friday,
            Self::Saturday,
            Self::Sunday,
        ];
        usize::try_from(number - 1)
            .ok()
            .and_then(|index| days.get(index))
            .copied()
    }

    pub fn weekday(self) -> Weekday {
        match self {
            Self::Monday => Weekday::Mon,
            Self::Tuesday => Weekday::Tue,
            Self::Wednesday => Weekday::Wed,
            Self::Thursday => Weekday::Thu,
            Self::Friday => Weekday::Fri,
            Self::Saturday => Weekday::Sat,
            Self::Sunday => Weekday::Sun,
        }
    }
}

/// A wall-clock time as minutes after midnight (0–1440), written `"HH:MM"`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct ClockTime(u16);

impl ClockTime {
    pub fn parse(field: &str, text: &str) -> Result<Self, InputError> {
        let invalid = || InputError::invalid(field, "must be a time of day, HH:MM (00:00–24:00)");
        let (hours, minutes) = text.split_once(':').ok_or_else(invalid)?;
        let digits = |part: &str| part.len() == 2 && part.bytes().all(|b| b.is_ascii_digit());
        if !digits(hours) || !digits(minutes) {
            return Err(invalid());
        }
        let hours: u16 = hours.parse().map_err(|_| invalid())?;
        let minutes: u16 = minutes.parse().map_err(|_| invalid())?;
        let total = hours * 60 + minutes;
        if hours > 24 || minutes > 59 || total > MINUTES_PER_DAY {
            return Err(invalid());
        }
        Ok(Self(total))
    }

    pub fn from_minutes(minutes: i16) -> Self {
        Self(minutes.clamp(0, MINUTES_PER_DAY as i16) as u16)
    }

    pub fn minutes(self) -> u16 {
        self.0
    }
}

impl std::fmt::Display for ClockTime {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:02}:{:02}", self.0 / 60, self.0 % 60)
    }
}

impl Serialize for ClockTime {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

// ------------------------------------------------------------------ working hours

/// One weekly working interval.
#[derive(Clone, Debug, PartialEq, Serialize, ToSchema)]
pub struct WorkingInterval {
    pub id: WorkingHoursId,
    pub dentist_id: UserId,
    pub weekday: DayOfWeek,
    /// Clinic time, `HH:MM`.
    #[schema(value_type = String, example = "09:00")]
    pub start: ClockTime,
    /// Clinic time, `HH:MM`; `24:00` is the day's end.
    #[schema(value_type = String, example = "14:00")]
    pub end: ClockTime,
    /// The first date it applies on.
    pub valid_from: NaiveDate,
    /// The last date it applies on; `null`: from `valid_from` on.
    pub valid_until: Option<NaiveDate>,
}

impl WorkingInterval {
    pub fn rule(&self) -> WeeklyHours {
        WeeklyHours {
            weekday: self.weekday.weekday(),
            start_minute: self.start.minutes(),
            end_minute: self.end.minutes(),
            valid_from: self.valid_from,
            valid_until: self.valid_until,
        }
    }
}

/// `GET /working-hours`: every interval, by dentist, day and start.
#[derive(Debug, Serialize, ToSchema)]
pub struct WorkingHoursList {
    pub items: Vec<WorkingInterval>,
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct WorkingHoursQuery {
    /// Only this dentist's.
    pub dentist_id: Option<UserId>,
}

/// `PUT /working-hours/{dentist_id}`: the dentist's whole weekly schedule, replacing what they
/// had. A change from a date on: end the old intervals the day before (`valid_until`) and start
/// the new ones on it (`valid_from`), in the same request.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"intervals": [
    {"weekday": "monday", "start": "09:00", "end": "14:00"},
    {"weekday": "monday", "start": "16:00", "end": "20:00"},
    {"weekday": "tuesday", "start": "09:00", "end": "14:00", "valid_from": "2027-01-01"}]}))]
pub struct PutWorkingHoursRequest {
    /// At most 100; none leaves the dentist with no bookable time.
    pub intervals: Vec<IntervalRequest>,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct IntervalRequest {
    pub weekday: DayOfWeek,
    /// Clinic time, `HH:MM` (00:00–23:59).
    #[schema(example = "09:00", pattern = r"^([01][0-9]|2[0-3]):[0-5][0-9]$")]
    pub start: String,
    /// Clinic time, `HH:MM`, after `start`; `24:00` is the day's end.
    #[schema(
        example = "14:00",
        pattern = r"^(([01][0-9]|2[0-3]):[0-5][0-9]|24:00)$"
    )]
    pub end: String,
    /// The first date it applies on; omitted: always.
    #[serde(default)]
    pub valid_from: Option<NaiveDate>,
    /// The last date it applies on; omitted: no end.
    #[serde(default)]
    pub valid_until: Option<NaiveDate>,
}

/// The earliest `valid_from` stored: "always".
pub const ALWAYS: NaiveDate = NaiveDate::from_ymd_opt(2000, 1, 1).expect("a valid date");
/// The last date a schedule may name: anything later is a typo in the year (and date
/// arithmetic near chrono's limits would overflow).
pub const LAST_DATE: NaiveDate = NaiveDate::from_ymd_opt(2100, 12, 31).expect("a valid date");

/// `date` when it lies from 2000 to 2100; 422 naming `field` otherwise.
pub fn plausible_date(field: &str, date: NaiveDate) -> Result<NaiveDate, InputError> {
    if (ALWAYS..=LAST_DATE).contains(&date) {
        Ok(date)
    } else {
        Err(InputError::invalid(
            field,
            "must be a date from 2000 to 2100",
        ))
    }
}

/// The clinic dates a listing's `from` and `to` query parameters name: `from` defaults to
/// `today`, `to` to `default_days` after `from`; at most `max_days` days in all. A bad one is a
/// bad query parameter: 400 naming it.
pub fn query_range(
    from: Option<NaiveDate>,
    to: Option<NaiveDate>,
    today: NaiveDate,
    default_days: i64,
    max_days: i64,
) -> Result<(NaiveDate, NaiveDate), InputError> {
    let in_range = |field: &str, date: NaiveDate| {
        plausible_date(field, date)
            .map_err(|error| InputError::malformed(field, error.detail().to_owned()))
    };
    let from = in_range("from", from.unwrap_or(today))?;
    let to = in_range(
        "to",
        to.unwrap_or(from + chrono::Duration::days(default_days)),
    )?;
    if to < from {
        return Err(InputError::malformed("to", "to must not be before from"));
    }
    if (to - from).num_days() >= max_days {
        return Err(InputError::malformed(
            "to",
            format!(
                "at most {max_days} days: to is at most {} days after from",
                max_days - 1
            ),
        ));
    }
    Ok((from, to))
}

/// `at` when it lies from 2000 to 2100; 422 naming `field` otherwise.
pub fn plausible_instant(field: &str, at: DateTime<Utc>) -> Result<DateTime<Utc>, InputError> {
    plausible_date(field, at.date_naive()).map(|_| at)
}

/// A validated weekly schedule: intervals well formed, none overlapping another of the same
/// weekday on a date both apply.
#[derive(Debug)]
pub struct WeeklySchedule(pub Vec<WeeklyHours>);

impl TryFrom<PutWorkingHoursRequest> for WeeklySchedule {
    type Error = InputError;

    fn try_from(request: PutWorkingHoursRequest) -> Result<Self, InputError> {
        if request.intervals.len() > MAX_INTERVALS {
            return Err(InputError::invalid(
                "intervals",
                format!("at most {MAX_INTERVALS} intervals"),
            ));
        }
        let mut rules = Vec::with_capacity(request.intervals.len());
        for (index, interval) in request.intervals.iter().enumerate() {
            let field = |name: &str| format!("intervals[{index}].{name}");
            let start = ClockTime::parse(&field("start"), &interval.start)?;
            let end = ClockTime::parse(&field("end"), &interval.end)?;
            if start.minutes() >= MINUTES_PER_DAY {
                return Err(InputError::invalid(field("start"), "must be before 24:00"));
            }
            if end <= start {
                return Err(InputError::invalid(field("end"), "must be after start"));
            }
            let valid_from =
                plausible_date(&field("valid_from"), interval.valid_from.unwrap_or(ALWAYS))?;
            if let Some(until) = interval.valid_until {
                plausible_date(&field("valid_until"), until)?;
            }
            if interval.valid_until.is_some_and(|until| until < valid_from) {
                return Err(InputError::invalid(
                    field("valid_until"),
                    "must not be before valid_from",
                ));
            }
            let rule = WeeklyHours {
                weekday: interval.weekday.weekday(),
                start_minute: start.minutes(),
                end_minute: end.minutes(),
                valid_from,
                valid_until: interval.valid_until,
            };
            if let Some(other) = rules.iter().position(|earlier| overlap(earlier, &rule)) {
                return Err(InputError::invalid(
                    field("start"),
                    format!("overlaps intervals[{other}] on the dates both apply"),
                ));
            }
            rules.push(rule);
        }
        Ok(Self(rules))
    }
}

/// Whether two intervals share a minute on a date both apply (what the table's exclusion
/// constraint refuses).
fn overlap(a: &WeeklyHours, b: &WeeklyHours) -> bool {
    let dates = a.valid_from <= b.valid_until.unwrap_or(NaiveDate::MAX)
        && b.valid_from <= a.valid_until.unwrap_or(NaiveDate::MAX);
    a.weekday == b.weekday
        && dates
        && a.start_minute < b.end_minute
        && b.start_minute < a.end_minute
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clock_times_are_hh_mm_up_to_the_days_end() {
        for (text, minutes) in [
            ("00:00", 0),
            ("09:30", 570),
            ("23:59", 1439),
            ("24:00", 1440),
        ] {
            assert_eq!(ClockTime::parse("t", text).unwrap().minutes(), minutes);
            assert_eq!(ClockTime::parse("t", text).unwrap().to_string(), text);
        }
        for bad in [
            "9:30", "24:01", "25:00", "12:60", "12-30", "", "ab:cd", "+1:00", "12:3",
        ] {
            assert!(ClockTime::parse("t", bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn a_schedule_refuses_overlaps_on_shared_dates_only() {
        let interval = |day, start: &str, end: &str, from: Option<&str>, until: Option<&str>| {
            IntervalRequest {
                weekday: day,
                start: start.into(),
                end: end.into(),
                valid_from: from.map(|d| d.parse().unwrap()),
                valid_until: until.map(|d| d.parse().unwrap()),
            }
        };
        let schedule = |intervals| WeeklySchedule::try_from(PutWorkingHoursRequest { intervals });
        use DayOfWeek::*;
        assert!(
            schedule(vec![
                interval(Monday, "09:00", "14:00", None, None),
                interval(Monday, "14:00", "20:00", None, None),
                interval(Tuesday, "09:00", "14:00", None, None),
            ])
            .is_ok()
        );
        let error = schedule(vec![
            interval(Monday, "09:00", "14:00", None, None),
            interval(Monday, "13:00", "20:00", None, None),
        ])
        .unwrap_err();
        assert_eq!(error.field(), Some("intervals[1].start"));
        // The same hours in two periods that do not share a date.
        assert!(
            schedule(vec![
                interval(Monday, "09:00", "14:00", None, Some("2026-12-31")),
                interval(Monday, "10:00", "15:00", Some("2027-01-01"), None),
            ])
            .is_ok()
        );
        let error = schedule(vec![interval(Monday, "14:00", "09:00", None, None)]).unwrap_err();
        assert_eq!(error.field(), Some("intervals[0].end"));
        let error = schedule(vec![interval(Monday, "24:00", "24:00", None, None)]).unwrap_err();
        assert_eq!(error.field(), Some("intervals[0].start"));
    }
}
