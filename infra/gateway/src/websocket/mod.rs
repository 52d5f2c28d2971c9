//! The WebSocket API emulation: the API read from the template (route key → function), the
//! events its functions receive, live connections and the @connections API that pushes to them.

pub mod connections;
pub mod events;
pub mod server;

use std::fmt;

use serde_json::Value;

/// The WebSocket API of the template, resolved down to binaries.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WebSocketApi {
    /// Logical id of the `AWS::ApiGatewayV2::Api`.
    pub resource: String,
    /// `StageName` of its `AWS::ApiGatewayV2::Stage`.
    pub stage: String,
    pub selection: RouteSelection,
    /// `$connect`, `$disconnect`, `$default` first, then custom keys in order.
    pub routes: Vec<WsRoute>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WsRoute {
    pub key: String,
    /// The function's binary (`target/debug/<bin>` locally).
    pub function: String,
    /// Logical ids, for messages an operator can act on.
    pub function_resource: String,
    pub route_resource: String,
    /// The route has a `$default` route response: the function's `body` goes back to the client.
    pub two_way: bool,
}

pub const CONNECT: &str = "$connect";
pub const DISCONNECT: &str = "$disconnect";
pub const DEFAULT: &str = "$default";

impl WebSocketApi {
    pub fn route(&self, key: &str) -> Option<&WsRoute> {
        self.routes.iter().find(|route| route.key == key)
    }

    /// The route a text message goes to, as API Gateway picks it: the selection expression's
    /// value when a custom route has that key, else `$default`; `None` when neither exists.
    pub fn select(&self, body: &str) -> Option<&WsRoute> {
        self.selection
            .evaluate(body)
            .filter(|key| !key.starts_with('$'))
            .and_then(|key| self.route(&key))
            .or_else(|| self.route(DEFAULT))
    }
}

/// A `RouteSelectionExpression` of the form `$request.body.<path>`, the only kind API Gateway
/// supports for WebSocket APIs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RouteSelection {
    raw: String,
    path: Vec<String>,
}

impl RouteSelection {
    pub fn parse(raw: &str) -> Result<Self, String> {
        let trimmed = raw.trim();
        let inner = trimmed
            .strip_prefix("${")
            .and_then(|rest| rest.strip_suffix('}'))
            .or_else(|| trimmed.strip_prefix('$'))
            .unwrap_or(trimmed);
        let Some(path) = inner.strip_prefix("request.body.") else {
            return Err(format!(
                "`{raw}` is not supported: use $request.body.<field>, e.g. $request.body.action"
            ));
        };
        let path: Vec<String> = path.split('.').map(str::to_owned).collect();
        if path.iter().any(|part| part.is_empty()) {
            return Err(format!("`{raw}` has an empty field name"));
        }
        Ok(Self {
            raw: trimmed.to_owned(),
            path,
        })
    }

    /// The expression's value for a message: a string (or a number or boolean, as text) at the
    /// path of a JSON object body.
    pub fn evaluate(&self, body: &str) -> Option<String> {
        let json: Value = serde_json::from_str(body).ok()?;
        let mut value = &json;
        for part in &self.path {
            value = value.as_object()?.get(part)?;
        }
        match value {
            Value::String(text) => Some(text.clone()),
            Value::Number(number) => Some(number.to_string()),
            Value::Bool(flag) => Some(flag.to_string()),
            _ => None,
        }
    }
}

impl fmt::Display for RouteSelection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.raw)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn route(key: &str, function: &str) -> WsRoute {
        WsRoute {
            key: key.to_owned(),
            function: function.to_owned(),
            function_resource: format!("{function}Function"),
            route_resource: format!("{key}Route"),
            two_way: false,
        }
    }

    fn api_with(keys: &[(&str, &str)]) -> WebSocketApi {
        WebSocketApi {
            resource: "WsApi".to_owned(),
            stage: "prod".to_owned(),
            selection: RouteSelection::parse("$request.body.action").expect("expression"),
            routes: keys.iter().map(|(k, f)| route(k, f)).collect(),
        }
    }

    #[test]
    fn selection_expressions() {
        let selection = RouteSelection::parse("$request.body.action").expect("parses");
        assert_eq!(
            selection.evaluate(r#"{"action":"send"}"#).as_deref(),
            Some("send")
        );
        assert_eq!(selection.evaluate(r#"{"action":7}"#).as_deref(), Some("7"));
        assert_eq!(selection.evaluate(r#"{"action":null}"#), None);
        assert_eq!(selection.evaluate(r#"{"other":"send"}"#), None);
        assert_eq!(selection.evaluate("not json"), None);
        assert_eq!(selection.evaluate(r#"["action"]"#), None);

        let nested = RouteSelection::parse("${request.body.meta.kind}").expect("braces");
        assert_eq!(
            nested.evaluate(r#"{"meta":{"kind":"ping"}}"#).as_deref(),
            Some("ping")
        );
        for bad in [
            "$request.header.x",
            "action",
            "$request.body.",
            "$context.routeKey",
        ] {
            assert!(RouteSelection::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn route_selection_falls_back_to_default() {
        let api = api_with(&[("$connect", "c"), ("$default", "d"), ("send", "s")]);
        let pick = |body: &str| api.select(body).map(|r| r.key.as_str());
        assert_eq!(pick(r#"{"action":"send"}"#), Some("send"));
        assert_eq!(pick(r#"{"action":"other"}"#), Some("$default"));
        assert_eq!(pick("plain text"), Some("$default"));
        // A message can never reach $connect or $disconnect by naming it.
        assert_eq!(pick(r#"{"action":"$connect"}"#), Some("$default"));

        let no_default = api_with(&[("send", "s")]);
        assert!(no_default.select("plain").is_none());
        assert_eq!(
            no_default
                .select(r#"{"action":"send"}"#)
                .map(|r| r.key.as_str()),
            Some("send")
        );
    }
}
