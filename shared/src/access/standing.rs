//! A caller's standing as the database records it: their role in the clinic, whether they are
//! active, whether they are one of Pulso's operators, whether the clinic is archived. Read in
//! one query as the token's clinic (row-level security shows only its rows), and kept in Redis
//! for `CALLER_CACHE_TTL_SECONDS` as two entries: the user's and the clinic's, so archiving a
//! clinic is one deletion and deactivating a user another.

use crate::auth::Role;
use crate::db::{self, DbError};
use crate::ids::{ClinicId, UserId};
use serde::{Deserialize, Serialize};
use sqlx::PgPool;

/// What the database says about the user, in the token's clinic.
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
    pub user: UserStanding,
    pub clinic: ClinicStanding,
}

impl Standing {
    /// The cached pair, if both entries were there and decode.
    pub fn from_cache(user: Option<&[u8]>, clinic: Option<&[u8]>) -> Option<Self> {
        Some(Self {
            user: serde_json::from_slice(user?).ok()?,
            clinic: serde_json::from_slice(clinic?).ok()?,
        })
    }

    /// `None`: no such user in that clinic (or no such clinic).
    pub async fn load(
        pool: &PgPool,
        clinic: ClinicId,
        user: UserId,
    ) -> Result<Option<Self>, DbError> {
        let mut tx = db::begin_tenant(pool, clinic).await?;
        let row: Option<(Role, bool, bool, bool)> = sqlx::query_as(
            "SELECT u.role, u.active,
                    EXISTS (SELECT 1 FROM platform_operators o WHERE o.user_id = u.id),
                    c.archived_at IS NOT NULL
               FROM users u JOIN clinics c ON c.id = u.clinic_id
              WHERE u.clinic_id = $1 AND u.id = $2",
        )
        .bind(clinic)
        .bind(user)
        .fetch_optional(&mut *tx)
        .await
        .map_err(DbError::from)?;
        tx.commit().await.map_err(DbError::from)?;
        Ok(row.map(|(role, active, operator, archived)| Self {
            user: UserStanding {
                role,
                active,
                operator,
            },
            clinic: ClinicStanding { archived },
        }))
    }
}
