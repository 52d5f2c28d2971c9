//! `clinics` function: who is signed in and where they work (`GET /me`), and a clinic's staff
//! (`GET /staff`).
//!
//! Everything but start-up lives in `shared::clinics`, where the tests drive the same router.

use shared::{AppState, Config};

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), lambda_http::Error> {
    let config = Config::load()
        .await
        .inspect_err(|error| eprintln!("{error}"))?;
    shared::telemetry::init("clinics");
    // Built once per Lambda environment, reused by every warm invocation.
    let state = AppState::build(config)?;
    lambda_http::run(shared::clinics::router(state)).await
}
