//! The vocabulary of notifications: audiences, what producers hand in, what the inbox shows, and
//! the limits API Gateway imposes on them. The kinds and their bodies are `notices`', the
//! WebSocket frames `frames`', both re-exported here.

mod frames;
mod notices;

pub use frames::{ClientFrame, FrameError, ServerFrame, push_payload};
pub use notices::{
    AnnouncementNotice, AppointmentNotice, NamedSchema, Notice, NotificationKind, ReportReady,
    WaitingListMatch, WaitingListMatchEntry, XrayAnalysed,
};

use crate::auth::Role;
use crate::db::DbError;
use crate::ids::{ClinicId, UserId};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use std::fmt;

/// API Gateway's limit on one WebSocket message (a push, a route response): 128 KiB.
pub const MESSAGE_LIMIT: usize = 128 * 1024;
/// The largest `body` a notification may store, serialized. Far under [`MESSAGE_LIMIT`]: bodies
/// hold ids and links, and anything large travels as a link.
pub const BODY_LIMIT: usize = 16 * 1024;
/// The `notifications.title` check constraint, in characters.
pub const TITLE_LIMIT: usize = 200;
/// The `notifications.dedupe_key` check constraint, in characters.
pub const DEDUPE_KEY_LIMIT: usize = 255;
/// API Gateway closes a WebSocket connection after two hours, whatever happens on it.
pub const CONNECTION_LIFETIME: std::time::Duration = std::time::Duration::from_secs(2 * 60 * 60);

/// Who a notification is for. Every audience but `Everyone` lives inside one clinic.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Audience {
    User {
        clinic: ClinicId,
        user: UserId,
    },
    Role {
        clinic: ClinicId,
        role: Role,
    },
    Clinic(ClinicId),
    /// Every clinic: platform announcements only.
    Everyone,
}

impl Audience {
    pub fn kind(&self) -> AudienceKind {
        match self {
            Audience::User { .. } => AudienceKind::User,
            Audience::Role { .. } => AudienceKind::Role,
            Audience::Clinic(_) => AudienceKind::Clinic,
            Audience::Everyone => AudienceKind::Everyone,
        }
    }

    pub fn clinic(&self) -> Option<ClinicId> {
        match self {
            Audience::User { clinic, .. } | Audience::Role { clinic, .. } => Some(*clinic),
            Audience::Clinic(clinic) => Some(*clinic),
            Audience::Everyone => None,
        }
    }
}

/// `notifications.audience`.
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, sqlx::Type, utoipa::ToSchema,
)]
#[serde(rename_all = "snake_case")]
#[sqlx(type_name = "notification_audience", rename_all = "snake_case")]
pub enum AudienceKind {
    User,
    Role,
    Clinic,
    Everyone,
}

/// A notification to store and push.
#[derive(Clone, Debug, PartialEq)]
pub struct NewNotification {
    pub audience: Audience,
    pub title: String,
    pub notice: Notice,
    /// Stored at most once per clinic (or once among announcements to everyone): the scheduler
    /// and at-least-once jobs may produce the same notice twice.
    pub dedupe_key: Option<String>,
}

impl NewNotification {
    pub fn new(audience: Audience, title: impl Into<String>, notice: Notice) -> Self {
        Self {
            audience,
            title: title.into(),
            notice,
            dedupe_key: None,
        }
    }

    pub fn with_dedupe_key(mut self, key: impl Into<String>) -> Self {
        self.dedupe_key = Some(key.into());
        self
    }

    pub fn kind(&self) -> NotificationKind {
        self.notice.kind()
    }

    /// What the table's checks (and API Gateway's message limit) would refuse, refused here
    /// with a reason instead of a constraint error. Returns the body to store.
    pub fn check(&self) -> Result<serde_json::Value, RealtimeError> {
        let title = self.title.chars().count();
        if title == 0 || title > TITLE_LIMIT {
            return Err(RealtimeError::TitleLength);
        }
        let body = self.notice.body();
        let size = serde_json::to_vec(&body).map_or(usize::MAX, |bytes| bytes.len());
        if size > BODY_LIMIT {
            return Err(RealtimeError::BodyTooLarge { size });
        }
        if self
            .dedupe_key
            .as_ref()
            .is_some_and(|key| key.is_empty() || key.chars().count() > DEDUPE_KEY_LIMIT)
        {
            return Err(RealtimeError::DedupeKeyLength);
        }
        Ok(body)
    }
}

