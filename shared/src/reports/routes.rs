//! `/reports` routes of the `reports` function.
//!
//! `POST /reports/insurance` answers 202 at once with the report and job ids; the
//! `report.insurance` job builds the PDF. `GET /reports/{id}` tells its status, and
//! `GET /reports/{id}/pdf` serves the PDF once it is ready (409 before, or when it failed): a
//! 307 to a presigned S3 GET, which is also what the report's `media.pdf` holds. An older
//! report whose PDF is still in PostgreSQL is served by the function, and its `media.pdf` is the
//! API's signed route (`/media/reports/{id}/pdf`, no token).

use super::REPORTERS;
use super::service::{ReportError, ReportPdf, ReportService, Requested};
use super::types::{
    AcceptedResponse, InsuranceReportParams, InsuranceReportRequest, ReportMedia, ReportResponse,
    ReportStatus, report_path, signed_pdf_path,
};
use crate::auth::Principal;
use crate::http::responses::{Conflict, Forbidden, MediaRedirect, NotFound, TooManyRequests};
use crate::http::{self, ApiError, ApiJson, ApiPath, ApiQuery};
use crate::ids::{ClinicId, ReportId};
use crate::media::Stored;
use crate::queue::{IdempotencyKey, IdempotencyKeyHeader};
use crate::ratelimit::RouteClass;
use crate::signed_urls::SignedQuery;
use crate::state::AppState;
use ::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::extract::State;
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json, Router};
use chrono::Utc;
use utoipa_axum::router::{OpenApiRouter, UtoipaMethodRouterExt};
use utoipa_axum::routes;

/// How long a client polling a pending report is asked to wait.
const PENDING_RETRY_AFTER_SECONDS: u32 = 2;

pub fn router(state: AppState) -> Router {
    let edge = state.edge();
    http::finish(routes(), state, edge)
}

/// The routes with their OpenAPI description (`crate::contract`).
pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        // Requests count against the reports rate limits (`RouteClass::Reports`).
        .routes(routes!(request_insurance).layer(Extension(RouteClass::Reports)))
        .routes(routes!(show))
        .routes(routes!(download))
        // A signed URL for a download link: no token (`crate::signed_urls`).
        .routes(routes!(signed_download))
}

#[utoipa::path(
    post,
    path = "/reports/insurance",
    tag = "reports",
    operation_id = "requestInsuranceReport",
    summary = "Request an insurance report (a PDF built in the background)",
    params(IdempotencyKeyHeader),
    request_body = InsuranceReportRequest,
    responses(
        (status = 202, description = "Accepted: poll `links.self` (or the job) until `ready`.",
         body = AcceptedResponse,
         headers(("Location" = String, description = "`/reports/{id}`."),
                 ("Idempotent-Replayed" = String, description = "`true` on a replay."))),
        (status = 404, response = NotFound),
    ),
    extensions(("x-roles" = json!(REPORTERS))),
)]
async fn request_insurance(
    State(state): State<AppState>,
    principal: Principal,
    headers: HeaderMap,
    ApiJson(request): ApiJson<InsuranceReportRequest>,
) -> Result<Response, ApiError> {
    principal.require(REPORTERS)?;
    let idempotency_key = IdempotencyKey::from_headers(&headers)?;
    let params = InsuranceReportParams::try_from(request)?;
    let Requested { record, replayed } = ReportService::new(&state)
        .request_insurance(
            principal.clinic_id,
            principal.user_id,
            &params,
            idempotency_key,
        )
        .await?;
    tracing::info!(
        report_id = %record.id,
        job_id = ?record.job_id,
        replayed,
        "insurance report requested"
    );
    let location = HeaderValue::from_str(&report_path(record.id)).map_err(ApiError::internal)?;
    let mut response = (
        StatusCode::ACCEPTED,
        [(header::LOCATION, location)],
        Json(AcceptedResponse::from(&record)),
    )
        .into_response();
    if replayed {
        response
            .headers_mut()
            .insert("idempotent-replayed", HeaderValue::from_static("true"));
    }
    Ok(response)
}

