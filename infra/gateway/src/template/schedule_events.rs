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
        let properties = EventProperties {
            at: format!("{events_at}.{event_name}.Properties"),
            properties: event.get("Properties"),
            parameters,
        };
        let (expression, timing) = properties.timing(source)?;
        let enabled = properties.enabled()?;
        let input = properties.input()?;

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
            name: properties.text("Name")?,
            timeout: function_number(definition, globals, parameters, "Timeout")
                .map(Duration::from_secs),
        });
    }
    Ok(schedules)
}

/// The `Properties` of one schedule event, at their place in the template.
struct EventProperties<'a> {
    at: String,
    properties: Option<&'a Value>,
    parameters: &'a Parameters<'a>,
}

impl EventProperties<'_> {
    fn get(&self, name: &str) -> Option<&Value> {
        self.properties.and_then(|p| p.get(name))
    }

    /// A property as trimmed text, when it can be read without deploying.
    fn text(&self, name: &str) -> Result<Option<String>, TemplateError> {
        match self.get(name) {
            None => Ok(None),
            Some(value) => match self.parameters.resolve_scalar(value) {
                Resolved::Text(text) => Ok(Some(text.trim().to_owned())),
                Resolved::Unknown(why) => Err(malformed(&format!("{}.{name}", self.at), &why)),
            },
        }
    }

    /// The schedule expression as written, and when it ticks.
    fn timing(&self, source: ScheduleSource) -> Result<(String, Timing), TemplateError> {
        let expression_field = match source {
            ScheduleSource::Rule => "Schedule",
            ScheduleSource::Scheduler => "ScheduleExpression",
        };
        let at = format!("{}.{expression_field}", self.at);
        let expression = self
            .text(expression_field)?
            .ok_or_else(|| malformed(&at, "missing"))?;
        let timezone = match source {
            ScheduleSource::Rule => None,
            ScheduleSource::Scheduler => self.text("ScheduleExpressionTimezone")?,
        };
        let timing = Timing::parse(&expression, timezone.as_deref())
            .map_err(|problem| malformed(&at, &problem))?;
        Ok((expression, timing))
    }

    /// `Enabled: false` (Schedule) or `State: DISABLED` (both) turn a schedule off.
    fn enabled(&self) -> Result<bool, TemplateError> {
        let mut enabled = true;
        if let Some(flag) = self.text("Enabled")? {
            enabled = parse_bool(&flag).ok_or_else(|| {
                malformed(&format!("{}.Enabled", self.at), "must be true or false")
            })?;
        }
        if let Some(state) = self.text("State")? {
            enabled = match state.to_ascii_uppercase().as_str() {
                "ENABLED" => true,
                "DISABLED" => false,
                _ => {
                    return Err(malformed(
                        &format!("{}.State", self.at),
                        "must be ENABLED or DISABLED",
                    ));
                }
            };
        }
        Ok(enabled)
    }

    /// `Input`: the JSON document EventBridge sends instead of the Scheduled Event.
    fn input(&self) -> Result<Option<serde_json::Value>, TemplateError> {
        let at = format!("{}.Input", self.at);
        match self.get("Input") {
            None => Ok(None),
            Some(Value::String(json)) => serde_json::from_str(json)
                .map(Some)
                .map_err(|error| malformed(&at, &format!("is not valid JSON: {error}"))),
            Some(_) => Err(malformed(
                &at,
                "must be a JSON document written as a string",
            )),
        }
    }
}

fn parse_bool(text: &str) -> Option<bool> {
    match text.trim().to_ascii_lowercase().as_str() {
        "true" => Some(true),
        "false" => Some(false),
        _ => None,
    }
}
