//! Reads the SAM template: the HttpApi routes of every function and the HTTP API's CORS
//! configuration, the WebSocket API (raw `AWS::ApiGatewayV2::*` resources) and the functions'
//! schedules, so that local routing comes from the same tables as the deployment.

use std::path::Path;
use std::time::Duration;

use serde_norway::{Mapping, Value};

use crate::cors::{CorsConfig, CorsPolicy, OriginRule};
use crate::routes::{Route, RouteMethod, RoutePath, RouteSource, RouteTable};
use crate::runtime::FunctionSpec;
use crate::schedule::ScheduleSpec;
use crate::websocket::WebSocketApi;

mod error;
mod intrinsics;
mod schedule_events;
mod websocket_api;
mod yaml;

pub use self::error::TemplateError;
use self::yaml::{Parameters, Resolved, binary_name, function_number, malformed, plain_str};

/// What the gateway needs from the template.
#[derive(Debug, Clone)]
pub struct Template {
    pub routes: RouteTable,
    pub cors: Option<CorsPolicy>,
    /// `None` when the template declares no WebSocket API: the gateway then serves none.
    pub websocket: Option<WebSocketApi>,
    pub schedules: Vec<ScheduleSpec>,
    /// Every `AWS::Serverless::Function`: what the runtime host starts.
    pub functions: Vec<FunctionSpec>,
    /// What the gateway reads differently from AWS, or leaves out, for this template; printed
    /// at start-up.
    pub notes: Vec<String>,
}

pub fn load(path: &Path) -> Result<Template, TemplateError> {
    let text = std::fs::read_to_string(path).map_err(|source| TemplateError::Read {
        path: path.to_owned(),
        source,
    })?;
    parse(&text)
}

pub fn parse(yaml: &str) -> Result<Template, TemplateError> {
    let document: Value = serde_norway::from_str(yaml).map_err(TemplateError::Yaml)?;
    let resources = document
        .get("Resources")
        .and_then(Value::as_mapping)
        .ok_or_else(|| malformed("Resources", "missing, or not a mapping"))?;
    let parameters = Parameters(document.get("Parameters").and_then(Value::as_mapping));

    let globals = document.get("Globals");
    let mut routes = Vec::new();
    let mut schedules = Vec::new();
    let mut functions = Vec::new();
    let mut api_cors = Vec::new();
    for (name, resource) in resources {
        let name = plain_str(name)
            .ok_or_else(|| malformed("Resources", "a resource name is not a string"))?;
        let at = format!("Resources.{name}");
        let kind = resource
            .get("Type")
            .and_then(plain_str)
            .ok_or_else(|| malformed(&at, "missing `Type`"))?;
        match kind {
            "AWS::Serverless::Function" => {
                functions.push(function_spec(name, resource, globals, &parameters)?);
                routes.extend(function_routes(name, resource)?);
                schedules.extend(schedule_events::function_schedules(
                    name,
                    resource,
                    globals,
                    &parameters,
                )?);
            }
            "AWS::Serverless::HttpApi" => {
                let config = resource
                    .get("Properties")
                    .and_then(|p| p.get("CorsConfiguration"));
                api_cors.push((name.to_owned(), config, at));
            }
            _ => {}
        }
    }
    let mut notes = Vec::new();
    let websocket = websocket_api::websocket_api(resources, &parameters, &mut notes)?;
    if routes.is_empty() && websocket.is_none() && schedules.is_empty() {
        return Err(TemplateError::NoRoutes);
    }

    let global_cors = globals
        .and_then(|g| g.get("HttpApi"))
        .and_then(|h| h.get("CorsConfiguration"));
    Ok(Template {
        routes: RouteTable::new(routes)?,
        cors: http_api_cors(api_cors, global_cors, &parameters)?,
        websocket,
        schedules,
        functions,
        notes,
    })
}

/// Lambda's defaults when neither the function nor `Globals.Function` sets them.
const DEFAULT_TIMEOUT_SECS: u64 = 3;
const DEFAULT_MEMORY_MB: u64 = 128;

