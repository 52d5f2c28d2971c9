//! Inviting people: `POST /staff` (a clinic's admin adds someone by email, with a role) and
//! onboarding's first admin (`onboarding.rs`) take the same steps, each safe to repeat:
//!
//! 1. What PostgreSQL knows is read first. A member with this email and role already: the same
//!    answer again (200), nothing else done. A member with another role, or deactivated: 409
//!    `/problems/already-member` (`PATCH /staff/{id}` changes a membership).
//! 2. The identity provider (`shared::identity`) creates the person, which sends them the
//!    invitation with a temporary password, or finds them when it has them already (a dentist
//!    joining a second clinic; a retry).
//! 3. One transaction: the person (found by email, else created), their identity
//!    `(issuer, sub)`, the membership and its audit event.
//!
//! A failure between 2 and 3 leaves a person in the pool with no membership, who cannot do
//! anything (a token naming an identity no person has is 401): the same request again finds
//! them in the pool and completes step 3. Two identical requests at once make one membership.

use super::repository;
use super::types::{StaffMember, StaffRow};
use crate::audit::{self, Action, Actor, Changes, FieldPolicy};
use crate::auth::{Principal, Role};
use crate::contact::Email;
use crate::db::{self, DbError};
use crate::http::{ApiError, ConflictKind};
use crate::identity::{IdentityError, PoolUser};
use crate::ids::{ClinicId, UserId};
use crate::input::InputError;
use crate::state::AppState;
use crate::telemetry::ErrorChain;
use crate::text::{hex_color, single_line};
use serde::Deserialize;
use sqlx::PgConnection;
use utoipa::ToSchema;

/// A new membership records everything but the person's name and derived initials.
const CREATED: FieldPolicy = FieldPolicy {
    ignored: &["full_name", "initials"],
    redacted: &[],
};

/// `POST /staff`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct InviteStaffRequest {
    /// The address the invitation goes to, and the person's sign-in name.
    #[schema(max_length = 254, example = "ana.ruiz@example.com")]
    pub email: String,
    /// Used when Pulso does not know the person yet; someone who works at another clinic keeps
    /// their name.
    #[schema(min_length = 1, max_length = 200, example = "Ana Ruiz")]
    pub full_name: String,
    pub role: Role,
    /// The calendar colour, `#rrggbb`; absent: one derived from the id.
    #[schema(pattern = "^#[0-9a-fA-F]{6}$")]
    pub color: Option<String>,
}

/// A validated invitation.
pub struct Invitation {
    pub email: Email,
    pub full_name: String,
    pub role: Role,
    pub color: Option<String>,
}

impl TryFrom<InviteStaffRequest> for Invitation {
    type Error = InputError;

    fn try_from(request: InviteStaffRequest) -> Result<Self, InputError> {
        Ok(Self {
            email: Email::parse("email", &request.email)?,
            full_name: single_line("full_name", &request.full_name, 200)?,
            role: request.role,
            color: request
                .color
                .map(|color| hex_color("color", &color))
                .transpose()?,
        })
    }
}

/// Makes the person a member of the caller's clinic (`true`), or answers the membership an
/// identical earlier request made (`false`).
pub async fn invite(
    state: &AppState,
    principal: &Principal,
    actor: &Actor,
    invitation: Invitation,
) -> Result<(StaffMember, bool), ApiError> {
    let clinic = principal.clinic_id;
    let mut tx = begin_inviting(state, clinic, &invitation.email).await?;
    let existing = repository::member_by_email(&mut tx, clinic, invitation.email.as_str())
        .await
        .map_err(DbError::from)?;
    tx.commit().await.map_err(DbError::from)?;
    if let Some(row) = existing {
        return Ok((same_invitation(row, &invitation)?, false));
    }
    let pool_user = provision(state, &invitation.email, &invitation.full_name).await?;
    let mut tx = begin_inviting(state, clinic, &invitation.email).await?;
    let user = person(&mut tx, &invitation.email, &invitation.full_name).await?;
    let inserted = sqlx::query(
        "INSERT INTO memberships (clinic_id, user_id, role, calendar_color)
         VALUES ($1, $2, $3, $4) ON CONFLICT DO NOTHING",
    )
    .bind(clinic)
    .bind(user)
    .bind(invitation.role)
    .bind(&invitation.color)
    .execute(&mut *tx)
    .await
    .map_err(DbError::from)?
    .rows_affected();
    let row = repository::member(&mut tx, clinic, user, false)
        .await
        .map_err(DbError::from)?
        .ok_or(ApiError::NotFound {
            what: "staff member",
        })?;
    if inserted == 0 {
        // An identical request made it a moment ago.
        tx.commit().await.map_err(DbError::from)?;
        return Ok((same_invitation(row, &invitation)?, false));
    }
    if let Some(pool_user) = &pool_user {
        link(&mut tx, pool_user, user).await?;
    }
    let member = StaffMember::from(row);
    let changes = Changes::between(None, Some(&member), &CREATED);
    audit::record(
        &mut tx,
        actor,
        Some(clinic),
        Action::MembershipCreate,
        &user.to_string(),
        &changes,
    )
    .await
    .map_err(DbError::from)?;
    tx.commit().await.map_err(DbError::from)?;
    // Someone who works elsewhere now has one more clinic to choose from.
    if let Err(error) = state.access.forget_user(clinic, user).await {
        tracing::warn!(error = %ErrorChain(&error), "the invited person's cached standing was not cleared");
    }
    Ok((member, true))
}

