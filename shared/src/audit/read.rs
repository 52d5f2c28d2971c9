//! Reading the trail: a clinic's events (its admins) or every clinic's (Pulso's operators),
//! newest first, filtered by action, target, actor and time, in keyset pages by id.

use super::Action;
use crate::auth::Principal;
use crate::db::{self, DbError};
use crate::http::ApiError;
use crate::ids::{ClinicId, UserId};
use crate::pagination::{Page, PageRequest};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use sqlx::PgPool;
use utoipa::{IntoParams, ToSchema};

/// Whose events: the caller's clinic, or every clinic's and the platform's own.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum AuditScope {
    #[default]
    Clinic,
    Platform,
}

/// `GET /admin/audit` query string.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct AuditQuery {
    /// Only events of this action.
    #[param(inline)]
    pub action: Option<Action>,
    /// Only events about this target (a patient's, a member's or a clinic's id).
    #[param(max_length = 200)]
    pub target_id: Option<String>,
    /// Only events of this person.
    pub actor_id: Option<UserId>,
    /// Only events at or after this time.
    pub since: Option<DateTime<Utc>>,
    /// Only events before this time.
    pub until: Option<DateTime<Utc>>,
    /// `clinic` (default) or `platform` (every clinic: platform admins).
    #[param(inline)]
    pub scope: Option<AuditScope>,
    /// Page size, 1–200 (default 50).
    #[param(minimum = 1, maximum = 200)]
    pub limit: Option<u32>,
    /// The `next_cursor` of the previous page.
    pub cursor: Option<String>,
}

/// One event of the trail.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct AuditEventView {
    pub id: i64,
    /// `null`: a change to what every clinic shares.
    pub clinic_id: Option<ClinicId>,
    /// `null`: done by Pulso itself.
    pub actor: Option<AuditActor>,
    /// What was done, such as `patient.update` or `clinic.update`.
    #[schema(example = "clinic.update")]
    pub action: String,
    /// The kind of thing acted on and its id.
    pub target_type: String,
    pub target_id: String,
    /// `{"field": {"before": …, "after": …}}` for each field that changed; clinical free text
    /// appears as `{"changed": true}`, never with its words.
    #[schema(value_type = Object)]
    pub changes: Value,
    pub request_id: Option<String>,
    pub occurred_at: DateTime<Utc>,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct AuditActor {
    pub id: UserId,
    /// `null` when the person is not visible from here (a member of another clinic only).
    pub full_name: Option<String>,
}

#[derive(sqlx::FromRow)]
struct EventRow {
    id: i64,
    clinic_id: Option<ClinicId>,
    actor_id: Option<UserId>,
    actor_name: Option<String>,
    action: String,
    target_type: String,
    target_id: String,
    changes: sqlx::types::Json<Value>,
    request_id: Option<String>,
    occurred_at: DateTime<Utc>,
}

/// One page of the trail as `principal` may see it (platform scope: platform admins only).
pub async fn list(
    pool: &PgPool,
    principal: &Principal,
    query: &AuditQuery,
) -> Result<Page<AuditEventView>, ApiError> {
    let page = PageRequest::<i64>::new(query.limit, query.cursor.as_deref())?;
    if query
        .target_id
        .as_ref()
        .is_some_and(|id| id.chars().count() > 200)
    {
        return Err(ApiError::BadRequest {
            detail: "target_id is at most 200 characters.".into(),
            field: Some("target_id".into()),
        });
    }
    let scope = query.scope.unwrap_or_default();
    let (mut tx, clinic) = match scope {
        AuditScope::Clinic => (
            db::begin_tenant(pool, principal.clinic_id).await?,
            Some(principal.clinic_id),
        ),
        AuditScope::Platform => {
            principal.require_platform_admin()?;
            (db::begin_platform(pool, principal.clinic_id).await?, None)
        }
    };
    let rows: Vec<EventRow> = sqlx::query_as(
        "SELECT e.id, e.clinic_id, e.actor_id, u.full_name AS actor_name, e.action,
                e.target_type, e.target_id, e.changes, e.request_id, e.occurred_at
           FROM audit_events e
           LEFT JOIN users u ON u.id = e.actor_id
          WHERE ($1::uuid IS NULL OR e.clinic_id = $1)
            AND ($2::text IS NULL OR e.action = $2)
            AND ($3::text IS NULL OR e.target_id = $3)
            AND ($4::uuid IS NULL OR e.actor_id = $4)
            AND ($5::timestamptz IS NULL OR e.occurred_at >= $5)
            AND ($6::timestamptz IS NULL OR e.occurred_at < $6)
            AND ($7::bigint IS NULL OR e.id < $7)
          ORDER BY e.id DESC
          LIMIT $8",
    )
    .bind(clinic)
    .bind(query.action.map(|action| action.as_str()))
    .bind(query.target_id.as_deref())
    .bind(query.actor_id)
    .bind(query.since)
    .bind(query.until)
    .bind(page.after)
    .bind(page.fetch_limit())
    .fetch_all(&mut *tx)
    .await
    .map_err(DbError::from)?;
    tx.commit().await.map_err(DbError::from)?;
    let page = Page::from_rows(rows, page.limit, |row| row.id);
    Ok(page.map(|row| AuditEventView {
        id: row.id,
        clinic_id: row.clinic_id,
        actor: row.actor_id.map(|id| AuditActor {
            id,
            full_name: row.actor_name,
        }),
        action: row.action,
        target_type: row.target_type,
        target_id: row.target_id,
        changes: row.changes.0,
        request_id: row.request_id,
        occurred_at: row.occurred_at,
    }))
}
