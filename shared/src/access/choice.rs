//! Which clinic a request acts in: the one its `Pulso-Clinic` header names (`?clinic=` on the
//! WebSocket URL), else the token's `clinic_id` claim, else the caller's only active
//! membership.
//!
//! A named clinic must be one of the caller's memberships (active or not) *before* the gate
//! charges that clinic's rate-limit bucket, so nobody can spend the quota of a clinic they never
//! belonged to by naming it. The memberships come from a per-instance directory (`user →
//! [(clinic, active)]`, one indexed query on a miss) that serves them for [`FRESH_FOR`]. It only
//! ever refuses strangers or picks a default: whether a member is let in, active or not, is
//! decided by their cached standing (`standing.rs`), which a change through the API clears at
//! once, so a deactivation or a reactivation takes effect at the next request on every
//! instance. A refusal from an entry older than [`RECHECK_AFTER`] is checked against the
//! database once more before it stands, so someone added to a clinic a moment ago is let in at
//! their first request.

use crate::db::{self, DbError};
use crate::http::ApiError;
use crate::ids::{ClinicId, UserId};
use sqlx::PgPool;
use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

/// The header naming the clinic a request acts in.
pub const CLINIC_HEADER: &str = "pulso-clinic";

/// How long a directory entry picks defaults without being reloaded.
pub const FRESH_FOR: Duration = Duration::from_secs(30);
/// A refusal from an entry at least this old reloads it first.
pub const RECHECK_AFTER: Duration = Duration::from_secs(1);
/// Entries kept per instance; past it the stale ones go, then all (each is one query to reload).
const CAPACITY: usize = 10_000;

/// What a request that names no clinic acts in.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Fallback {
    /// The caller's only active clinic; with several, the request must name one (400).
    OnlyClinic,
    /// Any of the caller's active clinics (the first by id): for routes about the person, not
    /// a clinic (`GET /me`), which must answer before the frontend knows the clinics.
    AnyClinic,
}

/// One of a person's memberships, as far as choosing a clinic goes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Membership {
    pub clinic: ClinicId,
    pub active: bool,
}

/// What the database knows of a person: `None` when no such user exists.
type Memberships = Option<Arc<[Membership]>>;

struct Entry {
    memberships: Memberships,
    loaded_at: Instant,
}

pub struct Directory {
    db: PgPool,
    entries: Mutex<HashMap<UserId, Entry>>,
}

impl Directory {
    pub fn new(db: PgPool) -> Self {
        Self {
            db,
            entries: Mutex::new(HashMap::new()),
        }
    }

    /// The clinic `user` acts in: `named` if they are an active member of it, else the default
    /// (see the module header); the refusals say why.
    pub async fn choose(
        &self,
        user: UserId,
        named: Option<ClinicId>,
        claimed: Option<ClinicId>,
        fallback: Fallback,
    ) -> Result<ClinicId, ApiError> {
        if named.is_none()
            && let Some(clinic) = claimed
        {
            // Signed by the token's issuer; the standing check still applies.
            return Ok(clinic);
        }
        let now = Instant::now();
        let (memberships, loaded_at) = match self.cached(user, now) {
            Some(cached) => cached,
            None => (self.reload(user).await?, now),
        };
        match decide(memberships.as_deref(), named, fallback) {
            Err(_) if now.duration_since(loaded_at) >= RECHECK_AFTER => {
                decide(self.reload(user).await?.as_deref(), named, fallback)
            }
            decided => decided,
        }
    }

    /// The next choice for `user` reads the database again.
    pub fn forget(&self, user: UserId) {
        self.lock().remove(&user);
    }

    fn cached(&self, user: UserId, now: Instant) -> Option<(Memberships, Instant)> {
        let entries = self.lock();
        let entry = entries.get(&user)?;
        (now.duration_since(entry.loaded_at) < FRESH_FOR)
            .then(|| (entry.memberships.clone(), entry.loaded_at))
    }

