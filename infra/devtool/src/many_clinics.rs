//! `seed-many`: the platform at the size the clinics' planning names, 1,000 small clinics by
//! default, for what grows with the number of clinics (the scheduler's tick, Redis memory,
//! connections; `cargo bench -p pulso-tests --bench clinics`).
//!
//! A realistic mix, deterministic like the demo (fixed ids, a seeded RNG): about half the
//! clinics stand alone, the rest belong to chains of 2 to 25; most are in Madrid's time zone,
//! some in the Canaries' and Lisbon's. Each is a small clinic of the large-clinic generator: a
//! few hundred to 2,000 patients, a dentist or four, an agenda from a year ago to a month ahead
//! (`crate::large_clinic`). Clinics are numbered `red-0001`…; an existing one is left as it is,
//! so a larger `--clinics` adds only the ones missing, and `--reset` deletes them all first.

use crate::demo::fixed_id;
use crate::large_clinic::{LargeClinicOptions, clinic_exists, populate_many};
use crate::{rls, seed};
use anyhow::{Context, bail};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use shared::ids::ClinicId;
use sqlx::PgPool;
use std::collections::HashSet;

pub const DEFAULT_CLINICS: usize = 1_000;
/// The most clinics: their fixed ids have room for this many.
pub const MAX_CLINICS: usize = 10_000;
/// Clinic `n` (1-based) has `fixed_id(FIRST_CLINIC_NUMBER + n, 0)`, clear of the demo's and the
/// large clinic's.
const FIRST_CLINIC_NUMBER: u128 = 0x1_0000;
/// Changing this changes every generated clinic.
const SEED: u64 = 0x5075_6c73_6f00_0100;

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ManyClinicsOptions {
    pub clinics: usize,
    /// Delete every clinic of this generator first.
    pub reset: bool,
}

impl Default for ManyClinicsOptions {
    fn default() -> Self {
        Self {
            clinics: DEFAULT_CLINICS,
            reset: false,
        }
    }
}

/// One generated clinic, before it is inserted.
#[derive(Clone, Debug)]
pub struct ClinicPlan {
    pub id: ClinicId,
    pub slug: String,
    pub name: String,
    pub timezone: &'static str,
    /// The organization's slug and name (a chain's, or the clinic's own).
    pub organization: (String, String),
    pub size: LargeClinicOptions,
}

/// What `seed_many` did.
#[derive(Clone, Debug, Default)]
pub struct ManyClinics {
    /// Every clinic of the generator now in the database, in order.
    pub ids: Vec<ClinicId>,
    pub created: usize,
    pub patients: usize,
    pub appointments: usize,
    pub insert_seconds: f64,
    pub vacuum_seconds: f64,
}

/// Clinic `n`'s id (1-based).
pub fn clinic_id(n: usize) -> ClinicId {
    ClinicId(fixed_id(FIRST_CLINIC_NUMBER + n as u128, 0))
}

/// The first `clinics` clinics of the mix. Clinic `n` is the same whatever `clinics` is, so a
/// larger run extends a smaller one.
pub fn plan(clinics: usize) -> Vec<ClinicPlan> {
    let mut rng = StdRng::seed_from_u64(SEED);
    let mut plans = Vec::with_capacity(clinics);
    let mut chain = 0;
    while plans.len() < clinics {
        // About half the clinics in chains: a chain of k takes k clinics at once.
        let members = if rng.random_bool(0.07) {
            chain += 1;
            rng.random_range(2..=25)
        } else {
            1
        };
        for _ in 0..members {
            let n = plans.len() + 1;
            if n > clinics {
                break;
            }
            let organization = if members > 1 {
                (
                    format!("cadena-{chain:03}"),
                    format!("Cadena Dental {chain:03}"),
                )
            } else {
                (format!("red-{n:04}"), format!("Clínica Dental Red {n:04}"))
            };
            let timezone = match rng.random_range(0..100) {
                0..85 => "Europe/Madrid",
                85..95 => "Atlantic/Canary",
                _ => "Europe/Lisbon",
            };
            let patients = match rng.random_range(0..100) {
                0..50 => rng.random_range(300..700),
                50..85 => rng.random_range(700..1_300),
                _ => rng.random_range(1_300..2_000),
            };
            plans.push(ClinicPlan {
                id: clinic_id(n),
                slug: format!("red-{n:04}"),
                name: format!("Clínica Dental Red {n:04}"),
                timezone,
                organization,
                size: LargeClinicOptions {
                    patients,
                    // About three visits a year each: a dentist or four at the generator's fill.
                    appointments: patients * 3,
                    reset: false,
                },
            });
        }
    }
    plans
}

