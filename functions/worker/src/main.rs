//! `worker` function: woken by an asynchronous invocation when jobs are ready and no drain is
//! alive (an enqueue, the scheduler's maintenance, a drain with a backlog or at its deadline),
//! it drains the job queue until idle for a few seconds or its deadline minus a margin. S3's
//! "Object Created" event of an X-ray upload also invokes it: the upload is completed first
//! (`shared::worker::upload_arrived`), then the drain runs its analysis.
//! `worker --loop` (or `WORKER_LOOP=1`) drains forever outside Lambda.
//!
//! Everything but start-up lives in `shared::queue::worker` (the drain loop),
//! `shared::queue::presence` (the drains alive, waking) and `shared::worker` (which handler runs
//! which job kind).

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
        move |event: LambdaEvent<serde_json::Value>| async move {
            shared::worker::upload_arrived(worker.state(), &event.payload).await;
            let report: DrainReport = worker
                .invocation(event.context.deadline, &event.payload)
                .await;
            Ok::<_, lambda_runtime::Error>(report)
        },
    ))
    .await
}
