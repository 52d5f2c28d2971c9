//! The gate every authenticated request passes: the token says who is calling, the database
//! says where and as what they may act, the rate limiter says whether now.
//!
//! 1. The token is verified (`shared::auth`): 401 when missing, expired or forged; an identity
//!    provider's `(iss, sub)` is mapped to a person (`identities.rs`), 401
//!    `/problems/unknown-user` when it names nobody.
//! 2. The clinic the request acts in is chosen (`choice.rs`): the `Pulso-Clinic` header, else
//!    the token's `clinic_id` claim, else the caller's only active membership; 400
//!    `/problems/clinic-required` when they have several and named none, 403
//!    `/problems/not-a-member` for a clinic they do not belong to, before anything is charged
//!    to that clinic.
//! 3. One Redis call charges the request to the caller's and the clinic's buckets of the route's
//!    class (`shared::ratelimit`) and reads the caller's cached standing beside them: 429 when a
//!    bucket is full. A handler that reads one cached value first has it read in the same call
//!    ([`Caller`], `shared::cache::Prefetched`).
//! 4. The standing (`standing.rs`) comes from that read, or from PostgreSQL on a miss (then it
//!    is cached for `CALLER_CACHE_TTL_SECONDS`): 401 `/problems/unknown-user` when the token
//!    names no user, 403 `/problems/not-a-member`, `/problems/user-deactivated` (the membership
//!    is inactive) or `/problems/clinic-archived`. The role used is the membership's, not the
//!    token's; the platform-operator power needs the token's claim *and* a `platform_operators`
//!    row.
//!
//! Whatever changes a membership, a user or a clinic calls [`Access::forget_user`] /
//! [`Access::forget_clinic`] after its commit, so the change takes effect at the next request;
//! a change made behind the API's back takes effect within the cache's lifetime. Redis down:
//! requests pass unthrottled and every standing is read from PostgreSQL.

mod choice;
mod identities;
mod organization;
mod standing;

pub use choice::{CLINIC_HEADER, Fallback, Membership};
pub use organization::{ORGANIZATION_HEADER, OrgAdmin, administered};
pub use standing::{ClinicStanding, Standing, UserStanding};

use crate::auth::{AuthError, Authenticator, Identity, Principal, Role, bearer_token};
use crate::cache::Prefetched;
use crate::config::AccessConfig;
use crate::db::DbError;
use crate::http::ApiError;
use crate::http::LateHeaders;
use crate::ids::{ClinicId, UserId};
use crate::keys::{CacheKey, Keys};
use crate::ratelimit::{RateLimiter, RouteClass, Scope, Usage, Verdict, whole_seconds};
use crate::redis::{RedisConnector, RedisFailure};
use crate::telemetry::ErrorChain;
use ::redis::AsyncCommands;
use axum::extract::{FromRef, FromRequestParts};
use choice::Directory;
use http::request::Parts;
use identities::Identities;
use sqlx::PgPool;
use std::sync::Arc;
use std::time::Duration;

/// The rate-limit "user" of a clinic's signed media links: no staff member has the nil id.
const SIGNED_LINKS: UserId = UserId(uuid::Uuid::nil());

pub struct Access {
    authenticator: Authenticator,
    identities: Identities,
    directory: Directory,
    db: PgPool,
    redis: Arc<RedisConnector>,
    keys: Keys,
    limiter: RateLimiter,
    standing_ttl: Duration,
}

/// A caller let in, until when their token is valid, and where they stand against their rate
/// limits (`None`: not checked).
#[derive(Debug)]
pub struct Admitted {
    pub principal: Principal,
    /// The token's `exp` (Unix seconds): a WebSocket lives no longer.
    pub token_expires_at: i64,
    pub usage: Option<Usage>,
}

impl Access {
    pub fn new(
        authenticator: Authenticator,
        db: PgPool,
        redis: Arc<RedisConnector>,
        keys: Keys,
        config: &AccessConfig,
    ) -> Self {
        Self {
            authenticator,
            limiter: RateLimiter::new(redis.clone(), keys.clone(), config.limits.clone()),
            identities: Identities::new(db.clone()),
            directory: Directory::new(db.clone()),
            db,
            redis,
            keys,
            standing_ttl: config.standing_ttl,
        }
    }

