//! Short-lived signed URLs for what a browser loads by itself: an `<img src>` or a download
//! link cannot carry a bearer token. The API answers a read of an X-ray or a report with URLs
//! under `/media/…` that need no `Authorization` header:
//!
//! `https://{api}/media/xrays/{id}/thumbnail?clinic={clinic}&expires={unix}&key={n}&signature={…}`
//!
//! **What is signed**: HMAC-SHA256 over the method (`GET`), the path, the clinic, the expiry and
//! the key id; the signature is base64url without padding. Altering any of them, or using the
//! URL after its expiry, answers 403 `/problems/invalid-signature`. The URL carries ids only,
//! never a name or clinical text, and the clinic it names is the one the signed route reads
//! in, under row-level security like any request, and whose read limit it counts against.
//!
//! **How long**: `MEDIA_URL_TTL_SECONDS` (default 300) to twice that: the expiry is rounded up to
//! the next multiple of the TTL after one TTL has passed, so every read within one window hands
//! out the same URL and the browser's cache answers a repeated `<img>` without a request.
//!
//! **Keys** live in PostgreSQL (`url_signing_keys`, see its migration), not in the environment:
//! a process signs with the newest key younger than [`KEY_SIGNS_FOR`] and adds one when there is
//! none, verifies with any key young enough to have signed a URL that has not expired, and
//! rereads the table at most every [`REFRESH`] (or at once, at most every [`MISS_REREAD`], for a
//! key id it does not know). Deleting the rows revokes every URL within [`REFRESH`].
//!
//! **Object storage**: what is in S3 gets the store's own presigned GET in the same
//! `{url, expires_at}` fields (`AppState::presigned`, same windows), and the API's routes of it answer
//! with a redirect there ([`redirect`]); only an older row still holding its bytes in PostgreSQL
//! is served through `/media/…`.

use crate::access::Access;
use crate::db::DbError;
use crate::http::ApiError;
use crate::ids::ClinicId;
use axum::response::{IntoResponse, Response};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chrono::{DateTime, Utc};
use hmac::{Hmac, Mac};
use http::{HeaderMap, HeaderValue, StatusCode, header};
use serde::{Deserialize, Serialize};
use sha2::Sha256;
use sqlx::PgPool;
use std::collections::BTreeMap;
use std::sync::RwLock;
use std::time::{Duration, Instant};

/// How long a key signs new URLs before a newer one takes over.
pub const KEY_SIGNS_FOR: Duration = Duration::from_secs(24 * 3600);
/// How long a process trusts its copy of the keys.
pub const REFRESH: Duration = Duration::from_secs(60);
/// The soonest a process rereads the keys for an id it does not know (a key another process
/// just added, or a forged id: the latter must not turn into a query per request).
pub const MISS_REREAD: Duration = Duration::from_secs(1);
/// Keys older than this are deleted when a new one is added.
const KEY_RETENTION_DAYS: i32 = 7;
/// A clock difference between processes that a fresh URL tolerates.
const SKEW_SECONDS: i64 = 60;

type HmacSha256 = Hmac<Sha256>;

/// A URL a browser can load without a token, until `expires_at`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct MediaUrl {
    /// Absolute; needs no `Authorization` header.
    pub url: String,
    /// After this the URL answers 403: read the record again for a fresh one.
    pub expires_at: DateTime<Utc>,
}

impl MediaUrl {
    /// 307 here: the browser fetches the file from S3 itself, so no size limit of a function's
    /// response applies. The redirect is not cached (its URL changes each window); the file is,
    /// under its URL.
    pub fn redirect(&self) -> Result<Response, ApiError> {
        let location = HeaderValue::from_str(&self.url).map_err(ApiError::internal)?;
        Ok((
            StatusCode::TEMPORARY_REDIRECT,
            [
                (header::LOCATION, location),
                (header::CACHE_CONTROL, HeaderValue::from_static("no-store")),
            ],
        )
            .into_response())
    }
}

