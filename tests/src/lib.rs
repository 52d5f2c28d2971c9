//! Test harness: every test gets its own PostgreSQL database (cloned from a migrated template)
//! and its own Redis key prefix, drives the real routers in-process, and leaves nothing behind.
//!
//! Environment (defaults match `infra/scripts/services.sh`):
//! - `TEST_ADMIN_DATABASE_URL`: the owner role (creates databases, runs migrations);
//! - `TEST_APP_DATABASE_URL`: the application role the functions use (subject to RLS);
//! - `TEST_SYSTEM_DATABASE_URL`: the scheduler's role, pulso_system (RLS plus the clinic list);
//! - `TEST_REDIS_URL`;
//! - `TEST_COGNITO_ENDPOINT`: the local Cognito stand-in (`infra/scripts/cognito.sh`), where the
//!   tests of sign-in and invitations make pools of their own.

pub mod client;
pub mod fixtures;
pub mod lambda;
pub mod realtime;

pub use client::{Client, Problem, TestResponse};
pub use fixtures::{AppointmentSeed, drain_jobs, drain_worker, run_media_upkeep, small_png};

use axum::Router;
use shared::auth::{Claims, Role, mint_hs256};
use shared::db::TenantTx;
use shared::ids::{ClinicId, UserId};
use shared::{AppState, Config};
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::{Connection, PgConnection, PgPool};
use std::collections::HashMap;
use std::str::FromStr;
use uuid::Uuid;

pub const JWT_SECRET: &str = "pulso-test-secret-0123456789abcdef0123456789";
const ADVISORY_LOCK_KEY: i64 = 0x5075_6c73_6f54_706c; // "PulsoTpl"

fn env_or(name: &str, default: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| default.to_string())
}

/// Rate limits no test reaches unless it means to.
pub const ROOMY_RATE_LIMITS: &str =
    "reads=100000,writes=100000,uploads=100000,reports=100000,admin=100000";

/// A claim's room that fits any job: for tests of the queue's order, not of its room.
pub fn any_room() -> shared::queue::ClaimRoom {
    shared::queue::ClaimRoom {
        free_mib: shared::queue::MAX_PEAK_MEMORY_MIB,
        budget_mib: shared::queue::MAX_PEAK_MEMORY_MIB,
        clinic_share: u32::MAX,
        running: Vec::new(),
    }
}
pub fn admin_url() -> String {
    env_or(
        "TEST_ADMIN_DATABASE_URL",
        "postgres://pulso_owner:pulso_owner@127.0.0.1:5432/pulso",
    )
}

pub fn app_url() -> String {
    env_or(
        "TEST_APP_DATABASE_URL",
        "postgres://pulso_app:pulso_app@127.0.0.1:5432/pulso",
    )
}

pub fn system_url() -> String {
    env_or(
        "TEST_SYSTEM_DATABASE_URL",
        "postgres://pulso_system:pulso_system@127.0.0.1:5432/pulso",
    )
}

pub fn redis_url() -> String {
    env_or("TEST_REDIS_URL", "redis://127.0.0.1:6379")
}

/// A clinic created for a test, with one user of each role (and a second dentist).
#[derive(Clone, Copy, Debug)]
pub struct TestClinic {
    pub id: ClinicId,
    pub admin: UserId,
    pub dentist: UserId,
    pub second_dentist: UserId,
    pub receptionist: UserId,
}

impl TestClinic {
    pub fn user(&self, role: Role) -> UserId {
        match role {
            Role::Admin => self.admin,
            Role::Dentist => self.dentist,
            Role::Receptionist => self.receptionist,
        }
    }
}

