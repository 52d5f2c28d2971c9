//! The functions' local execution environment: the gateway starts each function's binary as a
//! process and serves it the Lambda Runtime API (`/next`, `/response`, `/error`,
//! `/init/error`), as the Lambda service does for a custom runtime on `provided.al2023`.
//!
//! Why the gateway hosts the processes instead of `cargo lambda watch` (which ran them until
//! this change): watch cannot replace an instance that died or kill one that hangs — its
//! `--timeout` even cut idle functions' own `/next` polls, so every function died after a
//! minute without traffic, and it never started them again. Owning the processes gives
//! Lambda's own rules, enforced here:
//! - **Timeout**: each invocation gets the function's `Timeout` from template.yaml and a real
//!   `Lambda-Runtime-Deadline-Ms`; when it runs out the instance is killed (SIGKILL, as Lambda
//!   resets the environment), its caller gets `Sandbox.Timedout`, and the log names the
//!   function. The next invocation starts a fresh instance. Init gets Lambda's 10 s to reach
//!   its first `/next`, or is killed the same way.
//! - **Crash**: an instance that exits (panic outside the handler, `exit`, a signal) is noticed
//!   at once through its exit status; the invocation it held fails with `Runtime.ExitError`.
//!   An instance that fails during init fails the invocations waiting for it instead of
//!   being restarted in a loop.
//! - **Idle**: `/next` waits as long as it takes. Extra instances idle for `idle_reap` are
//!   stopped; the most recently used one stays warm. One that answered but never came back to
//!   `/next` is not waited for (after `BETWEEN_GRACE` another starts) and is stopped later.
//! - **Scale**: an invocation that finds no idle instance starts another, up to the function's
//!   `ReservedConcurrentExecutions` or the gateway's `--max-instances`; beyond that it queues.
//! - **Callers that go away**: an invocation whose caller disconnected before an instance took
//!   it is dropped unseen; one already running completes and its answer is discarded.
//! - **Environment**: the gateway's own environment (`.dev/env`, sourced by infra/run-local)
//!   plus what Lambda sets: `AWS_LAMBDA_FUNCTION_NAME` (the binary), `…_MEMORY_SIZE` (the
//!   template's `MemorySize`), `…_VERSION`, `AWS_LAMBDA_RUNTIME_API`, `AWS_REGION`, `TZ=:UTC`.
//!
//! Rebuilding after an edit is `crate::reload`'s; it calls [`Host::recycle`], which replaces
//! idle instances at once and busy ones when their invocation ends, so no request is cut off.

mod api;
mod control;
pub mod pool;
pub mod process;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use bytes::Bytes;
use tokio::sync::oneshot;

pub use api::router;
use pool::{Instance, Outcome, Pending, Pool, State, StopReason};
pub use process::FunctionLog;

/// Lambda's limit on a synchronous invocation's request and response payloads.
pub const PAYLOAD_LIMIT: usize = 6 * 1024 * 1024;

/// Lambda's limit on a runtime's init phase (start to first `/next`).
const INIT_TIMEOUT: Duration = Duration::from_secs(10);

/// How often idle instances are looked at.
const REAP_EVERY: Duration = Duration::from_secs(30);

/// A function as the template declares it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FunctionSpec {
    /// The binary (`Metadata.BuildProperties.Binary`, else the `CodeUri` folder).
    pub name: String,
    /// The template's logical id, for messages.
    pub resource: String,
    pub timeout: Duration,
    pub memory_mb: u32,
    /// `ReservedConcurrentExecutions`: the most instances it may have.
    pub reserved_concurrency: Option<usize>,
}

#[derive(Clone)]
pub struct HostOptions {
    /// Where the binaries are (`target/debug`).
    pub binaries: PathBuf,
    /// Instances per function when the template reserves no concurrency.
    pub max_instances: usize,
    /// Extra idle instances are stopped after this long.
    pub idle_reap: Duration,
    pub region: String,
    pub log: FunctionLog,
}

