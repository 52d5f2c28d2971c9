//! `/admin` routes of the `admin` function. Admins only; platform-wide scopes need the
//! platform-admin claim as well.

use super::announcements::{self, Announcement, AnnouncementBody, AnnouncementResponse};
use super::cache_view::{self, CacheStatsResponse, InvalidateBody, InvalidateRequest, Invalidated};
use super::{ADMINS, jobs_view};
use crate::audit::{self, AuditEventView, AuditQuery};
use crate::auth::Principal;
use crate::cache::CacheUnavailable;
use crate::http::{self, ApiError, ApiJson, ApiQuery};
use crate::pagination::Page;
use crate::queue::{IdempotencyKey, IdempotencyKeyHeader};
use crate::ratelimit::RouteClass;
use crate::state::AppState;
use ::http::{HeaderMap, HeaderValue, StatusCode};
use axum::extract::State;
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json, Router};
use serde::Deserialize;
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

pub fn router(state: AppState) -> Router {
    let edge = state.edge();
    http::finish(routes(), state, edge)
}

/// The routes with their OpenAPI description (`crate::contract`).
pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(cache_stats))
        .routes(routes!(invalidate_cache))
        .routes(routes!(jobs_view::queues))
        .routes(routes!(jobs_view::jobs))
        .routes(routes!(jobs_view::retry))
        .routes(routes!(announce))
        .routes(routes!(audit_trail))
        // Every admin route counts against the admin rate limits (`RouteClass::Admin`).
        .route_layer(Extension(RouteClass::Admin))
}

#[derive(Debug, Default, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
struct StatsQuery {
    /// `clinic` (default) or `platform` (every clinic; platform admins).
    #[serde(default)]
    #[param(inline)]
    scope: StatsScope,
}

#[derive(Debug, Default, Deserialize, PartialEq, Eq, ToSchema)]
#[serde(rename_all = "snake_case")]
enum StatsScope {
    #[default]
    Clinic,
    Platform,
}

#[utoipa::path(
    get,
    path = "/admin/cache/stats",
    tag = "admin",
    operation_id = "cacheStats",
    summary = "The cache's hit rates and load times",
    params(StatsQuery),
    responses((status = 200, description = "The counters.", body = CacheStatsResponse)),
    extensions(("x-roles" = json!(ADMINS))),
)]
async fn cache_stats(
    State(state): State<AppState>,
    principal: Principal,
    ApiQuery(query): ApiQuery<StatsQuery>,
) -> Result<Json<CacheStatsResponse>, ApiError> {
    principal.require(ADMINS)?;
    let clinic = match query.scope {
        StatsScope::Clinic => Some(principal.clinic_id),
        StatsScope::Platform => {
            principal.require_platform_admin()?;
            None
        }
    };
    Ok(Json(cache_view::stats(&state, clinic).await))
}

#[utoipa::path(
    post,
    path = "/admin/cache/invalidate",
    tag = "admin",
    operation_id = "invalidateCache",
    summary = "Drop cached values so the next read loads them from PostgreSQL",
    request_body = InvalidateBody,
    responses((status = 200, description = "Invalidated.", body = Invalidated)),
    extensions(("x-roles" = json!(ADMINS))),
)]
async fn invalidate_cache(
    State(state): State<AppState>,
    principal: Principal,
    ApiJson(body): ApiJson<InvalidateBody>,
) -> Result<Json<Invalidated>, ApiError> {
    principal.require(ADMINS)?;
    let request = InvalidateRequest::try_from(body)?;
    if request.is_global() {
        principal.require_platform_admin()?;
    }
    let done = cache_view::invalidate(&state, principal.clinic_id, &request)
        .await
        .map_err(unavailable)?;
    tracing::info!(scope = done.scope, "cache invalidated by an admin");
    Ok(Json(done))
}

/// An announcement to the admin's clinic, or (platform admins, `"everyone": true`) to every
/// clinic: 201 with the stored notification and what its push did; a repeated `Idempotency-Key`
/// answers 200 with the first one (`Idempotent-Replayed: true`) and pushes nothing again.
#[utoipa::path(
    post,
    path = "/admin/announcements",
    tag = "admin",
    operation_id = "announce",
    summary = "Tell the whole clinic (or, platform admins, every clinic) something",
    description = "Stored in every recipient's inbox, then pushed over the WebSocket.",
    params(IdempotencyKeyHeader),
    request_body = AnnouncementBody,
    responses(
        (status = 201, description = "Announced.", body = AnnouncementResponse),
        (status = 200, description = "A replay of an earlier `Idempotency-Key`: nothing pushed \
                                      again.", body = AnnouncementResponse,
         headers(("Idempotent-Replayed" = String, description = "`true`."))),
    ),
    extensions(("x-roles" = json!(ADMINS))),
)]
async fn announce(
    State(state): State<AppState>,
    principal: Principal,
    headers: HeaderMap,
    ApiJson(body): ApiJson<AnnouncementBody>,
) -> Result<Response, ApiError> {
    principal.require(ADMINS)?;
    let announcement = Announcement::try_from(body)?;
    if announcement.everyone() {
        principal.require_platform_admin()?;
    }
    let key = IdempotencyKey::from_headers(&headers)?;
    let delivery = announcements::announce(
        &state,
        &principal,
        announcement,
        key.as_ref().map(IdempotencyKey::as_str),
    )
    .await?;
    tracing::info!(
        notification_id = delivery.notification.id,
        audience = ?delivery.notification.audience,
        created = delivery.created,
        "announcement made"
    );
    let status = if delivery.created {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    let mut response = (
        status,
        Json(AnnouncementResponse {
            notification: delivery.notification,
            push: delivery.push,
        }),
    )
        .into_response();
    if !delivery.created {
        response
            .headers_mut()
            .insert("idempotent-replayed", HeaderValue::from_static("true"));
    }
    Ok(response)
}

/// The invalidation could not reach Redis: say so (the caller may retry), never pretend.
fn unavailable(error: CacheUnavailable) -> ApiError {
    ApiError::Unavailable {
        source: Box::new(error),
        retry_after_seconds: 5,
    }
}

#[utoipa::path(
    get,
    path = "/admin/audit",
    tag = "admin",
    operation_id = "listAuditEvents",
    summary = "The audit trail, newest first",
    description = "Who changed what, when and from what to what; `action` names the change \
                   (the values of the `action` filter). Filters combine; `scope=platform` \
                   (platform admins) reads every clinic's events. Clinical free text never \
                   appears in it.",
    params(AuditQuery),
    responses((status = 200, description = "One page of events.", body = Page<AuditEventView>)),
    extensions(("x-roles" = json!(ADMINS))),
)]
async fn audit_trail(
    State(state): State<AppState>,
    principal: Principal,
    ApiQuery(query): ApiQuery<AuditQuery>,
) -> Result<Json<Page<AuditEventView>>, ApiError> {
    principal.require(ADMINS)?;
    Ok(Json(audit::list(&state.db, &principal, &query).await?))
}