/// How a test wants its app built; the defaults give a healthy app.
#[derive(Default)]
pub struct TestOptions {
    /// Point the app at a Redis that does not answer.
    pub redis_unreachable: bool,
    /// Point the app at a PostgreSQL that does not answer (the test database still exists).
    pub database_unreachable: bool,
    /// Override `MAX_BODY_BYTES`.
    pub max_body_bytes: Option<usize>,
    /// Trust this Cognito user pool's tokens too (beside the HS256 test secret), and invite
    /// people into it (`shared::identity`).
    pub cognito: Option<CognitoOptions>,
    /// Point the app at this Redis instead (e.g. a server that accepts and never answers).
    pub redis_url: Option<String>,
    /// Further settings, as environment variables would give them.
    pub env: Vec<(&'static str, String)>,
}

/// A Cognito user pool: on the local stand-in ([`StandInPool::options`]) or a fake endpoint of a
/// test's own (a key set served by the test).
#[derive(Clone, Debug)]
pub struct CognitoOptions {
    pub user_pool_id: String,
    pub client_id: String,
    pub endpoint: String,
}

/// Where the tests' Cognito stand-in answers (`infra/run-tests` starts it).
pub fn cognito_endpoint() -> String {
    env_or("TEST_COGNITO_ENDPOINT", "http://127.0.0.1:4402")
}

/// A pool of this test's own on the Cognito stand-in, and a client of the stand-in.
pub async fn stand_in_pool() -> (shared::identity::StandIn, CognitoOptions) {
    let endpoint = cognito_endpoint();
    let stand_in = shared::identity::StandIn::new(&endpoint, "eu-west-1").await;
    let pool = stand_in
        .pool(&format!("test-{}", Uuid::new_v4().simple()))
        .await
        .expect("a pool on the Cognito stand-in (infra/scripts/cognito.sh starts it)");
    let options = CognitoOptions {
        user_pool_id: pool.user_pool_id,
        client_id: pool.client_id,
        endpoint,
    };
    (stand_in, options)
}

impl CognitoOptions {
    /// The stand-in's view of the pool.
    pub fn pool(&self) -> shared::identity::StandInPool {
        shared::identity::StandInPool {
            user_pool_id: self.user_pool_id.clone(),
            client_id: self.client_id.clone(),
        }
    }
}

pub struct TestApp {
    pub state: AppState,
    pub clinic_a: TestClinic,
    pub clinic_b: TestClinic,
    pub database: String,
    pub redis_prefix: String,
    /// The owner role's pool on this test's database: seeding and cross-checks.
    pub owner: PgPool,
    /// This test's media bucket (removed with its objects at the end).
    pub storage: Option<shared::config::StorageConfig>,
}

impl TestApp {
    pub async fn spawn() -> TestApp {
        Self::spawn_with(TestOptions::default()).await
    }

    pub async fn spawn_with(options: TestOptions) -> TestApp {
        let template = ensure_template().await;
        // The creation time in the name lets a later run sweep databases of killed runs.
        let database = format!(
            "pulso_test_{}_{}",
            chrono::Utc::now().timestamp(),
            Uuid::new_v4().simple()
        );
        let mut admin = admin_connection(None).await;
        sqlx::query(&format!("CREATE DATABASE {database} TEMPLATE {template}"))
            .execute(&mut admin)
            .await
            .expect("create the test database from the template");
        admin.close().await.ok();

        let owner = PgPoolOptions::new()
            .max_connections(2)
            .connect_with(admin_options(Some(&database)))
            .await
            .expect("connect to the test database as owner");
        let clinic_a = seed_clinic(&owner, "clinic-a").await;
        let clinic_b = seed_clinic(&owner, "clinic-b").await;

        let redis_prefix = format!("test:{}", Uuid::new_v4().simple());
        let database_url = if options.database_unreachable {
            "postgres://pulso_app@127.0.0.1:1/none".to_string()
        } else {
            app_url_for(&database)
        };
        let redis = match (&options.redis_url, options.redis_unreachable) {
            (Some(url), _) => url.clone(),
            (None, true) => "redis://127.0.0.1:1".to_string(),
            (None, false) => redis_url(),
        };
        let mut vars: HashMap<&str, String> = HashMap::from([
            ("PULSO_ENV", "test".to_string()),
            ("DATABASE_URL", database_url),
            ("DATABASE_ACQUIRE_TIMEOUT_MS", "2000".to_string()),
            ("REDIS_URL", redis),
            ("REDIS_KEY_PREFIX", redis_prefix.clone()),
            // EMF lines are for CloudWatch; in tests they would only bury the failures.
            ("CACHE_METRICS_EMF", "false".to_string()),
            // Tables of bad requests send dozens in a second; the limits' own tests set theirs.
            ("RATE_LIMITS_PER_USER", ROOMY_RATE_LIMITS.to_string()),
            ("RATE_LIMITS_PER_CLINIC", ROOMY_RATE_LIMITS.to_string()),
            // Fan-out tests open dozens of connections as one user.
            ("WS_MAX_CONNECTIONS_PER_USER", "1000".to_string()),
        ]);
        vars.insert("JWT_HS256_SECRET", JWT_SECRET.to_string());
        // A bucket of this test's own on the S3 stand-in (moto, beside the Cognito one).
        let media_bucket = format!("pulso-test-{}", Uuid::new_v4().simple());
        vars.insert("MEDIA_BUCKET", media_bucket.clone());
        vars.insert("S3_ENDPOINT_URL", cognito_endpoint());
        vars.insert("AWS_REGION", "eu-west-1".to_string());
        if let Some(cognito) = options.cognito {
            vars.insert("COGNITO_USER_POOL_ID", cognito.user_pool_id);
            vars.insert("COGNITO_CLIENT_ID", cognito.client_id);
            vars.insert("COGNITO_ENDPOINT_URL", cognito.endpoint);
        }
        vars.extend(options.env);
        for name in shared::secrets::FROM_SECRETS {
            if vars.contains_key(format!("{name}_SECRET_ARN").as_str()) {
                // The test gives the URL by its secret (`shared::secrets`).
                vars.remove(name);
            }
        }
        if let Some(limit) = options.max_body_bytes {
            vars.insert("MAX_BODY_BYTES", limit.to_string());
        }
        let config = Config::load_from(|name| vars.get(name).cloned())
            .await
            .expect("test config");
        let storage = config.media.storage.clone();
        let state = AppState::build(config).expect("test state");
        if let Some(media) = &state.media {
            media
                .ensure_bucket()
                .await
                .expect("the test's bucket on the S3 stand-in (infra/scripts/cognito.sh)");
        }
        TestApp {
            storage,
            state,
            clinic_a,
            clinic_b,
            database,
            redis_prefix,
            owner,
        }
    }

