//! `admin` function: the /admin routes: cache counters, Redis facts and invalidation; the job
//! queue's figures, its jobs by status and replay; announcements, pushed live.
//!
//! Everything but start-up lives in `shared::admin`, where the tests drive the same router.

use shared::{AppState, Config};

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), lambda_http::Error> {
    let config = Config::load()
        .await
        .inspect_err(|error| eprintln!("{error}"))?;
    shared::telemetry::init("admin");
    // Built once per Lambda environment, reused by every warm invocation.
    let state = AppState::build(config)?;
    lambda_http::run(shared::admin::router(state)).await
}
