//! Owner transactions that step outside FORCEd row-level security, for the few things no tenant
//! transaction can do: find a clinic by slug, reset the demo. (Global catalog rows need no
//! lifting any more: the migrations seed them, and a platform-admin transaction may write them.)
//!
//! Every table has `FORCE ROW LEVEL SECURITY`, so even its owner only sees the clinic named by
//! `app.clinic_id`: a clinic whose id is not known yet cannot be looked up, and rows with
//! `clinic_id IS NULL` cannot be inserted (the insert policies compare `clinic_id` with the
//! current clinic). `SET row_security = off` does not help: for a FORCEd table it makes the
//! owner's queries fail instead of bypassing the policies. Creating a BYPASSRLS role needs a
//! superuser, and a SECURITY DEFINER function runs as the owner, who is subject to FORCE too.
//!
//! What works for the owner without any extra privilege: `ALTER TABLE … NO FORCE ROW LEVEL
//! SECURITY` *inside a transaction*. DDL is transactional in PostgreSQL, so other sessions never
//! see the table unforced: lookups roll the change back, writes put `FORCE` back before
//! committing, and any error rolls everything back. The ALTER takes an ACCESS EXCLUSIVE lock on
//! the table until the transaction ends (milliseconds here); `lock_timeout` turns a long wait
//! behind another session into a clear error. A superuser or BYPASSRLS role needs none of this.

use anyhow::{Context, bail};
use sqlx::{PgPool, Postgres, Transaction};

/// A transaction in which `tables` ignore row-level security for the connected owner.
/// Dropping it rolls back (and so restores FORCE); [`Unscoped::commit`] restores FORCE first.
pub struct Unscoped {
    pub tx: Transaction<'static, Postgres>,
    lifted: Vec<String>,
}

/// How long to wait for another session's lock on a table before giving up.
const LOCK_TIMEOUT: &str = "5s";

impl Unscoped {
    pub async fn begin(pool: &PgPool, tables: &[&str]) -> anyhow::Result<Self> {
        let mut tx = pool
            .begin()
            .await
            .context("starting an owner transaction")?;
        sqlx::query(&format!("SET LOCAL lock_timeout = '{LOCK_TIMEOUT}'"))
            .execute(&mut *tx)
            .await
            .context("setting lock_timeout")?;

        let bypasses_rls: bool = sqlx::query_scalar(
            "SELECT rolsuper OR rolbypassrls FROM pg_roles WHERE rolname = current_user",
        )
        .fetch_one(&mut *tx)
        .await
        .context("reading the attributes of the DATABASE_ADMIN_URL role")?;
        if bypasses_rls {
            return Ok(Self {
                tx,
                lifted: Vec::new(),
            });
        }

        let forced: Vec<String> = sqlx::query_scalar(
            "SELECT c.relname::text
               FROM unnest($1::text[]) AS t(name)
               JOIN pg_class c ON c.oid = to_regclass(t.name)
              WHERE c.relforcerowsecurity",
        )
        .bind(tables)
        .fetch_all(&mut *tx)
        .await
        .context("reading which tables force row-level security")?;

        for table in &forced {
            sqlx::query(&format!(
                r#"ALTER TABLE "{table}" NO FORCE ROW LEVEL SECURITY"#
            ))
            .execute(&mut *tx)
            .await
            .map_err(|error| explain_alter_error(table, error))?;
        }
        Ok(Self { tx, lifted: forced })
    }

    /// Puts `FORCE ROW LEVEL SECURITY` back on every lifted table, then commits.
    pub async fn commit(mut self) -> anyhow::Result<()> {
        for table in &self.lifted {
            sqlx::query(&format!(
                r#"ALTER TABLE "{table}" FORCE ROW LEVEL SECURITY"#
            ))
            .execute(&mut *self.tx)
            .await
            .with_context(|| format!("restoring FORCE ROW LEVEL SECURITY on {table}"))?;
        }
        self.tx.commit().await.context("committing")
    }
}

fn explain_alter_error(table: &str, error: sqlx::Error) -> anyhow::Error {
    let code = match &error {
        sqlx::Error::Database(db) => db.code().map(|code| code.into_owned()),
        _ => None,
    };
    let hint = match code.as_deref() {
        // insufficient_privilege: not the owner.
        Some("42501") => format!(
            "DATABASE_ADMIN_URL must connect as the owner of the tables (pulso_owner) or a \
             superuser, not as the app role: only the owner can lift FORCE ROW LEVEL SECURITY \
             on {table} for the length of a transaction"
        ),
        // lock_not_available: another session holds the table.
        Some("55P03") => format!(
            "another session holds a lock on {table} (a long transaction or a running test?); \
             retry in a moment"
        ),
        _ => format!("lifting FORCE ROW LEVEL SECURITY on {table} for this transaction failed"),
    };
    // The hint already says what failed; sqlx's Display repeats the server's message once more
    // through `source`, so keep only its one-line form.
    anyhow::anyhow!("{hint} ({error})")
}

/// Refuses to go on when the schema is missing, with the command that creates it.
pub async fn require_schema(pool: &PgPool) -> anyhow::Result<()> {
    let migrated: bool = sqlx::query_scalar("SELECT to_regclass('clinics') IS NOT NULL")
        .fetch_one(pool)
        .await
        .context("checking the schema")?;
    if !migrated {
        bail!("the database has no schema yet: run `pulso-devtool migrate` first");
    }
    Ok(())
}
