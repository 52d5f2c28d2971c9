//! `pulso-devtool smoke`: the check CI runs (`infra/run-local --check`) once the local stack is
//! up. It proves what a developer relies on rather than the first request only: the API's
//! document and its reference page (`/_local/docs`) are served, functions still
//! answer after an idle gap longer than the 30 s that used to kill them, every HTTP function,
//! the WebSocket functions and every schedule answer, a job's enqueue wakes the worker, and a
//! hung or crashed function is replaced by the gateway (`/_local/functions/{name}/fault`)
//! without a restart of the stack.
//!
//! Each step prints one `check:` line on stderr; the first broken one ends the run with the
//! step, the status and the start of the body.

mod jobs;
mod routes;

use self::routes::{RouteChoice, choose_route, fill_path};
use crate::listing::{self, Counters, FunctionStatus, Schedule};
use crate::stack::{self, Fault, GRACE, Reply, Stack, human};
use anyhow::{Context, bail};
use futures_util::future::join_all;
use reqwest::Method;
use sqlx::PgPool;
use std::collections::BTreeMap;
use std::time::{Duration, Instant};
use uuid::Uuid;

const USAGE: &str = "usage: pulso-devtool smoke [--gateway URL] [--idle SECS]";
/// `cargo lambda watch --timeout 30` cut idle functions' `/next` polls after this.
const USED_TO_DIE_AFTER: Duration = Duration::from_secs(30);
/// Past that cut and past the minute of idleness after which developers found functions dead.
const DEFAULT_IDLE: Duration = Duration::from_secs(75);
/// The function the recovery steps break on purpose: it has no dependency to blame.
const HEALTH: &str = "health";
const WS_FUNCTIONS: [&str; 3] = ["ws-connect", "ws-default", "ws-disconnect"];
/// `$disconnect` runs after the close, asynchronously: how long its invocation may take to show.
const DISCONNECT_WAIT: Duration = Duration::from_secs(5);
/// Schedules whose function may run longer are not waited for: a tick that works until its
/// deadline says nothing a shorter one would not.
const LONGEST_TICK: Duration = Duration::from_secs(60);
/// The caller of the disconnected-caller step gives up after this.
const IMPATIENT: Duration = Duration::from_secs(1);

#[derive(Debug, PartialEq, Eq)]
pub struct Options {
    pub gateway: String,
    pub idle: Duration,
}

impl Options {
    pub fn parse(options: &[String]) -> anyhow::Result<Self> {
        let mut parsed = Self {
            gateway: stack::DEFAULT_GATEWAY.into(),
            idle: DEFAULT_IDLE,
        };
        for (name, value) in stack::option_pairs(options, USAGE)? {
            match name.as_str() {
                "--gateway" => parsed.gateway = value,
                "--idle" => {
                    let secs: u64 = value.trim().parse().ok().with_context(|| {
                        format!("--idle must be a whole number of seconds\n{USAGE}")
                    })?;
                    parsed.idle = Duration::from_secs(secs);
                }
                other => bail!("unknown option {other:?}\n{USAGE}"),
            }
        }
        Ok(parsed)
    }
}

pub async fn run(options: &Options, pool: PgPool) -> anyhow::Result<()> {
    let started = Instant::now();
    let stack = Stack::connect(&options.gateway, pool, Duration::from_secs(3600)).await?;
    say(format!(
        "against {} and {}",
        stack.gateway(),
        stack.ws_url()?
    ));
    expect_200(&stack, "a (health)", "/health", GRACE * 3).await?;
    for path in [
        "/openapi.json",
        "/_local/docs",
        "/_local/docs/swagger-ui-bundle.js",
    ] {
        expect_200(
            &stack,
            "b (the API's document and reference page)",
            path,
            GRACE,
        )
        .await?;
    }
    idle(options.idle).await;
    every_http_function(&stack).await?;
    websocket(&stack).await?;
    every_schedule(&stack).await?;
    jobs::a_job_wakes_the_worker(&stack).await?;
    recovery(&stack).await?;
    summary(&stack, started).await
}

fn say(line: impl AsRef<str>) {
    eprintln!("check: {}", line.as_ref());
}

