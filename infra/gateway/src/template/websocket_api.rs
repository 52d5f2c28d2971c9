//! Reads the WebSocket API from raw `AWS::ApiGatewayV2::*` resources: route key → `Target:
//! integrations/<Integration>` → `IntegrationUri` naming `<Function>.Arn` → the function's binary.

use serde_norway::{Mapping, Value};

use super::error::TemplateError;
use super::intrinsics::{ref_target, references};
use super::yaml::{Parameters, Resolved, binary_name, malformed, plain_str};
use crate::websocket::{CONNECT, DEFAULT, DISCONNECT, RouteSelection, WebSocketApi, WsRoute};

const API: &str = "AWS::ApiGatewayV2::Api";
const ROUTE: &str = "AWS::ApiGatewayV2::Route";
const INTEGRATION: &str = "AWS::ApiGatewayV2::Integration";
const STAGE: &str = "AWS::ApiGatewayV2::Stage";
const ROUTE_RESPONSE: &str = "AWS::ApiGatewayV2::RouteResponse";
const FUNCTION: &str = "AWS::Serverless::Function";
/// Stage used when the template has none (API Gateway needs one to accept connections).
const FALLBACK_STAGE: &str = "local";

/// The template's WebSocket API, or `None` when it declares none.
pub(crate) fn websocket_api(
    resources: &Mapping,
    parameters: &Parameters<'_>,
    notes: &mut Vec<String>,
) -> Result<Option<WebSocketApi>, TemplateError> {
    let named: Vec<(&str, &Value)> = resources
        .iter()
        .filter_map(|(name, resource)| Some((plain_str(name)?, resource)))
        .collect();
    let of_type = |kind: &'static str| {
        named
            .iter()
            .copied()
            .filter(move |(_, resource)| resource.get("Type").and_then(plain_str) == Some(kind))
    };

    let apis: Vec<&str> = of_type(API)
        .filter(|(_, resource)| {
            property(resource, "ProtocolType")
                .and_then(plain_str)
                .is_some_and(|protocol| protocol.eq_ignore_ascii_case("WEBSOCKET"))
        })
        .map(|(name, _)| name)
        .collect();
    let api = match apis.as_slice() {
        [] => {
            if let Some((name, _)) = of_type("AWS::Serverless::WebSocketApi").next() {
                notes.push(format!(
                    "{name}: AWS::Serverless::WebSocketApi is not read by the local gateway; \
                     declare the WebSocket API with AWS::ApiGatewayV2 resources (Api, Integration, \
                     Route, Stage) to serve it locally"
                ));
            }
            return Ok(None);
        }
        [api] => *api,
        several => {
            return Err(malformed(
                "Resources",
                &format!(
                    "several WebSocket APIs ({}): the local gateway serves one",
                    several.join(", ")
                ),
            ));
        }
    };
    let api_at = format!("Resources.{api}.Properties");
    let definition = resources.get(api).unwrap_or(&Value::Null);

    let selection = match property(definition, "RouteSelectionExpression") {
        None => {
            return Err(malformed(
                &format!("{api_at}.RouteSelectionExpression"),
                "missing (API Gateway requires it for WebSocket APIs, e.g. $request.body.action)",
            ));
        }
        Some(value) => {
            let text = plain_str(value).ok_or_else(|| {
                malformed(
                    &format!("{api_at}.RouteSelectionExpression"),
                    "must be a plain string",
                )
            })?;
            RouteSelection::parse(text).map_err(|problem| {
                malformed(&format!("{api_at}.RouteSelectionExpression"), &problem)
            })?
        }
    };

    let belongs = |resource: &Value| property(resource, "ApiId").and_then(ref_target) == Some(api);

    // Stage.
    let stages: Vec<(&str, &Value)> = of_type(STAGE).filter(|(_, r)| belongs(r)).collect();
    let stage = match stages.first() {
        None => {
            notes.push(format!(
                "{api}: no AWS::ApiGatewayV2::Stage; serving it as stage `{FALLBACK_STAGE}`"
            ));
            FALLBACK_STAGE.to_owned()
        }
        Some((name, stage)) => {
            if stages.len() > 1 {
                notes.push(format!(
                    "{api}: several stages; the local gateway serves the first, {name}"
                ));
            }
            let at = format!("Resources.{name}.Properties.StageName");
            let value = property(stage, "StageName").ok_or_else(|| malformed(&at, "missing"))?;
            match parameters.resolve_scalar(value) {
                Resolved::Text(text) if !text.trim().is_empty() => text.trim().to_owned(),
                Resolved::Text(_) => return Err(malformed(&at, "is empty")),
                Resolved::Unknown(why) => {
                    notes.push(format!(
                        "{at}: {why}; serving the API as stage `{FALLBACK_STAGE}`"
                    ));
                    FALLBACK_STAGE.to_owned()
                }
            }
        }
    };

    // Routes with a `$default` route response.
    let mut with_response: Vec<&str> = Vec::new();
    for (_, response) in of_type(ROUTE_RESPONSE).filter(|(_, r)| belongs(r)) {
        let key = property(response, "RouteResponseKey").and_then(plain_str);
        if let (Some(route), Some(DEFAULT)) =
            (property(response, "RouteId").and_then(ref_target), key)
        {
            with_response.push(route);
        }
    }

    let mut routes: Vec<WsRoute> = Vec::new();
    for (name, route) in of_type(ROUTE).filter(|(_, r)| belongs(r)) {
        let at = format!("Resources.{name}.Properties");
        let key = property(route, "RouteKey")
            .and_then(plain_str)
            .map(str::trim)
            .filter(|key| !key.is_empty())
            .ok_or_else(|| malformed(&format!("{at}.RouteKey"), "must be a plain string"))?;
        if key.starts_with('$') && ![CONNECT, DISCONNECT, DEFAULT].contains(&key) {
            return Err(malformed(
                &format!("{at}.RouteKey"),
                &format!("`{key}`: the only $-keys are $connect, $disconnect and $default"),
            ));
        }
        if let Some(earlier) = routes.iter().find(|r| r.key == key) {
            return Err(malformed(
                &format!("{at}.RouteKey"),
                &format!("`{key}` is also the key of {}", earlier.route_resource),
            ));
        }
        let target = property(route, "Target").ok_or_else(|| {
            malformed(
                &format!("{at}.Target"),
                "missing; the local gateway needs `Target: !Sub \"integrations/${<Integration>}\"`",
            )
        })?;
        let integration = references(target)
            .into_iter()
            .map(|reference| reference.name)
            .find(|candidate| resource_type(resources, candidate) == Some(INTEGRATION))
            .ok_or_else(|| {
                malformed(
                    &format!("{at}.Target"),
                    "names no AWS::ApiGatewayV2::Integration of this template (expected !Sub \"integrations/${<Integration>}\")",
                )
            })?;
        let function_resource = integration_function(resources, &integration)?;
        let function_definition = resources
            .get(function_resource.as_str())
            .unwrap_or(&Value::Null);
        let function = binary_name(&function_resource, function_definition)?;

        match property(route, "AuthorizationType").and_then(plain_str) {
            Some(kind) if !kind.eq_ignore_ascii_case("NONE") => notes.push(format!(
                "{name}: AuthorizationType {kind} is not emulated; {key} reaches {function} unauthenticated"
            )),
            _ => {}
        }
        let selects_response = property(route, "RouteResponseSelectionExpression")
            .and_then(plain_str)
            .is_some_and(|expression| expression.trim() == DEFAULT);
        let has_response = with_response.contains(&name);
        if selects_response != has_response {
            notes.push(format!(
                "{name}: two-way needs both `RouteResponseSelectionExpression: $default` and an \
                 AWS::ApiGatewayV2::RouteResponse with RouteResponseKey $default; {key} is one-way"
            ));
        }
        routes.push(WsRoute {
            key: key.to_owned(),
            function,
            function_resource,
            route_resource: name.to_owned(),
            two_way: selects_response && has_response,
        });
    }
    if routes.is_empty() {
        notes.push(format!(
            "{api}: no AWS::ApiGatewayV2::Route; clients can connect, and every message is refused"
        ));
    }
    let rank = |key: &str| match key {
        CONNECT => 0,
        DISCONNECT => 1,
        DEFAULT => 2,
        _ => 3,
    };
    routes.sort_by_key(|route| rank(&route.key));

    Ok(Some(WebSocketApi {
        resource: api.to_owned(),
        stage,
        selection,
        routes,
    }))
}

