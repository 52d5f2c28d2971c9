//! The demo's agenda: every dentist's opening hours filled with back-to-back visits (public
//! holidays stay closed), a sample of them booked for patients, each with a status and times that
//! fit "now".

use super::clinics::{DemoClinic, StaffMember};
use super::patients::DemoPatient;
use super::procedures::{PROCEDURES, Procedure, pick_procedure};
use super::schedule::{SESSIONS, closed_days};
use super::{APPOINTMENTS_PER_CLINIC, CALENDAR_DAYS, random_uuid};
use chrono::{Datelike, Duration, NaiveDate, NaiveDateTime, NaiveTime};
use rand::Rng;
use rand::rngs::StdRng;
use rand::seq::IndexedRandom;
use shared::auth::Role;
use std::collections::{BTreeSet, HashSet};
use uuid::Uuid;

/// Times are local to the clinic (`TIMEZONE`); the insert converts them.
pub struct DemoAppointment {
    pub id: Uuid,
    pub patient_id: Uuid,
    pub dentist_id: Uuid,
    pub starts_at: NaiveDateTime,
    pub ends_at: NaiveDateTime,
    pub status: &'static str,
    pub reason: &'static str,
    pub procedure_code: &'static str,
    pub created_by: Uuid,
    pub created_at: NaiveDateTime,
    pub status_changed_at: NaiveDateTime,
}

/// A bookable visit before a patient and a status are given to it.
pub(crate) struct Slot {
    pub(crate) dentist_id: Uuid,
    pub(crate) starts_at: NaiveDateTime,
    pub(crate) procedure: &'static Procedure,
}

/// One session of `dentist_id` filled with visits back to back; the end of the session takes the
/// shortest visit when it still fits.
pub(crate) fn fill_session(
    rng: &mut StdRng,
    dentist_id: Uuid,
    opens: NaiveDateTime,
    closes: NaiveDateTime,
    slots: &mut Vec<Slot>,
) {
    let mut cursor = opens;
    loop {
        let mut procedure = pick_procedure(rng);
        if cursor + minutes(procedure.minutes) > closes {
            procedure = &PROCEDURES[0];
        }
        if cursor + minutes(procedure.minutes) > closes {
            break;
        }
        slots.push(Slot {
            dentist_id,
            starts_at: cursor,
            procedure,
        });
        cursor += minutes(procedure.minutes);
    }
}

/// How often generated appointments end each way, and how far ahead they were booked: the
/// demo's few hundred and the large clinic's year differ only in these.
pub(crate) struct OutcomeRates {
    /// Days before the visit a past appointment was booked.
    pub(crate) booked_days_before: std::ops::Range<i64>,
    /// Of 100 past appointments: no-shows below this, cancelled from it up to 15, the rest completed.
    pub(crate) no_show_percent: u32,
    /// Days before now a future appointment was booked.
    pub(crate) booked_days_ago: std::ops::Range<i64>,
    /// Share of future appointments already cancelled.
    pub(crate) future_cancelled: f64,
}

const DEMO_OUTCOMES: OutcomeRates = OutcomeRates {
    booked_days_before: 1..30,
    no_show_percent: 8,
    booked_days_ago: 0..20,
    future_cancelled: 0.08,
};

/// An appointment for `slot`: its status and times drawn as `rates` say, relative to `now`.
pub(crate) fn appointment(
    rng: &mut StdRng,
    slot: &Slot,
    patient_id: Uuid,
    receptionists: &[Uuid],
    now: NaiveDateTime,
    rates: &OutcomeRates,
) -> DemoAppointment {
    let starts_at = slot.starts_at;
    let ends_at = starts_at + minutes(slot.procedure.minutes);
    let outcome = if ends_at <= now {
        Outcome::ended(rng, starts_at, ends_at, rates)
    } else {
        Outcome::not_ended(rng, starts_at, now, rates)
    };
    DemoAppointment {
        id: random_uuid(rng),
        patient_id,
        dentist_id: slot.dentist_id,
        starts_at,
        ends_at,
        status: outcome.status,
        reason: slot
            .procedure
            .reasons
            .choose(rng)
            .copied()
            .unwrap_or(slot.procedure.name),
        procedure_code: slot.procedure.code,
        created_by: receptionists
            .choose(rng)
            .copied()
            .unwrap_or(slot.dentist_id),
        created_at: outcome.created_at,
        status_changed_at: outcome.status_changed_at,
    }
}

/// What became of an appointment by now: its status, when it was booked and when its status
/// last changed.
struct Outcome {
    status: &'static str,
    created_at: NaiveDateTime,
    status_changed_at: NaiveDateTime,
}

