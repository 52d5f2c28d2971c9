//! The `worker` function's composition: which handler runs each job kind. Like a function's
//! `main`, this module may import contexts; the queue itself (`shared::queue`) imports none.
//!
//! A context that adds a job kind registers its handler here, one line per kind:
//! `.on(crate::xrays::XRAY_ANALYZE, crate::xrays::analyze)`.
//!
//! The queue's worker and handler registry are generic over the state handlers get; here they
//! are bound to `AppState`, and the worker's start-up (its own pool) is built.

use crate::config::Config;
use crate::media::MediaKey;
use crate::queue;
use crate::state::{AppState, StartupError};
use serde::Deserialize;

/// The handlers of Pulso's worker: each gets the `AppState` and the job.
pub type Handlers = queue::Handlers<AppState>;
/// Pulso's worker: drains the queue with `AppState` as its handlers' state.
pub type Worker = queue::Worker<AppState>;

/// Database connections of the worker besides the handlers' (claims, records, the sweep),
/// and the most the handlers get however high the concurrency.
const WORKER_CONNECTIONS: u32 = 2;
const HANDLER_CONNECTIONS_MAX: u32 = 16;

#[derive(Debug, thiserror::Error)]
pub enum WorkerStartupError {
    #[error(
        "SYSTEM_DATABASE_URL is not set: the worker claims and records jobs of every clinic, \
         which only the pulso_system role may do; set it to a pulso_system connection string \
         (locally infra/run-local writes it to .dev/env)"
    )]
    MissingSystemDatabaseUrl,
    #[error(transparent)]
    State(#[from] StartupError),
}

impl Worker {
    /// The worker's state: like any function's, except that its pool connects with
    /// `SYSTEM_DATABASE_URL` (pulso_system: one statement claims or records jobs of several
    /// clinics) and holds enough connections for the handlers running at once plus the
    /// worker's own (at most 16 for handlers; more handlers wait for a connection).
    pub fn from_config(config: Config, handlers: Handlers) -> Result<Self, WorkerStartupError> {
        let mut config = config;
        config.database = config
            .database
            .as_system()
            .ok_or(WorkerStartupError::MissingSystemDatabaseUrl)?;
        let handler_connections =
            u32::try_from(config.queue.worker_concurrency).unwrap_or(u32::MAX);
        config.database.max_connections = config
            .database
            .max_connections
            .max(handler_connections.min(HANDLER_CONNECTIONS_MAX) + WORKER_CONNECTIONS);
        Ok(Self::new(AppState::build(config)?, handlers))
    }
}

/// Every job kind Pulso runs in production. Tests and benchmarks build their own registry.
pub fn handlers() -> Handlers {
    Handlers::new()
        .on(crate::xrays::XRAY_ANALYZE, crate::xrays::analyze)
        .on(
            crate::reports::REPORT_INSURANCE,
            crate::reports::build_insurance_report,
        )
        .on(
            crate::scheduler::MEDIA_UPKEEP,
            crate::scheduler::media::upkeep,
        )
        .on(
            crate::patients::PATIENT_PHONES,
            crate::patients::normalise_phones,
        )
}

/// What S3 says through EventBridge when an object arrives (the part Pulso reads).
#[derive(Debug, serde::Deserialize)]
struct ObjectCreated {
    source: String,
    #[serde(rename = "detail-type")]
    detail_type: String,
    detail: ObjectCreatedDetail,
}

#[derive(Debug, serde::Deserialize)]
struct ObjectCreatedDetail {
    bucket: NamedBucket,
    object: CreatedObject,
}

#[derive(Debug, serde::Deserialize)]
struct NamedBucket {
    name: String,
}

#[derive(Debug, serde::Deserialize)]
struct CreatedObject {
    key: String,
}

/// An upload's file arrived (S3's "Object Created" event for `uploads/…` of the media bucket,
/// routed to the worker by the template's rule): it is completed here as the client's
/// `POST /xray-uploads/{id}/complete` would (`XrayService::complete_upload`, safe to meet that
/// call in any order), so a file whose completion call never came still becomes an X-ray, and
/// the analysis it queues is drained by this same invocation. Any other event is not one:
/// `false`. A refused file or a passing outage is logged; S3 trouble is retried by the
/// client's call or the next event, never by failing the drain.
pub async fn upload_arrived(state: &AppState, event: &serde_json::Value) -> bool {
    let Ok(created) = ObjectCreated::deserialize(event) else {
        return false;
    };
    if created.source != "aws.s3" || created.detail_type != "Object Created" {
        return false;
    }
    let ours = state
        .media
        .as_ref()
        .is_some_and(|media| media.bucket() == created.detail.bucket.name);
    let key = created.detail.object.key;
    let Some((clinic, upload)) = MediaKey::parse_upload(&key).filter(|_| ours) else {
        tracing::warn!(
            bucket = %created.detail.bucket.name,
            key = %key,
            "an object-created event for no upload of this stack's bucket; ignored"
        );
        return true;
    };
    let id = crate::ids::XrayId::from(upload);
    match crate::xrays::XrayService::new(state)
        .complete_upload(clinic, id)
        .await
    {
        Ok(uploaded) => tracing::info!(
            upload_id = %id,
            job_id = %uploaded.job_id,
            replayed = uploaded.replayed,
            "x-ray upload completed on arrival"
        ),
        Err(error) => tracing::warn!(
            upload_id = %id,
            error = %error,
            "x-ray upload not completed on arrival"
        ),
    }
    true
}

/// Whether the process was asked to drain forever outside Lambda: `worker --loop`, or
/// `WORKER_LOOP=1` (or `true`).
pub fn loop_requested(mut args: impl Iterator<Item = String>, env: Option<String>) -> bool {
    args.any(|arg| arg == "--loop")
        || env.is_some_and(|value| matches!(value.trim(), "1" | "true" | "yes"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loop_mode_comes_from_the_flag_or_the_environment() {
        let args = |list: &[&str]| list.iter().map(|a| a.to_string()).collect::<Vec<_>>();
        assert!(loop_requested(
            args(&["worker", "--loop"]).into_iter(),
            None
        ));
        assert!(loop_requested(
            args(&["worker"]).into_iter(),
            Some("1".into())
        ));
        assert!(!loop_requested(
            args(&["worker"]).into_iter(),
            Some("0".into())
        ));
        assert!(!loop_requested(args(&["worker"]).into_iter(), None));
    }
}
