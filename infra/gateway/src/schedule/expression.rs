//! EventBridge schedule expressions: `rate(N minute|minutes|hour|hours|day|days)` and
//! `cron(minutes hours day-of-month month day-of-week year)` in UTC, with the rules EventBridge
//! enforces at deploy time, so a mistake fails locally first.

use std::fmt;
use std::time::Duration;

use chrono::{
    DateTime, Datelike, Duration as ChronoDuration, NaiveDate, NaiveDateTime, Timelike, Utc,
};

/// When a schedule fires.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Timing {
    Rate(Duration),
    Cron(Cron),
    /// Valid on AWS but not ticked locally (reason given); the manual trigger still works.
    ManualOnly(String),
}

impl Timing {
    /// Parses an expression; `timezone` is ScheduleV2's `ScheduleExpressionTimezone`.
    pub fn parse(expression: &str, timezone: Option<&str>) -> Result<Self, String> {
        let expression = expression.trim();
        if let Some(inner) = strip_call(expression, "rate") {
            return parse_rate(inner).map(Timing::Rate);
        }
        if let Some(inner) = strip_call(expression, "cron") {
            let cron = match Cron::parse(inner) {
                Ok(cron) => cron,
                Err(CronError::Unsupported(why)) => return Ok(Timing::ManualOnly(why)),
                Err(CronError::Invalid(why)) => return Err(format!("`{expression}`: {why}")),
            };
            return Ok(match timezone.map(str::trim) {
                None | Some("") | Some("UTC") | Some("Etc/UTC") => Timing::Cron(cron),
                Some(zone) => Timing::ManualOnly(format!(
                    "cron in time zone {zone}: the local gateway ticks cron in UTC only"
                )),
            });
        }
        if strip_call(expression, "at").is_some() {
            return Ok(Timing::ManualOnly(
                "one-time at(...) schedules are not ticked locally".to_owned(),
            ));
        }
        Err(format!(
            "`{expression}` is not a schedule expression: expected rate(...) or cron(...)"
        ))
    }
}

fn strip_call<'a>(expression: &'a str, name: &str) -> Option<&'a str> {
    expression
        .strip_prefix(name)?
        .trim_start()
        .strip_prefix('(')?
        .strip_suffix(')')
}

/// `5 minutes` → 300 s. Like EventBridge, the unit is singular for 1 and plural above.
fn parse_rate(inner: &str) -> Result<Duration, String> {
    let problem = |why: &str| format!("`rate({inner})`: {why}");
    let mut words = inner.split_whitespace();
    let (Some(value), Some(unit), None) = (words.next(), words.next(), words.next()) else {
        return Err(problem(
            "expected rate(<value> <unit>), e.g. rate(5 minutes)",
        ));
    };
    let value: u64 = value
        .parse()
        .ok()
        .filter(|value| *value > 0)
        .ok_or_else(|| problem("the value must be a whole number above 0"))?;
    let (seconds, singular) = match unit {
        "minute" => (60, true),
        "minutes" => (60, false),
        "hour" => (3600, true),
        "hours" => (3600, false),
        "day" => (86_400, true),
        "days" => (86_400, false),
        _ => return Err(problem("the unit must be minute(s), hour(s) or day(s)")),
    };
    if singular != (value == 1) {
        return Err(problem(
            "EventBridge wants the singular unit for 1 (rate(1 minute)) and the plural above (rate(5 minutes))",
        ));
    }
    value
        .checked_mul(seconds)
        .map(Duration::from_secs)
        .ok_or_else(|| problem("too long"))
}

#[derive(Debug)]
enum CronError {
    Invalid(String),
    Unsupported(String),
}

/// The set of values one cron field allows.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Field {
    min: u32,
    allowed: Vec<bool>,
}

impl Field {
    fn contains(&self, value: u32) -> bool {
        value
            .checked_sub(self.min)
            .and_then(|index| self.allowed.get(index as usize))
            .copied()
            .unwrap_or(false)
    }
}

/// A six-field EventBridge cron expression (UTC).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cron {
    text: String,
    minutes: Field,
    hours: Field,
    /// `None` is `?`: the other day field decides.
    days_of_month: Option<Field>,
    months: Field,
    /// 1 = Sunday … 7 = Saturday.
    days_of_week: Option<Field>,
    years: Field,
}

const MONTHS: [&str; 12] = [
    "JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC",
];
const WEEKDAYS: [&str; 7] = ["SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT"];

impl Cron {
    fn parse(inner: &str) -> Result<Self, CronError> {
        let fields: Vec<&str> = inner.split_whitespace().collect();
        let [minutes, hours, dom, months, dow, years] = fields.as_slice() else {
            return Err(CronError::Invalid(format!(
                "cron needs 6 fields (minutes hours day-of-month month day-of-week year), found {}",
                fields.len()
            )));
        };
        let days_of_month = optional_field("day-of-month", dom, 1, 31, &[])?;
        let days_of_week = optional_field("day-of-week", dow, 1, 7, &WEEKDAYS)?;
        if days_of_month.is_some() == days_of_week.is_some() {
            return Err(CronError::Invalid(
                "exactly one of day-of-month and day-of-week must be `?`".to_owned(),
            ));
        }
        Ok(Self {
            text: inner.split_whitespace().collect::<Vec<_>>().join(" "),
            minutes: field("minutes", minutes, 0, 59, &[])?,
            hours: field("hours", hours, 0, 23, &[])?,
            days_of_month,
            months: field("month", months, 1, 12, &MONTHS)?,
            days_of_week,
            years: field("year", years, 1970, 2199, &[])?,
        })
    }