    /// Lets the holder of `token` make a request of `class` in the clinic `named` (or their
    /// default one), or says why not.
    pub async fn admit(
        &self,
        token: &str,
        named: Option<ClinicId>,
        class: RouteClass,
    ) -> Result<Admitted, ApiError> {
        let verified = self.verify(token, named, Fallback::OnlyClinic).await?;
        Ok(self.let_in(verified, class, None).await?.0)
    }

    /// Steps 1 and 2: who the token says is calling, until when, and in which clinic.
    async fn verify(
        &self,
        token: &str,
        named: Option<ClinicId>,
        fallback: Fallback,
    ) -> Result<Verified, ApiError> {
        let token =
            self.authenticator.authenticate(token).await.inspect_err(
                |error| tracing::info!(reason = %error, "request not authenticated"),
            )?;
        let identity = Identity {
            user_id: self.identities.user(&token.subject).await?,
            claimed_clinic: token.claimed_clinic,
            platform_claim: token.platform_claim,
        };
        let expires_at = token.expires_at;
        let clinic = self
            .directory
            .choose(identity.user_id, named, identity.claimed_clinic, fallback)
            .await
            .inspect_err(|error| tracing::info!(reason = %error, "no clinic to act in"))?;
        Ok(Verified {
            identity,
            clinic,
            expires_at,
        })
    }

    /// Steps 3 and 4 for a verified token; `reading` is the cached value the request reads
    /// first, read in the same Redis call (`Prefetched`).
    async fn let_in(
        &self,
        verified: Verified,
        class: RouteClass,
        reading: Option<&CacheKey>,
    ) -> Result<(Admitted, Prefetched), ApiError> {
        let (clinic, user) = (verified.clinic, verified.identity.user_id);
        let entries = [
            self.keys.caller_user(clinic, user),
            self.keys.caller_clinic(clinic),
        ];
        let ahead = reading.map_or_else(Vec::new, |key| Prefetched::keys(key, clinic));
        let reads = [entries.as_slice(), ahead.as_slice()].concat();
        let (verdict, mut values) = self
            .limiter
            .check_and_read(clinic, user, class, &reads)
            .await;
        let usage = match verdict {
            Verdict::Allowed(usage) => Some(usage),
            Verdict::Unchecked => None,
            Verdict::Limited { usage, retry_after } => {
                tracing::info!(
                    class = class.as_str(),
                    policy = %usage.tightest.name(),
                    "rate limited"
                );
                return Err(limited(&usage, whole_seconds(retry_after)));
            }
        };
        let prefetched = match (reading, usage.is_some()) {
            (Some(key), true) => Prefetched::from_replies(key, values.split_off(entries.len())),
            _ => Prefetched::default(),
        };
        let standing = match Standing::from_cache(values[0].as_deref(), values[1].as_deref()) {
            Some(standing) => standing,
            None => {
                let standing = self.load(clinic, user).await?;
                if usage.is_some() {
                    self.remember(clinic, user, &standing, &entries).await;
                }
                standing
            }
        };
        let principal = judge(&verified, standing)?;
        let admitted = Admitted {
            principal,
            token_expires_at: verified.expires_at,
            usage,
        };
        Ok((admitted, prefetched))
    }

    /// Lets a request made with a signed media URL of `clinic` in (`crate::signed_urls`; it has
    /// no token, so no user): it counts against the clinic's read limit, and against one bucket
    /// at a user's read limit shared by every link of the clinic, so a leaked or looping link
    /// cannot take what the clinic's staff share. Called after the signature was verified, so a
    /// forged link costs the clinic nothing.
    pub async fn admit_signed(&self, clinic: ClinicId) -> Result<(), ApiError> {
        match self
            .limiter
            .check(clinic, SIGNED_LINKS, RouteClass::Reads)
            .await
        {
            Verdict::Allowed(_) | Verdict::Unchecked => Ok(()),
            Verdict::Limited { usage, retry_after } => {
                tracing::info!(policy = %usage.tightest.name(), "signed link rate limited");
                Err(limited(&usage, whole_seconds(retry_after)))
            }
        }
    }

