//! The `worker` function's composition: which handler runs each job kind. Like a function's
//! `main`, this module may import contexts; the queue itself (`shared::queue`) imports none.
//!
//! A context that adds a job kind registers its handler here, one line per kind:
//! `.on(crate::xrays::XRAY_ANALYZE, crate::xrays::analyze)`.

use crate::queue::Handlers;

/// Every job kind Pulso runs in production. Tests and benchmarks build their own registry.
pub fn handlers() -> Handlers {
    Handlers::new()
        .on(crate::xrays::XRAY_ANALYZE, crate::xrays::analyze)
        .on(
            crate::reports::REPORT_INSURANCE,
            crate::reports::build_insurance_report,
        )
}

/// Whether the process was asked to drain forever outside Lambda: `worker --loop`, or
/// `WORKER_LOOP=1` (or `true`).
pub fn loop_requested(mut args: impl Iterator<Item = String>, env: Option<String>) -> bool {
    args.any(|arg| arg == "--loop")
        || env.is_some_and(|value| matches!(value.trim(), "1" | "true" | "yes"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loop_mode_comes_from_the_flag_or_the_environment() {
        let args = |list: &[&str]| list.iter().map(|a| a.to_string()).collect::<Vec<_>>();
        assert!(loop_requested(
            args(&["worker", "--loop"]).into_iter(),
            None
        ));
        assert!(loop_requested(
            args(&["worker"]).into_iter(),
            Some("1".into())
        ));
        assert!(!loop_requested(
            args(&["worker"]).into_iter(),
            Some("0".into())
        ));
        assert!(!loop_requested(args(&["worker"]).into_iter(), None));
    }
}
