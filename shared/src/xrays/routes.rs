//! Routes of the `xrays` function: upload (the file in the request, or by presigned URL
//! straight to S3), list, metadata, image and thumbnail. What is in S3 is served by redirect to
//! a presigned GET; what an older row still holds in PostgreSQL, by the function itself and by
//! the API's signed URLs (`/media/xrays/…`, for a browser's `<img src>`), which redirect too
//! once the file is in S3.

use super::analysis::{self, PixelLimits};
use super::service::{DirectUpload, Uploaded, XrayError, XrayService};
use super::types::{
    IMAGE_CACHE_CONTROL, IfNoneMatch, IfNoneMatchHeader, ListXraysQuery, Sha256Digest, Stored,
    THUMBNAIL_CACHE_CONTROL, THUMBNAIL_DOWNLOAD, UploadAccepted, XrayMedia, XrayResponse,
    XrayStatus, image_download, signed_image_path, signed_thumbnail_path,
};
use super::uploads::{NewUploadRequest, UploadResponse};
use crate::auth::{Principal, Role};
use crate::http::responses::{
    Conflict, Forbidden, MediaRedirect, PayloadTooLarge, TooManyRequests, UnsupportedMediaType,
    Validation,
};
use crate::http::{self, ApiError, ApiJson, ApiPath, ApiQuery};
use crate::ids::{ClinicId, PatientId, XrayId};
use crate::pagination::{Page, PageRequest};
use crate::queue::{IdempotencyKey, IdempotencyKeyHeader};
use crate::ratelimit::RouteClass;
use crate::signed_urls::SignedQuery;
use crate::state::AppState;
use ::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::Router;
use axum::body::Bytes;
use axum::extract::{Request, State};
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use chrono::{DateTime, Utc};
use http_body_util::{BodyExt, LengthLimitError, Limited};
use utoipa_axum::router::{OpenApiRouter, UtoipaMethodRouterExt};
use utoipa_axum::routes;

/// Every role on staff takes or imports X-rays (the dentist at the chair, reception scanning a
/// patient's film or a referral's CD) and reads them. Nobody edits or deletes one: an X-ray is
/// part of the clinical record.
const STAFF: &[Role] = &[Role::Admin, Role::Dentist, Role::Receptionist];

/// How soon a client polling a pending thumbnail should ask again.
const PENDING_RETRY_AFTER_SECONDS: u32 = 2;

/// The upload route reads its own, larger body limit (`XRAY_MAX_BYTES`) from the raw body; the
/// 64 KiB JSON limit that `http::finish` sets applies only to axum's body extractors, which no
/// route here uses.
pub fn router(state: AppState) -> Router {
    let edge = state.edge();
    http::finish(routes(), state, edge)
}

/// The routes with their OpenAPI description (`crate::contract`).
pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        // Uploads count against the upload rate limits (`RouteClass::Uploads`).
        .routes(routes!(upload).layer(Extension(RouteClass::Uploads)))
        .routes(routes!(open_upload).layer(Extension(RouteClass::Uploads)))
        .routes(routes!(show_upload))
        .routes(routes!(complete_upload).layer(Extension(RouteClass::Uploads)))
        .routes(routes!(list))
        .routes(routes!(show))
        .routes(routes!(image))
        .routes(routes!(thumbnail))
        // Signed URLs for a browser's `<img src>`: no token (`crate::signed_urls`).
        .routes(routes!(signed_image))
        .routes(routes!(signed_thumbnail))
}

