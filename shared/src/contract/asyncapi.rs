//! The WebSocket API's contract: an AsyncAPI 3.0 document generated from the frame and notice
//! types themselves (`crate::realtime::{ClientFrame, ServerFrame, Notice}`).
//!
//! Every variant of `ClientFrame` becomes a message the client sends, every variant of
//! `ServerFrame` one it receives, and the `notification` push is one message per
//! [`NotificationKind`], its `body` the schema of that kind's body type. A frame or kind added
//! in Rust therefore appears here by construction, and the tests below check real frames
//! against the messages. Committed at [`ASYNCAPI_PATH`]; a test fails when it drifts.

use crate::realtime::ws::REPLAY_LIMIT;
use crate::realtime::{
    CONNECTION_LIFETIME, ClientFrame, MESSAGE_LIMIT, NamedSchema, NotificationKind, ServerFrame,
};
use serde_json::{Map, Value, json};
use utoipa::ToSchema;

/// Where the document is committed, from the workspace's root.
pub const ASYNCAPI_PATH: &str = "docs/asyncapi.json";

/// The one channel: the connection itself.
const CHANNEL: &str = "notifications";

/// API Gateway's limit on one WebSocket frame (a message may span frames up to
/// [`MESSAGE_LIMIT`]).
const FRAME_LIMIT: usize = 32 * 1024;
/// API Gateway closes a connection that carried no frame for this long.
const IDLE_MINUTES: u64 = 10;

/// How a connection ends, as the client sees it. The codes are those the local gateway sends;
/// AWS documents the reasons, not the codes, so a client should act on the reason it can tell
/// (the last `error` frame, its own timer) rather than on the number.
const CLOSES: &[(u16, &str)] = &[
    (
        1001,
        "API Gateway ended the connection: 2 hours after it opened, or 10 minutes without a frame.",
    ),
    (
        1000,
        "Pulso closed it: its token expired (an `error` frame `token_expired` comes first). \
         Reconnect with a fresh token and `since`.",
    ),
    (
        1003,
        "The client sent a binary frame: only text frames are read.",
    ),
    (1009, "A frame over 32 KB or a message over 128 KB."),
];

/// The document, pretty JSON ending in a newline, as committed at [`ASYNCAPI_PATH`].
pub fn asyncapi_json() -> String {
    let mut json = serde_json::to_string_pretty(&asyncapi()).expect("the document serializes");
    json.push('\n');
    json
}

