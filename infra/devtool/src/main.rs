//! `pulso-devtool`: run the migrations as the schema owner, seed the demo, mint local tokens,
//! and check a running local stack (`smoke`, `soak`).
//!
//! Every command talks to PostgreSQL through `DATABASE_ADMIN_URL` (the owner role, never the
//! app role; `smoke` and `soak` only to mint their token). `infra/run-local` writes `.dev/env`
//! with everything this tool reads, and `infra/token` sources it before running `token`.

mod identity;
mod listing;
mod secrets;
mod smoke;
mod soak;
mod stack;
mod token;
mod worker_model;

use pulso_devtool::{large_clinic, many_clinics, rls, seed};

use anyhow::{Context, bail};
use sqlx::PgPool;
use sqlx::postgres::PgPoolOptions;
use std::process::ExitCode;
use std::time::Duration;

const USAGE: &str = "\
usage: pulso-devtool <command> [options]

commands:
  migrate                       apply the migrations in migrations/ (as the schema owner)
  seed [--reset]                seed the demo clinics (sonrisa, alameda); --reset rebuilds them
  seed-large [--patients N] [--appointments N] [--reset]
                                seed the large clinic `grande` for benchmarks (default 20000
                                patients, 200000 appointments); --reset rebuilds it
  seed-many [--clinics N] [--reset]
                                seed N small clinics (1000), alone and in chains, for what grows
                                with the clinics (bench `clinics`); adds the missing ones,
                                --reset deletes them first
  identity-pool                 create the local Cognito pool and web client on the stand-in
                                (COGNITO_ENDPOINT_URL) if missing; print their ids as env lines
  identity-users                put every active member into that pool (found or created, as an
                                invitation does), link their identities, set the demo password
  local-secrets                 store DATABASE_URL, SYSTEM_DATABASE_URL and REDIS_URL (those set)
                                as secrets on the local Secrets Manager stand-in
                                (SECRETS_MANAGER_ENDPOINT_URL); print their ARNs as env lines
  media-bucket                  create the media bucket (MEDIA_BUCKET) on the local S3 stand-in
                                (S3_ENDPOINT_URL) if missing
  token (--email <email> | --clinic <slug> --role <admin|dentist|receptionist>) [--ttl-hours N] [--platform-admin]
                                print a JWT for a seeded user (HS256, JWT_HS256_SECRET)
  contract [--check]            write the API's documents, generated from the code:
                                docs/openapi.json (HTTP) and docs/asyncapi.json (WebSocket);
                                --check fails instead when a committed one differs
  smoke [--gateway URL] [--idle SECS]
                                check a running local stack (--gateway: default
                                http://127.0.0.1:4400; infra/run-local --check runs it):
                                /health, an idle gap (default 75 s), every HTTP function, the
                                WebSocket, every schedule, recovery from a hung and a crashed
                                function; stops at the first broken step
  worker-model [--clinics N] [--xrays N] [--reports N] [--seed N]
                                replay a day of job enqueues (default 1000 clinics, 20 X-ray
                                analyses and 5 reports each) through a model of the worker in the
                                cloud, today's schedule and its alternatives: each job's wait
                                before it starts (p50, p99, max) and the monthly cost, loaded
                                and idle
  soak [--gateway URL] [--duration 10m|600s|1h] [--seed N]
                                browser-like traffic for the duration (default 10m): bursts of
                                reads, WebSocket pings, idle gaps of 0-90 s; fails on any 5xx,
                                request without answer or failed WebSocket session

environment:
  DATABASE_ADMIN_URL            owner-role connection string (infra/run-local writes it to .dev/env)
  JWT_HS256_SECRET              token signing secret (at least 32 bytes)
  JWT_ISSUER, JWT_AUDIENCE      token iss/aud (default pulso-local / pulso)
  WS_URL                        the WebSocket API, for smoke and soak (in .dev/env)
  COGNITO_ENDPOINT_URL, COGNITO_USER_POOL_ID, COGNITO_CLIENT_ID
                                the local Cognito stand-in and its pool (in .dev/env)
  MEDIA_BUCKET, S3_ENDPOINT_URL
                                media-bucket: the bucket and the S3 stand-in (in .dev/env)
  SECRETS_MANAGER_ENDPOINT_URL, AWS_REGION, PULSO_DATABASE
                                local-secrets: the stand-in, the secrets' region, and the
                                database that names them (in .dev/env)";

#[tokio::main(flavor = "current_thread")]
async fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match run(&args).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("pulso-devtool: error: {error:#}");
            ExitCode::FAILURE
        }
    }
}

