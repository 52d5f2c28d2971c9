//! The events must read as AWS's do, through aws_lambda_events and lambda_http, and the answers
//! lambda_http writes must come back as the responses AWS would send.

use std::convert::Infallible;

use aws_lambda_events::apigw::ApiGatewayV2httpRequest;
use chrono::TimeZone;
use http::header::{CACHE_CONTROL, VARY};
use lambda_http::request::{LambdaRequest, RequestOrigin};
use lambda_http::{Body as LambdaBody, Context, LambdaEvent, RequestExt, Service};

use super::*;

/// A request as the gateway receives it.
struct Incoming {
    method: Method,
    target: &'static str,
    headers: Vec<(&'static str, &'static str)>,
    body: Vec<u8>,
    route_key: &'static str,
    parameters: Vec<(&'static str, &'static str)>,
}

impl Incoming {
    fn new(method: Method, target: &'static str) -> Self {
        Self {
            method,
            target,
            headers: vec![("host", "127.0.0.1:3000")],
            body: Vec::new(),
            route_key: "$default",
            parameters: Vec::new(),
        }
    }

    fn post(content_type: &'static str, body: &[u8]) -> Self {
        let mut request = Self::new(Method::POST, "/xrays");
        request.headers.push(("content-type", content_type));
        request.body = body.to_vec();
        request
    }

    fn header(mut self, name: &'static str, value: &'static str) -> Self {
        self.headers.push((name, value));
        self
    }

    fn without_headers(mut self) -> Self {
        self.headers.clear();
        self
    }

    fn routed(mut self, key: &'static str, parameters: &[(&'static str, &'static str)]) -> Self {
        self.route_key = key;
        self.parameters = parameters.to_vec();
        self
    }

    fn event(&self) -> Value {
        let uri: Uri = self.target.parse().expect("test target");
        let mut headers = HeaderMap::new();
        for &(name, value) in &self.headers {
            headers.append(name, HeaderValue::from_static(value));
        }
        let parameters = self.parameters.iter();
        let parameters = parameters.map(|(name, value)| (name.to_string(), value.to_string()));
        http_event(&HttpEventInput {
            route_key: self.route_key,
            path_parameters: parameters.collect(),
            method: &self.method,
            uri: &uri,
            headers: &headers,
            body: &self.body,
            source_ip: Some(IpAddr::from([127, 0, 0, 1])),
            request_id: "req-1",
            stage: "$default",
            now: Utc
                .timestamp_millis_opt(1_584_039_838_390)
                .single()
                .expect("test time"),
        })
    }
}

fn patient_request() -> Incoming {
    Incoming::new(
        Method::GET,
        "/patients/J%C3%BCrgen?tag=a&tag=b&q=x+y%26z&empty=",
    )
    .routed("GET /patients/{id}", &[("id", "Jürgen")])
    .header("user-agent", "curl/8.7.1")
    .header("accept", "text/html")
    .header("accept", "application/json")
    .header("cookie", "session=abc; theme=dark")
    .header("cookie", "lang=es")
    .header("x-forwarded-for", "10.0.0.1")
    .header("connection", "keep-alive, x-hop")
    .header("x-hop", "for this connection only")
}

/// The request a function built on lambda_http gets from `event`.
fn lambda_http_request(event: &Value) -> lambda_http::Request {
    let request: LambdaRequest = serde_json::from_value(event.clone()).expect("lambda_http reads");
    assert!(matches!(
        request.request_origin(),
        RequestOrigin::ApiGatewayV2
    ));
    lambda_http::Request::from(request)
}

#[test]
fn get_event_has_the_fields_aws_sends() {
    assert_eq!(
        patient_request().event(),
        json!({
            "version": "2.0",
            "routeKey": "GET /patients/{id}",
            "rawPath": "/patients/J%C3%BCrgen",
            "rawQueryString": "tag=a&tag=b&q=x+y%26z&empty=",
            "cookies": ["session=abc", "theme=dark", "lang=es"],
            "headers": {
                "host": "127.0.0.1:3000",
                "user-agent": "curl/8.7.1",
                "accept": "text/html,application/json",
                "x-forwarded-for": "10.0.0.1, 127.0.0.1",
                "x-forwarded-proto": "http",
                "x-forwarded-port": "3000",
            },
            "queryStringParameters": { "tag": "a,b", "q": "x y&z", "empty": "" },
            "pathParameters": { "id": "Jürgen" },
            "requestContext": {
                "accountId": "123456789012",
                "apiId": "local",
                "domainName": "127.0.0.1",
                "domainPrefix": "127.0.0.1",
                "http": {
                    "method": "GET",
                    "path": "/patients/J%C3%BCrgen",
                    "protocol": "HTTP/1.1",
                    "sourceIp": "127.0.0.1",
                    "userAgent": "curl/8.7.1",
                },
                "requestId": "req-1",
                "routeKey": "GET /patients/{id}",
                "stage": "$default",
                "time": "12/Mar/2020:19:03:58 +0000",
                "timeEpoch": 1_584_039_838_390_i64,
            },
            "isBase64Encoded": false,
        })
    );
}

