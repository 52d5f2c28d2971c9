//! Store, then push: a notification is committed to the inbox first, then posted to every live
//! connection of its audience, many at once. Each post has its own timeout, so one slow or dead
//! connection never holds up the others; a 410 Gone removes that connection from the registry.

use super::Realtime;
use super::closing;
use super::inbox;
use super::notifier::PostOutcome;
use super::registry::{ConnectionRegistry, Target};
use super::types::{Audience, NewNotification, Notification, RealtimeError, push_payload};
use crate::auth::Principal;
use crate::db::{self, TenantTx};
use crate::telemetry::ErrorChain;
use futures_util::StreamExt;
use serde::Serialize;
use std::sync::Arc;
use std::time::Instant;

/// What the push of one notification did.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct PushReport {
    /// Live connections of the audience, as the registry knows them.
    pub connections: usize,
    pub delivered: usize,
    /// Closed connections (410 Gone), now removed from the registry.
    pub gone: usize,
    /// Posts that failed or outlasted `WS_PUSH_TIMEOUT_MS`; the inbox still has the notification.
    pub failed: usize,
    /// Why nobody was pushed to at all: `off` (no `WS_ENDPOINT`), `registry_unavailable`,
    /// `duplicate` (the notification had been stored and pushed before).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub skipped: Option<&'static str>,
}

impl PushReport {
    fn skipped(reason: &'static str) -> Self {
        Self {
            skipped: Some(reason),
            ..Self::default()
        }
    }
}

/// A stored notification and what its push did.
#[derive(Clone, Debug, PartialEq)]
pub struct Delivery {
    pub notification: Notification,
    /// `false`: its dedupe key had been used; this is the notification stored then, not pushed
    /// again.
    pub created: bool,
    pub push: PushReport,
}

/// Stores `new` for its clinic audience and pushes it. Announcements to everyone go through
/// [`notify_everyone`].
pub async fn notify(
    realtime: impl Into<Realtime<'_>>,
    new: NewNotification,
) -> Result<Delivery, RealtimeError> {
    let realtime = realtime.into();
    let body = new.check()?;
    let Some(clinic) = new.audience.clinic() else {
        return Err(RealtimeError::EveryoneNeedsNotifyEveryone);
    };
    let tx = db::begin_tenant(realtime.db, clinic).await?;
    store_and_push(realtime, tx, new, body).await
}

/// Stores an announcement to every clinic and pushes it to every live connection. Only a
/// platform admin may: the row has no clinic, which row-level security admits only in a
/// platform transaction.
pub async fn notify_everyone(
    realtime: impl Into<Realtime<'_>>,
    author: &Principal,
    new: NewNotification,
) -> Result<Delivery, RealtimeError> {
    let realtime = realtime.into();
    let body = new.check()?;
    if new.audience != Audience::Everyone {
        return Err(RealtimeError::NotForEveryone);
    }
    if !author.platform_admin {
        return Err(RealtimeError::NotPlatformAdmin);
    }
    let tx = db::begin_platform(realtime.db, author.clinic_id).await?;
    store_and_push(realtime, tx, new, body).await
}

async fn store_and_push(
    realtime: Realtime<'_>,
    mut tx: TenantTx,
    new: NewNotification,
    body: serde_json::Value,
) -> Result<Delivery, RealtimeError> {
    let stored = inbox::insert(&mut tx, &new, &body).await?;
    let (notification, created) = match stored {
        Some(notification) => (notification, true),
        None => {
            let key = new.dedupe_key.as_deref().unwrap_or_default();
            let existing = inbox::find_by_dedupe_key(&mut tx, new.audience.clinic(), key)
                .await?
                .ok_or(RealtimeError::DedupeConflict)?;
            (existing, false)
        }
    };
    tx.commit().await.map_err(crate::db::DbError::from)?;
    if !created {
        tracing::info!(
            notification_id = notification.id,
            kind = %new.kind(),
            "notification already sent (same dedupe key); not pushed again"
        );
        return Ok(Delivery {
            notification,
            created,
            push: PushReport::skipped("duplicate"),
        });
    }
    let push = push(realtime, new.audience, &notification).await;
    Ok(Delivery {
        notification,
        created,
        push,
    })
}

/// Posts `notification` to every live connection of `audience`, `WS_PUSH_CONCURRENCY` at a time,
/// each within `WS_PUSH_TIMEOUT_MS`. Never fails: what could not be pushed is counted, and the
/// inbox still holds the notification.
pub async fn push(
    realtime: impl Into<Realtime<'_>>,
    audience: Audience,
    notification: &Notification,
) -> PushReport {
    let realtime = realtime.into();
    if realtime.notifier.is_off() {
        return PushReport::skipped("off");
    }
    let started = Instant::now();
    let registry = ConnectionRegistry::new(realtime);
    let targets = match registry.audience(audience).await {
        Ok(targets) => registry.still_registered(targets).await,
        Err(error) => Err(error),
    };
    let targets = match targets {
        Ok(targets) => targets,
        Err(error) => {
            tracing::warn!(
                notification_id = notification.id,
                error = %ErrorChain(&error),
                "the connection registry could not be read; the notification is in the inbox only"
            );
            return PushReport::skipped("registry_unavailable");
        }
    };
    let payload: Arc<[u8]> = push_payload(notification).into();
    let timeout = realtime.config.push_timeout;
    let concurrency = realtime.config.push_concurrency.max(1);
    let connections = targets.len();
    // Owned items: each post's future borrows only `state`, never the stream's item.
    let outcomes: Vec<PostOutcome> = futures_util::stream::iter(targets)
        .map(|target| post_one(realtime, target, payload.clone(), timeout))
        .buffer_unordered(concurrency)
        .collect()
        .await;

    let mut report = PushReport {
        connections,
        ..PushReport::default()
    };
    for outcome in &outcomes {
        match outcome {
            PostOutcome::Delivered => report.delivered += 1,
            PostOutcome::Gone => report.gone += 1,
            PostOutcome::Failed(_) => report.failed += 1,
        }
    }
    tracing::info!(
        notification_id = notification.id,
        kind = %notification.kind,
        audience = ?notification.audience,
        connections = report.connections,
        delivered = report.delivered,
        gone = report.gone,
        failed = report.failed,
        duration_ms = started.elapsed().as_secs_f64() * 1000.0,
        "notification pushed"
    );
    report
}

async fn post_one(
    realtime: Realtime<'_>,
    target: Target,
    payload: Arc<[u8]>,
    timeout: std::time::Duration,
) -> PostOutcome {
    let outcome = tokio::time::timeout(
        timeout,
        realtime.notifier.post(&target.connection_id, &payload),
    )
    .await
    .unwrap_or_else(|_| PostOutcome::Failed(format!("no answer within {timeout:?}")));
    match &outcome {
        PostOutcome::Delivered => {}
        PostOutcome::Gone => closing::forget(realtime, &target).await,
        PostOutcome::Failed(reason) => tracing::warn!(
            connection_id = %target.connection_id,
            clinic_id = %target.clinic,
            %reason,
            "push to a connection failed"
        ),
    }
    outcome
}