#[utoipa::path(
    get,
    path = "/reports/{id}",
    tag = "reports",
    operation_id = "getReport",
    summary = "A report's status and links",
    description = "Once the report is ready, `media.pdf` holds a signed URL of the PDF for a \
                   download link without a token; it expires (`expires_at`), so read the report \
                   again for a fresh one.",
    params(("id" = ReportId, Path, description = "The report's id.")),
    responses((status = 200, description = "The report.", body = ReportResponse)),
    extensions(("x-roles" = json!(REPORTERS))),
)]
async fn show(
    State(state): State<AppState>,
    principal: Principal,
    ApiPath(id): ApiPath<ReportId>,
    headers: HeaderMap,
) -> Result<Json<ReportResponse>, ApiError> {
    principal.require(REPORTERS)?;
    let record = ReportService::new(&state)
        .show(principal.clinic_id, id)
        .await?;
    let base = state.signer.base_for(&headers);
    let media = ReportMedia::sign(&state, &base, principal.clinic_id, &record, Utc::now()).await?;
    Ok(Json(ReportResponse::new(record, media)))
}

#[utoipa::path(
    get,
    path = "/reports/{id}/pdf",
    tag = "reports",
    operation_id = "downloadReport",
    summary = "The report's PDF",
    description = "409 `report-not-ready` (with `Retry-After`) while it is being built, \
                   `report-failed` when it could not be.",
    params(("id" = ReportId, Path, description = "The report's id.")),
    responses(
        (status = 200, description = "The PDF (a report made before PDFs moved to object \
                                        storage).",
         content_type = "application/pdf", body = Vec<u8>,
         headers(("Content-Disposition" = String, description = "`attachment; filename=…`."),
                 ("Cache-Control" = String, description = "`private, no-store`."))),
        (status = 307, response = MediaRedirect),
        (status = 409, response = Conflict),
    ),
    extensions(("x-roles" = json!(REPORTERS))),
)]
async fn download(
    State(state): State<AppState>,
    principal: Principal,
    ApiPath(id): ApiPath<ReportId>,
) -> Result<Response, ApiError> {
    principal.require(REPORTERS)?;
    pdf_response(&state, principal.clinic_id, id).await
}

/// The PDF by signed URL (`media.pdf` of a report): no `Authorization` header.
#[utoipa::path(
    get,
    path = "/media/reports/{id}/pdf",
    tag = "reports",
    operation_id = "downloadReportBySignedUrl",
    summary = "The report's PDF, by signed URL",
    description = "The URL comes from a report's `media.pdf`; it needs no `Authorization` \
                   header and answers 403 `invalid-signature` once expired or altered.",
    params(("id" = ReportId, Path, description = "The report's id."), SignedQuery),
    responses(
        (status = 200, description = "The PDF (a report made before PDFs moved to object \
                                        storage).",
         content_type = "application/pdf", body = Vec<u8>,
         headers(("Content-Disposition" = String, description = "`attachment; filename=…`."),
                 ("Cache-Control" = String, description = "`private, no-store`."))),
        (status = 307, response = MediaRedirect),
        (status = 403, response = Forbidden),
        (status = 429, response = TooManyRequests),
        (status = 409, response = Conflict),
    ),
)]
async fn signed_download(
    State(state): State<AppState>,
    ApiPath(id): ApiPath<ReportId>,
    ApiQuery(query): ApiQuery<SignedQuery>,
) -> Result<Response, ApiError> {
    let clinic = state
        .signer
        .admit(&state.access, &signed_pdf_path(id), &query, Utc::now())
        .await?;
    pdf_response(&state, clinic, id).await
}

async fn pdf_response(
    state: &AppState,
    clinic: ClinicId,
    id: ReportId,
) -> Result<Response, ApiError> {
    let pdf = ReportService::new(state).pdf(clinic, id).await;
    let ReportPdf { stored, download } = match pdf {
        Ok(pdf) => pdf,
        Err(error) => {
            let pending = matches!(error, ReportError::NotReady(ReportStatus::Pending));
            let mut response = ApiError::from(error).into_response();
            if pending {
                response.headers_mut().insert(
                    header::RETRY_AFTER,
                    HeaderValue::from(PENDING_RETRY_AFTER_SECONDS),
                );
            }
            return Ok(response);
        }
    };
    let download = download.as_download();
    let bytes = match stored {
        Stored::Object(key) => {
            return state
                .presigned(&key, &download, Utc::now())
                .await?
                .redirect();
        }
        Stored::Bytes(bytes) => bytes,
    };
    let value = |text: &str| HeaderValue::from_str(text).map_err(ApiError::internal);
    Ok((
        StatusCode::OK,
        [
            (header::CONTENT_TYPE, value(download.content_type)?),
            (header::CONTENT_DISPOSITION, value(download.disposition)?),
            (header::CACHE_CONTROL, value(download.cache_control)?),
            (
                header::X_CONTENT_TYPE_OPTIONS,
                HeaderValue::from_static("nosniff"),
            ),
        ],
        bytes,
    )
        .into_response())
}
