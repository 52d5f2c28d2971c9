//! The API's contract: the OpenAPI 3.1 document, generated from the handlers themselves.
//!
//! Each context's `routes()` registers a route and its `#[utoipa::path]` description in one call
//! (`utoipa_axum::routes!`), so a route cannot exist without its description. [`openapi`] merges
//! them and adds what every operation shares, derived from the operation's own shape rather
//! than repeated on each:
//!
//! - an operation with `x-roles` (the roles that may call it, from the same constants the
//!   handler checks) needs a bearer JWT, takes the optional `Pulso-Clinic` header, and may
//!   answer 400 (several clinics, none named), 401, 403 and 429; its responses carry the
//!   `RateLimit-Policy` / `RateLimit` headers of the caller's usage;
//! - a path parameter may be malformed (400) or name nothing in the caller's clinic (404);
//! - a JSON body may be malformed (400), too large (413), not JSON (415) or invalid (422);
//! - every operation may answer 500 and 503, and every response carries `X-Request-Id`.
//!
//! Responses that create something link to the operations that take its id ([`LINKS`]).
//!
//! Problem responses show an example of every problem type (`crate::http::responses`). The document is
//! committed at `docs/openapi.json` (a test fails when it drifts) and served by the `health`
//! function at `GET /openapi.json`.

mod asyncapi;

pub use asyncapi::{ASYNCAPI_PATH, asyncapi, asyncapi_json};

use crate::http::conditional::{IfNoneMatch, Sha256Digest};
use crate::http::responses::{self as problems, header_ref};
use crate::http::{Problem, ProblemInterval};
use crate::ids::{ClinicId, OrganizationId};
use crate::state::AppState;
use ::http::{HeaderMap, StatusCode, header};
use axum::Router;
use axum::response::{IntoResponse, Response};
use std::sync::OnceLock;
use utoipa::openapi::Required;
use utoipa::openapi::link::LinkBuilder;
use utoipa::openapi::path::{Operation, Parameter, ParameterBuilder, ParameterIn};
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityRequirement, SecurityScheme};
use utoipa::openapi::tag::TagBuilder;
use utoipa::openapi::{ComponentsBuilder, InfoBuilder, OpenApi, OpenApiBuilder, Ref, RefOr};
use utoipa::{PartialSchema, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

/// The name of the bearer-JWT security scheme.
const BEARER: &str = "bearer";

/// The extension naming the roles that may call an operation.
pub const X_ROLES: &str = "x-roles";

/// The operations of each context, in the order the document lists their tags.
const TAGS: &[(&str, &str)] = &[
    (
        "clinics",
        "The signed-in person, the clinics they belong to and each clinic's staff.",
    ),
    (
        "patients",
        "A clinic's patients: register, search, update, archive.",
    ),
    (
        "appointments",
        "The agenda: book, reschedule and move appointments through their day.",
    ),
    (
        "catalogs",
        "A clinic's procedures, insurers and other reference lists.",
    ),
    ("xrays", "X-ray uploads, their analysis and thumbnails."),
    (
        "reports",
        "Insurance reports, generated in the background as PDFs.",
    ),
    ("dashboard", "Today's figures for the clinic."),
    (
        "notifications",
        "The caller's inbox of what was pushed over the WebSocket.",
    ),
    ("jobs", "The status of a background job."),
    (
        "admin",
        "Clinic administration: caches, queues, jobs and announcements.",
    ),
    ("health", "Liveness, dependency probes and this document."),
];

/// What a client may do next with what an operation created: OpenAPI links from a response to
/// the operations that take its id, `(from, status, to, parameter, expression)`. Clients and
/// schemathesis's stateful phase follow them (create → read → change).
const LINKS: &[(&str, &str, &str, &str, &str)] = &[
    (
        "createPatient",
        "201",
        "getPatient",
        "id",
        "$response.body#/id",
    ),
    (
        "createPatient",
        "201",
        "updatePatient",
        "id",
        "$response.body#/id",
    ),
    (
        "createPatient",
        "201",
        "archivePatient",
        "id",
        "$response.body#/id",
    ),
    (
        "createPatient",
        "201",
        "listXrays",
        "id",
        "$response.body#/id",
    ),
    (
        "createPatient",
        "201",
        "uploadXray",
        "id",
        "$response.body#/id",
    ),
    (
        "createAppointment",
        "201",
        "getAppointment",
        "id",
        "$response.body#/id",
    ),
    (
        "createAppointment",
        "201",
        "updateAppointment",
        "id",
        "$response.body#/id",
    ),
    (
        "createAppointment",
        "201",
        "changeAppointmentStatus",
        "id",
        "$response.body#/id",
    ),
    (
        "uploadXray",
        "202",
        "getXray",
        "id",
        "$response.body#/xray_id",
    ),
    (
        "uploadXray",
        "202",
        "getXrayImage",
        "id",
        "$response.body#/xray_id",
    ),
    (
        "uploadXray",
        "202",
        "getXrayThumbnail",
        "id",
        "$response.body#/xray_id",
    ),
    (
        "uploadXray",
        "202",
        "getJob",
        "id",
        "$response.body#/job_id",
    ),
    (
        "requestInsuranceReport",
        "202",
        "getReport",
        "id",
        "$response.body#/report_id",
    ),
    (
        "requestInsuranceReport",
        "202",
        "downloadReport",
        "id",
        "$response.body#/report_id",
    ),
    (
        "requestInsuranceReport",
        "202",
        "getJob",
        "id",
        "$response.body#/job_id",
    ),
    ("retryJob", "202", "getJob", "id", "$response.body#/id"),
];

/// The whole API's document, built once per process.
pub fn openapi() -> &'static OpenApi {
    static DOCUMENT: OnceLock<OpenApi> = OnceLock::new();
    DOCUMENT.get_or_init(build)
}

