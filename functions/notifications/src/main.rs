//! `notifications` function: the /notifications routes: the caller's inbox with read marks,
//! marking one or all read.
//!
//! Everything but start-up lives in `shared::realtime`, where the tests drive the same router.

use shared::{AppState, Config};

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), lambda_http::Error> {
    let config = Config::load()
        .await
        .inspect_err(|error| eprintln!("{error}"))?;
    shared::telemetry::init("notifications");
    // Built once per Lambda environment, reused by every warm invocation.
    let state = AppState::build(config)?;
    lambda_http::run(shared::realtime::router(state)).await
}
