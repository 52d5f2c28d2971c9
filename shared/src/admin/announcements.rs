//! `POST /admin/announcements`: an admin tells their whole clinic something; a platform admin
//! may tell every clinic (`"everyone": true`). Stored in the inbox, then pushed live.

use crate::auth::Principal;
use crate::http::ApiError;
use crate::http::conditional::Sha256Digest;
use crate::input::InputError;
use crate::realtime::{
    self, AnnouncementNotice, Audience, Delivery, NewNotification, Notice, Notification, PushReport,
};
use crate::state::AppState;
use crate::text;
use serde::{Deserialize, Serialize};

const MESSAGE_LIMIT: usize = 2_000;
// The schema's `max_length`s are these limits.
const _: () = assert!(MESSAGE_LIMIT == 2_000 && realtime::TITLE_LIMIT == 200);
const LINK_LIMIT: usize = 500;
/// Any origin does: a link is checked for staying on whichever origin the app is served from.
const APP_ORIGIN: &str = "https://app.pulso.invalid/";

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"title": "Cierre por festivo",
    "message": "La clínica cierra el 8 de diciembre.", "link": "/agenda?date=2026-12-08"}))]
pub struct AnnouncementBody {
    /// 1–200 characters on one line.
    #[schema(min_length = 1, max_length = 200)]
    pub title: String,
    /// 1–2,000 characters.
    #[schema(min_length = 1, max_length = 2000)]
    pub message: String,
    /// A path of the app (`/…`), at most 500 characters.
    #[serde(default)]
    #[schema(max_length = 500)]
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
    type Error = InputError;

    fn try_from(body: AnnouncementBody) -> Result<Self, InputError> {
        let title = text::single_line("title", &body.title, realtime::TITLE_LIMIT)?;
        let message = body.message.trim().to_owned();
        if message.is_empty() {
            return Err(InputError::invalid("message", "must not be empty"));
        }
        text::free_text("message", &message, MESSAGE_LIMIT)?;
        let link = body.link.map(|link| in_app_path(link.trim())).transpose()?;
        Ok(Self {
            title,
            message,
            link,
            everyone: body.everyone,
        })
    }
}

/// A link a browser resolves to a page of the app itself: parsed as the browser will parse it
/// (WHATWG URL, against the app's own origin), so `//evil.example`, `/\\evil.example`,
/// `https://evil.example` and `javascript:` all name another origin and are refused. Answered
/// as the path, query and fragment, normalised by the parse.
fn in_app_path(link: &str) -> Result<String, InputError> {
    let refused = || {
        InputError::invalid(
            "link",
            format!(
                "must be a path of the app (/…), at most {LINK_LIMIT} characters, without \
                 spaces or control characters"
            ),
        )
    };
    if link.len() > LINK_LIMIT || !link.starts_with('/') || !text::is_plain_token(link) {
        return Err(refused());
    }
    let origin = url::Url::parse(APP_ORIGIN).map_err(|_| refused())?;
    let resolved = origin.join(link).map_err(|_| refused())?;
    if resolved.origin() != origin.origin() {
        return Err(refused());
    }
    Ok(resolved[url::Position::BeforePath..].to_owned())
}

impl Announcement {
    pub fn everyone(&self) -> bool {
        self.everyone
    }
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
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
    let audience = if announcement.everyone {
        Audience::Everyone
    } else {
        Audience::Clinic(author.clinic_id)
    };
    let mut new = NewNotification::new(
        audience,
        announcement.title,
        Notice::Announcement(AnnouncementNotice {
            message: announcement.message,
            link: announcement.link,
        }),
    );
    if let Some(key) = idempotency_key {
        // The key is the client's (up to 255 characters): hashed, it always fits the column.
        let hex = Sha256Digest::of(key.as_bytes()).hex();
        new = new.with_dedupe_key(format!("announcement:{}:{hex}", author.user_id));
    }
    let (title, body) = (new.title.clone(), new.notice.body());
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_link_must_stay_on_the_apps_own_origin() {
        for (link, path) in [
            ("/calendar", "/calendar"),
            (
                "/appointments?day=2026-12-05#10h",
                "/appointments?day=2026-12-05#10h",
            ),
            ("/a/../patients", "/patients"),
            ("/búsqueda", "/b%C3%BAsqueda"),
        ] {
            assert_eq!(in_app_path(link).as_deref(), Ok(path), "{link}");
        }
        for link in [
            "//evil.example",
            "/\\evil.example",
            "/\\\\evil.example",
            "https://evil.example/",
            "javascript:alert(1)",
            "calendar",
            "/a b",
            "/a\u{0}",
            "/\u{202E}moc.live",
            "",
        ] {
            assert!(in_app_path(link).is_err(), "{link:?} accepted");
        }
    }
}
