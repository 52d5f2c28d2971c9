//! The HTTP API route table: route keys as SAM declares them, and the choice API Gateway makes
//! when several routes match a request.

use std::fmt;

use http::Method;

use crate::headers::percent_decode;

/// The method half of a route key. `ANY` matches every method not claimed by a more specific
/// route on the same path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RouteMethod {
    Any,
    Only(Method),
}

impl RouteMethod {
    /// Parses a SAM `Method`, case-insensitively, limited to what HTTP API accepts.
    pub fn parse(text: &str) -> Result<Self, RouteKeyError> {
        let upper = text.trim().to_ascii_uppercase();
        let method = match upper.as_str() {
            "ANY" | "X-AMAZON-APIGATEWAY-ANY-METHOD" => return Ok(Self::Any),
            "GET" => Method::GET,
            "POST" => Method::POST,
            "PUT" => Method::PUT,
            "PATCH" => Method::PATCH,
            "DELETE" => Method::DELETE,
            "HEAD" => Method::HEAD,
            "OPTIONS" => Method::OPTIONS,
            _ => return Err(RouteKeyError::UnknownMethod(text.to_owned())),
        };
        Ok(Self::Only(method))
    }

    fn matches(&self, method: &Method) -> bool {
        match self {
            Self::Any => true,
            Self::Only(only) => only == method,
        }
    }

    /// A named method beats `ANY` on the same path.
    fn rank(&self) -> u8 {
        match self {
            Self::Only(_) => 0,
            Self::Any => 1,
        }
    }
}

impl fmt::Display for RouteMethod {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Any => f.write_str("ANY"),
            Self::Only(method) => f.write_str(method.as_str()),
        }
    }
}

/// One `/`-separated piece of a route path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Segment {
    Literal(String),
    Param(String),
    Greedy(String),
}

impl Segment {
    /// Literal beats `{param}` beats `{proxy+}`; the order API Gateway documents.
    fn rank(&self) -> u8 {
        match self {
            Self::Literal(_) => 0,
            Self::Param(_) => 1,
            Self::Greedy(_) => 2,
        }
    }

    /// Two segments accept the same requests when they are the same literal, or both variables
    /// of the same kind whatever their names.
    fn same_shape(&self, other: &Self) -> bool {
        match (self, other) {
            (Self::Literal(a), Self::Literal(b)) => a == b,
            (Self::Param(_), Self::Param(_)) | (Self::Greedy(_), Self::Greedy(_)) => true,
            _ => false,
        }
    }
}

/// The path half of a route key, or the `$default` catch-all route.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RoutePath {
    Default,
    Pattern { raw: String, segments: Vec<Segment> },
}

impl RoutePath {
    /// Parses a SAM `Path` such as `/patients/{id}` or `/files/{proxy+}`.
    pub fn parse(raw: &str) -> Result<Self, RouteKeyError> {
        if raw == "$default" {
            return Ok(Self::Default);
        }
        let invalid = |reason: &'static str| RouteKeyError::InvalidPath {
            path: raw.to_owned(),
            reason,
        };
        let rest = raw
            .strip_prefix('/')
            .ok_or_else(|| invalid("it must start with `/`"))?;
        let mut segments = Vec::new();
        if !rest.is_empty() {
            let parts: Vec<&str> = rest.split('/').collect();
            for (index, part) in parts.iter().enumerate() {
                let segment = parse_segment(part).map_err(invalid)?;
                if matches!(segment, Segment::Greedy(_)) && index + 1 != parts.len() {
                    return Err(invalid(
                        "a greedy `{name+}` variable must be the last segment",
                    ));
                }
                segments.push(segment);
            }
        }
        Ok(Self::Pattern {
            raw: raw.to_owned(),
            segments,
        })
    }

    /// How specifically this path matches the request segments, or `None` when it does not.
    /// Smaller sorts first, so the best route is the minimum.
    fn match_rank(&self, request: &[&str]) -> Option<PathRank> {
        let segments = match self {
            Self::Default => return Some(PathRank::CatchAll),
            Self::Pattern { segments, .. } => segments,
        };
        let mut ranks = Vec::with_capacity(segments.len());
        for (index, segment) in segments.iter().enumerate() {
            match segment {
                Segment::Literal(literal) => {
                    if request.get(index) != Some(&literal.as_str()) {
                        return None;
                    }
                }
                Segment::Param(_) => {
                    if request.get(index).is_none_or(|part| part.is_empty()) {
                        return None;
                    }
                }
                Segment::Greedy(_) => {
                    // A greedy variable needs at least one non-empty segment: `/files/{proxy+}`
                    // does not match `/files` nor `/files/`.
                    let rest = request.get(index..).unwrap_or_default();
                    if rest.iter().all(|part| part.is_empty()) {
                        return None;
                    }
                    ranks.push(segment.rank());
                    return Some(PathRank::Pattern(ranks));
                }
            }
            ranks.push(segment.rank());
        }
        (request.len() == segments.len()).then_some(PathRank::Pattern(ranks))
    }

    /// The values of this route's path variables in `path`, a request path the route matched
    /// (see [`RouteTable::find`]), as API Gateway passes them in `pathParameters`: each value
    /// percent-decoded once (`+` stays `+`, it is a path), a greedy `{name+}` taking the rest of
    /// the path with its slashes. A value whose escapes do not decode to UTF-8 is kept as sent,
    /// since the event is JSON text and a lossy decode would hide the client's bytes.
    pub fn parameters(&self, path: &str) -> Vec<(String, String)> {
        let (Self::Pattern { segments, .. }, Some(request)) = (self, request_segments(path)) else {
            return Vec::new();
        };
        let mut parameters = Vec::new();
        for (index, segment) in segments.iter().enumerate() {
            let (name, raw) = match segment {
                Segment::Literal(_) => continue,
                Segment::Param(name) => (name, request.get(index).map(|part| part.to_string())),
                Segment::Greedy(name) => (name, request.get(index..).map(|rest| rest.join("/"))),
            };
            if let Some(raw) = raw {
                let value = String::from_utf8(percent_decode(&raw)).unwrap_or(raw);
                parameters.push((name.clone(), value));
            }
        }
        parameters
    }

    fn same_shape(&self, other: &Self) -> bool {
        match (self, other) {
            (Self::Default, Self::Default) => true,
            (Self::Pattern { segments: a, .. }, Self::Pattern { segments: b, .. }) => {
                a.len() == b.len() && a.iter().zip(b).all(|(x, y)| x.same_shape(y))
            }
            _ => false,
        }
    }
}

