//! `jobs` function: the /jobs routes: a background job's status, for the staff of its clinic.
//!
//! Everything but start-up lives in `shared::queue`, where the tests drive the same router.

use shared::{AppState, Config};

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), lambda_http::Error> {
    let config = Config::load()
        .await
        .inspect_err(|error| eprintln!("{error}"))?;
    shared::telemetry::init("jobs");
    // Built once per Lambda environment, reused by every warm invocation.
    let state = AppState::build(config)?;
    lambda_http::run(shared::queue::router(state)).await
}
