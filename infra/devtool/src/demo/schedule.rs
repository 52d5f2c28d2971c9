//! The demo's agenda capacity: each dentist's weekly hours (the sessions the generated
//! appointments fill, on the days they work at the clinic), two or three chairs per clinic,
//! Spain's national public holidays as clinic closures (the agenda books none on them), and a
//! holiday and a training day ahead for two of the dentists.

use super::clinics::DemoClinic;
use chrono::{Datelike, Duration, NaiveDate};
use shared::auth::Role;
use std::collections::BTreeSet;
use uuid::Uuid;

/// Opening hours on the days a dentist works, local time: (opening hour, closing hour). The
/// generated appointments fill them.
pub(super) const SESSIONS: &[(u32, u32)] = &[(9, 14), (16, 20)];

/// Spain's national holidays on a fixed date (the Easter ones move; the demo leaves them out).
const NATIONAL_HOLIDAYS: &[(u32, u32, &str)] = &[
    (1, 1, "Año Nuevo"),
    (1, 6, "Epifanía del Señor"),
    (5, 1, "Fiesta del Trabajo"),
    (8, 15, "Asunción de la Virgen"),
    (10, 12, "Fiesta Nacional de España"),
    (11, 1, "Todos los Santos"),
    (12, 6, "Día de la Constitución"),
    (12, 8, "Inmaculada Concepción"),
    (12, 25, "Navidad"),
];

/// One weekly working interval: dentist, ISO weekday, minutes after midnight.
pub struct DemoHours {
    pub dentist_id: Uuid,
    pub weekday: i16,
    pub start_minute: i16,
    pub end_minute: i16,
}

/// Whole days away: a dentist's (`dentist_id`) or the clinic's.
pub struct DemoTimeOff {
    pub dentist_id: Option<Uuid>,
    pub kind: &'static str,
    pub first_day: NaiveDate,
    pub last_day: NaiveDate,
    pub label: String,
}

pub struct DemoSchedule {
    pub hours: Vec<DemoHours>,
    pub chairs: Vec<String>,
    pub time_off: Vec<DemoTimeOff>,
}

/// The national holidays from `from` to `to`, with their names.
pub fn public_holidays(from: NaiveDate, to: NaiveDate) -> Vec<(NaiveDate, &'static str)> {
    let mut days = Vec::new();
    for year in from.year()..=to.year() {
        for &(month, day, name) in NATIONAL_HOLIDAYS {
            if let Some(date) = NaiveDate::from_ymd_opt(year, month, day)
                && (from..=to).contains(&date)
            {
                days.push((date, name));
            }
        }
    }
    days.sort();
    days
}

/// The days the demo agenda books nothing on: the public holidays around `today`.
pub fn closed_days(today: NaiveDate) -> BTreeSet<NaiveDate> {
    let (from, to) = holiday_range(today);
    public_holidays(from, to)
        .into_iter()
        .map(|(date, _)| date)
        .collect()
}

fn holiday_range(today: NaiveDate) -> (NaiveDate, NaiveDate) {
    (
        today - Duration::days(super::CALENDAR_DAYS),
        today + Duration::days(365),
    )
}

/// `clinic`'s schedule: `index` picks whose holiday and training it is.
pub fn schedule(clinic: &DemoClinic, index: usize, today: NaiveDate) -> DemoSchedule {
    let mut hours = Vec::new();
    for dentist in clinic.staff_with(Role::Dentist) {
        for weekday in dentist.weekdays {
            for &(opens, closes) in SESSIONS {
                hours.push(DemoHours {
                    dentist_id: dentist.id,
                    weekday: weekday.number_from_monday() as i16,
                    start_minute: (opens * 60) as i16,
                    end_minute: (closes * 60) as i16,
                });
            }
        }
    }
    let chairs = (1..=2 + (index + 1) % 2)
        .map(|n| format!("Gabinete {n}"))
        .collect();
    let (from, to) = holiday_range(today);
    let mut time_off: Vec<DemoTimeOff> = public_holidays(from, to)
        .into_iter()
        .map(|(date, name)| DemoTimeOff {
            dentist_id: None,
            kind: "public_holiday",
            first_day: date,
            last_day: date,
            label: name.to_owned(),
        })
        .collect();
    // Beyond the generated appointments (`CALENDAR_DAYS` ahead): nothing booked is in the way.
    let dentists: Vec<Uuid> = clinic.staff_ids(Role::Dentist);
    if let Some(&last) = dentists.last() {
        let start = today + Duration::days(45);
        time_off.push(DemoTimeOff {
            dentist_id: Some(last),
            kind: "holiday",
            first_day: start,
            last_day: start + Duration::days(6),
            label: "Vacaciones".into(),
        });
    }
    if let Some(&first) = dentists.first() {
        let day = today + Duration::days(38 + index as i64);
        time_off.push(DemoTimeOff {
            dentist_id: Some(first),
            kind: "training",
            first_day: day,
            last_day: day,
            label: "Curso de implantología".into(),
        });
    }
    DemoSchedule {
        hours,
        chairs,
        time_off,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn holidays_fall_in_the_range_asked_for() {
        let from = NaiveDate::from_ymd_opt(2026, 11, 6).unwrap();
        let to = NaiveDate::from_ymd_opt(2027, 12, 6).unwrap();
        let days = public_holidays(from, to);
        assert_eq!(days[0].1, "Día de la Constitución");
        assert_eq!(
            days.last().unwrap().0,
            NaiveDate::from_ymd_opt(2027, 12, 6).unwrap()
        );
        assert!(days.iter().all(|(d, _)| (from..=to).contains(d)));
    }
}
