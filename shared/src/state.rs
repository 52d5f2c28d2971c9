//! The state every HTTP function builds once at cold start and reuses across warm invocations.

use crate::access::Access;
use crate::auth::Authenticator;
use crate::cache::Cache;
use crate::config::{Config, HttpConfig};
use crate::identity::IdentityProvider;
use crate::keys::Keys;
use crate::media::{Download, MediaError, MediaKey, MediaStore, Window};
use crate::queue::Queue;
use crate::realtime::{Notifier, Realtime};
use crate::redis::RedisConnector;
use crate::signed_urls::{MediaUrl, UrlSigner};
use axum::extract::FromRef;
use chrono::{DateTime, Utc};
use sqlx::PgPool;
use std::sync::Arc;

#[derive(Clone)]
pub struct AppState {
    pub db: PgPool,
    /// `db`'s secret, read again when PostgreSQL refuses its credentials (`None` for a URL).
    pub db_rotation: Option<crate::db::Rotation>,
    pub redis: Arc<RedisConnector>,
    pub cache: Cache,
    /// The job queue: stage and dispatch jobs here; the worker drains it.
    pub queue: Queue,
    /// Pushes stored notifications to live WebSocket connections (`shared::realtime`).
    pub notifier: Notifier,
    pub keys: Keys,
    /// The gate of every authenticated request: token, standing, rate limits.
    pub access: Arc<Access>,
    /// Signs and verifies the media URLs a browser loads without a token.
    pub signer: Arc<UrlSigner>,
    /// The bucket of X-ray images, thumbnails and report PDFs; `None` without `MEDIA_BUCKET`.
    pub media: Option<Arc<MediaStore>>,
    /// The Cognito user pool invitations create people in; `None` without one (`shared::identity`).
    pub identity: Option<Arc<IdentityProvider>>,
    pub config: Arc<Config>,
}

#[derive(Debug, thiserror::Error)]
pub enum StartupError {
    #[error("DATABASE_URL is not a valid PostgreSQL connection string")]
    Database(#[source] sqlx::Error),
    #[error("REDIS_URL is not a valid Redis URL")]
    Redis(#[source] ::redis::RedisError),
    #[error("the JWT verifier could not be built")]
    Auth(#[source] reqwest::Error),
}

impl AppState {
    /// What `http::finish` wraps this state's routes with.
    pub fn edge(&self) -> crate::http::Edge {
        crate::http::Edge {
            config: self.config.http.clone(),
            rotation: self.db_rotation.clone(),
        }
    }

    /// Builds clients without contacting PostgreSQL or Redis: connections open on first use,
    /// so a function starts (and can report the outage) even when a dependency is down.
    pub fn build(config: Config) -> Result<Self, StartupError> {
        let db = crate::db::pool(&config.database).map_err(StartupError::Database)?;
        let redis = Arc::new(RedisConnector::new(&config.redis).map_err(StartupError::Redis)?);
        let authenticator = Authenticator::new(&config.auth).map_err(StartupError::Auth)?;
        let keys = Keys::new(config.redis.key_prefix.clone());
        let access = Arc::new(Access::new(
            authenticator,
            db.clone(),
            redis.clone(),
            keys.clone(),
            &config.access,
        ));
        let signer = Arc::new(UrlSigner::new(
            db.clone(),
            config.media.url_ttl,
            config.media.public_url.clone(),
        ));
        Ok(Self {
            db_rotation: crate::db::Rotation::of(&db, &config.database),
            db,
            signer,
            cache: Cache::new(
                redis.clone(),
                &config.redis,
                &config.cache,
                keys.clone(),
                &config.env,
            ),
            queue: Queue::new(redis.clone(), &keys, &config.queue),
            notifier: Notifier::from_config(&config.realtime),
            media: config
                .media
                .storage
                .clone()
                .map(|storage| Arc::new(MediaStore::new(storage))),
            identity: config
                .auth
                .cognito
                .clone()
                .map(|cognito| Arc::new(IdentityProvider::new(cognito))),
            redis,
            keys,
            access,
            config: Arc::new(config),
        })
    }
}

impl AppState {
    /// The media bucket, or why there is none.
    pub fn media(&self) -> Result<&MediaStore, MediaError> {
        self.media.as_deref().ok_or(MediaError::NotConfigured)
    }

    /// A presigned GET of `key` in the media bucket, answered as `download` says: valid for one
    /// to two `MEDIA_URL_TTL_SECONDS` windows like the API's own signed URLs, and the same string
    /// within a window, so the browser caches the file under it.
    pub async fn presigned(
        &self,
        key: &MediaKey,
        download: &Download<'_>,
        now: DateTime<Utc>,
    ) -> Result<MediaUrl, MediaError> {
        let window = Window::around(now, self.config.media.url_ttl);
        let url = self.media()?.presign_get(key, download, window).await?;
        Ok(MediaUrl {
            url,
            expires_at: window.expires,
        })
    }
}

impl FromRef<AppState> for Arc<Access> {
    fn from_ref(state: &AppState) -> Self {
        state.access.clone()
    }
}

impl FromRef<AppState> for PgPool {
    fn from_ref(state: &AppState) -> Self {
        state.db.clone()
    }
}

impl FromRef<AppState> for Option<crate::db::Rotation> {
    fn from_ref(state: &AppState) -> Self {
        state.db_rotation.clone()
    }
}

impl FromRef<AppState> for Queue {
    fn from_ref(state: &AppState) -> Self {
        state.queue.clone()
    }
}

impl FromRef<AppState> for Arc<RedisConnector> {
    fn from_ref(state: &AppState) -> Self {
        state.redis.clone()
    }
}

impl FromRef<AppState> for crate::http::Edge {
    fn from_ref(state: &AppState) -> Self {
        state.edge()
    }
}

impl FromRef<AppState> for HttpConfig {
    fn from_ref(state: &AppState) -> Self {
        state.config.http.clone()
    }
}

/// What real-time delivery borrows from the state (see [`Realtime`]).
impl<'a> From<&'a AppState> for Realtime<'a> {
    fn from(state: &'a AppState) -> Self {
        Realtime {
            db: &state.db,
            redis: &state.redis,
            keys: &state.keys,
            notifier: &state.notifier,
            config: &state.config.realtime,
            access: &state.access,
        }
    }
}
