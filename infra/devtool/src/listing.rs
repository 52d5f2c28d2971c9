//! The gateway's `/_local` listings as `smoke` and `soak` read them: every function with its
//! settings and counters (and the before/after arithmetic of those counters), every schedule.
//! Parsed by hand from JSON: what is missing counts as zero, what is needed fails with the field.

use anyhow::Context;
use serde_json::Value;
use std::collections::BTreeMap;
use std::fmt;
use std::time::Duration;

/// A function's counters since the gateway started.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Counters {
    pub invocations: u64,
    pub errors: u64,
    pub timeouts: u64,
    pub crashes: u64,
    pub starts: u64,
}

impl Counters {
    fn from_json(value: &Value) -> Self {
        let count = |name: &str| value.get(name).and_then(Value::as_u64).unwrap_or(0);
        Self {
            invocations: count("invocations"),
            errors: count("errors"),
            timeouts: count("timeouts"),
            crashes: count("crashes"),
            starts: count("starts"),
        }
    }

    /// What happened since `earlier` (zero, not a wrap, if the gateway restarted in between).
    pub fn since(self, earlier: Self) -> Self {
        Self {
            invocations: self.invocations.saturating_sub(earlier.invocations),
            errors: self.errors.saturating_sub(earlier.errors),
            timeouts: self.timeouts.saturating_sub(earlier.timeouts),
            crashes: self.crashes.saturating_sub(earlier.crashes),
            starts: self.starts.saturating_sub(earlier.starts),
        }
    }

    pub fn plus(self, other: Self) -> Self {
        Self {
            invocations: self.invocations + other.invocations,
            errors: self.errors + other.errors,
            timeouts: self.timeouts + other.timeouts,
            crashes: self.crashes + other.crashes,
            starts: self.starts + other.starts,
        }
    }

    /// Instances started plus instances lost: each is a cold start some caller waited for.
    pub fn restarts(self) -> u64 {
        self.starts + self.crashes
    }
}

impl fmt::Display for Counters {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "invocations {}, errors {}, timeouts {}, crashes {}, starts {}",
            self.invocations, self.errors, self.timeouts, self.crashes, self.starts
        )
    }
}

/// One function of `/_local/functions`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FunctionStatus {
    /// The binary, which the fault endpoint and the schedules' `binary` name.
    pub name: String,
    pub timeout: Duration,
    /// HTTP API route keys (`GET /patients/{id}`); empty for trigger functions.
    pub routes: Vec<String>,
    pub counters: Counters,
    /// Each instance's state (`starting`, `idle`, `busy`, `between`, `frozen`).
    pub instance_states: Vec<String>,
}

impl FunctionStatus {
    /// Every instance waits for an invocation: one sent now goes to one of them.
    pub fn all_idle(&self) -> bool {
        self.instance_states.iter().all(|state| state == "idle")
    }
}

pub fn parse_functions(listing: &Value) -> anyhow::Result<Vec<FunctionStatus>> {
    let functions = listing
        .get("functions")
        .and_then(Value::as_array)
        .context("/_local/functions: no `functions` list")?;
    functions.iter().map(parse_function).collect()
}

fn parse_function(value: &Value) -> anyhow::Result<FunctionStatus> {
    let name = value
        .get("name")
        .and_then(Value::as_str)
        .with_context(|| format!("/_local/functions: a function without a name: {value}"))?;
    let timeout_secs = value
        .get("timeout_secs")
        .and_then(Value::as_u64)
        .with_context(|| format!("/_local/functions: {name} has no timeout_secs"))?;
    let routes = value
        .get("routes")
        .and_then(Value::as_array)
        .map(|routes| {
            routes
                .iter()
                .filter_map(Value::as_str)
                .map(str::to_owned)
                .collect()
        })
        .unwrap_or_default();
    let instance_states = value
        .get("instances")
        .and_then(Value::as_array)
        .map(|instances| {
            instances
                .iter()
                .filter_map(|instance| instance.get("state")?.as_str())
                .map(str::to_owned)
                .collect()
        })
        .unwrap_or_default();
    Ok(FunctionStatus {
        name: name.to_owned(),
        timeout: Duration::from_secs(timeout_secs),
        routes,
        counters: Counters::from_json(value),
        instance_states,
    })
}

pub fn counters_by_name(functions: &[FunctionStatus]) -> BTreeMap<String, Counters> {
    functions
        .iter()
        .map(|function| (function.name.clone(), function.counters))
        .collect()
}

