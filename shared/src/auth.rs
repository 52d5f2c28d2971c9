//! Who is calling: a JWT turned into a `Principal { user_id, clinic_id, role }`.
//!
//! HS256 with a configured secret locally; RS256 keys from a JWKS endpoint (Cognito or any
//! OpenID provider) in the cloud. Missing, expired or forged tokens are 401; a valid token
//! with the wrong role is 403. Tokens are never logged.

use crate::config::{AuthConfig, JwtVerification};
use crate::http::ApiError;
use crate::ids::{ClinicId, UserId};
use axum::extract::{FromRef, FromRequestParts};
use http::request::Parts;
use jsonwebtoken::jwk::JwkSet;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::RwLock;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, sqlx::Type)]
#[serde(rename_all = "snake_case")]
#[sqlx(type_name = "user_role", rename_all = "snake_case")]
pub enum Role {
    Admin,
    Dentist,
    Receptionist,
}

impl Role {
    pub fn as_str(&self) -> &'static str {
        match self {
            Role::Admin => "admin",
            Role::Dentist => "dentist",
            Role::Receptionist => "receptionist",
        }
    }
}

/// The claims Pulso reads. `sub` is the user id; the clinic comes from here and nowhere else.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Claims {
    pub sub: UserId,
    pub clinic_id: ClinicId,
    pub role: Role,
    pub iss: String,
    pub aud: String,
    pub iat: i64,
    pub exp: i64,
    /// Pulso's own operators: may change what all clinics share (the global catalog, every
    /// clinic's cache). Only honoured together with the admin role; absent means false.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub platform_admin: bool,
}

/// An authenticated caller.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Principal {
    pub user_id: UserId,
    pub clinic_id: ClinicId,
    pub role: Role,
    pub platform_admin: bool,
}

