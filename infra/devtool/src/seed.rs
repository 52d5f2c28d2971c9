//! `seed [--reset]`: writes the demo (see `demo`) so the frontend has realistic data.
//!
//! Tenant rows go in through the same row-level security the app is subject to: one
//! transaction per clinic with `app.clinic_id` set to it (`shared::db::begin_tenant`), so the
//! policies' WITH CHECK also validates the demo. Only two things step outside RLS, in an owner
//! transaction that lifts FORCE (see `rls`): finding the demo clinics by slug and `--reset`.
//! The global catalog is not the demo's: the migrations seed it, and the seed only checks that
//! the procedures the demo books are there.
//! Rows go in with one UNNEST insert per table, so seeding takes a fraction of a second.

use crate::demo::{
    self, ClinicData, DemoAppointment, DemoClinic, DemoPatient, DemoSchedule, PROCEDURES, TIMEZONE,
};
use crate::rls::{self, Unscoped};
use anyhow::{Context, bail};
use chrono::NaiveDateTime;
use shared::auth::Role;
use shared::ids::ClinicId;
use sqlx::{PgConnection, PgPool};
use std::collections::{BTreeMap, HashSet};
use std::fmt::Write as _;
use std::io::Write as _;
use std::time::Instant;
use uuid::Uuid;

/// The clinic whose admins the demo lists as platform operators.
const DEMO_OPERATOR_CLINIC: &str = "sonrisa";
/// The chain both demo clinics belong to.
const DEMO_ORGANIZATION: (&str, &str) = ("grupo-pulso", "Grupo Dental Pulso");

/// Tables holding clinic rows, children before parents: `--reset` deletes in this order.
/// A migration that adds a table referencing clinics adds it here too (the reset names the
/// table if it is forgotten, and `tests/api/demo.rs` checks the schema against this list).
pub const TENANT_TABLES: &[&str] = &[
    "audit_events",
    "notification_reads",
    "notifications",
    "xray_uploads",
    "xrays",
    "reports",
    "jobs",
    "catalog_items",
    "appointments",
    "waiting_list",
    "chairs",
    "time_off",
    "working_hours",
    "patients",
    "memberships",
];