    pub fn token(&self, clinic: &TestClinic, role: Role) -> String {
        self.token_for(Some(clinic.id), clinic.user(role), 3600, JWT_SECRET)
    }

    /// An admin token of `clinic` that also carries the platform-admin claim.
    pub fn platform_admin_token(&self, clinic: &TestClinic) -> String {
        let now = chrono::Utc::now().timestamp();
        let claims = Claims {
            sub: clinic.user(Role::Admin),
            clinic_id: Some(clinic.id),
            iss: "pulso-local".into(),
            aud: "pulso".into(),
            iat: now,
            exp: now + 3600,
            platform_admin: true,
        };
        mint_hs256(JWT_SECRET.as_bytes(), &claims).expect("sign test token")
    }

    /// A token of `user` (with `clinic` as its `clinic_id` claim, when given).
    pub fn token_for(
        &self,
        clinic: Option<ClinicId>,
        user: UserId,
        expires_in_seconds: i64,
        secret: &str,
    ) -> String {
        let now = chrono::Utc::now().timestamp();
        let claims = Claims {
            sub: user,
            clinic_id: clinic,
            iss: "pulso-local".into(),
            aud: "pulso".into(),
            iat: now,
            exp: now + expires_in_seconds,
            platform_admin: false,
        };
        mint_hs256(secret.as_bytes(), &claims).expect("sign test token")
    }

    /// A client that sends requests through `router` in-process as the holder of `token`.
    pub fn client(&self, router: &Router, token: &str) -> Client {
        Client::new(router.clone(), Some(token.to_string()))
    }

    /// A client without an `Authorization` header.
    pub fn anonymous(&self, router: &Router) -> Client {
        Client::new(router.clone(), None)
    }

    /// A transaction on the owner pool scoped to `clinic` (the owner is subject to FORCE RLS).
    /// Every key of the job queue that this test's two clinics can have written: what a Redis
    /// that lost its data would have lost.
    pub fn queue_keys(&self) -> Vec<String> {
        let keys = self.state.keys.queue();
        vec![
            keys.ready(self.clinic_a.id),
            keys.ready(self.clinic_b.id),
            keys.fresh,
            keys.active,
            keys.processing,
            keys.delayed,
            keys.known,
        ]
    }

    /// Every object in this test's media bucket.
    pub async fn media_keys(&self) -> Vec<String> {
        self.state
            .media()
            .expect("a media bucket")
            .keys()
            .await
            .expect("the bucket's keys")
    }

