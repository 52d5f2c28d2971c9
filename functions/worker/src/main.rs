//! `worker` function: EventBridge calls it once a minute; it drains the job queue until its
//! deadline minus a margin. `worker --loop` (or `WORKER_LOOP=1`) drains forever outside Lambda,
//! which is how infra/run-local runs jobs.
//!
//! Everything but start-up lives in `shared::queue::worker` (the drain loop) and
//! `shared::worker` (which handler runs which job kind).

use aws_lambda_events::event::eventbridge::EventBridgeEvent;
use lambda_runtime::{LambdaEvent, service_fn};
use shared::Config;
use shared::queue::DrainReport;
use shared::worker::Worker;

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    let config = Config::load()
        .await
        .inspect_err(|error| eprintln!("{error}"))?;
    shared::telemetry::init("worker");
    // Built once per Lambda environment (pools connect lazily), reused by every invocation.
    let worker = Worker::from_config(config, shared::worker::handlers())
        .inspect_err(|error| eprintln!("{error}"))?;
    if shared::worker::loop_requested(std::env::args(), std::env::var("WORKER_LOOP").ok()) {
        worker.run_forever().await;
        return Ok(());
    }
    let worker = &worker;
    lambda_runtime::run(service_fn(
        move |event: LambdaEvent<EventBridgeEvent<serde_json::Value>>| async move {
            let report: DrainReport = worker.invocation(event.context.deadline).await;
            Ok::<_, lambda_runtime::Error>(report)
        },
    ))
    .await
}