/// Creates the first `options.clinics` clinics of the mix that are not there yet (after
/// deleting them all with `reset`), through `owner`, a pool connected as the tables' owner.
pub async fn seed_many(
    owner: &PgPool,
    options: &ManyClinicsOptions,
) -> anyhow::Result<ManyClinics> {
    if !(1..=MAX_CLINICS).contains(&options.clinics) {
        bail!("--clinics must be between 1 and {MAX_CLINICS}");
    }
    rls::require_schema(owner).await?;
    let plans = plan(options.clinics);
    if options.reset {
        let everyone: Vec<uuid::Uuid> = plan(MAX_CLINICS).iter().map(|p| p.id.as_uuid()).collect();
        seed::reset_clinics(owner, &everyone)
            .await
            .context("deleting the generated clinics")?;
    }
    let existing = existing(owner, &plans).await?;
    let missing: Vec<&ClinicPlan> = plans
        .iter()
        .filter(|plan| !existing.contains(&plan.id))
        .collect();
    for plan in &missing {
        insert_clinic(owner, plan).await?;
    }
    let sizes: Vec<(ClinicId, LargeClinicOptions)> = missing
        .iter()
        .map(|plan| (plan.id, plan.size.clone()))
        .collect();
    let (insert_seconds, vacuum_seconds) = if sizes.is_empty() {
        (0.0, 0.0)
    } else {
        populate_many(owner, &sizes).await?
    };
    Ok(ManyClinics {
        ids: plans.iter().map(|plan| plan.id).collect(),
        created: missing.len(),
        patients: missing.iter().map(|plan| plan.size.patients).sum(),
        appointments: missing.iter().map(|plan| plan.size.appointments).sum(),
        insert_seconds,
        vacuum_seconds,
    })
}

/// The planned clinics the database has already (each looked for as itself: a clinic sees only
/// its own row).
async fn existing(owner: &PgPool, plans: &[ClinicPlan]) -> anyhow::Result<HashSet<ClinicId>> {
    let mut found = HashSet::new();
    for plan in plans {
        if clinic_exists(owner, plan.id).await? {
            found.insert(plan.id);
        }
    }
    Ok(found)
}

/// The clinic row (and its organization when new), in a platform transaction of its own.
async fn insert_clinic(owner: &PgPool, plan: &ClinicPlan) -> anyhow::Result<()> {
    let mut tx = shared::db::begin_platform(owner, plan.id)
        .await
        .context("starting the platform transaction")?;
    let organization =
        seed::insert_organization(&mut tx, &plan.organization.0, &plan.organization.1).await?;
    sqlx::query(
        "INSERT INTO clinics (id, organization_id, slug, name, timezone, created_at)
         VALUES ($1, $2, $3, $4, $5, now() - interval '400 days')",
    )
    .bind(plan.id)
    .bind(organization)
    .bind(&plan.slug)
    .bind(&plan.name)
    .bind(plan.timezone)
    .execute(&mut *tx)
    .await
    .with_context(|| format!("inserting clinic {}", plan.slug))?;
    tx.commit().await.context("committing the clinic")?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_mix_is_stable_and_a_larger_run_extends_a_smaller_one() {
        let small = plan(100);
        let large = plan(1_000);
        assert_eq!(small.len(), 100);
        assert_eq!(large.len(), 1_000);
        for (a, b) in small.iter().zip(&large) {
            assert_eq!(
                (a.id, &a.slug, &a.organization),
                (b.id, &b.slug, &b.organization)
            );
        }
        let ids: HashSet<ClinicId> = large.iter().map(|plan| plan.id).collect();
        assert_eq!(ids.len(), 1_000, "ids are distinct");
        let alone = large
            .iter()
            .filter(|plan| plan.organization.0.starts_with("red-"))
            .count();
        assert!(
            (350..650).contains(&alone),
            "about half stand alone: {alone}"
        );
        let madrid = large
            .iter()
            .filter(|plan| plan.timezone == "Europe/Madrid")
            .count();
        assert!((780..920).contains(&madrid), "{madrid}");
        assert!(
            large
                .iter()
                .all(|plan| (300..2_000).contains(&plan.size.patients))
        );
    }
}