/// A tenant transaction of `clinic` that sees the person with `email`, whichever clinic they
/// work at (the `users_invited` policy).
async fn begin_inviting(
    state: &AppState,
    clinic: ClinicId,
    email: &Email,
) -> Result<db::TenantTx, ApiError> {
    let mut tx = db::begin_tenant(&state.db, clinic).await?;
    sqlx::query("SELECT set_config('app.invite_email', $1, true)")
        .bind(email.as_str())
        .execute(&mut *tx)
        .await
        .map_err(DbError::from)?;
    Ok(tx)
}

/// The existing member, if the invitation asks for what they are; 409 otherwise.
fn same_invitation(row: StaffRow, invitation: &Invitation) -> Result<StaffMember, ApiError> {
    let member = StaffMember::from(row);
    if member.active && member.role == invitation.role {
        return Ok(member);
    }
    let standing = if member.active {
        format!("as {}", member.role.as_str())
    } else {
        "deactivated".to_owned()
    };
    Err(ApiError::Conflict {
        kind: ConflictKind::AlreadyMember,
        detail: format!(
            "{} is a member of this clinic already, {standing}: change the membership with \
             PATCH /staff/{}.",
            member.email, member.id
        ),
        field: Some("email".into()),
    })
}

/// Step 2: the person in the identity provider, when there is one.
pub(super) async fn provision(
    state: &AppState,
    email: &Email,
    full_name: &str,
) -> Result<Option<PoolUser>, ApiError> {
    let Some(provider) = &state.identity else {
        return Ok(None);
    };
    match provider.invite(email, full_name).await {
        Ok(pool_user) => {
            tracing::info!(
                created = pool_user.created,
                "person ready in the identity provider"
            );
            Ok(Some(pool_user))
        }
        Err(IdentityError::Refused(reason)) => {
            tracing::info!(%reason, "the identity provider refused the address");
            Err(
                InputError::invalid("email", "is not an address the sign-in service accepts")
                    .into(),
            )
        }
        Err(error @ IdentityError::Unavailable(_)) => Err(ApiError::Unavailable {
            source: Box::new(error),
            retry_after_seconds: 5,
        }),
    }
}

/// The person with this email, created when Pulso does not know them yet. The transaction must
/// see people by email (an inviting or a platform one).
pub(super) async fn person(
    conn: &mut PgConnection,
    email: &Email,
    full_name: &str,
) -> Result<UserId, ApiError> {
    let known: Option<UserId> = sqlx::query_scalar("SELECT id FROM users WHERE email = $1")
        .bind(email.as_str())
        .fetch_optional(&mut *conn)
        .await
        .map_err(DbError::from)?;
    if let Some(user) = known {
        return Ok(user);
    }
    let user = UserId::new_random();
    sqlx::query("INSERT INTO users (id, email, full_name) VALUES ($1, $2, $3)")
        .bind(user)
        .bind(email.as_str())
        .bind(full_name)
        .execute(conn)
        .await
        .map_err(DbError::from)?;
    Ok(user)
}

/// Step 3's identity: the provider's `(issuer, sub)` names this person from now on. Called once
/// the person is a member of the transaction's clinic (what the `user_identities` policy asks).
pub(super) async fn link(
    conn: &mut PgConnection,
    pool_user: &PoolUser,
    user: UserId,
) -> Result<(), ApiError> {
    let linked: Option<UserId> = sqlx::query_scalar(
        "WITH inserted AS (
             INSERT INTO user_identities (issuer, subject, user_id) VALUES ($1, $2, $3)
             ON CONFLICT DO NOTHING RETURNING user_id)
         SELECT user_id FROM inserted
          UNION ALL
         SELECT user_id FROM user_identities WHERE issuer = $1 AND subject = $2",
    )
    .bind(&pool_user.issuer)
    .bind(&pool_user.subject)
    .bind(user)
    .fetch_optional(conn)
    .await
    .map_err(DbError::from)?;
    match linked {
        Some(linked) if linked == user => Ok(()),
        // Emails are unique and never change in Pulso, so the provider's user for an address
        // is always the same person's: this is data changed behind the API's back.
        _ => Err(ApiError::internal(std::io::Error::other(
            "the identity provider's user for this address names another person",
        ))),
    }
}
