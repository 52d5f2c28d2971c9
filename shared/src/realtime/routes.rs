//! `/notifications` routes of the `notifications` function: the caller's inbox (what was sent to
//! them, to their role, to their clinic and to everyone) with read marks, for every staff role.

use super::inbox::{self, Reader, Window};
use super::types::{Notification, NotificationId, RealtimeError};
use crate::access::Access;
use crate::auth::{Principal, Role};
use crate::config::HttpConfig;
use crate::db::DbError;
use crate::http::{self, ApiError, ApiPath, ApiQuery};
use crate::pagination::MAX_PAGE_SIZE;
use ::http::StatusCode;
use axum::extract::FromRef;
use axum::extract::State;
use axum::response::{IntoResponse, Response};
use axum::{Json, Router};
use serde::{Deserialize, Serialize};
use sqlx::PgPool;
use std::sync::Arc;
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

const DEFAULT_LIMIT: u32 = 50;

/// The routes over any state that hands out what they use (a function passes its `AppState`):
/// the pool, the token verifier and the HTTP limits.
pub fn router<S>(state: S) -> Router
where
    S: Clone + Send + Sync + 'static,
    PgPool: FromRef<S>,
    Arc<Access>: FromRef<S>,
    HttpConfig: FromRef<S>,
    http::Edge: FromRef<S>,
{
    let edge = http::Edge::from_ref(&state);
    http::finish(routes(), state, edge)
}

/// The routes with their OpenAPI description (`crate::contract`).
pub fn routes<S>() -> OpenApiRouter<S>
where
    S: Clone + Send + Sync + 'static,
    PgPool: FromRef<S>,
    Arc<Access>: FromRef<S>,
    HttpConfig: FromRef<S>,
{
    OpenApiRouter::new()
        .routes(routes!(list))
        .routes(routes!(read_all))
        .routes(routes!(read_one))
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
struct ListQuery {
    /// Oldest first, after this notification id (what a client missed); 0 for everything.
    #[param(minimum = 0)]
    since: Option<i64>,
    /// Newest first, before this notification id (older pages). Not with `since`.
    #[param(minimum = 1)]
    before: Option<i64>,
    /// Page size, 1–200 (default 50).
    #[param(minimum = 1, maximum = 200)]
    limit: Option<u32>,
}

const _: () = assert!(
    inbox::UNREAD_WINDOW == 1_000,
    "InboxPage.unread's schema says 1,000"
);

/// One page of an inbox. With `since`: oldest first, and `next_since` is where the next call
/// resumes. Without: newest first, and `next_before` pages further back.
#[derive(Debug, Serialize, ToSchema)]
struct InboxPage {
    items: Vec<Notification>,
    has_more: bool,
    /// How many of the inbox's newest 1,000 notifications the caller has not read (a badge:
    /// show "999+" from 1,000).
    #[schema(minimum = 0, maximum = 1000)]
    unread: i64,
    #[serde(skip_serializing_if = "Option::is_none")]
    next_since: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    next_before: Option<i64>,
}

#[utoipa::path(
    get,
    path = "/notifications",
    tag = "notifications",
    operation_id = "listNotifications",
    summary = "The caller's inbox",
    description = "What was sent to the caller, their role, their clinic and everyone, with the \
                   caller's read marks and how many are unread (`unread`, for a badge).",
    params(ListQuery),
    responses((status = 200, description = "One page of the inbox.", body = InboxPage)),
    extensions(("x-roles" = json!(Role::STAFF))),
)]
async fn list(
    State(db): State<PgPool>,
    principal: Principal,
    ApiQuery(query): ApiQuery<ListQuery>,
) -> Result<Json<InboxPage>, ApiError> {
    let limit = query.limit.unwrap_or(DEFAULT_LIMIT);
    if !(1..=MAX_PAGE_SIZE).contains(&limit) {
        return Err(bad_query(
            "limit",
            format!("limit must be between 1 and {MAX_PAGE_SIZE}."),
        ));
    }
    let window = match (query.since, query.before) {
        (Some(_), Some(_)) => {
            return Err(bad_query(
                "before",
                "Use since (what came after an id) or before (older ones), not both.",
            ));
        }
        (Some(since), None) if since < 0 => {
            return Err(bad_query("since", "since must be 0 or more."));
        }
        (Some(since), None) => Window::After(since),
        (None, Some(before)) if before <= 0 => {
            return Err(bad_query("before", "before must be a notification id."));
        }
        (None, before) => Window::Before(before),
    };
    let (mut items, unread) =
        inbox::load_page_and_unread(&db, Reader::from(&principal), window, i64::from(limit) + 1)
            .await?;
    let has_more = items.len() > limit as usize;
    items.truncate(limit as usize);
    let last = items.last().map(|item| item.id);
    let page = match window {
        Window::After(since) => InboxPage {
            next_since: Some(last.unwrap_or(since)),
            next_before: None,
            items,
            has_more,
            unread,
        },
        Window::Before(_) => InboxPage {
            next_since: None,
            next_before: if has_more { last } else { None },
            items,
            has_more,
            unread,
        },
    };
    Ok(Json(page))
}

