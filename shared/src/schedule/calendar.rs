//! The agenda's calendar arithmetic, pure: a dentist's weekly hours in the clinic's time zone
//! become instants (daylight saving included), time away and bookings are taken out, and what
//! is left is offered on the clinic's wall-clock grid of slot starts. No I/O: the booking checks
//! and the free-slot search call it with the rows they read, and property tests drive it over
//! random schedules in zones with every kind of daylight-saving change.
//!
//! Wall-clock rules: a working interval is the stretch between two wall-clock times of one
//! date. A time that a spring-forward change skips (02:30 in Madrid on the last Sunday of
//! March) is taken as the first instant after the gap, so 02:00–04:00 that night is one hour of
//! work; a time shown twice in autumn is taken at its first showing, so 02:00–04:00 that night
//! is three hours. Slot starts are the instants whose wall-clock time is a whole multiple of the
//! clinic's slot minutes after midnight.

use chrono::{
    DateTime, Datelike, Duration, FixedOffset, NaiveDate, NaiveTime, Offset, TimeZone, Timelike,
    Utc, Weekday,
};
use chrono_tz::Tz;

/// Minutes in a wall-clock day; a working interval may end at this one (24:00).
pub const MINUTES_PER_DAY: u16 = 1440;

/// A half-open stretch of time, `[start, end)`, never empty.
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize, serde::Deserialize,
)]
pub struct Span {
    pub start: DateTime<Utc>,
    pub end: DateTime<Utc>,
}

impl Span {
    /// `None` when `end` is not after `start`.
    pub fn new(start: DateTime<Utc>, end: DateTime<Utc>) -> Option<Span> {
        (start < end).then_some(Span { start, end })
    }

    pub fn overlaps(&self, other: &Span) -> bool {
        self.start < other.end && other.start < self.end
    }

    pub fn contains(&self, other: &Span) -> bool {
        self.start <= other.start && other.end <= self.end
    }

    pub fn minutes(&self) -> i64 {
        (self.end - self.start).num_minutes()
    }
}

/// One weekly working interval: on `weekday`, from `start_minute` to `end_minute` after local
/// midnight, on the dates from `valid_from` to `valid_until` (inclusive; `None`: open-ended).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WeeklyHours {
    pub weekday: Weekday,
    pub start_minute: u16,
    pub end_minute: u16,
    pub valid_from: NaiveDate,
    pub valid_until: Option<NaiveDate>,
}

impl WeeklyHours {
    pub fn applies_on(&self, date: NaiveDate) -> bool {
        date.weekday() == self.weekday
            && date >= self.valid_from
            && self.valid_until.is_none_or(|until| date <= until)
    }
}

/// The instant the clinic's wall clock shows `minute` minutes after midnight on `date` (1440:
/// the next midnight), by the rules in this module's header.
pub fn local_instant(zone: Tz, date: NaiveDate, minute: u16) -> DateTime<Utc> {
    let midnight = date.and_time(NaiveTime::MIN);
    let wall = midnight + Duration::minutes(i64::from(minute));
    if let Some(instant) = zone.from_local_datetime(&wall).earliest() {
        return instant.with_timezone(&Utc);
    }
    // In a gap: the first wall-clock minute after it. Gaps are at most a few hours; a day is
    // the bound the tz database could ever need.
    let mut probe = wall;
    for _ in 0..MINUTES_PER_DAY {
        probe += Duration::minutes(1);
        if let Some(instant) = zone.from_local_datetime(&probe).earliest() {
            return instant.with_timezone(&Utc);
        }
    }
    // Unreachable with any real zone; the UTC reading of the wall clock is the closest answer.
    wall.and_utc()
}

/// The clinic's date at `instant`.
pub fn local_date(zone: Tz, instant: DateTime<Utc>) -> NaiveDate {
    instant.with_timezone(&zone).date_naive()
}

