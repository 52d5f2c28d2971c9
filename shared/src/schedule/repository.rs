//! Schedule SQL: working hours, time off and chairs. Every query runs inside a tenant
//! transaction (row-level security) and also filters on `clinic_id`, except
//! [`capacity_within`], whose function scopes row-level security to its clinic itself.
//!
//! Locks: a booking share-locks the dentist's membership (`appointments`) and the clinic row
//! ([`clinic_calendar`] with [`Lock::Share`]) before it reads their hours and time off; a change
//! to a dentist's hours or time off takes the membership for update, a clinic-wide closure the
//! clinic row. So a booking never passes its check against a schedule changing under it, and
//! the schedule's own rows need no locks (which would need UPDATE on them).

/// A row lock taken by a read, held until the transaction ends.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Lock {
    None,
    Share,
    Update,
}

impl Lock {
    fn clause(self) -> &'static str {
        match self {
            Lock::None => "",
            Lock::Share => " FOR SHARE",
            Lock::Update => " FOR UPDATE",
        }
    }
}

use super::calendar::{Span, WeeklyHours};
use super::{Chair, ClockTime, DayOfWeek, TimeOff, TimeOffKind, WorkingInterval};
use crate::auth::Role;
use crate::ids::{AppointmentId, ChairId, ClinicId, TimeOffId, UserId, WorkingHoursId};
use chrono::{DateTime, Datelike, NaiveDate, Utc};
use sqlx::{PgConnection, PgPool};
use std::collections::BTreeMap;
use uuid::Uuid;

/// The most rows a time-off listing answers (a year of a large clinic's holidays fits).
pub const MAX_TIME_OFF_ROWS: i64 = 1_000;
/// The most overlapping appointments a new time off names.
const MAX_OVERLAPPING: i64 = 100;

/// The clinic's time zone, slot minutes and default appointment length.
pub async fn clinic_calendar(
    conn: &mut PgConnection,
    clinic: ClinicId,
    lock: Lock,
) -> Result<Option<(String, i16, i32)>, sqlx::Error> {
    sqlx::query_as(&format!(
        "SELECT timezone, slot_minutes, default_appointment_minutes FROM clinics WHERE id = $1{}",
        lock.clause()
    ))
    .bind(clinic)
    .fetch_optional(conn)
    .await
}

/// The member's role and whether they are active.
pub async fn member_role(
    conn: &mut PgConnection,
    clinic: ClinicId,
    user: UserId,
    lock: Lock,
) -> Result<Option<(Role, bool)>, sqlx::Error> {
    sqlx::query_as(&format!(
        "SELECT role, active FROM memberships WHERE clinic_id = $1 AND user_id = $2{}",
        lock.clause()
    ))
    .bind(clinic)
    .bind(user)
    .fetch_optional(conn)
    .await
}

#[derive(sqlx::FromRow)]
struct IntervalRow {
    id: WorkingHoursId,
    dentist_id: UserId,
    weekday: i16,
    start_minute: i16,
    end_minute: i16,
    valid_from: NaiveDate,
    valid_until: Option<NaiveDate>,
}

impl IntervalRow {
    fn into_interval(self) -> Option<WorkingInterval> {
        Some(WorkingInterval {
            id: self.id,
            dentist_id: self.dentist_id,
            weekday: DayOfWeek::from_iso(self.weekday)?,
            start: ClockTime::from_minutes(self.start_minute),
            end: ClockTime::from_minutes(self.end_minute),
            valid_from: self.valid_from,
            valid_until: self.valid_until,
        })
    }
}

const INTERVAL_COLUMNS: &str =
    "id, dentist_id, weekday, start_minute, end_minute, valid_from, valid_until";

/// The clinic's working intervals (one dentist's, when given), by dentist, day and start.
pub async fn working_hours(
    conn: &mut PgConnection,
    clinic: ClinicId,
    dentist: Option<UserId>,
) -> Result<Vec<WorkingInterval>, sqlx::Error> {
    let rows: Vec<IntervalRow> = sqlx::query_as(&format!(
        "SELECT {INTERVAL_COLUMNS} FROM working_hours
          WHERE clinic_id = $1 AND ($2::uuid IS NULL OR dentist_id = $2)
          ORDER BY dentist_id, weekday, valid_from, start_minute"
    ))
    .bind(clinic)
    .bind(dentist)
    .fetch_all(conn)
    .await?;
    Ok(rows
        .into_iter()
        .filter_map(IntervalRow::into_interval)
        .collect())
}

