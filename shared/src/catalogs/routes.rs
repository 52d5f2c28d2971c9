//! `/catalogs` routes of the `catalogs` function.
//!
//! `GET /catalogs/{kind}` shows the merged catalog to every role; `PUT` and `DELETE
//! /catalogs/{kind}/{code}` change the caller's clinic (admins) or, with `?scope=global`, the
//! catalog every clinic shares (platform admins). `kind` is `procedure` or `insurer`; any other
//! kind is a 404 like any other route the API does not have.

use super::service::{CatalogService, SavedItem};
use super::types::{
    CatalogCode, CatalogKind, CatalogViewResponse, ItemChanges, PutItemRequest, Scope, ViewQuery,
    WriteQuery,
};
use crate::auth::{Principal, Role};
use crate::http::{self, ApiError, ApiJson, ApiPath, ApiQuery};
use crate::state::AppState;
use ::http::{HeaderValue, StatusCode, header};
use axum::extract::State;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, put};
use axum::{Json, Router};

/// Prices and availability are the clinic management's decision.
const EDITORS: &[Role] = &[Role::Admin];

/// An unknown kind is a path the API does not have: 404, like any other unknown route.
fn kind_of(segment: &str) -> Result<CatalogKind, ApiError> {
    CatalogKind::from_path(segment).ok_or(ApiError::NotFound { what: "resource" })
}

pub fn router(state: AppState) -> Router {
    let config = state.config.http.clone();
    http::finish(
        Router::new()
            .route("/catalogs/{kind}", get(show))
            .route("/catalogs/{kind}/{code}", put(save).delete(remove))
            .with_state(state),
        &config,
    )
}

async fn show(
    State(state): State<AppState>,
    principal: Principal,
    ApiPath(kind): ApiPath<String>,
    ApiQuery(query): ApiQuery<ViewQuery>,
) -> Result<Json<CatalogViewResponse>, ApiError> {
    let kind = kind_of(&kind)?;
    let mut items = CatalogService::new(&state)
        .view(principal.clinic_id, kind)
        .await?;
    if !query.include_inactive {
        items.retain(|item| item.active);
    }
    Ok(Json(CatalogViewResponse { kind, items }))
}

async fn save(
    State(state): State<AppState>,
    principal: Principal,
    ApiPath((kind, code)): ApiPath<(String, String)>,
    ApiQuery(query): ApiQuery<WriteQuery>,
    ApiJson(request): ApiJson<PutItemRequest>,
) -> Result<Response, ApiError> {
    let kind = kind_of(&kind)?;
    authorize(&principal, query.scope)?;
    let code = CatalogCode::parse("code", &code)?;
    let changes = ItemChanges::parse(kind, request)?;
    let service = CatalogService::new(&state);
    let SavedItem { item, created } = match query.scope {
        Scope::Clinic => {
            service
                .save_override(principal.clinic_id, kind, &code, &changes)
                .await?
        }
        Scope::Global => {
            service
                .save_global(principal.clinic_id, kind, &code, &changes)
                .await?
        }
    };
    tracing::info!(
        kind = kind.as_str(),
        code = code.as_str(),
        scope = query.scope.as_str(),
        source = ?item.source,
        created,
        "catalog item saved"
    );
    if !created {
        return Ok(Json(item).into_response());
    }
    let location = HeaderValue::from_str(&format!("/catalogs/{}/{}", kind.as_str(), code.as_str()))
        .map_err(ApiError::internal)?;
    Ok((
        StatusCode::CREATED,
        [(header::LOCATION, location)],
        Json(item),
    )
        .into_response())
}

async fn remove(
    State(state): State<AppState>,
    principal: Principal,
    ApiPath((kind, code)): ApiPath<(String, String)>,
    ApiQuery(query): ApiQuery<WriteQuery>,
) -> Result<StatusCode, ApiError> {
    let kind = kind_of(&kind)?;
    authorize(&principal, query.scope)?;
    let code = CatalogCode::parse("code", &code)?;
    let service = CatalogService::new(&state);
    match query.scope {
        Scope::Clinic => {
            service
                .remove_override(principal.clinic_id, kind, &code)
                .await?
        }
        Scope::Global => {
            service
                .retire_global(principal.clinic_id, kind, &code)
                .await?
        }
    }
    tracing::info!(
        kind = kind.as_str(),
        code = code.as_str(),
        scope = query.scope.as_str(),
        "catalog item removed"
    );
    Ok(StatusCode::NO_CONTENT)
}

/// A clinic's catalog is its admins'; the global one is the platform's.
fn authorize(principal: &Principal, scope: Scope) -> Result<(), ApiError> {
    principal.require(EDITORS)?;
    if scope == Scope::Global {
        principal.require_platform_admin()?;
    }
    Ok(())
}