/// Where the document is committed, from the workspace's root.
pub const OPENAPI_PATH: &str = "docs/openapi.json";

/// The document as committed at [`OPENAPI_PATH`]: pretty JSON ending in a newline.
pub fn openapi_json() -> String {
    let mut json = openapi().to_pretty_json().expect("the document serializes");
    json.push('\n');
    json
}

/// Every route of every HTTP function, with its description.
pub fn all_routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .merge(crate::clinics::routes())
        .merge(crate::patients::routes())
        .merge(crate::appointments::routes())
        .merge(crate::schedule::routes())
        .merge(crate::catalogs::routes())
        .merge(crate::xrays::routes())
        .merge(crate::reports::routes())
        .merge(crate::dashboard::routes())
        .merge(crate::realtime::routes::<AppState>())
        .merge(crate::queue::routes::<AppState>())
        .merge(crate::admin::routes())
        .merge(crate::health::routes())
        .merge(routes())
}

fn build() -> OpenApi {
    let mut document = OpenApiBuilder::new()
        .info(
            InfoBuilder::new()
                .title("Pulso API")
                .version(env!("CARGO_PKG_VERSION"))
                .description(Some(
                    "The HTTP API of Pulso, the backend clinics run their day on. Every \
                     operation but the public ones needs a bearer JWT; the clinic it acts in is \
                     the one the `Pulso-Clinic` header names, or the caller's only clinic \
                     (`GET /me` lists them). Errors are RFC 9457 `application/problem+json`. Lists are \
                     paginated by an opaque cursor: pass a page's `next_cursor` as `cursor` to \
                     get the next one; `null` means the last page.",
                ))
                .build(),
        )
        .tags(Some(TAGS.iter().map(|(name, description)| {
            TagBuilder::new()
                .name(*name)
                .description(Some(*description))
                .build()
        })))
        .components(Some(components()))
        .build();
    document.merge(all_routes().into_openapi());
    for item in document.paths.paths.values_mut() {
        for operation in operations(item) {
            decorate(operation);
            link(operation);
        }
    }
    document
}

/// Adds the [`LINKS`] from `operation`'s responses.
fn link(operation: &mut Operation) {
    let Some(id) = operation.operation_id.clone() else {
        return;
    };
    for (from, status, to, parameter, expression) in LINKS {
        if *from != id {
            continue;
        }
        if let Some(RefOr::T(response)) = operation.responses.responses.get_mut(*status) {
            let link = LinkBuilder::new()
                .operation_id(*to)
                .parameter(*parameter, *expression)
                .build();
            response.links.insert((*to).to_owned(), RefOr::T(link));
        }
    }
}