/// The weekly rules of the clinic's active dentists valid on any date of `first..=last`, by
/// dentist (each rule says on which of those dates it applies).
pub async fn active_rules_between(
    conn: &mut PgConnection,
    clinic: ClinicId,
    first: NaiveDate,
    last: NaiveDate,
) -> Result<BTreeMap<UserId, Vec<WeeklyHours>>, sqlx::Error> {
    let rows: Vec<IntervalRow> = sqlx::query_as(&format!(
        "SELECT {INTERVAL_COLUMNS} FROM working_hours w
           JOIN memberships m ON m.clinic_id = w.clinic_id AND m.user_id = w.dentist_id
          WHERE w.clinic_id = $1 AND m.active AND m.role = 'dentist'
            AND w.valid_from <= $3 AND (w.valid_until IS NULL OR w.valid_until >= $2)
            AND w.weekday = ANY($4)
          ORDER BY w.dentist_id, w.start_minute"
    ))
    .bind(clinic)
    .bind(first)
    .bind(last)
    .bind(weekdays_between(first, last))
    .fetch_all(conn)
    .await?;
    let mut rules: BTreeMap<UserId, Vec<WeeklyHours>> = BTreeMap::new();
    for interval in rows.into_iter().filter_map(IntervalRow::into_interval) {
        rules
            .entry(interval.dentist_id)
            .or_default()
            .push(interval.rule());
    }
    Ok(rules)
}

/// The ISO weekdays (1 Monday … 7 Sunday) of the dates `first..=last`: a day's search reads
/// that day's rules only.
fn weekdays_between(first: NaiveDate, last: NaiveDate) -> Vec<i16> {
    let mut weekdays: Vec<i16> = first
        .iter_days()
        .take_while(|date| *date <= last)
        .take(7)
        .map(|date| date.weekday().number_from_monday() as i16)
        .collect();
    weekdays.sort_unstable();
    weekdays
}

/// Replaces every working interval of `dentist` with `rules`.
pub async fn replace_working_hours(
    conn: &mut PgConnection,
    clinic: ClinicId,
    dentist: UserId,
    rules: &[WeeklyHours],
) -> Result<(), sqlx::Error> {
    sqlx::query("DELETE FROM working_hours WHERE clinic_id = $1 AND dentist_id = $2")
        .bind(clinic)
        .bind(dentist)
        .execute(&mut *conn)
        .await?;
    sqlx::query(
        "INSERT INTO working_hours (clinic_id, dentist_id, weekday, start_minute, end_minute,
                                    valid_from, valid_until)
         SELECT $1, $2, weekday, start_minute, end_minute, valid_from, valid_until
           FROM UNNEST($3::int2[], $4::int2[], $5::int2[], $6::date[], $7::date[])
                AS w(weekday, start_minute, end_minute, valid_from, valid_until)",
    )
    .bind(clinic)
    .bind(dentist)
    .bind(
        rules
            .iter()
            .map(|r| r.weekday.number_from_monday() as i16)
            .collect::<Vec<_>>(),
    )
    .bind(
        rules
            .iter()
            .map(|r| r.start_minute as i16)
            .collect::<Vec<_>>(),
    )
    .bind(
        rules
            .iter()
            .map(|r| r.end_minute as i16)
            .collect::<Vec<_>>(),
    )
    .bind(rules.iter().map(|r| r.valid_from).collect::<Vec<_>>())
    .bind(rules.iter().map(|r| r.valid_until).collect::<Vec<_>>())
    .execute(conn)
    .await?;
    Ok(())
}

const TIME_OFF_COLUMNS: &str =
    "id, dentist_id, kind, starts_at, ends_at, all_day, label, created_at";

#[derive(sqlx::FromRow)]
struct TimeOffRow {
    id: TimeOffId,
    dentist_id: Option<UserId>,
    kind: TimeOffKind,
    starts_at: DateTime<Utc>,
    ends_at: DateTime<Utc>,
    all_day: bool,
    label: String,
    created_at: DateTime<Utc>,
}

impl From<TimeOffRow> for TimeOff {
    fn from(row: TimeOffRow) -> Self {
        Self {
            id: row.id,
            dentist_id: row.dentist_id,
            kind: row.kind,
            starts_at: row.starts_at,
            ends_at: row.ends_at,
            all_day: row.all_day,
            label: row.label,
            created_at: row.created_at,
        }
    }
}