async fn run(args: &[String]) -> anyhow::Result<()> {
    let Some((command, options)) = args.split_first() else {
        eprintln!("{USAGE}");
        bail!("missing command");
    };
    match command.as_str() {
        "migrate" => {
            no_options(command, options)?;
            migrate(&admin_pool().await?).await
        }
        "seed" => {
            let reset = match options {
                [] => false,
                [flag] if flag == "--reset" => true,
                _ => bail!("usage: pulso-devtool seed [--reset]"),
            };
            seed::run(&admin_pool().await?, reset).await
        }
        "seed-large" => {
            let options = parse_seed_large(options)?;
            let clinic = large_clinic::seed_large(&admin_pool().await?, &options).await?;
            print_large_clinic(&clinic);
            Ok(())
        }
        "seed-many" => {
            let options = parse_seed_many(options)?;
            let seeded = many_clinics::seed_many(&admin_pool().await?, &options).await?;
            println!(
                "{} clinics of the mix present ({} new: {} patients, {} appointments, in {:.1} s + {:.1} s VACUUM ANALYZE)",
                seeded.ids.len(),
                seeded.created,
                seeded.patients,
                seeded.appointments,
                seeded.insert_seconds,
                seeded.vacuum_seconds
            );
            if seeded.created > 0 {
                forget_clinic_list().await;
            }
            Ok(())
        }
        "identity-pool" => {
            no_options(command, options)?;
            identity::pool().await
        }
        "local-secrets" => {
            no_options(command, options)?;
            secrets::run().await
        }
        "media-bucket" => {
            no_options(command, options)?;
            media_bucket().await
        }
        "identity-users" => {
            no_options(command, options)?;
            identity::users(&admin_pool().await?).await
        }
        "token" => {
            let request = token::TokenRequest::parse(options)?;
            let signing = token::SigningSettings::from_env()?;
            let token = token::issue(&admin_pool().await?, &request, &signing).await?;
            println!("{token}");
            Ok(())
        }
        "contract" => contract(options),
        "smoke" => {
            let options = smoke::Options::parse(options)?;
            smoke::run(&options, admin_pool().await?).await
        }
        "soak" => {
            let options = soak::Options::parse(options)?;
            soak::run(&options, admin_pool().await?).await
        }
        "worker-model" => {
            worker_model::run(&worker_model::Options::parse(options)?);
            Ok(())
        }
        "help" | "--help" | "-h" => {
            println!("{USAGE}");
            Ok(())
        }
        other => {
            eprintln!("{USAGE}");
            bail!("unknown command {other:?}")
        }
    }
}

/// Writes (or, with `--check`, compares) the committed OpenAPI and AsyncAPI documents.
fn contract(options: &[String]) -> anyhow::Result<()> {
    let check = match options {
        [] => false,
        [flag] if flag == "--check" => true,
        _ => bail!("usage: pulso-devtool contract [--check]"),
    };
    let documents = [
        (
            shared::contract::OPENAPI_PATH,
            shared::contract::openapi_json(),
        ),
        (
            shared::contract::ASYNCAPI_PATH,
            shared::contract::asyncapi_json(),
        ),
    ];
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let mut stale = Vec::new();
    for (relative, generated) in documents {
        let path = root.join(relative);
        if check {
            let committed = std::fs::read_to_string(&path)
                .with_context(|| format!("reading {}", path.display()))?;
            if committed != generated {
                stale.push(relative);
            }
            continue;
        }
        std::fs::write(&path, generated).with_context(|| format!("writing {}", path.display()))?;
        println!("wrote {relative}");
    }
    if !stale.is_empty() {
        bail!(
            "{} differ from what the code generates: run `pulso-devtool contract`",
            stale.join(", ")
        );
    }
    Ok(())
}

fn parse_seed_large(options: &[String]) -> anyhow::Result<large_clinic::LargeClinicOptions> {
    const USAGE: &str =
        "usage: pulso-devtool seed-large [--patients N] [--appointments N] [--reset]";
    let mut parsed = large_clinic::LargeClinicOptions::default();
    let mut options = options.iter();
    while let Some(flag) = options.next() {
        let (name, inline) = match flag.split_once('=') {
            Some((name, value)) => (name, Some(value.to_string())),
            None => (flag.as_str(), None),
        };
        if name == "--reset" && inline.is_none() {
            parsed.reset = true;
            continue;
        }
        let target = match name {
            "--patients" => &mut parsed.patients,
            "--appointments" => &mut parsed.appointments,
            other => bail!("unknown option {other:?}\n{USAGE}"),
        };
        let value = match inline {
            Some(value) => value,
            None => options
                .next()
                .cloned()
                .with_context(|| format!("{name} needs a number\n{USAGE}"))?,
        };
        *target = value
            .trim()
            .parse()
            .ok()
            .filter(|n| (1..=2_000_000).contains(n))
            .with_context(|| format!("{name} must be a whole number from 1 to 2000000"))?;
    }
    Ok(parsed)
}

