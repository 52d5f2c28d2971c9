//! `health` function: GET /health: PostgreSQL and Redis reachability and latency.
//!
//! Everything but start-up lives in `shared::health`, where the tests drive the same router.

use shared::{AppState, Config};

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    let config = Config::from_env().inspect_err(|error| eprintln!("{error}"))?;
    shared::telemetry::init("health");
    // Built once per Lambda environment, reused by every warm invocation.
    let state = AppState::build(config)?;
    lambda_http::run(shared::health::router(state)).await
}
