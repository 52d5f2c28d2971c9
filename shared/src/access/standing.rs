//! A caller's standing as the database records it in the clinic the request acts in: their
//! membership (role, active), whether they are one of Pulso's operators, whether the clinic is
//! archived. Read in one query (`db::begin_member`: the clinic's rows, and the caller as
//! themselves), and kept in Redis for `CALLER_CACHE_TTL_SECONDS` as two entries: the
//! membership's and the clinic's, so archiving a clinic is one deletion and deactivating a
//! membership another. "Not a member" and "no such clinic" are cached too (as `null`), so a
//! refused caller costs no query per request.

use crate::auth::Role;
use crate::db::{self, DbError};
use crate::ids::{ClinicId, UserId};
use serde::{Deserialize, Serialize};
use sqlx::PgPool;

/// The caller's membership of the clinic.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct UserStanding {
    pub role: Role,
    pub active: bool,
    /// Listed in `platform_operators`.
    pub operator: bool,
}

/// What the database says about the clinic.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClinicStanding {
    pub archived: bool,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Standing {
    /// `None`: not a member of the clinic.
    pub user: Option<UserStanding>,
    /// `None`: no such clinic.
    pub clinic: Option<ClinicStanding>,
}

impl Standing {
    /// The cached pair, if both entries were there and decode.
    pub fn from_cache(user: Option<&[u8]>, clinic: Option<&[u8]>) -> Option<Self> {
        Some(Self {
            user: serde_json::from_slice(user?).ok()?,
            clinic: serde_json::from_slice(clinic?).ok()?,
        })
    }

    /// `None`: no such user.
    pub async fn load(
        pool: &PgPool,
        clinic: ClinicId,
        user: UserId,
    ) -> Result<Option<Self>, DbError> {
        let mut tx = db::begin_member(pool, clinic, user).await?;
        let row: Option<StandingRow> = sqlx::query_as(
            "SELECT m.role, m.active,
                    EXISTS (SELECT 1 FROM platform_operators o WHERE o.user_id = u.id)
                        AS operator,
                    (SELECT c.archived_at IS NOT NULL FROM clinics c WHERE c.id = $1)
                        AS archived
               FROM users u
               LEFT JOIN memberships m ON m.clinic_id = $1 AND m.user_id = u.id
              WHERE u.id = $2",
        )
        .bind(clinic)
        .bind(user)
        .fetch_optional(&mut *tx)
        .await
        .map_err(DbError::from)?;
        tx.commit().await.map_err(DbError::from)?;
        Ok(row.map(|row| Self {
            user: row.role.zip(row.active).map(|(role, active)| UserStanding {
                role,
                active,
                operator: row.operator,
            }),
            clinic: row.archived.map(|archived| ClinicStanding { archived }),
        }))
    }
}

/// The person, their membership of the clinic (NULLs: none) and the clinic (NULL: none).
#[derive(sqlx::FromRow)]
struct StandingRow {
    role: Option<Role>,
    active: Option<bool>,
    operator: bool,
    archived: Option<bool>,
}