pub async fn run(pool: &PgPool, reset: bool) -> anyhow::Result<()> {
    let started = Instant::now();
    rls::require_schema(pool).await?;
    // Before `--reset` deletes anything: a demo that cannot be rebuilt is not torn down.
    let catalog = require_global_catalog(pool).await?;
    let clinics = demo::clinics();

    let existing = existing_demo_clinics(pool, &clinics).await?;
    if !existing.is_empty() {
        if !reset {
            // A demo seeded before operators (or the chain's admin) were listed gets them all
            // the same.
            list_demo_operator(pool).await?;
            list_demo_organization_admin(pool).await?;
            println!(
                "demo already seeded (clinics: {}); `pulso-devtool seed --reset` rebuilds it",
                existing
                    .iter()
                    .map(|(_, slug)| slug.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            );
            return Ok(());
        }
        let ids: Vec<Uuid> = existing.iter().map(|(id, _)| *id).collect();
        let deleted = reset_clinics(pool, &ids).await?;
        say(&format!(
            "reset: deleted {deleted} rows of the demo clinics\n"
        ));
    }

    let now = local_now(pool).await?;

    let mut generated = Vec::with_capacity(clinics.len());
    let mut people = HashSet::new();
    for (index, clinic) in clinics.iter().enumerate() {
        let data = demo::generate(clinic, index as u64, now);
        let schedule = demo::schedule(clinic, index, now.date());
        insert_clinic(pool, clinic, &data, &schedule, &people)
            .await
            .with_context(|| format!("seeding clinic {}", clinic.slug))?;
        people.extend(clinic.staff.iter().map(|s| s.id));
        generated.push(data);
    }

    list_demo_operator(pool).await?;
    list_demo_organization_admin(pool).await?;
    say(&summary(&clinics, &generated, &catalog, now, started)?);
    Ok(())
}

/// Lists the demo's platform operator (idempotent): `infra/token --clinic sonrisa --role admin
/// --platform-admin` then mints a token the API honours (a claim alone is not enough,
/// `shared::access`).
async fn list_demo_operator(pool: &PgPool) -> anyhow::Result<()> {
    let mut lookup = Unscoped::begin(pool, &["clinics", "memberships"]).await?;
    sqlx::query(
        "INSERT INTO platform_operators (user_id, reason)
         SELECT m.user_id, 'demo: the local platform operator'
           FROM memberships m JOIN clinics c ON c.id = m.clinic_id
          WHERE c.slug = $1 AND m.role = 'admin'
         ON CONFLICT (user_id) DO NOTHING",
    )
    .bind(DEMO_OPERATOR_CLINIC)
    .execute(&mut *lookup.tx)
    .await
    .context("listing the demo's platform operator")?;
    lookup.commit().await.context("committing the operator")?;
    Ok(())
}

/// Makes the demo's organization admin (`demo::organization_admin`) an active `org_admin` of
/// the demo chain (idempotent; the person survives a `--reset`, which removes only the
/// organization's row of her). A platform operator's act in the API
/// (`POST /platform/organizations/{id}/admins`); here one owner transaction.
async fn list_demo_organization_admin(pool: &PgPool) -> anyhow::Result<()> {
    let admin = demo::organization_admin();
    let mut tx = Unscoped::begin(pool, &["users", "organizations", "organization_admins"]).await?;
    sqlx::query(
        "INSERT INTO users (id, email, full_name, created_at)
         VALUES ($1, $2, $3, now() - interval '1600 days')
         ON CONFLICT (id) DO NOTHING",
    )
    .bind(admin.id)
    .bind(admin.email)
    .bind(admin.full_name)
    .execute(&mut *tx.tx)
    .await
    .context("inserting the demo organization admin")?;
    sqlx::query(
        "INSERT INTO organization_admins (organization_id, user_id, created_at)
         SELECT o.id, $1, now() - interval '1600 days' FROM organizations o WHERE o.slug = $2
         ON CONFLICT (organization_id, user_id) DO UPDATE SET active = true",
    )
    .bind(admin.id)
    .bind(DEMO_ORGANIZATION.0)
    .execute(&mut *tx.tx)
    .await
    .context("listing the demo organization admin")?;
    tx.commit()
        .await
        .context("committing the organization admin")?;
    Ok(())
}

/// The demo clinics present, found by slug (their ids may predate the fixed ones).
async fn existing_demo_clinics(
    pool: &PgPool,
    clinics: &[DemoClinic],
) -> anyhow::Result<Vec<(Uuid, String)>> {
    let slugs: Vec<&str> = clinics.iter().map(|c| c.slug).collect();
    let mut lookup = Unscoped::begin(pool, &["clinics"]).await?;
    let found = sqlx::query_as("SELECT id, slug FROM clinics WHERE slug = ANY($1) ORDER BY slug")
        .bind(&slugs)
        .fetch_all(&mut *lookup.tx)
        .await
        .context("looking up the demo clinics")?;
    // Dropping `lookup` rolls back: FORCE was never lifted for anyone else.
    Ok(found)
}

/// Deletes the clinics `ids` and everything of theirs: their rows, their staff who belong to
/// no other clinic, and organizations left without clinics.
pub async fn reset_clinics(pool: &PgPool, ids: &[Uuid]) -> anyhow::Result<u64> {
    let mut tables: Vec<&str> = TENANT_TABLES.to_vec();
    tables.extend(["clinics", "users", "organizations", "organization_admins"]);
    let mut unscoped = Unscoped::begin(pool, &tables).await?;
    // People are not clinic rows: those who only worked at these clinics go with them.
    let leaving: Vec<Uuid> = sqlx::query_scalar(
        "SELECT DISTINCT user_id FROM memberships m
          WHERE clinic_id = ANY($1)
            AND NOT EXISTS (SELECT 1 FROM memberships o
                             WHERE o.user_id = m.user_id AND o.clinic_id <> ALL($1))",
    )
    .bind(ids)
    .fetch_all(&mut *unscoped.tx)
    .await
    .context("finding the demo clinics' staff")?;
    let organizations: Vec<Uuid> =
        sqlx::query_scalar("SELECT DISTINCT organization_id FROM clinics WHERE id = ANY($1)")
            .bind(ids)
            .fetch_all(&mut *unscoped.tx)
            .await
            .context("finding the demo clinics' organizations")?;
    // Operators are listed by user, not by clinic: they go before their users.
    let mut deleted = sqlx::query("DELETE FROM platform_operators WHERE user_id = ANY($1)")
        .bind(&leaving)
        .execute(&mut *unscoped.tx)
        .await
        .context("deleting the demo clinics' platform operators")?
        .rows_affected();
    for table in TENANT_TABLES {
        let exists: bool = sqlx::query_scalar("SELECT to_regclass($1) IS NOT NULL")
            .bind(table)
            .fetch_one(&mut *unscoped.tx)
            .await?;
        if exists {
            deleted += sqlx::query(&format!("DELETE FROM {table} WHERE clinic_id = ANY($1)"))
                .bind(ids)
                .execute(&mut *unscoped.tx)
                .await
                .with_context(|| format!("deleting the demo clinics' rows from {table}"))?
                .rows_affected();
        }
    }
    deleted += sqlx::query("DELETE FROM clinics WHERE id = ANY($1)")
        .bind(ids)
        .execute(&mut *unscoped.tx)
        .await
        .context(
            "deleting the demo clinics (a table the reset does not know references them: \
             add it to TENANT_TABLES in infra/devtool/src/seed.rs)",
        )?
        .rows_affected();
    deleted += sqlx::query("DELETE FROM users WHERE id = ANY($1)")
        .bind(&leaving)
        .execute(&mut *unscoped.tx)
        .await
        .context("deleting the demo clinics' staff")?
        .rows_affected();
    // An organization that goes takes its admins' rows (not the people) with it.
    deleted += sqlx::query(
        "DELETE FROM organization_admins a
          WHERE organization_id = ANY($1)
            AND NOT EXISTS (SELECT 1 FROM clinics c WHERE c.organization_id = a.organization_id)",
    )
    .bind(&organizations)
    .execute(&mut *unscoped.tx)
    .await
    .context("deleting the demo organizations' admins")?
    .rows_affected();
    deleted += sqlx::query(
        "DELETE FROM organizations o
          WHERE id = ANY($1) AND NOT EXISTS (SELECT 1 FROM clinics c WHERE c.organization_id = o.id)",
    )
    .bind(&organizations)
    .execute(&mut *unscoped.tx)
    .await
    .context("deleting the demo organizations")?
    .rows_affected();
    unscoped.commit().await.context("committing the reset")?;
    Ok(deleted)
}

/// The clinics' wall clock, from the database so every machine agrees on "today".
async fn local_now(pool: &PgPool) -> anyhow::Result<NaiveDateTime> {
    sqlx::query_scalar("SELECT (now() AT TIME ZONE $1)::timestamp")
        .bind(TIMEZONE)
        .fetch_one(pool)
        .await
        .context("reading the database clock")
}

/// How many global items the migrations provided, per kind.
struct GlobalCatalog {
    procedures: usize,
    insurers: usize,
}

/// The global catalog comes from the migrations; the demo only checks that the procedures its
/// appointments name are there (a database migrated by an older checkout may lack them).
async fn require_global_catalog(pool: &PgPool) -> anyhow::Result<GlobalCatalog> {
    // Global rows are readable by everyone under the policies: no lifting needed to look.
    let present: Vec<(String, String)> =
        sqlx::query_as("SELECT kind, code FROM catalog_items WHERE clinic_id IS NULL")
            .fetch_all(pool)
            .await
            .context("reading the global catalog")?;
    let count = |kind: &str| present.iter().filter(|(k, _)| k == kind).count();
    let missing: Vec<&str> = PROCEDURES
        .iter()
        .map(|procedure| procedure.code)
        .filter(|code| !present.iter().any(|(k, c)| k == "procedure" && c == code))
        .collect();
    if !missing.is_empty() {
        bail!(
            "the global catalog lacks the procedures the demo books ({}): run \
             `pulso-devtool migrate` first (the migrations seed the catalog)",
            missing.join(", ")
        );
    }
    Ok(GlobalCatalog {
        procedures: count("procedure"),
        insurers: count("insurer"),
    })
}

/// Inserts a demo clinic with its staff (creating those not in `people` yet), patients and
/// agenda, in one transaction.
async fn insert_clinic(
    pool: &PgPool,
    clinic: &DemoClinic,
    data: &ClinicData,
    schedule: &DemoSchedule,
    people: &HashSet<Uuid>,
) -> anyhow::Result<()> {
    // A platform transaction: the demo's organization is created (once) in it too.
    let mut tx = shared::db::begin_platform(pool, ClinicId(clinic.id))
        .await
        .context("starting the tenant transaction")?;
    let (slug, name) = DEMO_ORGANIZATION;
    let organization = insert_organization(&mut tx, slug, name).await?;

    // The clinics policy has no separate WITH CHECK: a new clinic is visible, and insertable,
    // only while app.clinic_id is its own id, which begin_platform has just set.
    sqlx::query(
        "INSERT INTO clinics (id, organization_id, slug, name, timezone, address, phone, created_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7, now() - interval '1600 days')",
    )
    .bind(clinic.id)
    .bind(organization)
    .bind(clinic.slug)
    .bind(clinic.name)
    .bind(TIMEZONE)
    .bind(clinic.address)
    .bind(clinic.phone)
    .execute(&mut *tx)
    .await
    .context("inserting the clinic")?;

    let staff: Vec<_> = clinic
        .staff
        .iter()
        .map(|s| (s.id, s.email.as_str(), s.full_name, s.role))
        .collect();
    insert_staff(&mut tx, clinic.id, &staff, people).await?;

    insert_schedule(&mut tx, clinic.id, TIMEZONE, schedule).await?;
    insert_patients(&mut tx, clinic.id, &data.patients).await?;
    insert_appointments(&mut tx, clinic.id, TIMEZONE, &data.appointments).await?;
    insert_waiting_list(&mut tx, clinic, &data.patients).await?;

    tx.commit().await.context("committing")?;
    Ok(())
}

/// Three patients waiting for time to free up: any dentist for half an hour in the next three
/// weeks, the clinic's first dentist for an hour, and three quarters of an hour soon. Dates are
/// the clinic's, from its today.
async fn insert_waiting_list(
    conn: &mut PgConnection,
    clinic: &DemoClinic,
    patients: &[DemoPatient],
) -> anyhow::Result<()> {
    let first_dentist = clinic.staff_ids(Role::Dentist).first().copied();
    let entries = [
        (30, None, 0, 21, "Prefiere mañanas"),
        (60, first_dentist, 1, 45, "Llamar antes de las 13:00"),
        (45, None, 0, 10, ""),
    ];
    let chosen = patients.iter().zip(entries);
    sqlx::query(
        "INSERT INTO waiting_list (clinic_id, patient_id, duration_minutes, dentist_id, window_from,
                                   window_until, notes)
         SELECT $1, patient_id, minutes, dentist_id,
                (now() AT TIME ZONE $2)::date + from_day, (now() AT TIME ZONE $2)::date + until_day,
                notes
           FROM UNNEST($3::uuid[], $4::int4[], $5::uuid[], $6::int4[], $7::int4[], $8::text[])
                AS w(patient_id, minutes, dentist_id, from_day, until_day, notes)",
    )
    .bind(clinic.id)
    .bind(TIMEZONE)
    .bind(chosen.clone().map(|(p, _)| p.id).collect::<Vec<_>>())
    .bind(chosen.clone().map(|(_, e)| e.0).collect::<Vec<i32>>())
    .bind(chosen.clone().map(|(_, e)| e.1).collect::<Vec<Option<Uuid>>>())
    .bind(chosen.clone().map(|(_, e)| e.2).collect::<Vec<i32>>())
    .bind(chosen.clone().map(|(_, e)| e.3).collect::<Vec<i32>>())
    .bind(chosen.map(|(_, e)| e.4).collect::<Vec<&str>>())
    .execute(conn)
    .await
    .context("inserting the waiting list")?;
    Ok(())
}