    /// The next request of `user` in `clinic` reads their standing from the database again
    /// (and, on this instance, their memberships).
    pub async fn forget_user(&self, clinic: ClinicId, user: UserId) -> Result<(), RedisFailure> {
        self.directory.forget(user);
        self.forget(self.keys.caller_user(clinic, user)).await
    }

    /// The next request of anyone in `clinic` reads the clinic's standing again.
    pub async fn forget_clinic(&self, clinic: ClinicId) -> Result<(), RedisFailure> {
        self.forget(self.keys.caller_clinic(clinic)).await
    }

    async fn forget(&self, key: String) -> Result<(), RedisFailure> {
        let mut connection = self.redis.connection().await?;
        connection.del::<_, ()>(key).await?;
        Ok(())
    }

    async fn load(&self, clinic: ClinicId, user: UserId) -> Result<Standing, ApiError> {
        match Standing::load(&self.db, clinic, user).await {
            Ok(Some(standing)) => Ok(standing),
            Ok(None) => {
                tracing::info!("token of an unknown user");
                Err(ApiError::UnknownUser)
            }
            Err(error @ DbError::Unavailable(_)) => Err(error.into()),
            Err(error) => Err(ApiError::internal(error)),
        }
    }

    /// Caches both entries; a failure only costs the next request a query.
    async fn remember(
        &self,
        clinic: ClinicId,
        user: UserId,
        standing: &Standing,
        entries: &[String; 2],
    ) {
        let ttl = u64::try_from(self.standing_ttl.as_millis()).unwrap_or(u64::MAX);
        let user_entry = serde_json::to_string(&standing.user).unwrap_or_default();
        let clinic_entry = serde_json::to_string(&standing.clinic).unwrap_or_default();
        let stored = async {
            let mut connection = self.redis.connection().await?;
            ::redis::pipe()
                .pset_ex(&entries[0], user_entry, ttl)
                .ignore()
                .pset_ex(&entries[1], clinic_entry, ttl)
                .ignore()
                .query_async::<()>(&mut connection)
                .await?;
            Ok::<_, RedisFailure>(())
        };
        if let Err(error) = stored.await {
            tracing::warn!(%clinic, %user, error = %ErrorChain(&error), "caller standing not cached");
        }
    }
}

/// The 429 of a full bucket, naming whose.
fn limited(usage: &Usage, retry_after_seconds: u64) -> ApiError {
    let whose = match usage.tightest.scope {
        Scope::User => "you",
        Scope::Clinic => "your clinic",
    };
    ApiError::RateLimited {
        retry_after_seconds,
        detail: format!(
            "Too many {} requests from {whose}; retry in {retry_after_seconds} s.",
            usage.tightest.class.as_str()
        ),
        headers: usage.headers().into(),
    }
}

/// A verified token and the clinic chosen for it, not yet let in.
#[derive(Clone, Copy, Debug)]
struct Verified {
    identity: Identity,
    clinic: ClinicId,
    /// The token's `exp` (Unix seconds).
    expires_at: i64,
}

/// The principal the request runs as: the token's person, in the chosen clinic, with the
/// membership's role.
fn judge(verified: &Verified, standing: Standing) -> Result<Principal, ApiError> {
    let (Some(member), Some(clinic)) = (standing.user, standing.clinic) else {
        tracing::info!("caller not a member of the clinic");
        return Err(ApiError::NotAMember);
    };
    if !member.active {
        tracing::info!("membership deactivated");
        return Err(ApiError::UserDeactivated);
    }
    if clinic.archived {
        tracing::info!("clinic archived");
        return Err(ApiError::ClinicArchived);
    }
    let role = member.role;
    Ok(Principal {
        user_id: verified.identity.user_id,
        clinic_id: verified.clinic,
        role,
        platform_admin: verified.identity.platform_claim && member.operator && role == Role::Admin,
    })
}

