//! The OpenAPI document (`shared::contract`) against what serves the API: API Gateway's routes
//! in `template.yaml` are exactly the document's operations, every one of them reaches its
//! handler in the function the template sends it to, and `GET /openapi.json` serves the
//! document with an `ETag`.

use axum::Router;
use http::Method;
use pulso_tests::TestApp;
use serde_json::Value;
use shared::AppState;
use std::collections::BTreeSet;
use std::path::Path;

/// `METHOD /path` of every operation of the document.
fn documented_operations() -> BTreeSet<String> {
    let document = serde_json::to_value(shared::contract::openapi()).expect("serializes");
    let mut operations = BTreeSet::new();
    for (path, item) in document["paths"].as_object().expect("paths") {
        for method in item.as_object().expect("path item").keys() {
            if ["get", "put", "post", "delete", "patch"].contains(&method.as_str()) {
                operations.insert(format!("{} {path}", method.to_uppercase()));
            }
        }
    }
    operations
}

fn template() -> pulso_gateway::template::Template {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../template.yaml");
    pulso_gateway::template::load(&path).expect("template.yaml loads")
}

/// The router of the function a template route invokes, as its `main` builds it.
fn function_router(function: &str, state: AppState) -> Router {
    match function {
        "patients" => shared::patients::router(state),
        "appointments" => shared::appointments::router(state),
        "catalogs" => shared::catalogs::router(state),
        "schedule" => shared::schedule::router(state),
        "xrays" => shared::xrays::router(state),
        "reports" => shared::reports::router(state),
        "dashboard" => shared::dashboard::router(state),
        "clinics" => shared::clinics::router(state),
        "notifications" => shared::realtime::router(state),
        "jobs" => shared::queue::router(state),
        "admin" => shared::admin::router(state),
        "health" => shared::contract::router(state),
        other => panic!("template.yaml routes HTTP to {other}, which this test does not know"),
    }
}

/// A value of a path parameter the document declares: the first of an enum, a UUID for an
/// id, 1 for an integer.
fn sample_parameter(document: &Value, parameter: &Value) -> String {
    let mut schema = &parameter["schema"];
    if let Some(reference) = schema["$ref"].as_str() {
        schema = document
            .pointer(reference.trim_start_matches('#'))
            .expect("reference resolves");
    }
    if let Some(first) = schema["enum"].get(0).and_then(Value::as_str) {
        return first.to_owned();
    }
    match (schema["type"].as_str(), schema["format"].as_str()) {
        (_, Some("uuid")) => uuid::Uuid::new_v4().to_string(),
        (Some("integer"), _) => "1".to_owned(),
        _ => "D0120".to_owned(),
    }
}

#[test]
fn api_gateway_routes_are_exactly_the_documented_operations() {
    let routed: BTreeSet<String> = template()
        .routes
        .routes()
        .iter()
        .map(|route| route.key())
        .collect();
    let documented = documented_operations();
    let undocumented: Vec<_> = routed.difference(&documented).collect();
    let unrouted: Vec<_> = documented.difference(&routed).collect();
    assert!(
        undocumented.is_empty() && unrouted.is_empty(),
        "routed in template.yaml but not in the OpenAPI document: {undocumented:?}; \
         documented but not routed: {unrouted:?}"
    );
}

/// Each operation reaches a handler of the function API Gateway invokes (no fallback 404, no
/// 405): without a token, an authenticated one answers 401 as the document says, a public
/// one 200, or 400 when it takes a required query (a signed URL's) that is not there.
#[tokio::test]
async fn every_documented_operation_reaches_its_handler() {
    let app = TestApp::spawn().await;
    let document = serde_json::to_value(shared::contract::openapi()).expect("serializes");
    for route in template().routes.routes() {
        let key = route.key();
        let (method, template_path) = key.split_once(' ').expect("METHOD /path");
        let operation = &document["paths"][template_path][method.to_lowercase()];
        let mut path = template_path.to_owned();
        for parameter in operation["parameters"].as_array().into_iter().flatten() {
            if parameter["in"] == "path" {
                let name = parameter["name"].as_str().expect("name");
                path = path.replace(
                    &format!("{{{name}}}"),
                    &sample_parameter(&document, parameter),
                );
            }
        }
        let router = function_router(&route.function, app.state.clone());
        let method = Method::from_bytes(method.as_bytes()).expect("method");
        let response = app.anonymous(&router).send(method, &path, None).await;
        if operation.get("x-roles").is_some() {
            let problem = response.problem(401);
            assert_eq!(problem["type"], "/problems/unauthorized", "{key} as {path}");
            assert!(operation["responses"].get("401").is_some(), "{key}");
        } else if operation["parameters"]
            .as_array()
            .into_iter()
            .flatten()
            .any(|parameter| parameter["in"] == "query" && parameter["required"] == true)
        {
            let problem = response.problem(400);
            assert_eq!(problem["type"], "/problems/bad-request", "{key} as {path}");
            assert!(operation["responses"].get("400").is_some(), "{key}");
        } else {
            assert_eq!(response.status, 200, "{key} as {path}: {}", response.body);
        }
    }
}