/// From the first minute of `first` to the end of `last`, in `zone` (`None` if `last` is
/// before `first`).
pub fn local_days(zone: Tz, first: NaiveDate, last: NaiveDate) -> Option<Span> {
    Span::new(
        local_instant(zone, first, 0),
        local_instant(zone, last, MINUTES_PER_DAY),
    )
}

/// What `hours` give on the local dates `from..=to`, in order, merged where they touch or
/// overlap (09:00–14:00 and 14:00–20:00 are one stretch).
pub fn working_spans(zone: Tz, hours: &[WeeklyHours], from: NaiveDate, to: NaiveDate) -> Vec<Span> {
    let mut spans = Vec::new();
    for date in from.iter_days().take_while(|date| *date <= to) {
        for rule in hours.iter().filter(|rule| rule.applies_on(date)) {
            let start = local_instant(zone, date, rule.start_minute);
            let end = local_instant(zone, date, rule.end_minute);
            spans.extend(Span::new(start, end));
        }
    }
    merge(spans)
}

/// `spans` in order, with those that touch or overlap joined.
pub fn merge(mut spans: Vec<Span>) -> Vec<Span> {
    spans.sort_unstable();
    let mut merged: Vec<Span> = Vec::with_capacity(spans.len());
    for span in spans {
        match merged.last_mut() {
            Some(last) if span.start <= last.end => last.end = last.end.max(span.end),
            _ => merged.push(span),
        }
    }
    merged
}

/// `spans` (merged) without any of `busy` (any order, overlapping or not).
pub fn subtract(spans: &[Span], busy: &[Span]) -> Vec<Span> {
    let busy = merge(busy.to_vec());
    let mut free = Vec::with_capacity(spans.len());
    for span in spans {
        let mut cursor = span.start;
        for taken in busy.iter().filter(|taken| taken.overlaps(span)) {
            free.extend(Span::new(cursor, taken.start));
            cursor = cursor.max(taken.end);
        }
        free.extend(Span::new(cursor, span.end));
    }
    free
}

/// Whether `slot` lies wholly inside one of `spans` (merged).
pub fn covers(spans: &[Span], slot: &Span) -> bool {
    spans.iter().any(|span| span.contains(slot))
}

/// The start of every `length` that fits in `free`, on the clinic's grid of `grid_minutes`, by
/// the zone's `offsets` over `free`.
pub fn bookable_starts(
    offsets: &Offsets,
    free: &[Span],
    length: Duration,
    grid_minutes: u16,
) -> Vec<DateTime<Utc>> {
    let mut starts = Vec::new();
    for span in free {
        let last = span.end - length;
        let mut start = offsets.next_on_grid(span.start, grid_minutes);
        while start <= last {
            starts.push(start);
            start = offsets.next_on_grid(start + Duration::minutes(1), grid_minutes);
        }
    }
    starts
}

/// A zone's offsets from UTC over a stretch of time, found once: a search steps through
/// thousands of starts, and a tz database lookup for each was most of its work. The offset is
/// sampled every [`STEADY`] (no zone changes its offset twice that fast) and each change it
/// shows is found to the second by bisection.
#[derive(Clone, Debug)]
pub struct Offsets {
    first: FixedOffset,
    /// Each instant the offset changes at, and the offset from then on, in order.
    changes: Vec<(DateTime<Utc>, FixedOffset)>,
}

/// How far apart [`Offsets`] samples a zone.
const STEADY: Duration = Duration::hours(6);

impl Offsets {
    /// `zone`'s offsets from `from` to `until` (and the last one after it).
    pub fn over(zone: Tz, from: DateTime<Utc>, until: DateTime<Utc>) -> Self {
        let first = offset(zone, from);
        let (mut changes, mut at, mut current) = (Vec::new(), from, first);
        while at < until {
            let next = (at + STEADY).min(until);
            let there = offset(zone, next);
            if there != current {
                // The change lies in (at, next]: halve the stretch down to one second.
                let (mut before, mut after) = (at, next);
                while after - before > Duration::seconds(1) {
                    let middle = before + (after - before) / 2;
                    if offset(zone, middle) == current {
                        before = middle;
                    } else {
                        after = middle;
                    }
                }
                changes.push((after, there));
                current = there;
            }
            at = next;
        }
        Self { first, changes }
    }