/// The runtime host: every function's pool, and the address its Runtime API listens on.
pub struct Host {
    functions: BTreeMap<String, Function>,
    options: HostOptions,
    runtime_api: SocketAddr,
}

struct Function {
    spec: FunctionSpec,
    max_instances: usize,
    pool: Mutex<Pool>,
}

/// Why the host gave an invocation no outcome from the function.
#[derive(Debug, thiserror::Error)]
pub enum HostError {
    #[error("no function named `{0}` in the template")]
    UnknownFunction(String),
    #[error("the event is {0} bytes; Lambda accepts at most {PAYLOAD_LIMIT}")]
    PayloadTooLarge(usize),
    #[error("no answer from the function within {0:?}")]
    TimedOut(Duration),
    #[error("the gateway is shutting down")]
    ShuttingDown,
}

/// A fault a developer can inject (`POST /_local/functions/{name}/fault`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// SIGSTOP every instance: the next invocation hangs until the function's timeout.
    Hang,
    /// SIGKILL every instance: the next invocation starts a new one.
    Crash,
}

#[derive(Debug, thiserror::Error)]
pub enum FaultError {
    #[error("no function named `{0}` in the template")]
    UnknownFunction(String),
    #[error("{0} has no running instance: invoke it first")]
    NoInstance(String),
}

impl Host {
    pub fn new(specs: Vec<FunctionSpec>, options: HostOptions, runtime_api: SocketAddr) -> Self {
        let functions = specs
            .into_iter()
            .map(|spec| {
                let max_instances = spec
                    .reserved_concurrency
                    .unwrap_or(options.max_instances)
                    .max(1);
                let function = Function {
                    spec,
                    max_instances,
                    pool: Mutex::new(Pool::default()),
                };
                (function.spec.name.clone(), function)
            })
            .collect();
        Self {
            functions,
            options,
            runtime_api,
        }
    }

    pub fn runtime_api(&self) -> SocketAddr {
        self.runtime_api
    }

    pub fn specs(&self) -> impl Iterator<Item = &FunctionSpec> {
        self.functions.values().map(|f| &f.spec)
    }

    pub fn spec(&self, function: &str) -> Option<&FunctionSpec> {
        self.functions.get(function).map(|f| &f.spec)
    }

    /// Runs `event` through `function` and waits up to `wait` for its outcome. The function's
    /// own timeout is enforced whatever `wait` is: a caller that stops waiting earlier does not
    /// stop the invocation.
    pub async fn invoke(
        self: &Arc<Self>,
        function: &str,
        event: Bytes,
        wait: Duration,
    ) -> Result<Outcome, HostError> {
        let f = self
            .functions
            .get(function)
            .ok_or_else(|| HostError::UnknownFunction(function.to_owned()))?;
        if event.len() > PAYLOAD_LIMIT {
            return Err(HostError::PayloadTooLarge(event.len()));
        }
        let (reply, answer) = oneshot::channel();
        let queued = {
            let mut pool = lock(&f.pool);
            pool.queue.push_back(Pending {
                request_id: uuid::Uuid::new_v4().to_string(),
                event,
                reply,
            });
            self.schedule(f, &mut pool);
            !pool.queue.is_empty()
        };
        if queued {
            // Waiting on an instance that just answered: if it does not come back (wedged),
            // the re-check starts another.
            let host = Arc::clone(self);
            let name = function.to_owned();
            tokio::spawn(async move {
                tokio::time::sleep(pool::BETWEEN_GRACE).await;
                if let Some(f) = host.functions.get(&name) {
                    host.schedule(f, &mut lock(&f.pool));
                }
            });
        }
        match tokio::time::timeout(wait, answer).await {
            Ok(Ok(outcome)) => Ok(outcome),
            Ok(Err(_)) => Err(HostError::ShuttingDown),
            Err(_) => Err(HostError::TimedOut(wait)),
        }
    }

