//! `seed-large`: one big clinic for benchmarks, `grande` (Clínica Dental Grande, Madrid): by
//! default 20,000 patients and 200,000 appointments from a year ago to a month ahead.
//!
//! The same generator serves `pulso-devtool seed-large` (the local database) and the
//! benchmarks and tests (`pulso-tests`, on their own test database): `seed_large` creates the
//! clinic, `populate` fills a clinic that exists already. Like the demo it is deterministic
//! (fixed clinic and staff ids, a seeded RNG; only the calendar follows today) and goes in
//! through row-level security, in one tenant transaction, so a failure leaves nothing behind.
//!
//! The agenda is realistic enough for the dashboard to mean something: as many dentists as the
//! appointments need (about 50 for 200,000), working Monday to Friday 8:00–14:00 and
//! 15:00–21:00 in back-to-back visits of the demo's procedures (codes from the global catalog),
//! of which 80 % are booked. A dentist's slots never overlap, so the `appointments_no_overlap`
//! constraint holds. Past visits are mostly completed, some no-shows and cancellations; future
//! ones are scheduled, confirmed or cancelled. Rows go in with batched UNNEST inserts, sorted by
//! start time (as a clinic's table grows), then the tables are vacuumed and analysed so the
//! planner and the visibility map look like a table autovacuum has looked after.

use crate::demo::{self, DemoAppointment, OutcomeRates, PROCEDURES, Slot, TIMEZONE};
use crate::{rls, seed};
use anyhow::{Context, bail};
use chrono::{Datelike, Duration, NaiveDate, NaiveDateTime, NaiveTime, Weekday};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use shared::auth::Role;
use shared::ids::{ClinicId, PatientId, UserId};
use sqlx::PgPool;
use std::collections::BTreeMap;
use std::time::Instant;
use uuid::Uuid;

pub const SLUG: &str = "grande";
pub const NAME: &str = "Clínica Dental Grande";
pub const DEFAULT_PATIENTS: usize = 20_000;
pub const DEFAULT_APPOINTMENTS: usize = 200_000;

/// The calendar, in days around today.
const DAYS_BACK: i64 = 365;
const DAYS_AHEAD: i64 = 31;
/// Opening hours, Monday to Friday: (opening hour, closing hour).
const SESSIONS: &[(u32, u32)] = &[(8, 14), (15, 21)];
/// The share of a dentist's slots that gets booked.
const FILL: f64 = 0.8;
const RECEPTIONISTS: usize = 4;
/// Staff ids are `staff_id(clinic, member)` with member in 1..=255: the admin, the
/// receptionists, then the dentists.
const MAX_DENTISTS: usize = 255 - 1 - RECEPTIONISTS;
const CLINIC_NUMBER: u128 = 0x10;
/// Rows per INSERT: large enough to amortise the round trip, small enough for modest memory.
const PATIENT_BATCH: usize = 5_000;
const APPOINTMENT_BATCH: usize = 10_000;
/// Changing this changes every generated patient and appointment.
const SEED: u64 = 0x5075_6c73_6f00_0010;

/// The large clinic's fixed id (`d3e00000-0000-4000-8000-000000001000`).
pub fn clinic_id() -> ClinicId {
    ClinicId(demo::fixed_id(CLINIC_NUMBER, 0))
}

#[derive(Clone, Debug)]
pub struct LargeClinicOptions {
    pub patients: usize,
    pub appointments: usize,
    /// Delete the clinic and build it again when it exists; otherwise it is left as it is.
    pub reset: bool,
}

impl Default for LargeClinicOptions {
    fn default() -> Self {
        Self {
            patients: DEFAULT_PATIENTS,
            appointments: DEFAULT_APPOINTMENTS,
            reset: false,
        }
    }
}

