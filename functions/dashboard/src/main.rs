//! `dashboard` function: `GET /dashboard`, the clinic's figures for admins and dentists,
//! served stale-while-revalidate from the cache.
//!
//! Everything but start-up lives in `shared::dashboard`, where the tests drive the same router.

use shared::{AppState, Config};

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), lambda_http::Error> {
    let config = Config::load()
        .await
        .inspect_err(|error| eprintln!("{error}"))?;
    shared::telemetry::init("dashboard");
    // Built once per Lambda environment, reused by every warm invocation.
    let state = AppState::build(config)?;
    lambda_http::run(shared::dashboard::router(state)).await
}