    /// The first minute strictly after `after` that the expression matches, within its years.
    pub fn next_after(&self, after: DateTime<Utc>) -> Option<DateTime<Utc>> {
        let start =
            after.naive_utc().with_second(0)?.with_nanosecond(0)? + ChronoDuration::minutes(1);
        let mut at = start;
        // Each step skips a whole year, month, day, hour or minute that cannot match, so this
        // bound is never reached before the year 2199 ends the search.
        for _ in 0..100_000 {
            let year = u32::try_from(at.year()).ok()?;
            if year > 2199 {
                return None;
            }
            at = if !self.years.contains(year) {
                midnight(NaiveDate::from_ymd_opt(at.year() + 1, 1, 1)?)
            } else if !self.months.contains(at.month()) {
                let (year, month) = if at.month() == 12 {
                    (at.year() + 1, 1)
                } else {
                    (at.year(), at.month() + 1)
                };
                midnight(NaiveDate::from_ymd_opt(year, month, 1)?)
            } else if !self.day_matches(at.date()) {
                midnight(at.date().succ_opt()?)
            } else if !self.hours.contains(at.hour()) {
                at.with_minute(0)? + ChronoDuration::hours(1)
            } else if !self.minutes.contains(at.minute()) {
                at + ChronoDuration::minutes(1)
            } else {
                return Some(at.and_utc());
            };
        }
        None
    }

    fn day_matches(&self, date: NaiveDate) -> bool {
        match (&self.days_of_month, &self.days_of_week) {
            (Some(days), _) => days.contains(date.day()),
            (None, Some(weekdays)) => weekdays.contains(date.weekday().num_days_from_sunday() + 1),
            (None, None) => false,
        }
    }
}

impl fmt::Display for Cron {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "cron({})", self.text)
    }
}

fn midnight(date: NaiveDate) -> NaiveDateTime {
    date.and_time(chrono::NaiveTime::MIN)
}

fn optional_field(
    name: &str,
    text: &str,
    min: u32,
    max: u32,
    names: &[&str],
) -> Result<Option<Field>, CronError> {
    if text == "?" {
        return Ok(None);
    }
    field(name, text, min, max, names).map(Some)
}

/// Parses `*`, `5`, `1-5`, `*/15`, `10/5`, `MON-FRI`, lists of those.
fn field(name: &str, text: &str, min: u32, max: u32, names: &[&str]) -> Result<Field, CronError> {
    let invalid = |why: String| CronError::Invalid(format!("{name} `{text}`: {why}"));
    let mut allowed = vec![false; (max - min + 1) as usize];
    for item in text.split(',') {
        let (range, step) = match item.split_once('/') {
            Some((range, step)) => {
                let step: u32 = step
                    .parse()
                    .ok()
                    .filter(|step| *step > 0)
                    .ok_or_else(|| invalid(format!("bad step in `{item}`")))?;
                (range, step)
            }
            None => (item, 1),
        };
        let (first, last) = if range == "*" {
            (min, max)
        } else if let Some((from, to)) = range.split_once('-') {
            (
                value(name, from, min, max, names)?,
                value(name, to, min, max, names)?,
            )
        } else {
            let single = value(name, range, min, max, names)?;
            // `10/5` runs from 10 to the end; a bare value is just itself.
            (single, if item.contains('/') { max } else { single })
        };
        if first > last {
            return Err(invalid(format!("the range `{range}` goes backwards")));
        }
        let mut current = first;
        while current <= last {
            allowed[(current - min) as usize] = true;
            current += step;
        }
    }
    Ok(Field { min, allowed })
}

