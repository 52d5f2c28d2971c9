//! `POST /admin/announcements`: an admin tells their whole clinic something; a platform admin
//! may tell every clinic (`"everyone": true`). Stored in the inbox, then pushed live.

use crate::auth::Principal;
use crate::http::ApiError;
use crate::realtime::{
    self, ANNOUNCEMENT, Audience, Delivery, NewNotification, Notification, PushReport,
};
use crate::state::AppState;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

const MESSAGE_LIMIT: usize = 2_000;
const LINK_LIMIT: usize = 500;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AnnouncementBody {
    pub title: String,
    pub message: String,
    #[serde(default)]
    pub link: Option<String>,
    /// Every clinic instead of the admin's own: platform admins only.
    #[serde(default)]
    pub everyone: bool,
}

/// An announcement that passed its checks.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Announcement {
    title: String,
    message: String,
    link: Option<String>,
    everyone: bool,
}

impl TryFrom<AnnouncementBody> for Announcement {
    type Error = ApiError;

    fn try_from(body: AnnouncementBody) -> Result<Self, ApiError> {
        let title = body.title.trim().to_owned();
        let length = title.chars().count();
        if length == 0 || length > realtime::TITLE_LIMIT {
            return Err(ApiError::validation(
                "title",
                format!("must have 1 to {} characters", realtime::TITLE_LIMIT),
            ));
        }
        let message = body.message.trim().to_owned();
        let length = message.chars().count();
        if length == 0 || length > MESSAGE_LIMIT {
            return Err(ApiError::validation(
                "message",
                format!("must have 1 to {MESSAGE_LIMIT} characters"),
            ));
        }
        let link = match body.link.map(|link| link.trim().to_owned()) {
            None => None,
            Some(link)
                if link.len() <= LINK_LIMIT
                    && (link.starts_with('/') || link.starts_with("https://"))
                    && !link.starts_with("//")
                    && !link.chars().any(|c| c.is_whitespace() || c.is_control()) =>
            {
                Some(link)
            }
            Some(_) => {
                return Err(ApiError::validation(
                    "link",
                    format!(
                        "must be a path of the app (/…) or an https:// URL, at most {LINK_LIMIT} \
                         characters, without spaces"
                    ),
                ));
            }
        };
        Ok(Self {
            title,
            message,
            link,
            everyone: body.everyone,
        })
    }
}

impl Announcement {
    pub fn everyone(&self) -> bool {
        self.everyone
    }
}

#[derive(Debug, Serialize)]
pub struct AnnouncementResponse {
    pub notification: Notification,
    pub push: PushReport,
}

/// Stores and pushes the announcement. `idempotency_key`: a repeated request answers with the
/// announcement the first one made (`created == false`) and pushes nothing again.
pub async fn announce(
    state: &AppState,
    author: &Principal,
    announcement: Announcement,
    idempotency_key: Option<&str>,
) -> Result<Delivery, ApiError> {
    let mut body = serde_json::Map::new();
    body.insert("message".into(), announcement.message.into());
    if let Some(link) = announcement.link {
        body.insert("link".into(), link.into());
    }
    let audience = if announcement.everyone {
        Audience::Everyone
    } else {
        Audience::Clinic(author.clinic_id)
    };
    let mut new = NewNotification::new(
        audience,
        ANNOUNCEMENT,
        announcement.title,
        serde_json::Value::Object(body),
    );
    if let Some(key) = idempotency_key {
        // The key is the client's (up to 255 characters): hashed, it always fits the column.
        let digest = Sha256::digest(key.as_bytes());
        let hex: String = digest.iter().map(|byte| format!("{byte:02x}")).collect();
        new = new.with_dedupe_key(format!("announcement:{}:{hex}", author.user_id));
    }
    let (title, body) = (new.title.clone(), new.body.clone());
    let delivery = if announcement.everyone {
        realtime::notify_everyone(state, author, new).await?
    } else {
        realtime::notify(state, new).await?
    };
    if !delivery.created
        && (delivery.notification.title != title || delivery.notification.body != body)
    {
        return Err(ApiError::validation(
            "Idempotency-Key",
            "was used for another announcement; send a new key",
        ));
    }
    Ok(delivery)
}