    /// Another clinic, in an organization of its own, with four users of its own.
    pub async fn add_clinic(&self, slug: &str) -> TestClinic {
        seed_clinic(&self.owner, slug).await
    }

    /// Makes `user` (of any clinic) a member of `clinic` too, with `role`.
    pub async fn add_membership(&self, clinic: ClinicId, user: UserId, role: Role) {
        let mut tx = self.owner_tx(clinic).await;
        join(&mut tx, clinic, user, role).await;
        tx.commit().await.expect("commit membership");
    }

    pub async fn owner_tx(&self, clinic: ClinicId) -> TenantTx {
        shared::db::begin_tenant(&self.owner, clinic)
            .await
            .expect("owner tenant transaction")
    }

    /// Rows of `table` belonging to `clinic`: proof that a rejected request wrote nothing.
    pub async fn count(&self, table: &str, clinic: ClinicId) -> i64 {
        let mut tx = self.owner_tx(clinic).await;
        let count: i64 = sqlx::query_scalar(&format!(
            "SELECT count(*) FROM {table} WHERE clinic_id = $1"
        ))
        .bind(clinic)
        .fetch_one(&mut *tx)
        .await
        .expect("count rows");
        tx.rollback().await.ok();
        count
    }

    /// The app's state with its pool connected as pulso_system instead (what the scheduler
    /// runs on): same cache, keys and Redis prefix. The pool connects lazily.
    pub fn system_state(&self) -> AppState {
        let config = shared::config::DatabaseConfig {
            url: shared::config::Secret::new(system_url_for(&self.database)),
            max_connections: 4,
            ..self.state.config.database.clone()
        };
        AppState {
            db: shared::db::pool(&config).expect("TEST_SYSTEM_DATABASE_URL"),
            db_rotation: None,
            ..self.state.clone()
        }
    }

