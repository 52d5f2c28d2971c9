//! JSON logs through `tracing`: one line per event, with the request's span fields
//! (`request_id`, `clinic_id`, `user_id`) attached, ready for CloudWatch Logs Insights.
//!
//! What is logged is decided at the call sites: identifiers and outcomes, never tokens,
//! passwords or patient clinical text. An error goes into a log line with its cause chain
//! through [`ErrorChain`]; a response body never carries it.

use tracing_subscriber::EnvFilter;
use tracing_subscriber::filter::Directive;

/// Where `lambda_runtime` logs every raw event it receives, at `trace`: whole API Gateway
/// events, bearer tokens and request bodies included. Off whatever `RUST_LOG` says.
const RAW_EVENT_TARGET: &str = "lambda_runtime::layers::api_response";

/// Installs the global subscriber once per process. `RUST_LOG` filters (default `info`).
/// A second call (tests building several apps) is a no-op.
pub fn init(service: &'static str) {
    let installed = tracing_subscriber::fmt()
        .json()
        .with_env_filter(filter(std::env::var("RUST_LOG").ok().as_deref()))
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

/// The filter `RUST_LOG` asks for (`info` when unset or unreadable), with the runtime's
/// raw-event logging switched off. Added last, the directive wins over any `RUST_LOG` entry
/// for the same or a broader target.
fn filter(rust_log: Option<&str>) -> EnvFilter {
    let requested = rust_log
        .and_then(|directives| EnvFilter::try_new(directives).ok())
        .unwrap_or_else(|| EnvFilter::new("info"));
    let raw_events_off: Directive = format!("{RAW_EVENT_TARGET}=off")
        .parse()
        .expect("a constant, valid directive");
    requested.add_directive(raw_events_off)
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

/// The CloudWatch namespace of Pulso's own metrics.
pub const METRICS_NAMESPACE: &str = "Pulso";

/// One CloudWatch Embedded Metric Format line (written to stdout, where Lambda's log stream
/// turns it into metrics): each of `metrics` (name, unit, value: a number, or a list of
/// samples) in [`METRICS_NAMESPACE`], with the `dimensions` (name, value), at `timestamp_ms`.
/// CloudWatch files the metrics under all the dimensions together and, for each of `rollups`,
/// under those alone (every cache of a deployment, say). The alarms of template.yaml read them.
pub fn emf_line(
    dimensions: &[(&str, &str)],
    rollups: &[&[&str]],
    metrics: &[(&str, &str, serde_json::Value)],
    timestamp_ms: i64,
) -> String {
    let mut document = serde_json::Map::new();
    for (name, value) in dimensions {
        document.insert((*name).into(), (*value).into());
    }
    for (name, _, value) in metrics {
        document.insert((*name).into(), value.clone());
    }
    let all: Vec<&str> = dimensions.iter().map(|(name, _)| *name).collect();
    let dimension_sets: Vec<&[&str]> = std::iter::once(all.as_slice())
        .chain(rollups.iter().copied())
        .collect();
    document.insert(
        "_aws".into(),
        serde_json::json!({
            "Timestamp": timestamp_ms,
            "CloudWatchMetrics": [{
                "Namespace": METRICS_NAMESPACE,
                "Dimensions": dimension_sets,
                "Metrics": metrics
                    .iter()
                    .map(|(name, unit, _)| serde_json::json!({"Name": name, "Unit": unit}))
                    .collect::<Vec<_>>(),
            }],
        }),
    );
    serde_json::Value::Object(document).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_emf_line_declares_its_metrics_and_dimensions() {
        let line = emf_line(
            &[("Environment", "prod")],
            &[],
            &[
                ("QueueDepth", "Count", 3.into()),
                ("QueueOldestWaiting", "Seconds", 1.5.into()),
            ],
            1_700_000_000_000,
        );
        let document: serde_json::Value = serde_json::from_str(&line).expect("JSON");
        let directive = &document["_aws"]["CloudWatchMetrics"][0];
        assert_eq!(directive["Namespace"], "Pulso");
        assert_eq!(
            directive["Dimensions"],
            serde_json::json!([["Environment"]])
        );
        assert_eq!(
            directive["Metrics"][1],
            serde_json::json!({"Name": "QueueOldestWaiting", "Unit": "Seconds"})
        );
        assert_eq!(document["_aws"]["Timestamp"], 1_700_000_000_000_i64);
        assert_eq!(
            (
                document["Environment"].as_str(),
                document["QueueDepth"].as_f64()
            ),
            (Some("prod"), Some(3.0))
        );
    }
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use tracing_subscriber::Layer;
    use tracing_subscriber::layer::SubscriberExt;

    /// Counts the events that pass the filter.
    struct Count(Arc<AtomicUsize>);

    impl<S: tracing::Subscriber> Layer<S> for Count {
        fn on_event(&self, _: &tracing::Event<'_>, _: tracing_subscriber::layer::Context<'_, S>) {
            self.0.fetch_add(1, Ordering::SeqCst);
        }
    }

    /// How many of a raw-event trace line and an ordinary info line get through.
    fn passed(rust_log: Option<&str>) -> (usize, usize) {
        let raw = Arc::new(AtomicUsize::new(0));
        let ordinary = Arc::new(AtomicUsize::new(0));
        let only = |raw_events: bool| {
            tracing_subscriber::filter::filter_fn(move |meta| {
                (meta.target() == RAW_EVENT_TARGET) == raw_events
            })
        };
        let subscriber = tracing_subscriber::registry()
            .with(
                Count(Arc::clone(&raw))
                    .with_filter(filter(rust_log))
                    .with_filter(only(true)),
            )
            .with(
                Count(Arc::clone(&ordinary))
                    .with_filter(filter(rust_log))
                    .with_filter(only(false)),
            );
        tracing::subscriber::with_default(subscriber, || {
            tracing::trace!(target: "lambda_runtime::layers::api_response", body = "{}", "raw");
            tracing::info!(target: "shared::patients", "ordinary");
        });
        (raw.load(Ordering::SeqCst), ordinary.load(Ordering::SeqCst))
    }

    #[test]
    fn raw_events_are_never_logged_whatever_rust_log_says() {
        for rust_log in [
            None,
            Some("trace"),
            Some("lambda_runtime=trace"),
            Some("lambda_runtime::layers::api_response=trace"),
            Some("info,lambda_runtime::layers=trace"),
            Some("not a [valid filter"),
        ] {
            assert_eq!(passed(rust_log).0, 0, "RUST_LOG={rust_log:?}");
        }
    }

    #[test]
    fn other_logs_follow_rust_log() {
        assert_eq!(passed(None).1, 1);
        assert_eq!(passed(Some("trace")).1, 1);
        assert_eq!(passed(Some("warn")).1, 0);
    }
}
