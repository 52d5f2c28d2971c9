//! The gate of an organization's routes (`GET /organization`, `GET /organization/dashboard`):
//! for its `org_admin`s, who manage a chain without being on any clinic's staff.
//!
//! The token is verified and its subject mapped to a person as for every route; the person's
//! active `organization_admins` rows (one indexed query as themselves, `db::begin_user`) say
//! which organizations they may read. The one named by `Pulso-Organization` must be one of
//! them; without the header a person with exactly one acts in it, one with several gets 400.
//! Anyone else: 403. The request then counts against the caller's and the organization's
//! rate-limit buckets of its class (the organization's bucket is keyed by its id where a
//! clinic's is keyed by the clinic's: ids are UUIDs, so they never meet), and a deactivation
//! takes effect at the next request (nothing is cached: these are a manager's occasional reads).

use super::{Access, limited};
use crate::auth::{AuthError, bearer_in, bearer_token};
use crate::db::{self, DbError};
use crate::http::{ApiError, LateHeaders};
use crate::ids::{ClinicId, OrganizationId, UserId};
use crate::ratelimit::{RouteClass, Verdict, whole_seconds};
use axum::extract::{FromRef, FromRequestParts};
use http::request::Parts;
use sqlx::PgPool;
use std::sync::Arc;

/// The header naming the organization an organization route reads.
pub const ORGANIZATION_HEADER: &str = "pulso-organization";

/// An organization's admin, let in to read it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct OrgAdmin {
    pub user_id: UserId,
    pub organization_id: OrganizationId,
}

impl Access {
    /// Lets the holder of `token` read the organization `named` (or their only one).
    pub async fn admit_organization(
        &self,
        token: &str,
        named: Option<OrganizationId>,
        class: RouteClass,
    ) -> Result<(OrgAdmin, Verdict), ApiError> {
        self.admit_organization_as(token, named, class, false).await
    }

    /// `GET /me` of a person on no clinic's staff: let in as the admin of any of their
    /// organizations (the first by id) when they name none.
    pub async fn admit_organization_admin(
        &self,
        headers: &http::HeaderMap,
    ) -> Result<OrgAdmin, ApiError> {
        let token = bearer_in(headers).ok_or(AuthError::Missing)?;
        let named = named_organization(headers)?;
        let (admitted, _) = self
            .admit_organization_as(token, named, RouteClass::Reads, true)
            .await?;
        Ok(admitted)
    }

    async fn admit_organization_as(
        &self,
        token: &str,
        named: Option<OrganizationId>,
        class: RouteClass,
        any: bool,
    ) -> Result<(OrgAdmin, Verdict), ApiError> {
        let token =
            self.authenticator.authenticate(token).await.inspect_err(
                |error| tracing::info!(reason = %error, "request not authenticated"),
            )?;
        let user = self.identities.user(&token.subject).await?;
        let organizations = administered(&self.db, user)
            .await
            .map_err(|error| match error {
                DbError::Unavailable(_) => error.into(),
                error => ApiError::internal(error),
            })?;
        let organization = choose(&organizations, named, any)?;
        let bucket = ClinicId(organization.as_uuid());
        let verdict = self.limiter.check(bucket, user, class).await;
        if let Verdict::Limited { usage, retry_after } = &verdict {
            tracing::info!(class = class.as_str(), "rate limited");
            return Err(limited(usage, whole_seconds(*retry_after)));
        }
        let admitted = OrgAdmin {
            user_id: user,
            organization_id: organization,
        };
        Ok((admitted, verdict))
    }
}

/// The organizations `user` is an active admin of.
pub async fn administered(pool: &PgPool, user: UserId) -> Result<Vec<OrganizationId>, DbError> {
    let mut tx = db::begin_user(pool, user).await?;
    let organizations = sqlx::query_scalar(
        "SELECT organization_id FROM organization_admins
          WHERE user_id = $1 AND active ORDER BY organization_id",
    )
    .bind(user)
    .fetch_all(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok(organizations)
}

/// The organization to read, of those the caller administers.
fn choose(
    organizations: &[OrganizationId],
    named: Option<OrganizationId>,
    any: bool,
) -> Result<OrganizationId, ApiError> {
    let not_admin = || ApiError::Forbidden {
        detail: "This needs an administrator of the organization (GET /me lists yours).".into(),
    };
    match (named, organizations) {
        (Some(named), _) if organizations.contains(&named) => Ok(named),
        (Some(_), _) | (None, []) => Err(not_admin()),
        (None, [only]) => Ok(*only),
        (None, [first, ..]) if any => Ok(*first),
        (None, _) => Err(ApiError::BadRequest {
            detail: "You administer several organizations: name one in Pulso-Organization (GET \
                     /me lists them)."
                .into(),
            field: Some("Pulso-Organization".into()),
        }),
    }
}

impl<S> FromRequestParts<S> for OrgAdmin
where
    Arc<Access>: FromRef<S>,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let access = Arc::<Access>::from_ref(state);
        let token = bearer_token(parts).ok_or(AuthError::Missing)?;
        let named = named_organization(&parts.headers)?;
        let class = parts
            .extensions
            .get::<RouteClass>()
            .copied()
            .unwrap_or_else(|| RouteClass::for_method(&parts.method));
        let (admitted, verdict) = access.admit_organization(token, named, class).await?;
        if let (Some(late), Verdict::Allowed(usage)) =
            (parts.extensions.get::<LateHeaders>(), verdict)
        {
            late.fill(usage.headers().into());
        }
        let span = tracing::Span::current();
        span.record("user_id", tracing::field::display(admitted.user_id));
        Ok(admitted)
    }
}

/// The organization `Pulso-Organization` names, if any; 400 when it is not an id.
fn named_organization(headers: &http::HeaderMap) -> Result<Option<OrganizationId>, ApiError> {
    let Some(value) = headers.get(ORGANIZATION_HEADER) else {
        return Ok(None);
    };
    value
        .to_str()
        .ok()
        .and_then(|value| value.trim().parse().ok())
        .map(Some)
        .ok_or_else(|| ApiError::BadRequest {
            detail: "Pulso-Organization must be the id of an organization you administer (GET \
                     /me lists them)."
                .into(),
            field: Some("Pulso-Organization".into()),
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_organization_is_named_or_the_only_one() {
        let (a, b) = (OrganizationId::new_random(), OrganizationId::new_random());
        assert_eq!(choose(&[a], None, false).unwrap(), a);
        assert_eq!(choose(&[a, b], Some(b), false).unwrap(), b);
        assert!(matches!(
            choose(&[a, b], None, false),
            Err(ApiError::BadRequest { .. })
        ));
        assert_eq!(choose(&[a, b], None, true).unwrap(), a);
        assert!(matches!(
            choose(&[], None, true),
            Err(ApiError::Forbidden { .. })
        ));
        assert!(matches!(
            choose(&[a], Some(OrganizationId::new_random()), false),
            Err(ApiError::Forbidden { .. })
        ));
    }
}
