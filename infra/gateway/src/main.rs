//! `pulso-gateway`: run the stand-in for API Gateway (HTTP and WebSocket APIs) and EventBridge
//! schedules, and Lambda itself for the template's functions.

use std::error::Error;
use std::process::ExitCode;

use pulso_gateway::cli::{self, Command};
use pulso_gateway::{Gateway, env_lines, init_tracing, shutdown_signal};

#[tokio::main]
async fn main() -> ExitCode {
    let config = match cli::parse(std::env::args().skip(1), |name| std::env::var(name).ok()) {
        Ok(Command::Run(config)) => config,
        Ok(Command::PrintEnv(config)) => {
            return match env_lines(&config) {
                Ok(lines) => {
                    print!("{lines}");
                    ExitCode::SUCCESS
                }
                Err(error) => fail(&error),
            };
        }
        Ok(Command::Help) => {
            print!("{}", cli::USAGE);
            return ExitCode::SUCCESS;
        }
        Err(error) => {
            eprintln!("pulso-gateway: {error}\n\n{}", cli::USAGE);
            return ExitCode::from(2);
        }
    };
    init_tracing();

    let gateway = match Gateway::bind(&config).await {
        Ok(gateway) => gateway,
        Err(error) => return fail(&error),
    };
    print!("{}", gateway.summary());
    match gateway.local_addr() {
        Ok(addr) => match gateway.ws_local_addr() {
            Some(ws) => println!("Pulso gateway listening on http://{addr} and ws://{ws}"),
            None => println!("Pulso gateway listening on http://{addr}"),
        },
        Err(error) => return fail(&error),
    }
    match gateway.serve(shutdown_signal()).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => fail(&error),
    }
}

/// Prints the error with its causes, which carry the detail an operator needs.
fn fail(error: &dyn Error) -> ExitCode {
    let mut message = format!("pulso-gateway: {error}");
    let mut source = error.source();
    while let Some(cause) = source {
        message.push_str(&format!(": {cause}"));
        source = cause.source();
    }
    eprintln!("{message}");
    ExitCode::FAILURE
}