/// `POST /patients/{id}/xrays`: the body is the image itself (any Content-Type; the format is
/// sniffed). 202 with the X-ray and job ids; the analysis runs in the worker.
#[utoipa::path(
    post,
    path = "/patients/{id}/xrays",
    tag = "xrays",
    operation_id = "uploadXray",
    summary = "Upload an X-ray of a patient",
    description = "The body is the image itself, PNG or JPEG (sniffed; the `Content-Type` is not \
                   trusted), up to `XRAY_MAX_BYTES` (10 MiB by default) and 60 megapixels. The \
                   analysis (quality check, thumbnail) runs in the background: poll the job or \
                   the X-ray. Each clinic has a daily upload quota (429).",
    params(("id" = PatientId, Path, description = "The patient's id."), IdempotencyKeyHeader),
    request_body(description = "The image.",
                 content((Vec<u8> = "image/png"), (Vec<u8> = "image/jpeg"))),
    responses(
        (status = 202, description = "Stored; the analysis is queued.", body = UploadAccepted,
         headers(("Location" = String, description = "`/xrays/{id}`."),
                 ("Idempotent-Replayed" = String, description = "`true` on a replay."))),
        (status = 409, response = Conflict),
        (status = 413, response = PayloadTooLarge),
        (status = 415, response = UnsupportedMediaType),
        (status = 422, response = Validation),
    ),
    extensions(("x-roles" = json!(STAFF))),
)]
async fn upload(
    State(state): State<AppState>,
    principal: Principal,
    ApiPath(patient_id): ApiPath<PatientId>,
    request: Request,
) -> Result<Response, ApiError> {
    principal.require(STAFF)?;
    let idempotency_key = IdempotencyKey::from_headers(request.headers())?;
    let bytes = read_image(request, state.config.xrays.max_upload_bytes).await?;
    // Header only: bombs and cut-off files are refused before anything is stored.
    let header = analysis::inspect(&bytes, &PixelLimits::default())?;
    let file = DirectUpload {
        patient_id,
        uploaded_by: principal.user_id,
        header,
        sha256: Sha256Digest::of(&bytes),
        bytes,
    };
    let uploaded = XrayService::new(&state)
        .upload(principal.clinic_id, file, idempotency_key)
        .await?;
    accepted(uploaded)
}

/// 202 with the X-ray and its job (`Idempotent-Replayed: true` when it existed already).
fn accepted(uploaded: Uploaded) -> Result<Response, ApiError> {
    tracing::info!(
        xray_id = %uploaded.record.id,
        job_id = %uploaded.job_id,
        byte_size = uploaded.record.byte_size,
        replayed = uploaded.replayed,
        "x-ray uploaded"
    );
    let location = HeaderValue::from_str(&format!("/xrays/{}", uploaded.record.id))
        .map_err(ApiError::internal)?;
    let mut response = (
        StatusCode::ACCEPTED,
        [(header::LOCATION, location)],
        Json(UploadAccepted::new(&uploaded.record, uploaded.job_id)),
    )
        .into_response();
    if uploaded.replayed {
        response
            .headers_mut()
            .insert("idempotent-replayed", HeaderValue::from_static("true"));
    }
    Ok(response)
}

/// Reads at most `limit` bytes: a declared `Content-Length` over it is refused before reading,
/// a body that grows past it is cut off at the limit.
async fn read_image(request: Request, limit: usize) -> Result<Bytes, ApiError> {
    let declared = request
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.parse::<u64>().ok());
    if declared.is_some_and(|length| length > limit as u64) {
        return Err(ApiError::PayloadTooLarge { limit });
    }
    match Limited::new(request.into_body(), limit).collect().await {
        Ok(collected) => Ok(collected.to_bytes()),
        Err(error) if error.downcast_ref::<LengthLimitError>().is_some() => {
            Err(ApiError::PayloadTooLarge { limit })
        }
        Err(_) => Err(ApiError::BadRequest {
            detail: "The request body could not be read.".into(),
            field: None,
        }),
    }
}

