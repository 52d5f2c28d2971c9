//! `seed-large`: one big clinic for benchmarks, `grande` (Clínica Dental Grande, Madrid): by
//! default 20,000 patients and 200,000 appointments from a year ago to a month ahead.
//!
//! The same generator serves `pulso-devtool seed-large` (the local database) and the
//! benchmarks and tests (`pulso-tests`, on their own test database): `seed_large` creates the
//! clinic, `populate` fills a clinic that exists already. Like the demo it is deterministic
//! (fixed clinic and staff ids, a seeded RNG; only the calendar follows today) and goes in
//! through row-level security, in one tenant transaction, so a failure leaves nothing behind.
//!
//! What goes in (the staff, the patients, the agenda and how realistic it is) comes from `plan`.
//! Rows go in with batched UNNEST inserts in the plan's order, then the tables are vacuumed and
//! analysed so the planner and the visibility map look like a table autovacuum has looked after.

mod plan;

use crate::demo::{self, PROCEDURES, TIMEZONE};
use crate::{rls, seed};
use anyhow::{Context, bail};
use chrono::NaiveDateTime;
use plan::{Plan, generate};
use shared::auth::Role;
use shared::ids::{ClinicId, PatientId, UserId};
use sqlx::PgPool;
use std::collections::{BTreeMap, HashSet};
use std::time::Instant;

pub const SLUG: &str = "grande";
pub const NAME: &str = "Clínica Dental Grande";
pub const DEFAULT_PATIENTS: usize = 20_000;
pub const DEFAULT_APPOINTMENTS: usize = 200_000;

const CLINIC_NUMBER: u128 = 0x10;
/// Rows per INSERT: large enough to amortise the round trip, small enough for modest memory.
const PATIENT_BATCH: usize = 5_000;
const APPOINTMENT_BATCH: usize = 10_000;

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
    check_options(options)?;
    check_database(owner).await
}

fn check_options(options: &LargeClinicOptions) -> anyhow::Result<()> {
    if options.patients == 0 {
        bail!("--patients must be at least 1");
    }
    Ok(())
}

/// The schema and the global catalog the generator needs.
async fn check_database(owner: &PgPool) -> anyhow::Result<()> {
    rls::require_schema(owner).await?;
    require_procedures(owner).await
}

/// Fills the clinic (`fill`), then vacuums: the visibility map and statistics autovacuum would
/// give a real table.
async fn build(
    owner: &PgPool,
    clinic: ClinicId,
    new: bool,
    options: &LargeClinicOptions,
) -> anyhow::Result<LargeClinic> {
    let started = Instant::now();
    fill(owner, clinic, new, options).await?;
    let insert_seconds = started.elapsed().as_secs_f64();
    let vacuum_seconds = vacuum(owner).await?;
    describe(owner, clinic, true, insert_seconds, vacuum_seconds).await
}

/// Fills each existing clinic of `clinics` as [`populate`] does, one transaction each, then
/// vacuums once: a VACUUM reads whole tables, so one per clinic would dominate. The time the
/// inserts took and the VACUUM's, in seconds.
pub async fn populate_many(
    owner: &PgPool,
    clinics: &[(ClinicId, LargeClinicOptions)],
) -> anyhow::Result<(f64, f64)> {
    for (_, options) in clinics {
        check_options(options)?;
    }
    check_database(owner).await?;
    let started = Instant::now();
    for (clinic, options) in clinics {
        fill(owner, *clinic, false, options).await?;
    }
    let insert_seconds = started.elapsed().as_secs_f64();
    Ok((insert_seconds, vacuum(owner).await?))
}

