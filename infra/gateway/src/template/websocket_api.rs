//! Reads the WebSocket API from raw `AWS::ApiGatewayV2::*` resources: route key → `Target:
//! integrations/<Integration>` → `IntegrationUri` naming `<Function>.Arn` → the function's binary.

use serde_norway::{Mapping, Value};

use super::error::TemplateError;
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

/// The resource a `!Ref X` (or `{Ref: X}`) names.
fn ref_target(value: &Value) -> Option<&str> {
    match value {
        Value::Tagged(tagged) if tagged.tag == "Ref" => plain_str(&tagged.value),
        Value::Mapping(map) if map.len() == 1 => map.get("Ref").and_then(plain_str),
        _ => None,
    }
}

/// A resource an intrinsic function refers to: `!Ref X`, `!GetAtt X.Arn`, `${X}` or `${X.Arn}`
/// in a `!Sub`.
#[derive(Debug, PartialEq, Eq)]
struct Reference {
    name: String,
    attribute: Option<String>,
}

/// Every reference in a value, in order, whatever the intrinsic's form (`!Sub`, `!Join`,
/// `Fn::Sub` with variables, …). Pseudo parameters (`AWS::Region`) are left out.
fn references(value: &Value) -> Vec<Reference> {
    let mut found = Vec::new();
    collect_references(value, &mut found);
    found.retain(|reference| !reference.name.contains("::"));
    found
}

fn collect_references(value: &Value, found: &mut Vec<Reference>) {
    match value {
        Value::Tagged(tagged) => collect_intrinsic(&tagged.tag.to_string(), &tagged.value, found),
        Value::Mapping(map) => {
            for (key, inner) in map {
                match plain_str(key) {
                    Some(name) if name == "Ref" || name.starts_with("Fn::") => {
                        let tag = name.strip_prefix("Fn::").unwrap_or(name);
                        collect_intrinsic(tag, inner, found);
                    }
                    _ => collect_references(inner, found),
                }
            }
        }
        Value::Sequence(items) => {
            for item in items {
                collect_references(item, found);
            }
        }
        _ => {}
    }
}

fn collect_intrinsic(tag: &str, value: &Value, found: &mut Vec<Reference>) {
    let tag = tag.trim_start_matches('!');
    match (tag, value) {
        ("Ref", Value::String(name)) => found.push(Reference {
            name: name.clone(),
            attribute: None,
        }),
        ("GetAtt", Value::String(text)) => {
            let (name, attribute) = match text.split_once('.') {
                Some((name, attribute)) => (name, Some(attribute.to_owned())),
                None => (text.as_str(), None),
            };
            found.push(Reference {
                name: name.to_owned(),
                attribute,
            });
        }
        ("GetAtt", Value::Sequence(parts)) => {
            if let Some(name) = parts.first().and_then(plain_str) {
                found.push(Reference {
                    name: name.to_owned(),
                    attribute: parts.get(1).and_then(plain_str).map(str::to_owned),
                });
            }
        }
        ("Sub", Value::String(text)) => found.extend(substitutions(text)),
        ("Sub", Value::Sequence(parts)) => {
            if let Some(text) = parts.first().and_then(plain_str) {
                found.extend(substitutions(text));
            }
            for part in parts.iter().skip(1) {
                collect_references(part, found);
            }
        }
        _ => collect_references(value, found),
    }
}

/// The `${Name}` / `${Name.Attribute}` placeholders of a `!Sub` string (`${!Literal}` is text).
fn substitutions(text: &str) -> Vec<Reference> {
    let mut found = Vec::new();
    let mut rest = text;
    while let Some(start) = rest.find("${") {
        let after = &rest[start + 2..];
        let Some(end) = after.find('}') else { break };
        let inner = after[..end].trim();
        if !inner.is_empty() && !inner.starts_with('!') {
            let (name, attribute) = match inner.split_once('.') {
                Some((name, attribute)) => (name, Some(attribute.to_owned())),
                None => (inner, None),
            };
            found.push(Reference {
                name: name.to_owned(),
                attribute,
            });
        }
        rest = &after[end + 1..];
    }
    found
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reference(name: &str, attribute: Option<&str>) -> Reference {
        Reference {
            name: name.to_owned(),
            attribute: attribute.map(str::to_owned),
        }
    }

    fn refs(yaml: &str) -> Vec<Reference> {
        let value: Value = serde_norway::from_str(yaml).expect("yaml");
        references(&value)
    }

    #[test]
    fn references_in_every_intrinsic_form() {
        assert_eq!(
            refs(
                r#"!Sub "arn:${AWS::Partition}:apigateway:${AWS::Region}:lambda:path/2015-03-31/functions/${WsConnectFunction.Arn}/invocations""#
            ),
            [reference("WsConnectFunction", Some("Arn"))]
        );
        assert_eq!(
            refs(r#"!Sub "integrations/${WsConnectInteg}""#),
            [reference("WsConnectInteg", None)]
        );
        assert_eq!(
            refs("!Join ['/', ['integrations', !Ref ConnectInteg]]"),
            [reference("ConnectInteg", None)]
        );
        assert_eq!(
            refs(r#"{"Fn::Join": ["", ["integrations/", {"Ref": "I"}]]}"#),
            [reference("I", None)]
        );
        assert_eq!(
            refs(
                r#"!Sub ["arn:aws:apigateway:eu-west-1:lambda:path/2015-03-31/functions/${Fn}/invocations", {Fn: !GetAtt F.Arn}]"#
            ),
            [reference("Fn", None), reference("F", Some("Arn"))]
        );
        assert_eq!(
            refs(r#"{"Fn::GetAtt": ["F", "Arn"]}"#),
            [reference("F", Some("Arn"))]
        );
        assert_eq!(refs(r#"!Sub "a ${!Literal} b""#), []);
    }
}