/// Time off overlapping `range`: the clinic's own and every dentist's, or only `dentist`'s and
/// the clinic's own. Oldest first, at most [`MAX_TIME_OFF_ROWS`] + 1 (the caller says when
/// there were more).
pub async fn time_off(
    conn: &mut PgConnection,
    clinic: ClinicId,
    range: &Span,
    dentist: Option<UserId>,
) -> Result<Vec<TimeOff>, sqlx::Error> {
    let rows: Vec<TimeOffRow> = sqlx::query_as(&format!(
        "SELECT {TIME_OFF_COLUMNS} FROM time_off
          WHERE clinic_id = $1
            AND tstzrange(starts_at, ends_at, '[)') && tstzrange($2, $3, '[)')
            AND ($4::uuid IS NULL OR dentist_id = $4 OR dentist_id IS NULL)
          ORDER BY starts_at, id
          LIMIT $5"
    ))
    .bind(clinic)
    .bind(range.start)
    .bind(range.end)
    .bind(dentist)
    .bind(MAX_TIME_OFF_ROWS + 1)
    .fetch_all(conn)
    .await?;
    Ok(rows.into_iter().map(TimeOff::from).collect())
}

/// Every time off overlapping `span` (whose: a dentist, or `None` for the clinic), as spans.
pub async fn time_off_within(
    conn: &mut PgConnection,
    clinic: ClinicId,
    span: &Span,
) -> Result<Vec<(Option<UserId>, Span)>, sqlx::Error> {
    let rows: Vec<(Option<UserId>, DateTime<Utc>, DateTime<Utc>)> = sqlx::query_as(
        "SELECT dentist_id, starts_at, ends_at FROM time_off
          WHERE clinic_id = $1 AND tstzrange(starts_at, ends_at, '[)') && tstzrange($2, $3, '[)')",
    )
    .bind(clinic)
    .bind(span.start)
    .bind(span.end)
    .fetch_all(conn)
    .await?;
    Ok(rows
        .into_iter()
        .filter_map(|(whose, start, end)| Some((whose, Span::new(start, end)?)))
        .collect())
}

/// A live appointment's dentist, chair and time.
pub type Booked = (UserId, Option<ChairId>, Span);

/// What the capacity of a range of clinic days is made of (the free-slot search's days).
#[derive(Debug, Default)]
pub struct CapacityRows {
    /// The weekly rules of the active dentists, by dentist, each dentist's by start.
    pub rules: BTreeMap<UserId, Vec<WeeklyHours>>,
    /// Time off overlapping the range: a dentist's, or the clinic's (`None`).
    pub away: Vec<(Option<UserId>, Span)>,
    /// Every appointment that is not cancelled overlapping the range.
    pub booked: Vec<Booked>,
    /// The active chairs' ids, ascending.
    pub chairs: Vec<ChairId>,
}

/// `clinic_capacity`'s one row: each part's columns in step; `None` when a part has no rows.
#[derive(sqlx::FromRow)]
struct CapacityRow {
    rule_dentists: Option<Vec<Uuid>>,
    rule_weekdays: Option<Vec<i16>>,
    rule_starts: Option<Vec<i16>>,
    rule_ends: Option<Vec<i16>>,
    rule_froms: Option<Vec<NaiveDate>>,
    rule_untils: Option<Vec<Option<NaiveDate>>>,
    away_dentists: Option<Vec<Option<Uuid>>>,
    away_starts: Option<Vec<DateTime<Utc>>>,
    away_ends: Option<Vec<DateTime<Utc>>>,
    booked_dentists: Option<Vec<Uuid>>,
    booked_chairs: Option<Vec<Option<Uuid>>>,
    booked_starts: Option<Vec<DateTime<Utc>>>,
    booked_ends: Option<Vec<DateTime<Utc>>>,
    chairs: Option<Vec<Uuid>>,
}

/// The rules valid on the clinic dates `first..=last` and the time off, live appointments and
/// active chairs of `range` (those dates' span in the clinic's zone), by `clinic_capacity`
/// (migration 27): one round trip, under row-level security scoped to `clinic` for that
/// statement alone, so it needs no tenant transaction (a free-slot search's miss).
pub async fn capacity_within(
    db: &PgPool,
    clinic: ClinicId,
    (first, last): (NaiveDate, NaiveDate),
    range: &Span,
) -> Result<CapacityRows, sqlx::Error> {
    let row: CapacityRow = sqlx::query_as("SELECT * FROM clinic_capacity($1, $2, $3, $4, $5, $6)")
        .bind(clinic)
        .bind(first)
        .bind(last)
        .bind(weekdays_between(first, last))
        .bind(range.start)
        .bind(range.end)
        .fetch_one(db)
        .await?;
    Ok(row.into_rows())
}

