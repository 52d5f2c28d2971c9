//! `/catalogs` routes of the `catalogs` function.
//!
//! `GET /catalogs/{kind}` shows the merged catalog to every role; `PUT` and `DELETE
//! /catalogs/{kind}/{code}` change the caller's clinic (admins) or, with `?scope=global`, the
//! catalog every clinic shares (platform admins). `kind` is `procedure` or `insurer`; any other
//! kind is a 404 like any other route the API does not have.

use super::service::{CatalogService, SavedItem};
use super::types::{
    CatalogCode, CatalogItem, CatalogKind, CatalogViewResponse, ItemChanges, PutItemRequest, Scope,
    ViewQuery, WriteQuery,
};
use crate::audit::Actor;
use crate::auth::{Principal, Role};
use crate::http::conditional::{IfMatch, IfMatchHeader, IfNoneMatchHeader, tagged};
use crate::http::responses::PreconditionFailed;
use crate::http::{self, ApiError, ApiJson, ApiPath, ApiQuery, RequestId};
use crate::state::AppState;
use ::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::extract::State;
use axum::response::Response;
use axum::{Json, Router};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

/// Prices and availability are the clinic management's decision.
const EDITORS: &[Role] = &[Role::Admin];

/// An unknown kind is a path the API does not have: 404, like any other unknown route.
fn kind_of(segment: &str) -> Result<CatalogKind, ApiError> {
    CatalogKind::from_path(segment).ok_or(ApiError::NotFound { what: "resource" })
}

/// A code in the path is part of the URL: a malformed one is 400 naming `code`, as a malformed
/// id is.
fn code_of(segment: &str) -> Result<CatalogCode, ApiError> {
    CatalogCode::parse("code", segment).map_err(|error| match ApiError::from(error) {
        ApiError::Validation { detail, field } => ApiError::BadRequest {
            detail,
            field: Some(field),
        },
        other => other,
    })
}

pub fn router(state: AppState) -> Router {
    let edge = state.edge();
    http::finish(routes(), state, edge)
}

/// The routes with their OpenAPI description (`crate::contract`).
pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(show))
        .routes(routes!(show_item, save, remove))
}

#[utoipa::path(
    get,
    path = "/catalogs/{kind}",
    tag = "catalogs",
    operation_id = "getCatalog",
    summary = "A catalog as the clinic sees it",
    description = "The global items merged with the clinic's overrides and own items.",
    params(("kind" = inline(CatalogKind), Path, description = "Which catalog."), ViewQuery),
    responses((status = 200, description = "The catalog.", body = CatalogViewResponse)),
    extensions(("x-roles" = json!(Role::STAFF))),
)]
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

#[utoipa::path(
    get,
    path = "/catalogs/{kind}/{code}",
    tag = "catalogs",
    operation_id = "getCatalogItem",
    summary = "One catalog item as the clinic sees it",
    description = "Inactive items too. The `ETag` names this version: send it as `If-Match` \
                   with a change, so a change made meanwhile is not overwritten.",
    params(("kind" = inline(CatalogKind), Path, description = "Which catalog."), ("code" = String, Path, description = "The item's code: 1–32 letters, digits, dots, underscores or dashes (case-sensitive).", max_length = 32), IfNoneMatchHeader),
    responses(
        (status = 200, description = "The item.", body = CatalogItem,
         headers(("ETag" = String, description = "This version of the item."))),
        (status = 304, description = "The client's copy is current.",
         headers(("ETag" = String, description = "This version of the item."))),
    ),
    extensions(("x-roles" = json!(Role::STAFF))),
)]
async fn show_item(
    State(state): State<AppState>,
    principal: Principal,
    ApiPath((kind, code)): ApiPath<(String, String)>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let kind = kind_of(&kind)?;
    let code = code_of(&code)?;
    let item = CatalogService::new(&state)
        .item(principal.clinic_id, kind, &code)
        .await?;
    Ok(tagged(StatusCode::OK, &headers, item))
}