#[test]
fn what_there_is_none_of_is_left_out_not_null() {
    let event = Incoming::new(Method::GET, "/health").event();
    for absent in ["cookies", "queryStringParameters", "pathParameters", "body"] {
        assert!(event.get(absent).is_none(), "{absent} in {event}");
    }
    assert_eq!(event["rawQueryString"], "");
    assert_eq!(event["isBase64Encoded"], false);
    assert_eq!(event["headers"]["x-forwarded-port"], "3000");
}

#[test]
fn domain_comes_from_host_without_its_port() {
    let cases = [
        (Some("api.example.com"), "api.example.com", "api", "80"),
        (Some("localhost:3000"), "localhost", "localhost", "3000"),
        (Some("[::1]:3000"), "[::1]", "[::1]", "3000"),
        (None, "localhost", "localhost", "80"),
    ];
    for (host, domain, prefix, port) in cases {
        let mut request = Incoming::new(Method::GET, "/").without_headers();
        if let Some(host) = host {
            request = request.header("host", host);
        }
        let event = request.event();
        let context = &event["requestContext"];
        assert_eq!(context["domainName"], domain, "{host:?}");
        assert_eq!(context["domainPrefix"], prefix, "{host:?}");
        assert_eq!(event["headers"]["x-forwarded-port"], port, "{host:?}");
    }
}

#[test]
fn binary_post_is_base64() {
    let png = [0x89, b'P', b'N', b'G', 0x0d, 0x0a, 0x1a, 0x0a, 0x00, 0xff];
    let event = Incoming::post("image/png", &png).event();
    assert_eq!(event["isBase64Encoded"], true);
    assert_eq!(event["body"], BASE64.encode(png));

    let request = lambda_http_request(&event);
    assert_eq!(request.method(), Method::POST);
    assert_eq!(request.body().as_ref(), &png[..]);
}

#[test]
fn json_post_is_text() {
    let json = r#"{"name":"Jürgen"}"#;
    let event = Incoming::post("application/json; charset=utf-8", json.as_bytes()).event();
    assert_eq!(event["isBase64Encoded"], false);
    assert_eq!(event["body"], json);

    let request = lambda_http_request(&event);
    assert!(matches!(request.body(), LambdaBody::Text(text) if text == json));
}

#[test]
fn only_the_media_types_aws_treats_as_text_travel_as_text() {
    let cases: [(&str, &[u8], bool); 8] = [
        ("text/plain", b"hi", false),
        ("Text/CSV; charset=utf-8", b"a,b", false),
        ("application/xml", b"<a/>", false),
        ("application/javascript", b"f()", false),
        // Observed on AWS: form posts and JSON-suffixed types arrive base64.
        ("application/x-www-form-urlencoded", b"a=1", true),
        ("application/problem+json", b"{}", true),
        ("multipart/form-data; boundary=x", b"--x--", true),
        // A text type whose bytes are not UTF-8 could not be a JSON string.
        ("text/plain", b"caf\xe9", true),
    ];
    for (content_type, body, base64) in cases {
        let event = Incoming::post(content_type, body).event();
        assert_eq!(event["isBase64Encoded"], base64, "{content_type}");
        let request = lambda_http_request(&event);
        assert_eq!(request.body().as_ref(), body, "{content_type}");
    }
    let mut untyped = Incoming::new(Method::PUT, "/notes");
    untyped.body = b"plain".to_vec();
    assert_eq!(untyped.event()["isBase64Encoded"], true);
}

#[test]
fn event_reads_as_the_aws_lambda_events_type() {
    let event: ApiGatewayV2httpRequest =
        serde_json::from_value(patient_request().event()).expect("the type functions use");
    assert_eq!(event.route_key.as_deref(), Some("GET /patients/{id}"));
    assert_eq!(event.raw_path.as_deref(), Some("/patients/J%C3%BCrgen"));
    assert_eq!(event.request_context.http.method, Method::GET);
    assert_eq!(
        event.request_context.http.source_ip.as_deref(),
        Some("127.0.0.1")
    );
    assert_eq!(
        event.path_parameters.get("id").map(String::as_str),
        Some("Jürgen")
    );
    assert_eq!(event.query_string_parameters.first("q"), Some("x y&z"));
    assert_eq!(
        event.cookies,
        Some(vec![
            "session=abc".into(),
            "theme=dark".into(),
            "lang=es".into()
        ])
    );
    assert_eq!(event.request_context.time_epoch, 1_584_039_838_390);
}

