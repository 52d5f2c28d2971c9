//! `catalogs` function: the /catalogs routes: the merged clinical catalogs (cached), clinic
//! overrides, and global changes by platform admins.
//!
//! Everything but start-up lives in `shared::catalogs`, where the tests drive the same router.

use shared::{AppState, Config};

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), lambda_http::Error> {
    let config = Config::load()
        .await
        .inspect_err(|error| eprintln!("{error}"))?;
    shared::telemetry::init("catalogs");
    // Built once per Lambda environment, reused by every warm invocation.
    let state = AppState::build(config)?;
    lambda_http::run(shared::catalogs::router(state)).await
}