/// The query of a signed URL.
#[derive(Clone, Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct SignedQuery {
    /// The clinic the URL was signed for.
    pub clinic: ClinicId,
    /// Unix seconds after which the URL is refused.
    pub expires: i64,
    /// The id of the key that signed it.
    pub key: i32,
    /// HMAC-SHA256, base64url without padding.
    #[param(max_length = 64)]
    pub signature: String,
}

#[derive(Clone)]
struct Key {
    secret: [u8; 32],
    created_at: DateTime<Utc>,
}

#[derive(Default)]
struct Ring {
    keys: BTreeMap<i32, Key>,
    loaded_at: Option<Instant>,
}

/// Signs and verifies media URLs; one per process, shared by its requests.
pub struct UrlSigner {
    db: PgPool,
    ttl: Duration,
    /// `MEDIA_PUBLIC_URL`: the API's public base URL, when it is not the request's own host
    /// (a custom domain with a base path).
    public_url: Option<String>,
    ring: RwLock<Ring>,
}

impl UrlSigner {
    pub fn new(db: PgPool, ttl: Duration, public_url: Option<String>) -> Self {
        Self {
            db,
            ttl: ttl.max(Duration::from_secs(1)),
            public_url: public_url.map(|url| url.trim_end_matches('/').to_owned()),
            ring: RwLock::new(Ring::default()),
        }
    }

