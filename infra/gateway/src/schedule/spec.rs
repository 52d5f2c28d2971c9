//! A schedule as the template declares it, and the event EventBridge sends when it fires.

use std::time::Duration;

use chrono::{DateTime, SecondsFormat, Utc};
use serde_json::{Value, json};
use uuid::Uuid;

use super::expression::Timing;

/// The account named in events (AWS's documentation account).
pub const LOCAL_ACCOUNT: &str = "123456789012";
/// Which EventBridge service a schedule belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ScheduleSource {
    /// `Type: Schedule`: an EventBridge rule; sends a "Scheduled Event" from `aws.events`.
    Rule,
    /// `Type: ScheduleV2`: EventBridge Scheduler.
    Scheduler,
}

/// One schedule event of one function, as the template declares it.
#[derive(Debug, Clone, PartialEq)]
pub struct ScheduleSpec {
    /// Logical id of the function.
    pub function_resource: String,
    /// Name of the event under `Events`.
    pub event: String,
    /// The function's binary (`target/debug/<bin>` locally).
    pub function: String,
    pub source: ScheduleSource,
    pub expression: String,
    pub timing: Timing,
    /// `Enabled: false` or `State: DISABLED` turn it off.
    pub enabled: bool,
    /// `Input`: sent instead of the Scheduled Event, as EventBridge does.
    pub input: Option<Value>,
    /// `Name`, which names the rule (SAM otherwise derives it from the logical ids).
    pub name: Option<String>,
    /// The function's `Timeout`.
    pub timeout: Option<Duration>,
}

impl ScheduleSpec {
    /// `SchedulerFunction.Tick`: how listings, logs and the manual trigger name it.
    pub fn id(&self) -> String {
        format!("{}.{}", self.function_resource, self.event)
    }

    fn rule_name(&self) -> String {
        self.name
            .clone()
            .unwrap_or_else(|| format!("{}{}", self.function_resource, self.event))
    }

    /// What EventBridge would send at `at`.
    pub fn event_payload(&self, region: &str, at: DateTime<Utc>) -> Value {
        if let Some(input) = &self.input {
            return input.clone();
        }
        let (source, resource) = match self.source {
            ScheduleSource::Rule => (
                "aws.events",
                format!(
                    "arn:aws:events:{region}:{LOCAL_ACCOUNT}:rule/{}",
                    self.rule_name()
                ),
            ),
            ScheduleSource::Scheduler => (
                "aws.scheduler",
                format!(
                    "arn:aws:scheduler:{region}:{LOCAL_ACCOUNT}:schedule/default/{}",
                    self.rule_name()
                ),
            ),
        };
        json!({
            "version": "0",
            "id": Uuid::new_v4().to_string(),
            "detail-type": "Scheduled Event",
            "source": source,
            "account": LOCAL_ACCOUNT,
            "time": at.to_rfc3339_opts(SecondsFormat::Secs, true),
            "region": region,
            "resources": [resource],
            "detail": {},
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(input: Option<Value>, source: ScheduleSource) -> ScheduleSpec {
        ScheduleSpec {
            function_resource: "SchedulerFunction".into(),
            event: "Tick".into(),
            function: "scheduler".into(),
            source,
            expression: "rate(1 minute)".into(),
            timing: Timing::Rate(Duration::from_secs(60)),
            enabled: true,
            input,
            name: None,
            timeout: None,
        }
    }

    #[test]
    fn scheduled_event_shape() {
        let at = DateTime::parse_from_rfc3339("2026-11-23T14:28:00.123Z")
            .expect("time")
            .with_timezone(&Utc);
        let event = spec(None, ScheduleSource::Rule).event_payload("eu-west-1", at);
        assert_eq!(event["version"], "0");
        assert_eq!(event["detail-type"], "Scheduled Event");
        assert_eq!(event["source"], "aws.events");
        assert_eq!(event["account"], "123456789012");
        assert_eq!(event["time"], "2026-11-23T14:28:00Z");
        assert_eq!(event["region"], "eu-west-1");
        assert_eq!(
            event["resources"],
            json!(["arn:aws:events:eu-west-1:123456789012:rule/SchedulerFunctionTick"])
        );
        assert_eq!(event["detail"], json!({}));
        assert!(Uuid::parse_str(event["id"].as_str().expect("id")).is_ok());

        let v2 = spec(None, ScheduleSource::Scheduler).event_payload("eu-west-1", at);
        assert_eq!(v2["source"], "aws.scheduler");
        let input = spec(Some(json!({"task": "reminders"})), ScheduleSource::Rule)
            .event_payload("eu-west-1", at);
        assert_eq!(input, json!({"task": "reminders"}));
    }
}
