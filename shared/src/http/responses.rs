//! The problem responses of the OpenAPI document (`crate::contract`), each with an example of
//! every problem type it can carry. The examples are built by [`ApiError::problem`] itself, so
//! the document shows exactly the bodies the API sends. An operation names the ones its shape
//! does not imply with the marker types below: `(status = 409, response = Conflict)`.

use super::{ApiError, ConflictKind, PROBLEM_JSON, Problem};
use std::io;
use utoipa::openapi::header::{Header, HeaderBuilder};
use utoipa::openapi::response::{Response, ResponseBuilder};
use utoipa::openapi::{ContentBuilder, Ref, RefOr, example::ExampleBuilder};
use utoipa::{PartialSchema, ToSchema};

/// The shared problem responses an operation names itself, as `(status = 409, response =
/// Conflict)`; the others are added by shape (`crate::contract`).
macro_rules! shared_response {
    ($($(#[$meta:meta])* $name:ident),*) => {$(
        $(#[$meta])*
        pub struct $name;

        impl<'r> utoipa::ToResponse<'r> for $name {
            fn response() -> (&'r str, RefOr<utoipa::openapi::response::Response>) {
                let name = stringify!($name);
                (name, RefOr::Ref(Ref::new(format!("#/components/responses/{name}"))))
            }
        }
    )*};
}

shared_response!(
    /// 403, for an operation without `x-roles` (those get it by shape): a signed link's.
    Forbidden,
    /// 409 `application/problem+json`: every conflict type is an example.
    Conflict,
    /// 404, for an operation without path parameters (those get it by shape).
    NotFound,
    /// 413, for an operation whose body is not described as JSON.
    PayloadTooLarge,
    /// 415, for an operation whose body is not described as JSON.
    UnsupportedMediaType,
    /// 412, for an operation that honours `If-Match`.
    PreconditionFailed,
    /// 429, for an operation without `x-roles` that is rate limited all the same (signed links).
    TooManyRequests,
    /// 422, for an operation whose body is not described as JSON.
    Validation
);

/// 307 to a presigned GET of the file in object storage (`MediaUrl::redirect`): not a problem,
/// but shared by every route that serves a stored file.
pub struct MediaRedirect;

impl MediaRedirect {
    pub const NAME: &'static str = "MediaRedirect";

    /// The response as `components.responses` holds it.
    pub fn component() -> Response {
        let header = |description: &str| {
            HeaderBuilder::new()
                .schema(Some(String::schema()))
                .description(Some(description))
                .build()
        };
        ResponseBuilder::new()
            .description(
                "The file is in object storage: follow `Location`, a presigned GET that needs \
                 no `Authorization` header and answers with the file's type, disposition and \
                 caching. Browsers follow it by themselves (`<img src>`, download links).",
            )
            .header(
                "Location",
                header("The presigned URL; the same within a `MEDIA_URL_TTL_SECONDS` window."),
            )
            .header(
                "Cache-Control",
                header("`no-store`: ask again for a fresh URL."),
            )
            .build()
    }
}

impl<'r> utoipa::ToResponse<'r> for MediaRedirect {
    fn response() -> (&'r str, RefOr<Response>) {
        let name = Self::NAME;
        (
            name,
            RefOr::Ref(Ref::new(format!("#/components/responses/{name}"))),
        )
    }
}

/// An example body of each conflict, as the services word it.
fn conflict_example(kind: ConflictKind) -> (&'static str, Option<&'static str>) {
    match kind {
        ConflictKind::DuplicateNationalId => (
            "Another patient of this clinic already has this national id.",
            Some("national_id"),
        ),
        ConflictKind::PatientArchived => (
            "The patient is archived; archived records cannot be changed.",
            None,
        ),
        ConflictKind::AppointmentOverlap => (
            "The dentist already has an appointment from 10:00 to 10:30 (UTC) that overlaps.",
            Some("starts_at"),
        ),
        ConflictKind::AppointmentClosed => (
            "The appointment is cancelled; only scheduled or confirmed appointments can be \
             changed.",
            None,
        ),
        ConflictKind::InvalidTransition => ("A cancelled appointment cannot be confirmed.", None),
        ConflictKind::AppointmentNotStarted => (
            "Cannot complete an appointment before it starts (2026-12-07T10:00:00Z).",
            None,
        ),
        ConflictKind::XrayNotReady => (
            "The X-ray is still being analysed; its thumbnail exists once its status is ready.",
            None,
        ),
        ConflictKind::XrayAnalysisFailed => (
            "The analysis of this X-ray failed, so it has no thumbnail.",
            None,
        ),
        ConflictKind::ReportNotReady => (
            "The report is still being generated; poll GET /reports/{id} until its status is \
             ready.",
            None,
        ),
        ConflictKind::ReportFailed => (
            "The report could not be generated, so it has no PDF; GET /reports/{id} says why.",
            None,
        ),
        ConflictKind::JobNotReplayable => (
            "The job is running; only dead or failed jobs can be replayed.",
            None,
        ),
        ConflictKind::LastAdmin => (
            "This is the clinic's last active admin: make someone else an admin first.",
            None,
        ),
        ConflictKind::SlugTaken => ("Another clinic already has the slug sonrisa.", Some("slug")),
        ConflictKind::ActingClinic => (
            "This request acts in that clinic: archive it from another one (Pulso-Clinic), so \
             you keep a way back.",
            None,
        ),
        ConflictKind::AlreadyMember => (
            "ana@example.com is a member of this clinic already, as dentist: change the \
             membership with PATCH /staff/{id}.",
            Some("email"),
        ),
        ConflictKind::OutsideWorkingHours => (
            "The dentist does not work then: their hours that day are in `intervals`.",
            Some("starts_at"),
        ),
        ConflictKind::DentistAway => (
            "The dentist is away then (holiday \"Navidad\"): see `intervals`.",
            Some("starts_at"),
        ),
        ConflictKind::ClinicClosed => (
            "The clinic is closed then (public_holiday \"Inmaculada Concepción\"): see \
             `intervals`.",
            Some("starts_at"),
        ),
        ConflictKind::ChairTaken => (
            "The chair is taken then by another appointment: see `intervals`.",
            Some("chair_id"),
        ),
        ConflictKind::ChairNameTaken => (
            "The clinic has a chair named Gabinete 1 already.",
            Some("name"),
        ),
        ConflictKind::UploadNotReceived => (
            "The file of this upload has not arrived yet: PUT it to the upload's URL, then \
             complete the upload.",
            None,
        ),
        ConflictKind::UploadRejected => (
            "This upload was refused: the file is not a PNG or JPEG image. Start a new upload.",
            None,
        ),
    }
}

/// The example intervals of a capacity conflict: a morning's hours, or the stretch in the way.
fn capacity_example(kind: ConflictKind) -> Option<Vec<super::ProblemInterval>> {
    let at = |text: &str| {
        chrono::DateTime::parse_from_rfc3339(text)
            .map(|t| t.with_timezone(&chrono::Utc))
            .unwrap_or_default()
    };
    let interval = |start: &str, end: &str| super::ProblemInterval {
        starts_at: at(start),
        ends_at: at(end),
    };
    match kind {
        ConflictKind::OutsideWorkingHours => Some(vec![
            interval("2026-12-09T08:00:00Z", "2026-12-09T13:00:00Z"),
            interval("2026-12-09T15:00:00Z", "2026-12-09T19:00:00Z"),
        ]),
        ConflictKind::DentistAway => Some(vec![interval(
            "2026-12-23T23:00:00Z",
            "2026-12-31T23:00:00Z",
        )]),
        ConflictKind::ClinicClosed => Some(vec![interval(
            "2026-12-07T23:00:00Z",
            "2026-12-08T23:00:00Z",
        )]),
        ConflictKind::ChairTaken => Some(vec![interval(
            "2026-12-09T09:00:00Z",
            "2026-12-09T09:45:00Z",
        )]),
        _ => None,
    }
}

/// A shared response of the document: its component name, the status it stands for and the
/// problem examples it shows.
pub struct ProblemResponse {
    pub name: &'static str,
    pub status: u16,
    description: &'static str,
    examples: Vec<ApiError>,
    /// Names of [`HEADERS`].
    headers: &'static [&'static str],
}

/// The response headers the document describes once, in `components.headers`, and refers to by
/// name: those of the problem responses, and those `crate::contract` adds to every response.
pub const HEADERS: &[(&str, &str)] = &[
    (
        "X-Request-Id",
        "The request's id, also in Pulso's logs; quote it when reporting a problem.",
    ),
    (
        "RateLimit-Policy",
        "The rate limits that apply to the caller on this route (IETF \
         draft-ietf-httpapi-ratelimit-headers), e.g. `\"user\";q=120;w=60`.",
    ),
    (
        "RateLimit",
        "What is left of the closest limit, e.g. `\"user\";r=119;t=1`.",
    ),
    (
        "Retry-After",
        "Seconds to wait before retrying (RFC 9110 §10.2.3).",
    ),
    ("WWW-Authenticate", "`Bearer realm=\"pulso\"` (RFC 6750)."),
];

/// A reference to one of [`HEADERS`].
pub fn header_ref(name: &str) -> RefOr<Header> {
    RefOr::Ref(Ref::new(format!("#/components/headers/{name}")))
}

/// [`HEADERS`] as the document's `components.headers` holds them.
pub fn header_components() -> impl Iterator<Item = (&'static str, Header)> {
    HEADERS.iter().map(|(name, description)| {
        let header = HeaderBuilder::new()
            .schema(Some(String::schema()))
            .description(Some(*description))
            .build();
        (*name, header)
    })
}

/// Every problem response, in status order.
pub fn all() -> Vec<ProblemResponse> {
    vec![
        ProblemResponse {
            name: "BadRequest",
            status: 400,
            description: "Malformed request: the body is not JSON, a query, path or header \
                          parameter does not parse, a PATCH changes nothing, or the caller \
                          belongs to several clinics and named none. `field` names the \
                          parameter.",
            examples: vec![
                ApiError::ClinicRequired,
                ApiError::BadRequest {
                    detail: "The body changes nothing: send at least one field.".into(),
                    field: None,
                },
                ApiError::BadRequest {
                    detail: "limit must be between 1 and 200.".into(),
                    field: Some("limit".into()),
                },
            ],
            headers: &[],
        },
        ProblemResponse {
            name: "Unauthorized",
            status: 401,
            description: "No valid bearer token, or it names no user Pulso knows.",
            examples: vec![
                ApiError::Unauthorized {
                    detail: "The token has expired.".into(),
                },
                ApiError::UnknownUser,
            ],
            headers: &["WWW-Authenticate"],
        },
        ProblemResponse {
            name: "Forbidden",
            status: 403,
            description: "The caller's role may not do this (see the operation's `x-roles`); \
                          the caller is not an active member of the clinic the request acts in \
                          (`Pulso-Clinic`); or the clinic is archived. On a signed media link, \
                          the link expired or was altered.",
            examples: vec![
                ApiError::Forbidden {
                    detail: "This needs one of the roles: admin, receptionist.".into(),
                },
                ApiError::NotAMember,
                ApiError::UserDeactivated,
                ApiError::ClinicArchived,
                ApiError::InvalidSignature { expired: true },
            ],
            headers: &[],
        },
        ProblemResponse {
            name: "NotFound",
            status: 404,
            description: "No such resource in the caller's clinic (another clinic's rows are \
                          answered the same way).",
            examples: vec![ApiError::NotFound { what: "patient" }],
            headers: &[],
        },
        ProblemResponse {
            name: "Conflict",
            status: 409,
            description: "The request conflicts with the resource's state; `type` says how \
                          (each possible type is an example).",
            examples: ConflictKind::ALL
                .into_iter()
                .map(|kind| {
                    let (detail, field) = conflict_example(kind);
                    let (detail, field) = (detail.into(), field.map(str::to_owned));
                    match capacity_example(kind) {
                        Some(intervals) => ApiError::CapacityConflict {
                            kind,
                            detail,
                            field,
                            intervals,
                        },
                        None => ApiError::Conflict {
                            kind,
                            detail,
                            field,
                        },
                    }
                })
                .collect(),
            headers: &[],
        },
        ProblemResponse {
            name: "PreconditionFailed",
            status: 412,
            description: "The resource changed since the version named in `If-Match`; nothing \
                          was written.",
            examples: vec![ApiError::PreconditionFailed { what: "patient" }],
            headers: &[],
        },
        ProblemResponse {
            name: "PayloadTooLarge",
            status: 413,
            description: "The body is over the route's limit.",
            examples: vec![ApiError::PayloadTooLarge { limit: 65_536 }],
            headers: &[],
        },
        ProblemResponse {
            name: "UnsupportedMediaType",
            status: 415,
            description: "The body is not of the media type the route reads.",
            examples: vec![ApiError::UnsupportedMediaType {
                expected: "application/json",
            }],
            headers: &[],
        },
        ProblemResponse {
            name: "Validation",
            status: 422,
            description: "A field breaks a rule; `field` names it (`.` for the body as a whole).",
            examples: vec![ApiError::validation(
                "email",
                "must be an email address such as ana@example.com",
            )],
            headers: &[],
        },
        ProblemResponse {
            name: "TooManyRequests",
            status: 429,
            description: "Over a rate limit or a quota: retry after `Retry-After` seconds.",
            examples: vec![
                ApiError::RateLimited {
                    retry_after_seconds: 2,
                    detail: "Too many requests from this user; retry in 2 seconds.".into(),
                    headers: Vec::new(),
                },
                ApiError::QuotaExceeded {
                    detail: "The clinic has too many pending jobs; retry later.".into(),
                    retry_after_seconds: 30,
                },
            ],
            headers: &["Retry-After", "RateLimit-Policy", "RateLimit"],
        },
        ProblemResponse {
            name: "Internal",
            status: 500,
            description: "A fault on Pulso's side; it is logged under the `X-Request-Id`.",
            examples: vec![ApiError::internal(io::Error::other("example"))],
            headers: &[],
        },
        ProblemResponse {
            name: "Unavailable",
            status: 503,
            description: "A dependency (PostgreSQL) is unavailable; retry after `Retry-After`.",
            examples: vec![ApiError::Unavailable {
                source: Box::new(io::Error::other("example")),
                retry_after_seconds: 5,
            }],
            headers: &["Retry-After"],
        },
    ]
}

impl ProblemResponse {
    /// The response as the document's `components.responses` holds it.
    pub fn to_response(&self) -> Response {
        let mut content =
            ContentBuilder::new().schema(Some(Ref::from_schema_name(Problem::name())));
        let problems: Vec<Problem> = self.examples.iter().map(ApiError::problem).collect();
        let mut names = Vec::new();
        for problem in &problems {
            // Named by type, and by field where one type has several examples.
            let slug = problem.problem_type.trim_start_matches("/problems/");
            let name = match &problem.field {
                Some(field) if names.contains(&slug) => format!("{slug}-{field}"),
                _ => slug.to_owned(),
            };
            names.push(slug);
            let value = serde_json::to_value(problem).expect("a problem serializes");
            content = content.examples_from_iter([(
                name,
                RefOr::T(ExampleBuilder::new().value(Some(value)).build()),
            )]);
        }
        let mut response = ResponseBuilder::new()
            .description(self.description)
            .content(PROBLEM_JSON, content.build())
            .build();
        for name in self.headers {
            response
                .headers
                .insert((*name).to_owned(), header_ref(name));
        }
        response
    }
}