/// A stored notification as a client sees it (inbox pages, pushes, replays).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, sqlx::FromRow, utoipa::ToSchema)]
pub struct Notification {
    /// The inbox offset: increasing, so "everything after N" is what a client missed.
    pub id: i64,
    pub audience: AudienceKind,
    /// What happened, e.g. `xray.analysed`; each kind's `body` is described by the WebSocket
    /// API's AsyncAPI document (`docs/asyncapi.json`).
    pub kind: String,
    pub title: String,
    #[schema(value_type = Object)]
    pub body: serde_json::Value,
    pub created_at: DateTime<Utc>,
    /// Whether the caller has read it (always `false` in a push).
    pub read: bool,
}

/// A notification id from a client (a path, an ack): a positive integer.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(transparent)]
pub struct NotificationId(i64);

impl NotificationId {
    pub fn new(id: i64) -> Option<Self> {
        (id > 0).then_some(Self(id))
    }

    pub fn get(&self) -> i64 {
        self.0
    }
}

impl std::str::FromStr for NotificationId {
    type Err = ();

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        text.parse::<i64>().ok().and_then(Self::new).ok_or(())
    }
}

impl fmt::Display for NotificationId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

#[derive(Debug, thiserror::Error)]
pub enum RealtimeError {
    #[error(transparent)]
    Db(#[from] DbError),
    #[error("invalid notification: the title must have 1 to {TITLE_LIMIT} characters")]
    TitleLength,
    #[error(
        "invalid notification: the body is {size} bytes; at most {BODY_LIMIT} (send large content as a link)"
    )]
    BodyTooLarge { size: usize },
    #[error("invalid notification: the dedupe key must have 1 to {DEDUPE_KEY_LIMIT} characters")]
    DedupeKeyLength,
    #[error(
        "invalid notification: a notification to everyone needs a platform admin (notify_everyone)"
    )]
    EveryoneNeedsNotifyEveryone,
    #[error("invalid notification: notify_everyone is for the audience everyone")]
    NotForEveryone,
    /// Its dedupe key was taken, yet no row with that key is visible.
    #[error("invalid notification: the notification conflicts with another one")]
    DedupeConflict,
    #[error("only a platform admin may notify every clinic")]
    NotPlatformAdmin,
}

impl From<sqlx::Error> for RealtimeError {
    fn from(error: sqlx::Error) -> Self {
        RealtimeError::Db(DbError::from(error))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn new_notifications_are_checked_before_the_database_sees_them() {
        let ok = NewNotification::new(
            Audience::Everyone,
            "Mantenimiento",
            Notice::announcement("hoy"),
        );
        assert_eq!(ok.check().ok(), Some(json!({"message": "hoy"})));
        let long_title = NewNotification {
            title: "t".repeat(TITLE_LIMIT + 1),
            ..ok.clone()
        };
        assert!(long_title.check().is_err());
        let big = NewNotification {
            notice: Notice::announcement("y".repeat(BODY_LIMIT)),
            ..ok.clone()
        };
        assert!(big.check().is_err());
        assert!(ok.clone().with_dedupe_key("").check().is_err());
    }

    #[test]
    fn named_refusals_read_as_the_strings_they_replace() {
        assert_eq!(
            RealtimeError::TitleLength.to_string(),
            "invalid notification: the title must have 1 to 200 characters"
        );
        assert_eq!(
            RealtimeError::BodyTooLarge { size: 20000 }.to_string(),
            "invalid notification: the body is 20000 bytes; at most 16384 (send large content as a link)"
        );
        assert_eq!(
            RealtimeError::DedupeKeyLength.to_string(),
            "invalid notification: the dedupe key must have 1 to 255 characters"
        );
    }

    #[test]
    fn notification_ids_are_positive() {
        assert_eq!("12".parse::<NotificationId>().map(|id| id.get()), Ok(12));
        for bad in ["0", "-1", "x", "", "99999999999999999999"] {
            assert!(bad.parse::<NotificationId>().is_err(), "{bad}");
        }
    }
}
