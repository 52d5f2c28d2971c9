//! Which of a function's routes the smoke test calls, and the path it sends for it (each path
//! parameter filled in).

/// One route of a function, as the smoke test calls it.
#[derive(Debug, PartialEq, Eq)]
pub struct RouteChoice<'a> {
    pub method: &'a str,
    pub path: &'a str,
}

/// `GET /patients/{id}` → (`GET`, `/patients/{id}`); `$default` → (`GET`, `/`); `ANY` is sent
/// as a GET.
fn parse_route_key(key: &str) -> Option<RouteChoice<'_>> {
    if key == "$default" {
        return Some(RouteChoice {
            method: "GET",
            path: "/",
        });
    }
    let (method, path) = key.split_once(' ')?;
    let method = if method == "ANY" { "GET" } else { method };
    path.starts_with('/')
        .then_some(RouteChoice { method, path })
}

/// A GET without path parameters (nothing to invent), else a GET with some, else the first.
pub fn choose_route(routes: &[String]) -> Option<RouteChoice<'_>> {
    let parsed: Vec<RouteChoice<'_>> = routes.iter().filter_map(|r| parse_route_key(r)).collect();
    let get = |with_parameters: bool| {
        parsed
            .iter()
            .position(|r| r.method == "GET" && r.path.contains('{') == with_parameters)
    };
    let index =
        get(false)
            .or_else(|| get(true))
            .or(if parsed.is_empty() { None } else { Some(0) })?;
    parsed.into_iter().nth(index)
}

/// Every `{name}` (or `{name+}`) segment replaced by `fill()`.
pub fn fill_path(path: &str, mut fill: impl FnMut() -> String) -> String {
    path.split('/')
        .map(|segment| {
            if segment.starts_with('{') && segment.ends_with('}') {
                fill()
            } else {
                segment.to_owned()
            }
        })
        .collect::<Vec<_>>()
        .join("/")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn choice(routes: &[&str]) -> Option<(String, String)> {
        let routes: Vec<String> = routes.iter().map(|s| s.to_string()).collect();
        choose_route(&routes).map(|r| (r.method.to_owned(), r.path.to_owned()))
    }

    fn pair(method: &str, path: &str) -> Option<(String, String)> {
        Some((method.into(), path.into()))
    }

    #[test]
    fn prefers_a_get_without_parameters() {
        let routes = ["POST /patients", "GET /patients/{id}", "GET /patients"];
        assert_eq!(choice(&routes), pair("GET", "/patients"));
    }

    #[test]
    fn then_a_get_with_parameters_then_the_first_route() {
        let routes = [
            "POST /reports/insurance",
            "GET /reports/{id}",
            "GET /reports/{id}/pdf",
        ];
        assert_eq!(choice(&routes), pair("GET", "/reports/{id}"));
        let routes = ["POST /notifications/read-all", "DELETE /x/{id}"];
        assert_eq!(choice(&routes), pair("POST", "/notifications/read-all"));
        assert_eq!(choice(&["ANY /things"]), pair("GET", "/things"));
        assert_eq!(choice(&["$default"]), pair("GET", "/"));
        assert_eq!(choice(&[]), None);
        assert_eq!(choice(&["nonsense"]), None);
    }

    #[test]
    fn fills_every_parameter() {
        let mut n = 0;
        let path = fill_path("/patients/{id}/xrays/{proxy+}", || {
            n += 1;
            format!("v{n}")
        });
        assert_eq!(path, "/patients/v1/xrays/v2");
        assert_eq!(fill_path("/health", || unreachable!()), "/health");
    }
}
