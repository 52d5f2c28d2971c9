//! `migrate` function: CloudFormation runs it on every deploy (the custom resource `Migrations`
//! in template.yaml) before it updates the other functions; it applies the migrations and sets
//! the functions' logins as the schema owner, and always answers CloudFormation.
//!
//! Everything but start-up lives in `shared::migrate`, where the tests run the same requests.

use lambda_runtime::{LambdaEvent, service_fn};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), lambda_runtime::Error> {
    shared::telemetry::init("migrate");
    // Its settings are read per request (`shared::migrate::on_deploy`): a secret that cannot be
    // read must be an answer to CloudFormation, not a function that never starts.
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()?;
    let http = &http;
    lambda_runtime::run(service_fn(
        move |event: LambdaEvent<serde_json::Value>| async move {
            let deadline = tokio::time::Instant::now() + time_left(event.context.deadline);
            let environment = |name: &str| std::env::var(name).ok();
            let answer =
                shared::migrate::on_deploy(event.payload, deadline, environment, http).await;
            Ok::<_, lambda_runtime::Error>(answer)
        },
    ))
    .await
}

/// The time from now to `deadline_epoch_ms`, Lambda's deadline of the invocation.
fn time_left(deadline_epoch_ms: u64) -> Duration {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    Duration::from_millis(deadline_epoch_ms).saturating_sub(now)
}
