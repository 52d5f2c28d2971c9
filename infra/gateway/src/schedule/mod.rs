//! EventBridge's part: ticks each scheduled function at its template rate with a "Scheduled
//! Event", never two ticks of one function at once (like reserved concurrency 1: a tick that
//! finds the previous one running is skipped and logged), plus a manual trigger and a listing
//! under `/_local/schedules` for tests and demos.

pub mod expression;

use std::collections::HashSet;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use axum::Router;
use axum::extract::{Path, State};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use chrono::{DateTime, SecondsFormat, Utc};
use http::header::CONTENT_TYPE;
use http::{HeaderMap, HeaderName, HeaderValue, StatusCode};
use serde_json::{Value, json};
use tokio::task::JoinHandle;
use uuid::Uuid;

use self::expression::Timing;
use crate::invoke::InvokeError;
use crate::invoke::{Invocation, Invoker};

/// The account named in events (AWS's documentation account).
pub const LOCAL_ACCOUNT: &str = "123456789012";
/// The fastest a sped-up rate may tick.
const MIN_PERIOD: Duration = Duration::from_millis(10);

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

/// Why a function was invoked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Trigger {
    Timer,
    Manual,
    Startup,
}

impl Trigger {
    fn as_str(self) -> &'static str {
        match self {
            Self::Timer => "timer",
            Self::Manual => "manual",
            Self::Startup => "startup",
        }
    }
}

#[derive(Debug, Clone)]
struct RunRecord {
    trigger: Trigger,
    started_at: DateTime<Utc>,
    duration: Duration,
    outcome: &'static str,
    error: Option<String>,
}

#[derive(Debug, Default)]
struct ScheduleState {
    runs: u64,
    failures: u64,
    skipped: u64,
    next_at: Option<DateTime<Utc>>,
    last: Option<RunRecord>,
}

struct Entry {
    spec: ScheduleSpec,
    state: Mutex<ScheduleState>,
}

/// How the schedules run.
#[derive(Debug, Clone)]
pub struct SchedulerOptions {
    /// Tick by themselves; otherwise only the manual trigger (and `tick_now`) invoke.
    pub automatic: bool,
    /// rate(...) periods are divided by this.
    pub speed: u32,
    pub tick_now: bool,
    pub region: String,
    /// The least time an invocation is given (the function's `Timeout` can raise it).
    pub timeout: Duration,
}

pub struct Scheduler {
    entries: Vec<Entry>,
    invoker: Invoker,
    options: SchedulerOptions,
    /// Binaries with a tick in flight.
    running: Mutex<HashSet<String>>,
}

/// The answer to a tick.
#[derive(Debug)]
pub enum TickOutcome {
    Ran(Result<Invocation, InvokeError>),
    /// The function's previous tick is still running.
    Busy,
}

/// Marks a function as running until dropped.
struct RunningGuard<'a> {
    scheduler: &'a Scheduler,
    function: String,
}

impl Drop for RunningGuard<'_> {
    fn drop(&mut self) {
        self.scheduler.running().remove(&self.function);
    }
}

impl Scheduler {
    pub fn new(specs: Vec<ScheduleSpec>, invoker: Invoker, options: SchedulerOptions) -> Self {
        Self {
            entries: specs
                .into_iter()
                .map(|spec| Entry {
                    spec,
                    state: Mutex::new(ScheduleState::default()),
                })
                .collect(),
            invoker,
            options,
            running: Mutex::new(HashSet::new()),
        }
    }

    pub fn specs(&self) -> impl Iterator<Item = &ScheduleSpec> {
        self.entries.iter().map(|entry| &entry.spec)
    }

    pub fn options(&self) -> &SchedulerOptions {
        &self.options
    }

    /// How often (or when) a schedule ticks by itself, for listings: `None` when it does not.
    pub fn period(&self, spec: &ScheduleSpec) -> Option<Duration> {
        match spec.timing {
            Timing::Rate(period) => Some((period / self.options.speed.max(1)).max(MIN_PERIOD)),
            Timing::Cron(_) | Timing::ManualOnly(_) => None,
        }
    }