/// The organization `slug`, created (as a platform transaction may) when it is not there yet.
pub async fn insert_organization(
    conn: &mut PgConnection,
    slug: &str,
    name: &str,
) -> anyhow::Result<Uuid> {
    sqlx::query_scalar(
        "INSERT INTO organizations (slug, name) VALUES ($1, $2)
         ON CONFLICT (slug) DO UPDATE SET name = EXCLUDED.name
         RETURNING id",
    )
    .bind(slug)
    .bind(name)
    .fetch_one(conn)
    .await
    .with_context(|| format!("inserting the organization {slug}"))
}

/// Makes `staff` (id, email, name, role) members of `clinic`, creating the people not in
/// `existing` (someone who works at two clinics is one person, created with the first): one
/// statement each. (`ON CONFLICT` cannot stand in for `existing`: under row-level security it
/// needs to see the row it would skip, and a person is not visible to a clinic before they
/// are its member.)
pub async fn insert_staff(
    conn: &mut PgConnection,
    clinic: Uuid,
    staff: &[(Uuid, &str, &str, Role)],
    existing: &HashSet<Uuid>,
) -> anyhow::Result<()> {
    let new: Vec<_> = staff.iter().filter(|s| !existing.contains(&s.0)).collect();
    sqlx::query(
        "INSERT INTO users (id, email, full_name, created_at)
         SELECT id, email, full_name, now() - interval '1600 days'
           FROM UNNEST($1::uuid[], $2::text[], $3::text[]) AS u(id, email, full_name)",
    )
    .bind(new.iter().map(|s| s.0).collect::<Vec<_>>())
    .bind(new.iter().map(|s| s.1).collect::<Vec<_>>())
    .bind(new.iter().map(|s| s.2).collect::<Vec<_>>())
    .execute(&mut *conn)
    .await
    .context("inserting the staff")?;
    let ids: Vec<Uuid> = staff.iter().map(|s| s.0).collect();
    sqlx::query(
        "INSERT INTO memberships (clinic_id, user_id, role, created_at, updated_at)
         SELECT $1, id, role::user_role, now() - interval '1600 days', now() - interval '1600 days'
           FROM UNNEST($2::uuid[], $3::text[]) AS m(id, role)",
    )
    .bind(clinic)
    .bind(&ids)
    .bind(staff.iter().map(|s| s.3.as_str()).collect::<Vec<_>>())
    .execute(conn)
    .await
    .context("inserting the memberships")?;
    Ok(())
}

