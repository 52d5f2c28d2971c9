//! The template reader against the fixtures and the repository's own template.yaml: routes,
//! CORS, schedules, the WebSocket API, and the place named by every mistake.

use super::*;
use http::Method;

use crate::cors::OriginRule;
use crate::routes::Route;
use crate::schedule::expression::Timing;

const FIXTURE: &str = include_str!("../../tests/fixtures/template.yaml");
const WEBSOCKET_FIXTURE: &str = include_str!("../../tests/fixtures/websocket.yaml");
const SCHEDULES_FIXTURE: &str = include_str!("../../tests/fixtures/schedules.yaml");

fn find<'a>(template: &'a Template, method: Method, path: &str) -> Option<&'a Route> {
    template.routes.find(&method, path)
}

/// Full text of an error with its causes, as the operator reads it.
fn chain(error: &TemplateError) -> String {
    let mut text = error.to_string();
    let mut source = std::error::Error::source(error);
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

fn parse_err(yaml: &str) -> String {
    match parse(yaml) {
        Ok(_) => panic!("expected an error for:\n{yaml}"),
        Err(error) => chain(&error),
    }
}

#[test]
fn fixture_routes_and_binaries() {
    let template = parse(FIXTURE).expect("fixture parses");
    let keys: Vec<(String, String)> = template
        .routes
        .routes()
        .iter()
        .map(|r| (r.key(), r.function.clone()))
        .collect();
    let expected = [
        ("GET /patients", "patients"),
        ("POST /patients", "patients"),
        ("GET /patients/{id}", "patients"),
        ("ANY /patients/{proxy+}", "patients"),
        ("GET /health", "health"),
        ("GET /appointments/{id}", "appointments"),
        ("PUT /appointments/{id}", "appointments"),
    ];
    let expected: Vec<(String, String)> = expected
        .iter()
        .map(|(k, f)| (k.to_string(), f.to_string()))
        .collect();
    assert_eq!(keys, expected);
}

#[test]
fn fixture_lookup_uses_api_gateway_precedence() {
    let template = parse(FIXTURE).expect("fixture parses");
    let route = find(&template, Method::GET, "/patients/42").expect("route");
    assert_eq!(route.key(), "GET /patients/{id}");
    assert_eq!(route.source.resource, "PatientsFunction");
    assert_eq!(route.source.event, "GetPatient");
    let route = find(&template, Method::DELETE, "/patients/42/notes").expect("route");
    assert_eq!(route.key(), "ANY /patients/{proxy+}");
    assert!(find(&template, Method::DELETE, "/health").is_none());
    assert!(find(&template, Method::GET, "/worker").is_none());
}

#[test]
fn fixture_cors_from_ref_without_default_allows_localhost() {
    let template = parse(FIXTURE).expect("fixture parses");
    let cors = template.cors.expect("cors configured");
    let config = cors.config();
    assert_eq!(config.allow_origins, vec![OriginRule::Localhost]);
    assert_eq!(
        config.allow_methods,
        ["GET", "POST", "PUT", "PATCH", "DELETE"]
    );
    assert_eq!(config.allow_headers, ["authorization", "content-type"]);
    assert_eq!(config.max_age, Some(600));
    assert!(config.allow_credentials);
}

#[test]
fn ref_with_default_uses_the_default() {
    let template = parse(
        r#"
Parameters:
  Origins:
    Type: CommaDelimitedList
    Default: "https://app.pulso.example, http://localhost:5173"
  Age:
    Type: Number
    Default: 300
Resources:
  Api:
    Type: AWS::Serverless::HttpApi
    Properties:
      CorsConfiguration:
        AllowOrigins: !Ref Origins
        MaxAge: !Ref Age
  Fn:
    Type: AWS::Serverless::Function
    Properties:
      CodeUri: functions/health
      Events:
        Get: { Type: HttpApi, Properties: { Path: /health, Method: get, ApiId: !Ref Api } }
"#,
    )
    .expect("parses");
    let cors = template.cors.expect("cors");
    assert_eq!(
        cors.config().allow_origins,
        vec![
            OriginRule::Exact("https://app.pulso.example".into()),
            OriginRule::Exact("http://localhost:5173".into()),
        ]
    );
    assert_eq!(cors.config().max_age, Some(300));
}

#[test]
fn cors_true_and_globals() {
    let template = parse(
        r#"
Globals:
  HttpApi:
    CorsConfiguration: true
Resources:
  Fn:
    Type: AWS::Serverless::Function
    Properties:
      CodeUri: ./functions/health/
      Events:
        Get: { Type: HttpApi, Properties: { Path: /health, Method: GET } }
"#,
    )
    .expect("parses");
    assert_eq!(template.routes.routes()[0].function, "health");
    let cors = template.cors.expect("cors from Globals");
    assert_eq!(cors.config().allow_origins, vec![OriginRule::Any]);
}

#[test]
fn no_cors_configuration_means_no_policy() {
    let template = parse(
        r#"
Resources:
  Fn:
    Type: AWS::Serverless::Function
    Properties:
      CodeUri: functions/health
      Events:
        Catch: { Type: HttpApi }
"#,
    )
    .expect("parses");
    assert!(template.cors.is_none());
    assert_eq!(template.routes.routes()[0].key(), "$default");
}

#[test]
fn conflicting_routes_name_both_events() {
    let message = parse_err(
        r#"
Resources:
  A:
    Type: AWS::Serverless::Function
    Properties:
      CodeUri: functions/a
      Events:
        GetOne: { Type: HttpApi, Properties: { Path: "/x/{id}", Method: GET } }
  B:
    Type: AWS::Serverless::Function
    Properties:
      CodeUri: functions/b
      Events:
        GetOther: { Type: HttpApi, Properties: { Path: "/x/{name}", Method: get } }
"#,
    );
    assert!(message.contains("A, event GetOne"), "{message}");
    assert!(message.contains("B, event GetOther"), "{message}");
}

#[test]
fn nothing_to_serve_is_an_error() {
    let message = parse_err(
        r#"
Resources:
  Worker:
    Type: AWS::Serverless::Function
    Properties:
      CodeUri: functions/worker
      Events:
        Queue: { Type: SQS, Properties: { Queue: !GetAtt Q.Arn } }
"#,
    );
    assert!(message.contains("nothing to serve"), "{message}");
}

#[test]
fn a_schedule_only_template_is_served() {
    let template = parse(
        r#"
Resources:
  Worker:
    Type: AWS::Serverless::Function
    Properties:
      CodeUri: functions/worker
      Events:
        Tick: { Type: Schedule, Properties: { Schedule: rate(1 minute) } }
"#,
    )
    .expect("parses");
    assert!(template.routes.is_empty());
    assert!(template.websocket.is_none());
    assert_eq!(template.schedules.len(), 1);
    assert_eq!(template.schedules[0].function, "worker");
}

#[test]
fn fixture_schedules_and_notes() {
    let template = parse(FIXTURE).expect("fixture parses");
    let schedules: Vec<(String, String, bool)> = template
        .schedules
        .iter()
        .map(|s| (s.id(), s.function.clone(), s.enabled))
        .collect();
    assert_eq!(
        schedules,
        [
            (
                "AppointmentsFunction.Nightly".to_owned(),
                "appointments".to_owned(),
                true
            ),
            ("WorkerFunction.Tick".to_owned(), "worker".to_owned(), true),
        ]
    );
    assert_eq!(
        template.schedules[1].timing,
        Timing::Rate(std::time::Duration::from_secs(60))
    );
    assert!(matches!(template.schedules[0].timing, Timing::Cron(_)));
    // Globals.Function.Timeout applies to functions without their own.
    assert_eq!(
        template.schedules[1].timeout,
        Some(std::time::Duration::from_secs(29))
    );
    // The fixture's WebSocket API has no routes yet: served, with a note.
    let api = template.websocket.expect("websocket api");
    assert!(api.routes.is_empty());
    assert_eq!(api.stage, "local");
    assert!(
        template
            .notes
            .iter()
            .any(|n| n.contains("no AWS::ApiGatewayV2::Route")),
        "{:?}",
        template.notes
    );
}

#[test]
fn websocket_fixture_resolves_route_keys_to_binaries() {
    let template = parse(WEBSOCKET_FIXTURE).expect("fixture parses");
    let api = template.websocket.expect("websocket api");
    assert_eq!(api.resource, "WsApi");
    assert_eq!(
        api.stage, "prod",
        "StageName: !Ref Stage resolves to its Default"
    );
    assert_eq!(api.selection.to_string(), "$request.body.action");
    let routes: Vec<(&str, &str, bool)> = api
        .routes
        .iter()
        .map(|r| (r.key.as_str(), r.function.as_str(), r.two_way))
        .collect();
    assert_eq!(
        routes,
        [
            ("$connect", "ws-connect", false),
            ("$disconnect", "ws-disconnect", false),
            ("$default", "ws-default", true),
            ("sendMessage", "ws-custom", false),
        ]
    );
    assert!(template.notes.is_empty(), "{:?}", template.notes);
}

#[test]
fn the_repository_template_loads() {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../template.yaml");
    let template = match load(&path) {
        Ok(template) => template,
        Err(error) => panic!("{}", chain(&error)),
    };
    assert!(template.routes.find(&Method::GET, "/health").is_some());
    // One tick at a time locally, and WorkerMaxDrains' default of drains, as the default
    // ReserveConcurrency deploys.
    for (name, reserved) in [("scheduler", 1), ("worker", 3)] {
        let function = template
            .functions
            .iter()
            .find(|function| function.name == name)
            .unwrap_or_else(|| panic!("no {name}"));
        assert_eq!(function.reserved_concurrency, Some(reserved), "{name}");
    }
    for schedule in &template.schedules {
        assert!(
            !matches!(schedule.timing, Timing::ManualOnly(_)),
            "{} is not ticked locally",
            schedule.id()
        );
    }
}

#[test]
fn websocket_mistakes_name_the_place() {
    let api = r#"
  Api:
    Type: AWS::ApiGatewayV2::Api
    Properties: { ProtocolType: WEBSOCKET, RouteSelectionExpression: "$request.body.action" }
  Fn:
    Type: AWS::Serverless::Function
    Properties: { CodeUri: functions/fn }
  Integ:
    Type: AWS::ApiGatewayV2::Integration
    Properties:
      ApiId: !Ref Api
      IntegrationType: AWS_PROXY
      IntegrationUri: !Sub "arn:aws:apigateway:eu-west-1:lambda:path/2015-03-31/functions/${Fn.Arn}/invocations"
"#;
    let with = |extra: &str| format!("Resources:{api}{extra}");
    let cases = [
        (
            with(
                r#"
  R:
    Type: AWS::ApiGatewayV2::Route
    Properties: { ApiId: !Ref Api, RouteKey: $connect, Target: !Sub "integrations/${Nope}" }
"#,
            ),
            "Resources.R.Properties.Target: names no AWS::ApiGatewayV2::Integration",
        ),
        (
            with(
                r#"
  R:
    Type: AWS::ApiGatewayV2::Route
    Properties: { ApiId: !Ref Api, RouteKey: $connect }
"#,
            ),
            "Resources.R.Properties.Target: missing",
        ),
        (
            with(
                r#"
  R:
    Type: AWS::ApiGatewayV2::Route
    Properties: { ApiId: !Ref Api, RouteKey: $conect, Target: !Sub "integrations/${Integ}" }
"#,
            ),
            "`$conect`: the only $-keys are",
        ),
        (
            with(
                r#"
  R:
    Type: AWS::ApiGatewayV2::Route
    Properties: { ApiId: !Ref Api, RouteKey: send, Target: !Sub "integrations/${Integ}" }
  R2:
    Type: AWS::ApiGatewayV2::Route
    Properties: { ApiId: !Ref Api, RouteKey: send, Target: !Sub "integrations/${Integ}" }
"#,
            ),
            "`send` is also the key of R",
        ),
        (
            with(
                r#"
  Other:
    Type: AWS::ApiGatewayV2::Integration
    Properties: { ApiId: !Ref Api, IntegrationType: AWS_PROXY, IntegrationUri: "arn:aws:lambda:eu-west-1:1:function:x" }
  R:
    Type: AWS::ApiGatewayV2::Route
    Properties: { ApiId: !Ref Api, RouteKey: send, Target: !Sub "integrations/${Other}" }
"#,
            ),
            "Resources.Other.Properties.IntegrationUri: names no AWS::Serverless::Function",
        ),
        (
            with(
                r#"
  Mock:
    Type: AWS::ApiGatewayV2::Integration
    Properties: { ApiId: !Ref Api, IntegrationType: MOCK }
  R:
    Type: AWS::ApiGatewayV2::Route
    Properties: { ApiId: !Ref Api, RouteKey: send, Target: !Sub "integrations/${Mock}" }
"#,
            ),
            "only AWS_PROXY",
        ),
        (
            r#"
Resources:
  Api:
    Type: AWS::ApiGatewayV2::Api
    Properties: { ProtocolType: WEBSOCKET, RouteSelectionExpression: "$request.header.x" }
"#
            .to_owned(),
            "RouteSelectionExpression: `$request.header.x` is not supported",
        ),
        (
            r#"
Resources:
  A:
    Type: AWS::ApiGatewayV2::Api
    Properties: { ProtocolType: WEBSOCKET, RouteSelectionExpression: "$request.body.action" }
  B:
    Type: AWS::ApiGatewayV2::Api
    Properties: { ProtocolType: WEBSOCKET, RouteSelectionExpression: "$request.body.action" }
"#
            .to_owned(),
            "several WebSocket APIs (A, B)",
        ),
    ];
    for (yaml, expected) in cases {
        let message = parse_err(&yaml);
        assert!(
            message.contains(expected),
            "expected {expected:?} in {message:?}"
        );
    }

    // Half a route response, an authorizer, SAM's WebSocketApi: served, with notes.
    let template = parse(&with(
        r#"
  R:
    Type: AWS::ApiGatewayV2::Route
    Properties:
      ApiId: !Ref Api
      RouteKey: $connect
      AuthorizationType: CUSTOM
      RouteResponseSelectionExpression: $default
      Target: !Sub "integrations/${Integ}"
"#,
    ))
    .expect("parses");
    let notes = template.notes.join("\n");
    assert!(
        notes.contains("AuthorizationType CUSTOM is not emulated"),
        "{notes}"
    );
    assert!(notes.contains("$connect is one-way"), "{notes}");
    assert!(notes.contains("no AWS::ApiGatewayV2::Stage"), "{notes}");
    let template = parse(
        r#"
Resources:
  Ws:
    Type: AWS::Serverless::WebSocketApi
    Properties: { RouteSelectionExpression: "$request.body.action" }
  Fn:
    Type: AWS::Serverless::Function
    Properties:
      CodeUri: functions/fn
      Events:
        Tick: { Type: Schedule, Properties: { Schedule: rate(5 minutes) } }
"#,
    )
    .expect("parses");
    assert!(template.websocket.is_none());
    assert!(template.notes[0].contains("AWS::Serverless::WebSocketApi is not read"));
}

#[test]
fn schedule_events() {
    let template = parse(SCHEDULES_FIXTURE).expect("fixture parses");
    let find = |id: &str| {
        template
            .schedules
            .iter()
            .find(|s| s.id() == id)
            .unwrap_or_else(|| panic!("{id}"))
    };
    assert!(!find("DisabledFunction.Tick").enabled);
    assert_eq!(find("SlowFunction.Tick").function, "slow");
    assert_eq!(
        find("SlowFunction.Tick").timeout,
        Some(std::time::Duration::from_secs(20))
    );
    let morning = find("ReportsFunction.Morning");
    assert_eq!(morning.source, crate::schedule::ScheduleSource::Scheduler);
    assert_eq!(
        morning.input,
        Some(serde_json::json!({"task": "morning-report"}))
    );
    assert!(matches!(morning.timing, Timing::Cron(_)));
    let evening = find("ReportsFunction.Evening");
    assert!(!evening.enabled);
    assert!(matches!(evening.timing, Timing::ManualOnly(_)));

    let schedule = |properties: &str| {
        format!(
            r#"
Resources:
  Fn:
    Type: AWS::Serverless::Function
    Properties:
      CodeUri: functions/fn
      Events:
        Tick: {{ Type: Schedule, Properties: {properties} }}
"#
        )
    };
    for (properties, expected) in [
        (
            "{ Schedule: rate(1 minutes) }",
            "Resources.Fn.Properties.Events.Tick.Properties.Schedule: `rate(1 minutes)`",
        ),
        (
            "{ Schedule: cron(0 3 * * * *) }",
            "exactly one of day-of-month and day-of-week must be `?`",
        ),
        ("{ Enabled: false }", "Properties.Schedule: missing"),
        (
            "{ Schedule: rate(1 day), Enabled: maybe }",
            "Properties.Enabled: must be true or false",
        ),
        (
            "{ Schedule: rate(1 day), Input: '{not json' }",
            "Properties.Input: is not valid JSON",
        ),
        (
            "{ Schedule: rate(1 day), Input: { a: 1 } }",
            "Properties.Input: must be a JSON document written as a string",
        ),
    ] {
        let message = parse_err(&schedule(properties));
        assert!(
            message.contains(expected),
            "expected {expected:?} in {message:?}"
        );
    }
    let message = parse_err(
        r#"
Resources:
  Fn:
    Type: AWS::Serverless::Function
    Properties:
      CodeUri: !Sub "${AWS::StackName}"
      Events:
        Tick: { Type: Schedule, Properties: { Schedule: rate(1 minute) } }
"#,
    );
    assert!(
        message.contains("Resources.Fn.Properties.CodeUri"),
        "{message}"
    );
}

#[test]
fn malformed_templates_name_the_place() {
    let cases = [
        ("Resources: []", "Resources: missing, or not a mapping"),
        (
            r#"
Resources:
  Fn:
    Type: AWS::Serverless::Function
    Properties:
      CodeUri: !Sub "functions/${Name}"
      Events:
        Get: { Type: HttpApi, Properties: { Path: /x, Method: GET } }
"#,
            "Resources.Fn.Properties.CodeUri: must be a plain string",
        ),
        (
            r#"
Resources:
  Fn:
    Type: AWS::Serverless::Function
    Properties:
      CodeUri: functions/x
      Events:
        Get: { Type: HttpApi, Properties: { Path: /x } }
"#,
            "Resources.Fn.Properties.Events.Get.Properties: set both `Path` and `Method`",
        ),
        (
            r#"
Resources:
  Fn:
    Type: AWS::Serverless::Function
    Properties:
      CodeUri: functions/x
      Events:
        Get: { Type: HttpApi, Properties: { Path: /x/, Method: GET } }
"#,
            "Resources.Fn.Properties.Events.Get.Properties.Path: invalid path `/x/`",
        ),
        (
            r#"
Resources:
  Fn:
    Type: AWS::Serverless::Function
    Properties:
      CodeUri: functions/x
      Events:
        Get: { Type: HttpApi, Properties: { Path: /x, Method: FETCH } }
"#,
            "Resources.Fn.Properties.Events.Get.Properties.Method: unsupported method `FETCH`",
        ),
        (
            r#"
Resources:
  Fn:
    Type: AWS::Serverless::Function
    Properties:
      CodeUri: functions/x
      Events:
        Get: { Type: HttpApi, Properties: { Path: !Sub "/x", Method: GET } }
"#,
            "Resources.Fn.Properties.Events.Get.Properties.Path: must be a plain string",
        ),
        (
            r#"
Resources:
  Api:
    Type: AWS::Serverless::HttpApi
    Properties:
      CorsConfiguration:
        AllowOrigins: ["*"]
        AllowCredentials: true
  Fn:
    Type: AWS::Serverless::Function
    Properties:
      CodeUri: functions/x
      Events:
        Get: { Type: HttpApi, Properties: { Path: /x, Method: GET } }
"#,
            "Resources.Api.Properties.CorsConfiguration: AllowCredentials cannot be true",
        ),
        ("Resources: {a: [", "not valid YAML"),
    ];
    for (yaml, expected) in cases {
        let message = parse_err(yaml);
        assert!(
            message.contains(expected),
            "expected {expected:?} in {message:?}"
        );
    }
}

#[test]
fn an_if_on_a_condition_of_the_defaults_is_resolved() {
    let with_default = |reserve: &str| {
        format!(
            r#"
Parameters:
  Reserve: {{ Type: String, Default: "{reserve}", AllowedValues: ["true", "false"] }}
  Stage: {{ Type: String, Default: dev }}
Conditions:
  Reserves: !Equals [!Ref Reserve, "true"]
  NotProd: !Not [!Equals [!Ref Stage, prod]]
  Both: !And [!Condition Reserves, !Condition NotProd]
  Unknowable: !Equals [!Ref AWS::Region, eu-west-1]
Resources:
  Worker:
    Type: AWS::Serverless::Function
    Properties:
      CodeUri: functions/worker
      Timeout: !If [Both, 300, 60]
      ReservedConcurrentExecutions: !If [Reserves, 1, !Ref AWS::NoValue]
      MemorySize: !If [Unknowable, 512, 256]
      Events:
        Tick: {{ Type: Schedule, Properties: {{ Schedule: rate(1 minute) }} }}
"#
        )
    };
    let reserved = parse(&with_default("true")).expect("parses");
    let worker = &reserved.functions[0];
    assert_eq!(worker.reserved_concurrency, Some(1));
    assert_eq!(worker.timeout, Duration::from_secs(300));
    // A condition on what only a deploy knows leaves the property to Lambda's default.
    assert_eq!(worker.memory_mb, 128);

    let unreserved = parse(&with_default("false")).expect("parses");
    let worker = &unreserved.functions[0];
    // `!Ref AWS::NoValue`: no reservation, as in the cloud.
    assert_eq!(worker.reserved_concurrency, None);
    assert_eq!(worker.timeout, Duration::from_secs(60));
}
