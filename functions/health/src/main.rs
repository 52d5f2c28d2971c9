//! `health` function: GET /health (liveness), GET /health/deep (dependencies, platform admins),
//! GET /openapi.json (the API's contract).
//!
//! Everything but start-up lives in `shared::health` and `shared::contract` (`GET /openapi.json`),
//! where the tests drive the same router.

use shared::{AppState, Config};

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), lambda_http::Error> {
    let config = Config::load()
        .await
        .inspect_err(|error| eprintln!("{error}"))?;
    shared::telemetry::init("health");
    // Built once per Lambda environment, reused by every warm invocation.
    let state = AppState::build(config)?;
    lambda_http::run(shared::contract::router(state)).await
}