/// Inserts `clinic`'s weekly hours, chairs and time off (whole days in `timezone`), one
/// statement each, inside the caller's tenant transaction.
async fn insert_schedule(
    conn: &mut PgConnection,
    clinic: Uuid,
    timezone: &str,
    schedule: &DemoSchedule,
) -> anyhow::Result<()> {
    let hours = &schedule.hours;
    sqlx::query(
        "INSERT INTO working_hours (clinic_id, dentist_id, weekday, start_minute, end_minute,
                                    valid_from)
         SELECT $1, dentist_id, weekday, start_minute, end_minute, DATE '2020-01-01'
           FROM UNNEST($2::uuid[], $3::int2[], $4::int2[], $5::int2[])
                AS w(dentist_id, weekday, start_minute, end_minute)",
    )
    .bind(clinic)
    .bind(hours.iter().map(|h| h.dentist_id).collect::<Vec<_>>())
    .bind(hours.iter().map(|h| h.weekday).collect::<Vec<_>>())
    .bind(hours.iter().map(|h| h.start_minute).collect::<Vec<_>>())
    .bind(hours.iter().map(|h| h.end_minute).collect::<Vec<_>>())
    .execute(&mut *conn)
    .await
    .context("inserting the working hours")?;
    sqlx::query(
        "INSERT INTO chairs (clinic_id, name, created_at, updated_at)
         SELECT $1, name, now() - interval '1600 days', now() - interval '1600 days'
           FROM UNNEST($2::text[]) AS c(name)",
    )
    .bind(clinic)
    .bind(&schedule.chairs)
    .execute(&mut *conn)
    .await
    .context("inserting the chairs")?;
    let time_off = &schedule.time_off;
    sqlx::query(
        "INSERT INTO time_off (clinic_id, dentist_id, kind, starts_at, ends_at, all_day, label)
         SELECT $1, dentist_id, kind::time_off_kind, first_day::timestamp AT TIME ZONE $2,
                (last_day + 1)::timestamp AT TIME ZONE $2, true, label
           FROM UNNEST($3::uuid[], $4::text[], $5::date[], $6::date[], $7::text[])
                AS t(dentist_id, kind, first_day, last_day, label)",
    )
    .bind(clinic)
    .bind(timezone)
    .bind(time_off.iter().map(|t| t.dentist_id).collect::<Vec<_>>())
    .bind(time_off.iter().map(|t| t.kind).collect::<Vec<_>>())
    .bind(time_off.iter().map(|t| t.first_day).collect::<Vec<_>>())
    .bind(time_off.iter().map(|t| t.last_day).collect::<Vec<_>>())
    .bind(
        time_off
            .iter()
            .map(|t| t.label.as_str())
            .collect::<Vec<_>>(),
    )
    .execute(conn)
    .await
    .context("inserting the time off")?;
    Ok(())
}