/// The WebSocket API's AsyncAPI 3.0 document.
pub fn asyncapi() -> Value {
    let mut schemas = Map::new();
    let mut messages = Map::new();
    let client = variants::<ClientFrame>("action", &mut schemas);
    let server = variants::<ServerFrame>("type", &mut schemas);

    let mut sent = Vec::new();
    for (action, payload) in client {
        let name = format!("client.{action}");
        sent.push(name.clone());
        messages.insert(name, message(&action, payload));
    }
    let mut answers = Vec::new();
    let mut pushes = Vec::new();
    for (kind, payload) in server {
        if kind == "notification" {
            for notification in NotificationKind::ALL {
                let name = format!("notification.{notification}");
                pushes.push(name.clone());
                let payload = notification_payload(&payload, notification, &mut schemas);
                let mut message = message(notification.as_str(), payload);
                message["summary"] = json!(notification.description());
                messages.insert(name, message);
            }
        } else {
            let name = format!("server.{kind}");
            answers.push(name.clone());
            messages.insert(name, message(&kind, payload));
        }
    }

    let channel_ref = json!({ "$ref": format!("#/channels/{CHANNEL}") });
    let message_ref =
        |name: &str| json!({ "$ref": format!("#/channels/{CHANNEL}/messages/{name}") });
    let mut operations = Map::new();
    for name in &sent {
        let action = name.trim_start_matches("client.");
        let mut replies = vec![message_ref("server.error")];
        let answer = format!("server.{action}");
        if action == "ping" {
            replies.insert(0, message_ref("server.pong"));
        } else if answers.contains(&answer) {
            replies.insert(0, message_ref(&answer));
        }
        operations.insert(
            action.to_owned(),
            json!({
                "action": "send",
                "channel": channel_ref,
                "summary": format!("Send `{action}`; the answer comes back on the same connection."),
                "messages": [message_ref(name)],
                "reply": { "channel": channel_ref, "messages": replies },
            }),
        );
    }
    operations.insert(
        "receiveNotification".into(),
        json!({
            "action": "receive",
            "channel": channel_ref,
            "summary": "A notification, pushed as it is stored in the caller's inbox.",
            "description": "Apply notifications by `id` and ignore ids already seen: a live \
                push may arrive before the replay that also carries it.",
            "messages": pushes.iter().map(|name| message_ref(name)).collect::<Vec<_>>(),
        }),
    );
    operations.insert(
        "receiveClosing".into(),
        json!({
            "action": "receive",
            "channel": channel_ref,
            "summary": "The last frame before Pulso closes a connection whose token expired \
                (`error` with code `token_expired`).",
            "messages": [message_ref("server.error")],
        }),
    );

    let channel_messages: Map<String, Value> = messages
        .keys()
        .map(|name| {
            let reference = json!({ "$ref": format!("#/components/messages/{name}") });
            (name.clone(), reference)
        })
        .collect();
    json!({
        "asyncapi": "3.0.0",
        "info": {
            "title": "Pulso WebSocket API",
            "version": env!("CARGO_PKG_VERSION"),
            "description": description(),
        },
        "defaultContentType": "application/json",
        "servers": {
            "aws": {
                "host": "{apiId}.execute-api.{region}.amazonaws.com",
                "protocol": "wss",
                "description": "The deployed API Gateway WebSocket API (`WebSocketUrl` in the \
                    stack's outputs).",
                "variables": {
                    "apiId": { "description": "The WebSocket API's id." },
                    "region": { "description": "The AWS region.", "default": "eu-west-1" },
                },
            },
            "local": {
                "host": "127.0.0.1:4401",
                "protocol": "ws",
                "description": "`infra/run-local`'s gateway (`WS_URL` in `.dev/env`; another \
                    port with `--ws-port`).",
            },
        },
        "channels": {
            CHANNEL: {
                "address": "/{stage}",
                "title": "A staff member's notifications",
                "description": channel_description(),
                "parameters": {
                    "stage": {
                        "description": "The deployment stage (template.yaml's `Stage`).",
                        "default": "dev",
                    },
                },
                "messages": channel_messages,
                "bindings": {
                    "ws": {
                        "method": "GET",
                        "query": {
                            "type": "object",
                            "required": ["token"],
                            "properties": {
                                "token": {
                                    "type": "string",
                                    "description": "The caller's JWT, as on the HTTP API \
                                        (browsers cannot set headers on a WebSocket).",
                                },
                                "clinic": {
                                    "type": "string",
                                    "format": "uuid",
                                    "description": "The clinic whose notifications the \
                                        connection receives, as `Pulso-Clinic` names it on the \
                                        HTTP API; may be left out by a caller with one clinic.",
                                },
                                "since": {
                                    "type": "integer",
                                    "format": "int64",
                                    "minimum": 0,
                                    "description": "The highest notification id the client \
                                        has seen: the default of this connection's `replay`.",
                                },
                            },
                        },
                        "bindingVersion": "0.1.0",
                    },
                },
                "x-close-codes": CLOSES
                    .iter()
                    .map(|(code, when)| json!({ "code": code, "when": when }))
                    .collect::<Vec<_>>(),
            },
        },
        "operations": operations,
        "components": { "messages": messages, "schemas": schemas },
    })
}

fn description() -> String {
    format!(
        "Live notifications for a clinic's staff. Every notification is stored in the caller's \
         inbox first (`GET /notifications` on the HTTP API), then pushed to the live \
         connections of its audience, so whatever a push missed is read back with `replay` or \
         over HTTP. Notifications carry ids, times and links, never names or clinical text. \
         Limits (API Gateway's): {hours} hours per connection, {IDLE_MINUTES} minutes idle \
         (send `ping` every few minutes), {message_kb} KB per message, {frame_kb} KB per frame; a \
         replay carries at most {REPLAY_LIMIT} notifications.",
        hours = CONNECTION_LIFETIME.as_secs() / 3600,
        message_kb = MESSAGE_LIMIT / 1024,
        frame_kb = FRAME_LIMIT / 1024,
    )
}

fn channel_description() -> &'static str {
    "The connection. The handshake passes the same checks as an HTTP read and is refused with \
     that status and an `application/problem+json` body: 400 for a bad `since` or `clinic` (or \
     none named by a caller with several clinics), 401 for a missing, expired or forged token \
     (or one of an unknown user), 403 for a clinic the caller is not an active member of or an \
     archived one, 429 over the read limit or the per-user connection limit, 503 when Redis cannot be \
     reached (retry with backoff and read `GET /notifications` meanwhile). Once open, every \
     client frame is answered on the connection, and notifications are pushed until the token \
     expires."
}

