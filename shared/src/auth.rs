//! Who is calling: a JWT turned into an [`Identity`], then (in `shared::access`) into a
//! `Principal { user_id, clinic_id, role }` with the clinic the request acts in and the role
//! the database gives the person there.
//!
//! Two kinds of issuer may be trusted side by side, each found by the token's `iss`: Pulso's own
//! (HS256 with a configured secret: scripts, local development, tests; `sub` is the user id)
//! and a Cognito user pool (RS256 keys from its JWKS; ID tokens by `aud`, access tokens by
//! `client_id`, both by `token_use`; `(iss, sub)` is mapped to a user by `shared::access`).
//! Missing, expired or forged tokens are 401; a valid token with the wrong role is 403. Tokens
//! are never logged.

use crate::config::AuthConfig;
use crate::http::ApiError;
use crate::ids::{ClinicId, UserId};
use http::request::Parts;
use jsonwebtoken::jwk::JwkSet;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::RwLock;

#[derive(
    Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, sqlx::Type, utoipa::ToSchema,
)]
#[serde(rename_all = "snake_case")]
#[sqlx(type_name = "user_role", rename_all = "snake_case")]
pub enum Role {
    Admin,
    Dentist,
    Receptionist,
}

impl Role {
    /// Every role: what "anyone on the clinic's staff" may do.
    pub const STAFF: &'static [Role] = &[Role::Admin, Role::Dentist, Role::Receptionist];

    pub fn as_str(&self) -> &'static str {
        match self {
            Role::Admin => "admin",
            Role::Dentist => "dentist",
            Role::Receptionist => "receptionist",
        }
    }
}

/// The `x-roles` of an organization's routes: its admins (`organization_admins`), who need not
/// be on any clinic's staff (`crate::access::OrgAdmin`). Not a [`Role`]: it is held per
/// organization, not per clinic.
pub const ORG_ADMIN: &str = "org_admin";

/// The claims of Pulso's own tokens (`pulso-devtool token`, the tests): `sub` is the user id.
/// A token proves who is calling, not what they may do: a `role` claim (older tokens carry one)
/// is ignored, and `clinic_id` only chooses the clinic when the request names none.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Claims {
    pub sub: UserId,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub clinic_id: Option<ClinicId>,
    pub iss: String,
    pub aud: String,
    pub iat: i64,
    pub exp: i64,
    /// Pulso's own operators: may change what all clinics share (the global catalog, every
    /// clinic's cache). Honoured only for a person listed in `platform_operators` acting as an
    /// admin; absent means false.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub platform_admin: bool,
}

/// The claims of a Cognito user pool's ID and access tokens that Pulso reads.
#[derive(Debug, Deserialize)]
struct CognitoClaims {
    sub: String,
    /// `id` or `access`: an ID token names the app client in `aud`, an access token in
    /// `client_id` (it has no `aud`).
    token_use: String,
    #[serde(default)]
    aud: Option<String>,
    #[serde(default)]
    client_id: Option<String>,
    iat: i64,
    exp: i64,
    /// Groups only the pool's administrators can change; [`PLATFORM_GROUP`] is the
    /// platform-operator claim.
    #[serde(default, rename = "cognito:groups")]
    groups: Vec<String>,
}

/// The Cognito group whose members carry the platform-operator claim (still honoured only for
/// a person listed in `platform_operators`).
pub const PLATFORM_GROUP: &str = "pulso-platform";

/// Whom a verified token names, before Pulso looked the person up.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Subject {
    /// Pulso's own token: its `sub` is the user id.
    User(UserId),
    /// An identity provider's token: its `(iss, sub)`, which `user_identities` maps to a user.
    External { issuer: Arc<str>, subject: String },
}

/// A verified token: whom it names, the clinic its `clinic_id` claim would choose, and until
/// when it may be used.
#[derive(Clone, Debug)]
pub struct Token {
    pub subject: Subject,
    pub claimed_clinic: Option<ClinicId>,
    /// The `platform_admin` claim (Cognito: membership of [`PLATFORM_GROUP`]).
    pub platform_claim: bool,
    /// The token's `exp` (Unix seconds).
    pub expires_at: i64,
}

