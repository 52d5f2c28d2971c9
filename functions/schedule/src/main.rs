//! `schedule` function: the agenda's capacity: the dentists' working hours (/working-hours),
//! time off and closures (/time-off) and the clinic's chairs (/chairs).
//!
//! Everything but start-up lives in `shared::schedule`, where the tests drive the same router.

use shared::{AppState, Config};

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), lambda_http::Error> {
    let config = Config::load()
        .await
        .inspect_err(|error| eprintln!("{error}"))?;
    shared::telemetry::init("schedule");
    // Built once per Lambda environment, reused by every warm invocation.
    let state = AppState::build(config)?;
    lambda_http::run(shared::schedule::router(state)).await
}
