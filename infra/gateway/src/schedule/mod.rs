//! EventBridge's part: ticks each scheduled function at its template rate with a "Scheduled
//! Event", never two ticks of one function at once (like reserved concurrency 1: a tick that
//! finds the previous one running is skipped and logged), plus a manual trigger and a listing
//! under `/_local/schedules` for tests and demos. What a schedule is and what it sends are in
//! `spec.rs`; the listing and the trigger in `listing.rs` and `endpoints.rs`.

mod endpoints;
pub mod expression;
mod listing;
mod spec;

use std::collections::HashSet;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use tokio::task::JoinHandle;

pub use self::endpoints::router;
use self::expression::Timing;
pub use self::listing::human;
pub use self::spec::{LOCAL_ACCOUNT, ScheduleSource, ScheduleSpec};
use crate::invoke::{Invocation, InvokeError, Invoker};

/// The fastest a sped-up rate may tick.
const MIN_PERIOD: Duration = Duration::from_millis(10);

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

impl RunRecord {
    /// What an invocation came to, as the listing and the log name it.
    fn new(
        trigger: Trigger,
        started_at: DateTime<Utc>,
        duration: Duration,
        result: &Result<Invocation, InvokeError>,
    ) -> Self {
        let (outcome, error) = match result {
            Ok(Invocation::Returned(_)) => ("ok", None),
            Ok(Invocation::Failed(failure)) => ("error", Some(failure.message())),
            Err(timed_out @ InvokeError::TimedOut(_)) => ("timeout", Some(timed_out.to_string())),
            Err(other) => ("not invoked", Some(cause_chain(other))),
        };
        Self {
            trigger,
            started_at,
            duration,
            outcome,
            error,
        }
    }
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
        let run = RunRecord::new(trigger, started_at, started.elapsed(), &result);
        self.record(index, run.clone());
        log_tick(spec, &run);
        TickOutcome::Ran(result)
    }

    /// Counts a finished tick and keeps it as the schedule's last run.
    fn record(&self, index: usize, run: RunRecord) {
        let mut state = self.state(index);
        state.runs += 1;
        if run.outcome != "ok" {
            state.failures += 1;
        }
        state.last = Some(run);
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

/// One line per tick: info when it succeeded, a warning with the error otherwise.
fn log_tick(spec: &ScheduleSpec, run: &RunRecord) {
    let ms = run.duration.as_millis() as u64;
    let (trigger, outcome) = (run.trigger.as_str(), run.outcome);
    match &run.error {
        None => tracing::info!(
            schedule = %spec.id(),
            function = %spec.function,
            trigger,
            outcome,
            ms,
            "schedule tick"
        ),
        Some(error) => tracing::warn!(
            schedule = %spec.id(),
            function = %spec.function,
            trigger,
            outcome,
            %error,
            ms,
            "schedule tick"
        ),
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
