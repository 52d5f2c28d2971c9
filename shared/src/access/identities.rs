//! Whom an identity provider's token names: its `(iss, sub)` mapped to a Pulso person by
//! `user_identities` (written when the person was invited, `shared::clinics::invitations`).
//! Pulso's own tokens name the person directly.
//!
//! A mapping never changes once written (what a person may do lives in their memberships), so a
//! found one is kept per instance for as long as the instance lives, within [`CAPACITY`]. An
//! identity not found is asked again after [`RECHECK_AFTER`], so someone invited a moment ago
//! is let in at their first request, while a flood of tokens naming nobody costs one indexed
//! query per identity per second at most.

use super::choice::RECHECK_AFTER;
use crate::auth::Subject;
use crate::db::{self, DbError};
use crate::http::ApiError;
use crate::ids::UserId;
use sqlx::PgPool;
use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Instant;

/// Identities kept per instance; past it the map starts again (each is one query to reload).
const CAPACITY: usize = 50_000;

type Key = (Arc<str>, String);

pub struct Identities {
    db: PgPool,
    known: Mutex<HashMap<Key, (Option<UserId>, Instant)>>,
}

impl Identities {
    pub fn new(db: PgPool) -> Self {
        Self {
            db,
            known: Mutex::new(HashMap::new()),
        }
    }

    /// The person `subject` names; 401 `/problems/unknown-user` when nobody.
    pub async fn user(&self, subject: &Subject) -> Result<UserId, ApiError> {
        let (issuer, sub) = match subject {
            Subject::User(user) => return Ok(*user),
            Subject::External { issuer, subject } => (issuer, subject),
        };
        let key = (issuer.clone(), sub.clone());
        let now = Instant::now();
        let cached = self.lock().get(&key).copied();
        let user = match cached {
            Some((Some(user), _)) => Some(user),
            Some((None, at)) if now.duration_since(at) < RECHECK_AFTER => None,
            _ => {
                let user = load(&self.db, issuer, sub)
                    .await
                    .map_err(|error| match error {
                        DbError::Unavailable(_) => error.into(),
                        error => ApiError::internal(error),
                    })?;
                let mut known = self.lock();
                if known.len() >= CAPACITY {
                    known.clear();
                }
                known.insert(key, (user, now));
                user
            }
        };
        user.ok_or_else(|| {
            tracing::info!("token of an identity no person has");
            ApiError::UnknownUser
        })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<Key, (Option<UserId>, Instant)>> {
        self.known.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

async fn load(pool: &PgPool, issuer: &str, subject: &str) -> Result<Option<UserId>, DbError> {
    let mut tx = db::begin_identity(pool, issuer, subject).await?;
    let user = sqlx::query_scalar(
        "SELECT user_id FROM user_identities WHERE issuer = $1 AND subject = $2",
    )
    .bind(issuer)
    .bind(subject)
    .fetch_optional(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok(user)
}
