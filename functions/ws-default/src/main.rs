//! `ws-default` function: the WebSocket API's `$default` route: answers `ping`, `ack` and
//! `replay` frames (and an error frame for anything else) through the route response.
//!
//! Everything but start-up lives in `shared::realtime::ws`, where the tests call the same handler.

use aws_lambda_events::apigw::{ApiGatewayProxyResponse, ApiGatewayWebsocketProxyRequest};
use lambda_runtime::{LambdaEvent, service_fn};
use shared::{AppState, Config};

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), lambda_runtime::Error> {
    let config = Config::load()
        .await
        .inspect_err(|error| eprintln!("{error}"))?;
    shared::telemetry::init("ws-default");
    // Built once per Lambda environment, reused by every warm invocation.
    let state = AppState::build(config)?;
    let state = &state;
    lambda_runtime::run(service_fn(
        move |event: LambdaEvent<ApiGatewayWebsocketProxyRequest>| async move {
            let answer = shared::realtime::ws::default(state, event.payload).await;
            Ok::<ApiGatewayProxyResponse, lambda_runtime::Error>(answer)
        },
    ))
    .await
}
