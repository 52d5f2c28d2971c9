//! Migrations on deploy: the `migrate` function, which CloudFormation runs on every deploy (the
//! custom resource `Migrations` in template.yaml) before it updates any other function, so no
//! code runs against a schema older than itself and nobody sets a database up by hand. The dev
//! tool's `migrate` runs the same [`apply`] locally.
//!
//! One run, as the schema owner (`OWNER_DATABASE_URL`, from its secret like every connection
//! string: `crate::secrets`):
//! 1. [`apply`]: the migrations not applied yet (`crate::db::MIGRATOR`), each in its own
//!    transaction, under sqlx's advisory lock, so two runs at once apply each one once.
//!    Forward-only: an applied migration whose text changed stops the run; migrations the
//!    database has and this code lacks (a rollback to the previous deploy) are left alone, and
//!    that code runs on the newer schema, which is why a migration never breaks the code before it.
//! 2. [`set_logins`]: the logins of `DATABASE_URL` and `SYSTEM_DATABASE_URL` get the password
//!    their URL holds. A URL naming the role the migrations create (`pulso_app`,
//!    `pulso_system`) makes that role a login; any other name becomes a login role of its own,
//!    created once and made a member of it. The secrets are the truth, so a first deploy needs
//!    no hand-made role, and a rotation function that changes a secret and the password
//!    together is simply repeated.
//!
//! Running it again changes nothing. How CloudFormation is answered, always and in time, is
//! `custom_resource`.

mod custom_resource;

pub use custom_resource::{Answer, on_deploy};

use crate::config::{ConfigError, Secret};
use crate::db::MIGRATOR;
use sqlx::migrate::{MigrateError, Migrator};
use sqlx::{Connection, PgConnection};
use std::time::Duration;

/// The settings of a run, each also accepted as `<NAME>_SECRET_ARN`.
const SETTINGS: [&str; 3] = ["OWNER_DATABASE_URL", "DATABASE_URL", "SYSTEM_DATABASE_URL"];

/// The functions' logins: the setting naming each, and the role it logs in as.
const LOGINS: [(&str, &str); 2] = [
    ("DATABASE_URL", "pulso_app"),
    ("SYSTEM_DATABASE_URL", "pulso_system"),
];

/// The advisory lock [`apply`] holds (any fixed number no other lock uses).
const APPLY_LOCK: i64 = 0x7075_6c73_6f4d_6967; // "pulsoMig"

/// The advisory lock [`set_logins`] holds (any fixed number no other lock uses).
const LOGINS_LOCK: i64 = 0x7075_6c73_6f4c_6f67; // "pulsoLog"

/// How long the owner's connection may take to open.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// What a run needs.
#[derive(Clone, Debug)]
pub struct Settings {
    /// The schema owner (on RDS, the master user or a role it made owner).
    pub owner: Secret,
    /// The functions' logins, by the role each logs in as.
    pub logins: Vec<Login>,
}

#[derive(Clone, Debug)]
pub struct Login {
    /// `pulso_app` or `pulso_system`.
    pub role: &'static str,
    pub user: String,
    pub password: Secret,
}