/// The failure of `step`: what was sent, what came back.
fn broken(step: &str, request: &str, reply: &Reply, expected: &str) -> anyhow::Error {
    anyhow::anyhow!(
        "step {step}: {request} -> {} after {} (expected {expected}); body: {}",
        reply.status,
        human(reply.elapsed),
        reply.excerpt()
    )
}

async fn expect_200(stack: &Stack, step: &str, path: &str, wait: Duration) -> anyhow::Result<()> {
    let reply = stack
        .call(Method::GET, path, wait)
        .await
        .with_context(|| format!("step {step}: GET {path}: no answer"))?;
    say(format!(
        "GET {path} -> {} in {}",
        reply.status,
        human(reply.elapsed)
    ));
    if reply.status != 200 {
        return Err(broken(step, &format!("GET {path}"), &reply, "200"));
    }
    Ok(())
}

async fn idle(gap: Duration) {
    if gap.is_zero() {
        say("idle gap skipped (--idle 0)");
        return;
    }
    let why = if gap > USED_TO_DIE_AFTER {
        "longer than the 30 s after which idle functions used to die"
    } else {
        "shorter than the 30 s after which idle functions used to die: this does not test that"
    };
    say(format!("idle {} s without traffic: {why}", gap.as_secs()));
    tokio::time::sleep(gap).await;
}

async fn every_http_function(stack: &Stack) -> anyhow::Result<()> {
    let step = "c (every HTTP function)";
    let functions = stack
        .functions()
        .await
        .with_context(|| format!("step {step}"))?;
    let mut called = 0;
    for function in functions.iter().filter(|f| !f.routes.is_empty()) {
        let Some(route) = choose_route(&function.routes) else {
            say(format!(
                "{}: no route to call in {:?}",
                function.name, function.routes
            ));
            continue;
        };
        call_function(stack, step, function, &route).await?;
        called += 1;
    }
    if called == 0 {
        bail!("step {step}: /_local/functions lists no function with HTTP routes");
    }
    Ok(())
}

async fn call_function(
    stack: &Stack,
    step: &str,
    function: &FunctionStatus,
    route: &RouteChoice<'_>,
) -> anyhow::Result<()> {
    let path = fill_path(route.path, || Uuid::new_v4().to_string());
    let method = Method::from_bytes(route.method.as_bytes()).with_context(|| {
        format!(
            "step {step}: {} has a route with method {:?}",
            function.name, route.method
        )
    })?;
    let request = format!("{method} {path}");
    let reply = stack
        .call(method, &path, function.timeout + GRACE)
        .await
        .with_context(|| format!("step {step}: {request} ({}): no answer", function.name))?;
    say(format!(
        "{request} -> {} ({}, {})",
        reply.status,
        function.name,
        human(reply.elapsed)
    ));
    if !reply.answered_by_function() {
        let expected = format!("an answer from the function {}", function.name);
        return Err(broken(step, &request, &reply, &expected));
    }
    Ok(())
}

async fn websocket(stack: &Stack) -> anyhow::Result<()> {
    let step = "d (WebSocket)";
    let before = listing::counters_by_name(&stack.functions().await?);
    let ping = stack
        .ws_ping()
        .await
        .with_context(|| format!("step {step}: connect, ping, close"))?;
    if !ping.registered {
        bail!(
            "step {step}: the pong says the connection is not registered (ws-connect did not store it)"
        );
    }
    say(format!(
        "WebSocket connect, ping -> pong (registered) in {}, close",
        human(ping.elapsed)
    ));
    wait_for_invocations(stack, step, &before).await
}