/// The schemas of `T`'s variants, keyed by the value of their `tag` property, with every
/// schema they refer to added to `schemas`.
fn variants<T: ToSchema>(tag: &str, schemas: &mut Map<String, Value>) -> Vec<(String, Value)> {
    let mut referenced: Vec<NamedSchema> = Vec::new();
    T::schemas(&mut referenced);
    for (name, schema) in referenced {
        schemas.insert(
            name,
            serde_json::to_value(schema).expect("a schema serializes"),
        );
    }
    let schema = serde_json::to_value(T::schema()).expect("a schema serializes");
    let items = schema["oneOf"].as_array().cloned().unwrap_or_default();
    assert!(!items.is_empty(), "{} is not a tagged enum", T::name());
    items
        .into_iter()
        .map(|item| {
            let value = item["properties"][tag]["enum"][0]
                .as_str()
                .unwrap_or_else(|| panic!("a variant of {} has no `{tag}`", T::name()))
                .to_owned();
            (value, item)
        })
        .collect()
}

/// The `notification` frame narrowed to one kind: `kind` is that kind's name and `body` its
/// body's schema.
fn notification_payload(
    frame: &Value,
    kind: NotificationKind,
    schemas: &mut Map<String, Value>,
) -> Value {
    let (name, schema, referenced) = kind.body_schema();
    for (name, schema) in referenced {
        schemas.insert(
            name,
            serde_json::to_value(schema).expect("a schema serializes"),
        );
    }
    schemas.insert(
        name.to_string(),
        serde_json::to_value(schema).expect("a schema serializes"),
    );
    let mut payload = frame.clone();
    let notification = payload["properties"]["notification"].take();
    payload["properties"]["notification"] = json!({
        "allOf": [
            notification,
            {
                "type": "object",
                "properties": {
                    "kind": { "const": kind.as_str() },
                    "body": { "$ref": format!("#/components/schemas/{name}") },
                },
            },
        ],
    });
    payload
}

