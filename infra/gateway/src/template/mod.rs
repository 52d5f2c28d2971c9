//! Reads the SAM template: the HttpApi routes of every function and the HTTP API's CORS
//! configuration, the WebSocket API (raw `AWS::ApiGatewayV2::*` resources) and the functions'
//! schedules, so that local routing comes from the same tables as the deployment.

use std::path::Path;
use std::time::Duration;

use serde_norway::Value;

use crate::cors::CorsPolicy;
use crate::routes::RouteTable;
use crate::runtime::FunctionSpec;
use crate::schedule::ScheduleSpec;
use crate::websocket::WebSocketApi;

mod error;
mod http_api;
mod intrinsics;
mod schedule_events;
mod websocket_api;
mod yaml;

pub use self::error::TemplateError;
use self::yaml::{Parameters, binary_name, function_number, malformed, plain_str};

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
    let parameters = Parameters::of(&document);

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
                routes.extend(http_api::function_routes(name, resource)?);
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
        cors: http_api::http_api_cors(api_cors, global_cors, &parameters)?,
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

#[cfg(test)]
mod tests;
