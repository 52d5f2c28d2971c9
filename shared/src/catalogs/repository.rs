//! Catalog SQL. Reads run in a tenant transaction: row-level security shows the global rows and
//! the caller's clinic's rows only, and every query also names the clinic (or `clinic_id IS
//! NULL`) so the partial unique indexes serve it. Global writes run in a platform-admin
//! transaction (`db::begin_platform`), the only one the global-row policies admit.

use super::types::{CatalogCode, CatalogKind, ItemChanges, MergedRow, StoredItem};
use crate::ids::ClinicId;
use sqlx::PgConnection;

/// The catalog a clinic sees, in one query: global items with the clinic's override merged in
/// (a field the override leaves NULL shows the global value), plus the clinic's own items. A
/// FULL JOIN is "global LEFT JOIN overrides" and "clinic items without a global one" at once.
///
/// An item is active only if both the global row and the clinic's row are: a clinic can hide a
/// global item, not revive one the platform retired. The currency follows the price it belongs
/// to. `clinic = None` gives the global catalog alone; `code = None` gives the whole kind.
const MERGED: &str = "
    SELECT COALESCE(c.code, g.code) AS code,
           COALESCE(c.name, g.name, c.code) AS name,
           COALESCE(c.default_minutes, g.default_minutes) AS default_minutes,
           COALESCE(c.price_cents, g.price_cents) AS price_cents,
           CASE WHEN c.price_cents IS NOT NULL THEN c.currency
                ELSE COALESCE(g.currency, c.currency) END AS currency,
           COALESCE(g.active, true) AND COALESCE(c.active, true) AS active,
           g.id IS NOT NULL AS in_global,
           c.id IS NOT NULL AS in_clinic
      FROM (SELECT id, code, name, default_minutes, price_cents, currency, active
              FROM catalog_items
             WHERE clinic_id IS NULL AND kind = $2 AND ($3::text IS NULL OR code = $3)) AS g
      FULL JOIN
           (SELECT id, code, name, default_minutes, price_cents, currency, active
              FROM catalog_items
             WHERE clinic_id = $1 AND kind = $2 AND ($3::text IS NULL OR code = $3)) AS c
        ON c.code = g.code
     ORDER BY 1";

pub(crate) async fn merged(
    conn: &mut PgConnection,
    clinic: Option<ClinicId>,
    kind: CatalogKind,
    code: Option<&CatalogCode>,
) -> Result<Vec<MergedRow>, sqlx::Error> {
    sqlx::query_as(MERGED)
        .bind(clinic)
        .bind(kind.as_str())
        .bind(code.map(CatalogCode::as_str))
        .fetch_all(conn)
        .await
}

/// Whether the clinic's catalog offers `code` of `kind` now: merged as [`merged`] merges, so
/// it is the clinic's own item or a global one, and active on both sides. Another clinic's
/// items are invisible here (row-level security and the `clinic_id = $1` filter both say so).
pub(crate) async fn offers(
    conn: &mut PgConnection,
    clinic: ClinicId,
    kind: CatalogKind,
    code: &str,
) -> Result<bool, sqlx::Error> {
    sqlx::query_scalar(&format!(
        "SELECT EXISTS (SELECT 1 FROM ({MERGED}) AS item WHERE item.active)"
    ))
    .bind(clinic)
    .bind(kind.as_str())
    .bind(code)
    .fetch_one(conn)
    .await
}

/// The stored row of `owner` (a clinic, or `None` for the global catalog), locked for the rest
/// of the transaction when `lock`.
pub(super) async fn find(
    conn: &mut PgConnection,
    owner: Option<ClinicId>,
    kind: CatalogKind,
    code: &CatalogCode,
    lock: bool,
) -> Result<Option<StoredItem>, sqlx::Error> {
    let lock = if lock { " FOR UPDATE" } else { "" };
    // Spelled out per owner so each side matches its partial unique index.
    let owner_filter = match owner {
        Some(_) => "clinic_id = $1",
        None => "clinic_id IS NULL AND $1::uuid IS NULL",
    };
    sqlx::query_as(&format!(
        "SELECT name, default_minutes, price_cents, active FROM catalog_items
          WHERE {owner_filter} AND kind = $2 AND code = $3{lock}"
    ))
    .bind(owner)
    .bind(kind.as_str())
    .bind(code.as_str())
    .fetch_optional(conn)
    .await
}

/// Inserts or changes the row of `owner` (a clinic, or `None` for the global catalog).
/// Fields the change keeps are merged in SQL against the row as it is at write time, so two
/// admins creating the same override at once do not erase each other's fields.
/// Returns whether the row was created (`xmax = 0` only for a freshly inserted tuple).
pub(super) async fn upsert(
    conn: &mut PgConnection,
    owner: Option<ClinicId>,
    kind: CatalogKind,
    code: &CatalogCode,
    changes: &ItemChanges,
) -> Result<bool, sqlx::Error> {
    let conflict = match owner {
        Some(_) => "(clinic_id, kind, code) WHERE clinic_id IS NOT NULL",
        None => "(kind, code) WHERE clinic_id IS NULL",
    };
    let (set_name, name) = changes.name.bind(|n| n.as_str().to_owned());
    let (set_minutes, minutes) = changes.default_minutes.bind(|m| m.get());
    let (set_price, price) = changes.price_cents.bind(|p| p.get());
    sqlx::query_scalar(&format!(
        "INSERT INTO catalog_items (clinic_id, kind, code, name, default_minutes, price_cents, active)
         VALUES ($1, $2, $3, $5, $7, $9, COALESCE($10, true))
         ON CONFLICT {conflict} DO UPDATE SET
             name = CASE WHEN $4 THEN EXCLUDED.name ELSE catalog_items.name END,
             default_minutes = CASE WHEN $6 THEN EXCLUDED.default_minutes
                                    ELSE catalog_items.default_minutes END,
             price_cents = CASE WHEN $8 THEN EXCLUDED.price_cents ELSE catalog_items.price_cents END,
             active = COALESCE($10, catalog_items.active),
             updated_at = now()
         RETURNING xmax = 0"
    ))
    .bind(owner)
    .bind(kind.as_str())
    .bind(code.as_str())
    .bind(set_name)
    .bind(name)
    .bind(set_minutes)
    .bind(minutes)
    .bind(set_price)
    .bind(price)
    .bind(changes.active)
    .fetch_one(conn)
    .await
}

/// Deletes a clinic's override or extra item; `false` when the clinic had none.
pub(super) async fn delete_own(
    conn: &mut PgConnection,
    clinic: ClinicId,
    kind: CatalogKind,
    code: &CatalogCode,
) -> Result<bool, sqlx::Error> {
    let deleted =
        sqlx::query("DELETE FROM catalog_items WHERE clinic_id = $1 AND kind = $2 AND code = $3")
            .bind(clinic)
            .bind(kind.as_str())
            .bind(code.as_str())
            .execute(conn)
            .await?;
    Ok(deleted.rows_affected() > 0)
}

/// Retires a global item: it stays (overrides and past appointments still name it) but no
/// clinic sees it as active. `false` when there is no such global item.
pub(super) async fn retire_global(
    conn: &mut PgConnection,
    kind: CatalogKind,
    code: &CatalogCode,
) -> Result<bool, sqlx::Error> {
    let updated = sqlx::query(
        "UPDATE catalog_items SET active = false, updated_at = now()
          WHERE clinic_id IS NULL AND kind = $1 AND code = $2",
    )
    .bind(kind.as_str())
    .bind(code.as_str())
    .execute(conn)
    .await?;
    Ok(updated.rows_affected() > 0)
}