    /// The base the URLs of a request start with: `MEDIA_PUBLIC_URL`, else the request's own
    /// scheme and host (API Gateway's `X-Forwarded-Proto` and `Host`), else nothing (a path).
    pub fn base_for(&self, headers: &HeaderMap) -> String {
        if let Some(url) = &self.public_url {
            return url.clone();
        }
        let header = |name: &str| {
            headers
                .get(name)
                .and_then(|value| value.to_str().ok())
                .map(|value| value.split(',').next().unwrap_or_default().trim())
                .filter(|value| !value.is_empty())
        };
        let host = header("host").filter(|host| {
            host.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"-.:[]".contains(&b))
        });
        match host {
            Some(host) => {
                let scheme = match header("x-forwarded-proto") {
                    Some("http") => "http",
                    _ => "https",
                };
                format!("{scheme}://{host}")
            }
            None => String::new(),
        }
    }

    /// A URL of `path` (`/media/…`) for `clinic`, valid for one to two TTLs from `now`.
    pub async fn sign(
        &self,
        base: &str,
        clinic: ClinicId,
        path: &str,
        now: DateTime<Utc>,
    ) -> Result<MediaUrl, DbError> {
        let (id, key) = self.signing_key(now).await?;
        let ttl = self.ttl_seconds();
        let expires = (now.timestamp().div_euclid(ttl) + 2) * ttl;
        let signature =
            URL_SAFE_NO_PAD.encode(mac(&key, path, clinic, expires, id).finalize().into_bytes());
        Ok(MediaUrl {
            url: format!(
                "{base}{path}?clinic={clinic}&expires={expires}&key={id}&signature={signature}"
            ),
            expires_at: DateTime::from_timestamp(expires, 0).unwrap_or(now),
        })
    }

    /// [`verify`](Self::verify), then the clinic's rate limits for signed links
    /// (`Access::admit_signed`): what every signed route runs first.
    pub async fn admit(
        &self,
        access: &Access,
        path: &str,
        query: &SignedQuery,
        now: DateTime<Utc>,
    ) -> Result<ClinicId, ApiError> {
        let clinic = self.verify(path, query, now).await?;
        access.admit_signed(clinic).await?;
        Ok(clinic)
    }

    /// The clinic a signed request of `path` may read in, or why it may not.
    pub async fn verify(
        &self,
        path: &str,
        query: &SignedQuery,
        now: DateTime<Utc>,
    ) -> Result<ClinicId, ApiError> {
        let invalid = ApiError::InvalidSignature { expired: false };
        let now_seconds = now.timestamp();
        if query.expires < now_seconds {
            return Err(ApiError::InvalidSignature { expired: true });
        }
        // Nothing this process would sign lives longer; a longer expiry was not signed here.
        if query.expires > now_seconds + 2 * self.ttl_seconds() + SKEW_SECONDS {
            return Err(invalid);
        }
        let signature = URL_SAFE_NO_PAD
            .decode(query.signature.as_bytes())
            .map_err(|_| ApiError::InvalidSignature { expired: false })?;
        let Some(key) = self.verifying_key(query.key, now).await? else {
            return Err(invalid);
        };
        mac(&key.secret, path, query.clinic, query.expires, query.key)
            .verify_slice(&signature)
            .map_err(|_| invalid)?;
        Ok(query.clinic)
    }

    fn ttl_seconds(&self) -> i64 {
        i64::try_from(self.ttl.as_secs())
            .unwrap_or(i64::MAX / 4)
            .max(1)
    }

    /// The oldest a key may be and still have signed a URL that has not expired.
    fn oldest_verifying(&self, now: DateTime<Utc>) -> DateTime<Utc> {
        let window = KEY_SIGNS_FOR + 2 * self.ttl + Duration::from_secs(SKEW_SECONDS as u64);
        now - chrono::Duration::from_std(window).unwrap_or(chrono::Duration::MAX)
    }

    async fn signing_key(&self, now: DateTime<Utc>) -> Result<(i32, [u8; 32]), DbError> {
        let newest_signing = |ring: &Ring| {
            let youngest = now - chrono::Duration::from_std(KEY_SIGNS_FOR).unwrap_or_default();
            ring.keys
                .iter()
                .next_back()
                .filter(|(_, key)| key.created_at > youngest)
                .map(|(id, key)| (*id, key.secret))
        };
        {
            let ring = self
                .ring
                .read()
                .unwrap_or_else(|poisoned| poisoned.into_inner());
            let fresh = ring.loaded_at.is_some_and(|at| at.elapsed() < REFRESH);
            if fresh && let Some(found) = newest_signing(&ring) {
                return Ok(found);
            }
        }
        self.reload(now).await?;
        {
            let ring = self
                .ring
                .read()
                .unwrap_or_else(|poisoned| poisoned.into_inner());
            if let Some(found) = newest_signing(&ring) {
                return Ok(found);
            }
        }
        self.add_key().await
    }

    async fn verifying_key(&self, id: i32, now: DateTime<Utc>) -> Result<Option<Key>, DbError> {
        let oldest = self.oldest_verifying(now);
        let lookup = |ring: &Ring| {
            ring.keys
                .get(&id)
                .filter(|key| key.created_at >= oldest)
                .cloned()
        };
        let stale = {
            let ring = self
                .ring
                .read()
                .unwrap_or_else(|poisoned| poisoned.into_inner());
            let age = ring.loaded_at.map(|at| at.elapsed());
            if let Some(key) = lookup(&ring)
                && age.is_some_and(|age| age < REFRESH)
            {
                return Ok(Some(key));
            }
            age.is_none_or(|age| age >= MISS_REREAD)
        };
        if stale {
            self.reload(now).await?;
        }
        let ring = self
            .ring
            .read()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        Ok(lookup(&ring))
    }

    /// Replaces the copy of the keys with those young enough to verify a live URL.
    async fn reload(&self, now: DateTime<Utc>) -> Result<(), DbError> {
        let rows: Vec<(i32, Vec<u8>, DateTime<Utc>)> = sqlx::query_as(
            "SELECT id, secret, created_at FROM url_signing_keys WHERE created_at >= $1",
        )
        .bind(self.oldest_verifying(now))
        .fetch_all(&self.db)
        .await
        .map_err(DbError::from)?;
        let keys = rows
            .into_iter()
            .filter_map(|(id, secret, created_at)| {
                let secret: [u8; 32] = secret.try_into().ok()?;
                Some((id, Key { secret, created_at }))
            })
            .collect();
        let mut ring = self
            .ring
            .write()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        *ring = Ring {
            keys,
            loaded_at: Some(Instant::now()),
        };
        Ok(())
    }

    /// Adds a key (two processes may each add one at once: both sign, both verify) and deletes
    /// those past retention.
    async fn add_key(&self) -> Result<(i32, [u8; 32]), DbError> {
        let mut secret = [0u8; 32];
        rand::fill(&mut secret);
        let mut tx = self.db.begin().await.map_err(DbError::from)?;
        let (id, created_at): (i32, DateTime<Utc>) = sqlx::query_as(
            "INSERT INTO url_signing_keys (secret) VALUES ($1) RETURNING id, created_at",
        )
        .bind(secret.as_slice())
        .fetch_one(&mut *tx)
        .await
        .map_err(DbError::from)?;
        sqlx::query(
            "DELETE FROM url_signing_keys WHERE created_at < now() - make_interval(days => $1)",
        )
        .bind(KEY_RETENTION_DAYS)
        .execute(&mut *tx)
        .await
        .map_err(DbError::from)?;
        tx.commit().await.map_err(DbError::from)?;
        tracing::info!(key_id = id, "added a media URL signing key");
        let mut ring = self
            .ring
            .write()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        ring.keys.insert(id, Key { secret, created_at });
        Ok((id, secret))
    }
}

