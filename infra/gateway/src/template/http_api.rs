//! Reads the HTTP API: each function's `Type: HttpApi` events as routes, and the
//! `CorsConfiguration` of the `AWS::Serverless::HttpApi` resources and of `Globals.HttpApi` as
//! the one CORS policy the local port applies.

use serde_norway::{Mapping, Value};

use super::error::TemplateError;
use super::yaml::{Parameters, Resolved, binary_name, malformed, plain_str};
use crate::cors::{CorsConfig, CorsPolicy, OriginRule};
use crate::routes::{Route, RouteMethod, RoutePath, RouteSource};

/// The routes of one function: one per event of `Type: HttpApi`.
pub(crate) fn function_routes(
    resource: &str,
    definition: &Value,
) -> Result<Vec<Route>, TemplateError> {
    let events_at = format!("Resources.{resource}.Properties.Events");
    let Some(events) = definition.get("Properties").and_then(|p| p.get("Events")) else {
        return Ok(Vec::new());
    };
    let events = events
        .as_mapping()
        .ok_or_else(|| malformed(&events_at, "must map event names to events"))?;
    let http_events: Vec<(&Value, &Value)> = events
        .iter()
        .filter(|(_, event)| event.get("Type").and_then(plain_str) == Some("HttpApi"))
        .collect();
    if http_events.is_empty() {
        // Schedule-only functions (worker, scheduler) need no binary name here.
        return Ok(Vec::new());
    }

    let function = binary_name(resource, definition)?;
    let mut routes = Vec::with_capacity(http_events.len());
    for (event_name, event) in http_events {
        let event_name = plain_str(event_name)
            .ok_or_else(|| malformed(&events_at, "an event name is not a string"))?;
        let at = format!("{events_at}.{event_name}.Properties");
        let (method, path) = route_key(&at, event.get("Properties"))?;
        routes.push(Route {
            method,
            path,
            function: function.clone(),
            source: RouteSource {
                resource: resource.to_owned(),
                event: event_name.to_owned(),
            },
        });
    }
    Ok(routes)
}

/// An HttpApi event's `Method` and `Path`, or the `$default` route when it has neither.
fn route_key(
    at: &str,
    properties: Option<&Value>,
) -> Result<(RouteMethod, RoutePath), TemplateError> {
    let path = properties.and_then(|p| p.get("Path"));
    let method = properties.and_then(|p| p.get("Method"));
    match (method, path) {
        // SAM turns an HttpApi event without Path and Method into the `$default` route.
        (None, None) => Ok((RouteMethod::Any, RoutePath::Default)),
        (Some(method), Some(path)) => {
            let method = plain_str(method)
                .ok_or_else(|| malformed(&format!("{at}.Method"), "must be a plain string"))?;
            let path = plain_str(path)
                .ok_or_else(|| malformed(&format!("{at}.Path"), "must be a plain string"))?;
            let method = RouteMethod::parse(method).map_err(|source| TemplateError::RouteKey {
                at: format!("{at}.Method"),
                source,
            })?;
            let path = RoutePath::parse(path).map_err(|source| TemplateError::RouteKey {
                at: format!("{at}.Path"),
                source,
            })?;
            Ok((method, path))
        }
        _ => Err(malformed(
            at,
            "set both `Path` and `Method`, or neither for $default",
        )),
    }
}

/// One CORS policy for everything the gateway serves: every HttpApi shares the local port.
/// `apis` are the HttpApi resources: name, `CorsConfiguration`, template path.
pub(crate) fn http_api_cors(
    apis: Vec<(String, Option<&Value>, String)>,
    global: Option<&Value>,
    parameters: &Parameters<'_>,
) -> Result<Option<CorsPolicy>, TemplateError> {
    let global_policy = match global {
        Some(config) => cors_policy("Globals.HttpApi.CorsConfiguration", config, parameters)?,
        None => None,
    };
    if apis.is_empty() {
        // Only the implicit API SAM creates for events without `ApiId`; Globals still apply to it.
        return Ok(global_policy);
    }

    let mut chosen: Option<(String, Option<CorsPolicy>)> = None;
    for (name, config, at) in apis {
        let policy = match config {
            Some(config) => cors_policy(
                &format!("{at}.Properties.CorsConfiguration"),
                config,
                parameters,
            )?,
            None => global_policy.clone(),
        };
        match &chosen {
            None => chosen = Some((name, policy)),
            Some((first, first_policy)) if *first_policy != policy => {
                return Err(TemplateError::DivergentCors {
                    first: first.clone(),
                    second: name,
                });
            }
            Some(_) => {}
        }
    }
    Ok(chosen.and_then(|(_, policy)| policy))
}