impl Principal {
    /// 403 unless the caller has one of `roles`.
    pub fn require(&self, roles: &[Role]) -> Result<(), ApiError> {
        if roles.contains(&self.role) {
            Ok(())
        } else {
            Err(ApiError::Forbidden {
                detail: format!(
                    "This action needs one of the roles: {}.",
                    roles
                        .iter()
                        .map(Role::as_str)
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            })
        }
    }

    /// 403 unless the caller is a platform admin (an admin token with the `platform_admin` claim).
    pub fn require_platform_admin(&self) -> Result<(), ApiError> {
        if self.platform_admin {
            Ok(())
        } else {
            Err(ApiError::Forbidden {
                detail: "This action changes what every clinic shares; it needs a platform admin."
                    .into(),
            })
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    #[error("missing bearer token")]
    Missing,
    #[error("token expired")]
    Expired,
    #[error("invalid token")]
    Invalid(#[source] Option<jsonwebtoken::errors::Error>),
    /// The key set could not be fetched: the caller cannot be judged, so 503, not 401.
    #[error("signing keys unavailable")]
    KeysUnavailable(#[source] Option<reqwest::Error>),
}

/// How often an unknown `kid` may trigger a JWKS refetch (key rotation), at most.
const JWKS_MIN_REFRESH: Duration = Duration::from_secs(60);
const JWKS_FETCH_TIMEOUT: Duration = Duration::from_secs(3);
/// Clock skew tolerated between the identity provider and Lambda.
const LEEWAY_SECONDS: u64 = 30;

pub struct Authenticator {
    keys: Keys,
    validation_template: Validation,
}

enum Keys {
    Hs256(DecodingKey),
    Jwks(JwksCache),
}

struct JwksCache {
    url: String,
    http: reqwest::Client,
    state: RwLock<JwksState>,
}

#[derive(Default)]
struct JwksState {
    keys: HashMap<String, DecodingKey>,
    fetched_at: Option<Instant>,
}

impl JwksState {
    /// An unknown `kid` right after a fetch is a foreign token, not a key rotation: do not
    /// let such tokens make every request refetch the key set.
    fn recently_fetched(&self) -> bool {
        self.fetched_at
            .is_some_and(|at| at.elapsed() < JWKS_MIN_REFRESH)
    }
}

impl Authenticator {
    pub fn new(config: &AuthConfig) -> Result<Self, reqwest::Error> {
        let (keys, algorithm) = match &config.verification {
            JwtVerification::Hs256 { secret } => (
                Keys::Hs256(DecodingKey::from_secret(secret.expose().as_bytes())),
                Algorithm::HS256,
            ),
            JwtVerification::Jwks { url } => (
                Keys::Jwks(JwksCache {
                    url: url.clone(),
                    http: reqwest::Client::builder()
                        .timeout(JWKS_FETCH_TIMEOUT)
                        .build()?,
                    state: RwLock::new(JwksState::default()),
                }),
                Algorithm::RS256,
            ),
        };
        let mut validation = Validation::new(algorithm);
        validation.set_issuer(&[&config.issuer]);
        validation.set_audience(&[&config.audience]);
        validation.set_required_spec_claims(&["exp", "sub", "iss", "aud"]);
        validation.leeway = LEEWAY_SECONDS;
        Ok(Self {
            keys,
            validation_template: validation,
        })
    }

    pub async fn authenticate(&self, token: &str) -> Result<Principal, AuthError> {
        let header = jsonwebtoken::decode_header(token).map_err(|e| AuthError::Invalid(Some(e)))?;
        if header.alg != self.validation_template.algorithms[0] {
            // Never let the token choose its own algorithm (the classic `alg` confusion attack).
            return Err(AuthError::Invalid(None));
        }
        let claims = match &self.keys {
            Keys::Hs256(key) => self.decode(token, key)?,
            Keys::Jwks(cache) => {
                let kid = header.kid.ok_or(AuthError::Invalid(None))?;
                let key = cache.key(&kid).await?;
                self.decode(token, &key)?
            }
        };
        Ok(Principal {
            user_id: claims.sub,
            clinic_id: claims.clinic_id,
            role: claims.role,
            platform_admin: claims.platform_admin && claims.role == Role::Admin,
        })
    }

    fn decode(&self, token: &str, key: &DecodingKey) -> Result<Claims, AuthError> {
        jsonwebtoken::decode::<Claims>(token, key, &self.validation_template)
            .map(|data| data.claims)
            .map_err(|error| match error.kind() {
                jsonwebtoken::errors::ErrorKind::ExpiredSignature => AuthError::Expired,
                _ => AuthError::Invalid(Some(error)),
            })
    }
}

impl JwksCache {
    async fn key(&self, kid: &str) -> Result<DecodingKey, AuthError> {
        {
            let state = self.state.read().await;
            if let Some(key) = state.keys.get(kid) {
                return Ok(key.clone());
            }
            if state.recently_fetched() {
                // Fetched recently and the kid is still unknown: a forged or foreign token.
                return Err(AuthError::Invalid(None));
            }
        }
        let mut state = self.state.write().await;
        // Another caller may have refreshed while this one waited for the lock.
        if !state.keys.contains_key(kid) && !state.recently_fetched() {
            let set: JwkSet = self
                .http
                .get(&self.url)
                .send()
                .await
                .and_then(reqwest::Response::error_for_status)
                .map_err(|e| AuthError::KeysUnavailable(Some(e)))?
                .json()
                .await
                .map_err(|e| AuthError::KeysUnavailable(Some(e)))?;
            state.keys = set
                .keys
                .iter()
                .filter_map(|jwk| {
                    let kid = jwk.common.key_id.clone()?;
                    DecodingKey::from_jwk(jwk).ok().map(|key| (kid, key))
                })
                .collect();
            state.fetched_at = Some(Instant::now());
            tracing::info!(keys = state.keys.len(), "JWKS refreshed");
        }
        state.keys.get(kid).cloned().ok_or(AuthError::Invalid(None))
    }
}

/// Signs a token with a shared secret: the dev tool's `token` command and the tests.
pub fn mint_hs256(secret: &[u8], claims: &Claims) -> Result<String, jsonwebtoken::errors::Error> {
    jsonwebtoken::encode(
        &Header::new(Algorithm::HS256),
        claims,
        &EncodingKey::from_secret(secret),
    )
}

/// How a failed authentication reads at the HTTP edge: 401, or 503 when the keys to check
/// the token with could not be fetched.
impl From<AuthError> for ApiError {
    fn from(error: AuthError) -> Self {
        match error {
            AuthError::Missing => ApiError::Unauthorized {
                detail: "Send a bearer token in the Authorization header.".into(),
            },
            AuthError::Expired => ApiError::Unauthorized {
                detail: "The token has expired; sign in again.".into(),
            },
            AuthError::Invalid(_) => ApiError::Unauthorized {
                detail: "The token is not valid.".into(),
            },
            AuthError::KeysUnavailable(_) => ApiError::Unavailable {
                source: Box::new(error),
                retry_after_seconds: 5,
            },
        }
    }
}

impl<S> FromRequestParts<S> for Principal
where
    Arc<Authenticator>: FromRef<S>,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let authenticator = Arc::<Authenticator>::from_ref(state);
        let token = bearer_token(parts).ok_or(AuthError::Missing)?;
        let principal = authenticator
            .authenticate(token)
            .await
            .inspect_err(|error| {
                tracing::info!(reason = %error, "request not authenticated");
            })?;
        let span = tracing::Span::current();
        span.record("clinic_id", tracing::field::display(principal.clinic_id));
        span.record("user_id", tracing::field::display(principal.user_id));
        span.record("role", principal.role.as_str());
        Ok(principal)
    }
}

fn bearer_token(parts: &Parts) -> Option<&str> {
    let value = parts
        .headers
        .get(http::header::AUTHORIZATION)?
        .to_str()
        .ok()?;
    let (scheme, token) = value.split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then(|| token.trim())
        .filter(|token| !token.is_empty())
}
