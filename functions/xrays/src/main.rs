//! `xrays` function: upload a patient's X-ray (PNG or JPEG, up to XRAY_MAX_BYTES), list them,
//! read the metadata and quality report, the original image and its thumbnail.
//!
//! It only stores bytes and stages the `xray.analyze` job; decoding runs in the worker.
//! Everything but start-up lives in `shared::xrays`, where the tests drive the same router.

use shared::{AppState, Config};

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), lambda_http::Error> {
    let config = Config::load()
        .await
        .inspect_err(|error| eprintln!("{error}"))?;
    shared::telemetry::init("xrays");
    // Built once per Lambda environment, reused by every warm invocation.
    let state = AppState::build(config)?;
    lambda_http::run(shared::xrays::router(state)).await
}
