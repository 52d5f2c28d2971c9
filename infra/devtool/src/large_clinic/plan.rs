//! What the large clinic holds, generated without touching the database: its staff, patients
//! and agenda.
//!
//! The agenda is realistic enough for the dashboard to mean something: as many dentists as the
//! appointments need (about 50 for 200,000), working Monday to Friday 8:00–14:00 and
//! 15:00–21:00 in back-to-back visits of the demo's procedures (codes from the global catalog),
//! of which 80 % are booked. A dentist's slots never overlap, so the `appointments_no_overlap`
//! constraint holds. Past visits are mostly completed, some no-shows and cancellations; future
//! ones are scheduled, confirmed or cancelled. Appointments come sorted by start time, the order
//! in which a clinic's table grows.

use super::LargeClinicOptions;
use crate::demo::{self, DemoAppointment, OutcomeRates, Slot};
use anyhow::bail;
use chrono::{Datelike, Duration, NaiveDate, NaiveDateTime, NaiveTime, Weekday};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use shared::auth::Role;
use shared::ids::ClinicId;
use uuid::Uuid;

/// The calendar, in days around today.
const DAYS_BACK: i64 = 365;
const DAYS_AHEAD: i64 = 31;
/// Opening hours, Monday to Friday: (opening hour, closing hour). Also every dentist's weekly
/// working hours (`working_hours`), so the agenda's free-slot search has the large clinic's
/// capacity to work on.
pub(super) const SESSIONS: &[(u32, u32)] = &[(8, 14), (15, 21)];
/// The share of a dentist's slots that gets booked.
const FILL: f64 = 0.8;
const RECEPTIONISTS: usize = 4;
/// Staff ids are `staff_id(clinic, member)` with member in 1..=255: the admin, the
/// receptionists, then the dentists.
const MAX_DENTISTS: usize = 255 - 1 - RECEPTIONISTS;
/// Changing this changes every generated patient and appointment.
const SEED: u64 = 0x5075_6c73_6f00_0010;

pub(super) struct StaffMember {
    pub(super) id: Uuid,
    pub(super) email: String,
    pub(super) full_name: String,
    pub(super) role: Role,
}

/// Everything the large clinic gets, ready to insert.
pub(super) struct Plan {
    pub(super) staff: Vec<StaffMember>,
    pub(super) patients: Vec<demo::DemoPatient>,
    pub(super) appointments: Vec<DemoAppointment>,
}

/// Staff member `member` (1..=255) of `clinic`: for the large clinic, `fixed_id(CLINIC_NUMBER,
/// member)`; for another clinic, ids of its own (user ids are unique across clinics).
fn staff_id(clinic: ClinicId, member: usize) -> Uuid {
    Uuid::from_u128(clinic.as_uuid().as_u128() ^ member as u128)
}

pub(super) fn generate(
    options: &LargeClinicOptions,
    clinic: ClinicId,
    slug: &str,
    now: NaiveDateTime,
    with_admin: bool,
) -> anyhow::Result<Plan> {
    // Seeded by the clinic too: two clinics populated in one database get distinct row ids.
    let mut rng = StdRng::seed_from_u64(SEED ^ clinic.as_uuid().as_u64_pair().1);
    // Each step draws from `rng` in turn: reordering them changes every row after.
    let (dentist_ids, slots) = hire_dentists(&mut rng, clinic, options.appointments, now.date())?;
    let staff = staff(&mut rng, clinic, slug, &dentist_ids, with_admin);
    let receptionists: Vec<Uuid> = staff
        .iter()
        .filter(|s| s.role == Role::Receptionist)
        .map(|s| s.id)
        .collect();
    let patients = patients(&mut rng, options.patients);
    let appointments = book(
        &mut rng,
        &slots,
        &patients,
        &receptionists,
        now,
        options.appointments,
    );
    Ok(Plan {
        staff,
        patients,
        appointments,
    })
}

/// Dentists, each with every slot of their calendar, added until 80 % of the slots hold the
/// `appointments` asked for (and at least two of them).
fn hire_dentists(
    rng: &mut StdRng,
    clinic: ClinicId,
    appointments: usize,
    today: NaiveDate,
) -> anyhow::Result<(Vec<Uuid>, Vec<Slot>)> {
    let mut slots = Vec::new();
    let mut dentist_ids = Vec::new();
    while (slots.len() as f64 * FILL) < appointments as f64 || dentist_ids.len() < 2 {
        if dentist_ids.len() == MAX_DENTISTS {
            bail!(
                "{appointments} appointments need more than {MAX_DENTISTS} dentists over {} days; ask for fewer",
                DAYS_BACK + DAYS_AHEAD
            );
        }
        let dentist_id = staff_id(clinic, 2 + RECEPTIONISTS + dentist_ids.len());
        dentist_ids.push(dentist_id);
        working_slots(rng, dentist_id, today, &mut slots);
    }
    Ok((dentist_ids, slots))
}

/// The admin (unless the clinic has one), the receptionists and the dentists of `dentist_ids`.
fn staff(
    rng: &mut StdRng,
    clinic: ClinicId,
    slug: &str,
    dentist_ids: &[Uuid],
    with_admin: bool,
) -> Vec<StaffMember> {
    // Staff names: the demo's name generator, so they read like the rest of the data.
    let names = demo::patients(rng, 1 + RECEPTIONISTS + dentist_ids.len());
    let full_name =
        |index: usize| format!("{} {}", names[index].first_name, names[index].last_name);
    let mut staff = Vec::new();
    if with_admin {
        staff.push(StaffMember {
            id: staff_id(clinic, 1),
            email: format!("admin@{slug}.pulso.test"),
            full_name: full_name(0),
            role: Role::Admin,
        });
    }
    for n in 0..RECEPTIONISTS {
        staff.push(StaffMember {
            id: staff_id(clinic, 2 + n),
            email: format!("recepcion{:02}@{slug}.pulso.test", n + 1),
            full_name: full_name(1 + n),
            role: Role::Receptionist,
        });
    }
    for (n, id) in dentist_ids.iter().enumerate() {
        staff.push(StaffMember {
            id: *id,
            email: format!("dentista{:02}@{slug}.pulso.test", n + 1),
            full_name: full_name(1 + RECEPTIONISTS + n),
            role: Role::Dentist,
        });
    }
    staff
}