    /// The offset at `instant`.
    pub fn at(&self, instant: DateTime<Utc>) -> FixedOffset {
        match self.changes.partition_point(|(from, _)| *from <= instant) {
            0 => self.first,
            after => self.changes[after - 1].1,
        }
    }

    /// The first instant at or after `at` (rounded up to a whole minute) whose wall-clock time
    /// is a whole multiple of `grid_minutes` after local midnight.
    pub fn next_on_grid(&self, at: DateTime<Utc>, grid_minutes: u16) -> DateTime<Utc> {
        let grid = i64::from(grid_minutes.max(1));
        let mut candidate = ceil_to_minute(at);
        // Each pass moves to the grid under the offset at `candidate`; an offset change between
        // the two can leave it off the grid once more, never more than a few times.
        for _ in 0..8 {
            let wall = candidate.timestamp() + i64::from(self.at(candidate).local_minus_utc());
            let behind = (wall.rem_euclid(86_400) / 60) % grid;
            if behind == 0 {
                return candidate;
            }
            candidate += Duration::minutes(grid - behind);
        }
        candidate
    }
}

fn offset(zone: Tz, at: DateTime<Utc>) -> FixedOffset {
    zone.offset_from_utc_datetime(&at.naive_utc()).fix()
}

fn ceil_to_minute(at: DateTime<Utc>) -> DateTime<Utc> {
    let floor = at
        .with_second(0)
        .and_then(|t| t.with_nanosecond(0))
        .unwrap_or(at);
    if floor == at {
        at
    } else {
        floor + Duration::minutes(1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn at(text: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(text)
            .unwrap()
            .with_timezone(&Utc)
    }

    fn date(text: &str) -> NaiveDate {
        text.parse().unwrap()
    }

    fn hours(weekday: Weekday, start: u16, end: u16) -> WeeklyHours {
        WeeklyHours {
            weekday,
            start_minute: start,
            end_minute: end,
            valid_from: date("2026-01-01"),
            valid_until: None,
        }
    }

    const MADRID: Tz = chrono_tz::Europe::Madrid;

    /// `bookable_starts` with the offsets over `free`, as a search finds them.
    fn starts_in_zone(zone: Tz, free: &[Span], length: Duration, grid: u16) -> Vec<DateTime<Utc>> {
        let (Some(first), Some(last)) = (free.first(), free.last()) else {
            return Vec::new();
        };
        bookable_starts(
            &Offsets::over(zone, first.start, last.end),
            free,
            length,
            grid,
        )
    }

    /// The next grid minute from `at`, with the offsets of the day around it.
    fn grid_after(zone: Tz, at: DateTime<Utc>, grid: u16) -> DateTime<Utc> {
        Offsets::over(zone, at, at + Duration::days(1)).next_on_grid(at, grid)
    }

    #[test]
    fn a_morning_and_an_afternoon_in_winter_and_summer() {
        let rules = [
            hours(Weekday::Mon, 9 * 60, 14 * 60),
            hours(Weekday::Mon, 16 * 60, 20 * 60),
        ];
        let winter = working_spans(MADRID, &rules, date("2026-12-07"), date("2026-12-07"));
        assert_eq!(
            winter,
            [
                Span::new(at("2026-12-07T08:00:00Z"), at("2026-12-07T13:00:00Z")).unwrap(),
                Span::new(at("2026-12-07T15:00:00Z"), at("2026-12-07T19:00:00Z")).unwrap(),
            ]
        );
        let summer = working_spans(MADRID, &rules, date("2026-07-06"), date("2026-07-06"));
        assert_eq!(summer[0].start, at("2026-07-06T07:00:00Z"));
        assert!(working_spans(MADRID, &rules, date("2026-12-08"), date("2026-12-08")).is_empty());
    }

    #[test]
    fn daylight_saving_nights_are_an_hour_shorter_or_longer() {
        // Madrid: 2026-03-29 02:00 → 03:00; 2026-10-25 03:00 → 02:00.
        let night = |weekday| [hours(weekday, 0, MINUTES_PER_DAY)];
        let spring = working_spans(
            MADRID,
            &night(Weekday::Sun),
            date("2026-03-29"),
            date("2026-03-29"),
        );
        assert_eq!(spring[0].minutes(), 23 * 60);
        let autumn = working_spans(
            MADRID,
            &night(Weekday::Sun),
            date("2026-10-25"),
            date("2026-10-25"),
        );
        assert_eq!(autumn[0].minutes(), 25 * 60);
        // A wall-clock time in the spring gap is the first instant after it.
        assert_eq!(
            local_instant(MADRID, date("2026-03-29"), 2 * 60 + 30),
            at("2026-03-29T01:00:00Z")
        );
        // One shown twice in autumn is its first showing.
        assert_eq!(
            local_instant(MADRID, date("2026-10-25"), 2 * 60 + 30),
            at("2026-10-25T00:30:00Z")
        );
    }

    #[test]
    fn touching_intervals_merge_and_busy_time_is_taken_out() {
        let rules = [
            hours(Weekday::Tue, 9 * 60, 14 * 60),
            hours(Weekday::Tue, 14 * 60, 15 * 60),
        ];
        let spans = working_spans(MADRID, &rules, date("2026-12-08"), date("2026-12-08"));
        assert_eq!(spans.len(), 1);
        let busy = [
            Span::new(at("2026-12-08T09:00:00Z"), at("2026-12-08T09:30:00Z")).unwrap(),
            Span::new(at("2026-12-08T09:15:00Z"), at("2026-12-08T10:00:00Z")).unwrap(),
        ];
        let free = subtract(&spans, &busy);
        assert_eq!(
            free,
            [
                Span::new(at("2026-12-08T08:00:00Z"), at("2026-12-08T09:00:00Z")).unwrap(),
                Span::new(at("2026-12-08T10:00:00Z"), at("2026-12-08T14:00:00Z")).unwrap(),
            ]
        );
        let starts = starts_in_zone(MADRID, &free, Duration::minutes(45), 30);
        assert_eq!(starts[0], at("2026-12-08T08:00:00Z"));
        assert_eq!(
            starts[1],
            at("2026-12-08T10:00:00Z"),
            "08:30+45 min runs into 09:00"
        );
        assert_eq!(*starts.last().unwrap(), at("2026-12-08T13:00:00Z"));
    }

    #[test]
    fn the_grid_is_the_clinics_wall_clock() {
        // Kathmandu is UTC+05:45: a half-hour grid of its wall clock is :15 and :45 in UTC.
        let kathmandu = chrono_tz::Asia::Kathmandu;
        assert_eq!(
            grid_after(kathmandu, at("2026-12-08T03:00:00Z"), 30),
            at("2026-12-08T03:15:00Z")
        );
        assert_eq!(
            grid_after(MADRID, at("2026-12-08T08:00:00.5Z"), 15),
            at("2026-12-08T08:15:00Z")
        );
    }

    const ZONES: [Tz; 8] = [
        chrono_tz::UTC,
        chrono_tz::Europe::Madrid,
        chrono_tz::America::New_York,
        chrono_tz::America::Santiago,
        chrono_tz::Australia::Lord_Howe, // a 30-minute daylight-saving change
        chrono_tz::Asia::Kathmandu,      // UTC+05:45
        chrono_tz::Pacific::Chatham,     // UTC+12:45 / +13:45
        chrono_tz::America::Havana,      // changes at midnight
    ];

    /// Weekly intervals valid around the first third of 2026, when the zones below change to
    /// and from daylight saving (March and April); some open-ended, some with an end.
    fn weekly() -> impl Strategy<Value = WeeklyHours> {
        (
            0u8..7,
            0u16..MINUTES_PER_DAY,
            1u16..=600,
            0i64..150,
            proptest::option::of(0i64..200),
        )
            .prop_map(|(day, start, length, from, until)| {
                let valid_from = date("2025-11-01") + Duration::days(from);
                WeeklyHours {
                    weekday: Weekday::try_from(day).unwrap(),
                    start_minute: start,
                    end_minute: (start + length).min(MINUTES_PER_DAY),
                    valid_from,
                    valid_until: until.map(|days| valid_from + Duration::days(days)),
                }
            })
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(200))]

        /// Every start offered fits wholly in the free time and is on the wall-clock grid;
        /// every grid minute whose slot fits is offered; and nothing offered touches busy time.
        #[test]
        fn offered_slots_are_exactly_the_free_grid_slots(
            zone in proptest::sample::select(ZONES.to_vec()),
            rules in proptest::collection::vec(weekly(), 1..12),
            first_day in 0i64..120,
            busy in proptest::collection::vec((0i64..(5 * 1440), 1i64..300), 0..12),
            length in 5i64..240,
            grid in proptest::sample::select(vec![5u16, 10, 15, 30]),
        ) {
            let from = date("2026-01-01") + Duration::days(first_day);
            let to = from + Duration::days(3);
            let working = working_spans(zone, &rules, from, to);
            for pair in working.windows(2) {
                prop_assert!(pair[0].end < pair[1].start, "merged and ordered");
            }
            let origin = local_instant(zone, from, 0);
            let busy: Vec<Span> = busy
                .into_iter()
                .filter_map(|(offset, minutes)| {
                    let start = origin + Duration::minutes(offset);
                    Span::new(start, start + Duration::minutes(minutes))
                })
                .collect();
            let free = subtract(&working, &busy);
            let length = Duration::minutes(length);
            let offered = starts_in_zone(zone, &free, length, grid);
            for start in &offered {
                let slot = Span::new(*start, *start + length).unwrap();
                prop_assert!(covers(&free, &slot));
                prop_assert!(covers(&working, &slot));
                prop_assert!(!busy.iter().any(|b| b.overlaps(&slot)));
                let wall = start.with_timezone(&zone);
                prop_assert_eq!((wall.hour() * 60 + wall.minute()) % u32::from(grid), 0);
            }
            // Completeness, by brute force over every minute of the range.
            let Some(first) = working.first() else { return Ok(()); };
            let last = working.last().unwrap().end;
            let mut minute = first.start;
            let mut expected = Vec::new();
            while minute < last {
                let wall = minute.with_timezone(&zone);
                let on_grid = (wall.hour() * 60 + wall.minute()) % u32::from(grid) == 0;
                let slot = Span::new(minute, minute + length).unwrap();
                if on_grid && covers(&free, &slot) {
                    expected.push(minute);
                }
                minute += Duration::minutes(1);
            }
            prop_assert_eq!(offered, expected);
        }

        /// Working time lies on the local dates asked for, and a longer range only adds to it.
        #[test]
        fn working_spans_stay_on_their_dates(
            zone in proptest::sample::select(ZONES.to_vec()),
            rules in proptest::collection::vec(weekly(), 1..12),
            first_day in 0i64..120,
        ) {
            let from = date("2026-01-01") + Duration::days(first_day);
            let to = from + Duration::days(6);
            let spans = working_spans(zone, &rules, from, to);
            for span in &spans {
                prop_assert!(local_date(zone, span.start) >= from);
                // An interval ending at 24:00 ends on the next date's midnight.
                prop_assert!(local_date(zone, span.end - Duration::nanoseconds(1)) <= to);
            }
            let wider = working_spans(zone, &rules, from, to + Duration::days(1));
            for span in &spans {
                prop_assert!(covers(&wider, span));
            }
        }
    }
}
