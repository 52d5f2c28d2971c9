//! End-to-end: WebSocket clients and the real AWS SDK against the gateway, in front of a fake
//! Invoke API (`--invoke-url`) whose scripted functions record the events they get.

mod common;

use std::time::Duration;

use aws_lambda_events::apigw::ApiGatewayWebsocketProxyRequest;
use aws_sdk_apigatewaymanagement::Client as ManagementClient;
use aws_sdk_apigatewaymanagement::config::{BehaviorVersion, Credentials, Region};
use aws_sdk_apigatewaymanagement::operation::delete_connection::DeleteConnectionError;
use aws_sdk_apigatewaymanagement::operation::get_connection::GetConnectionError;
use aws_sdk_apigatewaymanagement::operation::post_to_connection::PostToConnectionError;
use aws_sdk_apigatewaymanagement::primitives::Blob;
use common::{
    FakeWatch, client, config, encode_path_segment, start_fake_watch, start_gateway,
    start_gateway_until,
};
use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use std::net::SocketAddr;
use std::sync::Arc;
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::protocol::frame::{Frame, FrameHeader};
use tokio_tungstenite::tungstenite::{Error as WsError, Message};
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

type Socket = WebSocketStream<MaybeTlsStream<TcpStream>>;

/// Generous: the machine running the tests is shared and slow; the waits end as soon as the
/// awaited frame arrives.
const WAIT: Duration = Duration::from_secs(10);

struct Setup {
    ws: SocketAddr,
    watch: Arc<FakeWatch>,
}

async fn setup_with(fixture: &str, tweak: impl FnOnce(&mut pulso_gateway::cli::Config)) -> Setup {
    let (watch_addr, watch) = start_fake_watch().await;
    let mut config = config(fixture, watch_addr);
    tweak(&mut config);
    let running = start_gateway(&config).await;
    watch.set_gateway_ws(running.ws);
    Setup {
        ws: running.ws(),
        watch,
    }
}

async fn setup() -> Setup {
    setup_with("websocket.yaml", |_| {}).await
}

async fn connect(ws: SocketAddr, path_and_query: &str) -> Socket {
    match tokio_tungstenite::connect_async(format!("ws://{ws}{path_and_query}")).await {
        Ok((socket, response)) => {
            assert_eq!(response.status(), 101);
            socket
        }
        Err(error) => panic!("connect {path_and_query}: {error}"),
    }
}

/// The next text frame, skipping control frames.
async fn next_text(socket: &mut Socket) -> String {
    let read = async {
        loop {
            match socket.next().await {
                Some(Ok(Message::Text(text))) => return text.to_string(),
                Some(Ok(Message::Ping(_) | Message::Pong(_))) => continue,
                other => panic!("expected a text frame, got {other:?}"),
            }
        }
    };
    tokio::time::timeout(WAIT, read)
        .await
        .expect("a text frame in time")
}

/// Reads until the server's close frame; its code and reason.
async fn next_close(socket: &mut Socket) -> (u16, String) {
    let read = async {
        loop {
            match socket.next().await {
                Some(Ok(Message::Close(Some(frame)))) => {
                    return (u16::from(frame.code), frame.reason.to_string());
                }
                Some(Ok(Message::Close(None))) => return (1005, String::new()),
                Some(Ok(_)) => continue,
                other => panic!("expected a close frame, got {other:?}"),
            }
        }
    };
    tokio::time::timeout(WAIT, read)
        .await
        .expect("a close frame in time")
}

/// The id `$connect` was given for the newest connection.
async fn last_connection_id(watch: &FakeWatch, connects: usize) -> String {
    let events = watch.wait_for("ws-connect", connects).await;
    events[connects - 1]["requestContext"]["connectionId"]
        .as_str()
        .expect("connectionId")
        .to_owned()
}

