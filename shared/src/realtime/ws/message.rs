//! `$default`: the answer to one client frame (`ping`, `ack`, `replay`), sent back through the
//! route response; anything else gets an `error` frame, never a crash.

use crate::db::DbError;
use crate::realtime::Realtime;
use crate::realtime::inbox::{self, Reader, Window};
use crate::realtime::registry::{ConnectionRegistry, LiveConnection, now_ms};
use crate::realtime::types::{
    ClientFrame, FrameError, MESSAGE_LIMIT, Notification, NotificationId, ServerFrame,
};
use crate::telemetry::ErrorChain;

/// Most notifications one replay frame carries; the client asks again from `last_id`.
pub const REPLAY_LIMIT: usize = 100;
/// Room kept in a replay frame for everything but the notifications themselves.
const REPLAY_FRAME_OVERHEAD: usize = 256;

/// The answer to one frame from `connection_id`.
pub async fn answer(
    realtime: impl Into<Realtime<'_>>,
    connection_id: Option<&str>,
    body: Option<&str>,
) -> ServerFrame {
    let realtime = realtime.into();
    let frame = match parse_frame(body.unwrap_or_default()) {
        Ok(frame) => frame,
        Err(error) => return error,
    };
    let span = tracing::Span::current();
    span.record(
        "action",
        match frame {
            ClientFrame::Ping => "ping",
            ClientFrame::Ack { .. } => "ack",
            ClientFrame::Replay { .. } => "replay",
        },
    );
    let registry = ConnectionRegistry::new(realtime);
    let connection = match registered(&registry, connection_id, &frame).await {
        Ok(connection) => connection,
        Err(answer) => return answer,
    };
    span.record("clinic_id", tracing::field::display(connection.clinic));
    span.record("user_id", tracing::field::display(connection.user));
    // Any message is activity: the registration's sets live on.
    if let Err(error) = registry.touch(&connection).await {
        tracing::warn!(error = %ErrorChain(&error), "the connection's registration could not be refreshed");
    }
    let reader = Reader {
        clinic: connection.clinic,
        user: connection.user,
        role: connection.role,
    };
    match frame {
        ClientFrame::Ping => ServerFrame::Pong { registered: true },
        ClientFrame::Ack { id } => acknowledge(realtime, reader, id).await,
        ClientFrame::Replay { since } => {
            replay(realtime, reader, since.or(connection.since).unwrap_or(0)).await
        }
    }
}

/// The registered connection `connection_id` names, or the answer when there is none (a
/// ping is still answered, as unregistered) or the registry cannot tell.
async fn registered(
    registry: &ConnectionRegistry<'_>,
    connection_id: Option<&str>,
    frame: &ClientFrame,
) -> Result<LiveConnection, ServerFrame> {
    let connection = match connection_id {
        Some(id) => registry.lookup(id).await,
        None => Ok(None),
    };
    match connection {
        // Between the token's expiry and the registration's (they are the same instant, give
        // or take Redis's expiry sweep), nothing but a ping is answered.
        Ok(Some(connection))
            if connection.token_expired(now_ms()) && *frame != ClientFrame::Ping =>
        {
            Err(ServerFrame::error(
                FrameError::TokenExpired,
                "The token this connection was opened with has expired; reconnect with a fresh \
                 ?token=.",
            ))
        }
        Ok(Some(connection)) => Ok(connection),
        Ok(None) if *frame == ClientFrame::Ping => Err(ServerFrame::Pong { registered: false }),
        Ok(None) => Err(ServerFrame::error(
            FrameError::UnknownConnection,
            "This connection is not registered (any more); reconnect with ?token=.",
        )),
        Err(error) => {
            tracing::warn!(error = %ErrorChain(&error), "the connection registry is unavailable");
            Err(ServerFrame::error(
                FrameError::Unavailable,
                "Live notifications are unavailable right now; retry shortly.",
            ))
        }
    }
}

/// `ack`: marks notification `id` read in the reader's inbox.
async fn acknowledge(realtime: Realtime<'_>, reader: Reader, id: i64) -> ServerFrame {
    let Some(id) = NotificationId::new(id) else {
        return ServerFrame::error(
            FrameError::BadFrame,
            "ack needs the positive id of a notification.",
        );
    };
    match inbox::acknowledge(realtime.db, reader, id).await {
        Ok(true) => ServerFrame::Ack { id: id.get() },
        Ok(false) => ServerFrame::error(
            FrameError::NotFound,
            format!("No notification {id} in your inbox."),
        ),
        Err(error) => database_trouble(&error),
    }
}

/// `replay`: the reader's notifications after `since`, as many as fit one frame.
async fn replay(realtime: Realtime<'_>, reader: Reader, since: i64) -> ServerFrame {
    if since < 0 {
        return ServerFrame::error(FrameError::BadFrame, "since must be 0 or more.");
    }
    match inbox::load_page(
        realtime.db,
        reader,
        Window::After(since),
        REPLAY_LIMIT as i64 + 1,
    )
    .await
    {
        Ok(rows) => replay_frame(since, rows),
        Err(error) => database_trouble(&error),
    }
}