#[test]
fn lambda_http_sees_the_request_the_client_sent() {
    let request = lambda_http_request(&patient_request().event());
    assert_eq!(request.method(), Method::GET);
    assert_eq!(
        request.uri().to_string(),
        "http://127.0.0.1:3000/patients/J%C3%BCrgen?tag=a&tag=b&q=x+y%26z&empty="
    );
    let query = request.query_string_parameters();
    assert_eq!(query.all("tag"), Some(vec!["a", "b"]));
    assert_eq!(query.first("q"), Some("x y&z"));
    assert_eq!(request.path_parameters().first("id"), Some("Jürgen"));
    let headers = request.headers();
    assert_eq!(headers["accept"], "text/html,application/json");
    assert_eq!(headers["cookie"], "session=abc; theme=dark; lang=es");
    assert_eq!(headers["x-forwarded-for"], "10.0.0.1, 127.0.0.1");
    assert!(!headers.contains_key("connection") && !headers.contains_key("x-hop"));
    assert!(request.body().is_empty());
}

fn response(output: Value) -> ApiResponse {
    http_response(output.to_string().as_bytes()).expect("a valid response")
}

fn all(headers: &HeaderMap, name: HeaderName) -> Vec<&str> {
    let values = headers.get_all(name).into_iter();
    values.map(|value| value.to_str().expect("ASCII")).collect()
}