/// The clinic as it is after `seed_large`.
#[derive(Clone, Debug)]
pub struct LargeClinic {
    pub id: ClinicId,
    /// The clinic's first admin (the large clinic always has one).
    pub admin: Option<UserId>,
    pub dentists: Vec<UserId>,
    pub receptionists: Vec<UserId>,
    /// Every patient of the clinic, oldest registration first (for benchmark workloads).
    pub patient_ids: Vec<PatientId>,
    pub patients: i64,
    /// Appointments by status.
    pub appointments: BTreeMap<String, i64>,
    /// `false` when the clinic was already there and was left untouched.
    pub created: bool,
    /// Generation and inserts; `vacuum_seconds` is the VACUUM ANALYZE after them.
    pub insert_seconds: f64,
    pub vacuum_seconds: f64,
}

impl LargeClinic {
    pub fn appointment_count(&self) -> i64 {
        self.appointments.values().sum()
    }
}

/// Creates the large clinic unless it exists (or rebuilds it with `reset`), through
/// `owner`, a pool connected as the tables' owner (`DATABASE_ADMIN_URL`, or a test's owner pool).
pub async fn seed_large(
    owner: &PgPool,
    options: &LargeClinicOptions,
) -> anyhow::Result<LargeClinic> {
    check(owner, options).await?;
    let clinic = clinic_id();
    if clinic_exists(owner, clinic).await? {
        if !options.reset {
            return describe(owner, clinic, false, 0.0, 0.0).await;
        }
        seed::reset_clinics(owner, &[clinic.as_uuid()])
            .await
            .context("deleting the large clinic before rebuilding it")?;
    }
    build(owner, clinic, true, options).await
}

/// Fills an existing clinic (a test's, say) with the same kind of data: receptionists and
/// dentists of its own, patients and a year of appointments, in the clinic's time zone. Its
/// existing staff and rows are left as they are. `options.reset` is ignored.
pub async fn populate(
    owner: &PgPool,
    clinic: ClinicId,
    options: &LargeClinicOptions,
) -> anyhow::Result<LargeClinic> {
    check(owner, options).await?;
    if !clinic_exists(owner, clinic).await? {
        bail!("clinic {clinic} does not exist");
    }
    build(owner, clinic, false, options).await
}

async fn check(owner: &PgPool, options: &LargeClinicOptions) -> anyhow::Result<()> {
    rls::require_schema(owner).await?;
    if options.patients == 0 {
        bail!("--patients must be at least 1");
    }
    require_procedures(owner).await
}

/// Generates and inserts everything in one tenant transaction (creating the clinic itself when
/// `new`), then vacuums: the visibility map and statistics autovacuum would give a real table.
async fn build(
    owner: &PgPool,
    clinic: ClinicId,
    new: bool,
    options: &LargeClinicOptions,
) -> anyhow::Result<LargeClinic> {
    let started = Instant::now();
    let mut tx = shared::db::begin_tenant(owner, clinic)
        .await
        .context("starting the tenant transaction")?;
    if new {
        // A new clinic is visible, and insertable, only while app.clinic_id is its own id.
        sqlx::query(
            "INSERT INTO clinics (id, slug, name, timezone, created_at)
             VALUES ($1, $2, $3, $4, now() - interval '1600 days')",
        )
        .bind(clinic)
        .bind(SLUG)
        .bind(NAME)
        .bind(TIMEZONE)
        .execute(&mut *tx)
        .await
        .context(
            "inserting the large clinic (if the slug `grande` is taken by another clinic, \
             rename or archive that one)",
        )?;
    }
    let (slug, timezone, now, has_admin): (String, String, NaiveDateTime, bool) = sqlx::query_as(
        "SELECT slug, timezone, (now() AT TIME ZONE timezone)::timestamp,
                EXISTS (SELECT 1 FROM users WHERE clinic_id = $1 AND role = 'admin')
           FROM clinics WHERE id = $1",
    )
    .bind(clinic)
    .fetch_one(&mut *tx)
    .await
    .context("reading the clinic's time zone")?;
    let plan = generate(options, clinic, &slug, now, !has_admin)?;
    insert(&mut tx, clinic, &timezone, &plan).await?;
    tx.commit().await.context("committing the large clinic")?;
    let insert_seconds = started.elapsed().as_secs_f64();

    // VACUUM cannot run in a transaction: a plain statement on the pool.
    let vacuum_started = Instant::now();
    sqlx::query("VACUUM (ANALYZE) appointments, patients, users")
        .execute(owner)
        .await
        .context("vacuuming after the inserts")?;
    let vacuum_seconds = vacuum_started.elapsed().as_secs_f64();
    describe(owner, clinic, true, insert_seconds, vacuum_seconds).await
}

