//! Reads the WebSocket API from raw `AWS::ApiGatewayV2::*` resources: route key → `Target:
//! integrations/<Integration>` → `IntegrationUri` naming `<Function>.Arn` → the function's binary.
//! Each kind of resource has its step: the Api (and its route selection), its Stage, its
//! RouteResponses, then each Route down to its function.

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
    let resources = Resources::new(resources);
    let Some(api) = the_api(&resources, notes)? else {
        return Ok(None);
    };
    let selection = route_selection(api, resources.definition(api))?;
    let stage = stage_name(&resources, api, parameters, notes)?;
    let routes = routes(&resources, api, notes)?;
    Ok(Some(WebSocketApi {
        resource: api.to_owned(),
        stage,
        selection,
        routes,
    }))
}

/// The template's resources by logical id, in the template's order.
struct Resources<'a> {
    all: &'a Mapping,
    named: Vec<(&'a str, &'a Value)>,
}

impl<'a> Resources<'a> {
    fn new(all: &'a Mapping) -> Self {
        let named = all
            .iter()
            .filter_map(|(name, resource)| Some((plain_str(name)?, resource)))
            .collect();
        Self { all, named }
    }

    fn of_type(&self, kind: &'static str) -> impl Iterator<Item = (&'a str, &'a Value)> + '_ {
        self.named
            .iter()
            .copied()
            .filter(move |(_, resource)| resource.get("Type").and_then(plain_str) == Some(kind))
    }

    /// The resources of `kind` whose `ApiId` is `!Ref <api>`.
    fn of_api<'s>(
        &'s self,
        kind: &'static str,
        api: &'s str,
    ) -> impl Iterator<Item = (&'a str, &'a Value)> + 's {
        self.of_type(kind).filter(move |(_, resource)| {
            property(resource, "ApiId").and_then(ref_target) == Some(api)
        })
    }

    /// A resource's definition; `Null` for a name the template does not declare.
    fn definition(&self, name: &str) -> &'a Value {
        self.all.get(name).unwrap_or(&Value::Null)
    }

    fn type_of(&self, name: &str) -> Option<&'a str> {
        self.all.get(name)?.get("Type").and_then(plain_str)
    }
}

/// The one `AWS::ApiGatewayV2::Api` with `ProtocolType: WEBSOCKET`, or `None` (with a note when
/// the template declares SAM's `AWS::Serverless::WebSocketApi`, which is not read).
fn the_api<'a>(
    resources: &Resources<'a>,
    notes: &mut Vec<String>,
) -> Result<Option<&'a str>, TemplateError> {
    let apis: Vec<&str> = resources
        .of_type(API)
        .filter(|(_, resource)| {
            property(resource, "ProtocolType")
                .and_then(plain_str)
                .is_some_and(|protocol| protocol.eq_ignore_ascii_case("WEBSOCKET"))
        })
        .map(|(name, _)| name)
        .collect();
    match apis.as_slice() {
        [] => {
            if let Some((name, _)) = resources.of_type("AWS::Serverless::WebSocketApi").next() {
                notes.push(format!(
                    "{name}: AWS::Serverless::WebSocketApi is not read by the local gateway; \
                     declare the WebSocket API with AWS::ApiGatewayV2 resources (Api, Integration, \
                     Route, Stage) to serve it locally"
                ));
            }
            Ok(None)
        }
        [api] => Ok(Some(*api)),
        several => Err(malformed(
            "Resources",
            &format!(
                "several WebSocket APIs ({}): the local gateway serves one",
                several.join(", ")
            ),
        )),
    }
}

/// The Api's `RouteSelectionExpression`, which API Gateway requires.
fn route_selection(api: &str, definition: &Value) -> Result<RouteSelection, TemplateError> {
    let at = format!("Resources.{api}.Properties.RouteSelectionExpression");
    let Some(value) = property(definition, "RouteSelectionExpression") else {
        return Err(malformed(
            &at,
            "missing (API Gateway requires it for WebSocket APIs, e.g. $request.body.action)",
        ));
    };
    let text = plain_str(value).ok_or_else(|| malformed(&at, "must be a plain string"))?;
    RouteSelection::parse(text).map_err(|problem| malformed(&at, &problem))
}

