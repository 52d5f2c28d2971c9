//! API Gateway's route choice, case by case (the documented precedence example, ties between
//! methods and segments, `$default`), path parameters, and the keys refused or in conflict.

use super::*;

fn route(method: &str, path: &str, function: &str) -> Route {
    Route {
        method: RouteMethod::parse(method).expect("test method"),
        path: RoutePath::parse(path).expect("test path"),
        function: function.to_owned(),
        source: RouteSource {
            resource: format!("{function}Function"),
            event: format!("{method}{path}"),
        },
    }
}

fn table(routes: &[(&str, &str, &str)]) -> RouteTable {
    RouteTable::new(routes.iter().map(|(m, p, f)| route(m, p, f)).collect()).expect("no conflict")
}

fn found(table: &RouteTable, method: Method, path: &str) -> Option<String> {
    table.find(&method, path).map(Route::key)
}

#[test]
fn documented_precedence_example() {
    // The example of the API Gateway guide, "Routing API requests".
    let t = table(&[
        ("ANY", "/{proxy+}", "catchall"),
        ("GET", "/pets/{proxy+}", "pets"),
        ("GET", "/pets/dog/{id}", "dogs"),
        ("GET", "/pets/dog/1", "dog1"),
    ]);
    assert_eq!(
        found(&t, Method::GET, "/pets/dog/1").as_deref(),
        Some("GET /pets/dog/1")
    );
    assert_eq!(
        found(&t, Method::GET, "/pets/dog/2").as_deref(),
        Some("GET /pets/dog/{id}")
    );
    assert_eq!(
        found(&t, Method::GET, "/pets/cat/1").as_deref(),
        Some("GET /pets/{proxy+}")
    );
    assert_eq!(
        found(&t, Method::POST, "/pets/dog/1").as_deref(),
        Some("ANY /{proxy+}")
    );
}

#[test]
fn literal_beats_param_beats_greedy_segment_by_segment() {
    let t = table(&[
        ("GET", "/a/{x}/c", "one"),
        ("GET", "/a/b/{y}", "two"),
        ("GET", "/a/{proxy+}", "three"),
    ]);
    assert_eq!(
        found(&t, Method::GET, "/a/b/c").as_deref(),
        Some("GET /a/b/{y}")
    );
    assert_eq!(
        found(&t, Method::GET, "/a/z/c").as_deref(),
        Some("GET /a/{x}/c")
    );
    assert_eq!(
        found(&t, Method::GET, "/a/z/d").as_deref(),
        Some("GET /a/{proxy+}")
    );
    assert_eq!(
        found(&t, Method::GET, "/a/z/c/d").as_deref(),
        Some("GET /a/{proxy+}")
    );
}

#[test]
fn named_method_beats_any_on_the_same_path() {
    let t = table(&[("ANY", "/patients", "any"), ("GET", "/patients", "get")]);
    assert_eq!(
        t.find(&Method::GET, "/patients")
            .map(|r| r.function.as_str()),
        Some("get")
    );
    assert_eq!(
        t.find(&Method::DELETE, "/patients")
            .map(|r| r.function.as_str()),
        Some("any")
    );
}

#[test]
fn path_matched_but_method_not_finds_nothing() {
    let t = table(&[("GET", "/patients/{id}", "patients")]);
    assert_eq!(found(&t, Method::DELETE, "/patients/1"), None);
    // No automatic HEAD for GET routes on HTTP API.
    assert_eq!(found(&t, Method::HEAD, "/patients/1"), None);
}

#[test]
fn trailing_slash_and_missing_segments_do_not_match() {
    let t = table(&[
        ("GET", "/patients", "patients"),
        ("GET", "/patients/{id}", "patients"),
        ("GET", "/files/{proxy+}", "files"),
        ("GET", "/", "root"),
    ]);
    assert_eq!(found(&t, Method::GET, "/patients/"), None);
    assert_eq!(found(&t, Method::GET, "/patients//"), None);
    assert_eq!(found(&t, Method::GET, "/files"), None);
    assert_eq!(found(&t, Method::GET, "/files/"), None);
    assert_eq!(
        found(&t, Method::GET, "/files/a/b/").as_deref(),
        Some("GET /files/{proxy+}")
    );
    assert_eq!(found(&t, Method::GET, "/").as_deref(), Some("GET /"));
    assert_eq!(found(&t, Method::GET, "patients"), None);
}

