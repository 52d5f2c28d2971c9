//! The job queue's settings and the worker's (`shared::queue`).

use super::vars::Vars;
use std::time::Duration;

/// The share of the function's memory its jobs may hold; the rest is the runtime, the database
/// and Redis pools, the claimed payloads and the allocator's slack.
const WORKER_MEMORY_SHARE_PERCENT: u32 = 60;

/// The job queue and the worker that drains it (`shared::queue`).
#[derive(Clone, Debug)]
pub struct QueueConfig {
    /// How long a claimed job stays invisible to other workers without a renewal; the worker
    /// renews every third of it while a handler runs, and the reaper requeues expired leases.
    pub lease: Duration,
    /// First retry delay; doubled on every failed attempt (with jitter) up to `retry_max`.
    pub retry_base: Duration,
    pub retry_max: Duration,
    /// A job that is not finished, has not changed for this long and is unknown to Redis is
    /// pushed again by the sweep (enqueue's own push failed, or Redis lost it).
    pub sweep_grace: Duration,
    /// Jobs one worker process runs at once (each also within the memory budget).
    pub worker_concurrency: usize,
    /// Memory (MiB) the worker's jobs may hold at once: 60 % of the function's
    /// (`AWS_LAMBDA_FUNCTION_MEMORY_SIZE`, which Lambda and the local gateway set; 1024 when
    /// unset). Each job reserves its kind's peak from it before its handler runs.
    pub worker_memory_budget_mib: u32,
    /// Most jobs claimed (and recorded) in one round trip.
    pub worker_batch: usize,
    /// The worker stops taking jobs this long before its Lambda deadline, so the ones it holds
    /// can finish: at least the p99 time of the slowest job kind.
    pub worker_deadline_margin: Duration,
    /// Most unfinished jobs (queued, running, waiting for a retry) one clinic may have: one
    /// clinic's flood of uploads cannot fill the queue every clinic shares.
    pub max_pending_per_clinic: u32,
    /// A drain in a Lambda invocation with nothing to run for this long stops (unless work
    /// arrived as it left): an idle worker costs seconds, not its whole timeout.
    pub worker_idle_stop: Duration,
    /// Most drains at once: a drain with more jobs ready than it has room for wakes another,
    /// up to this many (the worker function's reserved concurrency in template.yaml).
    pub worker_max_drains: u32,
    /// The worker function an enqueue wakes when no drain is alive; `None` (tests, `worker
    /// --loop`): nothing is woken, the drains that run find the jobs.
    pub wake: Option<WakeTarget>,
}

/// Where the worker is woken: a Lambda function, invoked asynchronously.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WakeTarget {
    /// `WORKER_FUNCTION_NAME`: its name or ARN (template.yaml: `!Ref WorkerFunction`).
    pub function: String,
    /// `LAMBDA_ENDPOINT_URL`: a local stand-in for Lambda's Invoke API (the local gateway);
    /// `None`: AWS's.
    pub endpoint: Option<String>,
    /// `AWS_REGION`; `None`: the SDK's own lookup.
    pub region: Option<String>,
}

impl QueueConfig {
    pub(super) fn read(vars: &mut Vars) -> Self {
        let lease = vars.seconds("JOB_LEASE_SECONDS", 60);
        vars.check_range("JOB_LEASE_SECONDS", lease.as_secs(), 1..=3_600);
        let retry_base = vars.millis("JOB_RETRY_BASE_MS", 1_000);
        vars.check_range(
            "JOB_RETRY_BASE_MS",
            retry_base.as_millis() as u64,
            1..=3_600_000,
        );
        let retry_max = vars.millis("JOB_RETRY_MAX_MS", 10 * 60 * 1_000);
        vars.check(retry_max >= retry_base, || {
            "JOB_RETRY_MAX_MS: must be at least JOB_RETRY_BASE_MS".into()
        });
        let sweep_grace = vars.seconds("JOB_SWEEP_GRACE_SECONDS", 30);
        let function_memory_mb: u32 =
            vars.parsed("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", 1024, "a number of MB");
        vars.check_range(
            "AWS_LAMBDA_FUNCTION_MEMORY_SIZE",
            u64::from(function_memory_mb),
            128..=10_240,
        );
        let worker_memory_budget_mib = function_memory_mb * WORKER_MEMORY_SHARE_PERCENT / 100;
        let worker_concurrency = vars.parsed("WORKER_CONCURRENCY", 64, "a number of jobs");
        vars.check_range("WORKER_CONCURRENCY", worker_concurrency as u64, 1..=1_024);
        let worker_batch = vars.parsed("WORKER_BATCH", 64, "a number of jobs");
        vars.check_range("WORKER_BATCH", worker_batch as u64, 1..=1_000);
        let worker_deadline_margin = vars.seconds("WORKER_DEADLINE_MARGIN_SECONDS", 30);
        vars.check_range(
            "WORKER_DEADLINE_MARGIN_SECONDS",
            worker_deadline_margin.as_secs(),
            1..=600,
        );
        let max_pending_per_clinic =
            vars.parsed("QUEUE_MAX_PENDING_PER_CLINIC", 1_000, "a number of jobs");
        vars.check_range(
            "QUEUE_MAX_PENDING_PER_CLINIC",
            u64::from(max_pending_per_clinic),
            1..=1_000_000,
        );
        let worker_idle_stop = vars.seconds("WORKER_IDLE_STOP_SECONDS", 10);
        vars.check_range(
            "WORKER_IDLE_STOP_SECONDS",
            worker_idle_stop.as_secs(),
            1..=600,
        );
        let worker_max_drains = vars.parsed("WORKER_MAX_DRAINS", 3, "a number of drains");
        vars.check_range("WORKER_MAX_DRAINS", u64::from(worker_max_drains), 1..=100);
        let endpoint = vars.endpoint_url("LAMBDA_ENDPOINT_URL");
        let function = vars.optional("WORKER_FUNCTION_NAME");
        vars.check(function.is_some() || endpoint.is_none(), || {
            "LAMBDA_ENDPOINT_URL: set without WORKER_FUNCTION_NAME (the function to invoke)".into()
        });
        let wake = function.map(|function| WakeTarget {
            function: function.trim().to_owned(),
            endpoint,
            region: vars
                .optional("AWS_REGION")
                .map(|region| region.trim().to_owned()),
        });
        Self {
            lease,
            retry_base,
            retry_max,
            sweep_grace,
            worker_concurrency,
            worker_memory_budget_mib,
            worker_batch,
            worker_deadline_margin,
            max_pending_per_clinic,
            worker_idle_stop,
            worker_max_drains,
            wake,
        }
    }
}
