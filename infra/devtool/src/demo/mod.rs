//! The demo data itself, generated without touching the database: two clinics, their staff,
//! patients with realistic Spanish names and two months of appointments.
//!
//! Deterministic: clinic and user ids are fixed (tokens stay valid across reseeds) and
//! everything else comes from a seeded `StdRng`, so every machine gets the same demo on the
//! same day. Only the calendar moves: appointments are laid out around "today" in the clinic's
//! time zone, so there is always a past month and a future month to look at.

use chrono::{Datelike, Duration, NaiveDate, NaiveDateTime, NaiveTime, Weekday};
use rand::rngs::StdRng;
use rand::seq::IndexedRandom;
use rand::{Rng, SeedableRng};
use shared::auth::Role;
use shared::text::search_key;
use std::collections::HashSet;
use uuid::Uuid;

pub const PATIENTS_PER_CLINIC: usize = 100;
pub const APPOINTMENTS_PER_CLINIC: usize = 500;
/// Days before and after today that carry appointments.
pub const CALENDAR_DAYS: i64 = 30;
pub const TIMEZONE: &str = "Europe/Madrid";

/// Changing this changes every generated patient and appointment.
const SEED: u64 = 0x5075_6c73_6f00_0001;

pub struct DemoClinic {
    pub id: Uuid,
    pub slug: &'static str,
    pub name: &'static str,
    pub city: &'static str,
    pub staff: Vec<StaffMember>,
}

pub struct StaffMember {
    pub id: Uuid,
    pub full_name: &'static str,
    pub email: String,
    pub role: Role,
}

pub struct DemoPatient {
    pub id: Uuid,
    pub first_name: String,
    pub last_name: String,
    pub search_name: String,
    pub phone: Option<String>,
    pub email: Option<String>,
    pub birth_date: Option<NaiveDate>,
    pub national_id: Option<String>,
    pub notes: String,
    pub registered_days_ago: i32,
}

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

pub struct ClinicData {
    pub patients: Vec<DemoPatient>,
    pub appointments: Vec<DemoAppointment>,
}

pub struct Procedure {
    pub code: &'static str,
    pub name: &'static str,
    pub minutes: u32,
    /// Relative frequency in the agenda.
    weight: u32,
    pub reasons: &'static [&'static str],
}

/// What the demo books, and how often. Codes, names and durations mirror the global catalog
/// that the migrations seed (migrations/20261123000004_catalog_seed_and_platform_admin.sql);
/// `seed` refuses to run when one of these codes is missing there.
pub const PROCEDURES: &[Procedure] = &[
    Procedure {
        code: "REV",
        name: "Revisión general",
        minutes: 30,
        weight: 28,
        reasons: &[
            "Revisión",
            "Revisión anual",
            "Revisión y radiografía",
            "Molestias al masticar",
        ],
    },
    Procedure {
        code: "LIMP",
        name: "Limpieza dental (profilaxis)",
        minutes: 45,
        weight: 22,
        reasons: &["Limpieza", "Limpieza y fluoración", "Limpieza semestral"],
    },
    Procedure {
        code: "EMP",
        name: "Empaste (obturación)",
        minutes: 45,
        weight: 18,
        reasons: &[
            "Empaste",
            "Empaste pieza 36",
            "Empaste pieza 14",
            "Caries en molar",
        ],
    },
    Procedure {
        code: "ENDO",
        name: "Endodoncia",
        minutes: 60,
        weight: 8,
        reasons: &[
            "Endodoncia",
            "Endodoncia pieza 46",
            "Endodoncia - segunda sesión",
        ],
    },
    Procedure {
        code: "EXT",
        name: "Extracción",
        minutes: 45,
        weight: 8,
        reasons: &[
            "Extracción",
            "Extracción muela del juicio",
            "Extracción pieza 38",
        ],
    },
    Procedure {
        code: "ORTO",
        name: "Ortodoncia - control",
        minutes: 30,
        weight: 16,
        reasons: &[
            "Ortodoncia - control",
            "Ortodoncia - ajuste de brackets",
            "Ortodoncia - revisión de alineadores",
        ],
    },
];

/// Opening hours, Monday to Friday, local time: (opening hour, closing hour).
const SESSIONS: &[(u32, u32)] = &[(9, 14), (16, 20)];

/// Readable fixed ids: clinic n is `d3e00000-0000-4000-8000-000000000n00`, its staff `…n01`–`…n05`.
pub fn fixed_id(clinic: u128, member: u128) -> Uuid {
    Uuid::from_u128(0xd3e0_0000_0000_4000_8000_0000_0000_0000 | (clinic << 8) | member)
}

