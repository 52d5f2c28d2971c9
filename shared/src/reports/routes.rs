//! `/reports` routes of the `reports` function.
//!
//! `POST /reports/insurance` answers 202 at once with the report and job ids; the
//! `report.insurance` job builds the PDF. `GET /reports/{id}` tells its status, and
//! `GET /reports/{id}/pdf` serves the PDF once it is ready (409 before, or when it failed).

use super::REPORTERS;
use super::service::{ReportError, ReportPdf, ReportService, Requested};
use super::types::{
    AcceptedResponse, InsuranceReportParams, InsuranceReportRequest, ReportResponse, ReportStatus,
    report_path,
};
use crate::auth::Principal;
use crate::http::{self, ApiError, ApiJson, ApiPath};
use crate::ids::ReportId;
use crate::queue::IdempotencyKey;
use crate::ratelimit::RouteClass;
use crate::state::AppState;
use ::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::extract::State;
use axum::handler::Handler;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Extension, Json, Router};

/// How long a client polling a pending report is asked to wait.
const PENDING_RETRY_AFTER_SECONDS: u32 = 2;

pub fn router(state: AppState) -> Router {
    let config = state.config.http.clone();
    http::finish(
        Router::new()
            .route(
                "/reports/insurance",
                post(request_insurance.layer(Extension(RouteClass::Reports))),
            )
            .route("/reports/{id}", get(show))
            .route("/reports/{id}/pdf", get(download))
            .with_state(state),
        &config,
    )
}

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

async fn show(
    State(state): State<AppState>,
    principal: Principal,
    ApiPath(id): ApiPath<ReportId>,
) -> Result<Json<ReportResponse>, ApiError> {
    principal.require(REPORTERS)?;
    let record = ReportService::new(&state)
        .show(principal.clinic_id, id)
        .await?;
    Ok(Json(record.into()))
}

async fn download(
    State(state): State<AppState>,
    principal: Principal,
    ApiPath(id): ApiPath<ReportId>,
) -> Result<Response, ApiError> {
    principal.require(REPORTERS)?;
    let pdf = ReportService::new(&state)
        .pdf(principal.clinic_id, id)
        .await;
    let ReportPdf { bytes, filename } = match pdf {
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
    // The name is built from ASCII letters, digits, dots, dashes and a date: always a valid,
    // quote-free header value.
    let disposition = HeaderValue::from_str(&format!("attachment; filename=\"{filename}\""))
        .map_err(ApiError::internal)?;
    Ok((
        StatusCode::OK,
        [
            (
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/pdf"),
            ),
            (header::CONTENT_DISPOSITION, disposition),
            // Patient data: no shared cache keeps it, and the browser does not keep a copy.
            (
                header::CACHE_CONTROL,
                HeaderValue::from_static("private, no-store"),
            ),
            (
                header::X_CONTENT_TYPE_OPTIONS,
                HeaderValue::from_static("nosniff"),
            ),
        ],
        bytes,
    )
        .into_response())
}