#[utoipa::path(
    put,
    path = "/catalogs/{kind}/{code}",
    tag = "catalogs",
    operation_id = "saveCatalogItem",
    summary = "Create or change a catalog item",
    description = "In the clinic's catalog (an override of a global item, or the clinic's own), \
                   or with `scope=global` in the catalog every clinic shares (platform admins). \
                   With `If-Match`, only while the item as the clinic sees it is still that \
                   version (412 otherwise, nothing written).",
    params(("kind" = inline(CatalogKind), Path, description = "Which catalog."), ("code" = String, Path, description = "The item's code: 1–32 letters, digits, dots, underscores or dashes (case-sensitive).", max_length = 32), WriteQuery, IfMatchHeader),
    request_body = PutItemRequest,
    responses(
        (status = 200, description = "Changed.", body = CatalogItem,
         headers(("ETag" = String, description = "The new version of the item."))),
        (status = 201, description = "Created.", body = CatalogItem,
         headers(("Location" = String, description = "`/catalogs/{kind}/{code}`."),
                 ("ETag" = String, description = "The new version of the item."))),
        (status = 412, response = PreconditionFailed),
    ),
    extensions(("x-roles" = json!(EDITORS))),
)]
async fn save(
    State(state): State<AppState>,
    principal: Principal,
    request_id: RequestId,
    ApiPath((kind, code)): ApiPath<(String, String)>,
    ApiQuery(query): ApiQuery<WriteQuery>,
    headers: HeaderMap,
    ApiJson(request): ApiJson<PutItemRequest>,
) -> Result<Response, ApiError> {
    let kind = kind_of(&kind)?;
    authorize(&principal, query.scope)?;
    let code = code_of(&code)?;
    let if_match = IfMatch::from_headers(&headers)?;
    let changes = ItemChanges::parse(kind, request)?;
    let service = CatalogService::new(&state);
    let SavedItem { item, created } = match query.scope {
        Scope::Clinic => {
            service
                .save_override(
                    principal.clinic_id,
                    kind,
                    &code,
                    &changes,
                    if_match.as_ref(),
                )
                .await?
        }
        Scope::Global => {
            service
                .save_global(
                    principal.clinic_id,
                    kind,
                    &code,
                    &changes,
                    if_match.as_ref(),
                    &Actor::person(&principal, &request_id),
                )
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
        return Ok(tagged(StatusCode::OK, &HeaderMap::new(), item));
    }
    let location = HeaderValue::from_str(&format!("/catalogs/{}/{}", kind.as_str(), code.as_str()))
        .map_err(ApiError::internal)?;
    let mut response = tagged(StatusCode::CREATED, &HeaderMap::new(), item);
    response.headers_mut().insert(header::LOCATION, location);
    Ok(response)
}

#[utoipa::path(
    delete,
    path = "/catalogs/{kind}/{code}",
    tag = "catalogs",
    operation_id = "removeCatalogItem",
    summary = "Remove a clinic's item or override, or retire a global item",
    params(("kind" = inline(CatalogKind), Path, description = "Which catalog."), ("code" = String, Path, description = "The item's code: 1–32 letters, digits, dots, underscores or dashes (case-sensitive).", max_length = 32), WriteQuery),
    responses((status = 204, description = "Removed.")),
    extensions(("x-roles" = json!(EDITORS))),
)]
async fn remove(
    State(state): State<AppState>,
    principal: Principal,
    request_id: RequestId,
    ApiPath((kind, code)): ApiPath<(String, String)>,
    ApiQuery(query): ApiQuery<WriteQuery>,
) -> Result<StatusCode, ApiError> {
    let kind = kind_of(&kind)?;
    authorize(&principal, query.scope)?;
    let code = code_of(&code)?;
    let service = CatalogService::new(&state);
    match query.scope {
        Scope::Clinic => {
            service
                .remove_override(principal.clinic_id, kind, &code)
                .await?
        }
        Scope::Global => {
            service
                .retire_global(
                    principal.clinic_id,
                    kind,
                    &code,
                    &Actor::person(&principal, &request_id),
                )
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