/// The scheduler lists the active clinics through a day-long cache: new clinics join it now,
/// as onboarding's would, when the stack's settings are at hand (.dev/env).
async fn forget_clinic_list() {
    match shared::Config::load().await.map(shared::AppState::build) {
        Ok(Ok(state)) => {
            state
                .cache
                .invalidate(shared::cache::CLINIC_LIST, &state.keys.clinic_list())
                .await;
            println!("the scheduler's list of clinics was invalidated: the next tick sees them");
        }
        _ => println!(
            "the scheduler's list of clinics is cached for a day: with the stack's settings \
             (set -a; . .dev/env; set +a) this command invalidates it"
        ),
    }
}

fn parse_seed_many(options: &[String]) -> anyhow::Result<many_clinics::ManyClinicsOptions> {
    const USAGE: &str = "usage: pulso-devtool seed-many [--clinics N] [--reset]";
    let mut parsed = many_clinics::ManyClinicsOptions::default();
    let mut options = options.iter();
    while let Some(flag) = options.next() {
        match flag.as_str() {
            "--reset" => parsed.reset = true,
            "--clinics" => {
                parsed.clinics = options
                    .next()
                    .and_then(|value| value.trim().parse().ok())
                    .filter(|n| (1..=many_clinics::MAX_CLINICS).contains(n))
                    .with_context(|| {
                        format!(
                            "--clinics needs a number from 1 to {}\n{USAGE}",
                            many_clinics::MAX_CLINICS
                        )
                    })?;
            }
            other => bail!("unknown option {other:?}\n{USAGE}"),
        }
    }
    Ok(parsed)
}

fn print_large_clinic(clinic: &large_clinic::LargeClinic) {
    if clinic.created {
        println!(
            "large clinic seeded in {:.1} s (+ {:.1} s VACUUM ANALYZE)",
            clinic.insert_seconds, clinic.vacuum_seconds
        );
    } else {
        println!("large clinic already present; `pulso-devtool seed-large --reset` rebuilds it");
    }
    println!(
        "  {}  {}  id {}\n  {} dentists, {} receptionists, admin {}\n  {} patients, {} appointments ({})\n  a token: infra/token --clinic {} --role admin",
        large_clinic::SLUG,
        large_clinic::NAME,
        clinic.id,
        clinic.dentists.len(),
        clinic.receptionists.len(),
        clinic
            .admin
            .map_or_else(|| "none".to_string(), |admin| admin.to_string()),
        clinic.patients,
        clinic.appointment_count(),
        clinic
            .appointments
            .iter()
            .map(|(status, n)| format!("{n} {status}"))
            .collect::<Vec<_>>()
            .join(", "),
        large_clinic::SLUG,
    );
}

fn no_options(command: &str, options: &[String]) -> anyhow::Result<()> {
    if let Some(extra) = options.first() {
        bail!("`{command}` takes no options (got {extra:?})");
    }
    Ok(())
}

/// Connects eagerly, so a wrong URL or a stopped server is reported here, once, with the fix.
async fn admin_pool() -> anyhow::Result<PgPool> {
    let url = std::env::var("DATABASE_ADMIN_URL")
        .ok()
        .filter(|url| !url.trim().is_empty())
        .context(
            "DATABASE_ADMIN_URL is not set: run `infra/run-local` once (it writes .dev/env), then \
             `set -a; . .dev/env; set +a`, or use `infra/token` for tokens",
        )?;
    PgPoolOptions::new()
        .max_connections(2)
        .acquire_timeout(Duration::from_secs(5))
        .connect(&url)
        .await
        .context(
            "cannot connect to PostgreSQL with DATABASE_ADMIN_URL: is it running? \
             (`infra/scripts/services.sh` starts it and creates the pulso_owner role)",
        )
}

/// The migrations, as the `migrate` function applies them on deploy (`shared::migrate`).
async fn migrate(pool: &PgPool) -> anyhow::Result<()> {
    let mut connection = pool.acquire().await?;
    let applied = shared::migrate::apply(&mut connection).await.context(
        "running the migrations failed (DATABASE_ADMIN_URL must be the schema owner, e.g. pulso_owner)",
    )?;
    let latest = shared::migrate::latest();
    match applied {
        0 => eprintln!("migrate: schema up to date (version {latest})"),
        new => eprintln!("migrate: applied {new} migration(s); schema at version {latest}"),
    }
    Ok(())
}

/// `media-bucket`: the bucket the functions' configuration names, on the stand-in it names
/// (which keeps nothing across restarts, so every start of the local stack asks again).
async fn media_bucket() -> anyhow::Result<()> {
    let config = shared::config::Config::load()
        .await
        .context("reading the functions' configuration (.dev/env)")?;
    let storage = config.media.storage.context("MEDIA_BUCKET is not set")?;
    anyhow::ensure!(
        storage.endpoint.is_some(),
        "S3_ENDPOINT_URL is not set: this command makes buckets on a local stand-in only (the \
         template makes the cloud's)"
    );
    let bucket = storage.bucket.clone();
    shared::media::MediaStore::new(storage)
        .ensure_bucket()
        .await
        .with_context(|| format!("creating the bucket {bucket}"))?;
    eprintln!("media bucket {bucket} ready");
    Ok(())
}