/// What the runtime host needs to run a function as Lambda would.
fn function_spec(
    resource: &str,
    definition: &Value,
    globals: Option<&Value>,
    parameters: &Parameters<'_>,
) -> Result<FunctionSpec, TemplateError> {
    let number = |property: &str| function_number(definition, globals, parameters, property);
    let memory_mb = number("MemorySize").unwrap_or(DEFAULT_MEMORY_MB);
    Ok(FunctionSpec {
        name: binary_name(resource, definition)?,
        resource: resource.to_owned(),
        timeout: Duration::from_secs(number("Timeout").unwrap_or(DEFAULT_TIMEOUT_SECS)),
        memory_mb: u32::try_from(memory_mb).unwrap_or(u32::MAX),
        reserved_concurrency: number("ReservedConcurrentExecutions")
            .and_then(|n| usize::try_from(n).ok()),
    })
}

/// The routes of one function: one per event of `Type: HttpApi`.
fn function_routes(resource: &str, definition: &Value) -> Result<Vec<Route>, TemplateError> {
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
        let properties = event.get("Properties");
        let path = properties.and_then(|p| p.get("Path"));
        let method = properties.and_then(|p| p.get("Method"));
        let (method, path) = match (method, path) {
            // SAM turns an HttpApi event without Path and Method into the `$default` route.
            (None, None) => (RouteMethod::Any, RoutePath::Default),
            (Some(method), Some(path)) => {
                let method = plain_str(method)
                    .ok_or_else(|| malformed(&format!("{at}.Method"), "must be a plain string"))?;
                let path = plain_str(path)
                    .ok_or_else(|| malformed(&format!("{at}.Path"), "must be a plain string"))?;
                let method =
                    RouteMethod::parse(method).map_err(|source| TemplateError::RouteKey {
                        at: format!("{at}.Method"),
                        source,
                    })?;
                let path = RoutePath::parse(path).map_err(|source| TemplateError::RouteKey {
                    at: format!("{at}.Path"),
                    source,
                })?;
                (method, path)
            }
            _ => {
                return Err(malformed(
                    &at,
                    "set both `Path` and `Method`, or neither for $default",
                ));
            }
        };
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

/// One CORS policy for everything the gateway serves: every HttpApi shares the local port.
fn http_api_cors(
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
        Value::Mapping(fields) => cors_config(at, fields, parameters)?,
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

fn cors_config(
    at: &str,
    fields: &Mapping,
    parameters: &Parameters<'_>,
) -> Result<CorsConfig, TemplateError> {
    let field_at = |field: &str| format!("{at}.{field}");
    let list = |field: &str| -> Result<Vec<String>, TemplateError> {
        let Some(value) = fields.get(field) else {
            return Ok(Vec::new());
        };
        parameters
            .resolve_list(value)
            .into_iter()
            .map(|item| match item {
                Resolved::Text(text) => Ok(text),
                Resolved::Unknown(why) => Err(malformed(&field_at(field), &why)),
            })
            .collect()
    };
    let scalar = |field: &str| -> Result<Option<String>, TemplateError> {
        let Some(value) = fields.get(field) else {
            return Ok(None);
        };
        match parameters.resolve_scalar(value) {
            Resolved::Text(text) => Ok(Some(text)),
            Resolved::Unknown(why) => Err(malformed(&field_at(field), &why)),
        }
    };

    let mut allow_origins = Vec::new();
    if let Some(value) = fields.get("AllowOrigins") {
        for item in parameters.resolve_list(value) {
            let rule = match item {
                Resolved::Text(origin) => OriginRule::parse(&origin),
                // A deploy-time value (a parameter without Default, !Sub, ...): let the local
                // frontend in from any dev port instead of refusing to start.
                Resolved::Unknown(_) => OriginRule::Localhost,
            };
            if !allow_origins.contains(&rule) {
                allow_origins.push(rule);
            }
        }
    }

    let max_age = scalar("MaxAge")?
        .map(|text| {
            text.trim()
                .parse::<u64>()
                .map_err(|_| malformed(&field_at("MaxAge"), "must be a whole number of seconds"))
        })
        .transpose()?;
    let allow_credentials = match scalar("AllowCredentials")?.as_deref().map(str::trim) {
        None => false,
        Some(text) if text.eq_ignore_ascii_case("true") => true,
        Some(text) if text.eq_ignore_ascii_case("false") => false,
        Some(_) => {
            return Err(malformed(
                &field_at("AllowCredentials"),
                "must be true or false",
            ));
        }
    };

    Ok(CorsConfig {
        allow_origins,
        allow_headers: list("AllowHeaders")?,
        allow_methods: list("AllowMethods")?,
        expose_headers: list("ExposeHeaders")?,
        max_age,
        allow_credentials,
    })
}

#[cfg(test)]
mod tests;