    pub async fn redis(&self) -> redis::aio::MultiplexedConnection {
        redis::Client::open(redis_url())
            .expect("redis url")
            .get_multiplexed_async_connection()
            .await
            .expect("connect to redis")
    }
}

/// Runs `cleanup` to its end from a `Drop`: a drop runs inside the test's runtime, which is
/// blocked while it waits, so the work gets a thread and a runtime of its own.
pub fn clean_up<F, Work>(cleanup: F)
where
    F: FnOnce() -> Work + Send + 'static,
    Work: std::future::Future<Output = ()>,
{
    let thread = std::thread::spawn(move || {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("cleanup runtime")
            .block_on(cleanup());
    });
    let _ = thread.join();
}

impl Drop for TestApp {
    fn drop(&mut self) {
        let database = self.database.clone();
        let prefix = self.redis_prefix.clone();
        let storage = self.storage.clone();
        // Fresh connections: the pools' sockets belong to the test's runtime and must not be
        // touched from here; `WITH (FORCE)` ends them.
        clean_up(move || async move {
            let dropped = match PgConnection::connect_with(&admin_options(None)).await {
                Ok(mut admin) => {
                    sqlx::query(&format!("DROP DATABASE IF EXISTS {database} WITH (FORCE)"))
                        .execute(&mut admin)
                        .await
                        .map(drop)
                }
                Err(error) => Err(error),
            };
            if let Err(error) = dropped {
                // FORCE must end the app role's sessions: the owner role needs membership in
                // pulso_app (infra/scripts/services.sh grants it).
                eprintln!("warning: test database {database} was not dropped: {error}");
            }
            delete_prefix(&prefix).await;
            if let Some(storage) = storage {
                let bucket = storage.bucket.clone();
                // A test that pointed elsewhere (no stand-in reachable) has nothing to remove.
                if let Err(error) = shared::media::MediaStore::new(storage)
                    .remove_bucket()
                    .await
                {
                    eprintln!("warning: test bucket {bucket} was not removed: {error}");
                }
            }
        });
    }
}

/// Removes this test's Redis keys. SCAN is fine here: it is test cleanup, not a request path.
async fn delete_prefix(prefix: &str) {
    let Ok(client) = redis::Client::open(redis_url()) else {
        return;
    };
    let Ok(mut connection) = client.get_multiplexed_async_connection().await else {
        return;
    };
    let pattern = format!("{prefix}:*");
    let mut cursor: u64 = 0;
    loop {
        let Ok((next, keys)): Result<(u64, Vec<String>), _> = redis::cmd("SCAN")
            .arg(cursor)
            .arg("MATCH")
            .arg(&pattern)
            .arg("COUNT")
            .arg(1000)
            .query_async(&mut connection)
            .await
        else {
            return;
        };
        if !keys.is_empty() {
            let _: Result<(), _> = redis::cmd("DEL")
                .arg(&keys)
                .query_async(&mut connection)
                .await;
        }
        if next == 0 {
            return;
        }
        cursor = next;
    }
}

fn admin_options(database: Option<&str>) -> PgConnectOptions {
    let options = PgConnectOptions::from_str(&admin_url()).expect("TEST_ADMIN_DATABASE_URL");
    match database {
        Some(name) => options.database(name),
        None => options,
    }
}

async fn admin_connection(database: Option<&str>) -> PgConnection {
    PgConnection::connect_with(&admin_options(database))
        .await
        .expect("connect as the owner role: is PostgreSQL up? run infra/scripts/services.sh")
}

/// The application role's URL with the database name swapped for this test's.
pub fn app_url_for(database: &str) -> String {
    with_database(app_url(), database)
}

/// The schema owner's connection string (pulso_owner) to the database `database`.
pub fn admin_url_for(database: &str) -> String {
    with_database(admin_url(), database)
}

/// The scheduler's and the worker's connection string (pulso_system) to the test database
/// `database`.
pub fn system_url_for(database: &str) -> String {
    with_database(system_url(), database)
}

/// `base` (a connection URL) with its database name swapped for `database`.
fn with_database(base: String, database: &str) -> String {
    let (head, tail) = base.split_once('?').unwrap_or((base.as_str(), ""));
    let head = head.rsplit_once('/').map_or(head, |(h, _)| h);
    if tail.is_empty() {
        format!("{head}/{database}")
    } else {
        format!("{head}/{database}?{tail}")
    }
}

/// The migrated template database for the current migrations, created once per schema
/// version: concurrent test processes serialise on an advisory lock, and a template is
/// published by rename only once fully migrated.
async fn ensure_template() -> String {
    let fingerprint =
        shared::db::MIGRATOR
            .iter()
            .fold(0xcbf2_9ce4_8422_2325_u64, |hash, migration| {
                migration
                    .checksum
                    .iter()
                    .chain(migration.version.to_le_bytes().iter())
                    .fold(hash, |h, byte| {
                        (h ^ u64::from(*byte)).wrapping_mul(0x0100_0000_01b3)
                    })
            });
    let template = format!("pulso_tpl_{fingerprint:016x}");
    let building = format!("{template}_building");

    let mut admin = admin_connection(None).await;
    sqlx::query("SELECT pg_advisory_lock($1)")
        .bind(ADVISORY_LOCK_KEY)
        .execute(&mut admin)
        .await
        .expect("template lock");
    let exists: bool =
        sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = $1)")
            .bind(&template)
            .fetch_one(&mut admin)
            .await
            .expect("look up the template");
    if !exists {
        for statement in [
            format!("DROP DATABASE IF EXISTS {building} WITH (FORCE)"),
            format!("CREATE DATABASE {building}"),
        ] {
            sqlx::query(&statement)
                .execute(&mut admin)
                .await
                .expect("prepare the template database");
        }
        let mut connection = admin_connection(Some(&building)).await;
        shared::db::MIGRATOR
            .run(&mut connection)
            .await
            .expect("migrations apply to a fresh database");
        connection.close().await.ok();
        sqlx::query(&format!("ALTER DATABASE {building} RENAME TO {template}"))
            .execute(&mut admin)
            .await
            .expect("publish the template");
        // Templates of older schema versions are dead weight now.
        let stale: Vec<String> = sqlx::query_scalar(
            "SELECT datname FROM pg_database WHERE datname LIKE 'pulso\\_tpl\\_%' AND datname <> $1",
        )
        .bind(&template)
        .fetch_all(&mut admin)
        .await
        .unwrap_or_default();
        for name in stale {
            let _ = sqlx::query(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
                .execute(&mut admin)
                .await;
        }
    }
    sweep_abandoned_databases(&mut admin).await;
    sqlx::query("SELECT pg_advisory_unlock($1)")
        .bind(ADVISORY_LOCK_KEY)
        .execute(&mut admin)
        .await
        .expect("template unlock");
    admin.close().await.ok();
    template
}

/// Test databases older than this were left by a killed run (a normal run drops its own).
const ABANDONED_AFTER_SECONDS: i64 = 6 * 3600;

async fn sweep_abandoned_databases(admin: &mut PgConnection) {
    let names: Vec<String> =
        sqlx::query_scalar("SELECT datname FROM pg_database WHERE datname LIKE 'pulso\\_test\\_%'")
            .fetch_all(&mut *admin)
            .await
            .unwrap_or_default();
    let now = chrono::Utc::now().timestamp();
    for name in names {
        let created = name
            .strip_prefix("pulso_test_")
            .and_then(|rest| rest.split('_').next())
            .and_then(|seconds| seconds.parse::<i64>().ok());
        if created.is_some_and(|created| now - created > ABANDONED_AFTER_SECONDS) {
            let _ = sqlx::query(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
                .execute(&mut *admin)
                .await;
        }
    }
}

/// A clinic in an organization of its own, with one user of each role (and a second dentist).
async fn seed_clinic(owner: &PgPool, slug: &str) -> TestClinic {
    let clinic = ClinicId::new_random();
    let mut tx = shared::db::begin_platform(owner, clinic)
        .await
        .expect("seed transaction");
    let organization: uuid::Uuid =
        sqlx::query_scalar("INSERT INTO organizations (slug, name) VALUES ($1, $2) RETURNING id")
            .bind(slug)
            .bind(format!("Grupo {slug}"))
            .fetch_one(&mut *tx)
            .await
            .expect("seed organization");
    sqlx::query("INSERT INTO clinics (id, organization_id, slug, name) VALUES ($1, $2, $3, $4)")
        .bind(clinic)
        .bind(organization)
        .bind(slug)
        .bind(format!("Clínica {slug}"))
        .execute(&mut *tx)
        .await
        .expect("seed clinic");
    let users = [
        (UserId::new_random(), Role::Admin, "admin"),
        (UserId::new_random(), Role::Dentist, "dentist"),
        (UserId::new_random(), Role::Dentist, "dentist2"),
        (UserId::new_random(), Role::Receptionist, "reception"),
    ];
    for (id, role, name) in users {
        sqlx::query("INSERT INTO users (id, email, full_name) VALUES ($1, $2, $3)")
            .bind(id)
            .bind(format!("{name}@{slug}.pulso.test"))
            .bind(format!("Test {name}"))
            .execute(&mut *tx)
            .await
            .expect("seed user");
        join(&mut tx, clinic, id, role).await;
    }
    // Each clinic's admin may act as a platform operator when its token says so
    // (`platform_admin_token`); the claim alone would not be enough.
    sqlx::query("INSERT INTO platform_operators (user_id, reason) VALUES ($1, 'test harness')")
        .bind(users[0].0)
        .execute(&mut *tx)
        .await
        .expect("seed platform operator");
    tx.commit().await.expect("commit seed");
    TestClinic {
        id: clinic,
        admin: users[0].0,
        dentist: users[1].0,
        second_dentist: users[2].0,
        receptionist: users[3].0,
    }
}

async fn join(tx: &mut TenantTx, clinic: ClinicId, user: UserId, role: Role) {
    sqlx::query("INSERT INTO memberships (clinic_id, user_id, role) VALUES ($1, $2, $3)")
        .bind(clinic)
        .bind(user)
        .bind(role)
        .execute(&mut **tx)
        .await
        .expect("seed membership");
    if role == Role::Dentist {
        // Open around the clock, every day: the tests of other features book whenever they
        // like. The agenda's own tests set real hours (`PUT /working-hours/{dentist_id}`).
        sqlx::query(
            "INSERT INTO working_hours (clinic_id, dentist_id, weekday, start_minute, end_minute,
                                        valid_from)
             SELECT $1, $2, weekday, 0, 1440, DATE '2000-01-01'
               FROM generate_series(1, 7) AS d(weekday)",
        )
        .bind(clinic)
        .bind(user)
        .execute(&mut **tx)
        .await
        .expect("seed working hours");
    }
}
