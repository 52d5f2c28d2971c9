//! `/admin` routes of the `admin` function. Admins only; platform-wide scopes need the
//! platform-admin claim as well.

use super::announcements::{self, Announcement, AnnouncementBody, AnnouncementResponse};
use super::cache_view::{self, CacheStatsResponse, InvalidateBody, InvalidateRequest, Invalidated};
use super::{ADMINS, jobs_view};
use crate::auth::Principal;
use crate::cache::CacheUnavailable;
use crate::http::{self, ApiError, ApiJson, ApiQuery};
use crate::queue::IdempotencyKey;
use crate::ratelimit::RouteClass;
use crate::state::AppState;
use ::http::{HeaderMap, HeaderValue, StatusCode};
use axum::extract::State;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Extension, Json, Router};
use serde::Deserialize;

pub fn router(state: AppState) -> Router {
    let config = state.config.http.clone();
    http::finish(
        Router::new()
            .route("/admin/cache/stats", get(cache_stats))
            .route("/admin/cache/invalidate", post(invalidate_cache))
            .route("/admin/queues", get(jobs_view::queues))
            .route("/admin/jobs", get(jobs_view::jobs))
            .route("/admin/jobs/{id}/retry", post(jobs_view::retry))
            .route("/admin/announcements", post(announce))
            // Every admin route counts against the admin rate limits (`RouteClass::Admin`).
            .route_layer(Extension(RouteClass::Admin))
            .with_state(state),
        &config,
    )
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct StatsQuery {
    #[serde(default)]
    scope: StatsScope,
}

#[derive(Debug, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
enum StatsScope {
    #[default]
    Clinic,
    Platform,
}

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