    /// Starts the timers (when automatic) and the start-up ticks (with `tick_now`).
    pub fn start(self: &Arc<Self>) -> Vec<JoinHandle<()>> {
        let mut tasks = Vec::new();
        if self.options.tick_now {
            let scheduler = Arc::clone(self);
            tasks.push(tokio::spawn(async move {
                for index in 0..scheduler.entries.len() {
                    if scheduler.entries[index].spec.enabled {
                        scheduler.tick(index, Trigger::Startup).await;
                    }
                }
            }));
        }
        if !self.options.automatic {
            return tasks;
        }
        for (index, entry) in self.entries.iter().enumerate() {
            if !entry.spec.enabled || matches!(entry.spec.timing, Timing::ManualOnly(_)) {
                continue;
            }
            let scheduler = Arc::clone(self);
            tasks.push(tokio::spawn(
                async move { scheduler.run_timer(index).await },
            ));
        }
        tasks
    }

    async fn run_timer(self: Arc<Self>, index: usize) {
        let spec = &self.entries[index].spec;
        let mut next = tokio::time::Instant::now();
        loop {
            let wait = match &spec.timing {
                Timing::Rate(_) => {
                    let period = self.period(spec).unwrap_or(MIN_PERIOD);
                    let now = tokio::time::Instant::now();
                    // A stalled machine keeps the cadence from now, not a burst of ticks.
                    next = match next.checked_add(period) {
                        Some(at) if at > now => at,
                        _ => match now.checked_add(period) {
                            Some(at) => at,
                            // A rate too long to count down to: it never comes.
                            None => return,
                        },
                    };
                    next - now
                }
                Timing::Cron(cron) => {
                    let now = Utc::now();
                    let Some(at) = cron.next_after(now) else {
                        tracing::info!(schedule = %spec.id(), "no more fire times");
                        return;
                    };
                    (at - now).to_std().unwrap_or_default()
                }
                Timing::ManualOnly(_) => return,
            };
            if let Ok(wait) = chrono::Duration::from_std(wait) {
                self.state(index).next_at = Some(Utc::now() + wait);
            }
            tokio::time::sleep(wait).await;

            // The timer keeps its cadence while the function runs; a tick that finds the
            // function still running is skipped (and counted) by `tick`.
            let scheduler = Arc::clone(&self);
            tokio::spawn(async move {
                scheduler.tick(index, Trigger::Timer).await;
            });
        }
    }

    fn skip(&self, index: usize) {
        let spec = &self.entries[index].spec;
        self.state(index).skipped += 1;
        // Info, not a warning: with a real deadline the worker drains for most of its 300 s
        // timeout, so its minute ticks are skipped by design (reserved concurrency 1 on AWS).
        tracing::info!(
            schedule = %spec.id(),
            function = %spec.function,
            "tick skipped: the previous invocation is still running (ticks of one function never overlap)"
        );
    }

    /// Invokes the schedule's function now, unless its previous tick still runs.
    pub async fn tick(&self, index: usize, trigger: Trigger) -> TickOutcome {
        let Some(entry) = self.entries.get(index) else {
            return TickOutcome::Busy;
        };
        let spec = &entry.spec;
        let Some(_guard) = self.try_start(&spec.function) else {
            if trigger != Trigger::Manual {
                self.skip(index);
            }
            return TickOutcome::Busy;
        };
        let started_at = Utc::now();
        let started = Instant::now();
        let event = spec.event_payload(&self.options.region, started_at);
        let timeout = spec
            .timeout
            .map_or(self.options.timeout, |own| own.max(self.options.timeout));
        let result = self.invoker.invoke(&spec.function, &event, timeout).await;
        let duration = started.elapsed();

        let (outcome, error) = match &result {
            Ok(Invocation::Returned(_)) => ("ok", None),
            Ok(Invocation::Failed(failure)) => ("error", Some(failure.message())),
            Err(InvokeError::TimedOut(_)) => {
                ("timeout", result.as_ref().err().map(ToString::to_string))
            }
            Err(other) => ("not invoked", Some(cause_chain(other))),
        };
        {
            let mut state = self.state(index);
            state.runs += 1;
            if outcome != "ok" {
                state.failures += 1;
            }
            state.last = Some(RunRecord {
                trigger,
                started_at,
                duration,
                outcome,
                error: error.clone(),
            });
        }
        let ms = duration.as_millis() as u64;
        match &error {
            None => tracing::info!(
                schedule = %spec.id(),
                function = %spec.function,
                trigger = trigger.as_str(),
                outcome,
                ms,
                "schedule tick"
            ),
            Some(error) => tracing::warn!(
                schedule = %spec.id(),
                function = %spec.function,
                trigger = trigger.as_str(),
                outcome,
                %error,
                ms,
                "schedule tick"
            ),
        }
        TickOutcome::Ran(result)
    }

