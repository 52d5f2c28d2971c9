//! The `scheduler` function's work: on every EventBridge tick (once a minute) it runs its tasks
//! in order, each within the Lambda deadline, and reports what they did.
//!
//! Like a function's `main`, this module composes contexts (it is where scheduled work is
//! wired up), so the tests can run a tick directly. The tasks: keeping the dashboards of
//! active clinics fresh, the job queue's upkeep, the reception desk's appointment notices
//! (reminders and possible no-shows, [`reminders`]), closing WebSocket connections whose
//! token expired, and the media upkeep ([`media`]); more join [`TASKS`] as variants.
//!
//! The scheduler connects as `pulso_system` (`SYSTEM_DATABASE_URL`): the application role plus
//! reading the list of clinics. Work on one clinic's data runs in ordinary tenant transactions,
//! under the same row-level security as a request.

mod clinics;
pub mod media;
pub mod reminders;

pub use clinics::active_clinics;
pub use media::{MEDIA_UPKEEP, UpkeepReport};
pub use reminders::NoticeReport;

use crate::config::{Config, ConfigError};
use crate::dashboard::refresh::{self as dashboard_refresh, RefreshReport};
use crate::state::{AppState, StartupError};
use crate::telemetry::ErrorChain;
use chrono::{DateTime, Utc};
use serde::Serialize;
use std::time::Duration;
use tokio::time::Instant;

/// What the scheduler does on each tick, in this order.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Task {
    /// Recompute the dashboards of active clinics before they go stale.
    RefreshDashboards,
    /// The job queue's upkeep (`shared::queue::Queue::maintain`): promote due retries, requeue
    /// expired leases, push again the jobs Redis lost or never got.
    MaintainQueue,
    /// The queue's figures over every clinic as metrics (EMF; the alarms of template.yaml):
    /// `QueueDepth`, `QueueOldestWaiting`, `QueueRunning`, `QueueDelayed`, `QueueDead`.
    ReportQueue,
    /// The reception desk's notices (`reminders`): appointment reminders 24 h and 1 h before,
    /// possible no-shows 15 min after the start; each sent once.
    AppointmentNotices,
    /// Close the WebSocket connections whose token expired (`shared::realtime::close_ended`).
    CloseEndedConnections,
    /// Stage the media upkeep of this tick's slice of clinics ([`media`]): uploads left open,
    /// older files still in PostgreSQL.
    MediaUpkeep,
}

pub const TASKS: &[Task] = &[
    Task::RefreshDashboards,
    Task::MaintainQueue,
    Task::ReportQueue,
    Task::AppointmentNotices,
    Task::CloseEndedConnections,
    Task::MediaUpkeep,
];

/// Stop starting work this long before the Lambda deadline: what runs then has time to finish
/// (a dashboard takes milliseconds; the statement timeout bounds a slow one) and the summary
/// gets logged.
pub const DEADLINE_MARGIN: Duration = Duration::from_secs(5);
/// Work still running this long after the stop is abandoned.
pub const FINISH_GRACE: Duration = Duration::from_secs(3);
/// The time a tick gets when the runtime's deadline is not believable (`cargo lambda watch`
/// sends 600000, not an epoch time): a little under the function's one-minute schedule.
pub const FALLBACK_BUDGET: Duration = Duration::from_secs(50);

#[derive(Debug, thiserror::Error)]
pub enum SchedulerStartupError {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error(
        "SYSTEM_DATABASE_URL is not set: the scheduler lists every clinic, which only the \
         pulso_system role may do; set it to a pulso_system connection string (locally \
         infra/run-local writes it to .dev/env)"
    )]
    MissingSystemDatabaseUrl,
    #[error(transparent)]
    State(#[from] StartupError),
}

/// One tick: when it was scheduled for, and when to stop starting work.
#[derive(Clone, Copy, Debug)]
pub struct Tick {
    pub at: DateTime<Utc>,
    pub stop_at: Instant,
}

impl Tick {
    /// A tick from the Lambda invocation: the event's time (`now` if absent) and the runtime's
    /// deadline (epoch milliseconds) minus [`DEADLINE_MARGIN`]. A deadline that is not a
    /// plausible epoch time gets [`FALLBACK_BUDGET`] instead.
    pub fn from_invocation(event_time: Option<DateTime<Utc>>, deadline_epoch_ms: u64) -> Self {
        let budget = match crate::invocation::time_left(deadline_epoch_ms) {
            Some(remaining) => remaining.saturating_sub(DEADLINE_MARGIN),
            None => {
                tracing::warn!(
                    deadline_epoch_ms,
                    fallback_seconds = FALLBACK_BUDGET.as_secs(),
                    "the invocation deadline is not an epoch time (local runtime?); using the fallback budget"
                );
                FALLBACK_BUDGET
            }
        };
        Tick {
            at: event_time.unwrap_or_else(Utc::now),
            stop_at: Instant::now() + budget,
        }
    }
}