/// Inserts `patients` into `clinic` in one statement, inside the caller's tenant transaction.
/// Shared with the large-clinic generator, which calls it batch by batch.
pub async fn insert_patients(
    conn: &mut PgConnection,
    clinic: Uuid,
    patients: &[DemoPatient],
) -> anyhow::Result<()> {
    sqlx::query(
        "INSERT INTO patients (id, clinic_id, first_name, last_name, search_name, phone, email,
                               birth_date, national_id, notes, created_at, updated_at)
         SELECT id, $1, first_name, last_name, search_name, phone, email, birth_date, national_id,
                notes, registered, registered
           FROM (SELECT *, date_trunc('minute', now()) - make_interval(days => days_ago)
                           - make_interval(mins => (hashtext(id::text) & 511)) AS registered
                   FROM UNNEST($2::uuid[], $3::text[], $4::text[], $5::text[], $6::text[], $7::text[],
                               $8::date[], $9::text[], $10::text[], $11::int4[])
                        AS p(id, first_name, last_name, search_name, phone, email, birth_date,
                             national_id, notes, days_ago)) AS rows",
    )
    .bind(clinic)
    .bind(patients.iter().map(|p| p.id).collect::<Vec<_>>())
    .bind(patients.iter().map(|p| p.first_name.as_str()).collect::<Vec<_>>())
    .bind(patients.iter().map(|p| p.last_name.as_str()).collect::<Vec<_>>())
    .bind(patients.iter().map(|p| p.search_name.as_str()).collect::<Vec<_>>())
    .bind(patients.iter().map(|p| p.phone.as_deref()).collect::<Vec<_>>())
    .bind(patients.iter().map(|p| p.email.as_deref()).collect::<Vec<_>>())
    .bind(patients.iter().map(|p| p.birth_date).collect::<Vec<_>>())
    .bind(patients.iter().map(|p| p.national_id.as_deref()).collect::<Vec<_>>())
    .bind(patients.iter().map(|p| p.notes.as_str()).collect::<Vec<_>>())
    .bind(patients.iter().map(|p| p.registered_days_ago).collect::<Vec<_>>())
    .execute(&mut *conn)
    .await
    .context("inserting the patients")?;
    Ok(())
}

