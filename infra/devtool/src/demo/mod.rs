//! The demo data itself, generated without touching the database: two clinics of one chain,
//! their staff and the chain's admin, patients with realistic Spanish names and two months of
//! appointments.
//!
//! Deterministic: clinic and user ids are fixed (tokens stay valid across reseeds) and
//! everything else comes from a seeded `StdRng`, so every machine gets the same demo on the
//! same day. Only the calendar moves: appointments are laid out around "today" in the clinic's
//! time zone, so there is always a past month and a future month to look at.

mod appointments;
mod clinics;
mod names;
mod patients;
mod procedures;
mod schedule;

pub use appointments::DemoAppointment;
pub(crate) use appointments::{OutcomeRates, Slot, appointment, fill_session};
pub use clinics::{
    DemoClinic, OrganizationAdmin, StaffMember, clinics, fixed_id, organization_admin,
};
pub use patients::{DemoPatient, dni, patients};
pub use procedures::{PROCEDURES, Procedure, pick_procedure};
pub use schedule::{DemoSchedule, schedule};

use chrono::NaiveDateTime;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use uuid::Uuid;

pub const PATIENTS_PER_CLINIC: usize = 100;
pub const APPOINTMENTS_PER_CLINIC: usize = 500;
/// Days before and after today that carry appointments.
pub const CALENDAR_DAYS: i64 = 30;
pub const TIMEZONE: &str = "Europe/Madrid";

/// Changing this changes every generated patient and appointment.
const SEED: u64 = 0x5075_6c73_6f00_0001;

pub struct ClinicData {
    pub patients: Vec<DemoPatient>,
    pub appointments: Vec<DemoAppointment>,
}

/// Generates one clinic's patients and appointments. `now` is the current local time in
/// `TIMEZONE`; appointments cover `CALENDAR_DAYS` either side of its date.
pub fn generate(clinic: &DemoClinic, clinic_index: u64, now: NaiveDateTime) -> ClinicData {
    let mut rng = StdRng::seed_from_u64(SEED ^ clinic_index);
    let patients = patients(&mut rng, PATIENTS_PER_CLINIC);
    let appointments = appointments::book(&mut rng, clinic, &patients, now);
    ClinicData {
        patients,
        appointments,
    }
}

pub fn random_uuid(rng: &mut StdRng) -> Uuid {
    uuid::Builder::from_random_bytes(rng.random()).into_uuid()
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::{Datelike, NaiveDate, NaiveTime, Weekday};
    use shared::text::search_key;
    use std::collections::HashSet;

    fn now() -> NaiveDateTime {
        NaiveDate::from_ymd_opt(2026, 11, 23)
            .unwrap()
            .and_hms_opt(11, 7, 0)
            .unwrap()
    }

    #[test]
    fn dni_letter_follows_the_modulo_23_table() {
        assert_eq!(dni(12_345_678), "12345678Z");
        assert_eq!(dni(1), "00000001R");
        assert_eq!(dni(0), "00000000T");
    }

    #[test]
    fn generation_is_deterministic() {
        let clinic = &clinics()[0];
        let (a, b) = (generate(clinic, 0, now()), generate(clinic, 0, now()));
        let ids = |d: &ClinicData| {
            d.appointments
                .iter()
                .map(|a| (a.id, a.starts_at))
                .collect::<Vec<_>>()
        };
        assert_eq!(ids(&a), ids(&b));
        assert_eq!(a.patients[0].search_name, b.patients[0].search_name);
    }

    #[test]
    fn patients_satisfy_the_schema() {
        let data = generate(&clinics()[0], 0, now());
        assert_eq!(data.patients.len(), PATIENTS_PER_CLINIC);
        for patient in &data.patients {
            assert_eq!(
                patient.search_name,
                search_key(&format!("{} {}", patient.first_name, patient.last_name))
            );
            if let Some(phone) = &patient.phone {
                // What the API would store for it: a valid number, in E.164.
                let stored = shared::contact::PhoneInput::parse("phone", phone)
                    .and_then(|input| input.in_country(shared::contact::Country::SPAIN));
                assert_eq!(
                    stored.map(|p| p.as_str().to_owned()).ok().as_ref(),
                    Some(phone)
                );
            }
            if let Some(email) = &patient.email {
                assert_eq!(email, &email.to_lowercase());
                assert!(email.is_ascii() && email.contains('@'), "{email}");
            }
        }
        let ids: HashSet<_> = data
            .patients
            .iter()
            .filter_map(|p| p.national_id.as_deref())
            .collect();
        assert_eq!(
            ids.len(),
            data.patients
                .iter()
                .filter(|p| p.national_id.is_some())
                .count()
        );
        assert!(
            data.patients
                .iter()
                .any(|p| p.search_name.contains("garcia"))
        );
    }

    #[test]
    fn appointments_fit_the_opening_hours_and_never_overlap() {
        let data = generate(&clinics()[1], 1, now());
        assert_eq!(data.appointments.len(), APPOINTMENTS_PER_CLINIC);
        let mut by_dentist: Vec<_> = data
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
        for a in &data.appointments {
            assert!(!matches!(
                a.starts_at.weekday(),
                Weekday::Sat | Weekday::Sun
            ));
            let (start, end) = (a.starts_at.time(), a.ends_at.time());
            let morning = start >= NaiveTime::from_hms_opt(9, 0, 0).unwrap()
                && end <= NaiveTime::from_hms_opt(14, 0, 0).unwrap();
            let afternoon = start >= NaiveTime::from_hms_opt(16, 0, 0).unwrap()
                && end <= NaiveTime::from_hms_opt(20, 0, 0).unwrap();
            assert!(morning || afternoon, "{start}-{end}");
            assert!(a.created_at <= now() && a.status_changed_at <= now().max(a.ends_at));
            let past = a.ends_at <= now();
            let allowed: &[&str] = if past {
                &["completed", "no_show", "cancelled"]
            } else {
                &["scheduled", "confirmed", "cancelled"]
            };
            assert!(allowed.contains(&a.status), "{} {}", a.status, a.starts_at);
        }
    }
}