pub fn clinics() -> Vec<DemoClinic> {
    let clinic =
        |n: u128, slug, name, city, staff: [(&'static str, &'static str, Role); 5]| DemoClinic {
            id: fixed_id(n, 0),
            slug,
            name,
            city,
            staff: staff
                .into_iter()
                .zip(1..)
                .map(|((full_name, login, role), member)| StaffMember {
                    id: fixed_id(n, member),
                    full_name,
                    email: format!("{login}@{slug}.pulso.test"),
                    role,
                })
                .collect(),
        };
    vec![
        clinic(
            1,
            "sonrisa",
            "Clínica Dental Sonrisa",
            "Madrid",
            [
                ("Ana López Serrano", "ana.lopez", Role::Admin),
                ("Lucía Fernández Ruiz", "lucia.fernandez", Role::Dentist),
                ("Javier Moreno Gil", "javier.moreno", Role::Dentist),
                ("Carmen Ortega Vidal", "carmen.ortega", Role::Receptionist),
                ("Pablo Sánchez Navarro", "pablo.sanchez", Role::Receptionist),
            ],
        ),
        clinic(
            2,
            "alameda",
            "Centro Dental Alameda",
            "Sevilla",
            [
                (
                    "Miguel Ángel Romero Díaz",
                    "miguelangel.romero",
                    Role::Admin,
                ),
                ("Elena Castro Márquez", "elena.castro", Role::Dentist),
                ("Álvaro Núñez Peña", "alvaro.nunez", Role::Dentist),
                ("Rocío Jiménez Vega", "rocio.jimenez", Role::Receptionist),
                ("Manuel Muñoz Torres", "manuel.munoz", Role::Receptionist),
            ],
        ),
    ]
}

const FEMALE_NAMES: &[&str] = &[
    "María",
    "Lucía",
    "Carmen",
    "Ana",
    "Isabel",
    "Laura",
    "Marta",
    "Cristina",
    "Sofía",
    "Paula",
    "Elena",
    "Pilar",
    "Rocío",
    "Nuria",
    "Raquel",
    "Beatriz",
    "Inés",
    "Mónica",
    "Sara",
    "Ángela",
    "Alba",
    "Irene",
    "Noelia",
    "Begoña",
    "Dolores",
    "Concepción",
    "Remedios",
    "María José",
    "María del Carmen",
    "Ana Belén",
    "Montserrat",
    "Verónica",
    "Julia",
    "Aitana",
    "Martina",
];

const MALE_NAMES: &[&str] = &[
    "José",
    "Antonio",
    "Manuel",
    "Francisco",
    "Juan",
    "David",
    "Javier",
    "Daniel",
    "Carlos",
    "Jesús",
    "Alejandro",
    "Miguel",
    "Rafael",
    "Pablo",
    "Sergio",
    "Fernando",
    "Jorge",
    "Luis",
    "Alberto",
    "Álvaro",
    "Adrián",
    "Diego",
    "Raúl",
    "Iván",
    "Rubén",
    "Óscar",
    "Andrés",
    "Joaquín",
    "Ramón",
    "Íñigo",
    "Hugo",
    "Martín",
    "Mario",
    "José Luis",
    "Juan Carlos",
    "Miguel Ángel",
    "José Antonio",
];

/// Most frequent first, so García and Rodríguez come up as often as they do at a real desk.
const SURNAMES: &[&str] = &[
    "García",
    "Rodríguez",
    "González",
    "Fernández",
    "López",
    "Martínez",
    "Sánchez",
    "Pérez",
    "Gómez",
    "Martín",
    "Jiménez",
    "Ruiz",
    "Hernández",
    "Díaz",
    "Moreno",
    "Muñoz",
    "Álvarez",
    "Romero",
    "Alonso",
    "Gutiérrez",
    "Navarro",
    "Torres",
    "Domínguez",
    "Vázquez",
    "Ramos",
    "Gil",
    "Ramírez",
    "Serrano",
    "Blanco",
    "Molina",
    "Morales",
    "Suárez",
    "Ortega",
    "Delgado",
    "Castro",
    "Ortiz",
    "Rubio",
    "Marín",
    "Sanz",
    "Núñez",
    "Iglesias",
    "Medina",
    "Garrido",
    "Cortés",
    "Castillo",
    "Santos",
    "Lozano",
    "Cano",
    "Prieto",
    "Méndez",
    "Cruz",
    "Calvo",
    "Gallego",
    "Vidal",
    "León",
    "Márquez",
    "Herrera",
    "Peña",
    "Flores",
    "Cabrera",
    "Campos",
    "Vega",
    "Fuentes",
    "Carrasco",
    "Caballero",
    "Reyes",
    "Nieto",
    "Aguilar",
    "Pascual",
    "Ibáñez",
    "Durán",
    "Benítez",
    "Mora",
    "Arias",
    "Crespo",
    "Román",
    "Sáez",
    "Soler",
    "Bravo",
    "Gallardo",
];