/// Who a verified token names, once its subject is a Pulso user.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Identity {
    pub user_id: UserId,
    pub claimed_clinic: Option<ClinicId>,
    /// The `platform_admin` claim: honoured only for a listed operator (`shared::access`).
    pub platform_claim: bool,
}

/// An authenticated caller, acting in one clinic with the role the database gives them there.
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
/// How long a fetched key set is trusted: a key the provider withdrew (rotated out, or
/// compromised) stops verifying tokens within this time.
const JWKS_FRESH_FOR: Duration = Duration::from_secs(10 * 60);
/// While the provider cannot be reached, the last key set keeps serving for this long past
/// its freshness (sign-in must not fail with every hiccup), and no longer.
const JWKS_STALE_GRACE: Duration = Duration::from_secs(60 * 60);
/// After a failed fetch, the next try waits this long, doubling per failure up to the cap, so
/// an unreachable provider does not cost every request a fetch timeout.
const JWKS_BACKOFF_FIRST: Duration = Duration::from_secs(5);
const JWKS_BACKOFF_CAP: Duration = Duration::from_secs(5 * 60);
/// Clock skew tolerated between the identity provider and Lambda.
const LEEWAY_SECONDS: u64 = 30;

pub struct Authenticator {
    /// Each trusted issuer, found by the token's `iss`.
    issuers: Vec<Issuer>,
    max_token_age: Duration,
}

struct Issuer {
    name: Arc<str>,
    keys: Keys,
    /// Algorithm, issuer, audience (first party), leeway and the claims required.
    validation: Validation,
    /// Cognito's app client: `aud` of an ID token, `client_id` of an access token.
    cognito_client: Option<String>,
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
    /// Failed fetches since the last good one, and when the last one failed.
    failures: u32,
    failed_at: Option<Instant>,
}

/// What to do for a token's `kid`, given the key set as it is.
#[derive(Debug, PartialEq, Eq)]
enum KeyPlan {
    /// Verify with the key held.
    Use,
    /// Fetch the key set first (stale, never fetched, or a `kid` that may be a rotation).
    Fetch,
    /// A `kid` the set does not have, right after a fetch: a forged or foreign token.
    Unknown,
    /// No usable key and no fetch allowed yet (backing off after failures).
    Unavailable,
}

impl JwksState {
    fn plan(&self, kid: &str, now: Instant) -> KeyPlan {
        let age = self.fetched_at.map(|at| now.duration_since(at));
        let known = self.keys.contains_key(kid);
        let fresh = age.is_some_and(|age| age < JWKS_FRESH_FOR);
        if known && fresh {
            return KeyPlan::Use;
        }
        if !self.backing_off(now) {
            // An unknown `kid` right after a fetch is not a rotation: do not let such tokens
            // make every request refetch the key set.
            return match age {
                Some(age) if !known && age < JWKS_MIN_REFRESH => KeyPlan::Unknown,
                _ => KeyPlan::Fetch,
            };
        }
        match age {
            Some(age) if known && age < JWKS_FRESH_FOR + JWKS_STALE_GRACE => KeyPlan::Use,
            Some(_) if !known && fresh => KeyPlan::Unknown,
            _ => KeyPlan::Unavailable,
        }
    }

    fn backing_off(&self, now: Instant) -> bool {
        let Some(failed_at) = self.failed_at else {
            return false;
        };
        let doublings = self.failures.saturating_sub(1).min(16);
        let backoff = JWKS_BACKOFF_FIRST
            .saturating_mul(1 << doublings)
            .min(JWKS_BACKOFF_CAP);
        now.duration_since(failed_at) < backoff
    }

    fn fetched(&mut self, keys: HashMap<String, DecodingKey>, now: Instant) {
        self.keys = keys;
        self.fetched_at = Some(now);
        self.failures = 0;
        self.failed_at = None;
    }