/// `POST /patients/{id}/xray-uploads`: an upload by presigned URL, for files of any size up to
/// `XRAY_UPLOAD_MAX_BYTES` (past what a request to a function can carry).
#[utoipa::path(
    post,
    path = "/patients/{id}/xray-uploads",
    tag = "xrays",
    operation_id = "openXrayUpload",
    summary = "Start an upload of an X-ray straight to storage",
    description = "Answers with `upload`: the PUT that sends the file (its URL and the headers \
                   it must carry, all signed: storage refuses another size, checksum or type). \
                   Send the file there, then `POST` to `links.complete`: the file is checked \
                   like a direct upload's and becomes the X-ray `/xrays/{id}` (the upload's own \
                   id). Storage also tells Pulso when the file arrives, so an upload whose \
                   completion call was lost still becomes an X-ray.",
    params(("id" = PatientId, Path, description = "The patient's id.")),
    request_body = NewUploadRequest,
    responses(
        (status = 201, description = "Opened; PUT the file to `upload.url`.",
         body = UploadResponse,
         headers(("Location" = String, description = "`/xray-uploads/{id}`."))),
        (status = 409, response = Conflict),
        (status = 422, response = Validation),
    ),
    extensions(("x-roles" = json!(STAFF))),
)]
async fn open_upload(
    State(state): State<AppState>,
    principal: Principal,
    ApiPath(patient_id): ApiPath<PatientId>,
    ApiJson(request): ApiJson<NewUploadRequest>,
) -> Result<Response, ApiError> {
    principal.require(STAFF)?;
    let plan = request.validate(state.config.xrays.max_presigned_bytes)?;
    let (record, put) = XrayService::new(&state)
        .open_upload(principal.clinic_id, patient_id, principal.user_id, &plan)
        .await?;
    tracing::info!(upload_id = %record.id, byte_size = record.byte_size, "x-ray upload opened");
    let location = HeaderValue::from_str(&format!("/xray-uploads/{}", record.id))
        .map_err(ApiError::internal)?;
    Ok((
        StatusCode::CREATED,
        [(header::LOCATION, location)],
        Json(UploadResponse::new(record, Some(put))),
    )
        .into_response())
}

#[utoipa::path(
    get,
    path = "/xray-uploads/{id}",
    tag = "xrays",
    operation_id = "getXrayUpload",
    summary = "An upload's status",
    description = "While `open`, `upload` is a fresh PUT for the file (to resume after its URL \
                   expired). `accepted`: the X-ray exists; `rejected`: `error` says why.",
    params(("id" = XrayId, Path, description = "The upload's id.")),
    responses((status = 200, description = "The upload.", body = UploadResponse)),
    extensions(("x-roles" = json!(STAFF))),
)]
async fn show_upload(
    State(state): State<AppState>,
    principal: Principal,
    ApiPath(id): ApiPath<XrayId>,
) -> Result<Json<UploadResponse>, ApiError> {
    principal.require(STAFF)?;
    let (record, put) = XrayService::new(&state)
        .find_upload(principal.clinic_id, id)
        .await?;
    Ok(Json(UploadResponse::new(record, put)))
}

#[utoipa::path(
    post,
    path = "/xray-uploads/{id}/complete",
    tag = "xrays",
    operation_id = "completeXrayUpload",
    summary = "Check an uploaded file and make it an X-ray",
    description = "Call once the PUT succeeded. The file is checked like a direct upload's \
                   (format sniffed, header against decompression bombs, structure to its end, \
                   and the announced size and SHA-256); then it is the X-ray of the same id \
                   and its analysis is queued. Safe to repeat: a completed upload answers with \
                   its X-ray (`Idempotent-Replayed: true`), a refused one with 409 \
                   `upload-rejected`.",
    params(("id" = XrayId, Path, description = "The upload's id.")),
    responses(
        (status = 202, description = "Accepted; the analysis is queued.", body = UploadAccepted,
         headers(("Location" = String, description = "`/xrays/{id}`."),
                 ("Idempotent-Replayed" = String, description = "`true` on a repeat."))),
        (status = 409, response = Conflict),
        (status = 415, response = UnsupportedMediaType),
        (status = 422, response = Validation),
        (status = 429, response = TooManyRequests),
    ),
    extensions(("x-roles" = json!(STAFF))),
)]
async fn complete_upload(
    State(state): State<AppState>,
    principal: Principal,
    ApiPath(id): ApiPath<XrayId>,
) -> Result<Response, ApiError> {
    principal.require(STAFF)?;
    let uploaded = XrayService::new(&state)
        .complete_upload(principal.clinic_id, id)
        .await?;
    accepted(uploaded)
}