/// A message event (ws-default, ws-custom) whose body is `body`.
async fn message_event(watch: &FakeWatch, function: &str, body: &str) -> Value {
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        if let Some(event) = watch
            .invocations(function)
            .into_iter()
            .find(|e| e["body"] == body)
        {
            return event;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "{function} never got {body:?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// The `$disconnect` event of `connection_id`.
async fn disconnect_event(watch: &FakeWatch, connection_id: &str) -> Value {
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        if let Some(event) = watch
            .invocations("ws-disconnect")
            .into_iter()
            .find(|e| e["requestContext"]["connectionId"] == connection_id)
        {
            return event;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "no $disconnect for {connection_id}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn is_api_gateway_id(id: &str) -> bool {
    id.len() == 16
        && id.ends_with('=')
        && id[..15]
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '+' || c == '/')
}

#[tokio::test]
async fn connect_event_has_the_api_gateway_shape() {
    let setup = setup().await;
    let before = chrono::Utc::now().timestamp_millis();
    let _socket = connect(setup.ws, "/?token=good&clinic=sonrisa&clinic=alameda").await;
    let events = setup.watch.wait_for("ws-connect", 1).await;
    let event = &events[0];

    // What the functions parse it with.
    let parsed: ApiGatewayWebsocketProxyRequest =
        serde_json::from_value(event.clone()).expect("deserializes like on AWS");
    assert_eq!(parsed.query_string_parameters.first("token"), Some("good"));
    assert_eq!(
        parsed.request_context.route_key.as_deref(),
        Some("$connect")
    );
    assert!(parsed.body.is_none());
    assert!(!parsed.is_base64_encoded);

    let context = &event["requestContext"];
    assert_eq!(context["routeKey"], "$connect");
    assert_eq!(context["eventType"], "CONNECT");
    assert_eq!(context["messageDirection"], "IN");
    assert_eq!(context["stage"], "prod", "StageName from the template");
    assert_eq!(context["apiId"], "local");
    assert_eq!(context["domainName"], setup.ws.to_string());
    assert_eq!(context["identity"]["sourceIp"], "127.0.0.1");
    let id = context["connectionId"].as_str().expect("connectionId");
    assert!(is_api_gateway_id(id), "{id}");
    let request_id = context["requestId"].as_str().expect("requestId");
    assert!(is_api_gateway_id(request_id), "{request_id}");
    assert_eq!(context["extendedRequestId"], request_id);
    for field in ["connectedAt", "requestTimeEpoch"] {
        let millis = context[field]
            .as_i64()
            .unwrap_or_else(|| panic!("{field} is a number"));
        assert!(
            millis >= before && millis <= before + 60_000,
            "{field} {millis}"
        );
    }
    let time = context["requestTime"].as_str().expect("requestTime");
    assert!(
        chrono::DateTime::parse_from_str(time, "%d/%b/%Y:%H:%M:%S %z").is_ok(),
        "{time}"
    );

    let headers = &event["headers"];
    assert_eq!(headers["Host"], setup.ws.to_string());
    assert!(headers["Sec-WebSocket-Key"].is_string(), "{headers}");
    assert_eq!(headers["Sec-WebSocket-Version"], "13");
    assert_eq!(headers["X-Forwarded-For"], "127.0.0.1");
    assert_eq!(headers["X-Forwarded-Port"], setup.ws.port().to_string());
    assert!(
        headers["X-Amzn-Trace-Id"]
            .as_str()
            .is_some_and(|t| t.starts_with("Root=1-")),
        "{headers}"
    );
    assert!(headers.get("Upgrade").is_none() && headers.get("Connection").is_none());
    assert_eq!(
        event["multiValueHeaders"]["Sec-WebSocket-Version"],
        json!(["13"])
    );
    assert_eq!(event["queryStringParameters"]["token"], "good");
    assert_eq!(event["queryStringParameters"]["clinic"], "alameda");
    assert_eq!(
        event["multiValueQueryStringParameters"]["clinic"],
        json!(["sonrisa", "alameda"])
    );
    assert_eq!(event["isBase64Encoded"], false);
}

#[tokio::test]
async fn connect_refused_with_the_functions_status_and_body() {
    let setup = setup().await;
    for query in ["/?token=refuse", "/"] {
        match tokio_tungstenite::connect_async(format!("ws://{}{query}", setup.ws)).await {
            Err(WsError::Http(response)) => {
                assert_eq!(response.status(), 401, "{query}");
                assert_eq!(response.headers()["content-type"], "application/json");
                let body = response.body().clone().unwrap_or_default();
                assert_eq!(body, br#"{"message":"Unauthorized"}"#);
            }
            other => panic!("{query}: expected a refused handshake, got {other:?}"),
        }
    }
    setup.watch.wait_for("ws-connect", 2).await;
    // A refused connection never existed: no $disconnect.
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(setup.watch.invocations("ws-disconnect").is_empty());
}

#[tokio::test]
async fn connect_function_error_is_a_502() {
    let setup = setup().await;
    match tokio_tungstenite::connect_async(format!("ws://{}/?token=crash", setup.ws)).await {
        Err(WsError::Http(response)) => {
            assert_eq!(response.status(), 502);
            let body = response.body().clone().unwrap_or_default();
            assert_eq!(body, br#"{"message":"Internal server error"}"#);
        }
        other => panic!("expected a refused handshake, got {other:?}"),
    }
}

#[tokio::test]
async fn connect_answer_headers_reach_the_handshake() {
    let setup = setup().await;
    let mut request = format!("ws://{}/prod?token=protocol", setup.ws)
        .into_client_request()
        .expect("request");
    request.headers_mut().insert(
        "sec-websocket-protocol",
        "pulso.v1".parse().expect("header"),
    );
    let (_socket, response) = tokio_tungstenite::connect_async(request)
        .await
        .expect("handshake with the protocol ws-connect chose");
    assert_eq!(response.headers()["sec-websocket-protocol"], "pulso.v1");
    let events = setup.watch.wait_for("ws-connect", 1).await;
    assert_eq!(events[0]["headers"]["Sec-WebSocket-Protocol"], "pulso.v1");
}

#[tokio::test]
async fn stage_path_and_non_websocket_requests() {
    let setup = setup().await;
    // The path AWS gives (wss://…/prod) works like `/`.
    let _socket = connect(setup.ws, "/prod?token=good").await;
    match tokio_tungstenite::connect_async(format!("ws://{}/dev?token=good", setup.ws)).await {
        Err(WsError::Http(response)) => assert_eq!(response.status(), 403),
        other => panic!("another stage must be refused, got {other:?}"),
    }
    let response = client()
        .get(format!("http://{}/", setup.ws))
        .send()
        .await
        .expect("plain GET");
    assert_eq!(response.status(), 426);
    let response = client()
        .get(format!("http://{}/somewhere/else", setup.ws))
        .send()
        .await
        .expect("plain GET");
    assert_eq!(response.status(), 403);
    assert_eq!(response.headers()["x-amzn-errortype"], "ForbiddenException");
}

#[tokio::test]
async fn a_post_during_connect_is_gone() {
    let setup = setup().await;
    let mut socket = connect(setup.ws, "/?token=post-self").await;
    let early = setup.watch.early_post.lock().map(|s| *s).ok().flatten();
    assert_eq!(
        early,
        Some(410),
        "the id must not be live before $connect returns"
    );
    // Nothing that was posted too early arrives later.
    socket.send(Message::text("after")).await.expect("send");
    assert_eq!(next_text(&mut socket).await, "echo:after");
}

#[tokio::test]
async fn messages_are_routed_by_action_and_default_answers_through_its_route_response() {
    let setup = setup().await;
    let mut socket = connect(setup.ws, "/?token=good").await;
    let id = last_connection_id(&setup.watch, 1).await;

    // A custom route: its answer is not sent back (no route response).
    let custom = r#"{"action":"sendMessage","text":"hola"}"#;
    socket.send(Message::text(custom)).await.expect("send");
    let event = message_event(&setup.watch, "ws-custom", custom).await;
    let parsed: ApiGatewayWebsocketProxyRequest =
        serde_json::from_value(event.clone()).expect("deserializes like on AWS");
    assert_eq!(
        parsed.request_context.route_key.as_deref(),
        Some("sendMessage")
    );
    assert_eq!(
        parsed.request_context.event_type.as_deref(),
        Some("MESSAGE")
    );
    assert_eq!(
        parsed.request_context.connection_id.as_deref(),
        Some(id.as_str())
    );
    let message_id = event["requestContext"]["messageId"]
        .as_str()
        .expect("messageId");
    assert!(is_api_gateway_id(message_id), "{message_id}");
    assert!(event["requestContext"]["connectedAt"].is_i64());
    assert!(event["requestContext"]["requestTimeEpoch"].is_i64());
    assert!(event.get("headers").is_none(), "messages carry no headers");
    assert!(event.get("queryStringParameters").is_none());

    // Plain text, unknown action: $default, whose body comes back.
    for body in [
        "plain text",
        r#"{"action":"nope"}"#,
        r#"{"action":"$connect"}"#,
    ] {
        socket.send(Message::text(body)).await.expect("send");
        assert_eq!(next_text(&mut socket).await, format!("echo:{body}"));
        let event = message_event(&setup.watch, "ws-default", body).await;
        assert_eq!(event["requestContext"]["routeKey"], "$default");
    }
}

#[tokio::test]
async fn a_failing_function_answers_internal_server_error() {
    let setup = setup().await;
    let mut socket = connect(setup.ws, "/?token=good").await;
    let id = last_connection_id(&setup.watch, 1).await;
    socket.send(Message::text("fail")).await.expect("send");
    let frame: Value = serde_json::from_str(&next_text(&mut socket).await).expect("json frame");
    assert_eq!(frame["message"], "Internal server error");
    assert_eq!(frame["connectionId"], id);
    assert!(frame["requestId"].is_string());
    // The connection stays open.
    socket
        .send(Message::text("still here"))
        .await
        .expect("send");
    assert_eq!(next_text(&mut socket).await, "echo:still here");
}

#[tokio::test]
async fn no_matching_route_and_no_default_is_forbidden() {
    // No $connect route either: the handshake needs no function.
    let setup = setup_with("ws-minimal.yaml", |_| {}).await;
    let mut socket = connect(setup.ws, "/local").await;
    socket.send(Message::text("hello")).await.expect("send");
    let frame: Value = serde_json::from_str(&next_text(&mut socket).await).expect("json frame");
    assert_eq!(frame["message"], "Forbidden");
    assert!(frame["connectionId"].is_string() && frame["requestId"].is_string());
    socket
        .send(Message::text(r#"{"action":"sendMessage"}"#))
        .await
        .expect("send");
    setup.watch.wait_for("ws-custom", 1).await;
}

/// The SDK client exactly as a function builds it (websocket.md §3), pointed at the gateway.
async fn management_client(endpoint: &str) -> ManagementClient {
    let http_client = aws_smithy_http_client::Builder::new()
        .tls_provider(aws_smithy_http_client::tls::Provider::Rustls(
            aws_smithy_http_client::tls::rustls_provider::CryptoMode::Ring,
        ))
        .build_https();
    let sdk = aws_config::defaults(BehaviorVersion::latest())
        .region(Region::new("us-east-1"))
        .credentials_provider(Credentials::new("local", "local", None, None, "static"))
        .http_client(http_client)
        .load()
        .await;
    let conf = aws_sdk_apigatewaymanagement::config::Builder::from(&sdk)
        .endpoint_url(endpoint)
        .build();
    ManagementClient::from_conf(conf)
}

#[tokio::test]
async fn the_real_sdk_posts_gets_deletes_and_sees_gone() {
    let setup = setup().await;
    let sdk = management_client(&format!("http://{}/prod", setup.ws)).await;
    let mut socket = connect(setup.ws, "/?token=good").await;
    let id = last_connection_id(&setup.watch, 1).await;

    // PostToConnection: the frame arrives, text when UTF-8, binary otherwise.
    sdk.post_to_connection()
        .connection_id(&id)
        .data(Blob::new(r#"{"kind":"document-ready"}"#))
        .send()
        .await
        .expect("post to a live connection");
    assert_eq!(next_text(&mut socket).await, r#"{"kind":"document-ready"}"#);
    sdk.post_to_connection()
        .connection_id(&id)
        .data(Blob::new(vec![0xff, 0x00, 0xfe]))
        .send()
        .await
        .expect("post binary");
    match tokio::time::timeout(WAIT, socket.next()).await {
        Ok(Some(Ok(Message::Binary(data)))) => assert_eq!(&data[..], [0xff, 0x00, 0xfe]),
        other => panic!("expected a binary frame, got {other:?}"),
    }

    // GetConnection.
    socket.send(Message::text("activity")).await.expect("send");
    assert_eq!(next_text(&mut socket).await, "echo:activity");
    let info = sdk
        .get_connection()
        .connection_id(&id)
        .send()
        .await
        .expect("get a live connection");
    let connected_at = info.connected_at().expect("connectedAt");
    let last_active_at = info.last_active_at().expect("lastActiveAt");
    assert!(last_active_at >= connected_at);
    let identity = info.identity().expect("identity");
    assert_eq!(identity.source_ip(), Some("127.0.0.1"));

    // DeleteConnection closes the socket, then $disconnect runs.
    sdk.delete_connection()
        .connection_id(&id)
        .send()
        .await
        .expect("delete a live connection");
    let (code, _) = next_close(&mut socket).await;
    assert_eq!(code, 1000);
    let event = disconnect_event(&setup.watch, &id).await;
    assert_eq!(event["requestContext"]["eventType"], "DISCONNECT");
    assert_eq!(event["requestContext"]["disconnectStatusCode"], 1000);

    // Gone, for every operation, as the SDK's modeled GoneException.
    let error = sdk
        .post_to_connection()
        .connection_id(&id)
        .data(Blob::new("late"))
        .send()
        .await
        .expect_err("a closed connection is gone");
    let service = error.into_service_error();
    assert!(service.is_gone_exception(), "{service:?}");
    assert!(matches!(service, PostToConnectionError::GoneException(_)));
    let error = sdk
        .get_connection()
        .connection_id(&id)
        .send()
        .await
        .expect_err("gone");
    assert!(matches!(
        error.into_service_error(),
        GetConnectionError::GoneException(_)
    ));
    let error = sdk
        .delete_connection()
        .connection_id(&id)
        .send()
        .await
        .expect_err("gone");
    assert!(matches!(
        error.into_service_error(),
        DeleteConnectionError::GoneException(_)
    ));
    // An id that never existed, with every character the SDK must percent-encode.
    let error = sdk
        .post_to_connection()
        .connection_id("ab+c/d=")
        .data(Blob::new("x"))
        .send()
        .await
        .expect_err("unknown id");
    assert!(error.into_service_error().is_gone_exception());

    // The endpoint without the stage works too.
    let no_stage = management_client(&format!("http://{}", setup.ws)).await;
    let mut socket = connect(setup.ws, "/?token=good").await;
    let id = last_connection_id(&setup.watch, 2).await;
    no_stage
        .post_to_connection()
        .connection_id(&id)
        .data(Blob::new("no stage"))
        .send()
        .await
        .expect("post without the stage prefix");
    assert_eq!(next_text(&mut socket).await, "no stage");
}

#[tokio::test]
async fn connections_api_answers_like_api_gateway() {
    let setup = setup().await;
    let http = client();
    let mut socket = connect(setup.ws, "/?token=good").await;
    let id = last_connection_id(&setup.watch, 1).await;
    let url = |id: &str| {
        format!(
            "http://{}/prod/@connections/{}",
            setup.ws,
            encode_path_segment(id)
        )
    };

    let response = http.post(url(&id)).body("hi").send().await.expect("post");
    assert_eq!(response.status(), 200);
    assert!(response.headers().contains_key("x-amzn-requestid"));
    assert_eq!(response.text().await.expect("body"), "");
    assert_eq!(next_text(&mut socket).await, "hi");

    // Over 128 KiB: 413 PayloadTooLargeException; exactly 128 KiB is fine.
    let response = http
        .post(url(&id))
        .body(vec![b'x'; 128 * 1024 + 1])
        .send()
        .await
        .expect("post");
    assert_eq!(response.status(), 413);
    assert_eq!(
        response.headers()["x-amzn-errortype"],
        "PayloadTooLargeException"
    );
    let response = http
        .post(url(&id))
        .body(vec![b'y'; 128 * 1024])
        .send()
        .await
        .expect("post");
    assert_eq!(response.status(), 200);
    assert_eq!(next_text(&mut socket).await.len(), 128 * 1024);

    // GET: ISO-8601 strings, as the SDK requires.
    let response = http
        .get(url(&id))
        .header("authorization", "AWS4-HMAC-SHA256 Credential=local/20260101/us-east-1/execute-api/aws4_request, SignedHeaders=host, Signature=0")
        .send()
        .await
        .expect("get");
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["content-type"], "application/json");
    let info: Value = response.json().await.expect("json");
    for field in ["connectedAt", "lastActiveAt"] {
        let text = info[field]
            .as_str()
            .unwrap_or_else(|| panic!("{field} is a string"));
        assert!(chrono::DateTime::parse_from_rfc3339(text).is_ok(), "{text}");
        assert!(text.ends_with('Z'), "{text}");
    }
    assert_eq!(info["identity"]["sourceIp"], "127.0.0.1");
    assert!(info["identity"]["userAgent"].is_null() || info["identity"]["userAgent"].is_string());

    // A wrong stage is API Gateway's 403 for an endpoint that is not there.
    let response = http
        .post(format!(
            "http://{}/dev/@connections/{}",
            setup.ws,
            encode_path_segment(&id)
        ))
        .body("x")
        .send()
        .await
        .expect("post");
    assert_eq!(response.status(), 403);
    assert_eq!(response.headers()["x-amzn-errortype"], "ForbiddenException");

    // DELETE: 204, then the socket closes and the id is gone.
    let response = http.delete(url(&id)).send().await.expect("delete");
    assert_eq!(response.status(), 204);
    assert_eq!(next_close(&mut socket).await.0, 1000);
    for response in [
        http.post(url(&id)).body("late").send().await.expect("post"),
        http.get(url(&id)).send().await.expect("get"),
        http.delete(url(&id)).send().await.expect("delete"),
        http.post(url("never-was="))
            .body("x")
            .send()
            .await
            .expect("post"),
    ] {
        assert_eq!(response.status(), 410);
        assert_eq!(response.headers()["x-amzn-errortype"], "GoneException");
        assert_eq!(response.headers()["content-type"], "application/json");
        assert!(response.headers().contains_key("x-amzn-requestid"));
        assert_eq!(
            response.text().await.expect("body"),
            r#"{"message":"Gone"}"#
        );
    }
}

#[tokio::test]
async fn disconnect_runs_after_the_client_closes() {
    let setup = setup().await;

    let mut socket = connect(setup.ws, "/?token=good").await;
    let id = last_connection_id(&setup.watch, 1).await;
    socket
        .close(Some(CloseFrame {
            code: CloseCode::Normal,
            reason: "bye".into(),
        }))
        .await
        .expect("close");
    let event = disconnect_event(&setup.watch, &id).await;
    let parsed: ApiGatewayWebsocketProxyRequest =
        serde_json::from_value(event.clone()).expect("deserializes like on AWS");
    assert_eq!(parsed.request_context.disconnect_status_code, Some(1000));
    assert_eq!(
        parsed.request_context.disconnect_reason.as_deref(),
        Some("bye")
    );
    assert_eq!(
        parsed.request_context.route_key.as_deref(),
        Some("$disconnect")
    );
    assert_eq!(event["headers"]["Host"], setup.ws.to_string());
    assert_eq!(event["headers"]["x-api-key"], "");

    // A close frame without a code: 1005, in API Gateway's words.
    let mut socket = connect(setup.ws, "/?token=good").await;
    let id = last_connection_id(&setup.watch, 2).await;
    socket.close(None).await.expect("close");
    let event = disconnect_event(&setup.watch, &id).await;
    assert_eq!(event["requestContext"]["disconnectStatusCode"], 1005);
    assert_eq!(
        event["requestContext"]["disconnectReason"],
        "Client-side close frame status not set"
    );

    // A client that vanishes without a closing handshake.
    let socket = connect(setup.ws, "/?token=good").await;
    let id = last_connection_id(&setup.watch, 3).await;
    drop(socket);
    let event = disconnect_event(&setup.watch, &id).await;
    assert_eq!(event["requestContext"]["disconnectStatusCode"], 1006);
}

#[tokio::test]
async fn binary_frames_close_with_1003() {
    let setup = setup().await;
    let mut socket = connect(setup.ws, "/?token=good").await;
    let id = last_connection_id(&setup.watch, 1).await;
    socket
        .send(Message::binary(vec![1u8, 2, 3]))
        .await
        .expect("send");
    assert_eq!(next_close(&mut socket).await.0, 1003);
    let event = disconnect_event(&setup.watch, &id).await;
    assert_eq!(event["requestContext"]["disconnectStatusCode"], 1003);
}

#[tokio::test]
async fn frames_over_32_kib_close_with_1009() {
    let setup = setup().await;
    let mut socket = connect(setup.ws, "/?token=good").await;
    let id = last_connection_id(&setup.watch, 1).await;
    // Exactly 32 KiB passes.
    let fits = "a".repeat(32 * 1024);
    socket
        .send(Message::text(fits.clone()))
        .await
        .expect("send");
    assert_eq!(next_text(&mut socket).await, format!("echo:{fits}"));
    socket
        .send(Message::text("b".repeat(32 * 1024 + 1)))
        .await
        .expect("send");
    assert_eq!(next_close(&mut socket).await.0, 1009);
    let event = disconnect_event(&setup.watch, &id).await;
    assert_eq!(event["requestContext"]["disconnectStatusCode"], 1009);
}

#[tokio::test]
async fn messages_over_128_kib_close_with_1009_even_in_small_frames() {
    let setup = setup().await;
    let mut socket = connect(setup.ws, "/?token=good").await;
    // 5 fragments of 30 KiB: each frame fits, the message (150 KiB) does not.
    let piece = vec![b'c'; 30 * 1024];
    for index in 0..5 {
        let header = FrameHeader {
            is_final: index == 4,
            opcode: if index == 0 {
                tokio_tungstenite::tungstenite::protocol::frame::coding::OpCode::Data(
                    tokio_tungstenite::tungstenite::protocol::frame::coding::Data::Text,
                )
            } else {
                tokio_tungstenite::tungstenite::protocol::frame::coding::OpCode::Data(
                    tokio_tungstenite::tungstenite::protocol::frame::coding::Data::Continue,
                )
            },
            ..FrameHeader::default()
        };
        let frame = Frame::from_payload(header, piece.clone().into());
        if socket.send(Message::Frame(frame)).await.is_err() {
            break;
        }
    }
    assert_eq!(next_close(&mut socket).await.0, 1009);
}

#[tokio::test]
async fn idle_connections_close_with_1001() {
    let setup = setup_with("websocket.yaml", |config| {
        config.ws_idle_timeout = Duration::from_millis(300);
    })
    .await;
    let mut socket = connect(setup.ws, "/?token=good").await;
    let id = last_connection_id(&setup.watch, 1).await;
    let (code, reason) = next_close(&mut socket).await;
    assert_eq!((code, reason.as_str()), (1001, "Going away"));
    let event = disconnect_event(&setup.watch, &id).await;
    assert_eq!(event["requestContext"]["disconnectStatusCode"], 1001);
}

#[tokio::test]
async fn busy_connections_still_end_at_the_maximum_duration() {
    let setup = setup_with("websocket.yaml", |config| {
        config.ws_max_duration = Duration::from_millis(800);
    })
    .await;
    let mut socket = connect(setup.ws, "/?token=good").await;
    // Keep it busy: activity resets the idle timer, never the hard limit.
    let read = async {
        loop {
            if socket.send(Message::text("keep-alive")).await.is_err() {
                return None;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
            loop {
                match tokio::time::timeout(Duration::from_millis(10), socket.next()).await {
                    Ok(Some(Ok(Message::Close(Some(frame))))) => {
                        return Some(u16::from(frame.code));
                    }
                    Ok(Some(Ok(_))) => continue,
                    Ok(_) => return None,
                    Err(_) => break,
                }
            }
        }
    };
    let code = tokio::time::timeout(WAIT, read)
        .await
        .expect("closed in time");
    assert_eq!(code, Some(1001));
}

#[tokio::test]
async fn websocket_is_off_without_a_websocket_api() {
    let (watch_addr, _watch) = start_fake_watch().await;
    let running = start_gateway(&config("gateway.yaml", watch_addr)).await;
    assert!(running.ws.is_none());
    assert!(
        running.summary.contains("WebSocket: off"),
        "{}",
        running.summary
    );
}

#[tokio::test]
async fn shutdown_closes_connections_and_runs_disconnect() {
    let (watch_addr, watch) = start_fake_watch().await;
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let (running, served) = start_gateway_until(&config("websocket.yaml", watch_addr), async {
        let _ = stopped.await;
    })
    .await;
    let mut socket = connect(running.ws(), "/?token=good").await;
    let id = last_connection_id(&watch, 1).await;
    let _ = stop.send(());
    assert_eq!(
        next_close(&mut socket).await,
        (1001, "Going away".to_owned())
    );
    let event = disconnect_event(&watch, &id).await;
    assert_eq!(event["requestContext"]["disconnectStatusCode"], 1001);
    let served = tokio::time::timeout(WAIT, served)
        .await
        .expect("the gateway stops");
    assert!(matches!(served, Ok(Ok(()))), "{served:?}");
}