/// Inserts `appointments` (local times in `timezone`) into `clinic` in one statement, inside the
/// caller's tenant transaction. Shared with the large-clinic generator.
pub async fn insert_appointments(
    conn: &mut PgConnection,
    clinic: Uuid,
    timezone: &str,
    appointments: &[DemoAppointment],
) -> anyhow::Result<()> {
    sqlx::query(
        "INSERT INTO appointments (id, clinic_id, patient_id, dentist_id, starts_at, ends_at, status,
                                   reason, procedure_code, created_by, created_at, updated_at,
                                   status_changed_at)
         SELECT id, $1, patient_id, dentist_id, starts_at AT TIME ZONE $2, ends_at AT TIME ZONE $2,
                status::appointment_status, reason, procedure_code, created_by,
                created_at AT TIME ZONE $2, changed_at AT TIME ZONE $2, changed_at AT TIME ZONE $2
           FROM UNNEST($3::uuid[], $4::uuid[], $5::uuid[], $6::timestamp[], $7::timestamp[],
                       $8::text[], $9::text[], $10::text[], $11::uuid[], $12::timestamp[],
                       $13::timestamp[])
                AS a(id, patient_id, dentist_id, starts_at, ends_at, status, reason, procedure_code,
                     created_by, created_at, changed_at)",
    )
    .bind(clinic)
    .bind(timezone)
    .bind(appointments.iter().map(|a| a.id).collect::<Vec<_>>())
    .bind(appointments.iter().map(|a| a.patient_id).collect::<Vec<_>>())
    .bind(appointments.iter().map(|a| a.dentist_id).collect::<Vec<_>>())
    .bind(appointments.iter().map(|a| a.starts_at).collect::<Vec<_>>())
    .bind(appointments.iter().map(|a| a.ends_at).collect::<Vec<_>>())
    .bind(appointments.iter().map(|a| a.status).collect::<Vec<_>>())
    .bind(appointments.iter().map(|a| a.reason).collect::<Vec<_>>())
    .bind(appointments.iter().map(|a| a.procedure_code).collect::<Vec<_>>())
    .bind(appointments.iter().map(|a| a.created_by).collect::<Vec<_>>())
    .bind(appointments.iter().map(|a| a.created_at).collect::<Vec<_>>())
    .bind(appointments.iter().map(|a| a.status_changed_at).collect::<Vec<_>>())
    .execute(&mut *conn)
    .await
    .context("inserting the appointments")?;
    Ok(())
}

