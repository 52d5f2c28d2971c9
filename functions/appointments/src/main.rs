//! `appointments` function: the /appointments routes: book, list, read, reschedule and move through statuses.
//!
//! Everything but start-up lives in `shared::appointments`, where the tests drive the same router.

use shared::{AppState, Config};

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), lambda_http::Error> {
    let config = Config::load()
        .await
        .inspect_err(|error| eprintln!("{error}"))?;
    shared::telemetry::init("appointments");
    // Built once per Lambda environment, reused by every warm invocation.
    let state = AppState::build(config)?;
    lambda_http::run(shared::appointments::router(state)).await
}