    /// Hands queued invocations to waiting instances, arms their timeouts, and starts the
    /// instances the rest of the queue needs.
    fn schedule(self: &Arc<Self>, f: &Function, pool: &mut Pool) {
        for started in pool.match_waiting(f.spec.timeout) {
            let host = Arc::clone(self);
            let function = f.spec.name.clone();
            let timeout = f.spec.timeout;
            tokio::spawn(async move {
                tokio::time::sleep(timeout).await;
                host.timed_out(&function, started.instance, &started.request_id);
            });
        }
        for _ in 0..pool.instances_to_start(f.max_instances) {
            if !self.start_instance(f, pool) {
                break;
            }
        }
    }

    fn start_instance(self: &Arc<Self>, f: &Function, pool: &mut Pool) -> bool {
        pool.next_number += 1;
        let number = pool.next_number;
        let name = f.spec.name.clone();
        let binary = self.options.binaries.join(&name);
        let launch = process::Launch {
            binary: &binary,
            label: format!("{name}#{number}"),
            env: self.lambda_env(&f.spec, number),
            log: self.options.log.clone(),
        };
        let host = Arc::clone(self);
        let exited = move |status| host.exited(&name, number, status);
        match process::spawn(launch, exited) {
            Ok(process) => {
                tracing::info!(function = %f.spec.name, instance = number, pid = process.pid(), "instance started");
                let now = std::time::Instant::now();
                pool.instances.insert(
                    number,
                    Instance {
                        process,
                        state: State::Starting,
                        started: now,
                        last_used: now,
                        invocations: 0,
                        retiring: false,
                        frozen: false,
                    },
                );
                pool.counters.starts += 1;
                let host = Arc::clone(self);
                let function = f.spec.name.clone();
                tokio::spawn(async move {
                    tokio::time::sleep(INIT_TIMEOUT).await;
                    host.init_timed_out(&function, number);
                });
                true
            }
            Err(error) => {
                let message = format!(
                    "cannot start {}: {error} (build it: cargo build --workspace --bins)",
                    binary.display()
                );
                tracing::error!(function = %f.spec.name, resource = %f.spec.resource, "{message}");
                pool.fail_queue("Runtime.InvalidEntrypoint", &message);
                false
            }
        }
    }

    /// The environment Lambda gives a custom runtime, over the gateway's own.
    fn lambda_env(&self, spec: &FunctionSpec, number: u64) -> Vec<(&'static str, String)> {
        vec![
            ("AWS_LAMBDA_FUNCTION_NAME", spec.name.clone()),
            ("AWS_LAMBDA_FUNCTION_VERSION", "$LATEST".to_owned()),
            (
                "AWS_LAMBDA_FUNCTION_MEMORY_SIZE",
                spec.memory_mb.to_string(),
            ),
            (
                "AWS_LAMBDA_LOG_GROUP_NAME",
                format!("/aws/lambda/{}", spec.name),
            ),
            ("AWS_LAMBDA_LOG_STREAM_NAME", format!("local/{number}")),
            ("AWS_LAMBDA_INITIALIZATION_TYPE", "on-demand".to_owned()),
            (
                "AWS_LAMBDA_RUNTIME_API",
                format!("http://{}/{}/{number}", self.runtime_api, spec.name),
            ),
            ("AWS_REGION", self.options.region.clone()),
            ("AWS_DEFAULT_REGION", self.options.region.clone()),
            ("TZ", ":UTC".to_owned()),
            ("_HANDLER", "bootstrap".to_owned()),
        ]
    }

    /// The function's timeout fired: fail the invocation and kill the instance.
    fn timed_out(self: &Arc<Self>, function: &str, number: u64, request_id: &str) {
        let Some(f) = self.functions.get(function) else {
            return;
        };
        let mut pool = lock(&f.pool);
        if pool.running(number, request_id).is_none() {
            return;
        }
        pool.counters.timeouts += 1;
        let secs = f.spec.timeout.as_secs_f64();
        let message =
            format!("RequestId: {request_id} Error: Task timed out after {secs:.2} seconds");
        pool.finish(number, Outcome::host_error("Sandbox.Timedout", &message));
        tracing::warn!(
            function,
            resource = %f.spec.resource,
            instance = number,
            timeout_secs = secs,
            "invocation timed out: the instance hangs or is too slow; killed it, the next invocation starts a new one"
        );
        stop(&mut pool, number, StopReason::TimedOut);
        self.schedule(f, &mut pool);
    }