/// A client frame, or the error frame explaining why it is not one.
fn parse_frame(body: &str) -> Result<ClientFrame, ServerFrame> {
    const KNOWN: [&str; 3] = ["ping", "ack", "replay"];
    let value: serde_json::Value = serde_json::from_str(body).map_err(|_| {
        ServerFrame::error(
            FrameError::BadFrame,
            r#"Send a JSON object such as {"action":"ping"}."#,
        )
    })?;
    let action = value
        .get("action")
        .and_then(|action| action.as_str())
        .and_then(|action| {
            KNOWN
                .iter()
                .copied()
                .find(|known| *known == action)
                .or(Some(""))
        })
        .ok_or_else(|| {
            ServerFrame::error(
                FrameError::BadFrame,
                r#"The frame needs an "action": ping, ack or replay."#,
            )
        })?;
    if action.is_empty() {
        // The client's own text is not echoed: frames are for the client, logs for us.
        return Err(ServerFrame::error(
            FrameError::UnknownAction,
            "Unknown action; use ping, ack or replay.",
        ));
    }
    serde_json::from_value(value).map_err(|error| {
        let hint = match action {
            "ack" => "ack needs \"id\": the positive id of a notification.",
            "replay" => "replay takes an optional \"since\": a notification id.",
            _ => "ping takes no fields.",
        };
        tracing::debug!(%error, "malformed frame");
        ServerFrame::error(FrameError::BadFrame, hint)
    })
}

/// As many of `rows` (after `since`, oldest first, up to one more than [`REPLAY_LIMIT`]) as
/// fit one message under API Gateway's limit.
fn replay_frame(since: i64, rows: Vec<Notification>) -> ServerFrame {
    let fetched = rows.len();
    let mut notifications = Vec::new();
    let mut size = REPLAY_FRAME_OVERHEAD;
    for row in rows.into_iter().take(REPLAY_LIMIT) {
        let row_size = serde_json::to_vec(&row).map_or(MESSAGE_LIMIT, |bytes| bytes.len() + 1);
        if size + row_size > MESSAGE_LIMIT {
            break;
        }
        size += row_size;
        notifications.push(row);
    }
    let complete = notifications.len() == fetched;
    let last_id = notifications.last().map_or(since, |row| row.id);
    ServerFrame::Replay {
        since,
        notifications,
        complete,
        last_id,
    }
}

fn database_trouble(error: &DbError) -> ServerFrame {
    match error {
        DbError::Unavailable(_) => {
            tracing::warn!(error = %ErrorChain(error), "database unavailable for a WebSocket frame");
            ServerFrame::error(
                FrameError::Unavailable,
                "The inbox is unavailable right now; retry shortly.",
            )
        }
        DbError::Query(_) => {
            tracing::error!(error = %ErrorChain(error), "a WebSocket frame failed");
            ServerFrame::error(
                FrameError::Internal,
                "Something went wrong on our side; it has been logged.",
            )
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::realtime::types::AudienceKind;

    fn row(id: i64, body_bytes: usize) -> Notification {
        Notification {
            id,
            audience: AudienceKind::Clinic,
            kind: "announcement".into(),
            title: "t".into(),
            body: serde_json::json!({"message": "m".repeat(body_bytes)}),
            created_at: chrono::DateTime::from_timestamp(1_795_432_000, 0).unwrap_or_default(),
            read: false,
        }
    }

    #[test]
    fn a_replay_frame_stays_under_the_message_limit() {
        let rows: Vec<_> = (1..=30).map(|id| row(id, 10_000)).collect();
        let ServerFrame::Replay {
            notifications,
            complete,
            last_id,
            ..
        } = replay_frame(0, rows)
        else {
            panic!("not a replay frame");
        };
        assert!(!complete);
        assert!(notifications.len() >= 10 && notifications.len() < 30);
        assert_eq!(last_id, notifications.last().map_or(0, |n| n.id));
        let frame = ServerFrame::Replay {
            since: 0,
            notifications,
            complete,
            last_id,
        };
        assert!(frame.to_json().len() <= MESSAGE_LIMIT);
    }

    #[test]
    fn a_replay_frame_says_whether_it_carries_everything() {
        let few: Vec<_> = (5..=7).map(|id| row(id, 10)).collect();
        let ServerFrame::Replay {
            complete,
            last_id,
            notifications,
            ..
        } = replay_frame(4, few)
        else {
            panic!("not a replay frame");
        };
        assert!(complete);
        assert_eq!((last_id, notifications.len()), (7, 3));
        let many: Vec<_> = (1..=REPLAY_LIMIT as i64 + 1)
            .map(|id| row(id, 10))
            .collect();
        let ServerFrame::Replay {
            complete, last_id, ..
        } = replay_frame(0, many)
        else {
            panic!("not a replay frame");
        };
        assert!(!complete);
        assert_eq!(last_id, REPLAY_LIMIT as i64);
        let ServerFrame::Replay {
            complete, last_id, ..
        } = replay_frame(9, Vec::new())
        else {
            panic!("not a replay frame");
        };
        assert!(complete);
        assert_eq!(last_id, 9);
    }

    #[test]
    fn frames_that_are_not_understood_get_an_error_naming_why() {
        let code = |body: &str| match parse_frame(body) {
            Err(ServerFrame::Error { error, .. }) => serde_json::to_value(error)
                .ok()
                .and_then(|code| code.as_str().map(str::to_owned))
                .unwrap_or_default(),
            Ok(frame) => format!("ok {frame:?}"),
            Err(other) => format!("other {other:?}"),
        };
        assert_eq!(code("not json"), "bad_frame");
        assert_eq!(code(""), "bad_frame");
        assert_eq!(code("[]"), "bad_frame");
        assert_eq!(code(r#"{"id":1}"#), "bad_frame");
        assert_eq!(code(r#"{"action":5}"#), "bad_frame");
        assert_eq!(code(r#"{"action":"dance"}"#), "unknown_action");
        assert_eq!(code(r#"{"action":"ack","id":"seven"}"#), "bad_frame");
        assert_eq!(code(r#"{"action":"ping"}"#), "ok Ping");
    }
}
