//! `reports` function: the /reports routes: request an insurance report (202 with its job),
//! read its status, download its PDF. The `report.insurance` job itself runs in the worker.
//!
//! Everything but start-up lives in `shared::reports`, where the tests drive the same router.

use shared::{AppState, Config};

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), lambda_http::Error> {
    let config = Config::load()
        .await
        .inspect_err(|error| eprintln!("{error}"))?;
    shared::telemetry::init("reports");
    // Built once per Lambda environment, reused by every warm invocation.
    let state = AppState::build(config)?;
    lambda_http::run(shared::reports::router(state)).await
}
