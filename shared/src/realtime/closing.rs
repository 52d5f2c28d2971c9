//! Closing the connections whose registration has ended (their token expired, or API Gateway's
//! two hours are up) and that are still open: each gets a last `token_expired` error frame, then
//! `DeleteConnection`, and leaves every index of the registry. The scheduler runs this every
//! minute, so a connection outlives its token by a minute at most; until it is closed, pushes
//! already skip it and `ack` / `replay` are refused. The close code is API Gateway's own (the
//! local gateway sends 1000): the frame before it says why.

use super::Realtime;
use super::notifier::PostOutcome;
use super::registry::{ConnectionRegistry, RegistryError, Target};
use super::types::{Audience, FrameError, ServerFrame};
use crate::ids::{ClinicId, UserId};
use crate::telemetry::ErrorChain;
use futures_util::StreamExt;
use serde::Serialize;
use std::sync::Arc;

/// What one round of closing did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct CloseReport {
    /// Ended registrations found.
    pub ended: usize,
    /// Of those, connections API Gateway closed now.
    pub closed: usize,
    /// Connections that were closed already (410 Gone).
    pub gone: usize,
    /// Closes that failed or timed out: tried again on the next round.
    pub failed: usize,
}

/// Closes every ended connection, `WS_PUSH_CONCURRENCY` at a time, each call within
/// `WS_PUSH_TIMEOUT_MS`. With push off (no `WS_ENDPOINT`) there is nothing to close through, and
/// the registrations are left to expire.
pub async fn close_ended(realtime: impl Into<Realtime<'_>>) -> Result<CloseReport, RegistryError> {
    let realtime = realtime.into();
    if realtime.notifier.is_off() {
        return Ok(CloseReport::default());
    }
    let ended = ConnectionRegistry::new(realtime).ended().await?;
    let frame: Arc<[u8]> = ServerFrame::error(
        FrameError::TokenExpired,
        "This connection's token has expired (or it reached API Gateway's two hours); it is \
         being closed. Reconnect with a fresh ?token=.",
    )
    .to_json()
    .into_bytes()
    .into();
    let outcomes: Vec<PostOutcome> = futures_util::stream::iter(ended.iter().cloned())
        .map(|target| close_one(realtime, target, frame.clone()))
        .buffer_unordered(realtime.config.push_concurrency.max(1))
        .collect()
        .await;
    let mut report = CloseReport {
        ended: ended.len(),
        ..CloseReport::default()
    };
    for outcome in outcomes {
        match outcome {
            PostOutcome::Delivered => report.closed += 1,
            PostOutcome::Gone => report.gone += 1,
            PostOutcome::Failed(_) => report.failed += 1,
        }
    }
    if report.ended > 0 {
        tracing::info!(
            ended = report.ended,
            closed = report.closed,
            gone = report.gone,
            failed = report.failed,
            "ended WebSocket connections closed"
        );
    }
    Ok(report)
}

/// Closes `user`'s connections to `clinic` now: their membership was deactivated or their role
/// changed, and a connection keeps the role it was opened with (pushes to a role reach it).
pub async fn close_user(
    realtime: impl Into<Realtime<'_>>,
    clinic: ClinicId,
    user: UserId,
) -> Result<usize, RegistryError> {
    close_revoked(realtime.into(), Audience::User { clinic, user }).await
}

/// Closes every connection to `clinic` now: it was archived.
pub async fn close_clinic(
    realtime: impl Into<Realtime<'_>>,
    clinic: ClinicId,
) -> Result<usize, RegistryError> {
    close_revoked(realtime.into(), Audience::Clinic(clinic)).await
}

/// Each connection of `audience` gets a last `access_revoked` error frame, then
/// `DeleteConnection`; every registration is removed even when a close fails, so nothing more
/// is pushed to it. How many were closed.
async fn close_revoked(realtime: Realtime<'_>, audience: Audience) -> Result<usize, RegistryError> {
    let targets = ConnectionRegistry::new(realtime).audience(audience).await?;
    let frame: Arc<[u8]> = ServerFrame::error(
        FrameError::AccessRevoked,
        "Your access to this clinic changed (deactivated, a new role, or the clinic archived): \
         this connection is being closed. Reconnect to receive what your access allows now.",
    )
    .to_json()
    .into_bytes()
    .into();
    let mut closed = 0;
    for target in targets {
        if !realtime.notifier.is_off()
            && !matches!(
                close_one(realtime, target.clone(), frame.clone()).await,
                PostOutcome::Failed(_)
            )
        {
            closed += 1;
            continue;
        }
        // Not closed (push off, or the close failed): at least nothing more reaches it.
        forget(realtime, &target).await;
    }
    if closed > 0 {
        tracing::info!(closed, "connections of a changed membership closed");
    }
    Ok(closed)
}

/// The last frame, the close, and the registry: a failed close keeps the registration, so the
/// next round tries again.
async fn close_one(realtime: Realtime<'_>, target: Target, frame: Arc<[u8]>) -> PostOutcome {
    let timeout = realtime.config.push_timeout;
    let notifier = realtime.notifier;
    // Best effort: a socket that is gone or slow is closed (or found gone) next.
    let _ = within(timeout, notifier.post(&target.connection_id, &frame)).await;
    let outcome = within(timeout, notifier.delete(&target.connection_id)).await;
    if let PostOutcome::Failed(reason) = &outcome {
        tracing::warn!(
            connection_id = %target.connection_id,
            clinic_id = %target.clinic,
            %reason,
            "closing an ended connection failed; the next round tries again"
        );
        return outcome;
    }
    forget(realtime, &target).await;
    outcome
}

/// Removes a connection that is closed (closed here, or found gone by a push) from every index.
/// A failure is logged: the connection's keys expire on their own.
pub(super) async fn forget(realtime: Realtime<'_>, target: &Target) {
    if let Err(error) = ConnectionRegistry::new(realtime)
        .remove(target.clinic, &target.connection_id, Some(&target.found_in))
        .await
    {
        tracing::warn!(
            connection_id = %target.connection_id,
            error = %ErrorChain(&error),
            "a closed connection could not be removed from the registry"
        );
    }
}

async fn within(
    timeout: std::time::Duration,
    call: impl Future<Output = PostOutcome>,
) -> PostOutcome {
    tokio::time::timeout(timeout, call)
        .await
        .unwrap_or_else(|_| PostOutcome::Failed(format!("no answer within {timeout:?}")))
}