async fn clinic_exists(owner: &PgPool, clinic: ClinicId) -> anyhow::Result<bool> {
    let mut tx = shared::db::begin_tenant(owner, clinic).await?;
    let exists = sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM clinics WHERE id = $1)")
        .bind(clinic)
        .fetch_one(&mut *tx)
        .await
        .context("looking for the large clinic")?;
    tx.rollback().await.ok();
    Ok(exists)
}

/// The procedures the agenda books come from the global catalog the migrations seed.
async fn require_procedures(owner: &PgPool) -> anyhow::Result<()> {
    let codes: Vec<&str> = PROCEDURES.iter().map(|p| p.code).collect();
    let present: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM catalog_items
          WHERE clinic_id IS NULL AND kind = 'procedure' AND code = ANY($1)",
    )
    .bind(&codes)
    .fetch_one(owner)
    .await
    .context("reading the global catalog")?;
    if present < codes.len() as i64 {
        bail!(
            "the global catalog lacks some of the procedures {}: run `pulso-devtool migrate` first",
            codes.join(", ")
        );
    }
    Ok(())
}

struct StaffMember {
    id: Uuid,
    email: String,
    full_name: String,
    role: Role,
}

struct Plan {
    staff: Vec<StaffMember>,
    patients: Vec<demo::DemoPatient>,
    appointments: Vec<DemoAppointment>,
}

/// Staff member `member` (1..=255) of `clinic`: for the large clinic, `fixed_id(CLINIC_NUMBER,
/// member)`; for another clinic, ids of its own (user ids are unique across clinics).
fn staff_id(clinic: ClinicId, member: usize) -> Uuid {
    Uuid::from_u128(clinic.as_uuid().as_u128() ^ member as u128)
}