    fn failed(&mut self, now: Instant) {
        self.failures = self.failures.saturating_add(1);
        self.failed_at = Some(now);
    }
}

impl Authenticator {
    pub fn new(config: &AuthConfig) -> Result<Self, reqwest::Error> {
        let mut issuers = Vec::new();
        if let Some(first) = &config.first_party {
            let mut validation = validation(Algorithm::HS256, &first.issuer);
            validation.set_audience(&[&first.audience]);
            validation.set_required_spec_claims(&["exp", "sub", "iss", "aud"]);
            issuers.push(Issuer {
                name: first.issuer.as_str().into(),
                keys: Keys::Hs256(DecodingKey::from_secret(first.secret.expose().as_bytes())),
                validation,
                cognito_client: None,
            });
        }
        if let Some(cognito) = &config.cognito {
            let issuer = cognito.issuer();
            let mut validation = validation(Algorithm::RS256, &issuer);
            // Checked by `token_use` instead: an access token has no `aud`.
            validation.validate_aud = false;
            validation.set_required_spec_claims(&["exp", "sub", "iss"]);
            issuers.push(Issuer {
                name: issuer.as_str().into(),
                keys: Keys::Jwks(JwksCache {
                    url: cognito.jwks_url(),
                    // A redirect would let whoever answers the configured URL choose where the
                    // keys come from.
                    http: reqwest::Client::builder()
                        .timeout(JWKS_FETCH_TIMEOUT)
                        .redirect(reqwest::redirect::Policy::none())
                        .build()?,
                    state: RwLock::new(JwksState::default()),
                }),
                validation,
                cognito_client: Some(cognito.client_id.clone()),
            });
        }
        Ok(Self {
            issuers,
            max_token_age: config.max_token_age,
        })
    }

    /// The token, verified by the issuer it names.
    pub async fn authenticate(&self, token: &str) -> Result<Token, AuthError> {
        let header = jsonwebtoken::decode_header(token).map_err(|e| AuthError::Invalid(Some(e)))?;
        // Read unverified only to pick the issuer, whose key and rules then check everything
        // (`iss` included).
        let claimed = jsonwebtoken::dangerous::insecure_decode::<IssuerOnly>(token)
            .map_err(|e| AuthError::Invalid(Some(e)))?;
        let issuer = self
            .issuers
            .iter()
            .find(|issuer| *issuer.name == claimed.claims.iss)
            .ok_or(AuthError::Invalid(None))?;
        if header.alg != issuer.validation.algorithms[0] {
            // Never let the token choose its own algorithm (the classic `alg` confusion attack).
            return Err(AuthError::Invalid(None));
        }
        let key = match &issuer.keys {
            Keys::Hs256(key) => key.clone(),
            Keys::Jwks(cache) => {
                cache
                    .key(&header.kid.ok_or(AuthError::Invalid(None))?)
                    .await?
            }
        };
        let Some(client) = &issuer.cognito_client else {
            let claims: Claims = decode(token, &key, &issuer.validation)?;
            check_issued_at(claims.iat, now(), self.max_token_age)?;
            return Ok(Token {
                subject: Subject::User(claims.sub),
                claimed_clinic: claims.clinic_id,
                platform_claim: claims.platform_admin,
                expires_at: claims.exp,
            });
        };
        let claims: CognitoClaims = decode(token, &key, &issuer.validation)?;
        let audience = match claims.token_use.as_str() {
            "id" => claims.aud.as_deref(),
            "access" => claims.client_id.as_deref(),
            _ => None,
        };
        if audience != Some(client.as_str()) || claims.sub.is_empty() {
            return Err(AuthError::Invalid(None));
        }
        check_issued_at(claims.iat, now(), self.max_token_age)?;
        Ok(Token {
            platform_claim: claims.groups.iter().any(|group| group == PLATFORM_GROUP),
            subject: Subject::External {
                issuer: issuer.name.clone(),
                subject: claims.sub,
            },
            claimed_clinic: None,
            expires_at: claims.exp,
        })
    }
}