/// Each function's counters since `before` (a function absent then counts from zero).
pub fn changes(
    before: &BTreeMap<String, Counters>,
    after: &[FunctionStatus],
) -> BTreeMap<String, Counters> {
    after
        .iter()
        .map(|function| {
            let earlier = before.get(&function.name).copied().unwrap_or_default();
            (function.name.clone(), function.counters.since(earlier))
        })
        .collect()
}

pub fn total<'a>(counters: impl IntoIterator<Item = &'a Counters>) -> Counters {
    counters
        .into_iter()
        .fold(Counters::default(), |sum, c| sum.plus(*c))
}

/// One schedule of `/_local/schedules`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Schedule {
    /// `Function.Event`, as the trigger endpoint takes it.
    pub id: String,
    /// The function's binary, as `/_local/functions` names it.
    pub binary: String,
    pub enabled: bool,
}

pub fn parse_schedules(listing: &Value) -> anyhow::Result<Vec<Schedule>> {
    let schedules = listing
        .get("schedules")
        .and_then(Value::as_array)
        .context("/_local/schedules: no `schedules` list")?;
    schedules
        .iter()
        .map(|value| {
            let text = |name: &str| {
                value
                    .get(name)
                    .and_then(Value::as_str)
                    .map(str::to_owned)
                    .with_context(|| format!("/_local/schedules: no `{name}` in {value}"))
            };
            Ok(Schedule {
                id: text("id")?,
                binary: text("binary")?,
                enabled: value.get("enabled").and_then(Value::as_bool) == Some(true),
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn listing() -> Value {
        json!({"functions": [
            {"name": "health", "resource": "HealthFunction", "timeout_secs": 10,
             "routes": ["GET /health"], "instances": [],
             "invocations": 5, "errors": 1, "timeouts": 2, "crashes": 1, "starts": 4},
            {"name": "worker", "timeout_secs": 300, "routes": [], "invocations": 3, "starts": 1}
        ]})
    }

    #[test]
    fn parses_the_functions_listing() {
        let functions = parse_functions(&listing()).unwrap();
        assert_eq!(functions[0].name, "health");
        assert_eq!(functions[0].timeout, Duration::from_secs(10));
        assert_eq!(functions[0].routes, ["GET /health"]);
        assert_eq!(functions[0].counters.restarts(), 5);
        assert_eq!(functions[1].counters.errors, 0);
        assert!(parse_functions(&json!({"functions": [{"timeout_secs": 1}]})).is_err());
        assert!(parse_functions(&json!({})).is_err());
    }

    #[test]
    fn a_function_is_all_idle_when_every_instance_waits_for_work() {
        let with = |states: &[&str]| {
            let instances: Vec<Value> = states.iter().map(|s| json!({"state": s})).collect();
            let listing = json!({"functions": [
                {"name": "health", "timeout_secs": 10, "instances": instances}
            ]});
            parse_functions(&listing).unwrap().remove(0)
        };
        assert!(with(&[]).all_idle());
        assert!(with(&["idle", "idle"]).all_idle());
        assert!(!with(&["idle", "between"]).all_idle());
        assert!(!with(&["starting"]).all_idle());
    }

    #[test]
    fn changes_count_from_the_first_snapshot() {
        let start = parse_functions(&listing()).unwrap();
        let mut end = start.clone();
        end[0].counters.starts += 2;
        end[0].counters.crashes += 1;
        end[1].counters.invocations = 1; // counters reset: the gateway restarted
        let before: BTreeMap<_, _> = counters_by_name(&start[..1]);
        let delta = changes(&before, &end);
        assert_eq!(delta["health"].starts, 2);
        assert_eq!(delta["health"].crashes, 1);
        assert_eq!(delta["health"].invocations, 0);
        // Absent at the start: everything it did counts.
        assert_eq!(delta["worker"].invocations, 1);
        assert_eq!(delta["worker"].starts, 1);
        let sum = total(delta.values());
        assert_eq!(sum.restarts(), 4);
        assert_eq!(sum.invocations, 1);
        let reset = Counters {
            invocations: 1,
            ..Counters::default()
        }
        .since(start[1].counters);
        assert_eq!(reset, Counters::default());
    }

    #[test]
    fn parses_the_schedules_listing() {
        let listing = json!({"schedules": [
            {"id": "WorkerFunction.Drain", "binary": "worker", "enabled": true},
            {"id": "Old.Tick", "binary": "old", "enabled": false}
        ]});
        let schedules = parse_schedules(&listing).unwrap();
        assert_eq!(schedules[0].id, "WorkerFunction.Drain");
        assert!(schedules[0].enabled && !schedules[1].enabled);
        assert!(parse_schedules(&json!({"schedules": [{"id": "x"}]})).is_err());
    }
}