#[tokio::test]
async fn the_document_is_served_public_and_cacheable() {
    let app = TestApp::spawn().await;
    let router = shared::contract::router(app.state.clone());
    let response = app.anonymous(&router).get("/openapi.json").await;
    assert_eq!(response.status, 200);
    assert_eq!(response.bytes, shared::contract::openapi_json().as_bytes());
    assert_eq!(
        response.headers["content-type"], "application/json",
        "{:?}",
        response.headers
    );
    assert_eq!(response.headers["cache-control"], "public, max-age=300");
    let etag = response.headers["etag"].to_str().expect("ascii").to_owned();

    let client = app.anonymous(&router);
    let request = client
        .request(Method::GET, "/openapi.json")
        .header("if-none-match", &etag)
        .body(axum::body::Body::empty())
        .expect("request");
    let revalidated = client.raw(request).await;
    assert_eq!(revalidated.status, 304);
    assert!(revalidated.bytes.is_empty());
    assert_eq!(revalidated.headers["etag"], etag.as_str());
}

/// Response headers a page may read without `Access-Control-Expose-Headers` (Fetch's
/// CORS-safelisted response-header names).
const SAFELISTED_RESPONSE_HEADERS: [&str; 7] = [
    "cache-control",
    "content-language",
    "content-length",
    "content-type",
    "expires",
    "last-modified",
    "pragma",
];

/// The names of every header the document declares: in responses (`headers` objects) and in
/// requests (`in: header` parameters), lower-cased. A schema's property named `headers` (a
/// presigned upload's) is data, not a response's headers.
fn documented_headers(document: &Value) -> (BTreeSet<String>, BTreeSet<String>) {
    fn walk(
        value: &Value,
        in_properties: bool,
        responses: &mut BTreeSet<String>,
        requests: &mut BTreeSet<String>,
    ) {
        match value {
            Value::Object(map) => {
                for (key, value) in map {
                    if key == "headers"
                        && !in_properties
                        && let Some(headers) = value.as_object()
                    {
                        responses.extend(headers.keys().map(|name| name.to_ascii_lowercase()));
                    }
                    if key == "parameters" {
                        // An operation's list, or the components' map of shared ones.
                        let listed = value.as_array().into_iter().flatten();
                        let shared = value.as_object().into_iter().flat_map(|map| map.values());
                        let names = listed
                            .chain(shared)
                            .filter(|parameter| parameter["in"] == "header")
                            .filter_map(|parameter| parameter["name"].as_str());
                        requests.extend(names.map(str::to_ascii_lowercase));
                    }
                    walk(value, key == "properties", responses, requests);
                }
            }
            Value::Array(items) => items
                .iter()
                .for_each(|item| walk(item, false, responses, requests)),
            _ => {}
        }
    }
    let (mut responses, mut requests) = (BTreeSet::new(), BTreeSet::new());
    walk(document, false, &mut responses, &mut requests);
    (responses, requests)
}

/// A browser page on another origin can send every header the document declares and read
/// every one it answers with, and caches its preflights.
#[test]
fn cors_lets_a_page_send_and_read_every_documented_header() {
    let template = template();
    let cors = template
        .cors
        .as_ref()
        .expect("template.yaml configures CORS");
    let config = cors.config();
    let lower = |names: &[String]| -> BTreeSet<String> {
        names.iter().map(|name| name.to_ascii_lowercase()).collect()
    };
    let (exposed, allowed) = (lower(&config.expose_headers), lower(&config.allow_headers));
    let document = serde_json::to_value(shared::contract::openapi()).expect("serializes");
    let (responses, requests) = documented_headers(&document);
    assert!(responses.contains("etag") && requests.contains("idempotency-key"));

    let unreadable: Vec<_> = responses
        .iter()
        .filter(|name| !SAFELISTED_RESPONSE_HEADERS.contains(&name.as_str()))
        .filter(|name| !exposed.contains(*name))
        .collect();
    assert!(
        unreadable.is_empty(),
        "template.yaml's ExposeHeaders lacks {unreadable:?}, which docs/openapi.json answers with"
    );
    let always = ["authorization".to_owned(), "content-type".to_owned()];
    let unsendable: Vec<_> = requests
        .iter()
        .chain(always.iter())
        .filter(|name| !allowed.contains(*name))
        .collect();
    assert!(
        unsendable.is_empty(),
        "template.yaml's AllowHeaders lacks {unsendable:?}, which docs/openapi.json takes"
    );
    assert!(
        config.max_age.is_some_and(|seconds| seconds >= 300),
        "preflights should be cached (MaxAge)"
    );
}