    /// Lambda gives a runtime `INIT_TIMEOUT` to reach its first `/next`: one still starting
    /// then (stuck connecting somewhere, say) is killed, and the invocations waiting for it fail
    /// unless another instance can take them.
    fn init_timed_out(self: &Arc<Self>, function: &str, number: u64) {
        let Some(f) = self.functions.get(function) else {
            return;
        };
        let mut pool = lock(&f.pool);
        let starting = pool
            .instances
            .get(&number)
            .is_some_and(|i| matches!(i.state, State::Starting));
        if !starting {
            return;
        }
        pool.counters.timeouts += 1;
        stop(&mut pool, number, StopReason::TimedOut);
        let secs = INIT_TIMEOUT.as_secs();
        tracing::error!(function, resource = %f.spec.resource, instance = number, "instance did not finish its init within {secs} s: killed (see its lines in the functions' log)");
        let message = format!("Init timed out after {secs}.00 seconds");
        pool.fail_queue_if_none_left("Runtime.InitTimeout", &message);
        self.schedule(f, &mut pool);
    }

    /// An instance's process ended.
    fn exited(
        self: &Arc<Self>,
        function: &str,
        number: u64,
        status: Result<std::process::ExitStatus, std::io::Error>,
    ) {
        let Some(f) = self.functions.get(function) else {
            return;
        };
        let described = process::describe(&status);
        let mut pool = lock(&f.pool);
        let Some(instance) = pool.instances.get(&number) else {
            // Stopped by the host (timeout, rebuild, fault, shutdown): already accounted for.
            tracing::debug!(function, instance = number, status = %described, "stopped instance exited");
            return;
        };
        let busy_with = match &instance.state {
            State::Busy { request_id, .. } => Some(request_id.clone()),
            _ => None,
        };
        let starting = matches!(instance.state, State::Starting);
        pool.counters.crashes += 1;
        if let Some(request_id) = &busy_with {
            let message =
                format!("RequestId: {request_id} Error: Runtime exited with error: {described}");
            pool.finish(number, Outcome::host_error("Runtime.ExitError", &message));
        }
        pool.instances.remove(&number);
        if busy_with.is_some() {
            tracing::warn!(function, instance = number, status = %described, "instance died during an invocation (its caller got an error); the next invocation starts a new one");
        } else if starting {
            tracing::error!(function, resource = %f.spec.resource, instance = number, status = %described, "instance exited during init: see its lines in the functions' log");
            let message = format!("Runtime exited during init with error: {described}");
            pool.fail_queue_if_none_left("Runtime.ExitError", &message);
        } else {
            tracing::warn!(function, instance = number, status = %described, "idle instance exited; the next invocation starts a new one");
        }
        self.schedule(f, &mut pool);
    }

    fn function(&self, name: &str) -> Option<&Function> {
        self.functions.get(name)
    }
}

/// Removes the instance and kills its process; an invocation it held fails.
fn stop(pool: &mut Pool, number: u64, reason: StopReason) {
    if let Some(Instance {
        state: State::Busy { request_id, .. },
        ..
    }) = pool.instances.get(&number)
    {
        let message = format!(
            "RequestId: {request_id} Error: instance stopped ({})",
            reason.as_str()
        );
        pool.finish(number, Outcome::host_error("Runtime.ExitError", &message));
    }
    if let Some(mut instance) = pool.instances.remove(&number) {
        instance.process.kill();
        tracing::debug!(
            instance = number,
            reason = reason.as_str(),
            "instance stopped"
        );
    }
}

fn lock(pool: &Mutex<Pool>) -> MutexGuard<'_, Pool> {
    pool.lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}