impl Outcome {
    /// A visit over by now: mostly completed, some no-shows, some cancelled beforehand.
    fn ended(
        rng: &mut StdRng,
        starts_at: NaiveDateTime,
        ends_at: NaiveDateTime,
        rates: &OutcomeRates,
    ) -> Self {
        let created_at = starts_at
            - Duration::days(rng.random_range(rates.booked_days_before.clone()))
            - minutes(rng.random_range(0..600));
        let (status, status_changed_at) = match rng.random_range(0..100) {
            percent if percent < rates.no_show_percent => ("no_show", starts_at + minutes(20)),
            percent if percent < 15 => {
                let cancelled_at =
                    (starts_at - minutes(rng.random_range(60..4_000))).max(created_at + minutes(5));
                ("cancelled", cancelled_at)
            }
            _ => ("completed", ends_at),
        };
        Self {
            status,
            created_at,
            status_changed_at,
        }
    }

    /// A visit under way (confirmed) or ahead: cancelled already, confirmed (more often when it
    /// is two days away or less) or still only scheduled.
    fn not_ended(
        rng: &mut StdRng,
        starts_at: NaiveDateTime,
        now: NaiveDateTime,
        rates: &OutcomeRates,
    ) -> Self {
        let created_at = now
            - Duration::days(rng.random_range(rates.booked_days_ago.clone()))
            - minutes(rng.random_range(5..600));
        let changed_at = between(rng, created_at, now.min(starts_at));
        let confirm_chance = if (starts_at.date() - now.date()).num_days() <= 2 {
            0.75
        } else {
            0.3
        };
        let (status, status_changed_at) = if starts_at <= now {
            ("confirmed", changed_at)
        } else if rng.random_bool(rates.future_cancelled) {
            ("cancelled", changed_at)
        } else if rng.random_bool(confirm_chance) {
            ("confirmed", changed_at)
        } else {
            ("scheduled", created_at)
        };
        Self {
            status,
            created_at,
            status_changed_at,
        }
    }
}

/// `APPOINTMENTS_PER_CLINIC` visits of the clinic's dentists, `CALENDAR_DAYS` either side of
/// `now`, for `patients`.
pub(super) fn book(
    rng: &mut StdRng,
    clinic: &DemoClinic,
    patients: &[DemoPatient],
    now: NaiveDateTime,
) -> Vec<DemoAppointment> {
    let receptionists = clinic.staff_ids(Role::Receptionist);
    let dentists: Vec<_> = clinic.staff_with(Role::Dentist).collect();
    let closed = closed_days(now.date());
    let slots = open_slots(rng, &dentists, now.date(), &closed);
    let mut chosen: Vec<usize> =
        rand::seq::index::sample(rng, slots.len(), APPOINTMENTS_PER_CLINIC.min(slots.len()))
            .into_vec();
    chosen.sort_unstable();

    let mut booked_days = HashSet::new();
    chosen
        .into_iter()
        .map(|index| {
            let slot = &slots[index];
            let patient = patient_for(rng, patients.len(), slot.starts_at.date(), &mut booked_days);
            appointment(
                rng,
                slot,
                patients[patient].id,
                &receptionists,
                now,
                &DEMO_OUTCOMES,
            )
        })
        .collect()
}

/// Every dentist's working days, `CALENDAR_DAYS` either side of `today`, filled back to back;
/// each dentist's slots follow one another, so no two of them overlap, and a random subset of
/// them leaves realistic gaps.
/// Each dentist's sessions on the days they work at the clinic, but for the days it is
/// `closed`.
fn open_slots(
    rng: &mut StdRng,
    dentists: &[&StaffMember],
    today: NaiveDate,
    closed: &BTreeSet<NaiveDate>,
) -> Vec<Slot> {
    let mut slots = Vec::new();
    for offset in -CALENDAR_DAYS..=CALENDAR_DAYS {
        let day = today + Duration::days(offset);
        if closed.contains(&day) {
            continue;
        }
        for dentist in dentists {
            if !dentist.weekdays.contains(&day.weekday()) {
                continue;
            }
            let dentist_id = dentist.id;
            for &(opens, closes) in SESSIONS {
                fill_session(
                    rng,
                    dentist_id,
                    at(day, opens, 0),
                    at(day, closes, 0),
                    &mut slots,
                );
            }
        }
    }
    slots
}

/// The index of a patient for a visit on `day`: a patient comes at most once a day (after 50
/// draws that all come on it already, any patient), which `booked_days` keeps track of.
fn patient_for(
    rng: &mut StdRng,
    patients: usize,
    day: NaiveDate,
    booked_days: &mut HashSet<(usize, NaiveDate)>,
) -> usize {
    (0..50)
        .map(|_| rng.random_range(0..patients))
        .find(|&p| booked_days.insert((p, day)))
        .unwrap_or_else(|| rng.random_range(0..patients))
}

fn at(day: NaiveDate, hour: u32, minute: u32) -> NaiveDateTime {
    day.and_time(NaiveTime::from_hms_opt(hour, minute, 0).unwrap_or(NaiveTime::MIN))
}

fn minutes(count: u32) -> Duration {
    Duration::minutes(i64::from(count))
}

fn between(rng: &mut StdRng, from: NaiveDateTime, to: NaiveDateTime) -> NaiveDateTime {
    let span = (to - from).num_seconds();
    if span <= 0 {
        from
    } else {
        from + Duration::seconds(rng.random_range(0..=span))
    }
}
