//! Reading SAM's YAML without deploying: plain strings, `!Ref` to a parameter's `Default`, and
//! the function properties every part of the template reader needs (its binary, its numbers).
//! A leaf: the readers of routes, schedules and the WebSocket API all build on it.

use serde_norway::{Mapping, Value};

use super::error::TemplateError;

/// A positive whole-number property of the function, else of `Globals.Function`, when it can
/// be read without deploying.
pub(crate) fn function_number(
    definition: &Value,
    globals: Option<&Value>,
    parameters: &Parameters<'_>,
    property: &str,
) -> Option<u64> {
    let value = definition
        .get("Properties")
        .and_then(|p| p.get(property))
        .or_else(|| globals?.get("Function")?.get(property))?;
    match parameters.resolve_scalar(value) {
        Resolved::Text(text) => text.trim().parse::<u64>().ok().filter(|n| *n > 0),
        Resolved::Unknown(_) => None,
    }
}

/// The binary that runs a function: `Metadata.BuildProperties.Binary` when
/// set (a package with several binaries), else the crate folder named by `CodeUri`.
pub(crate) fn binary_name(resource: &str, definition: &Value) -> Result<String, TemplateError> {
    let binary = definition
        .get("Metadata")
        .and_then(|m| m.get("BuildProperties"))
        .and_then(|b| b.get("Binary"));
    if let Some(binary) = binary {
        let at = format!("Resources.{resource}.Metadata.BuildProperties.Binary");
        return plain_str(binary)
            .filter(|b| !b.trim().is_empty())
            .map(|b| b.trim().to_owned())
            .ok_or_else(|| malformed(&at, "must be a non-empty plain string"));
    }

    let at = format!("Resources.{resource}.Properties.CodeUri");
    let code_uri = definition
        .get("Properties")
        .and_then(|p| p.get("CodeUri"))
        .ok_or_else(|| {
            malformed(
                &at,
                "missing; set it to the crate folder, or set Metadata.BuildProperties.Binary",
            )
        })?;
    let code_uri = plain_str(code_uri).ok_or_else(|| {
        malformed(&at, "must be a plain string path to derive the binary name; otherwise set Metadata.BuildProperties.Binary")
    })?;
    code_uri
        .trim()
        .trim_end_matches('/')
        .rsplit('/')
        .next()
        .filter(|last| !last.is_empty() && *last != "." && *last != "..")
        .map(str::to_owned)
        .ok_or_else(|| {
            malformed(
                &at,
                "has no folder name to use as the binary; set Metadata.BuildProperties.Binary",
            )
        })
}

/// A template value after resolving what can be resolved without deploying.
pub(crate) enum Resolved {
    Text(String),
    Unknown(String),
}

/// The template's `Parameters`, used to resolve `!Ref` to a parameter's `Default`, and its
/// `Conditions`, evaluated with those defaults for `!If`.
pub(crate) struct Parameters<'a> {
    parameters: Option<&'a Mapping>,
    conditions: Option<&'a Mapping>,
}

impl<'a> Parameters<'a> {
    /// The parameters and conditions of a template `document`.
    pub(crate) fn of(document: &'a Value) -> Self {
        Self {
            parameters: document.get("Parameters").and_then(Value::as_mapping),
            conditions: document.get("Conditions").and_then(Value::as_mapping),
        }
    }

    /// Whether the condition `name` holds with the parameters' defaults: `!Equals`, `!Not`,
    /// `!And`, `!Or` and `!Condition` over what resolves; `None` for anything else.
    fn condition(&self, name: &str, depth: usize) -> Option<bool> {
        let definition = self.conditions?.get(name)?;
        self.holds(definition, depth + 1)
    }

    fn holds(&self, value: &Value, depth: usize) -> Option<bool> {
        if depth > 16 {
            return None; // a condition naming itself
        }
        let Value::Tagged(tagged) = value else {
            return None;
        };
        let operands = tagged.value.as_sequence();
        if tagged.tag == "Equals" {
            let [left, right] = operands?.as_slice() else {
                return None;
            };
            return match (self.resolve_scalar(left), self.resolve_scalar(right)) {
                (Resolved::Text(left), Resolved::Text(right)) => Some(left == right),
                _ => None,
            };
        }
        if tagged.tag == "Not" {
            let [inner] = operands?.as_slice() else {
                return None;
            };
            return self.holds(inner, depth + 1).map(|holds| !holds);
        }
        if tagged.tag == "And" || tagged.tag == "Or" {
            let all: Option<Vec<bool>> = operands?
                .iter()
                .map(|operand| self.holds(operand, depth + 1))
                .collect();
            let all = all?;
            return Some(if tagged.tag == "And" {
                all.iter().all(|holds| *holds)
            } else {
                all.iter().any(|holds| *holds)
            });
        }
        if tagged.tag == "Condition" {
            return self.condition(plain_str(&tagged.value)?, depth);
        }
        None
    }