/// What a run did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Migrated {
    /// Migrations applied by this run (0 when the schema was up to date).
    pub applied: u64,
    /// The newest migration this code has.
    pub latest: i64,
    /// The logins given their password, by user name.
    pub logins: Vec<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum RunError {
    #[error("cannot connect as the schema owner: {0}")]
    Connect(#[source] sqlx::Error),
    #[error("the migrations did not apply: {0}")]
    Migrate(#[source] MigrateError),
    #[error("the logins could not be set up: {0}")]
    Logins(#[source] sqlx::Error),
}

impl Settings {
    /// The settings from any variable source (the process environment, a map in tests),
    /// reading the secrets it names.
    pub async fn load_from(lookup: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let fetched = crate::secrets::fetch(&SETTINGS, &lookup).await?;
        let value = |name: &str| {
            fetched
                .get(name)
                .map(|(url, _)| url.clone())
                .or_else(|| lookup(name))
        };
        let mut problems = Vec::new();
        let owner = value("OWNER_DATABASE_URL");
        let owner_user = owner
            .as_deref()
            .and_then(user_and_password)
            .map(|(user, _)| user);
        if owner_user.is_none() {
            problems.push(
                "OWNER_DATABASE_URL (or OWNER_DATABASE_URL_SECRET_ARN): required, the schema \
                 owner's postgres:// URL with its user"
                    .to_owned(),
            );
        }
        let mut logins = Vec::new();
        for (name, role) in LOGINS {
            let Some(url) = value(name) else { continue };
            match user_and_password(&url) {
                Some((user, _)) if Some(&user) == owner_user.as_ref() => problems.push(format!(
                    "{name}: its user is the schema owner's; the functions must log in as \
                     {role} or a member of it, never as the owner (row-level security would not \
                     apply)"
                )),
                Some((user, Some(password))) => logins.push(Login {
                    role,
                    user,
                    password: Secret::new(password),
                }),
                _ => problems.push(format!(
                    "{name}: must be a postgres:// URL with a user and a password"
                )),
            }
        }
        match owner {
            Some(owner) if problems.is_empty() => Ok(Self {
                owner: Secret::new(owner),
                logins,
            }),
            _ => Err(ConfigError { problems }),
        }
    }
}

/// The user and (decoded) password of a `postgres://` URL.
fn user_and_password(url: &str) -> Option<(String, Option<String>)> {
    let parsed = url::Url::parse(url).ok()?;
    if !matches!(parsed.scheme(), "postgres" | "postgresql") || parsed.username().is_empty() {
        return None;
    }
    let decode = |text: &str| {
        percent_encoding::percent_decode_str(text)
            .decode_utf8()
            .ok()
            .map(|text| text.into_owned())
    };
    Some((
        decode(parsed.username())?,
        parsed.password().and_then(decode),
    ))
}

/// One run: the migrations, then the logins.
pub async fn run(settings: &Settings) -> Result<Migrated, RunError> {
    let options = crate::db::url_options(settings.owner.expose())
        .map_err(RunError::Connect)?
        .application_name("pulso-migrate");
    let mut connection =
        tokio::time::timeout(CONNECT_TIMEOUT, PgConnection::connect_with(&options))
            .await
            .map_err(|_| RunError::Connect(sqlx::Error::PoolTimedOut))?
            .map_err(RunError::Connect)?;
    let applied = apply(&mut connection).await.map_err(RunError::Migrate)?;
    let logins = set_logins(&mut connection, &settings.logins)
        .await
        .map_err(RunError::Logins)?;
    connection.close().await.ok();
    Ok(Migrated {
        applied,
        latest: latest(),
        logins,
    })
}

/// The newest migration this code has.
pub fn latest() -> i64 {
    MIGRATOR
        .iter()
        .map(|migration| migration.version)
        .max()
        .unwrap_or_default()
}

/// Applies the migrations `connection`'s database lacks (as the schema owner); how many. Runs
/// at once take turns (an advisory lock of the database around the count and the run; sqlx
/// takes its own inside), so each counts what it applied itself.
pub async fn apply(connection: &mut PgConnection) -> Result<u64, MigrateError> {
    sqlx::query("SELECT pg_advisory_lock($1)")
        .bind(APPLY_LOCK)
        .execute(&mut *connection)
        .await?;
    let applied = apply_locked(connection).await;
    let unlocked = sqlx::query("SELECT pg_advisory_unlock($1)")
        .bind(APPLY_LOCK)
        .execute(&mut *connection)
        .await;
    let applied = applied?;
    unlocked?;
    Ok(applied)
}

async fn apply_locked(connection: &mut PgConnection) -> Result<u64, MigrateError> {
    let before = applied(connection).await?;
    let migrator = Migrator {
        migrations: MIGRATOR.migrations.clone(),
        // A rollback runs the previous deploy's code on the newer schema: not an error.
        ignore_missing: true,
        locking: true,
        no_tx: false,
    };
    migrator.run(&mut *connection).await?;
    Ok(applied(connection).await?.saturating_sub(before))
}

/// Migrations recorded as applied (none before the first run made the table).
async fn applied(connection: &mut PgConnection) -> Result<u64, sqlx::Error> {
    // Checked first: a statement naming a missing table fails when parsed, whatever its CASE.
    let exists: bool = sqlx::query_scalar("SELECT to_regclass('_sqlx_migrations') IS NOT NULL")
        .fetch_one(&mut *connection)
        .await?;
    if !exists {
        return Ok(0);
    }
    let count: i64 = sqlx::query_scalar("SELECT count(*) FROM _sqlx_migrations WHERE success")
        .fetch_one(&mut *connection)
        .await?;
    Ok(u64::try_from(count).unwrap_or_default())
}

/// Gives each login its password (creating it, as a member of its role, when it is not the
/// role itself), in one transaction; the user names done. The statements are built by
/// PostgreSQL's `format` (`%I`, `%L`), so a name or a password cannot break out of them, and
/// carry the password's SCRAM verifier rather than the password ([`stored_password`]).
pub async fn set_logins(
    connection: &mut PgConnection,
    logins: &[Login],
) -> Result<Vec<String>, sqlx::Error> {
    let mut tx = connection.begin().await?;
    // Roles are the server's: two runs at once (two stacks on one server, a retried deploy)
    // take turns, or both would create the same role.
    sqlx::query("SELECT pg_advisory_xact_lock($1)")
        .bind(LOGINS_LOCK)
        .execute(&mut *tx)
        .await?;
    for login in logins {
        if login.user != login.role {
            run_formatted(
                &mut tx,
                "SELECT format('CREATE ROLE %I', $1::text) \
                 WHERE NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = $1)",
                &[&login.user],
            )
            .await?;
            run_formatted(
                &mut tx,
                "SELECT format('GRANT %I TO %I', $1::text, $2::text)",
                &[login.role, &login.user],
            )
            .await?;
        }
        run_formatted(
            &mut tx,
            "SELECT format('ALTER ROLE %I WITH LOGIN PASSWORD %L', $1::text, $2::text)",
            &[&login.user, &stored_password(login.password.expose())],
        )
        .await?;
    }
    tx.commit().await?;
    Ok(logins.iter().map(|login| login.user.clone()).collect())
}

/// Runs the statement `query` builds with PostgreSQL's `format` from `args` (bound as text), if
/// it builds one: role statements take no bound parameters, so they are built where quoting is
/// PostgreSQL's own.
async fn run_formatted(
    connection: &mut PgConnection,
    query: &str,
    args: &[&str],
) -> Result<(), sqlx::Error> {
    let mut formatted = sqlx::query_scalar::<_, String>(query);
    for arg in args {
        formatted = formatted.bind(*arg);
    }
    if let Some(statement) = formatted.fetch_optional(&mut *connection).await? {
        sqlx::raw_sql(&statement).execute(&mut *connection).await?;
    }
    Ok(())
}

/// Iterations of a SCRAM verifier: PostgreSQL's default (`scram_iterations`).
const SCRAM_ITERATIONS: u32 = 4096;

/// What `ALTER ROLE … PASSWORD` is given for `password`: its SCRAM-SHA-256 verifier, as
/// PostgreSQL would store it, so the password itself is never in a statement the server may
/// log (`log_statement = ddl` is a common audit setting). A password that is not plain printable
/// ASCII is given as it is: PostgreSQL normalises those (SASLprep) before hashing, and so must
/// whoever hashes them. Secrets Manager's generated passwords are printable ASCII.
fn stored_password(password: &str) -> String {
    if !password
        .bytes()
        .all(|byte| byte.is_ascii_graphic() || byte == b' ')
    {
        return password.to_owned();
    }
    scram_verifier(password, &rand::random::<[u8; 16]>())
}

/// The SCRAM-SHA-256 verifier of `password` with `salt` (RFC 5802, RFC 7677), in PostgreSQL's
/// notation: `SCRAM-SHA-256$<iterations>:<salt>$<StoredKey>:<ServerKey>`.
fn scram_verifier(password: &str, salt: &[u8]) -> String {
    use base64::Engine;
    use base64::engine::general_purpose::STANDARD;
    use hmac::{Hmac, Mac};
    use sha2::{Digest, Sha256};
    let mac = |key: &[u8], data: &[&[u8]]| {
        let mut mac = Hmac::<Sha256>::new_from_slice(key).expect("HMAC takes any key length");
        for part in data {
            mac.update(part);
        }
        mac.finalize().into_bytes()
    };
    // PBKDF2-HMAC-SHA-256, one block (the key is as long as the hash).
    let mut block = mac(password.as_bytes(), &[salt, &1u32.to_be_bytes()]);
    let mut salted = block;
    for _ in 1..SCRAM_ITERATIONS {
        block = mac(password.as_bytes(), &[&block]);
        for (out, byte) in salted.iter_mut().zip(block.iter()) {
            *out ^= byte;
        }
    }
    let client_key = mac(&salted, &[b"Client Key"]);
    let server_key = mac(&salted, &[b"Server Key"]);
    format!(
        "SCRAM-SHA-256${SCRAM_ITERATIONS}:{}${}:{}",
        STANDARD.encode(salt),
        STANDARD.encode(Sha256::digest(client_key)),
        STANDARD.encode(server_key)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_verifier_is_the_one_postgresql_stores() {
        // Computed apart with Python's hashlib.pbkdf2_hmac and hmac, whose formula matched the
        // rolpassword PostgreSQL 15 stored for `PASSWORD 'pencil'` (same salt read back).
        assert_eq!(
            scram_verifier("pencil", b"0123456789abcdef"),
            "SCRAM-SHA-256$4096:MDEyMzQ1Njc4OWFiY2RlZg==$\
             nQpbZ77WudtqufPwikHXGRt6g2QJ4zns8bZLw273DRM=:\
             jn2amWP1q1h+jgjy0YTO14S6/F02SV7taipOeB7ef20="
        );
        // A fresh salt each time; anything but printable ASCII goes to the server as it is.
        assert_ne!(stored_password("pencil"), stored_password("pencil"));
        assert!(stored_password("pencil").starts_with("SCRAM-SHA-256$4096:"));
        assert_eq!(stored_password("contraseña"), "contraseña");
        assert_eq!(stored_password("tab\there"), "tab\there");
    }

    #[test]
    fn the_template_reruns_the_migrations_when_one_is_added() {
        // CloudFormation updates the `Migrations` resource, and so runs them, only when one of
        // its properties changes: LatestMigration must follow migrations/.
        let template = std::fs::read_to_string(
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../template.yaml"),
        )
        .expect("template.yaml");
        let declared: Vec<&str> = template
            .lines()
            .filter_map(|line| line.trim().strip_prefix("LatestMigration:"))
            .map(|value| value.trim().trim_matches('"'))
            .collect();
        assert_eq!(
            declared,
            vec![latest().to_string()],
            "set Migrations' LatestMigration in template.yaml to the newest migration's version"
        );
    }

    #[test]
    fn a_login_url_gives_its_decoded_user_and_password() {
        assert_eq!(
            user_and_password("postgres://pulso_app:p%40ss%3Aw%2Frd@db:5432/pulso"),
            Some(("pulso_app".into(), Some("p@ss:w/rd".into())))
        );
        assert_eq!(
            user_and_password("postgresql://owner@db/pulso"),
            Some(("owner".into(), None))
        );
        assert_eq!(user_and_password("postgres://db/pulso"), None);
        assert_eq!(user_and_password("mysql://u:p@db/pulso"), None);
    }
}