#[test]
fn default_route_catches_only_what_nothing_else_does() {
    let t = table(&[
        ("GET", "/health", "health"),
        ("ANY", "$default", "fallback"),
    ]);
    assert_eq!(
        found(&t, Method::GET, "/health").as_deref(),
        Some("GET /health")
    );
    assert_eq!(
        found(&t, Method::POST, "/health").as_deref(),
        Some("$default")
    );
    assert_eq!(found(&t, Method::GET, "/").as_deref(), Some("$default"));
}

#[test]
fn paths_are_case_sensitive() {
    let t = table(&[("GET", "/patients", "patients")]);
    assert_eq!(found(&t, Method::GET, "/Patients"), None);
}

fn parameters(route_path: &str, path: &str) -> Vec<(String, String)> {
    RoutePath::parse(route_path)
        .expect("test path")
        .parameters(path)
}

fn pairs(expected: &[(&str, &str)]) -> Vec<(String, String)> {
    expected
        .iter()
        .map(|(name, value)| (name.to_string(), value.to_string()))
        .collect()
}

#[test]
fn path_parameters_are_percent_decoded_once() {
    assert_eq!(
        parameters(
            "/patients/{id}/notes/{noteId}",
            "/patients/J%C3%BCrgen/notes/a+b%2Fc"
        ),
        pairs(&[("id", "Jürgen"), ("noteId", "a+b/c")])
    );
    assert_eq!(
        parameters("/x/{id}", "/x/100%25%2541"),
        pairs(&[("id", "100%%41")])
    );
    // Not UTF-8 once decoded: kept as the client sent it rather than mangled.
    assert_eq!(parameters("/x/{id}", "/x/%FF"), pairs(&[("id", "%FF")]));
}

#[test]
fn greedy_parameter_takes_the_rest_of_the_path() {
    assert_eq!(
        parameters("/files/{proxy+}", "/files/a/b%20c/"),
        pairs(&[("proxy", "a/b c/")])
    );
    assert_eq!(
        parameters("/{proxy+}", "/pets/dog/1"),
        pairs(&[("proxy", "pets/dog/1")])
    );
}

#[test]
fn routes_without_variables_have_no_parameters() {
    assert!(parameters("/patients", "/patients").is_empty());
    assert!(parameters("$default", "/anything/at/all").is_empty());
    assert!(parameters("/", "/").is_empty());
}

#[test]
fn methods_parse_case_insensitively() {
    assert_eq!(
        RouteMethod::parse("get").ok(),
        Some(RouteMethod::Only(Method::GET))
    );
    assert_eq!(RouteMethod::parse("Any").ok(), Some(RouteMethod::Any));
    assert!(matches!(
        RouteMethod::parse("FETCH"),
        Err(RouteKeyError::UnknownMethod(m)) if m == "FETCH"
    ));
}

#[test]
fn invalid_paths_are_rejected() {
    for bad in [
        "patients",
        "/patients/",
        "/a//b",
        "/{proxy+}/x",
        "/a/{}",
        "/a/pre{id}",
        "/a/{id",
    ] {
        assert!(RoutePath::parse(bad).is_err(), "{bad} should be rejected");
    }
    assert!(RoutePath::parse("/").is_ok());
}

#[test]
fn same_shape_routes_conflict_whatever_the_variable_names() {
    let err = RouteTable::new(vec![
        route("GET", "/patients/{id}", "patients"),
        route("GET", "/patients/{patientId}", "other"),
    ])
    .expect_err("conflict");
    let message = err.to_string();
    assert!(message.contains("GET /patients/{patientId}"), "{message}");
    assert!(message.contains("otherFunction"), "{message}");
    assert!(message.contains("patientsFunction"), "{message}");

    assert!(
        RouteTable::new(vec![
            route("ANY", "/x/{proxy+}", "a"),
            route("any", "/x/{rest+}", "b"),
        ])
        .is_err()
    );
    assert!(
        RouteTable::new(vec![
            route("ANY", "$default", "a"),
            route("GET", "$default", "b"),
        ])
        .is_err()
    );
}

#[test]
fn different_methods_or_shapes_do_not_conflict() {
    assert!(
        RouteTable::new(vec![
            route("GET", "/patients/{id}", "a"),
            route("DELETE", "/patients/{id}", "b"),
            route("ANY", "/patients/{id}", "c"),
            route("GET", "/patients/{id}/notes", "d"),
            route("GET", "/patients/{proxy+}", "e"),
            route("GET", "/patients/me", "f"),
        ])
        .is_ok()
    );
}