/// Generates and inserts everything in one tenant transaction, creating the clinic itself when
/// `new`.
async fn fill(
    owner: &PgPool,
    clinic: ClinicId,
    new: bool,
    options: &LargeClinicOptions,
) -> anyhow::Result<()> {
    // A platform transaction, so a new clinic's organization can be created in it too.
    let mut tx = shared::db::begin_platform(owner, clinic)
        .await
        .context("starting the tenant transaction")?;
    if new {
        let organization = seed::insert_organization(&mut tx, SLUG, NAME).await?;
        // A new clinic is visible, and insertable, only while app.clinic_id is its own id.
        sqlx::query(
            "INSERT INTO clinics (id, organization_id, slug, name, timezone, created_at)
             VALUES ($1, $2, $3, $4, $5, now() - interval '1600 days')",
        )
        .bind(clinic)
        .bind(organization)
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
                EXISTS (SELECT 1 FROM memberships WHERE clinic_id = $1 AND role = 'admin')
           FROM clinics WHERE id = $1",
    )
    .bind(clinic)
    .fetch_one(&mut *tx)
    .await
    .context("reading the clinic's time zone")?;
    let plan = generate(options, clinic, &slug, now, !has_admin)?;
    insert(&mut tx, clinic, &timezone, &plan).await?;
    tx.commit().await.context("committing the clinic's rows")?;
    Ok(())
}

/// VACUUM (ANALYZE) of the tables the generator fills; its time in seconds.
async fn vacuum(owner: &PgPool) -> anyhow::Result<f64> {
    // VACUUM cannot run in a transaction: a plain statement on the pool.
    let started = Instant::now();
    sqlx::query("VACUUM (ANALYZE) appointments, patients, users, memberships, working_hours")
        .execute(owner)
        .await
        .context("vacuuming after the inserts")?;
    Ok(started.elapsed().as_secs_f64())
}

/// Whether `clinic` exists (looked for as itself, under row-level security).
pub(crate) async fn clinic_exists(owner: &PgPool, clinic: ClinicId) -> anyhow::Result<bool> {
    let mut tx = shared::db::begin_tenant(owner, clinic).await?;
    let exists = sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM clinics WHERE id = $1)")
        .bind(clinic)
        .fetch_one(&mut *tx)
        .await
        .context("looking for the clinic")?;
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

async fn insert(
    tx: &mut shared::db::TenantTx,
    clinic: ClinicId,
    timezone: &str,
    plan: &Plan,
) -> anyhow::Result<()> {
    let staff: Vec<_> = plan
        .staff
        .iter()
        .map(|s| (s.id, s.email.as_str(), s.full_name.as_str(), s.role))
        .collect();
    // Fresh ids: every one of them is a new person.
    seed::insert_staff(tx, clinic.as_uuid(), &staff, &HashSet::new()).await?;
    insert_working_hours(tx, clinic, plan).await?;
    for batch in plan.patients.chunks(PATIENT_BATCH) {
        seed::insert_patients(tx, clinic.as_uuid(), batch).await?;
    }
    for batch in plan.appointments.chunks(APPOINTMENT_BATCH) {
        seed::insert_appointments(tx, clinic.as_uuid(), timezone, batch).await?;
    }
    Ok(())
}

/// Every new dentist works the sessions of `plan::SESSIONS`, Monday to Friday.
async fn insert_working_hours(
    tx: &mut shared::db::TenantTx,
    clinic: ClinicId,
    plan: &Plan,
) -> anyhow::Result<()> {
    let dentists: Vec<uuid::Uuid> = plan
        .staff
        .iter()
        .filter(|s| s.role == shared::auth::Role::Dentist)
        .map(|s| s.id)
        .collect();
    let starts: Vec<i16> = plan::SESSIONS
        .iter()
        .map(|(o, _)| (o * 60) as i16)
        .collect();
    let ends: Vec<i16> = plan::SESSIONS
        .iter()
        .map(|(_, c)| (c * 60) as i16)
        .collect();
    sqlx::query(
        "INSERT INTO working_hours (clinic_id, dentist_id, weekday, start_minute, end_minute,
                                    valid_from)
         SELECT $1, d.id, w.day, s.start_minute, s.end_minute, DATE '2000-01-01'
           FROM UNNEST($2::uuid[]) AS d(id)
          CROSS JOIN generate_series(1, 5) AS w(day)
          CROSS JOIN UNNEST($3::int2[], $4::int2[]) AS s(start_minute, end_minute)",
    )
    .bind(clinic)
    .bind(&dentists)
    .bind(&starts)
    .bind(&ends)
    .execute(&mut **tx)
    .await
    .context("inserting the dentists' working hours")?;
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
    let staff: Vec<(UserId, Role)> = sqlx::query_as(
        "SELECT m.user_id, m.role FROM memberships m JOIN users u ON u.id = m.user_id
              WHERE m.clinic_id = $1 ORDER BY u.email",
    )
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