impl CapacityRow {
    fn into_rows(self) -> CapacityRows {
        let mut rules: BTreeMap<UserId, Vec<WeeklyHours>> = BTreeMap::new();
        let rule_columns = self
            .rule_dentists
            .unwrap_or_default()
            .into_iter()
            .zip(self.rule_weekdays.unwrap_or_default())
            .zip(self.rule_starts.unwrap_or_default())
            .zip(self.rule_ends.unwrap_or_default())
            .zip(self.rule_froms.unwrap_or_default())
            .zip(self.rule_untils.unwrap_or_default());
        for (((((dentist, weekday), start), end), from), until) in rule_columns {
            if let Some(weekday) = DayOfWeek::from_iso(weekday) {
                rules
                    .entry(UserId::from(dentist))
                    .or_default()
                    .push(WeeklyHours {
                        weekday: weekday.weekday(),
                        start_minute: ClockTime::from_minutes(start).minutes(),
                        end_minute: ClockTime::from_minutes(end).minutes(),
                        valid_from: from,
                        valid_until: until,
                    });
            }
        }
        for dentist_rules in rules.values_mut() {
            dentist_rules.sort_unstable_by_key(|rule| rule.start_minute);
        }
        let away = self
            .away_dentists
            .unwrap_or_default()
            .into_iter()
            .zip(self.away_starts.unwrap_or_default())
            .zip(self.away_ends.unwrap_or_default())
            .filter_map(|((whose, start), end)| {
                Some((whose.map(UserId::from), Span::new(start, end)?))
            })
            .collect();
        let booked = self
            .booked_dentists
            .unwrap_or_default()
            .into_iter()
            .zip(self.booked_chairs.unwrap_or_default())
            .zip(self.booked_starts.unwrap_or_default())
            .zip(self.booked_ends.unwrap_or_default())
            .filter_map(|(((dentist, chair), start), end)| {
                Some((
                    UserId::from(dentist),
                    chair.map(ChairId::from),
                    Span::new(start, end)?,
                ))
            })
            .collect();
        let chairs = self
            .chairs
            .unwrap_or_default()
            .into_iter()
            .map(ChairId::from)
            .collect();
        CapacityRows {
            rules,
            away,
            booked,
            chairs,
        }
    }
}

/// The first time off of `dentist` or of the whole clinic that overlaps `slot`.
pub async fn first_time_off(
    conn: &mut PgConnection,
    clinic: ClinicId,
    dentist: UserId,
    slot: &Span,
) -> Result<Option<TimeOff>, sqlx::Error> {
    let row: Option<TimeOffRow> = sqlx::query_as(&format!(
        "SELECT {TIME_OFF_COLUMNS} FROM time_off
          WHERE clinic_id = $1 AND (dentist_id = $2 OR dentist_id IS NULL)
            AND tstzrange(starts_at, ends_at, '[)') && tstzrange($3, $4, '[)')
          ORDER BY dentist_id NULLS FIRST, starts_at
          LIMIT 1"
    ))
    .bind(clinic)
    .bind(dentist)
    .bind(slot.start)
    .bind(slot.end)
    .fetch_optional(conn)
    .await?;
    Ok(row.map(TimeOff::from))
}

/// A time off to store: whose, what, when.
pub struct TimeOffEntry<'a> {
    pub dentist_id: Option<UserId>,
    pub kind: TimeOffKind,
    pub span: Span,
    pub all_day: bool,
    pub label: &'a str,
}

pub async fn insert_time_off(
    conn: &mut PgConnection,
    clinic: ClinicId,
    created_by: UserId,
    entry: &TimeOffEntry<'_>,
) -> Result<TimeOff, sqlx::Error> {
    let row: TimeOffRow = sqlx::query_as(&format!(
        "INSERT INTO time_off (clinic_id, dentist_id, kind, starts_at, ends_at, all_day, label,
                               created_by)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8)
         RETURNING {TIME_OFF_COLUMNS}"
    ))
    .bind(clinic)
    .bind(entry.dentist_id)
    .bind(entry.kind)
    .bind(entry.span.start)
    .bind(entry.span.end)
    .bind(entry.all_day)
    .bind(entry.label)
    .bind(created_by)
    .fetch_one(conn)
    .await?;
    Ok(row.into())
}

