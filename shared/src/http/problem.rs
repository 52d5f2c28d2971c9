//! Every error a client can see, and the RFC 9457 `application/problem+json` body it becomes.

use crate::db::DbError;
use crate::input::InputError;
use crate::telemetry::ErrorChain;
use axum::response::{IntoResponse, Response};
use http::{HeaderName, HeaderValue, StatusCode, header};
use serde::{Deserialize, Serialize};

pub const PROBLEM_JSON: &str = "application/problem+json";

/// Every error a client can see. The body never carries a cause chain; the log line does.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("malformed request: {detail}")]
    BadRequest {
        detail: String,
        field: Option<String>,
    },
    #[error("invalid field: {detail}")]
    Validation { detail: String, field: String },
    #[error("not authenticated: {detail}")]
    Unauthorized { detail: String },
    #[error("forbidden: {detail}")]
    Forbidden { detail: String },
    /// The token verifies, but names no person Pulso knows.
    #[error("unknown user")]
    UnknownUser,
    /// The caller's membership of the clinic (or of every clinic) has been deactivated.
    #[error("user deactivated")]
    UserDeactivated,
    /// The clinic named (or claimed) is not one the caller belongs to, or none is.
    #[error("not a member")]
    NotAMember,
    /// The caller belongs to several clinics and the request named none.
    #[error("clinic required")]
    ClinicRequired,
    #[error("clinic archived")]
    ClinicArchived,
    /// A signed media URL (`crate::signed_urls`) that expired, was altered or names an unknown
    /// key.
    #[error("invalid signed URL")]
    InvalidSignature { expired: bool },
    /// Over a quota (a clinic's pending jobs, daily uploads…): `detail` says which.
    #[error("quota exceeded")]
    QuotaExceeded {
        detail: String,
        retry_after_seconds: u64,
    },
    /// Over a rate limit: `detail` says which, `headers` are the limit's `RateLimit` fields.
    #[error("rate limited")]
    RateLimited {
        retry_after_seconds: u64,
        detail: String,
        headers: Vec<(HeaderName, HeaderValue)>,
    },
    #[error("{what} not found")]
    NotFound { what: &'static str },
    #[error("method not allowed")]
    MethodNotAllowed,
    /// `If-Match` named a version of `what` that is no longer current (`http::conditional`).
    #[error("precondition failed")]
    PreconditionFailed { what: &'static str },
    #[error("conflict: {detail}")]
    Conflict {
        kind: ConflictKind,
        detail: String,
        field: Option<String>,
    },
    /// A booking the agenda's capacity refuses (`crate::schedule`): outside the dentist's hours,
    /// on time off or a closure, in a chair taken then. `intervals`: the offending stretches.
    #[error("conflict: {detail}")]
    CapacityConflict {
        kind: ConflictKind,
        detail: String,
        field: Option<String>,
        intervals: Vec<ProblemInterval>,
    },
    #[error("body over {limit} bytes")]
    PayloadTooLarge { limit: usize },
    #[error("unsupported media type")]
    UnsupportedMediaType { expected: &'static str },
    #[error("dependency unavailable")]
    Unavailable {
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
        retry_after_seconds: u32,
    },
    #[error("internal error")]
    Internal {
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
}

impl ApiError {
    pub fn validation(field: impl Into<String>, detail: impl Into<String>) -> Self {
        ApiError::Validation {
            field: field.into(),
            detail: detail.into(),
        }
    }

    pub fn internal(source: impl std::error::Error + Send + Sync + 'static) -> Self {
        ApiError::Internal {
            source: Box::new(source),
        }
    }

    pub fn status(&self) -> StatusCode {
        match self {
            ApiError::BadRequest { .. } | ApiError::ClinicRequired => StatusCode::BAD_REQUEST,
            ApiError::Validation { .. } => StatusCode::UNPROCESSABLE_ENTITY,
            ApiError::Unauthorized { .. } => StatusCode::UNAUTHORIZED,
            ApiError::Forbidden { .. } => StatusCode::FORBIDDEN,
            ApiError::UnknownUser => StatusCode::UNAUTHORIZED,
            ApiError::UserDeactivated
            | ApiError::NotAMember
            | ApiError::ClinicArchived
            | ApiError::InvalidSignature { .. } => StatusCode::FORBIDDEN,
            ApiError::RateLimited { .. } | ApiError::QuotaExceeded { .. } => {
                StatusCode::TOO_MANY_REQUESTS
            }
            ApiError::NotFound { .. } => StatusCode::NOT_FOUND,
            ApiError::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
            ApiError::PreconditionFailed { .. } => StatusCode::PRECONDITION_FAILED,
            ApiError::Conflict { .. } | ApiError::CapacityConflict { .. } => StatusCode::CONFLICT,
            ApiError::PayloadTooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
            ApiError::UnsupportedMediaType { .. } => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            ApiError::Unavailable { .. } => StatusCode::SERVICE_UNAVAILABLE,
            ApiError::Internal { .. } => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// The RFC 9457 body of this error, as the HTTP edge (and the WebSocket handshake) sends it.
    pub fn problem(&self) -> Problem {
        let (kind, title, detail, field) = match self {
            ApiError::BadRequest { detail, field } => (
                "bad-request",
                "Malformed request",
                detail.clone(),
                field.clone(),
            ),
            ApiError::Validation { detail, field } => (
                "validation",
                "Invalid field",
                detail.clone(),
                Some(field.clone()),
            ),
            ApiError::Unauthorized { detail } => {
                ("unauthorized", "Not authenticated", detail.clone(), None)
            }
            ApiError::Forbidden { detail } => ("forbidden", "Forbidden", detail.clone(), None),
            ApiError::UnknownUser => (
                "unknown-user",
                "Unknown user",
                "The token names no user Pulso knows; sign in again.".into(),
                None,
            ),
            ApiError::UserDeactivated => (
                "user-deactivated",
                "User deactivated",
                "Your access to this clinic has been deactivated; ask its admin.".into(),
                None,
            ),
            ApiError::NotAMember => (
                "not-a-member",
                "Not a member",
                "You are not a member of this clinic; GET /me lists the clinics you belong to."
                    .into(),
                None,
            ),
            ApiError::ClinicRequired => (
                "clinic-required",
                "Clinic required",
                "You belong to several clinics: name one in the Pulso-Clinic header (GET /me \
                 lists them)."
                    .into(),
                Some("Pulso-Clinic".into()),
            ),
            ApiError::ClinicArchived => (
                "clinic-archived",
                "Clinic archived",
                "This clinic has been archived; its data can no longer be used.".into(),
                None,
            ),
            ApiError::InvalidSignature { expired } => (
                "invalid-signature",
                "Invalid or expired link",
                if *expired {
                    "This link has expired; read the record again for a fresh one."
                } else {
                    "This link is not valid; read the record again for a fresh one."
                }
                .into(),
                None,
            ),
            ApiError::RateLimited { detail, .. } => {
                ("rate-limited", "Too many requests", detail.clone(), None)
            }
            ApiError::QuotaExceeded { detail, .. } => {
                ("quota-exceeded", "Quota exceeded", detail.clone(), None)
            }
            ApiError::NotFound { what } => (
                "not-found",
                "Not found",
                format!("No {what} with that id exists in your clinic."),
                None,
            ),
            ApiError::MethodNotAllowed => (
                "method-not-allowed",
                "Method not allowed",
                "This resource does not support that method.".into(),
                None,
            ),
            ApiError::PreconditionFailed { what } => (
                "precondition-failed",
                "Precondition failed",
                format!(
                    "The {what} has changed since the version in If-Match; read it again and \
                     reapply your change. Nothing was written."
                ),
                Some("If-Match".into()),
            ),
            ApiError::Conflict {
                kind,
                detail,
                field,
            }
            | ApiError::CapacityConflict {
                kind,
                detail,
                field,
                ..
            } => (kind.slug(), "Conflict", detail.clone(), field.clone()),
            ApiError::PayloadTooLarge { limit } => (
                "payload-too-large",
                "Payload too large",
                format!("The request body is larger than the limit of {limit} bytes."),
                None,
            ),
            ApiError::UnsupportedMediaType { expected } => (
                "unsupported-media-type",
                "Unsupported media type",
                format!("Send the body as {expected}."),
                None,
            ),
            ApiError::Unavailable { .. } => (
                "unavailable",
                "Service unavailable",
                "A service Pulso depends on is unavailable; retry shortly.".into(),
                None,
            ),
            ApiError::Internal { .. } => (
                "internal",
                "Internal error",
                "Something went wrong on our side; it has been logged.".into(),
                None,
            ),
        };
        let intervals = match self {
            ApiError::CapacityConflict { intervals, .. } => Some(intervals.clone()),
            _ => None,
        };
        Problem {
            problem_type: format!("/problems/{kind}"),
            title,
            status: self.status().as_u16(),
            detail,
            field,
            intervals,
        }
    }
}

/// How a request conflicts with a resource's state: the problem `type`'s last segment, stable
/// and machine-readable. The contract shows an example of each (`crate::contract`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ConflictKind {
    DuplicateNationalId,
    PatientArchived,
    AppointmentOverlap,
    AppointmentClosed,
    InvalidTransition,
    AppointmentNotStarted,
    XrayNotReady,
    XrayAnalysisFailed,
    ReportNotReady,
    ReportFailed,
    JobNotReplayable,
    /// The change would leave the clinic without an active admin.
    LastAdmin,
    /// An organization or clinic with this slug exists, and is not the one asked for.
    SlugTaken,
    /// Archiving the clinic the request acts in would leave the operator no way back.
    ActingClinic,
    /// An invitation of someone who is a member already, with another role or deactivated.
    AlreadyMember,
    /// A booking outside the dentist's working hours.
    OutsideWorkingHours,
    /// A booking on the dentist's time off (holiday, sick leave, training, personal).
    DentistAway,
    /// A booking while the clinic is closed (a closure or public holiday).
    ClinicClosed,
    /// A booking in a chair another appointment has then.
    ChairTaken,
    /// A chair name the clinic uses already.
    ChairNameTaken,
    /// Completing an upload whose file has not arrived in storage yet.
    UploadNotReceived,
    /// Completing an upload whose file was refused earlier (it is gone).
    UploadRejected,
}

impl ConflictKind {
    pub const ALL: [ConflictKind; 22] = [
        ConflictKind::DuplicateNationalId,
        ConflictKind::PatientArchived,
        ConflictKind::AppointmentOverlap,
        ConflictKind::AppointmentClosed,
        ConflictKind::InvalidTransition,
        ConflictKind::AppointmentNotStarted,
        ConflictKind::XrayNotReady,
        ConflictKind::XrayAnalysisFailed,
        ConflictKind::ReportNotReady,
        ConflictKind::ReportFailed,
        ConflictKind::JobNotReplayable,
        ConflictKind::LastAdmin,
        ConflictKind::SlugTaken,
        ConflictKind::ActingClinic,
        ConflictKind::AlreadyMember,
        ConflictKind::OutsideWorkingHours,
        ConflictKind::DentistAway,
        ConflictKind::ClinicClosed,
        ConflictKind::ChairTaken,
        ConflictKind::ChairNameTaken,
        ConflictKind::UploadNotReceived,
        ConflictKind::UploadRejected,
    ];

    pub fn slug(self) -> &'static str {
        match self {
            ConflictKind::DuplicateNationalId => "duplicate-national-id",
            ConflictKind::PatientArchived => "patient-archived",
            ConflictKind::AppointmentOverlap => "appointment-overlap",
            ConflictKind::AppointmentClosed => "appointment-closed",
            ConflictKind::InvalidTransition => "invalid-transition",
            ConflictKind::AppointmentNotStarted => "appointment-not-started",
            ConflictKind::XrayNotReady => "xray-not-ready",
            ConflictKind::XrayAnalysisFailed => "xray-analysis-failed",
            ConflictKind::ReportNotReady => "report-not-ready",
            ConflictKind::ReportFailed => "report-failed",
            ConflictKind::JobNotReplayable => "job-not-replayable",
            ConflictKind::LastAdmin => "last-admin",
            ConflictKind::SlugTaken => "slug-taken",
            ConflictKind::ActingClinic => "acting-clinic",
            ConflictKind::AlreadyMember => "already-member",
            ConflictKind::OutsideWorkingHours => "outside-working-hours",
            ConflictKind::DentistAway => "dentist-away",
            ConflictKind::ClinicClosed => "clinic-closed",
            ConflictKind::ChairTaken => "chair-taken",
            ConflictKind::ChairNameTaken => "chair-name-taken",
            ConflictKind::UploadNotReceived => "upload-not-received",
            ConflictKind::UploadRejected => "upload-rejected",
        }
    }
}

/// RFC 9457 problem details; `field` is the extension member naming the offending input.
#[derive(Debug, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Problem {
    /// A stable, relative URI naming the kind of problem, e.g. `/problems/validation`.
    #[serde(rename = "type")]
    pub problem_type: String,
    /// A short summary of the kind of problem.
    pub title: &'static str,
    /// The HTTP status code.
    pub status: u16,
    /// What went wrong with this request, for a person to read.
    pub detail: String,
    /// The offending input: a JSON field path (`.` for the whole body), a query or path
    /// parameter, or a header.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub field: Option<String>,
    /// The stretches of time a booking conflicts with (the capacity conflicts only): the
    /// dentist's working hours that day, the time off or closure, the chair's booking.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub intervals: Option<Vec<ProblemInterval>>,
}

/// A stretch of time a problem names, `[starts_at, ends_at)`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ProblemInterval {
    pub starts_at: chrono::DateTime<chrono::Utc>,
    pub ends_at: chrono::DateTime<chrono::Utc>,
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        match &self {
            ApiError::Internal { source } => {
                tracing::error!(error = %ErrorChain(source.as_ref()), "request failed")
            }
            ApiError::Unavailable { source, .. } => {
                tracing::warn!(error = %ErrorChain(source.as_ref()), "dependency unavailable")
            }
            _ => {}
        }
        let mut response = (self.status(), axum::Json(self.problem())).into_response();
        if let ApiError::Unavailable { source, .. } = &self
            && source
                .downcast_ref::<DbError>()
                .is_some_and(DbError::credentials_refused)
        {
            response.extensions_mut().insert(CredentialsRefused);
        }
        let headers = response.headers_mut();
        headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(PROBLEM_JSON));
        match &self {
            ApiError::Unavailable {
                retry_after_seconds,
                ..
            } => {
                headers.insert(header::RETRY_AFTER, HeaderValue::from(*retry_after_seconds));
            }
            ApiError::Unauthorized { .. } | ApiError::UnknownUser => {
                headers.insert(
                    header::WWW_AUTHENTICATE,
                    HeaderValue::from_static("Bearer realm=\"pulso\""),
                );
            }
            ApiError::QuotaExceeded {
                retry_after_seconds,
                ..
            } => {
                headers.insert(header::RETRY_AFTER, HeaderValue::from(*retry_after_seconds));
            }
            ApiError::RateLimited {
                retry_after_seconds,
                headers: limit,
                ..
            } => {
                headers.insert(header::RETRY_AFTER, HeaderValue::from(*retry_after_seconds));
                headers.extend(limit.iter().cloned());
            }
            _ => {}
        }
        response
    }
}

