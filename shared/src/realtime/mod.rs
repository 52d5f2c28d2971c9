//! Real-time notifications: the inbox in PostgreSQL, the registry of live WebSocket connections
//! in Redis, and the notifier that pushes to them through API Gateway's @connections API.
//!
//! **Store first, then push.** [`notify`] writes the notification to the inbox (its bigint id is
//! the per-inbox offset clients resume from), commits, then posts it to every live connection of
//! its audience: a user, a role in a clinic, a clinic, or everyone. A push that fails loses
//! nothing: the client reads the inbox (`GET /notifications?since=`) or asks for a replay.
//!
//! **Connections** ([`registry`]): `ws-connect` checks the token (`?token=`) and registers the
//! connection under its clinic, role and user; `ws-disconnect` removes it; a 410 Gone from
//! @connections removes it too. A registration lasts until the token expires or API Gateway's
//! 2-hour limit, whichever comes first; then the scheduler closes the connection ([`closing`]).
//!
//! **Frames** ([`ws`]): the client sends `{"action":"ping"}`, `{"action":"ack","id":N}` or
//! `{"action":"replay","since":N}`; `ws-default` answers through the route response. Pushes are
//! `{"type":"notification","notification":{…}}`. What clients see: `docs/api.md`.
//!
//! Notifications carry links and ids, never clinical text: a push travels through API Gateway and
//! sits in a browser's memory.

mod closing;
mod inbox;
mod notifier;
mod push;
pub mod registry;
mod routes;
mod types;
pub mod ws;

pub use closing::{CloseReport, close_clinic, close_ended, close_user};
pub use notifier::{ManagementApi, Notifier, PostOutcome, Recorder};
pub use push::{Delivery, PushReport, notify, notify_everyone, push};
pub use registry::{ConnectionRegistry, LiveConnection, RegistryError};
pub use routes::{router, routes};
pub use types::*;

use crate::access::Access;
use crate::auth::Role;
use crate::config::RealtimeConfig;
use crate::db::{self, DbError};
use crate::ids::{ClinicId, JobId, ReportId, UserId, XrayId};
use crate::keys::Keys;
use crate::redis::RedisConnector;
use crate::telemetry::ErrorChain;
use sqlx::PgPool;

/// What real-time delivery needs from a function's state, borrowed: the inbox's pool, the
/// registry's Redis and keys, the notifier, the push limits and the gate that admits a caller. `AppState`
/// converts into it (in `state.rs`), so callers pass `&state` and realtime never imports the
/// state that holds it.
#[derive(Clone, Copy)]
pub struct Realtime<'a> {
    pub db: &'a PgPool,
    pub redis: &'a RedisConnector,
    pub keys: &'a Keys,
    pub notifier: &'a Notifier,
    pub config: &'a RealtimeConfig,
    pub access: &'a Access,
}

/// A finished document (an analysed X-ray, a generated report), as its job announces it.
#[derive(Clone, Debug)]
pub struct DocumentReady {
    pub title: &'static str,
    /// Its kind, with the link to the document and the ids a client may want.
    pub notice: Notice,
    /// Once-only key of this document's notices, e.g. `xray-analysed:<id>`.
    pub dedupe_key: String,
}

impl DocumentReady {
    /// `xray.analysed` for `/xrays/{id}`.
    pub fn xray_analysed(xray: XrayId, job: JobId) -> Self {
        Self {
            title: "X-ray analysed",
            notice: Notice::XrayAnalysed(XrayAnalysed::new(xray, job)),
            dedupe_key: format!("xray-analysed:{xray}"),
        }
    }

    /// `report.ready` for `/reports/{id}`.
    pub fn report_ready(report: ReportId, job: JobId) -> Self {
        Self {
            title: "Insurance report ready",
            notice: Notice::ReportReady(ReportReady::new(report, job)),
            dedupe_key: format!("report-ready:{report}"),
        }
    }
}

/// Tells the user who asked for a document and the clinic's reception desk that it is ready.
///
/// Two inbox rows: one for the requester, one for the receptionists; a requester who is a
/// receptionist gets only the desk's (never the same news twice). Each row has a once-only key,
/// so a job delivered twice notifies once. Best effort: the document is ready whatever happens
/// here, and the job has succeeded; a failure is logged.
pub async fn document_ready(
    realtime: impl Into<Realtime<'_>>,
    clinic: ClinicId,
    requested_by: Option<UserId>,
    notice: DocumentReady,
) {
    let realtime = realtime.into();
    let requester = match requested_by {
        Some(user) => match requester_role(realtime, clinic, user).await {
            Ok(Some(Role::Receptionist)) => None,
            Ok(Some(_)) => Some(user),
            // Not (or no longer) on the clinic's staff: only the desk hears of it.
            Ok(None) => None,
            Err(error) => {
                tracing::warn!(error = %ErrorChain(&error), "the requester's role could not be read; notifying the desk only");
                None
            }
        },
        None => None,
    };
    let mut notices = vec![
        NewNotification::new(
            Audience::Role {
                clinic,
                role: Role::Receptionist,
            },
            notice.title,
            notice.notice.clone(),
        )
        .with_dedupe_key(format!("{}:desk", notice.dedupe_key)),
    ];
    if let Some(user) = requester {
        notices.push(
            NewNotification::new(
                Audience::User { clinic, user },
                notice.title,
                notice.notice.clone(),
            )
            .with_dedupe_key(format!("{}:requester", notice.dedupe_key)),
        );
    }
    for new in notices {
        if let Err(error) = notify(realtime, new).await {
            tracing::error!(
                kind = %notice.notice.kind(),
                error = %ErrorChain(&error),
                "a document-ready notification could not be stored"
            );
        }
    }
}

async fn requester_role(
    realtime: Realtime<'_>,
    clinic: ClinicId,
    user: UserId,
) -> Result<Option<Role>, DbError> {
    let mut tx = db::begin_tenant(realtime.db, clinic).await?;
    let role: Option<Role> = sqlx::query_scalar(
        "SELECT role FROM memberships WHERE clinic_id = $1 AND user_id = $2 AND active",
    )
    .bind(clinic)
    .bind(user)
    .fetch_optional(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok(role)
}