fn components() -> utoipa::openapi::Components {
    let mut components = ComponentsBuilder::new()
        .schema(Problem::name(), Problem::schema())
        .schema(ProblemInterval::name(), ProblemInterval::schema())
        .security_scheme(
            BEARER,
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .bearer_format("JWT")
                    .description(Some(
                        "A JWT from the identity provider: it says who is calling; what they \
                         may do comes from their memberships.",
                    ))
                    .build(),
            ),
        );
    for (name, header) in problems::header_components() {
        components = components.header(name, header);
    }
    let mut components = components.build();
    components
        .parameters
        .insert(CLINIC_PARAMETER.to_owned(), RefOr::T(clinic_parameter()));
    components.parameters.insert(
        ORGANIZATION_PARAMETER.to_owned(),
        RefOr::T(organization_parameter()),
    );
    for problem in problems::all() {
        components
            .responses
            .insert(problem.name.to_owned(), RefOr::T(problem.to_response()));
    }
    components.responses.insert(
        problems::MediaRedirect::NAME.to_owned(),
        RefOr::T(problems::MediaRedirect::component()),
    );
    components
}

fn operations(item: &mut utoipa::openapi::PathItem) -> impl Iterator<Item = &mut Operation> {
    [
        item.get.as_mut(),
        item.put.as_mut(),
        item.post.as_mut(),
        item.delete.as_mut(),
        item.patch.as_mut(),
    ]
    .into_iter()
    .flatten()
}

/// Adds what an operation shares with every other of its shape (see the module header).
fn decorate(operation: &mut Operation) {
    let authenticated = operation
        .extensions
        .as_ref()
        .is_some_and(|extensions| extensions.contains_key(X_ROLES));
    if authenticated {
        operation.security = Some(vec![SecurityRequirement::new(BEARER, Vec::<String>::new())]);
        // An organization's routes read an organization, not a clinic.
        let organization = operation
            .extensions
            .as_ref()
            .and_then(|extensions| extensions.get(X_ROLES))
            .is_some_and(|roles| roles == &serde_json::json!([crate::auth::ORG_ADMIN]));
        let parameter = if organization {
            ORGANIZATION_PARAMETER
        } else {
            CLINIC_PARAMETER
        };
        operation
            .parameters
            .get_or_insert_with(Vec::new)
            .push(RefOr::Ref(Ref::new(format!(
                "#/components/parameters/{parameter}"
            ))));
    }
    let parameters = operation.parameters.iter().flatten();
    let in_path = parameters
        .clone()
        .any(|parameter| matches!(parameter, RefOr::T(p) if p.parameter_in == ParameterIn::Path));
    let in_query = parameters
        .clone()
        .any(|parameter| matches!(parameter, RefOr::T(p) if p.parameter_in == ParameterIn::Query));
    let json_body = operation.request_body.as_ref().is_some_and(
        |body| matches!(body, RefOr::T(body) if body.content.contains_key("application/json")),
    );
    let responses = &mut operation.responses.responses;
    for response in responses.values_mut() {
        if let RefOr::T(response) = response {
            response
                .headers
                .insert("X-Request-Id".into(), header_ref("X-Request-Id"));
            if authenticated {
                for name in ["RateLimit-Policy", "RateLimit"] {
                    response.headers.insert(name.into(), header_ref(name));
                }
            }
        }
    }
    let mut shared = vec!["Internal", "Unavailable"];
    if authenticated {
        shared.extend(["BadRequest", "Unauthorized", "Forbidden", "TooManyRequests"]);
    }
    if in_path {
        shared.extend(["BadRequest", "NotFound"]);
    }
    if in_query {
        shared.push("BadRequest");
    }
    if json_body {
        shared.extend([
            "BadRequest",
            "PayloadTooLarge",
            "UnsupportedMediaType",
            "Validation",
        ]);
    }
    for problem in problems::all() {
        if shared.contains(&problem.name) {
            responses
                .entry(problem.status.to_string())
                .or_insert_with(|| {
                    RefOr::Ref(Ref::new(format!("#/components/responses/{}", problem.name)))
                });
        }
    }
}