    async fn reload(&self, user: UserId) -> Result<Memberships, ApiError> {
        let memberships = load(&self.db, user).await.map_err(|error| match error {
            DbError::Unavailable(_) => error.into(),
            error => ApiError::internal(error),
        })?;
        let now = Instant::now();
        let mut entries = self.lock();
        if entries.len() >= CAPACITY {
            entries.retain(|_, entry| now.duration_since(entry.loaded_at) < FRESH_FOR);
            if entries.len() >= CAPACITY {
                entries.clear();
            }
        }
        entries.insert(
            user,
            Entry {
                memberships: memberships.clone(),
                loaded_at: now,
            },
        );
        Ok(memberships)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<UserId, Entry>> {
        // A panic while holding the lock leaves a map that is still whole.
        self.entries.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// The person's memberships, active or not, seen as themselves (`db::begin_user`).
async fn load(pool: &PgPool, user: UserId) -> Result<Memberships, DbError> {
    let mut tx = db::begin_user(pool, user).await?;
    let rows: Vec<(Option<ClinicId>, Option<bool>)> = sqlx::query_as(
        "SELECT m.clinic_id, m.active
           FROM users u LEFT JOIN memberships m ON m.user_id = u.id
          WHERE u.id = $1",
    )
    .bind(user)
    .fetch_all(&mut *tx)
    .await?;
    tx.commit().await?;
    if rows.is_empty() {
        return Ok(None);
    }
    let memberships = rows
        .into_iter()
        .filter_map(|(clinic, active)| {
            Some(Membership {
                clinic: clinic?,
                active: active?,
            })
        })
        .collect();
    Ok(Some(memberships))
}

/// The clinic to act in, from what the directory holds.
pub fn decide(
    memberships: Option<&[Membership]>,
    named: Option<ClinicId>,
    fallback: Fallback,
) -> Result<ClinicId, ApiError> {
    let Some(memberships) = memberships else {
        return Err(ApiError::UnknownUser);
    };
    if let Some(named) = named {
        // Active or not is the standing's to say: this entry may predate a reactivation.
        return if memberships.iter().any(|m| m.clinic == named) {
            Ok(named)
        } else {
            Err(ApiError::NotAMember)
        };
    }
    let mut active = memberships.iter().filter(|m| m.active);
    match (active.next(), active.next()) {
        (Some(only), None) => Ok(only.clinic),
        (Some(first), Some(second)) => match fallback {
            Fallback::OnlyClinic => Err(ApiError::ClinicRequired),
            Fallback::AnyClinic => {
                Ok(active.fold(first.clinic.min(second.clinic), |min, m| min.min(m.clinic)))
            }
        },
        (None, _) if memberships.is_empty() => Err(ApiError::NotAMember),
        (None, _) => Err(ApiError::UserDeactivated),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn member(active: bool) -> Membership {
        Membership {
            clinic: ClinicId::new_random(),
            active,
        }
    }

    #[test]
    fn a_named_clinic_must_be_a_membership_and_its_standing_judges_the_rest() {
        let (a, b) = (member(true), member(false));
        let list = [a, b];
        assert_eq!(
            decide(Some(&list), Some(a.clinic), Fallback::OnlyClinic).unwrap(),
            a.clinic
        );
        assert_eq!(
            decide(Some(&list), Some(b.clinic), Fallback::OnlyClinic).unwrap(),
            b.clinic
        );
        assert!(matches!(
            decide(
                Some(&list),
                Some(ClinicId::new_random()),
                Fallback::AnyClinic
            ),
            Err(ApiError::NotAMember)
        ));
        assert!(matches!(
            decide(None, Some(a.clinic), Fallback::AnyClinic),
            Err(ApiError::UnknownUser)
        ));
    }

    #[test]
    fn without_a_name_the_only_active_membership_is_the_default() {
        let (a, b, gone) = (member(true), member(true), member(false));
        assert_eq!(
            decide(Some(&[a, gone]), None, Fallback::OnlyClinic).unwrap(),
            a.clinic
        );
        assert!(matches!(
            decide(Some(&[a, b]), None, Fallback::OnlyClinic),
            Err(ApiError::ClinicRequired)
        ));
        // About the person, not a clinic: any active one, the same one every time.
        let first = a.clinic.min(b.clinic);
        assert_eq!(
            decide(Some(&[a, b, gone]), None, Fallback::AnyClinic).unwrap(),
            first
        );
        assert_eq!(
            decide(Some(&[gone, b, a]), None, Fallback::AnyClinic).unwrap(),
            first
        );
        assert!(matches!(
            decide(Some(&[gone]), None, Fallback::AnyClinic),
            Err(ApiError::UserDeactivated)
        ));
        assert!(matches!(
            decide(Some(&[]), None, Fallback::OnlyClinic),
            Err(ApiError::NotAMember)
        ));
    }
}