fn cors_policy(
    at: &str,
    config: &Value,
    parameters: &Parameters<'_>,
) -> Result<Option<CorsPolicy>, TemplateError> {
    let config = match config {
        Value::Bool(false) => return Ok(None),
        Value::Bool(true) => CorsConfig {
            allow_origins: vec![OriginRule::Any],
            ..CorsConfig::default()
        },
        // SAM's short form: the one origin to allow.
        Value::String(origin) => CorsConfig {
            allow_origins: vec![OriginRule::parse(origin)],
            ..CorsConfig::default()
        },
        Value::Mapping(fields) => CorsFields {
            at,
            fields,
            parameters,
        }
        .config()?,
        _ => {
            return Err(malformed(
                at,
                "must be true, an origin string, or a mapping",
            ));
        }
    };
    CorsPolicy::new(config)
        .map(Some)
        .map_err(|source| TemplateError::Cors {
            at: at.to_owned(),
            source,
        })
}

/// A `CorsConfiguration` written as a mapping, at its place in the template.
struct CorsFields<'a> {
    at: &'a str,
    fields: &'a Mapping,
    parameters: &'a Parameters<'a>,
}

impl CorsFields<'_> {
    fn config(&self) -> Result<CorsConfig, TemplateError> {
        let allow_origins = self.allow_origins();
        let max_age = self.max_age()?;
        let allow_credentials = self.allow_credentials()?;
        Ok(CorsConfig {
            allow_origins,
            allow_headers: self.list("AllowHeaders")?,
            allow_methods: self.list("AllowMethods")?,
            expose_headers: self.list("ExposeHeaders")?,
            max_age,
            allow_credentials,
        })
    }

    fn allow_origins(&self) -> Vec<OriginRule> {
        let mut allow_origins = Vec::new();
        if let Some(value) = self.fields.get("AllowOrigins") {
            for item in self.parameters.resolve_list(value) {
                let rule = match item {
                    Resolved::Text(origin) => OriginRule::parse(&origin),
                    // A deploy-time value (a parameter without Default, !Sub, ...): let the
                    // local frontend in from any dev port instead of refusing to start.
                    Resolved::Unknown(_) => OriginRule::Localhost,
                };
                if !allow_origins.contains(&rule) {
                    allow_origins.push(rule);
                }
            }
        }
        allow_origins
    }

    fn max_age(&self) -> Result<Option<u64>, TemplateError> {
        self.scalar("MaxAge")?
            .map(|text| {
                text.trim().parse::<u64>().map_err(|_| {
                    malformed(
                        &self.field_at("MaxAge"),
                        "must be a whole number of seconds",
                    )
                })
            })
            .transpose()
    }

    fn allow_credentials(&self) -> Result<bool, TemplateError> {
        match self.scalar("AllowCredentials")?.as_deref().map(str::trim) {
            None => Ok(false),
            Some(text) if text.eq_ignore_ascii_case("true") => Ok(true),
            Some(text) if text.eq_ignore_ascii_case("false") => Ok(false),
            Some(_) => Err(malformed(
                &self.field_at("AllowCredentials"),
                "must be true or false",
            )),
        }
    }

    fn list(&self, field: &str) -> Result<Vec<String>, TemplateError> {
        let Some(value) = self.fields.get(field) else {
            return Ok(Vec::new());
        };
        self.parameters
            .resolve_list(value)
            .into_iter()
            .map(|item| match item {
                Resolved::Text(text) => Ok(text),
                Resolved::Unknown(why) => Err(malformed(&self.field_at(field), &why)),
            })
            .collect()
    }

    fn scalar(&self, field: &str) -> Result<Option<String>, TemplateError> {
        let Some(value) = self.fields.get(field) else {
            return Ok(None);
        };
        match self.parameters.resolve_scalar(value) {
            Resolved::Text(text) => Ok(Some(text)),
            Resolved::Unknown(why) => Err(malformed(&self.field_at(field), &why)),
        }
    }

    fn field_at(&self, field: &str) -> String {
        format!("{}.{field}", self.at)
    }
}
