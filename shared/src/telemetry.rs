//! JSON logs through `tracing`: one line per event, with the request's span fields
//! (`request_id`, `clinic_id`, `user_id`) attached, ready for CloudWatch Logs Insights.
//!
//! What is logged is decided at the call sites: identifiers and outcomes, never tokens,
//! passwords or patient clinical text. An error goes into a log line with its cause chain
//! through [`ErrorChain`]; a response body never carries it.

use tracing_subscriber::EnvFilter;

/// Installs the global subscriber once per process. `RUST_LOG` filters (default `info`).
/// A second call (tests building several apps) is a no-op.
pub fn init(service: &'static str) {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let installed = tracing_subscriber::fmt()
        .json()
        .with_env_filter(filter)
        .with_current_span(true)
        .with_span_list(false)
        .flatten_event(true)
        .with_target(false)
        .try_init()
        .is_ok();
    if installed {
        tracing::info!(
            service,
            version = env!("CARGO_PKG_VERSION"),
            "telemetry ready"
        );
    }
}

/// Displays an error with its `source()` chain, for logs only.
pub struct ErrorChain<'a>(pub &'a (dyn std::error::Error + 'static));

impl std::fmt::Display for ErrorChain<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.0)?;
        let mut source = self.0.source();
        while let Some(error) = source {
            write!(f, ": {error}")?;
            source = error.source();
        }
        Ok(())
    }
}