fn message(name: &str, payload: Value) -> Value {
    let summary = payload
        .get("description")
        .cloned()
        .unwrap_or_else(|| json!(format!("`{name}`")));
    json!({ "name": name, "summary": summary, "payload": payload })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ids::{
        AppointmentId, JobId, PatientId, ReportId, UserId, WaitingListEntryId, XrayId,
    };
    use crate::realtime::{
        AnnouncementNotice, AppointmentNotice, AudienceKind, FrameError, Notice, Notification,
        ReportReady, WaitingListMatch, WaitingListMatchEntry, XrayAnalysed, push_payload,
    };

    #[test]
    fn the_committed_document_is_the_generated_one() {
        super::super::assert_committed(ASYNCAPI_PATH, &asyncapi_json());
    }

    #[test]
    fn every_reference_resolves() {
        let references = super::super::assert_references_resolve(&asyncapi());
        assert!(references.len() > 20, "{references:?}");
    }

    /// The message `name` of the document, whose payload `frame` must fit: every property of
    /// the frame described, every required one present, tags equal.
    fn assert_fits(name: &str, frame: &Value) {
        let document = asyncapi();
        let payload = &document["components"]["messages"][name]["payload"];
        assert!(payload.is_object(), "no message {name}");
        let described = payload["properties"]
            .as_object()
            .cloned()
            .unwrap_or_default();
        let sent = frame.as_object().cloned().unwrap_or_default();
        for key in sent.keys() {
            assert!(
                described.contains_key(key),
                "{name}: `{key}` is not described"
            );
        }
        for required in payload["required"].as_array().into_iter().flatten() {
            let required = required.as_str().unwrap_or_default();
            assert!(
                sent.contains_key(required),
                "{name}: `{required}` is missing"
            );
        }
        for (key, schema) in &described {
            if let Some(tag) = schema["enum"].as_array().filter(|tags| tags.len() == 1) {
                assert_eq!(sent.get(key), tag.first(), "{name}: `{key}`");
            }
        }
    }

    /// One frame of every kind a client sends. The match fails to compile when a variant is
    /// added without a sample.
    fn client_samples() -> Vec<(ClientFrame, Value)> {
        let frames = [
            ClientFrame::Ping,
            ClientFrame::Ack { id: 7 },
            ClientFrame::Replay { since: Some(3) },
        ];
        frames
            .into_iter()
            .map(|frame| {
                let json = match &frame {
                    ClientFrame::Ping => json!({"action": "ping"}),
                    ClientFrame::Ack { id } => json!({"action": "ack", "id": id}),
                    ClientFrame::Replay { since } => json!({"action": "replay", "since": since}),
                };
                (frame, json)
            })
            .collect()
    }

    #[test]
    fn every_client_frame_is_a_message_it_fits() {
        for (frame, json) in client_samples() {
            // The sample is what the server parses back into the frame.
            assert_eq!(
                serde_json::from_value::<ClientFrame>(json.clone()).ok(),
                Some(frame)
            );
            let action = json["action"].as_str().unwrap_or_default();
            assert_fits(&format!("client.{action}"), &json);
        }
    }

    fn notification(notice: &Notice) -> Notification {
        Notification {
            id: 42,
            audience: AudienceKind::Role,
            kind: notice.kind().to_string(),
            title: "Title".into(),
            body: notice.body(),
            created_at: chrono::DateTime::from_timestamp(1_795_432_000, 0).unwrap_or_default(),
            read: false,
        }
    }

    #[test]
    fn every_server_frame_is_a_message_it_fits() {
        let frames = [
            ServerFrame::Pong { registered: true },
            ServerFrame::Ack { id: 7 },
            ServerFrame::Replay {
                since: 3,
                notifications: vec![notification(&Notice::announcement("hoy"))],
                complete: true,
                last_id: 42,
            },
            ServerFrame::error(FrameError::TokenExpired, "expired"),
        ];
        for frame in frames {
            let kind = match &frame {
                ServerFrame::Notification { .. } => "notification",
                ServerFrame::Pong { .. } => "pong",
                ServerFrame::Ack { .. } => "ack",
                ServerFrame::Replay { .. } => "replay",
                ServerFrame::Error { .. } => "error",
            };
            let json: Value = serde_json::from_str(&frame.to_json()).unwrap_or_default();
            assert_eq!(json["type"], kind);
            assert_fits(&format!("server.{kind}"), &json);
        }
    }

    /// Every kind's push fits its message, and its body fits that kind's body schema.
    #[test]
    fn every_notification_kind_is_a_message_its_pushes_fit() {
        let appointment = AppointmentNotice::new(
            AppointmentId::new_random(),
            PatientId::new_random(),
            UserId::new_random(),
            chrono::Utc::now(),
        );
        let notices = NotificationKind::ALL.map(|kind| match kind {
            NotificationKind::XrayAnalysed => {
                Notice::XrayAnalysed(XrayAnalysed::new(XrayId::new_random(), JobId::new_random()))
            }
            NotificationKind::ReportReady => Notice::ReportReady(ReportReady::new(
                ReportId::new_random(),
                JobId::new_random(),
            )),
            NotificationKind::AppointmentReminder => {
                Notice::AppointmentReminder(appointment.clone())
            }
            NotificationKind::PossibleNoShow => Notice::PossibleNoShow(appointment.clone()),
            NotificationKind::Announcement => Notice::Announcement(AnnouncementNotice {
                message: "hoy".into(),
                link: Some("/patients".into()),
            }),
            NotificationKind::WaitingListMatch => Notice::WaitingListMatch(WaitingListMatch {
                link: "/waiting-list".into(),
                dentist_id: UserId::new_random(),
                starts_at: chrono::Utc::now(),
                ends_at: chrono::Utc::now() + chrono::Duration::minutes(30),
                entries: vec![WaitingListMatchEntry {
                    entry_id: WaitingListEntryId::new_random(),
                    patient_id: PatientId::new_random(),
                }],
            }),
        });
        let document = asyncapi();
        for notice in notices {
            let name = format!("notification.{}", notice.kind());
            let push: Value =
                serde_json::from_slice(&push_payload(&notification(&notice))).unwrap_or_default();
            assert_fits(&name, &push);
            let narrowed = &document["components"]["messages"][&name]["payload"]["properties"]["notification"]
                ["allOf"][1]["properties"];
            assert_eq!(narrowed["kind"]["const"], push["notification"]["kind"]);
            let body_ref = narrowed["body"]["$ref"].as_str().unwrap_or_default();
            let body_schema = document
                .pointer(body_ref.trim_start_matches('#'))
                .cloned()
                .unwrap_or_default();
            let mut described: Vec<String> = body_schema["properties"]
                .as_object()
                .map(|properties| properties.keys().cloned().collect())
                .unwrap_or_default();
            let mut sent: Vec<String> = push["notification"]["body"]
                .as_object()
                .map(|body| body.keys().cloned().collect())
                .unwrap_or_default();
            described.sort();
            sent.sort();
            assert_eq!(described, sent, "{name}");
        }
    }

    #[test]
    fn every_error_code_is_listed() {
        let document = asyncapi();
        let codes = &document["components"]["schemas"]["FrameError"]["enum"];
        for code in [
            FrameError::BadFrame,
            FrameError::UnknownAction,
            FrameError::NotFound,
            FrameError::UnknownConnection,
            FrameError::TokenExpired,
            FrameError::Unavailable,
            FrameError::Internal,
        ] {
            let code = serde_json::to_value(code).unwrap_or_default();
            assert!(
                codes.as_array().is_some_and(|codes| codes.contains(&code)),
                "{code} is missing"
            );
        }
    }
}