fn value(name: &str, token: &str, min: u32, max: u32, names: &[&str]) -> Result<u32, CronError> {
    let upper = token.to_ascii_uppercase();
    if let Some(index) = names.iter().position(|known| *known == upper) {
        return Ok(min + index as u32);
    }
    match token.parse::<u32>() {
        Ok(number) if (min..=max).contains(&number) => Ok(number),
        Ok(_) => Err(CronError::Invalid(format!(
            "{name} value {token} is outside {min}-{max}"
        ))),
        Err(_) if upper.contains(['L', 'W', '#']) => Err(CronError::Unsupported(format!(
            "cron {name} `{token}`: L, W and # are not ticked locally"
        ))),
        Err(_) => Err(CronError::Invalid(format!(
            "{name} `{token}` is not a value"
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(text: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(text)
            .expect("test time")
            .with_timezone(&Utc)
    }

    fn cron(text: &str) -> Cron {
        match Timing::parse(text, None) {
            Ok(Timing::Cron(cron)) => cron,
            other => panic!("{text}: {other:?}"),
        }
    }

    #[test]
    fn rates() {
        let rate = |text: &str| Timing::parse(text, None);
        assert_eq!(
            rate("rate(1 minute)"),
            Ok(Timing::Rate(Duration::from_secs(60)))
        );
        assert_eq!(
            rate("rate(5 minutes)"),
            Ok(Timing::Rate(Duration::from_secs(300)))
        );
        assert_eq!(
            rate(" rate(2 hours) "),
            Ok(Timing::Rate(Duration::from_secs(7200)))
        );
        assert_eq!(
            rate("rate(1 day)"),
            Ok(Timing::Rate(Duration::from_secs(86_400)))
        );
        assert_eq!(
            rate("rate(3 days)"),
            Ok(Timing::Rate(Duration::from_secs(259_200)))
        );
        for bad in [
            "rate(1 minutes)",
            "rate(2 minute)",
            "rate(0 minutes)",
            "rate(-1 minutes)",
            "rate(1 second)",
            "rate(minute)",
            "rate(1 minute",
            "every minute",
        ] {
            assert!(rate(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn cron_next_fire_times() {
        let nightly = cron("cron(0 3 * * ? *)");
        assert_eq!(
            nightly.next_after(at("2026-11-23T14:28:31Z")),
            Some(at("2026-11-24T03:00:00Z"))
        );
        assert_eq!(
            nightly.next_after(at("2026-11-24T02:59:00Z")),
            Some(at("2026-11-24T03:00:00Z"))
        );
        assert_eq!(
            nightly.next_after(at("2026-11-24T03:00:00Z")),
            Some(at("2026-11-25T03:00:00Z"))
        );

        let quarter = cron("cron(*/15 * * * ? *)");
        assert_eq!(
            quarter.next_after(at("2026-11-23T14:28:31Z")),
            Some(at("2026-11-23T14:30:00Z"))
        );
        assert_eq!(
            quarter.next_after(at("2026-11-23T23:59:00Z")),
            Some(at("2026-11-24T00:00:00Z"))
        );

        // Weekdays at 08:30: 2026-11-28 is a Saturday.
        let weekdays = cron("cron(30 8 ? * MON-FRI *)");
        assert_eq!(
            weekdays.next_after(at("2026-11-27T09:00:00Z")),
            Some(at("2026-11-30T08:30:00Z"))
        );
        let numeric = cron("cron(30 8 ? * 2-6 *)");
        assert_eq!(
            numeric.next_after(at("2026-11-27T09:00:00Z")),
            Some(at("2026-11-30T08:30:00Z"))
        );

        // The 31st skips short months; a list of months; a bounded year.
        let last = cron("cron(0 12 31 * ? *)");
        assert_eq!(
            last.next_after(at("2026-11-01T00:00:00Z")),
            Some(at("2026-12-31T12:00:00Z"))
        );
        let listed = cron("cron(0 0 1 JAN,jul ? 2027)");
        assert_eq!(
            listed.next_after(at("2026-11-01T00:00:00Z")),
            Some(at("2027-01-01T00:00:00Z"))
        );
        assert_eq!(
            listed.next_after(at("2027-01-01T00:00:00Z")),
            Some(at("2027-07-01T00:00:00Z"))
        );
        assert_eq!(listed.next_after(at("2027-07-01T00:00:00Z")), None);
        // 29 February only in leap years.
        let leap = cron("cron(0 0 29 2 ? *)");
        assert_eq!(
            leap.next_after(at("2026-03-01T00:00:00Z")),
            Some(at("2028-02-29T00:00:00Z"))
        );
        assert_eq!(nightly.to_string(), "cron(0 3 * * ? *)");
    }

    #[test]
    fn cron_errors_and_unsupported_parts() {
        for bad in [
            "cron(0 3 * * * *)",
            "cron(0 3 ? * ? *)",
            "cron(0 3 * *)",
            "cron(60 3 * * ? *)",
            "cron(0 24 * * ? *)",
            "cron(0 3 0 * ? *)",
            "cron(0 3 * 13 ? *)",
            "cron(0 3 ? * 8 *)",
            "cron(5-1 3 * * ? *)",
            "cron(*/0 3 * * ? *)",
            "cron(0 3 * FOO ? *)",
        ] {
            assert!(Timing::parse(bad, None).is_err(), "{bad}");
        }
        for unsupported in [
            "cron(0 3 L * ? *)",
            "cron(0 3 ? * 6L *)",
            "cron(0 3 ? * 2#1 *)",
            "cron(0 3 15W * ? *)",
        ] {
            assert!(
                matches!(Timing::parse(unsupported, None), Ok(Timing::ManualOnly(_))),
                "{unsupported}"
            );
        }
        assert!(matches!(
            Timing::parse("cron(0 3 * * ? *)", Some("Europe/Madrid")),
            Ok(Timing::ManualOnly(_))
        ));
        assert!(matches!(
            Timing::parse("cron(0 3 * * ? *)", Some("UTC")),
            Ok(Timing::Cron(_))
        ));
        assert!(matches!(
            Timing::parse("at(2026-12-01T10:00:00)", None),
            Ok(Timing::ManualOnly(_))
        ));
    }
}