fn mac(key: &[u8; 32], path: &str, clinic: ClinicId, expires: i64, key_id: i32) -> HmacSha256 {
    let mut mac = HmacSha256::new_from_slice(key).expect("HMAC takes a key of any length");
    mac.update(format!("GET\n{path}\n{clinic}\n{expires}\n{key_id}").as_bytes());
    mac
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key() -> [u8; 32] {
        [7u8; 32]
    }

    #[test]
    fn every_signed_part_changes_the_mac() {
        let clinic = ClinicId::new_random();
        let signature = |mac: HmacSha256| mac.finalize().into_bytes().to_vec();
        let base = signature(mac(&key(), "/media/xrays/1/image", clinic, 100, 1));
        for other in [
            mac(&[8u8; 32], "/media/xrays/1/image", clinic, 100, 1),
            mac(&key(), "/media/xrays/1/thumbnail", clinic, 100, 1),
            mac(
                &key(),
                "/media/xrays/1/image",
                ClinicId::new_random(),
                100,
                1,
            ),
            mac(&key(), "/media/xrays/1/image", clinic, 101, 1),
            mac(&key(), "/media/xrays/1/image", clinic, 100, 2),
        ] {
            assert_ne!(signature(other), base);
        }
    }

    #[tokio::test]
    async fn the_base_is_the_configured_one_or_the_requests_host() {
        let pool = PgPool::connect_lazy("postgres://localhost/none").expect("lazy pool");
        let signer = UrlSigner::new(pool.clone(), Duration::from_secs(300), None);
        let mut headers = HeaderMap::new();
        assert_eq!(signer.base_for(&headers), "");
        headers.insert("host", "api.example.com".parse().expect("header"));
        assert_eq!(signer.base_for(&headers), "https://api.example.com");
        headers.insert("x-forwarded-proto", "http".parse().expect("header"));
        headers.insert("host", "localhost:4400".parse().expect("header"));
        assert_eq!(signer.base_for(&headers), "http://localhost:4400");
        headers.insert("host", "evil.com/<script>".parse().expect("header"));
        assert_eq!(signer.base_for(&headers), "");
        let configured = UrlSigner::new(
            pool,
            Duration::from_secs(300),
            Some("https://api.pulso.example/v1/".into()),
        );
        assert_eq!(
            configured.base_for(&headers),
            "https://api.pulso.example/v1"
        );
    }
}
