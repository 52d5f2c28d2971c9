//! `GET /_local/schedules`: every schedule with how it ticks, its counters and its last run.

use std::time::Duration;

use chrono::{DateTime, SecondsFormat, Utc};
use serde_json::{Value, json};

use super::Scheduler;
use super::expression::Timing;

impl Scheduler {
    /// Every schedule with its state, as `GET /_local/schedules` shows it.
    pub fn listing(&self) -> Value {
        let running = self.running().clone();
        let schedules: Vec<Value> = self
            .entries
            .iter()
            .enumerate()
            .map(|(index, entry)| {
                let spec = &entry.spec;
                let state = self.state(index);
                let ticking = if !spec.enabled {
                    "disabled".to_owned()
                } else if !self.options.automatic {
                    "manual only (--schedules off)".to_owned()
                } else {
                    match &spec.timing {
                        Timing::Rate(_) => match self.period(spec) {
                            Some(period) => format!("every {}", human(period)),
                            None => "manual only".to_owned(),
                        },
                        Timing::Cron(cron) => format!("{cron} (UTC)"),
                        Timing::ManualOnly(why) => format!("manual only: {why}"),
                    }
                };
                let last = state.last.as_ref().map(|run| {
                    json!({
                        "trigger": run.trigger.as_str(),
                        "startedAt": iso(run.started_at),
                        "durationMs": run.duration.as_millis() as u64,
                        "outcome": run.outcome,
                        "error": run.error,
                    })
                });
                let automatic = self.options.automatic
                    && spec.enabled
                    && !matches!(spec.timing, Timing::ManualOnly(_));
                json!({
                    "id": spec.id(),
                    "function": spec.function_resource,
                    "event": spec.event,
                    "binary": spec.function,
                    "expression": spec.expression,
                    "enabled": spec.enabled,
                    "ticking": ticking,
                    "nextRunAt": if automatic { state.next_at.map(iso) } else { None },
                    "running": running.contains(&spec.function),
                    "runs": state.runs,
                    "failures": state.failures,
                    "skipped": state.skipped,
                    "lastRun": last,
                })
            })
            .collect();
        json!({
            "automatic": self.options.automatic,
            "speed": self.options.speed,
            "schedules": schedules,
        })
    }
}

fn iso(at: DateTime<Utc>) -> String {
    at.to_rfc3339_opts(SecondsFormat::Millis, true)
}

/// `60 s`, `1.5 s`, `100 ms`.
pub fn human(period: Duration) -> String {
    if period >= Duration::from_secs(1) {
        let secs = period.as_secs_f64();
        if secs.fract() == 0.0 {
            format!("{} s", period.as_secs())
        } else {
            format!("{secs:.1} s")
        }
    } else {
        format!("{} ms", period.as_millis())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn human_periods() {
        assert_eq!(human(Duration::from_secs(60)), "60 s");
        assert_eq!(human(Duration::from_millis(1500)), "1.5 s");
        assert_eq!(human(Duration::from_millis(100)), "100 ms");
    }
}
