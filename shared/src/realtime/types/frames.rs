//! The WebSocket frames: what a client sends (ping, ack, replay), what Pulso sends back or pushes,
//! and the push of a notification kept under API Gateway's message limit.

use super::{MESSAGE_LIMIT, Notification};
use serde::{Deserialize, Serialize};

/// A frame a client sends on its WebSocket (routed to `ws-default`).
#[derive(Clone, Debug, PartialEq, Eq, Deserialize, utoipa::ToSchema)]
#[serde(tag = "action", rename_all = "snake_case")]
pub enum ClientFrame {
    /// Keeps the connection (and its registration) alive; answered with `pong`.
    Ping,
    /// Marks one notification read.
    Ack {
        /// The notification's id.
        #[schema(minimum = 1)]
        id: i64,
    },
    /// Asks for the notifications after `since` (default: the `?since=` given at connect).
    Replay {
        #[serde(default)]
        #[schema(minimum = 0)]
        since: Option<i64>,
    },
}

/// A frame Pulso sends: pushes through @connections, answers through the route response.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ServerFrame {
    /// A notification pushed as it is stored.
    Notification { notification: Notification },
    /// The answer to `ping`.
    Pong {
        /// `false`: Pulso no longer knows this connection (its registration expired or Redis lost
        /// it); pushes will not reach it, so the client should reconnect.
        registered: bool,
    },
    /// The answer to `ack`: the notification is marked read.
    Ack { id: i64 },
    /// The answer to `replay`: what the client missed, oldest first.
    Replay {
        since: i64,
        notifications: Vec<Notification>,
        /// `false`: more were missed than one frame carries; ask again with `since: last_id`.
        complete: bool,
        /// The id to resume from next time (the last one sent, or `since` when none was).
        last_id: i64,
    },
    /// The answer to a frame that could not be carried out, or the last frame before the
    /// server closes a connection whose token expired.
    Error {
        error: FrameError,
        /// For a person reading the client's log; the code is what a client acts on.
        message: String,
    },
}

/// Why a frame was refused: a stable code a client can act on.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum FrameError {
    /// Not JSON, not an object, or a field of the wrong type or range: fix the frame.
    BadFrame,
    /// An `action` other than `ping`, `ack` and `replay`.
    UnknownAction,
    /// `ack` of a notification that is not in the caller's inbox.
    NotFound,
    /// Pulso no longer knows this connection: reconnect.
    UnknownConnection,
    /// The connection's token expired: reconnect with a fresh one.
    TokenExpired,
    /// The caller's membership of the clinic was deactivated, their role changed, or the clinic
    /// was archived: the connection is closed. Reconnecting works again only with an active membership, and then
    /// with the new role.
    AccessRevoked,
    /// Redis or PostgreSQL could not be reached: retry with backoff, or read
    /// `GET /notifications` meanwhile.
    Unavailable,
    /// A fault of Pulso's: retry later.
    Internal,
}

impl ServerFrame {
    pub fn error(code: FrameError, message: impl Into<String>) -> Self {
        ServerFrame::Error {
            error: code,
            message: message.into(),
        }
    }

    /// The frame as sent. Serializing these plain types cannot fail; if it somehow did, the
    /// client gets an error frame rather than nothing.
    pub fn to_json(&self) -> String {
        serde_json::to_string(self).unwrap_or_else(|_| {
            r#"{"type":"error","error":"internal","message":"the frame could not be encoded"}"#
                .to_owned()
        })
    }
}

/// The push of `notification`, kept under API Gateway's message limit: a body that would not
/// fit (only possible for rows written outside [`NewNotification::check`]) is replaced by its
/// link, and the client reads the rest from the inbox.
///
/// [`NewNotification::check`]: super::NewNotification::check
pub fn push_payload(notification: &Notification) -> Vec<u8> {
    let frame = ServerFrame::Notification {
        notification: notification.clone(),
    };
    let bytes = frame.to_json().into_bytes();
    if bytes.len() <= MESSAGE_LIMIT {
        return bytes;
    }
    let link = notification
        .body
        .get("link")
        .and_then(|link| link.as_str())
        .filter(|link| link.len() <= 2_048)
        .map(str::to_owned)
        .unwrap_or_else(|| format!("/notifications?since={}&limit=1", notification.id - 1));
    let mut trimmed = notification.clone();
    trimmed.body = serde_json::json!({ "link": link, "truncated": true });
    ServerFrame::Notification {
        notification: trimmed,
    }
    .to_json()
    .into_bytes()
}

#[cfg(test)]
mod tests {
    use super::super::AudienceKind;
    use super::*;
    use chrono::DateTime;
    use serde_json::json;

    fn sample(body: serde_json::Value) -> Notification {
        Notification {
            id: 42,
            audience: AudienceKind::Role,
            kind: "xray.analysed".into(),
            title: "X-ray analysed".into(),
            body,
            created_at: DateTime::from_timestamp(1_795_432_000, 0).unwrap_or_default(),
            read: false,
        }
    }

    #[test]
    fn client_frames_parse_and_refuse_what_they_should() {
        let parse = |text: &str| serde_json::from_str::<ClientFrame>(text);
        assert_eq!(parse(r#"{"action":"ping"}"#).ok(), Some(ClientFrame::Ping));
        assert_eq!(
            parse(r#"{"action":"ack","id":7}"#).ok(),
            Some(ClientFrame::Ack { id: 7 })
        );
        assert_eq!(
            parse(r#"{"action":"replay"}"#).ok(),
            Some(ClientFrame::Replay { since: None })
        );
        assert_eq!(
            parse(r#"{"action":"replay","since":3}"#).ok(),
            Some(ClientFrame::Replay { since: Some(3) })
        );
        for bad in [
            "",
            "ping",
            "{}",
            r#"{"action":"ack"}"#,
            r#"{"action":"ack","id":"x"}"#,
            r#"{"action":"shout"}"#,
            "[1,2]",
        ] {
            assert!(parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn server_frames_are_tagged_by_type() {
        let frame: serde_json::Value =
            serde_json::from_str(&ServerFrame::Pong { registered: true }.to_json())
                .unwrap_or_default();
        assert_eq!(frame, json!({"type": "pong", "registered": true}));
        let push: serde_json::Value =
            serde_json::from_slice(&push_payload(&sample(json!({"link": "/xrays/1"}))))
                .unwrap_or_default();
        assert_eq!(push["type"], "notification");
        assert_eq!(push["notification"]["id"], 42);
        assert_eq!(push["notification"]["body"]["link"], "/xrays/1");
    }

    #[test]
    fn a_push_never_exceeds_the_message_limit() {
        let huge = sample(json!({"link": "/reports/9", "blob": "x".repeat(MESSAGE_LIMIT)}));
        let payload = push_payload(&huge);
        assert!(payload.len() <= MESSAGE_LIMIT, "{}", payload.len());
        let push: serde_json::Value = serde_json::from_slice(&payload).unwrap_or_default();
        assert_eq!(
            push["notification"]["body"],
            json!({"link": "/reports/9", "truncated": true})
        );
        let linkless = sample(json!({"blob": "x".repeat(MESSAGE_LIMIT)}));
        let push: serde_json::Value =
            serde_json::from_slice(&push_payload(&linkless)).unwrap_or_default();
        assert_eq!(
            push["notification"]["body"]["link"],
            "/notifications?since=41&limit=1"
        );
    }
}