/// Prints to stdout; a closed pipe (`seed | head`) is not an error once the data is committed.
fn say(text: &str) {
    let _ = std::io::stdout().lock().write_all(text.as_bytes());
}

fn summary(
    clinics: &[DemoClinic],
    generated: &[ClinicData],
    catalog: &GlobalCatalog,
    now: NaiveDateTime,
    started: Instant,
) -> Result<String, std::fmt::Error> {
    let mut out = String::new();
    writeln!(
        out,
        "demo seeded in {:.2} s (today in {TIMEZONE}: {})",
        started.elapsed().as_secs_f64(),
        now.date()
    )?;
    for (clinic, data) in clinics.iter().zip(generated) {
        writeln!(
            out,
            "\n  {}  {} ({})  id {}",
            clinic.slug, clinic.name, clinic.city, clinic.id
        )?;
        for member in &clinic.staff {
            writeln!(
                out,
                "    {:<13} {:<42} {}",
                member.role.as_str(),
                member.email,
                member.id
            )?;
        }
        let mut statuses: BTreeMap<&str, usize> = BTreeMap::new();
        for appointment in &data.appointments {
            *statuses.entry(appointment.status).or_default() += 1;
        }
        writeln!(
            out,
            "    {} patients, {} appointments ({})",
            data.patients.len(),
            data.appointments.len(),
            statuses
                .iter()
                .map(|(status, n)| format!("{n} {status}"))
                .collect::<Vec<_>>()
                .join(", ")
        )?;
    }
    let admin = demo::organization_admin();
    writeln!(
        out,
        "\n  {}  {} (chain)\n    {:<13} {:<42} {}",
        DEMO_ORGANIZATION.0, DEMO_ORGANIZATION.1, "org_admin", admin.email, admin.id
    )?;
    writeln!(
        out,
        "\n  global catalog (from the migrations): {} procedures, {} insurers",
        catalog.procedures, catalog.insurers
    )?;
    writeln!(
        out,
        "  a token: infra/token --clinic sonrisa --role receptionist"
    )?;
    Ok(out)
}