/// `count` patients of the demo's generator, registered over three years, so that some are new
/// this week and this month.
fn patients(rng: &mut StdRng, count: usize) -> Vec<demo::DemoPatient> {
    let mut patients = demo::patients(rng, count);
    for patient in &mut patients {
        patient.registered_days_ago = rng.random_range(0..1_100);
    }
    patients
}

/// `count` of `slots` (all when there are fewer), sorted by start, each for a random patient.
fn book(
    rng: &mut StdRng,
    slots: &[Slot],
    patients: &[demo::DemoPatient],
    receptionists: &[Uuid],
    now: NaiveDateTime,
    count: usize,
) -> Vec<DemoAppointment> {
    let mut chosen = rand::seq::index::sample(rng, slots.len(), count.min(slots.len())).into_vec();
    chosen.sort_unstable_by_key(|index| (slots[*index].starts_at, *index));
    chosen
        .into_iter()
        .map(|index| {
            let slot = &slots[index];
            let patient = &patients[rng.random_range(0..patients.len())];
            demo::appointment(
                rng,
                slot,
                patient.id,
                receptionists,
                now,
                &LARGE_CLINIC_OUTCOMES,
            )
        })
        .collect()
}

/// Every visit `dentist_id` could see in the calendar, back to back within opening hours.
fn working_slots(rng: &mut StdRng, dentist_id: Uuid, today: NaiveDate, slots: &mut Vec<Slot>) {
    for offset in -DAYS_BACK..=DAYS_AHEAD {
        let day = today + Duration::days(offset);
        if matches!(day.weekday(), Weekday::Sat | Weekday::Sun) {
            continue;
        }
        for &(opens, closes) in SESSIONS {
            demo::fill_session(rng, dentist_id, at(day, opens), at(day, closes), slots);
        }
    }
}

/// A year of a busy clinic: a little fewer no-shows and later cancellations than the demo's
/// fortnight, booked further ahead.
const LARGE_CLINIC_OUTCOMES: OutcomeRates = OutcomeRates {
    booked_days_before: 1..60,
    no_show_percent: 7,
    booked_days_ago: 0..30,
    future_cancelled: 0.06,
};

fn at(day: NaiveDate, hour: u32) -> NaiveDateTime {
    day.and_time(NaiveTime::from_hms_opt(hour, 0, 0).unwrap_or(NaiveTime::MIN))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::large_clinic::{SLUG, clinic_id};

    fn now() -> NaiveDateTime {
        NaiveDate::from_ymd_opt(2026, 11, 23)
            .unwrap()
            .and_hms_opt(11, 7, 0)
            .unwrap()
    }

    #[test]
    fn the_agenda_never_double_books_a_dentist_and_follows_the_calendar() {
        let options = LargeClinicOptions {
            patients: 500,
            appointments: 20_000,
            reset: false,
        };
        let plan = generate(&options, clinic_id(), SLUG, now(), true).unwrap();
        assert_eq!(plan.appointments.len(), 20_000);
        assert_eq!(plan.patients.len(), 500);
        let dentists = plan
            .staff
            .iter()
            .filter(|s| s.role == Role::Dentist)
            .count();
        assert!((2..=MAX_DENTISTS).contains(&dentists), "{dentists}");

        let mut by_dentist: Vec<_> = plan
            .appointments
            .iter()
            .map(|a| (a.dentist_id, a.starts_at, a.ends_at))
            .collect();
        by_dentist.sort();
        for pair in by_dentist.windows(2) {
            if pair[0].0 == pair[1].0 {
                assert!(pair[0].2 <= pair[1].1, "overlap: {pair:?}");
            }
        }
        let first = now().date() - Duration::days(DAYS_BACK);
        let last = now().date() + Duration::days(DAYS_AHEAD);
        for a in &plan.appointments {
            assert!((first..=last).contains(&a.starts_at.date()));
            let allowed: &[&str] = if a.ends_at <= now() {
                &["completed", "no_show", "cancelled"]
            } else {
                &["scheduled", "confirmed", "cancelled"]
            };
            assert!(allowed.contains(&a.status), "{} {}", a.status, a.starts_at);
            assert!(a.created_at <= now());
        }
        // Sorted by start, as a growing table would be.
        assert!(
            plan.appointments
                .windows(2)
                .all(|w| w[0].starts_at <= w[1].starts_at)
        );
        let recent = plan
            .patients
            .iter()
            .filter(|p| p.registered_days_ago < 30)
            .count();
        assert!(recent > 0);
    }

    #[test]
    fn generation_is_deterministic() {
        let options = LargeClinicOptions {
            patients: 100,
            appointments: 1_000,
            reset: false,
        };
        let ids = |plan: &Plan| {
            plan.appointments
                .iter()
                .map(|a| (a.id, a.starts_at, a.patient_id))
                .collect::<Vec<_>>()
        };
        assert_eq!(
            ids(&generate(&options, clinic_id(), SLUG, now(), true).unwrap()),
            ids(&generate(&options, clinic_id(), SLUG, now(), true).unwrap())
        );
    }
}