/// `GET /patients/{id}/xrays`: newest first, 50 a page by default.
#[utoipa::path(
    get,
    path = "/patients/{id}/xrays",
    tag = "xrays",
    operation_id = "listXrays",
    summary = "A patient's X-rays, newest first",
    description = "Each item's `media` holds signed URLs of its image and thumbnail, for an \
                   `<img src>` without a token.",
    params(("id" = PatientId, Path, description = "The patient's id."), ListXraysQuery),
    responses((status = 200, description = "One page of X-rays.", body = Page<XrayResponse>)),
    extensions(("x-roles" = json!(STAFF))),
)]
async fn list(
    State(state): State<AppState>,
    principal: Principal,
    ApiPath(patient_id): ApiPath<PatientId>,
    ApiQuery(query): ApiQuery<ListXraysQuery>,
    headers: HeaderMap,
) -> Result<Json<Page<XrayResponse>>, ApiError> {
    principal.require(STAFF)?;
    let page = PageRequest::new(query.limit, query.cursor.as_deref())?;
    let found = XrayService::new(&state)
        .list(principal.clinic_id, patient_id, &page)
        .await?;
    let base = state.signer.base_for(&headers);
    let now = Utc::now();
    let mut items = Vec::with_capacity(found.items.len());
    for record in found.items {
        let media = XrayMedia::sign(&state, &base, &record, now).await?;
        items.push(XrayResponse::new(record, media));
    }
    Ok(Json(Page {
        items,
        next_cursor: found.next_cursor,
    }))
}

#[utoipa::path(
    get,
    path = "/xrays/{id}",
    tag = "xrays",
    operation_id = "getXray",
    summary = "An X-ray's metadata and analysis",
    description = "`media` holds signed URLs of the image and thumbnail, for an `<img src>` \
                   without a token; they expire (`expires_at`), so read the X-ray again for \
                   fresh ones.",
    params(("id" = XrayId, Path, description = "The X-ray's id.")),
    responses((status = 200, description = "The X-ray.", body = XrayResponse)),
    extensions(("x-roles" = json!(STAFF))),
)]
async fn show(
    State(state): State<AppState>,
    principal: Principal,
    ApiPath(id): ApiPath<XrayId>,
    headers: HeaderMap,
) -> Result<Json<XrayResponse>, ApiError> {
    principal.require(STAFF)?;
    let record = XrayService::new(&state)
        .find(principal.clinic_id, id)
        .await?;
    let base = state.signer.base_for(&headers);
    let media = XrayMedia::sign(&state, &base, &record, Utc::now()).await?;
    Ok(Json(XrayResponse::new(record, media)))
}

/// The original bytes as uploaded, with their sniffed content type. ETag is the SHA-256; a
/// matching `If-None-Match` gets 304 without the bytes leaving PostgreSQL.
#[utoipa::path(
    get,
    path = "/xrays/{id}/image",
    tag = "xrays",
    operation_id = "getXrayImage",
    summary = "The original image",
    params(("id" = XrayId, Path, description = "The X-ray's id."), IfNoneMatchHeader),
    responses(
        (status = 200, description = "The image as uploaded.",
         content((Vec<u8> = "image/png"), (Vec<u8> = "image/jpeg")),
         headers(("ETag" = String, description = "The image's SHA-256."),
                 ("Cache-Control" = String, description = "`private, max-age=31536000, immutable`."),
                 ("Content-Disposition" = String, description = "`inline; filename=…`."))),
        (status = 307, response = MediaRedirect),
        (status = 304, description = "The client's copy is current.",
         headers(("ETag" = String, description = "The image's SHA-256."))),
    ),
    extensions(("x-roles" = json!(STAFF))),
)]
async fn image(
    State(state): State<AppState>,
    principal: Principal,
    ApiPath(id): ApiPath<XrayId>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    principal.require(STAFF)?;
    image_response(
        &state,
        principal.clinic_id,
        id,
        &headers,
        IMAGE_CACHE_CONTROL.into(),
    )
    .await
}

