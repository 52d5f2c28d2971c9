//! One claimed job's task: its handler runs under a timeout in a task of its own, and whatever
//! happens (a result, a panic, the timeout) becomes the outcome the recorder records.

use super::Worker;
use super::admission::Place;
use crate::queue::handlers::BoxedHandler;
use crate::queue::{HandlerResult, Job, JobFailure, JobLease, Outcome};
use std::time::Duration;
use tokio::sync::mpsc;
use tokio::time::Instant;
use tracing::Instrument;

/// A handler still running after this is cancelled (at its next await) and its attempt failed:
/// Lambda's own longest run, so only `worker --loop` can get there, and one stuck job does not
/// hold a slot (and renew its lease) forever.
const HANDLER_TIMEOUT: Duration = Duration::from_secs(15 * 60);

impl<S: Clone + Send + Sync + 'static> Worker<S> {
    /// Starts one leased job in its own task, holding its place (slot, share, memory) until its
    /// handler ends; its outcome goes to the recorder.
    pub(super) fn start(
        &self,
        lease: JobLease,
        place: Place,
        outcomes: mpsc::UnboundedSender<Outcome>,
    ) {
        let job = &lease.job;
        let span = tracing::info_span!(
            "job",
            job_id = %job.id,
            clinic_id = %job.clinic,
            kind = %job.kind,
            attempt = job.attempt,
            max_attempts = job.max_attempts,
        );
        let handler = self.handlers.get(&job.kind);
        let state = self.state.clone();
        tokio::spawn(
            async move {
                let result = match handler {
                    None => Err(JobFailure::Retry(format!(
                        "no handler for job kind {} in this worker",
                        lease.job.kind
                    ))),
                    Some(handler) => {
                        let started = Instant::now();
                        let result = run_handler(handler, state, lease.job.clone()).await;
                        log_result(&result, started);
                        result
                    }
                };
                drop(place);
                // The receiver lives until every sender is gone: this cannot fail while the
                // drain runs; after an abort nobody is listening anyway.
                let _ = outcomes.send(Outcome { lease, result });
            }
            .instrument(span),
        );
    }
}

fn log_result(result: &HandlerResult, started: Instant) {
    let duration_ms = started.elapsed().as_secs_f64() * 1000.0;
    match result {
        Ok(_) => tracing::info!(duration_ms, "job succeeded"),
        Err(failure) => tracing::warn!(duration_ms, error = %failure, "job attempt failed"),
    }
}

/// Runs `handler` in its own task: a panic (even in the handler's synchronous part) ends that
/// task, not the job's, nor the worker.
async fn run_handler<S: Send + 'static>(
    handler: BoxedHandler<S>,
    state: S,
    job: Job,
) -> HandlerResult {
    let run = tokio::spawn(async move { handler(state, job).await }.in_current_span());
    let abort = run.abort_handle();
    match tokio::time::timeout(HANDLER_TIMEOUT, run).await {
        Ok(Ok(result)) => result,
        Ok(Err(error)) if error.is_panic() => {
            Err(JobFailure::Retry("the job's handler panicked".into()))
        }
        Ok(Err(_)) => Err(JobFailure::Retry("the job's handler was cancelled".into())),
        Err(_) => {
            abort.abort();
            Err(JobFailure::Retry(format!(
                "the job's handler ran longer than {} minutes",
                HANDLER_TIMEOUT.as_secs() / 60
            )))
        }
    }
}