/// The function an integration invokes, from the `<Function>.Arn` its `IntegrationUri` names.
fn integration_function(resources: &Mapping, integration: &str) -> Result<String, TemplateError> {
    let at = format!("Resources.{integration}.Properties");
    let definition = resources.get(integration).unwrap_or(&Value::Null);
    let kind = property(definition, "IntegrationType").and_then(plain_str);
    if !kind.is_some_and(|kind| kind.eq_ignore_ascii_case("AWS_PROXY")) {
        return Err(malformed(
            &format!("{at}.IntegrationType"),
            "only AWS_PROXY (Lambda proxy) integrations are emulated",
        ));
    }
    let uri = property(definition, "IntegrationUri")
        .ok_or_else(|| malformed(&format!("{at}.IntegrationUri"), "missing"))?;
    references(uri)
        .into_iter()
        .filter(|reference| reference.attribute.as_deref() == Some("Arn"))
        .map(|reference| reference.name)
        .find(|candidate| resource_type(resources, candidate) == Some(FUNCTION))
        .ok_or_else(|| {
            malformed(
                &format!("{at}.IntegrationUri"),
                "names no AWS::Serverless::Function of this template (expected \
                 !Sub \"arn:${AWS::Partition}:apigateway:${AWS::Region}:lambda:path/2015-03-31/functions/${<Function>.Arn}/invocations\")",
            )
        })
}

fn property<'a>(resource: &'a Value, name: &str) -> Option<&'a Value> {
    resource.get("Properties")?.get(name)
}

fn resource_type<'a>(resources: &'a Mapping, name: &str) -> Option<&'a str> {
    resources.get(name)?.get("Type").and_then(plain_str)
}
