//! `migrate` function: CloudFormation runs it on every deploy (the custom resource `Migrations`
//! in template.yaml) before it updates the other functions; it applies the migrations and sets
//! the functions' logins as the schema owner, and always answers CloudFormation.
//!
//! Everything but start-up lives in `shared::migrate`, where the tests run the same requests.

use lambda_runtime::{LambdaEvent, service_fn};
use std::time::Duration;

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
            // A deadline that is no epoch time (a local runtime) leaves no time: the request
            // is answered at once rather than run without a bound.
            let time_left = shared::invocation::time_left(event.context.deadline);
            let deadline = tokio::time::Instant::now() + time_left.unwrap_or_default();
            let environment = |name: &str| std::env::var(name).ok();
            let answer =
                shared::migrate::on_deploy(event.payload, deadline, environment, http).await;
            Ok::<_, lambda_runtime::Error>(answer)
        },
    ))
    .await
}
