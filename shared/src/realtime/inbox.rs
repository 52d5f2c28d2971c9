//! The notification inbox in PostgreSQL: storing notifications once, and reading a caller's
//! inbox — what was sent to them, to their role in their clinic, to their clinic and to everyone.
//!
//! Every query runs in a tenant transaction (row-level security admits the caller's clinic and the
//! announcements to everyone) and filters on the clinic as well. An inbox page is four index range
//! scans, one per audience (migration `20261123000009`), each already in id order and cut at the
//! page size, merged, then joined with the caller's read marks.

use super::types::{Audience, NewNotification, Notification, NotificationId};
use crate::auth::Principal;
use crate::auth::Role;
use crate::db::{DbError, TenantTx};
use crate::ids::{ClinicId, UserId};
use sqlx::PgPool;

/// Whose inbox: the caller's user, role and clinic, from their token.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Reader {
    pub clinic: ClinicId,
    pub user: UserId,
    pub role: Role,
}

impl From<&Principal> for Reader {
    fn from(principal: &Principal) -> Self {
        Self {
            clinic: principal.clinic_id,
            user: principal.user_id,
            role: principal.role,
        }
    }
}

/// Which part of an inbox to read.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Window {
    /// Ids above `since`, oldest first: what a client missed.
    After(i64),
    /// Ids below `before` (all when `None`), newest first: the inbox as a list.
    Before(Option<i64>),
}

const COLUMNS: &str = "n.id, n.audience, n.kind, n.title, n.body, n.created_at, (r.notification_id IS NOT NULL) AS read";

/// The ids visible to a reader ($1 clinic, $2 user, $3 role) that pass `bound` on `id`, each
/// branch ordered by `order` and cut at $5. `bound` and `order` come from [`Window`], never from
/// input.
fn visible_ids(bound: &str, order: &str) -> String {
    format!(
        "(SELECT id FROM notifications WHERE clinic_id = $1 AND audience = 'user' \
           AND audience_user_id = $2 AND {bound} ORDER BY id {order} LIMIT $5) \
         UNION ALL \
         (SELECT id FROM notifications WHERE clinic_id = $1 AND audience = 'role' \
           AND audience_role = $3 AND {bound} ORDER BY id {order} LIMIT $5) \
         UNION ALL \
         (SELECT id FROM notifications WHERE clinic_id = $1 AND audience = 'clinic' \
           AND {bound} ORDER BY id {order} LIMIT $5) \
         UNION ALL \
         (SELECT id FROM notifications WHERE audience = 'everyone' \
           AND {bound} ORDER BY id {order} LIMIT $5)"
    )
}

/// Whether notification $4 is addressed to the reader ($1 clinic, $2 user, $3 role).
const ADDRESSED_TO_READER: &str = "n.id = $4 AND ( \
       (n.clinic_id = $1 AND ( \
           (n.audience = 'user' AND n.audience_user_id = $2) \
        OR (n.audience = 'role' AND n.audience_role = $3) \
        OR n.audience = 'clinic')) \
    OR n.audience = 'everyone')";

/// Stores `new` with its checked `body`; `None` when its dedupe key was used already (nothing
/// stored).
pub(super) async fn insert(
    tx: &mut TenantTx,
    new: &NewNotification,
    body: &serde_json::Value,
) -> Result<Option<Notification>, sqlx::Error> {
    let (user, role) = match new.audience {
        Audience::User { user, .. } => (Some(user), None),
        Audience::Role { role, .. } => (None, Some(role)),
        Audience::Clinic(_) | Audience::Everyone => (None, None),
    };
    sqlx::query_as(
        "INSERT INTO notifications \
           (clinic_id, audience, audience_user_id, audience_role, kind, title, body, dedupe_key) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8) \
         ON CONFLICT DO NOTHING \
         RETURNING id, audience, kind, title, body, created_at, false AS read",
    )
    .bind(new.audience.clinic())
    .bind(new.audience.kind())
    .bind(user)
    .bind(role)
    .bind(new.kind().as_str())
    .bind(&new.title)
    .bind(body)
    .bind(&new.dedupe_key)
    .fetch_optional(&mut **tx)
    .await
}

/// The notification stored under a dedupe key (a repeated announcement request).
pub(super) async fn find_by_dedupe_key(
    tx: &mut TenantTx,
    clinic: Option<ClinicId>,
    key: &str,
) -> Result<Option<Notification>, sqlx::Error> {
    sqlx::query_as(
        "SELECT id, audience, kind, title, body, created_at, false AS read FROM notifications \
         WHERE clinic_id IS NOT DISTINCT FROM $1 AND dedupe_key = $2",
    )
    .bind(clinic)
    .bind(key)
    .fetch_optional(&mut **tx)
    .await
}

