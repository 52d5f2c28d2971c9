//! PostgreSQL access: a small lazy pool suited to Lambda, the embedded migrations, and
//! tenant-scoped transactions that row-level security relies on.

use crate::config::{DatabaseConfig, SecretRef};
use crate::ids::{ClinicId, OrganizationId, UserId};
use sqlx::postgres::{PgConnectOptions, PgPoolOptions, PgSslMode};
use sqlx::{PgPool, Postgres, Transaction};
use std::str::FromStr;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// The schema, compiled into every binary that needs to migrate (the dev tool and the tests).
/// Migrations run as the tables' owner, never as the application role.
pub static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("../migrations");

pub type TenantTx = Transaction<'static, Postgres>;

#[derive(Debug, thiserror::Error)]
pub enum DbError {
    /// PostgreSQL cannot be reached or has no free connection in time: the caller answers 503.
    #[error("database unavailable")]
    Unavailable(#[source] sqlx::Error),
    #[error("database error")]
    Query(#[source] sqlx::Error),
}

impl DbError {
    /// Whether PostgreSQL refused the credentials (28P01, 28000): the pool's URL is out of
    /// date, as after a rotation ([`Rotation`]).
    pub fn credentials_refused(&self) -> bool {
        matches!(self, DbError::Unavailable(sqlx::Error::Database(error))
            if matches!(error.code().as_deref(), Some("28P01" | "28000")))
    }

    /// The name of the violated constraint, if this is a constraint violation.
    pub fn constraint(&self) -> Option<&str> {
        match self {
            DbError::Query(sqlx::Error::Database(error)) => error.constraint(),
            _ => None,
        }
    }
}

impl From<sqlx::Error> for DbError {
    fn from(error: sqlx::Error) -> Self {
        match &error {
            sqlx::Error::PoolTimedOut
            | sqlx::Error::PoolClosed
            | sqlx::Error::Io(_)
            | sqlx::Error::Tls(_)
            | sqlx::Error::WorkerCrashed => DbError::Unavailable(error),
            // 57P01 admin shutdown, 57P03 cannot connect now, 53300 too many connections;
            // 28P01 and 28000, the credentials refused (a rotated password the function has
            // not read yet, a role not created yet): the request may succeed later, nothing
            // in it was wrong.
            sqlx::Error::Database(db)
                if matches!(
                    db.code().as_deref(),
                    Some("57P01" | "57P03" | "53300" | "28P01" | "28000")
                ) =>
            {
                DbError::Unavailable(error)
            }
            _ => DbError::Query(error),
        }
    }
}

/// Builds the pool without connecting: a cold start never waits for (or fails on) PostgreSQL,
/// and the first query connects. Health reports the database as down instead of the
/// function crashing at init.
pub fn pool(config: &DatabaseConfig) -> Result<PgPool, sqlx::Error> {
    let options = connect_options(config.url.expose(), config)?;
    Ok(PgPoolOptions::new()
        .max_connections(config.max_connections)
        .min_connections(0)
        .acquire_timeout(config.acquire_timeout)
        // Connections idle longer than a Lambda freeze are likely dead on the server side.
        .idle_timeout(Some(Duration::from_secs(60)))
        .max_lifetime(Some(Duration::from_secs(15 * 60)))
        .test_before_acquire(false)
        .connect_lazy_with(options))
}

/// The certificate authorities of Amazon RDS and Aurora (every region, current ones), which a
/// `sslmode=verify-full` connection trusts beside the usual web roots unless its URL names a
/// `sslrootcert` of its own. Where it comes from and how to renew it: the file's header.
const RDS_CERTIFICATE_AUTHORITIES: &[u8] = include_bytes!("../tls/rds-ca-bundle.pem");

/// How to connect to `url`: as it says, trusting the RDS authorities too when it asks for the
/// server's certificate to be verified (and names no `sslrootcert` of its own).
pub fn url_options(url: &str) -> Result<PgConnectOptions, sqlx::Error> {
    let options = PgConnectOptions::from_str(url)?;
    let verifies = matches!(
        options.get_ssl_mode(),
        PgSslMode::VerifyFull | PgSslMode::VerifyCa
    );
    Ok(if verifies && !url.contains("sslrootcert=") {
        options.ssl_root_cert_from_pem(RDS_CERTIFICATE_AUTHORITIES.to_vec())
    } else {
        options
    })
}

/// How a pool of `config` connects to `url`.
fn connect_options(url: &str, config: &DatabaseConfig) -> Result<PgConnectOptions, sqlx::Error> {
    let statement_timeout = config.statement_timeout.as_millis().to_string();
    Ok(url_options(url)?
        .application_name(
            std::env::var("AWS_LAMBDA_FUNCTION_NAME")
                .as_deref()
                .unwrap_or("pulso"),
        )
        .options([("statement_timeout", statement_timeout.as_str())]))
}

/// The least time between two reads of a pool's secret: a burst of refused requests in one
/// environment reads it once.
const REREAD_AFTER: Duration = Duration::from_secs(1);

/// A pool whose URL came from a secret, read again when PostgreSQL refuses its credentials:
/// a rotated password reaches the pool's next connections without a deploy or a cold start.
/// The request that met the refusal answers 503 with Retry-After (`crate::http::finish`
/// re-reads before it answers); connections already open keep the password they opened with.
#[derive(Clone, Debug)]
pub struct Rotation {
    pool: PgPool,
    source: SecretRef,
    config: DatabaseConfig,
    read_at: Arc<tokio::sync::Mutex<Option<Instant>>>,
}

impl Rotation {
    /// `pool`'s rotation, if `config`'s URL came from a secret.
    pub fn of(pool: &PgPool, config: &DatabaseConfig) -> Option<Self> {
        config.url_source.clone().map(|source| Self {
            pool: pool.clone(),
            source,
            config: config.clone(),
            read_at: Arc::default(),
        })
    }

    /// Before a scheduled run (a scheduler tick, a worker invocation): takes a connection and,
    /// if PostgreSQL refuses the credentials, reads the secret again there and then, so the run
    /// goes on with the rotated password instead of failing whole. These functions answer no
    /// request through which a refusal would reach `crate::http::finish`. An idle connection is
    /// reused as it is, without a round trip.
    pub async fn before_run(&self) {
        if let Err(error) = self.pool.acquire().await
            && DbError::from(error).credentials_refused()
        {
            self.reread().await;
        }
    }

    /// Reads the secret again (unless it was read within [`REREAD_AFTER`]) and connects with
    /// what it holds from now on. A secret that cannot be read or parsed is logged and the pool
    /// keeps its URL.
    pub async fn reread(&self) {
        let mut read_at = self.read_at.lock().await;
        if read_at.is_some_and(|at| at.elapsed() < REREAD_AFTER) {
            return;
        }
        *read_at = Some(Instant::now());
        let options = match crate::secrets::read_again(&self.source).await {
            Ok(url) => connect_options(&url, &self.config)
                .map_err(|_| "its url is not a PostgreSQL connection string".to_owned()),
            Err(problem) => Err(problem),
        };
        match options {
            Ok(options) => {
                self.pool.set_connect_options(options);
                tracing::warn!(
                    secret = %self.source.arn,
                    "PostgreSQL refused the credentials: the secret was read again"
                );
            }
            Err(problem) => tracing::error!(
                secret = %self.source.arn,
                %problem,
                "PostgreSQL refused the credentials and the secret could not be read again"
            ),
        }
    }
}

/// Starts a transaction in which row-level security sees only `clinic`.
///
/// `BEGIN` and `SET LOCAL` travel in one round trip. The clinic id is a parsed UUID, so
/// formatting it into the statement cannot inject SQL. The setting ends with the transaction,
/// so a pooled connection never carries one clinic's id into another request.
pub async fn begin_tenant(pool: &PgPool, clinic: ClinicId) -> Result<TenantTx, DbError> {
    let statement = format!("BEGIN; SET LOCAL app.clinic_id = '{}'", clinic.as_uuid());
    Ok(pool.begin_with(statement).await?)
}

/// Starts a transaction in which row-level security sees `user`'s own memberships and the
/// clinics they belong to, and no clinic's rows: choosing a clinic and `GET /me`. Same single
/// round trip and transaction-local setting as [`begin_tenant`].
pub async fn begin_user(pool: &PgPool, user: UserId) -> Result<TenantTx, DbError> {
    let statement = format!("BEGIN; SET LOCAL app.user_id = '{}'", user.as_uuid());
    Ok(pool.begin_with(statement).await?)
}

/// Starts a transaction in which row-level security shows the one `user_identities` row of a
/// verified token's issuer and subject, and nothing else. Unlike ids, they are arbitrary text,
/// so they are bound with `set_config` rather than formatted in (one more round trip; only a
/// directory miss pays it, `shared::access`).
pub async fn begin_identity(
    pool: &PgPool,
    issuer: &str,
    subject: &str,
) -> Result<TenantTx, DbError> {
    let mut tx = pool.begin().await?;
    sqlx::query(
        "SELECT set_config('app.identity_issuer', $1, true), \
                set_config('app.identity_subject', $2, true)",
    )
    .bind(issuer)
    .bind(subject)
    .execute(&mut *tx)
    .await?;
    Ok(tx)
}

/// Starts a transaction in which row-level security shows `organization` and its clinics (not
/// their rows): what an organization's admin reads, once the gate found them one
/// (`shared::access::OrgAdmin`). Same single round trip as [`begin_tenant`].
pub async fn begin_organization(
    pool: &PgPool,
    organization: OrganizationId,
) -> Result<TenantTx, DbError> {
    let statement = format!(
        "BEGIN; SET LOCAL app.organization_id = '{}'",
        organization.as_uuid()
    );
    Ok(pool.begin_with(statement).await?)
}

/// A tenant transaction of `clinic` that also sees `user` as themselves: the caller's standing
/// in the clinic, told apart from "no such user".
pub async fn begin_member(
    pool: &PgPool,
    clinic: ClinicId,
    user: UserId,
) -> Result<TenantTx, DbError> {
    let statement = format!(
        "BEGIN; SET LOCAL app.clinic_id = '{}'; SET LOCAL app.user_id = '{}'",
        clinic.as_uuid(),
        user.as_uuid()
    );
    Ok(pool.begin_with(statement).await?)
}

/// Starts a tenant transaction of `clinic` that may also write what every clinic shares (the
/// global catalog rows): the policies guarded by `app_platform_admin()` admit it.
///
/// Call it only after the caller proved the platform-admin claim
/// (`Principal::require_platform_admin`); the database cannot tell who set the flag. One round
/// trip like [`begin_tenant`], and the flag ends with the transaction.
pub async fn begin_platform(pool: &PgPool, clinic: ClinicId) -> Result<TenantTx, DbError> {
    let statement = format!(
        "BEGIN; SET LOCAL app.clinic_id = '{}'; SET LOCAL app.platform_admin = 'on'",
        clinic.as_uuid()
    );
    Ok(pool.begin_with(statement).await?)
}