/// The component name of the `Pulso-Clinic` header parameter.
const CLINIC_PARAMETER: &str = "PulsoClinic";

fn clinic_parameter() -> Parameter {
    ParameterBuilder::new()
        .name("Pulso-Clinic")
        .parameter_in(ParameterIn::Header)
        .required(Required::False)
        .schema(Some(ClinicId::schema()))
        .description(Some(
            "The clinic the request acts in: one the caller is an active member of (403 \
             otherwise). May be left out by a caller with a single clinic.",
        ))
        .build()
}

/// The component name of the `Pulso-Organization` header parameter.
const ORGANIZATION_PARAMETER: &str = "PulsoOrganization";

fn organization_parameter() -> Parameter {
    ParameterBuilder::new()
        .name("Pulso-Organization")
        .parameter_in(ParameterIn::Header)
        .required(Required::False)
        .schema(Some(OrganizationId::schema()))
        .description(Some(
            "The organization the request reads: one the caller is an active admin of (403 \
             otherwise). May be left out by a caller who administers a single one.",
        ))
        .build()
}

/// `GET /openapi.json`: this document, public and cacheable.
#[utoipa::path(
    get,
    path = "/openapi.json",
    tag = "health",
    operation_id = "openapi",
    summary = "This API's OpenAPI document",
    responses(
        (status = 200, description = "The OpenAPI 3.1 document.", content_type = "application/json",
         headers(("ETag" = String, description = "The document's entity tag."))),
        (status = 304, description = "The document has not changed since the `If-None-Match` tag."),
    )
)]
async fn document(request_headers: HeaderMap) -> Response {
    static BODY: OnceLock<(String, Sha256Digest)> = OnceLock::new();
    let (body, digest) = BODY.get_or_init(|| {
        let body = openapi_json();
        let digest = Sha256Digest::of(body.as_bytes());
        (body, digest)
    });
    let etag = format!("\"{}\"", digest.hex());
    let headers = [
        (header::ETAG, etag),
        (header::CACHE_CONTROL, DOCUMENT_CACHE_CONTROL.to_owned()),
    ];
    if IfNoneMatch::from_headers(&request_headers).matches(digest) {
        return (StatusCode::NOT_MODIFIED, headers).into_response();
    }
    let content_type = (header::CONTENT_TYPE, "application/json".to_owned());
    (StatusCode::OK, headers, [content_type], body.clone()).into_response()
}

/// The document changes only with a deploy: browsers and the CDN may keep it for five minutes.
const DOCUMENT_CACHE_CONTROL: &str = "public, max-age=300";

/// The route serving the document.
fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(document))
}

/// The `health` function's router: the health routes and this document, public like
/// `/health` and served by the function every deployment has.
pub fn router(state: AppState) -> Router {
    let edge = state.edge();
    crate::http::finish(crate::health::routes().merge(routes()), state, edge)
}

/// Fails unless `generated` is what is committed at `path` (from the workspace's root): a
/// change to the code's description shows up in review as a change of the document.
#[cfg(test)]
fn assert_committed(path: &str, generated: &str) {
    let file = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("..")
        .join(path);
    let committed = std::fs::read_to_string(&file).unwrap_or_default();
    assert!(
        committed == generated,
        "{path} is not what the code generates: run `cargo run -p pulso-devtool -- contract` \
         and commit it"
    );
}