const PATIENT_NOTES: &[&str] = &[
    "Alergia a la penicilina.",
    "Hipertensión controlada; avisar antes de anestesiar.",
    "Prefiere citas por la tarde.",
    "Portador de prótesis removible superior.",
    "Diabetes tipo 2.",
    "Ansiedad dental: explicar cada paso.",
    "Toma anticoagulantes (Sintrom); consultar antes de extracciones.",
    "Bruxismo; usa férula de descarga.",
    "Embarazada (2.º trimestre).",
    "Sensibilidad al frío en el cuadrante inferior izquierdo.",
];

const EMAIL_DOMAINS: &[&str] = &["correo.test", "mail.test", "ejemplo.test"];

/// The DNI control letter: the number modulo 23 indexes this table.
const DNI_LETTERS: &[u8; 23] = b"TRWAGMYFPDXBNJZSQVHLCKE";

pub fn dni(number: u32) -> String {
    let letter = DNI_LETTERS[(number % 23) as usize] as char;
    format!("{number:08}{letter}")
}

/// Generates one clinic's patients and appointments. `now` is the current local time in
/// `TIMEZONE`; appointments cover `CALENDAR_DAYS` either side of its date.
pub fn generate(clinic: &DemoClinic, clinic_index: u64, now: NaiveDateTime) -> ClinicData {
    let mut rng = StdRng::seed_from_u64(SEED ^ clinic_index);
    let patients = patients(&mut rng, PATIENTS_PER_CLINIC);
    let appointments = appointments(&mut rng, clinic, &patients, now);
    ClinicData {
        patients,
        appointments,
    }
}

pub fn random_uuid(rng: &mut StdRng) -> Uuid {
    uuid::Builder::from_random_bytes(rng.random()).into_uuid()
}

/// Picks with a bias towards the start of the list (its most common entries).
fn skewed<'a>(rng: &mut StdRng, list: &[&'a str]) -> &'a str {
    let position = rng.random::<f64>().powf(1.7) * list.len() as f64;
    list[(position as usize).min(list.len() - 1)]
}

/// `count` patients with realistic Spanish names, contacts and unique national ids.
pub fn patients(rng: &mut StdRng, count: usize) -> Vec<DemoPatient> {
    let mut national_ids = HashSet::new();
    let earliest_birth = NaiveDate::from_ymd_opt(1940, 1, 1).unwrap_or(NaiveDate::MIN);
    let birth_span_days = (NaiveDate::from_ymd_opt(2020, 12, 31).unwrap_or(NaiveDate::MIN)
        - earliest_birth)
        .num_days();

    (0..count)
        .map(|_| {
            let id = random_uuid(rng);
            let names = if rng.random_bool(0.55) {
                FEMALE_NAMES
            } else {
                MALE_NAMES
            };
            let first_name = skewed(rng, names).to_string();
            let first_surname = skewed(rng, SURNAMES);
            let second_surname = skewed(rng, SURNAMES);
            let last_name = format!("{first_surname} {second_surname}");
            let search_name = search_key(&format!("{first_name} {last_name}"));

            let phone = match rng.random_range(0..100) {
                0..55 => Some(format!("+346{:08}", rng.random_range(0..100_000_000u32))),
                55..90 => Some(format!("6{:08}", rng.random_range(0..100_000_000u32))),
                _ => None,
            };
            let email = rng.random_bool(0.4).then(|| {
                let login = format!(
                    "{}.{}",
                    search_key(&first_name).replace(' ', ""),
                    search_key(first_surname).replace(' ', "")
                );
                let suffix = if rng.random_bool(0.5) {
                    format!("{}", rng.random_range(10..99))
                } else {
                    String::new()
                };
                format!(
                    "{login}{suffix}@{}",
                    EMAIL_DOMAINS.choose(rng).unwrap_or(&"correo.test")
                )
            });
            let birth_date = rng
                .random_bool(0.92)
                .then(|| earliest_birth + Duration::days(rng.random_range(0..=birth_span_days)));
            let national_id = rng.random_bool(0.6).then(|| {
                loop {
                    let candidate = dni(rng.random_range(1_000_000..99_999_999));
                    if national_ids.insert(candidate.clone()) {
                        break candidate;
                    }
                }
            });
            let notes = if rng.random_bool(0.12) {
                PATIENT_NOTES
                    .choose(rng)
                    .copied()
                    .unwrap_or_default()
                    .to_string()
            } else {
                String::new()
            };
            DemoPatient {
                id,
                first_name,
                last_name,
                search_name,
                phone,
                email,
                birth_date,
                national_id,
                notes,
                registered_days_ago: rng.random_range(90..1500),
            }
        })
        .collect()
}