#[test]
fn structured_response_gives_status_headers_and_body() {
    let answer = response(json!({
        "statusCode": 201,
        "headers": { "Content-Type": "application/json", "cache-control": "no-store, private" },
        "body": "{\"id\":1}",
        "isBase64Encoded": false,
    }));
    assert_eq!(answer.status, StatusCode::CREATED);
    assert_eq!(answer.headers[CONTENT_TYPE], "application/json");
    assert_eq!(all(&answer.headers, CACHE_CONTROL), ["no-store, private"]);
    assert_eq!(answer.body, r#"{"id":1}"#);
}

#[test]
fn each_cookie_becomes_a_set_cookie_before_those_in_headers() {
    let answer = response(json!({
        "statusCode": 200,
        "cookies": ["session=abc; Path=/; HttpOnly", "theme=dark"],
        "headers": { "Set-Cookie": "legacy=1" },
    }));
    assert_eq!(
        all(&answer.headers, SET_COOKIE),
        ["session=abc; Path=/; HttpOnly", "theme=dark", "legacy=1"]
    );
}

#[test]
fn base64_body_is_decoded() {
    let answer = response(json!({
        "statusCode": 200,
        "headers": { "content-type": "image/png" },
        "body": "iVBORw0KGgo=",
        "isBase64Encoded": true,
    }));
    assert_eq!(answer.body.as_ref(), b"\x89PNG\r\n\x1a\n");
}

#[test]
fn response_without_content_type_or_body_gets_aws_defaults() {
    let answer = response(json!({ "statusCode": 204 }));
    assert_eq!(answer.status, StatusCode::NO_CONTENT);
    assert_eq!(answer.headers[CONTENT_TYPE], "text/plain; charset=utf-8");
    assert!(answer.body.is_empty());
}

#[test]
fn framing_headers_of_the_function_are_not_passed_on() {
    let answer = response(json!({
        "statusCode": 200,
        "headers": { "content-length": "999", "transfer-encoding": "chunked", "x-id": "7" },
        "body": "short",
    }));
    assert!(!answer.headers.contains_key(CONTENT_LENGTH));
    assert!(!answer.headers.contains_key("transfer-encoding"));
    assert_eq!(answer.headers["x-id"], "7");
}

#[test]
fn json_without_status_code_is_a_200_json_body() {
    let cases: [(&str, &str); 4] = [
        (r#"{"message": "Hello"}"#, r#"{"message": "Hello"}"#),
        // A JSON string is the body itself, unquoted: the guide's own example.
        (r#""Hello from Lambda!""#, "Hello from Lambda!"),
        ("[1, 2]", "[1, 2]"),
        (r#"{"body": "x"}"#, r#"{"body": "x"}"#),
    ];
    for (output, body) in cases {
        let answer = http_response(output.as_bytes()).expect("inferred");
        assert_eq!(answer.status, StatusCode::OK, "{output}");
        assert_eq!(answer.headers[CONTENT_TYPE], "application/json", "{output}");
        assert_eq!(answer.body, body, "{output}");
    }
}

#[test]
fn invalid_outputs_name_what_is_wrong() {
    let statuses: [(&str, &str); 7] = [
        ("Hello", "not JSON"),
        ("", "not JSON"),
        (r#"{"statusCode": "200"}"#, "from 200 to 599, not `\"200\"`"),
        (r#"{"statusCode": null}"#, "not `null`"),
        (r#"{"statusCode": 100}"#, "not `100`"),
        (r#"{"statusCode": 600}"#, "not `600`"),
        (r#"{"statusCode": 200.5}"#, "not `200.5`"),
    ];
    // Each after `"statusCode": 200,`.
    let fields: [(&str, &str); 7] = [
        (r#""headers": ["a"]"#, "`headers` must be an object"),
        (r#""headers": {"x": 5}"#, "`headers.x` must be a string"),
        (r#""headers": {"x": "a\nb"}"#, "`headers.x`: not a valid"),
        (r#""cookies": [1]"#, "`cookies[0]` must be a string"),
        (r#""body": {"a": 1}"#, "`body` must be a string"),
        (r#""isBase64Encoded": 1"#, "`isBase64Encoded` must be"),
        (r#""isBase64Encoded": true, "body": "%""#, "not base64"),
    ];
    let fields =
        fields.map(|(field, message)| (format!(r#"{{"statusCode": 200, {field}}}"#), message));
    let statuses = statuses.map(|(output, message)| (output.to_owned(), message));
    for (output, message) in statuses.into_iter().chain(fields) {
        let error = http_response(output.as_bytes()).expect_err(&output);
        assert!(error.to_string().contains(message), "{output}: {error}");
    }
}

/// What lambda_http writes to the Runtime API when a handler returns `answer` to an HTTP API
/// event: the real adapter `lambda_http::run` uses, so the JSON is exactly what AWS would read.
async fn lambda_http_output(answer: http::Response<LambdaBody>) -> Vec<u8> {
    let event = Incoming::new(Method::GET, "/").event();
    let request: LambdaRequest = serde_json::from_value(event).expect("lambda_http reads");
    let mut answer = Some(answer);
    let handler = lambda_http::service_fn(move |_: lambda_http::Request| {
        let answer = answer.take().expect("one call");
        async move { Ok::<_, Infallible>(answer) }
    });
    let mut adapter = lambda_http::Adapter::from(handler);
    let output = adapter.call(LambdaEvent::new(request, Context::default()));
    let output = output.await.expect("the handler cannot fail");
    serde_json::to_vec(&output).expect("lambda_http's answer serializes")
}

#[tokio::test]
async fn lambda_http_answer_round_trips_with_cookies_and_headers() {
    let answer = http::Response::builder()
        .status(StatusCode::CREATED)
        .header(CONTENT_TYPE, "application/json")
        .header(SET_COOKIE, "session=abc; Path=/; HttpOnly")
        .header(SET_COOKIE, "theme=dark")
        .header(CACHE_CONTROL, "no-store, private")
        .header(VARY, "accept-encoding")
        .header(VARY, "origin")
        .body(LambdaBody::from(r#"{"id":1}"#))
        .expect("test response");
    let answer = http_response(&lambda_http_output(answer).await).expect("valid");

    assert_eq!(answer.status, StatusCode::CREATED);
    assert_eq!(answer.headers[CONTENT_TYPE], "application/json");
    assert_eq!(
        all(&answer.headers, SET_COOKIE),
        ["session=abc; Path=/; HttpOnly", "theme=dark"]
    );
    assert_eq!(all(&answer.headers, CACHE_CONTROL), ["no-store, private"]);
    // lambda_http 1.3.2 writes one value per header name in `headers` (aws_lambda_events'
    // serializer takes the first) and an empty `multiValueHeaders`: a repeated header other
    // than set-cookie reaches AWS with its first value only. Join them into one value instead.
    assert_eq!(all(&answer.headers, VARY), ["accept-encoding"]);
    assert_eq!(answer.body, r#"{"id":1}"#);
}

#[tokio::test]
async fn lambda_http_binary_answer_round_trips() {
    let png = b"\x89PNG\r\n\x1a\n\x00\xff".to_vec();
    let answer = http::Response::builder()
        .header(CONTENT_TYPE, "image/png")
        .body(LambdaBody::from(png.clone()))
        .expect("test response");
    let answer = http_response(&lambda_http_output(answer).await).expect("valid");
    assert_eq!(answer.status, StatusCode::OK);
    assert_eq!(answer.headers[CONTENT_TYPE], "image/png");
    assert_eq!(answer.body.as_ref(), &png[..]);
}

#[tokio::test]
async fn lambda_http_answer_without_content_type_gets_aws_default() {
    let answer = http::Response::new(LambdaBody::from("plain words"));
    let answer = http_response(&lambda_http_output(answer).await).expect("valid");
    assert_eq!(answer.headers[CONTENT_TYPE], "text/plain; charset=utf-8");
    assert_eq!(answer.body, "plain words");
}
