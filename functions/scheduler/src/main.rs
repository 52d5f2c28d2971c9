//! `scheduler` function: EventBridge calls it once a minute; it runs the scheduled tasks
//! (refreshing the dashboards of active clinics, the job queue's upkeep, appointment reminders
//! and possible no-shows for the reception desk) until its deadline.
//!
//! Everything but start-up lives in `shared::scheduler`, where the tests run the same ticks.

use aws_lambda_events::event::eventbridge::EventBridgeEvent;
use lambda_runtime::{LambdaEvent, service_fn};
use shared::Config;
use shared::scheduler::{RunReport, Scheduler, Tick};

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    let config = Config::load()
        .await
        .inspect_err(|error| eprintln!("{error}"))?;
    shared::telemetry::init("scheduler");
    // Built once per Lambda environment (pools connect lazily), reused by every tick.
    let scheduler = Scheduler::from_config(config).inspect_err(|error| eprintln!("{error}"))?;
    let scheduler = &scheduler;
    lambda_runtime::run(service_fn(
        move |event: LambdaEvent<EventBridgeEvent<serde_json::Value>>| async move {
            let tick = Tick::from_invocation(event.payload.time, event.context.deadline);
            let report: RunReport = scheduler.run(tick).await;
            // One clinic failing is in the report, not an error; a task that could not run at
            // all is, so that the function's Errors metric (and its alarm) sees it.
            match report.failed_tasks().as_slice() {
                [] => Ok(report),
                failed => Err(format!("scheduled tasks failed: {failed:?}")),
            }
        },
    ))
    .await
}