pub async fn delete_time_off(
    conn: &mut PgConnection,
    clinic: ClinicId,
    id: TimeOffId,
) -> Result<Option<TimeOff>, sqlx::Error> {
    let row: Option<TimeOffRow> = sqlx::query_as(&format!(
        "DELETE FROM time_off WHERE clinic_id = $1 AND id = $2 RETURNING {TIME_OFF_COLUMNS}"
    ))
    .bind(clinic)
    .bind(id)
    .fetch_optional(conn)
    .await?;
    Ok(row.map(TimeOff::from))
}

/// Live appointments overlapping `span`: of `dentist`, or of everyone.
pub async fn overlapping_appointments(
    conn: &mut PgConnection,
    clinic: ClinicId,
    dentist: Option<UserId>,
    span: &Span,
) -> Result<Vec<AppointmentId>, sqlx::Error> {
    sqlx::query_scalar(
        "SELECT id FROM appointments
          WHERE clinic_id = $1 AND status IN ('scheduled', 'confirmed')
            AND ($2::uuid IS NULL OR dentist_id = $2)
            AND tstzrange(starts_at, ends_at, '[)') && tstzrange($3, $4, '[)')
          ORDER BY starts_at, id
          LIMIT $5",
    )
    .bind(clinic)
    .bind(dentist)
    .bind(span.start)
    .bind(span.end)
    .bind(MAX_OVERLAPPING)
    .fetch_all(conn)
    .await
}

const CHAIR_COLUMNS: &str = "id, name, active, created_at, updated_at";

pub async fn chairs(
    conn: &mut PgConnection,
    clinic: ClinicId,
    active: Option<bool>,
) -> Result<Vec<Chair>, sqlx::Error> {
    sqlx::query_as(&format!(
        "SELECT {CHAIR_COLUMNS} FROM chairs
          WHERE clinic_id = $1 AND ($2::boolean IS NULL OR active = $2)
          ORDER BY name COLLATE \"und-x-icu\", id"
    ))
    .bind(clinic)
    .bind(active)
    .fetch_all(conn)
    .await
}

/// The chair, locked as `lock` says (a change: update; a booking that checked it is active:
/// share).
pub async fn chair(
    conn: &mut PgConnection,
    clinic: ClinicId,
    id: ChairId,
    lock: Lock,
) -> Result<Option<Chair>, sqlx::Error> {
    sqlx::query_as(&format!(
        "SELECT {CHAIR_COLUMNS} FROM chairs WHERE clinic_id = $1 AND id = $2{}",
        lock.clause()
    ))
    .bind(clinic)
    .bind(id)
    .fetch_optional(conn)
    .await
}

pub async fn insert_chair(
    conn: &mut PgConnection,
    clinic: ClinicId,
    name: &str,
) -> Result<Chair, sqlx::Error> {
    sqlx::query_as(&format!(
        "INSERT INTO chairs (clinic_id, name) VALUES ($1, $2) RETURNING {CHAIR_COLUMNS}"
    ))
    .bind(clinic)
    .bind(name)
    .fetch_one(conn)
    .await
}

pub async fn update_chair(
    conn: &mut PgConnection,
    clinic: ClinicId,
    chair: &Chair,
) -> Result<Chair, sqlx::Error> {
    sqlx::query_as(&format!(
        "UPDATE chairs SET name = $3, active = $4, updated_at = now()
          WHERE clinic_id = $1 AND id = $2
          RETURNING {CHAIR_COLUMNS}"
    ))
    .bind(clinic)
    .bind(chair.id)
    .bind(&chair.name)
    .bind(chair.active)
    .fetch_one(conn)
    .await
}

/// The earliest live appointment in `chair` overlapping `slot`, other than `except`. Same
/// expression and predicate as `appointments_chair_no_overlap`, so its index answers it.
pub async fn first_chair_overlap(
    conn: &mut PgConnection,
    clinic: ClinicId,
    chair: ChairId,
    slot: &Span,
    except: Option<AppointmentId>,
) -> Result<Option<Span>, sqlx::Error> {
    let row: Option<(DateTime<Utc>, DateTime<Utc>)> = sqlx::query_as(
        "SELECT starts_at, ends_at FROM appointments
          WHERE clinic_id = $1 AND chair_id = $2 AND status <> 'cancelled'
            AND tstzrange(starts_at, ends_at, '[)') && tstzrange($3, $4, '[)')
            AND ($5::uuid IS NULL OR id <> $5)
          ORDER BY starts_at
          LIMIT 1",
    )
    .bind(clinic)
    .bind(chair)
    .bind(slot.start)
    .bind(slot.end)
    .bind(except)
    .fetch_optional(conn)
    .await?;
    Ok(row.and_then(|(start, end)| Span::new(start, end)))
}