impl fmt::Display for RoutePath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Default => f.write_str("$default"),
            Self::Pattern { raw, .. } => f.write_str(raw),
        }
    }
}

fn parse_segment(part: &str) -> Result<Segment, &'static str> {
    if part.is_empty() {
        return Err("empty segment (`//` or a trailing `/`)");
    }
    if let Some(inner) = part.strip_prefix('{').and_then(|p| p.strip_suffix('}')) {
        let (name, greedy) = match inner.strip_suffix('+') {
            Some(name) => (name, true),
            None => (inner, false),
        };
        if name.is_empty() || name.contains(['{', '}', '+']) {
            return Err("a path variable must look like `{name}` or `{name+}`");
        }
        return Ok(if greedy {
            Segment::Greedy(name.to_owned())
        } else {
            Segment::Param(name.to_owned())
        });
    }
    if part.contains(['{', '}']) {
        return Err("a path variable must fill a whole segment");
    }
    Ok(Segment::Literal(part.to_owned()))
}

#[derive(Debug, PartialEq, Eq, PartialOrd, Ord)]
enum PathRank {
    /// Per-segment ranks, compared left to right: `/a/b/{x}` beats `/a/{x}/c` for `/a/b/c`.
    Pattern(Vec<u8>),
    /// `$default` loses to every path.
    CatchAll,
}

/// Where a route came from in the template, for messages an operator can act on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RouteSource {
    pub resource: String,
    pub event: String,
}

impl fmt::Display for RouteSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}, event {}", self.resource, self.event)
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Route {
    pub method: RouteMethod,
    pub path: RoutePath,
    /// The function's binary (`target/debug/<bin>` locally).
    pub function: String,
    pub source: RouteSource,
}

impl Route {
    /// The route key as API Gateway writes it: `GET /patients/{id}` or `$default`.
    pub fn key(&self) -> String {
        match self.path {
            RoutePath::Default => self.path.to_string(),
            RoutePath::Pattern { .. } => format!("{} {}", self.method, self.path),
        }
    }

    fn conflicts_with(&self, other: &Self) -> bool {
        let same_method = matches!(self.path, RoutePath::Default) || self.method == other.method;
        same_method && self.path.same_shape(&other.path)
    }
}

#[derive(Debug, Clone, Default)]
pub struct RouteTable {
    routes: Vec<Route>,
}

impl RouteTable {
    /// Builds the table, refusing two routes that would accept exactly the same requests:
    /// API Gateway rejects the duplicate at deploy time, so the gateway must not pick one silently.
    pub fn new(routes: Vec<Route>) -> Result<Self, RouteConflict> {
        for (index, route) in routes.iter().enumerate() {
            if let Some(earlier) = routes[..index].iter().find(|r| r.conflicts_with(route)) {
                return Err(RouteConflict {
                    first: format!("`{}` ({})", earlier.key(), earlier.source),
                    second: format!("`{}` ({})", route.key(), route.source),
                });
            }
        }
        Ok(Self { routes })
    }

    pub fn routes(&self) -> &[Route] {
        &self.routes
    }

    pub fn is_empty(&self) -> bool {
        self.routes.is_empty()
    }

    /// The route API Gateway would pick for `method` and the raw request `path`, if any.
    /// A path that matches only under another method finds nothing, as on HTTP API.
    pub fn find(&self, method: &Method, path: &str) -> Option<&Route> {
        let request = request_segments(path)?;
        self.routes
            .iter()
            .filter(|route| route.method.matches(method))
            .filter_map(|route| {
                let rank = route.path.match_rank(&request)?;
                Some(((rank, route.method.rank()), route))
            })
            .min_by(|a, b| a.0.cmp(&b.0))
            .map(|(_, route)| route)
    }
}

/// The `/`-separated pieces of a raw request path, still percent-encoded: routes match on them
/// and path variables take their values from them. `None` for a path not starting with `/`.
fn request_segments(path: &str) -> Option<Vec<&str>> {
    match path {
        "/" => Some(Vec::new()),
        _ => Some(path.strip_prefix('/')?.split('/').collect()),
    }
}

#[derive(Debug, thiserror::Error)]
pub enum RouteKeyError {
    #[error("unsupported method `{0}` (use GET, POST, PUT, PATCH, DELETE, HEAD, OPTIONS or ANY)")]
    UnknownMethod(String),
    #[error("invalid path `{path}`: {reason}")]
    InvalidPath { path: String, reason: &'static str },
}

/// Two routes that accept the same requests; each side reads "`GET /x/{id}` (Resource, event E)".
#[derive(Debug, thiserror::Error)]
#[error("route {second} conflicts with {first}: both match the same requests")]
pub struct RouteConflict {
    pub first: String,
    pub second: String,
}

#[cfg(test)]
mod tests;