/// Polls until each WebSocket function was invoked since `before` (`$disconnect` runs after
/// the close, so it may show a moment later).
async fn wait_for_invocations(
    stack: &Stack,
    step: &str,
    before: &BTreeMap<String, Counters>,
) -> anyhow::Result<()> {
    let deadline = Instant::now() + DISCONNECT_WAIT;
    loop {
        let changes = listing::changes(before, &stack.functions().await?);
        let missing: Vec<&str> = WS_FUNCTIONS
            .into_iter()
            .filter(|name| changes.get(*name).is_none_or(|c| c.invocations == 0))
            .collect();
        if missing.is_empty() {
            say(format!("{} each invoked", WS_FUNCTIONS.join(", ")));
            return Ok(());
        }
        if Instant::now() >= deadline {
            bail!(
                "step {step}: no invocation of {} within {} of the close (per /_local/functions)",
                missing.join(", "),
                human(DISCONNECT_WAIT)
            );
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

async fn every_schedule(stack: &Stack) -> anyhow::Result<()> {
    let step = "e (every schedule)";
    let timeouts: BTreeMap<String, Duration> = stack
        .functions()
        .await?
        .into_iter()
        .map(|f| (f.name, f.timeout))
        .collect();
    for schedule in stack
        .schedules()
        .await
        .with_context(|| format!("step {step}"))?
    {
        let Some(timeout) = timeouts.get(&schedule.binary).copied() else {
            bail!(
                "step {step}: {} runs {}, which /_local/functions does not list",
                schedule.id,
                schedule.binary
            );
        };
        if !schedule.enabled {
            say(format!(
                "{}: disabled in template.yaml, not triggered",
                schedule.id
            ));
        } else if timeout > LONGEST_TICK {
            say(format!(
                "{} ({}): not triggered: its tick may run up to its {} s timeout (it works until its deadline)",
                schedule.id,
                schedule.binary,
                timeout.as_secs()
            ));
        } else {
            trigger(stack, step, &schedule, timeout).await?;
        }
    }
    Ok(())
}

/// Triggers a tick; a 409 means the timer's own tick of that function is running, which ends
/// within its timeout, so it is retried until then.
async fn trigger(
    stack: &Stack,
    step: &str,
    schedule: &Schedule,
    timeout: Duration,
) -> anyhow::Result<()> {
    let request = format!("POST /_local/schedules/{}/trigger", schedule.id);
    let deadline = Instant::now() + timeout + GRACE;
    loop {
        let reply = stack.trigger(&schedule.id, timeout + GRACE).await?;
        if reply.status == 409 && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_secs(1)).await;
            continue;
        }
        say(format!(
            "{request} -> {} ({}, {})",
            reply.status,
            schedule.binary,
            human(reply.elapsed)
        ));
        return match reply.status {
            200 => Ok(()),
            502 => Err(broken(
                step,
                &request,
                &reply,
                "200; the function returned an error",
            )),
            504 => Err(broken(step, &request, &reply, "200; the tick timed out")),
            _ => Err(broken(step, &request, &reply, "200")),
        };
    }
}

async fn recovery(stack: &Stack) -> anyhow::Result<()> {
    let step = "f (recovery)";
    let timeout = stack
        .functions()
        .await?
        .into_iter()
        .find(|f| f.name == HEALTH)
        .map(|f| f.timeout)
        .with_context(|| format!("step {step}: /_local/functions does not list {HEALTH}"))?;
    // An instance must run for the fault to have something to break.
    expect_200(stack, step, "/health", timeout + GRACE).await?;
    hang_then_recover(stack, step, timeout).await?;
    inject(stack, step, Fault::Crash).await?;
    expect_200(stack, step, "/health", timeout + GRACE).await?;
    disconnected_caller(stack, step, timeout).await
}

/// How long to wait for health's instances to be back waiting for work before freezing them.
const SETTLE: Duration = Duration::from_secs(5);

/// Injects `fault` on every instance of health; answers how many instances it hit. A hang is
/// injected once every instance is back waiting for an invocation: one frozen in the moment
/// between answering and asking for more never takes the next request (the gateway, as Lambda
/// would, starts another instance instead), and the check would see a 200 it does not expect.
async fn inject(stack: &Stack, step: &str, fault: Fault) -> anyhow::Result<usize> {
    if matches!(fault, Fault::Hang) {
        let deadline = Instant::now() + SETTLE;
        while Instant::now() < deadline {
            let functions = stack
                .functions()
                .await
                .with_context(|| format!("step {step}"))?;
            if functions
                .iter()
                .filter(|function| function.name == HEALTH)
                .all(|function| function.all_idle())
            {
                break;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
    let request = format!(
        "POST /_local/functions/{HEALTH}/fault {{\"kind\":\"{}\"}}",
        fault.as_str()
    );
    let reply = stack.fault(HEALTH, fault).await?;
    say(format!("{request} -> {} {}", reply.status, reply.excerpt()));
    if reply.status != 200 {
        return Err(broken(step, &request, &reply, "200"));
    }
    Ok(instances_hit(&reply.body))
}

/// The length of the fault answer's `instances` (at least one: the fault needs a running one).
pub fn instances_hit(body: &str) -> usize {
    serde_json::from_str::<serde_json::Value>(body)
        .ok()
        .and_then(|answer| answer.get("instances")?.as_array().map(Vec::len))
        .unwrap_or(1)
        .max(1)
}

/// Every hung invocation must be ended by the gateway at the function's timeout (any status),
/// and the next request served by a new instance. One caller per frozen instance, at once: a
/// function scaled out earlier (by a soak, a busy page) has several, and each takes one caller.
async fn hang_then_recover(stack: &Stack, step: &str, timeout: Duration) -> anyhow::Result<()> {
    let hung = inject(stack, step, Fault::Hang).await?;
    let wait = timeout + GRACE;
    let calls = (0..hung).map(|_| stack.call(Method::GET, "/health", wait));
    for reply in join_all(calls).await {
        let reply = reply.with_context(|| {
            format!(
                "step {step}: GET /health on a hung instance: no answer within {} (the function's {} s timeout + {} s): the gateway did not end the hung invocation",
                human(wait),
                timeout.as_secs(),
                GRACE.as_secs()
            )
        })?;
        say(format!(
            "GET /health on a hung instance -> {} after {} (the function's timeout is {} s)",
            reply.status,
            human(reply.elapsed),
            timeout.as_secs()
        ));
    }
    expect_200(stack, step, "/health", wait).await
}

/// Callers that give up on hung instances must not leave the function stuck.
async fn disconnected_caller(stack: &Stack, step: &str, timeout: Duration) -> anyhow::Result<()> {
    let hung = inject(stack, step, Fault::Hang).await?;
    let calls = (0..hung).map(|_| stack.call(Method::GET, "/health", IMPATIENT));
    for result in join_all(calls).await {
        match result {
            Err(error) if error.is_timeout() => say(format!(
                "GET /health on a hung instance: the client gave up after {} on purpose",
                human(IMPATIENT)
            )),
            Err(error) => bail!("step {step}: GET /health on a hung instance: {error}"),
            Ok(reply) => {
                let expected =
                    format!("no answer within {} from a hung instance", human(IMPATIENT));
                return Err(broken(step, "GET /health", &reply, &expected));
            }
        }
    }
    let settle = timeout + Duration::from_secs(2);
    say(format!(
        "waiting {} s (the function's timeout + 2 s) for the gateway to end the abandoned invocation",
        settle.as_secs()
    ));
    tokio::time::sleep(settle).await;
    expect_200(stack, step, "/health", timeout + GRACE).await
}

async fn summary(stack: &Stack, started: Instant) -> anyhow::Result<()> {
    let functions = stack.functions().await.context("step g (summary)")?;
    say("summary (since the gateway started):");
    let width = functions.iter().map(|f| f.name.len()).max().unwrap_or(0);
    for function in &functions {
        say(format!("  {:width$}  {}", function.name, function.counters));
    }
    let total = listing::total(functions.iter().map(|f| &f.counters));
    say(format!("  {:width$}  {total}", "total"));
    say(format!("passed in {}", human(started.elapsed())));
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keys(list: &[&str]) -> Vec<String> {
        list.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn counts_the_instances_a_fault_hit() {
        assert_eq!(
            instances_hit(r#"{"function":"health","kind":"hang","instances":[7,8]}"#),
            2
        );
        assert_eq!(instances_hit(r#"{"instances":[3]}"#), 1);
        assert_eq!(instances_hit(r#"{"instances":[]}"#), 1);
        assert_eq!(instances_hit("not json"), 1);
    }

    #[test]
    fn parses_options() {
        let options = Options::parse(&keys(&["--idle", "0", "--gateway=http://127.0.0.1:4000"]));
        assert_eq!(
            options.unwrap(),
            Options {
                gateway: "http://127.0.0.1:4000".into(),
                idle: Duration::ZERO
            }
        );
        assert_eq!(Options::parse(&[]).unwrap().idle, DEFAULT_IDLE);
        assert!(Options::parse(&keys(&["--idle", "1m"])).is_err());
        assert!(Options::parse(&keys(&["--seed", "1"])).is_err());
    }
}