/// What one task did on a tick.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(tag = "outcome", rename_all = "snake_case")]
pub enum TaskOutcome {
    Dashboards(RefreshReport),
    Queue(crate::queue::MaintenanceReport),
    QueueFigures(crate::queue::QueueFigures),
    Notices(NoticeReport),
    Connections(crate::realtime::CloseReport),
    Media(UpkeepReport),
    /// The task could not run at all (e.g. the clinic list could not be read).
    Failed {
        error: String,
    },
}

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct TaskReport {
    pub task: Task,
    pub duration_ms: u64,
    #[serde(flatten)]
    pub outcome: TaskOutcome,
}

/// The invocation's answer (and the summary logged).
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct RunReport {
    pub tick: DateTime<Utc>,
    pub tasks: Vec<TaskReport>,
}

impl RunReport {
    /// Tasks that could not run at all; per-clinic failures inside a task do not count.
    pub fn failed_tasks(&self) -> Vec<Task> {
        self.tasks
            .iter()
            .filter(|report| matches!(report.outcome, TaskOutcome::Failed { .. }))
            .map(|report| report.task)
            .collect()
    }
}

#[derive(Clone)]
pub struct Scheduler {
    state: AppState,
}

impl Scheduler {
    /// The scheduler's state: like any function's, except that its database pool connects with
    /// `SYSTEM_DATABASE_URL` (pulso_system) instead of `DATABASE_URL`.
    pub fn from_config(config: Config) -> Result<Self, SchedulerStartupError> {
        let mut config = config;
        config.database = config
            .database
            .as_system()
            .ok_or(SchedulerStartupError::MissingSystemDatabaseUrl)?;
        Ok(Self::new(AppState::build(config)?))
    }

    /// A scheduler over `state`, whose pool must connect as pulso_system (tests build it so).
    pub fn new(state: AppState) -> Self {
        Self { state }
    }

    pub fn state(&self) -> &AppState {
        &self.state
    }

    /// Runs every task once. A task that fails is reported and the next one still runs.
    pub async fn run(&self, tick: Tick) -> RunReport {
        if let Some(rotation) = &self.state.db_rotation {
            rotation.before_run().await;
        }
        let mut tasks = Vec::with_capacity(TASKS.len());
        for task in TASKS {
            let started = Instant::now();
            let outcome = if Instant::now() >= tick.stop_at {
                TaskOutcome::Failed {
                    error: "no time left before the deadline".into(),
                }
            } else {
                self.run_task(*task, tick).await
            };
            let report = TaskReport {
                task: *task,
                duration_ms: started.elapsed().as_millis() as u64,
                outcome,
            };
            match &report.outcome {
                TaskOutcome::Failed { error } => {
                    tracing::error!(task = ?report.task, duration_ms = report.duration_ms, %error, "scheduled task failed")
                }
                TaskOutcome::Dashboards(done) => tracing::info!(
                    task = ?report.task,
                    duration_ms = report.duration_ms,
                    clinics = done.clinics,
                    due = done.due,
                    refreshed = done.refreshed,
                    skipped = done.skipped,
                    failed = done.failed,
                    out_of_time = done.out_of_time,
                    "scheduled task finished"
                ),
                TaskOutcome::Queue(done) => tracing::info!(
                    task = ?report.task,
                    duration_ms = report.duration_ms,
                    promoted = done.promoted,
                    reaped = done.reaped,
                    examined = done.sweep.examined,
                    pushed = done.sweep.pushed,
                    "scheduled task finished"
                ),
                TaskOutcome::QueueFigures(figures) => tracing::info!(
                    task = ?report.task,
                    duration_ms = report.duration_ms,
                    depth = figures.depth,
                    oldest_waiting_seconds = figures.oldest_waiting_seconds,
                    running = figures.processing,
                    delayed = figures.delayed,
                    dead = figures.dead,
                    "scheduled task finished"
                ),
                TaskOutcome::Notices(done) => tracing::info!(
                    task = ?report.task,
                    duration_ms = report.duration_ms,
                    clinics = done.clinics,
                    sent = done.sent,
                    already_sent = done.already_sent,
                    failed = done.failed,
                    out_of_time = done.out_of_time,
                    "scheduled task finished"
                ),
                TaskOutcome::Connections(done) => tracing::info!(
                    task = ?report.task,
                    duration_ms = report.duration_ms,
                    ended = done.ended,
                    closed = done.closed,
                    gone = done.gone,
                    failed = done.failed,
                    "scheduled task finished"
                ),
                TaskOutcome::Media(done) => tracing::info!(
                    task = ?report.task,
                    duration_ms = report.duration_ms,
                    clinics = done.clinics,
                    staged = done.staged,
                    already_staged = done.already_staged,
                    failed = done.failed,
                    out_of_time = done.out_of_time,
                    "scheduled task finished"
                ),
            }
            tasks.push(report);
        }
        RunReport {
            tick: tick.at,
            tasks,
        }
    }