fn generate(
    options: &LargeClinicOptions,
    clinic: ClinicId,
    slug: &str,
    now: NaiveDateTime,
    with_admin: bool,
) -> anyhow::Result<Plan> {
    // Seeded by the clinic too: two clinics populated in one database get distinct row ids.
    let mut rng = StdRng::seed_from_u64(SEED ^ clinic.as_uuid().as_u64_pair().1);
    let today = now.date();

    // Dentists are added until 80 % of their slots hold the appointments asked for.
    let mut slots = Vec::new();
    let mut dentist_ids = Vec::new();
    while (slots.len() as f64 * FILL) < options.appointments as f64 || dentist_ids.len() < 2 {
        if dentist_ids.len() == MAX_DENTISTS {
            bail!(
                "{} appointments need more than {MAX_DENTISTS} dentists over {} days; ask for fewer",
                options.appointments,
                DAYS_BACK + DAYS_AHEAD
            );
        }
        let dentist_id = staff_id(clinic, 2 + RECEPTIONISTS + dentist_ids.len());
        dentist_ids.push(dentist_id);
        working_slots(&mut rng, dentist_id, today, &mut slots);
    }

    // Staff names: the demo's name generator, so they read like the rest of the data.
    let names = demo::patients(&mut rng, 1 + RECEPTIONISTS + dentist_ids.len());
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
    let receptionists: Vec<Uuid> = staff
        .iter()
        .filter(|s| s.role == Role::Receptionist)
        .map(|s| s.id)
        .collect();

    let mut patients = demo::patients(&mut rng, options.patients);
    for patient in &mut patients {
        // Registered over three years, so that some are new this week and this month.
        patient.registered_days_ago = rng.random_range(0..1_100);
    }

    let mut chosen =
        rand::seq::index::sample(&mut rng, slots.len(), options.appointments.min(slots.len()))
            .into_vec();
    chosen.sort_unstable_by_key(|index| (slots[*index].starts_at, *index));
    let appointments = chosen
        .into_iter()
        .map(|index| {
            let slot = &slots[index];
            let patient = &patients[rng.random_range(0..patients.len())];
            demo::appointment(
                &mut rng,
                slot,
                patient.id,
                &receptionists,
                now,
                &LARGE_CLINIC_OUTCOMES,
            )
        })
        .collect();

    Ok(Plan {
        staff,
        patients,
        appointments,
    })
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

async fn insert(
    tx: &mut shared::db::TenantTx,
    clinic: ClinicId,
    timezone: &str,
    plan: &Plan,
) -> anyhow::Result<()> {
    sqlx::query(
        "INSERT INTO users (id, clinic_id, email, full_name, role, created_at)
         SELECT id, $1, email, full_name, role::user_role, now() - interval '1600 days'
           FROM UNNEST($2::uuid[], $3::text[], $4::text[], $5::text[]) AS u(id, email, full_name, role)",
    )
    .bind(clinic)
    .bind(plan.staff.iter().map(|s| s.id).collect::<Vec<_>>())
    .bind(plan.staff.iter().map(|s| s.email.as_str()).collect::<Vec<_>>())
    .bind(plan.staff.iter().map(|s| s.full_name.as_str()).collect::<Vec<_>>())
    .bind(plan.staff.iter().map(|s| s.role.as_str()).collect::<Vec<_>>())
    .execute(&mut **tx)
    .await
    .context("inserting the staff")?;
    for batch in plan.patients.chunks(PATIENT_BATCH) {
        seed::insert_patients(tx, clinic.as_uuid(), batch).await?;
    }
    for batch in plan.appointments.chunks(APPOINTMENT_BATCH) {
        seed::insert_appointments(tx, clinic.as_uuid(), timezone, batch).await?;
    }
    Ok(())
}

/// Reads the clinic back: its staff and how many rows it holds.
async fn describe(
    owner: &PgPool,
    clinic: ClinicId,
    created: bool,
    insert_seconds: f64,
    vacuum_seconds: f64,
) -> anyhow::Result<LargeClinic> {
    let mut tx = shared::db::begin_tenant(owner, clinic).await?;
    let staff: Vec<(UserId, Role)> =
        sqlx::query_as("SELECT id, role FROM users WHERE clinic_id = $1 ORDER BY email")
            .bind(clinic)
            .fetch_all(&mut *tx)
            .await
            .context("reading the large clinic's staff")?;
    let patient_ids: Vec<PatientId> =
        sqlx::query_scalar("SELECT id FROM patients WHERE clinic_id = $1 ORDER BY created_at, id")
            .bind(clinic)
            .fetch_all(&mut *tx)
            .await
            .context("reading the large clinic's patients")?;
    let appointments: Vec<(String, i64)> = sqlx::query_as(
        "SELECT status::text, count(*) FROM appointments WHERE clinic_id = $1 GROUP BY 1",
    )
    .bind(clinic)
    .fetch_all(&mut *tx)
    .await
    .context("counting the large clinic's appointments")?;
    tx.rollback().await.ok();

    let of_role = |role: Role| -> Vec<UserId> {
        staff
            .iter()
            .filter(|(_, r)| *r == role)
            .map(|(id, _)| *id)
            .collect()
    };
    let admin = of_role(Role::Admin).first().copied();
    Ok(LargeClinic {
        id: clinic,
        admin,
        dentists: of_role(Role::Dentist),
        receptionists: of_role(Role::Receptionist),
        patients: patient_ids.len() as i64,
        patient_ids,
        appointments: appointments.into_iter().collect(),
        created,
        insert_seconds,
        vacuum_seconds,
    })
}

fn at(day: NaiveDate, hour: u32) -> NaiveDateTime {
    day.and_time(NaiveTime::from_hms_opt(hour, 0, 0).unwrap_or(NaiveTime::MIN))
}

#[cfg(test)]
mod tests {
    use super::*;

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