/// Up to `limit` notifications of the reader's inbox in `window`, with their read marks.
pub(super) async fn page(
    tx: &mut TenantTx,
    reader: Reader,
    window: Window,
    limit: i64,
) -> Result<Vec<Notification>, sqlx::Error> {
    let (bound, order, value) = match window {
        Window::After(since) => ("id > $4", "ASC", since),
        Window::Before(Some(before)) => ("id < $4", "DESC", before),
        Window::Before(None) => ("id < $4", "DESC", i64::MAX),
    };
    let sql = format!(
        "WITH visible AS ({}) \
         SELECT {COLUMNS} FROM visible v \
         JOIN notifications n ON n.id = v.id \
         LEFT JOIN notification_reads r \
           ON r.clinic_id = $1 AND r.user_id = $2 AND r.notification_id = n.id \
         ORDER BY n.id {order} LIMIT $5",
        visible_ids(bound, order)
    );
    sqlx::query_as(&sql)
        .bind(reader.clinic)
        .bind(reader.user)
        .bind(reader.role)
        .bind(value)
        .bind(limit)
        .fetch_all(&mut **tx)
        .await
}

/// How far back [`unread`] counts: the newest this many notifications of an inbox.
pub const UNREAD_WINDOW: i64 = 1_000;

/// How many of the newest [`UNREAD_WINDOW`] notifications of the reader's inbox they have not
/// read: a badge's number, bounded so an old, never-read inbox costs no more than a page.
pub(super) async fn unread(tx: &mut TenantTx, reader: Reader) -> Result<i64, sqlx::Error> {
    let sql = format!(
        "WITH visible AS ({}),          newest AS (SELECT id FROM visible ORDER BY id DESC LIMIT $5)          SELECT count(*) FROM newest v          LEFT JOIN notification_reads r            ON r.clinic_id = $1 AND r.user_id = $2 AND r.notification_id = v.id          WHERE r.notification_id IS NULL",
        visible_ids("id < $4", "DESC")
    );
    sqlx::query_scalar(&sql)
        .bind(reader.clinic)
        .bind(reader.user)
        .bind(reader.role)
        .bind(i64::MAX)
        .bind(UNREAD_WINDOW)
        .fetch_one(&mut **tx)
        .await
}

/// Marks notification `id` read for the reader. `false` when it is not in their inbox (missing,
/// another clinic's, another user's or role's); marking twice is harmless.
pub(super) async fn mark_read(
    tx: &mut TenantTx,
    reader: Reader,
    id: NotificationId,
) -> Result<bool, sqlx::Error> {
    let sql = format!(
        "WITH target AS (SELECT n.id FROM notifications n WHERE {ADDRESSED_TO_READER}), \
         marked AS ( \
           INSERT INTO notification_reads (notification_id, clinic_id, user_id) \
           SELECT id, $1, $2 FROM target \
           ON CONFLICT DO NOTHING RETURNING 1) \
         SELECT EXISTS (SELECT 1 FROM target)"
    );
    sqlx::query_scalar(&sql)
        .bind(reader.clinic)
        .bind(reader.user)
        .bind(reader.role)
        .bind(id.get())
        .fetch_one(&mut **tx)
        .await
}

/// Marks every notification of the reader's inbox read; the number newly marked.
pub(super) async fn mark_all_read(tx: &mut TenantTx, reader: Reader) -> Result<u64, sqlx::Error> {
    let sql = format!(
        "INSERT INTO notification_reads (notification_id, clinic_id, user_id) \
         SELECT id, $1, $2 FROM ({}) visible \
         ON CONFLICT DO NOTHING",
        visible_ids("id > $4", "ASC")
    );
    sqlx::query(&sql)
        .bind(reader.clinic)
        .bind(reader.user)
        .bind(reader.role)
        .bind(0_i64)
        .bind(i64::MAX)
        .execute(&mut **tx)
        .await
        .map(|done| done.rows_affected())
}

/// [`page`] in its own tenant transaction.
pub(super) async fn load_page(
    db: &PgPool,
    reader: Reader,
    window: Window,
    limit: i64,
) -> Result<Vec<Notification>, DbError> {
    let mut tx = crate::db::begin_tenant(db, reader.clinic).await?;
    let rows = page(&mut tx, reader, window, limit).await?;
    tx.commit().await?;
    Ok(rows)
}

/// [`page`] and [`unread`] in one tenant transaction, so the count matches the page.
pub(super) async fn load_page_and_unread(
    db: &PgPool,
    reader: Reader,
    window: Window,
    limit: i64,
) -> Result<(Vec<Notification>, i64), DbError> {
    let mut tx = crate::db::begin_tenant(db, reader.clinic).await?;
    let rows = page(&mut tx, reader, window, limit).await?;
    let unread = unread(&mut tx, reader).await?;
    tx.commit().await?;
    Ok((rows, unread))
}

/// [`mark_read`] in its own tenant transaction.
pub(super) async fn acknowledge(
    db: &PgPool,
    reader: Reader,
    id: NotificationId,
) -> Result<bool, DbError> {
    let mut tx = crate::db::begin_tenant(db, reader.clinic).await?;
    let found = mark_read(&mut tx, reader, id).await?;
    tx.commit().await?;
    Ok(found)
}

/// [`mark_all_read`] in its own tenant transaction.
pub(super) async fn acknowledge_all(db: &PgPool, reader: Reader) -> Result<u64, DbError> {
    let mut tx = crate::db::begin_tenant(db, reader.clinic).await?;
    let marked = mark_all_read(&mut tx, reader).await?;
    tx.commit().await?;
    Ok(marked)
}