#[derive(Deserialize)]
struct IssuerOnly {
    iss: String,
}

/// What every issuer's tokens are checked for besides their own rules.
fn validation(algorithm: Algorithm, issuer: &str) -> Validation {
    let mut validation = Validation::new(algorithm);
    validation.set_issuer(&[issuer]);
    validation.leeway = LEEWAY_SECONDS;
    // A token that says it is not valid yet is not valid yet (checked when `nbf` is there).
    validation.validate_nbf = true;
    validation
}

fn decode<T: serde::de::DeserializeOwned>(
    token: &str,
    key: &DecodingKey,
    validation: &Validation,
) -> Result<T, AuthError> {
    jsonwebtoken::decode::<T>(token, key, validation)
        .map(|data| data.claims)
        .map_err(|error| match error.kind() {
            jsonwebtoken::errors::ErrorKind::ExpiredSignature => AuthError::Expired,
            _ => AuthError::Invalid(Some(error)),
        })
}

fn now() -> i64 {
    chrono::Utc::now().timestamp()
}

/// A token issued in the future (beyond the clock skew tolerated) is not valid; one issued
/// longer than `max_age` ago has expired, whatever its `exp` says.
fn check_issued_at(iat: i64, now: i64, max_age: Duration) -> Result<(), AuthError> {
    let leeway = LEEWAY_SECONDS as i64;
    if iat > now + leeway {
        return Err(AuthError::Invalid(None));
    }
    let max_age = i64::try_from(max_age.as_secs()).unwrap_or(i64::MAX);
    if now.saturating_sub(iat) > max_age.saturating_add(leeway) {
        return Err(AuthError::Expired);
    }
    Ok(())
}

impl JwksCache {
    async fn key(&self, kid: &str) -> Result<DecodingKey, AuthError> {
        let plan = self.state.read().await.plan(kid, Instant::now());
        if plan == KeyPlan::Fetch {
            let mut state = self.state.write().await;
            // Another caller may have fetched while this one waited for the lock.
            if state.plan(kid, Instant::now()) == KeyPlan::Fetch {
                self.refresh(&mut state).await;
            }
        }
        let state = self.state.read().await;
        match state.plan(kid, Instant::now()) {
            KeyPlan::Use => state.keys.get(kid).cloned().ok_or(AuthError::Invalid(None)),
            KeyPlan::Unknown => Err(AuthError::Invalid(None)),
            // A fetch just failed or is backing off, and no key may stand in.
            KeyPlan::Fetch | KeyPlan::Unavailable => Err(AuthError::KeysUnavailable(None)),
        }
    }

    async fn refresh(&self, state: &mut JwksState) {
        match self.fetch().await {
            Ok(set) => {
                let keys = set
                    .keys
                    .iter()
                    .filter_map(|jwk| {
                        let kid = jwk.common.key_id.clone()?;
                        DecodingKey::from_jwk(jwk).ok().map(|key| (kid, key))
                    })
                    .collect::<HashMap<_, _>>();
                tracing::info!(keys = keys.len(), "JWKS refreshed");
                state.fetched(keys, Instant::now());
            }
            Err(error) => {
                state.failed(Instant::now());
                tracing::warn!(
                    error = %crate::telemetry::ErrorChain(&error),
                    failures = state.failures,
                    "JWKS fetch failed; the last key set serves while it may"
                );
            }
        }
    }