    pub(crate) fn resolve_scalar(&self, value: &Value) -> Resolved {
        match self.resolve_list(value).as_slice() {
            [Resolved::Text(one)] => Resolved::Text(one.clone()),
            [Resolved::Unknown(why)] => Resolved::Unknown(why.clone()),
            _ => Resolved::Unknown("expected a single value".to_owned()),
        }
    }

    pub(crate) fn resolve_list(&self, value: &Value) -> Vec<Resolved> {
        match value {
            Value::Sequence(items) => items
                .iter()
                .flat_map(|item| self.resolve_list(item))
                .collect(),
            Value::String(text) => vec![Resolved::Text(text.clone())],
            Value::Bool(flag) => vec![Resolved::Text(flag.to_string())],
            Value::Number(number) => vec![Resolved::Text(number.to_string())],
            Value::Tagged(tagged) if tagged.tag == "Ref" => match plain_str(&tagged.value) {
                Some(name) => self.parameter_default(name),
                None => vec![Resolved::Unknown("`!Ref` needs a name".to_owned())],
            },
            Value::Mapping(map) if map.len() == 1 && map.get("Ref").is_some() => {
                match map.get("Ref").and_then(plain_str) {
                    Some(name) => self.parameter_default(name),
                    None => vec![Resolved::Unknown("`Ref` needs a name".to_owned())],
                }
            }
            Value::Tagged(tagged) if tagged.tag == "If" => {
                let chosen = match tagged.value.as_sequence().map(Vec::as_slice) {
                    Some([condition, then, otherwise]) => plain_str(condition)
                        .and_then(|name| self.condition(name, 0))
                        .map(|holds| if holds { then } else { otherwise }),
                    _ => None,
                };
                match chosen {
                    Some(value) => self.resolve_list(value),
                    None => vec![Resolved::Unknown(
                        "`!If` on a condition not known before deploying".to_owned(),
                    )],
                }
            }
            Value::Tagged(tagged) => vec![Resolved::Unknown(format!(
                "{} is only known at deploy time",
                tagged.tag
            ))],
            _ => vec![Resolved::Unknown(
                "expected a string or a list of strings".to_owned(),
            )],
        }
    }

    fn parameter_default(&self, name: &str) -> Vec<Resolved> {
        let Some(parameter) = self.parameters.and_then(|p| p.get(name)) else {
            return vec![Resolved::Unknown(format!(
                "`!Ref {name}` is not a template parameter"
            ))];
        };
        let default = match parameter.get("Default") {
            Some(Value::String(text)) => text.clone(),
            Some(Value::Number(number)) => number.to_string(),
            Some(Value::Bool(flag)) => flag.to_string(),
            _ => {
                return vec![Resolved::Unknown(format!(
                    "parameter {name} has no usable Default"
                ))];
            }
        };
        let is_list = parameter
            .get("Type")
            .and_then(plain_str)
            .is_some_and(|t| t == "CommaDelimitedList" || t.starts_with("List<"));
        if is_list {
            default
                .split(',')
                .map(str::trim)
                .filter(|item| !item.is_empty())
                .map(|item| Resolved::Text(item.to_owned()))
                .collect()
        } else {
            vec![Resolved::Text(default)]
        }
    }
}

/// A string written as such, not an intrinsic function: serde_norway's `as_str` would look
/// through `!Sub "..."` and hand back the unexpanded text.
pub(crate) fn plain_str(value: &Value) -> Option<&str> {
    match value {
        Value::String(text) => Some(text),
        _ => None,
    }
}

pub(crate) fn malformed(at: &str, problem: &str) -> TemplateError {
    TemplateError::Malformed {
        at: at.to_owned(),
        problem: problem.to_owned(),
    }
}