    async fn run_task(&self, task: Task, tick: Tick) -> TaskOutcome {
        match task {
            Task::RefreshDashboards => {
                let clinics = match active_clinics(&self.state).await {
                    Ok(clinics) => clinics,
                    Err(error) => {
                        return TaskOutcome::Failed {
                            error: format!("listing the active clinics: {}", ErrorChain(&error)),
                        };
                    }
                };
                let cycle = dashboard_refresh::refresh_cycle(self.state.config.cache.dashboard_ttl);
                TaskOutcome::Dashboards(
                    dashboard_refresh::refresh_due(
                        &self.state,
                        &clinics,
                        tick.at,
                        cycle,
                        tick.stop_at,
                        FINISH_GRACE,
                    )
                    .await,
                )
            }
            Task::MaintainQueue => match self.state.queue.maintain(&self.state.db).await {
                Ok(done) => TaskOutcome::Queue(done),
                Err(error) => TaskOutcome::Failed {
                    error: format!("maintaining the job queue: {}", ErrorChain(&error)),
                },
            },
            Task::ReportQueue => match self.state.queue.platform_figures(&self.state.db).await {
                Ok(figures) => {
                    if self.state.config.cache.metrics_emf {
                        println!(
                            "{}",
                            queue_metrics(&self.state.config.env, &figures, tick.at)
                        );
                    }
                    TaskOutcome::QueueFigures(figures)
                }
                Err(error) => TaskOutcome::Failed {
                    error: format!("reading the queue's figures: {}", ErrorChain(&error)),
                },
            },
            Task::AppointmentNotices => match active_clinics(&self.state).await {
                Ok(clinics) => TaskOutcome::Notices(
                    reminders::send_due(&self.state, &clinics, tick.at, tick.stop_at).await,
                ),
                Err(error) => TaskOutcome::Failed {
                    error: format!("listing the active clinics: {}", ErrorChain(&error)),
                },
            },
            Task::MediaUpkeep => match active_clinics(&self.state).await {
                Ok(clinics) => TaskOutcome::Media(
                    media::stage_due(&self.state, &clinics, tick.at, tick.stop_at).await,
                ),
                Err(error) => TaskOutcome::Failed {
                    error: format!("listing the active clinics: {}", ErrorChain(&error)),
                },
            },
            Task::CloseEndedConnections => match crate::realtime::close_ended(&self.state).await {
                Ok(done) => TaskOutcome::Connections(done),
                Err(error) => TaskOutcome::Failed {
                    error: format!("reading the connection registry: {}", ErrorChain(&error)),
                },
            },
        }
    }
}

/// The EMF line of the queue's `figures` in deployment `env` at `at`.
fn queue_metrics(env: &str, figures: &crate::queue::QueueFigures, at: DateTime<Utc>) -> String {
    crate::telemetry::emf_line(
        &[("Environment", env)],
        &[],
        &[
            ("QueueDepth", "Count", figures.depth.into()),
            (
                "QueueOldestWaiting",
                "Seconds",
                figures.oldest_waiting_seconds.unwrap_or(0.0).into(),
            ),
            ("QueueRunning", "Count", figures.processing.into()),
            ("QueueDelayed", "Count", figures.delayed.into()),
            ("QueueDead", "Count", figures.dead.into()),
        ],
        at.timestamp_millis(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_queue_metrics_are_the_ones_the_alarms_read() {
        let figures = crate::queue::QueueFigures {
            depth: 4,
            processing: 2,
            delayed: 1,
            dead: 3,
            oldest_waiting_seconds: Some(75.5),
        };
        let line = queue_metrics("prod", &figures, Utc::now());
        let document: serde_json::Value = serde_json::from_str(&line).expect("JSON");
        for (name, value) in [
            ("QueueDepth", 4.0),
            ("QueueOldestWaiting", 75.5),
            ("QueueRunning", 2.0),
            ("QueueDelayed", 1.0),
            ("QueueDead", 3.0),
        ] {
            assert_eq!(document[name].as_f64(), Some(value), "{name}");
        }
        // template.yaml's alarms name each of them, with this dimension.
        let template = std::fs::read_to_string(
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../template.yaml"),
        )
        .expect("template.yaml");
        for alarmed in ["QueueDepth", "QueueOldestWaiting", "QueueDead"] {
            assert!(
                template.contains(&format!("MetricName: {alarmed}")),
                "no alarm on {alarmed}"
            );
        }
        assert_eq!(document["Environment"], "prod");
    }

    #[test]
    fn an_implausible_deadline_gets_the_fallback_budget() {
        let before = Instant::now();
        // What `cargo lambda watch` sends.
        let tick = Tick::from_invocation(None, 600_000);
        let budget = tick.stop_at - before;
        assert!(budget >= FALLBACK_BUDGET && budget < FALLBACK_BUDGET + Duration::from_secs(1));
    }

    #[test]
    fn a_real_deadline_keeps_its_margin() {
        let before = Instant::now();
        let tick = Tick::from_invocation(None, crate::invocation::now_epoch_ms() + 60_000);
        let budget = tick.stop_at - before;
        // 60 s less the margin, give or take the milliseconds between the two clocks' reads.
        assert!(
            budget > Duration::from_secs(54) && budget < Duration::from_secs(56),
            "{budget:?}"
        );
    }
}