/// A caller whose token verified, not yet let in. A handler that reads one cached value first
/// takes a `Caller` instead of a [`Principal`] and names that value when it lets the caller in
/// ([`Caller::admit_reading`]): the gate's Redis call then reads it too, and a cache hit costs
/// the request one round trip instead of two.
pub struct Caller {
    access: Arc<Access>,
    verified: Verified,
    class: RouteClass,
    late: Option<LateHeaders>,
}

impl Caller {
    /// The clinic chosen for the request (its standing not yet checked).
    pub fn clinic_id(&self) -> ClinicId {
        self.verified.clinic
    }

    /// Lets the caller in, reading the cached value of `key` on the way (a key of the caller's
    /// clinic; any other is read by the handler as usual).
    pub async fn admit_reading(self, key: &CacheKey) -> Result<(Principal, Prefetched), ApiError> {
        self.admit(Some(key)).await
    }

    async fn admit(self, reading: Option<&CacheKey>) -> Result<(Principal, Prefetched), ApiError> {
        let (admitted, prefetched) = self
            .access
            .let_in(self.verified, self.class, reading)
            .await?;
        if let (Some(late), Some(usage)) = (self.late, admitted.usage) {
            late.fill(usage.headers().into());
        }
        let principal = admitted.principal;
        let span = tracing::Span::current();
        span.record("clinic_id", tracing::field::display(principal.clinic_id));
        span.record("user_id", tracing::field::display(principal.user_id));
        span.record("role", principal.role.as_str());
        Ok((principal, prefetched))
    }
}

/// The route's class is the one its router declared (`Extension(RouteClass::…)`), else what its
/// method says.
impl<S> FromRequestParts<S> for Caller
where
    Arc<Access>: FromRef<S>,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        Caller::from_parts(parts, state, Fallback::OnlyClinic).await
    }
}

impl Caller {
    async fn from_parts<S>(parts: &Parts, state: &S, fallback: Fallback) -> Result<Self, ApiError>
    where
        Arc<Access>: FromRef<S>,
    {
        let access = Arc::<Access>::from_ref(state);
        let token = bearer_token(parts).ok_or(AuthError::Missing)?;
        let verified = access.verify(token, named_clinic(parts)?, fallback).await?;
        let class = parts
            .extensions
            .get::<RouteClass>()
            .copied()
            .unwrap_or_else(|| RouteClass::for_method(&parts.method));
        Ok(Self {
            access,
            verified,
            class,
            late: parts.extensions.get::<LateHeaders>().cloned(),
        })
    }
}

/// The clinic the `Pulso-Clinic` header names, if any; 400 when it is not a clinic id.
fn named_clinic(parts: &Parts) -> Result<Option<ClinicId>, ApiError> {
    let Some(value) = parts.headers.get(CLINIC_HEADER) else {
        return Ok(None);
    };
    value
        .to_str()
        .ok()
        .and_then(|value| value.trim().parse().ok())
        .map(Some)
        .ok_or_else(|| ApiError::BadRequest {
            detail: "Pulso-Clinic must be the id of a clinic you belong to (GET /me lists them)."
                .into(),
            field: Some("Pulso-Clinic".into()),
        })
}

/// Any route with a `Principal` (or a [`Caller`]) argument is behind the gate.
impl<S> FromRequestParts<S> for Principal
where
    Arc<Access>: FromRef<S>,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let caller = Caller::from_request_parts(parts, state).await?;
        Ok(caller.admit(None).await?.0)
    }
}

/// A caller of a route about the person rather than a clinic (`GET /me`): let in like any
/// other, but one with several clinics who names none acts in one of them (see
/// [`Fallback::AnyClinic`]) instead of being asked to choose.
pub struct Person(pub Principal);

impl<S> FromRequestParts<S> for Person
where
    Arc<Access>: FromRef<S>,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let caller = Caller::from_parts(parts, state, Fallback::AnyClinic).await?;
        Ok(Person(caller.admit(None).await?.0))
    }
}

#[cfg(test)]
mod tests;