    fn try_start(&self, function: &str) -> Option<RunningGuard<'_>> {
        self.running()
            .insert(function.to_owned())
            .then(|| RunningGuard {
                scheduler: self,
                function: function.to_owned(),
            })
    }

    /// The schedule a name points at: `Function.Event`, or a function's logical id or binary
    /// when it has one schedule.
    pub fn find(&self, name: &str) -> Result<usize, Vec<String>> {
        if let Some(index) = self.entries.iter().position(|e| e.spec.id() == name) {
            return Ok(index);
        }
        let matches: Vec<usize> = self
            .entries
            .iter()
            .enumerate()
            .filter(|(_, e)| {
                e.spec.function_resource == name
                    || e.spec.function == name
                    || format!("{}.{}", e.spec.function, e.spec.event) == name
            })
            .map(|(index, _)| index)
            .collect();
        match matches.as_slice() {
            [one] => Ok(*one),
            [] => Err(Vec::new()),
            several => Err(several.iter().map(|i| self.entries[*i].spec.id()).collect()),
        }
    }

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

    fn state(&self, index: usize) -> MutexGuard<'_, ScheduleState> {
        self.entries[index]
            .state
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    fn running(&self) -> MutexGuard<'_, HashSet<String>> {
        self.running.lock().unwrap_or_else(PoisonError::into_inner)
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

fn cause_chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

/// `GET /_local/schedules` and `POST /_local/schedules/{name}/trigger`.
pub fn router(scheduler: Arc<Scheduler>) -> Router {
    Router::new()
        .route("/_local/schedules", get(list))
        .route("/_local/schedules/{name}/trigger", post(trigger))
        .with_state(scheduler)
}

async fn list(State(scheduler): State<Arc<Scheduler>>) -> Response {
    json_response(StatusCode::OK, &scheduler.listing())
}

/// Runs the schedule's function now and answers with its output (200), its error (502), or
/// why it could not run.
async fn trigger(State(scheduler): State<Arc<Scheduler>>, Path(name): Path<String>) -> Response {
    let index = match scheduler.find(&name) {
        Ok(index) => index,
        Err(candidates) if candidates.is_empty() => {
            let known: Vec<String> = scheduler.specs().map(ScheduleSpec::id).collect();
            return json_response(
                StatusCode::NOT_FOUND,
                &json!({"message": format!("no schedule named `{name}`"), "schedules": known}),
            );
        }
        Err(candidates) => {
            return json_response(
                StatusCode::CONFLICT,
                &json!({
                    "message": format!("`{name}` has several schedules: name one as Function.Event"),
                    "schedules": candidates,
                }),
            );
        }
    };
    let id = scheduler.entries[index].spec.id();
    let function = scheduler.entries[index].spec.function.clone();
    let mut response = match scheduler.tick(index, Trigger::Manual).await {
        TickOutcome::Busy => json_response(
            StatusCode::CONFLICT,
            &json!({
                "message": format!("{function} is still running a tick; ticks of one function never overlap, try again when it ends"),
            }),
        ),
        TickOutcome::Ran(Ok(Invocation::Returned(output))) => raw_json(StatusCode::OK, output),
        TickOutcome::Ran(Ok(Invocation::Failed(error))) => {
            raw_json(StatusCode::BAD_GATEWAY, error.body)
        }
        TickOutcome::Ran(Err(error)) => {
            let status = match error {
                InvokeError::TimedOut(_) => StatusCode::GATEWAY_TIMEOUT,
                _ => StatusCode::BAD_GATEWAY,
            };
            json_response(status, &json!({ "message": cause_chain(&error) }))
        }
    };
    if let Ok(value) = HeaderValue::from_str(&id) {
        response
            .headers_mut()
            .insert(HeaderName::from_static("x-pulso-schedule"), value);
    }
    response
}

fn json_response(status: StatusCode, body: &Value) -> Response {
    raw_json(status, body.to_string().into())
}

fn raw_json(status: StatusCode, body: bytes::Bytes) -> Response {
    let mut headers = HeaderMap::new();
    headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    (status, headers, body).into_response()
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

    #[test]
    fn human_periods() {
        assert_eq!(human(Duration::from_secs(60)), "60 s");
        assert_eq!(human(Duration::from_millis(1500)), "1.5 s");
        assert_eq!(human(Duration::from_millis(100)), "100 ms");
    }
}