/// Marks a response whose request met PostgreSQL refusing the pool's credentials: the edge
/// (`super::finish`) has the pool read its secret again before answering.
#[derive(Clone, Copy, Debug)]
pub struct CredentialsRefused;

impl From<DbError> for ApiError {
    fn from(error: DbError) -> Self {
        match error {
            DbError::Unavailable(_) => ApiError::Unavailable {
                source: Box::new(error),
                retry_after_seconds: 5,
            },
            DbError::Query(_) => ApiError::internal(error),
        }
    }
}

/// A refused input is the client's to fix: malformed is a 400, invalid a 422, naming the field.
impl From<InputError> for ApiError {
    fn from(error: InputError) -> Self {
        match error {
            InputError::Malformed { field, detail } => ApiError::BadRequest { detail, field },
            InputError::Invalid { field, detail } => ApiError::Validation { detail, field },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn input_errors_become_400_or_422_naming_their_field() {
        let problem =
            ApiError::from(InputError::malformed("limit", "limit must be 1 or more.")).problem();
        assert_eq!(
            (
                problem.status,
                problem.field.as_deref(),
                problem.detail.as_str()
            ),
            (400, Some("limit"), "limit must be 1 or more.")
        );
        let problem = ApiError::from(InputError::malformed_request("Nothing changes.")).problem();
        assert_eq!((problem.status, problem.field), (400, None));
        let problem = ApiError::from(InputError::invalid("reason", "must be shorter")).problem();
        assert_eq!(
            (
                problem.status,
                problem.problem_type.as_str(),
                problem.field.as_deref()
            ),
            (422, "/problems/validation", Some("reason"))
        );
    }
}