/// A bookable slot before patients and statuses are given to it.
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
    let (status, created_at, status_changed_at) = if ends_at <= now {
        let created_at = starts_at
            - Duration::days(rng.random_range(rates.booked_days_before.clone()))
            - minutes(rng.random_range(0..600));
        match rng.random_range(0..100) {
            percent if percent < rates.no_show_percent => {
                ("no_show", created_at, starts_at + minutes(20))
            }
            percent if percent < 15 => {
                let cancelled_at =
                    (starts_at - minutes(rng.random_range(60..4_000))).max(created_at + minutes(5));
                ("cancelled", created_at, cancelled_at)
            }
            _ => ("completed", created_at, ends_at),
        }
    } else {
        let created_at = now
            - Duration::days(rng.random_range(rates.booked_days_ago.clone()))
            - minutes(rng.random_range(5..600));
        let changed_at = between(rng, created_at, now.min(starts_at));
        if starts_at <= now {
            ("confirmed", created_at, changed_at)
        } else if rng.random_bool(rates.future_cancelled) {
            ("cancelled", created_at, changed_at)
        } else if rng.random_bool(if (starts_at.date() - now.date()).num_days() <= 2 {
            0.75
        } else {
            0.3
        }) {
            ("confirmed", created_at, changed_at)
        } else {
            ("scheduled", created_at, created_at)
        }
    };
    DemoAppointment {
        id: random_uuid(rng),
        patient_id,
        dentist_id: slot.dentist_id,
        starts_at,
        ends_at,
        status,
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
        created_at,
        status_changed_at,
    }
}

fn appointments(
    rng: &mut StdRng,
    clinic: &DemoClinic,
    patients: &[DemoPatient],
    now: NaiveDateTime,
) -> Vec<DemoAppointment> {
    let dentists: Vec<Uuid> = clinic
        .staff
        .iter()
        .filter(|s| s.role == Role::Dentist)
        .map(|s| s.id)
        .collect();
    let receptionists: Vec<Uuid> = clinic
        .staff
        .iter()
        .filter(|s| s.role == Role::Receptionist)
        .map(|s| s.id)
        .collect();
    let today = now.date();

    // Every dentist's days filled back to back; each dentist's slots follow one another, so
    // no two of them overlap, and a random subset of them leaves realistic gaps.
    let mut slots = Vec::new();
    for offset in -CALENDAR_DAYS..=CALENDAR_DAYS {
        let day = today + Duration::days(offset);
        if matches!(day.weekday(), Weekday::Sat | Weekday::Sun) {
            continue;
        }
        for &dentist_id in &dentists {
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
    let mut chosen: Vec<usize> =
        rand::seq::index::sample(rng, slots.len(), APPOINTMENTS_PER_CLINIC.min(slots.len()))
            .into_vec();
    chosen.sort_unstable();

    // A patient comes at most once a day.
    let mut booked_days: HashSet<(usize, NaiveDate)> = HashSet::new();
    chosen
        .into_iter()
        .map(|index| {
            let slot = &slots[index];
            let starts_at = slot.starts_at;
            let patient = (0..50)
                .map(|_| rng.random_range(0..patients.len()))
                .find(|&p| booked_days.insert((p, starts_at.date())))
                .unwrap_or_else(|| rng.random_range(0..patients.len()));

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

/// A procedure, as often as the agenda books it.
pub fn pick_procedure(rng: &mut StdRng) -> &'static Procedure {
    PROCEDURES
        .choose_weighted(rng, |p| p.weight)
        .unwrap_or(&PROCEDURES[0])
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

#[cfg(test)]
mod tests {
    use super::*;

    fn now() -> NaiveDateTime {
        at(NaiveDate::from_ymd_opt(2026, 11, 23).unwrap(), 11, 7)
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
                let digits = phone.strip_prefix('+').unwrap_or(phone);
                assert!(
                    (6..=15).contains(&digits.len()) && digits.bytes().all(|b| b.is_ascii_digit()),
                    "{phone}"
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