    async fn fetch(&self) -> Result<JwkSet, reqwest::Error> {
        self.http
            .get(&self.url)
            .send()
            .await?
            .error_for_status()?
            .json()
            .await
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

/// The bearer token of a request, if it carries one.
pub(crate) fn bearer_token(parts: &Parts) -> Option<&str> {
    bearer_in(&parts.headers)
}

/// The bearer token among these headers, if any.
pub(crate) fn bearer_in(headers: &http::HeaderMap) -> Option<&str> {
    let value = headers.get(http::header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then(|| token.trim())
        .filter(|token| !token.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;

    const MINUTE: Duration = Duration::from_secs(60);

    #[test]
    fn a_token_is_as_old_as_its_iat_says_within_the_clock_skew() {
        let day = Duration::from_secs(86_400);
        let now = 1_800_000_000;
        let leeway = LEEWAY_SECONDS as i64;
        assert!(check_issued_at(now, now, day).is_ok());
        assert!(
            check_issued_at(now + leeway, now, day).is_ok(),
            "skew tolerated"
        );
        assert!(matches!(
            check_issued_at(now + leeway + 1, now, day),
            Err(AuthError::Invalid(None))
        ));
        assert!(check_issued_at(now - 86_400 - leeway, now, day).is_ok());
        assert!(matches!(
            check_issued_at(now - 86_400 - leeway - 1, now, day),
            Err(AuthError::Expired)
        ));
        assert!(matches!(
            check_issued_at(i64::MIN, now, day),
            Err(AuthError::Expired)
        ));
    }

    /// A key set holding `kid-1`, fetched at `at`.
    fn fetched_at(at: Instant) -> JwksState {
        let mut state = JwksState::default();
        let keys = HashMap::from([("kid-1".to_string(), DecodingKey::from_secret(b"k"))]);
        state.fetched(keys, at);
        state
    }

    #[test]
    fn a_fresh_key_set_answers_and_an_unknown_kid_right_after_a_fetch_is_foreign() {
        let t0 = Instant::now();
        let state = fetched_at(t0);
        assert_eq!(state.plan("kid-1", t0 + 9 * MINUTE), KeyPlan::Use);
        assert_eq!(
            state.plan("other", t0 + Duration::from_secs(30)),
            KeyPlan::Unknown
        );
        // A minute on, an unknown kid may be a rotation: fetch.
        assert_eq!(state.plan("other", t0 + 2 * MINUTE), KeyPlan::Fetch);
        assert_eq!(JwksState::default().plan("kid-1", t0), KeyPlan::Fetch);
    }

    #[test]
    fn keys_expire_after_ten_minutes() {
        let t0 = Instant::now();
        assert_eq!(
            fetched_at(t0).plan("kid-1", t0 + 10 * MINUTE),
            KeyPlan::Fetch
        );
    }

    #[test]
    fn while_the_provider_is_down_stale_keys_serve_for_an_hour_with_backoff() {
        let t0 = Instant::now();
        let mut state = fetched_at(t0);
        let failed = t0 + 11 * MINUTE;
        state.failed(failed);
        // Backing off: no fetch, the stale key serves.
        assert_eq!(
            state.plan("kid-1", failed + Duration::from_secs(4)),
            KeyPlan::Use
        );
        assert_eq!(
            state.plan("kid-1", failed + Duration::from_secs(5)),
            KeyPlan::Fetch
        );
        // Each failure doubles the wait, up to five minutes.
        for _ in 0..10 {
            state.failed(failed);
        }
        assert_eq!(state.plan("kid-1", failed + 4 * MINUTE), KeyPlan::Use);
        assert_eq!(state.plan("kid-1", failed + 5 * MINUTE), KeyPlan::Fetch);
        // Past the grace (an hour beyond freshness) nothing stands in for a fetch.
        let late = t0 + 71 * MINUTE;
        state.failed(late);
        assert_eq!(state.plan("kid-1", late), KeyPlan::Unavailable);
        // Never fetched and failing: unavailable, not a 401 for a token that may be good.
        let mut empty = JwksState::default();
        empty.failed(t0);
        assert_eq!(empty.plan("kid-1", t0), KeyPlan::Unavailable);
        // A good fetch clears the failures.
        state.fetched(HashMap::new(), late + MINUTE);
        assert!(!state.backing_off(late + MINUTE));
    }
}