/// The image by signed URL (`media.image` of an X-ray): no `Authorization` header.
#[utoipa::path(
    get,
    path = "/media/xrays/{id}/image",
    tag = "xrays",
    operation_id = "getXrayImageBySignedUrl",
    summary = "The original image, by signed URL",
    description = "The URL comes from an X-ray's `media.image`; it needs no `Authorization` \
                   header and answers 403 `invalid-signature` once expired or altered.",
    params(("id" = XrayId, Path, description = "The X-ray's id."), SignedQuery, IfNoneMatchHeader),
    responses(
        (status = 200, description = "The image as uploaded.",
         content((Vec<u8> = "image/png"), (Vec<u8> = "image/jpeg")),
         headers(("ETag" = String, description = "The image's SHA-256."),
                 ("Cache-Control" = String, description = "`private, max-age=…` until the URL expires."),
                 ("Content-Disposition" = String, description = "`inline; filename=…`."))),
        (status = 307, response = MediaRedirect),
        (status = 304, description = "The client's copy is current.",
         headers(("ETag" = String, description = "The image's SHA-256."))),
        (status = 403, response = Forbidden),
        (status = 429, response = TooManyRequests),
    ),
)]
async fn signed_image(
    State(state): State<AppState>,
    ApiPath(id): ApiPath<XrayId>,
    ApiQuery(query): ApiQuery<SignedQuery>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let now = Utc::now();
    let clinic = state
        .signer
        .admit(&state.access, &signed_image_path(id), &query, now)
        .await?;
    image_response(&state, clinic, id, &headers, until_expiry(&query, now)).await
}

async fn image_response(
    state: &AppState,
    clinic: ClinicId,
    id: XrayId,
    headers: &HeaderMap,
    cache_control: String,
) -> Result<Response, ApiError> {
    let image = XrayService::new(state)
        .image(clinic, id, &IfNoneMatch::from_headers(headers))
        .await?;
    let download = image_download(id, &image.content_type);
    match image.stored {
        Some(Stored::Object(key)) => state
            .presigned(&key, &download.as_download(), Utc::now())
            .await?
            .redirect(),
        stored => binary_response(
            stored.and_then(Stored::into_bytes),
            download.as_download().content_type,
            &image.sha256,
            &cache_control,
            Some(download.as_download().disposition),
        ),
    }
}

/// A signed URL's answer may be kept by the browser, privately, until the URL expires.
fn until_expiry(query: &SignedQuery, now: DateTime<Utc>) -> String {
    let seconds = (query.expires - now.timestamp()).max(0);
    format!("private, max-age={seconds}")
}

/// The JPEG thumbnail (256 px long side). 409 `/problems/xray-not-ready` (with `Retry-After`)
/// while the analysis is pending, 409 `/problems/xray-analysis-failed` when it failed: the X-ray
/// exists, so 404 would tell a polling client to give up.
#[utoipa::path(
    get,
    path = "/xrays/{id}/thumbnail",
    tag = "xrays",
    operation_id = "getXrayThumbnail",
    summary = "The JPEG thumbnail (256 px long side)",
    description = "409 `xray-not-ready` (with `Retry-After`) while the analysis is pending, \
                   `xray-analysis-failed` when it failed.",
    params(("id" = XrayId, Path, description = "The X-ray's id."), IfNoneMatchHeader),
    responses(
        (status = 200, description = "The thumbnail.", content_type = "image/jpeg", body = Vec<u8>,
         headers(("ETag" = String, description = "The thumbnail's SHA-256."),
                 ("Cache-Control" = String, description = "`private, max-age=86400`."))),
        (status = 307, response = MediaRedirect),
        (status = 304, description = "The client's copy is current.",
         headers(("ETag" = String, description = "The thumbnail's SHA-256."))),
        (status = 409, response = Conflict),
    ),
    extensions(("x-roles" = json!(STAFF))),
)]
async fn thumbnail(
    State(state): State<AppState>,
    principal: Principal,
    ApiPath(id): ApiPath<XrayId>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    principal.require(STAFF)?;
    let cache_control = THUMBNAIL_CACHE_CONTROL.into();
    thumbnail_response(&state, principal.clinic_id, id, &headers, cache_control).await
}

