//! Reads a function's `Type: Schedule` (EventBridge rule) and `Type: ScheduleV2` (EventBridge
//! Scheduler) events.

use std::time::Duration;

use serde_norway::Value;

use super::error::TemplateError;
use super::yaml::{Parameters, Resolved, binary_name, function_number, malformed, plain_str};
use crate::schedule::expression::Timing;
use crate::schedule::{ScheduleSource, ScheduleSpec};

pub(crate) fn function_schedules(
    resource: &str,
    definition: &Value,
    globals: Option<&Value>,
    parameters: &Parameters<'_>,
) -> Result<Vec<ScheduleSpec>, TemplateError> {
    let events_at = format!("Resources.{resource}.Properties.Events");
    let Some(events) = definition
        .get("Properties")
        .and_then(|p| p.get("Events"))
        .and_then(Value::as_mapping)
    else {
        return Ok(Vec::new());
    };
    let mut schedules = Vec::new();
    let mut binary = None;
    for (event_name, event) in events {
        let source = match event.get("Type").and_then(plain_str) {
            Some("Schedule") => ScheduleSource::Rule,
            Some("ScheduleV2") => ScheduleSource::Scheduler,
            _ => continue,
        };
        let event_name = plain_str(event_name)
            .ok_or_else(|| malformed(&events_at, "an event name is not a string"))?;
        let at = format!("{events_at}.{event_name}.Properties");
        let properties = event.get("Properties");
        let property = |name: &str| properties.and_then(|p| p.get(name));
        let text = |name: &str| -> Result<Option<String>, TemplateError> {
            match property(name) {
                None => Ok(None),
                Some(value) => match parameters.resolve_scalar(value) {
                    Resolved::Text(text) => Ok(Some(text.trim().to_owned())),
                    Resolved::Unknown(why) => Err(malformed(&format!("{at}.{name}"), &why)),
                },
            }
        };

        let expression_field = match source {
            ScheduleSource::Rule => "Schedule",
            ScheduleSource::Scheduler => "ScheduleExpression",
        };
        let expression = text(expression_field)?
            .ok_or_else(|| malformed(&format!("{at}.{expression_field}"), "missing"))?;
        let timezone = match source {
            ScheduleSource::Rule => None,
            ScheduleSource::Scheduler => text("ScheduleExpressionTimezone")?,
        };
        let timing = Timing::parse(&expression, timezone.as_deref())
            .map_err(|problem| malformed(&format!("{at}.{expression_field}"), &problem))?;

        let mut enabled = true;
        if let Some(flag) = text("Enabled")? {
            enabled = parse_bool(&flag)
                .ok_or_else(|| malformed(&format!("{at}.Enabled"), "must be true or false"))?;
        }
        if let Some(state) = text("State")? {
            enabled = match state.to_ascii_uppercase().as_str() {
                "ENABLED" => true,
                "DISABLED" => false,
                _ => {
                    return Err(malformed(
                        &format!("{at}.State"),
                        "must be ENABLED or DISABLED",
                    ));
                }
            };
        }
        let input = match property("Input") {
            None => None,
            Some(Value::String(json)) => Some(serde_json::from_str(json).map_err(|error| {
                malformed(
                    &format!("{at}.Input"),
                    &format!("is not valid JSON: {error}"),
                )
            })?),
            Some(_) => {
                return Err(malformed(
                    &format!("{at}.Input"),
                    "must be a JSON document written as a string",
                ));
            }
        };

        let function = match &binary {
            Some(binary) => String::clone(binary),
            None => {
                let found = binary_name(resource, definition)?;
                binary = Some(found.clone());
                found
            }
        };
        schedules.push(ScheduleSpec {
            function_resource: resource.to_owned(),
            event: event_name.to_owned(),
            function,
            source,
            expression,
            timing,
            enabled,
            input,
            name: text("Name")?,
            timeout: function_number(definition, globals, parameters, "Timeout")
                .map(Duration::from_secs),
        });
    }
    Ok(schedules)
}

fn parse_bool(text: &str) -> Option<bool> {
    match text.trim().to_ascii_lowercase().as_str() {
        "true" => Some(true),
        "false" => Some(false),
        _ => None,
    }
}