#[utoipa::path(
    post,
    path = "/notifications/{id}/read",
    tag = "notifications",
    operation_id = "markNotificationRead",
    summary = "Mark one notification read",
    params(("id" = i64, Path, minimum = 1, description = "The notification's id.")),
    responses((status = 204, description = "Marked (also when it already was).")),
    extensions(("x-roles" = json!(Role::STAFF))),
)]
async fn read_one(
    State(db): State<PgPool>,
    principal: Principal,
    ApiPath(id): ApiPath<String>,
) -> Result<Response, ApiError> {
    let id: NotificationId = id.parse().map_err(|()| ApiError::BadRequest {
        detail: "Invalid path parameter `id`: expected a notification id (a positive integer)."
            .into(),
        field: Some("id".into()),
    })?;
    let found = inbox::acknowledge(&db, Reader::from(&principal), id)
        .await
        .map_err(unknown_user)?;
    if !found {
        return Err(ApiError::NotFound {
            what: "notification",
        });
    }
    Ok(StatusCode::NO_CONTENT.into_response())
}

#[derive(Debug, Serialize, ToSchema)]
struct MarkedRead {
    /// Notifications newly marked read (those read before are not counted).
    marked: u64,
}

#[utoipa::path(
    post,
    path = "/notifications/read-all",
    tag = "notifications",
    operation_id = "markAllNotificationsRead",
    summary = "Mark the whole inbox read",
    responses((status = 200, description = "How many were newly marked.", body = MarkedRead)),
    extensions(("x-roles" = json!(Role::STAFF))),
)]
async fn read_all(
    State(db): State<PgPool>,
    principal: Principal,
) -> Result<Json<MarkedRead>, ApiError> {
    let marked = inbox::acknowledge_all(&db, Reader::from(&principal))
        .await
        .map_err(unknown_user)?;
    Ok(Json(MarkedRead { marked }))
}

fn bad_query(field: &str, detail: impl Into<String>) -> ApiError {
    ApiError::BadRequest {
        detail: detail.into(),
        field: Some(field.into()),
    }
}

/// A token whose user is not (or no longer) on the clinic's staff cannot keep read marks.
fn unknown_user(error: DbError) -> ApiError {
    if error.constraint() == Some("notification_reads_user_fkey") {
        ApiError::Forbidden {
            detail: "Your user is not on this clinic's staff.".into(),
        }
    } else {
        error.into()
    }
}

impl From<RealtimeError> for ApiError {
    fn from(error: RealtimeError) -> Self {
        match error {
            RealtimeError::Db(error) => error.into(),
            RealtimeError::NotPlatformAdmin => ApiError::Forbidden {
                detail: "Announcing to every clinic needs a platform admin.".into(),
            },
            // A caller's bug (the routes never build such a notification), not the client's.
            RealtimeError::TitleLength
            | RealtimeError::BodyTooLarge { .. }
            | RealtimeError::DedupeKeyLength
            | RealtimeError::EveryoneNeedsNotifyEveryone
            | RealtimeError::NotForEveryone
            | RealtimeError::DedupeConflict => ApiError::internal(error),
        }
    }
}
