//! The demo's patients: realistic Spanish names, contacts and unique national ids (DNI).

use super::names::{FEMALE_NAMES, MALE_NAMES, SURNAMES};
use super::random_uuid;
use chrono::{Duration, NaiveDate};
use rand::Rng;
use rand::rngs::StdRng;
use rand::seq::IndexedRandom;
use shared::text::search_key;
use std::collections::HashSet;
use uuid::Uuid;

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

/// Picks with a bias towards the start of the list (its most common entries).
fn skewed<'a>(rng: &mut StdRng, list: &[&'a str]) -> &'a str {
    let position = rng.random::<f64>().powf(1.7) * list.len() as f64;
    list[(position as usize).min(list.len() - 1)]
}

/// `count` patients with realistic Spanish names, contacts and unique national ids.
pub fn patients(rng: &mut StdRng, count: usize) -> Vec<DemoPatient> {
    let mut national_ids = HashSet::new();
    (0..count)
        .map(|_| patient(rng, &mut national_ids))
        .collect()
}

/// One patient; `national_ids` holds the DNIs given so far, so that none repeats. Each step
/// draws from `rng` in turn: reordering them changes every patient after the first.
fn patient(rng: &mut StdRng, national_ids: &mut HashSet<String>) -> DemoPatient {
    let id = random_uuid(rng);
    let name = name(rng);
    let phone = phone(rng);
    let email = rng
        .random_bool(0.4)
        .then(|| email(rng, &name.first, name.first_surname));
    let birth_date = rng.random_bool(0.92).then(|| birth_date(rng));
    let national_id = rng.random_bool(0.6).then(|| unique_dni(rng, national_ids));
    let notes = notes(rng);
    DemoPatient {
        id,
        search_name: search_key(&format!("{} {}", name.first, name.last)),
        first_name: name.first,
        last_name: name.last,
        phone,
        email,
        birth_date,
        national_id,
        notes,
        registered_days_ago: rng.random_range(90..1500),
    }
}

struct Name {
    first: String,
    first_surname: &'static str,
    /// Both surnames, as Spanish names have.
    last: String,
}

/// A first name and two surnames, the common ones most often.
fn name(rng: &mut StdRng) -> Name {
    let names = if rng.random_bool(0.55) {
        FEMALE_NAMES
    } else {
        MALE_NAMES
    };
    let first = skewed(rng, names).to_string();
    let first_surname = skewed(rng, SURNAMES);
    let second_surname = skewed(rng, SURNAMES);
    Name {
        first,
        first_surname,
        last: format!("{first_surname} {second_surname}"),
    }
}

/// A Spanish mobile number in E.164, as the API stores what reception types, or none for one
/// patient in ten.
fn phone(rng: &mut StdRng) -> Option<String> {
    match rng.random_range(0..100) {
        0..90 => Some(format!("+346{:08}", rng.random_range(0..100_000_000u32))),
        _ => None,
    }
}

/// `name.surname` without accents or spaces, sometimes with two digits, at a test domain.
fn email(rng: &mut StdRng, first_name: &str, first_surname: &str) -> String {
    let login = format!(
        "{}.{}",
        search_key(first_name).replace(' ', ""),
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
}

/// A day from 1940 to 2020.
fn birth_date(rng: &mut StdRng) -> NaiveDate {
    let earliest = NaiveDate::from_ymd_opt(1940, 1, 1).unwrap_or(NaiveDate::MIN);
    let span_days =
        (NaiveDate::from_ymd_opt(2020, 12, 31).unwrap_or(NaiveDate::MIN) - earliest).num_days();
    earliest + Duration::days(rng.random_range(0..=span_days))
}

/// A DNI that is not in `given` yet, which it joins.
fn unique_dni(rng: &mut StdRng, given: &mut HashSet<String>) -> String {
    loop {
        let candidate = dni(rng.random_range(1_000_000..99_999_999));
        if given.insert(candidate.clone()) {
            break candidate;
        }
    }
}

/// A clinical note for about one patient in eight; the rest have none.
fn notes(rng: &mut StdRng) -> String {
    if rng.random_bool(0.12) {
        PATIENT_NOTES
            .choose(rng)
            .copied()
            .unwrap_or_default()
            .to_string()
    } else {
        String::new()
    }
}