/// Fails unless every `$ref` of `document` resolves in it; the references it checked.
#[cfg(test)]
fn assert_references_resolve(document: &serde_json::Value) -> Vec<String> {
    fn collect(value: &serde_json::Value, into: &mut Vec<String>) {
        match value {
            serde_json::Value::Object(map) => {
                for (key, value) in map {
                    match (key.as_str(), value) {
                        ("$ref", serde_json::Value::String(reference)) => {
                            into.push(reference.clone())
                        }
                        _ => collect(value, into),
                    }
                }
            }
            serde_json::Value::Array(items) => items.iter().for_each(|item| collect(item, into)),
            _ => {}
        }
    }
    let mut references = Vec::new();
    collect(document, &mut references);
    for reference in &references {
        let pointer = reference.trim_start_matches('#');
        assert!(
            document.pointer(pointer).is_some(),
            "{reference} does not resolve"
        );
    }
    references
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::http::PROBLEM_JSON;

    /// A change to a handler's description shows up in review as a change of the committed
    /// document.
    #[test]
    fn the_committed_document_is_the_generated_one() {
        assert_committed(OPENAPI_PATH, &openapi_json());
    }

    /// Parameters' schemas are not collected like bodies' are: a `$ref` to a schema no body
    /// uses would dangle.
    #[test]
    fn every_reference_resolves() {
        let document = serde_json::to_value(openapi()).expect("serializes");
        let references = assert_references_resolve(&document);
        assert!(!references.is_empty());
    }

    /// A link to an operation that does not exist, or from a response that does not, would be
    /// silently dropped by clients.
    #[test]
    fn every_link_joins_two_operations_of_the_document() {
        let document = serde_json::to_value(openapi()).expect("serializes");
        let mut ids = std::collections::BTreeSet::new();
        let mut links = 0;
        for item in document["paths"].as_object().into_iter().flatten() {
            for operation in item.1.as_object().into_iter().flatten().map(|(_, o)| o) {
                ids.insert(
                    operation["operationId"]
                        .as_str()
                        .unwrap_or_default()
                        .to_owned(),
                );
                for response in operation["responses"].as_object().into_iter().flatten() {
                    links += response.1["links"].as_object().map_or(0, |l| l.len());
                }
            }
        }
        assert_eq!(links, LINKS.len(), "a link's response is missing");
        for (from, _, to, _, _) in LINKS {
            assert!(ids.contains(*from) && ids.contains(*to), "{from} → {to}");
        }
    }

    /// The examples of a problem response, as the document holds them.
    fn examples(problem: &problems::ProblemResponse) -> serde_json::Map<String, serde_json::Value> {
        let response = serde_json::to_value(problem.to_response()).expect("serializes");
        response["content"][PROBLEM_JSON]["examples"]
            .as_object()
            .cloned()
            .unwrap_or_default()
    }

    #[test]
    fn every_problem_response_shows_its_own_status() {
        for problem in problems::all() {
            let examples = examples(&problem);
            assert!(!examples.is_empty(), "{} has no example", problem.name);
            for example in examples.values() {
                let status = example["value"]["status"].as_u64();
                assert_eq!(status, Some(u64::from(problem.status)), "{}", problem.name);
            }
        }
    }

    #[test]
    fn every_conflict_kind_has_an_example() {
        let conflicts = problems::all()
            .into_iter()
            .find(|problem| problem.status == 409)
            .expect("a 409 response");
        let examples = examples(&conflicts);
        for kind in crate::http::ConflictKind::ALL {
            let example = &examples[kind.slug()]["value"];
            assert_eq!(example["type"], format!("/problems/{}", kind.slug()));
        }
    }

    /// The public operations are the probes, this document and the signed media URLs (whose
    /// signature stands in for the token).
    #[test]
    fn authenticated_operations_need_a_bearer_token_and_public_ones_do_not() {
        let document = openapi();
        let mut public = Vec::new();
        for (path, item) in &document.paths.paths {
            let mut item = item.clone();
            for operation in operations(&mut item) {
                let roles = operation
                    .extensions
                    .as_ref()
                    .and_then(|extensions| extensions.get(X_ROLES));
                match roles {
                    Some(roles) => {
                        assert!(operation.security.is_some(), "{path}");
                        assert!(roles.as_array().is_some_and(|r| !r.is_empty()), "{path}");
                    }
                    None => public.push(path.clone()),
                }
            }
        }
        public.sort();
        assert_eq!(
            public,
            [
                "/health",
                "/media/reports/{id}/pdf",
                "/media/xrays/{id}/image",
                "/media/xrays/{id}/thumbnail",
                "/openapi.json"
            ]
        );
    }
}