/// The thumbnail by signed URL (`media.thumbnail` of an X-ray): no `Authorization` header.
#[utoipa::path(
    get,
    path = "/media/xrays/{id}/thumbnail",
    tag = "xrays",
    operation_id = "getXrayThumbnailBySignedUrl",
    summary = "The JPEG thumbnail, by signed URL",
    description = "The URL comes from an X-ray's `media.thumbnail`; it needs no \
                   `Authorization` header and answers 403 `invalid-signature` once expired or \
                   altered.",
    params(("id" = XrayId, Path, description = "The X-ray's id."), SignedQuery, IfNoneMatchHeader),
    responses(
        (status = 200, description = "The thumbnail.", content_type = "image/jpeg", body = Vec<u8>,
         headers(("ETag" = String, description = "The thumbnail's SHA-256."),
                 ("Cache-Control" = String, description = "`private, max-age=…` until the URL expires."))),
        (status = 307, response = MediaRedirect),
        (status = 304, description = "The client's copy is current.",
         headers(("ETag" = String, description = "The thumbnail's SHA-256."))),
        (status = 403, response = Forbidden),
        (status = 429, response = TooManyRequests),
        (status = 409, response = Conflict),
    ),
)]
async fn signed_thumbnail(
    State(state): State<AppState>,
    ApiPath(id): ApiPath<XrayId>,
    ApiQuery(query): ApiQuery<SignedQuery>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let now = Utc::now();
    let clinic = state
        .signer
        .admit(&state.access, &signed_thumbnail_path(id), &query, now)
        .await?;
    thumbnail_response(&state, clinic, id, &headers, until_expiry(&query, now)).await
}

async fn thumbnail_response(
    state: &AppState,
    clinic: ClinicId,
    id: XrayId,
    headers: &HeaderMap,
    cache_control: String,
) -> Result<Response, ApiError> {
    let (stored, digest) = match XrayService::new(state).thumbnail(clinic, id).await {
        Ok(found) => found,
        Err(error) => {
            let pending = matches!(
                error,
                XrayError::NotAnalysed {
                    status: XrayStatus::Pending
                }
            );
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
    if IfNoneMatch::from_headers(headers).matches(&digest) {
        return binary_response(None, "image/jpeg", &digest, &cache_control, None);
    }
    match stored {
        Stored::Object(key) => state
            .presigned(&key, &THUMBNAIL_DOWNLOAD, Utc::now())
            .await?
            .redirect(),
        Stored::Bytes(bytes) => {
            binary_response(Some(bytes), "image/jpeg", &digest, &cache_control, None)
        }
    }
}

/// 200 with the bytes, or 304 when `bytes` is `None` (the client's copy is current).
fn binary_response(
    bytes: Option<Vec<u8>>,
    content_type: &str,
    digest: &Sha256Digest,
    cache_control: &str,
    disposition: Option<&str>,
) -> Result<Response, ApiError> {
    let etag =
        HeaderValue::from_str(&format!("\"{}\"", digest.hex())).map_err(ApiError::internal)?;
    let mut response = match bytes {
        None => StatusCode::NOT_MODIFIED.into_response(),
        Some(bytes) => {
            let mut response = (StatusCode::OK, bytes).into_response();
            let headers = response.headers_mut();
            headers.insert(
                header::CONTENT_TYPE,
                HeaderValue::from_str(content_type).map_err(ApiError::internal)?,
            );
            headers.insert(
                header::X_CONTENT_TYPE_OPTIONS,
                HeaderValue::from_static("nosniff"),
            );
            if let Some(disposition) = disposition {
                headers.insert(
                    header::CONTENT_DISPOSITION,
                    HeaderValue::from_str(disposition).map_err(ApiError::internal)?,
                );
            }
            response
        }
    };
    let headers = response.headers_mut();
    headers.insert(header::ETAG, etag);
    headers.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_str(cache_control).map_err(ApiError::internal)?,
    );
    Ok(response)
}