/// The `StageName` of the Api's first Stage, or the fallback stage (with a note) when there is
/// none or its name is only known at deploy time.
fn stage_name(
    resources: &Resources<'_>,
    api: &str,
    parameters: &Parameters<'_>,
    notes: &mut Vec<String>,
) -> Result<String, TemplateError> {
    let stages: Vec<(&str, &Value)> = resources.of_api(STAGE, api).collect();
    let Some((name, stage)) = stages.first() else {
        notes.push(format!(
            "{api}: no AWS::ApiGatewayV2::Stage; serving it as stage `{FALLBACK_STAGE}`"
        ));
        return Ok(FALLBACK_STAGE.to_owned());
    };
    if stages.len() > 1 {
        notes.push(format!(
            "{api}: several stages; the local gateway serves the first, {name}"
        ));
    }
    let at = format!("Resources.{name}.Properties.StageName");
    let value = property(stage, "StageName").ok_or_else(|| malformed(&at, "missing"))?;
    match parameters.resolve_scalar(value) {
        Resolved::Text(text) if !text.trim().is_empty() => Ok(text.trim().to_owned()),
        Resolved::Text(_) => Err(malformed(&at, "is empty")),
        Resolved::Unknown(why) => {
            notes.push(format!(
                "{at}: {why}; serving the API as stage `{FALLBACK_STAGE}`"
            ));
            Ok(FALLBACK_STAGE.to_owned())
        }
    }
}

/// The Api's Routes, `$connect`, `$disconnect` and `$default` first.
fn routes(
    resources: &Resources<'_>,
    api: &str,
    notes: &mut Vec<String>,
) -> Result<Vec<WsRoute>, TemplateError> {
    let with_response = routes_with_response(resources, api);
    let mut routes: Vec<WsRoute> = Vec::new();
    for (name, route) in resources.of_api(ROUTE, api) {
        let route = ws_route(resources, name, route, &routes, &with_response, notes)?;
        routes.push(route);
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
    Ok(routes)
}

/// The Routes (logical ids) that have a `$default` RouteResponse.
fn routes_with_response<'a>(resources: &Resources<'a>, api: &str) -> Vec<&'a str> {
    let mut with_response = Vec::new();
    for (_, response) in resources.of_api(ROUTE_RESPONSE, api) {
        let key = property(response, "RouteResponseKey").and_then(plain_str);
        if let (Some(route), Some(DEFAULT)) =
            (property(response, "RouteId").and_then(ref_target), key)
        {
            with_response.push(route);
        }
    }
    with_response
}

/// One Route: its key, the function its integration invokes, and whether it answers the
/// client (`two_way`); `earlier` are the routes read before it, for duplicate keys.
fn ws_route(
    resources: &Resources<'_>,
    name: &str,
    route: &Value,
    earlier: &[WsRoute],
    with_response: &[&str],
    notes: &mut Vec<String>,
) -> Result<WsRoute, TemplateError> {
    let at = format!("Resources.{name}.Properties");
    let key = route_key(&at, route, earlier)?;
    let function_resource = route_function(resources, &at, route)?;
    let function = binary_name(&function_resource, resources.definition(&function_resource))?;

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
    Ok(WsRoute {
        key: key.to_owned(),
        function,
        function_resource,
        route_resource: name.to_owned(),
        two_way: selects_response && has_response,
    })
}

/// A Route's `RouteKey`: `$connect`, `$disconnect`, `$default` or a custom key, used once.
fn route_key<'v>(
    at: &str,
    route: &'v Value,
    earlier: &[WsRoute],
) -> Result<&'v str, TemplateError> {
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
    if let Some(earlier) = earlier.iter().find(|r| r.key == key) {
        return Err(malformed(
            &format!("{at}.RouteKey"),
            &format!("`{key}` is also the key of {}", earlier.route_resource),
        ));
    }
    Ok(key)
}

/// The function (logical id) behind a Route: its `Target` names an Integration, whose
/// `IntegrationUri` names the function.
fn route_function(
    resources: &Resources<'_>,
    at: &str,
    route: &Value,
) -> Result<String, TemplateError> {
    let target = property(route, "Target").ok_or_else(|| {
        malformed(
            &format!("{at}.Target"),
            "missing; the local gateway needs `Target: !Sub \"integrations/${<Integration>}\"`",
        )
    })?;
    let integration = references(target)
        .into_iter()
        .map(|reference| reference.name)
        .find(|candidate| resources.type_of(candidate) == Some(INTEGRATION))
        .ok_or_else(|| {
            malformed(
                &format!("{at}.Target"),
                "names no AWS::ApiGatewayV2::Integration of this template (expected !Sub \"integrations/${<Integration>}\")",
            )
        })?;
    integration_function(resources, &integration)
}

/// The function an integration invokes, from the `<Function>.Arn` its `IntegrationUri` names.
fn integration_function(
    resources: &Resources<'_>,
    integration: &str,
) -> Result<String, TemplateError> {
    let at = format!("Resources.{integration}.Properties");
    let definition = resources.definition(integration);
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
        .find(|candidate| resources.type_of(candidate) == Some(FUNCTION))
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
