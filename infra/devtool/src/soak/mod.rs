//! `pulso-devtool soak`: a developer's browser against the local stack for a while — bursts of
//! reads, a WebSocket session now and then, and idle gaps of up to 90 s (a third of them over
//! 60 s, the idleness that used to kill the functions) — then what it saw: answers by status,
//! the 5xx the gateway gave itself, WebSocket sessions, and how often functions were restarted.
//!
//! The plan (burst sizes, routes, sessions, gaps) comes from one seeded generator, so a run is
//! repeated with `--seed`. Any 5xx, missing answer or failed WebSocket session fails the run.

mod plan;
mod tally;

use self::plan::{PATIENT_LIST, Read, plan_round, reads};
use self::tally::Tally;
use crate::listing::{self, FunctionStatus};
use crate::stack::{self, Reply, Stack, human};
use anyhow::{Context, bail};
use futures_util::future::join_all;
use rand::SeedableRng;
use rand::rngs::StdRng;
use reqwest::Method;
use serde_json::Value;
use sqlx::PgPool;
use std::time::Duration;
use tokio::sync::watch;
use tokio::time::Instant;

const USAGE: &str = "usage: pulso-devtool soak [--gateway URL] [--duration 10m|600s|1h] [--seed N]";
const DEFAULT_DURATION: Duration = Duration::from_secs(600);
/// Keeps the run within the admin token's validity, minted for the duration.
const LONGEST: Duration = Duration::from_secs(24 * 3600);
/// A browser's connections per host: a burst is sent this many at a time.
const IN_FLIGHT: usize = 6;
const PROGRESS_EVERY: Duration = Duration::from_secs(30);
/// Beyond API Gateway's 30 s integration timeout: an answer later than this is no answer.
const REQUEST_WAIT: Duration = Duration::from_secs(40);

#[derive(Debug, PartialEq, Eq)]
pub struct Options {
    pub gateway: String,
    pub duration: Duration,
    pub seed: Option<u64>,
}

impl Options {
    pub fn parse(options: &[String]) -> anyhow::Result<Self> {
        let mut parsed = Self {
            gateway: stack::DEFAULT_GATEWAY.into(),
            duration: DEFAULT_DURATION,
            seed: None,
        };
        for (name, value) in stack::option_pairs(options, USAGE)? {
            match name.as_str() {
                "--gateway" => parsed.gateway = value,
                "--duration" => parsed.duration = parse_duration(&value)?,
                "--seed" => {
                    parsed.seed = Some(value.trim().parse().ok().with_context(|| {
                        format!("--seed must be a whole number from 0 to {}", u64::MAX)
                    })?)
                }
                other => bail!("unknown option {other:?}\n{USAGE}"),
            }
        }
        Ok(parsed)
    }
}

/// `600s`, `10m`, `1h` (or `600`, seconds): at least a second, at most a day.
pub fn parse_duration(text: &str) -> anyhow::Result<Duration> {
    let text = text.trim();
    let (number, unit) = match text.find(|c: char| !c.is_ascii_digit()) {
        Some(at) => text.split_at(at),
        None => (text, "s"),
    };
    let seconds_per_unit = match unit {
        "s" => 1,
        "m" => 60,
        "h" => 3600,
        _ => {
            bail!("--duration {text:?}: write a whole number with s, m or h, like 600s, 10m or 1h")
        }
    };
    let duration = number
        .parse::<u64>()
        .ok()
        .and_then(|n| n.checked_mul(seconds_per_unit))
        .map(Duration::from_secs)
        .filter(|d| !d.is_zero() && *d <= LONGEST)
        .with_context(|| {
            format!("--duration {text:?}: a whole number of s, m or h, from 1s to 24h")
        })?;
    Ok(duration)
}

pub async fn run(options: &Options, pool: PgPool) -> anyhow::Result<()> {
    let seed = options.seed.unwrap_or_else(rand::random);
    let stack = Stack::connect(&options.gateway, pool, options.duration).await?;
    let before = stack.functions().await?;
    let reads = served_reads(&before)?;
    eprintln!(
        "soak: {} of browser-like traffic against {} and {}, seed {seed} (--seed {seed} repeats the plan); Ctrl-C ends it early",
        human(options.duration),
        stack.gateway(),
        stack.ws_url()?
    );
    let mut soak = Soak::new(&stack, reads, seed, options.duration);
    soak.run().await;
    let after = stack
        .functions()
        .await
        .context("reading the counters at the end")?;
    report(&soak, &before, &after)
}

/// The reads whose route the gateway serves; a route gone from template.yaml is said, not sent.
fn served_reads(functions: &[FunctionStatus]) -> anyhow::Result<Vec<Read>> {
    let served: Vec<&str> = functions
        .iter()
        .flat_map(|f| f.routes.iter().map(String::as_str))
        .collect();
    let (kept, gone): (Vec<Read>, Vec<Read>) = reads(chrono::Utc::now().date_naive())
        .into_iter()
        .partition(|read| served.contains(&read.key));
    for read in &gone {
        eprintln!(
            "soak: the gateway has no route {}: not sending {}",
            read.key, read.path
        );
    }
    if kept.is_empty() {
        bail!("the gateway serves none of the soak's routes (GET /health, GET /patients, …)");
    }
    Ok(kept)
}

struct Soak<'a> {
    stack: &'a Stack,
    reads: Vec<Read>,
    rng: StdRng,
    tally: Tally,
    /// A patient id from the last list, for the reads that need one.
    patient: Option<String>,
    started: Instant,
    ends: Instant,
    next_progress: Instant,
    stop: watch::Receiver<bool>,
}

impl<'a> Soak<'a> {
    fn new(stack: &'a Stack, reads: Vec<Read>, seed: u64, duration: Duration) -> Self {
        let started = Instant::now();
        Self {
            stack,
            reads,
            rng: StdRng::seed_from_u64(seed),
            tally: Tally::default(),
            patient: None,
            started,
            ends: started + duration,
            next_progress: started + PROGRESS_EVERY,
            stop: stop_on_ctrl_c(),
        }
    }

    fn over(&self) -> bool {
        Instant::now() >= self.ends || *self.stop.borrow()
    }

    async fn run(&mut self) {
        while !self.over() {
            let round = plan_round(&mut self.rng, self.reads.len());
            self.burst(&round.burst).await;
            if round.websocket && !self.over() {
                self.websocket().await;
            }
            self.pause(round.gap).await;
        }
    }

    async fn burst(&mut self, burst: &[usize]) {
        for chunk in burst.chunks(IN_FLIGHT) {
            if self.over() {
                return;
            }
            let paths: Vec<String> = chunk.iter().map(|i| self.path(*i)).collect();
            let calls = paths
                .iter()
                .map(|path| self.stack.call(Method::GET, path, REQUEST_WAIT));
            let replies = join_all(calls).await;
            for (path, reply) in paths.iter().zip(replies) {
                self.record(path, reply);
            }
            self.progress();
        }
    }

    /// The read's path; one that needs a patient before any list gave one lists instead.
    fn path(&self, index: usize) -> String {
        let path = &self.reads[index].path;
        match (&self.patient, path.contains("{id}")) {
            (_, false) => path.clone(),
            (Some(id), true) => path.replace("{id}", id),
            (None, true) => PATIENT_LIST.into(),
        }
    }

    fn record(&mut self, path: &str, reply: Result<Reply, reqwest::Error>) {
        match &reply {
            Ok(reply) if !(200..300).contains(&reply.status) => eprintln!(
                "soak: GET {path} -> {} after {}: {}",
                reply.status,
                human(reply.elapsed),
                reply.excerpt()
            ),
            Ok(_) => {}
            Err(error) => eprintln!("soak: GET {path}: no answer: {error}"),
        }
        let reply = reply.ok();
        if let Some(id) = reply
            .as_ref()
            .filter(|r| r.status == 200 && path.starts_with("/patients?"))
            .and_then(|r| patient_id(&r.body, self.tally.requests))
        {
            self.patient = Some(id);
        }
        self.tally.record(reply.as_ref());
    }

    async fn websocket(&mut self) {
        match self.stack.ws_ping().await {
            Ok(ping) if ping.registered => self.tally.ws_ok += 1,
            Ok(_) => {
                eprintln!("soak: WebSocket pong says the connection is not registered");
                self.tally.ws_failed += 1;
            }
            Err(error) => {
                eprintln!("soak: WebSocket session failed: {error:#}");
                self.tally.ws_failed += 1;
            }
        }
        self.progress();
    }

    /// Sleeps `gap` (or until the end), printing progress on time meanwhile.
    async fn pause(&mut self, gap: Duration) {
        let until = (Instant::now() + gap).min(self.ends);
        while Instant::now() < until && !*self.stop.borrow() {
            let wake = until.min(self.next_progress);
            tokio::select! {
                _ = tokio::time::sleep_until(wake) => {}
                _ = self.stop.changed() => {}
            }
            self.progress();
        }
    }

    fn progress(&mut self) {
        let now = Instant::now();
        if now < self.next_progress {
            return;
        }
        while self.next_progress <= now {
            self.next_progress += PROGRESS_EVERY;
        }
        eprintln!(
            "soak: {} of {}: {}",
            human(now - self.started),
            human(self.ends - self.started),
            self.tally.describe()
        );
    }
}

/// One id of a `{"items": [...]}` page (a different one as the run goes on).
fn patient_id(body: &str, turn: u64) -> Option<String> {
    let page: Value = serde_json::from_str(body).ok()?;
    let items = page.get("items")?.as_array()?;
    let len = u64::try_from(items.len()).ok().filter(|n| *n > 0)?;
    let item = items.get(usize::try_from(turn % len).ok()?)?;
    item.get("id")?.as_str().map(str::to_owned)
}

/// Ctrl-C ends the run at the next request or gap, so the report still prints.
fn stop_on_ctrl_c() -> watch::Receiver<bool> {
    let (stop, stopped) = watch::channel(false);
    tokio::spawn(async move {
        if tokio::signal::ctrl_c().await.is_ok() {
            eprintln!("soak: interrupted; finishing the requests in flight");
            let _ = stop.send(true);
        }
    });
    stopped
}

fn report(
    soak: &Soak<'_>,
    before: &[FunctionStatus],
    after: &[FunctionStatus],
) -> anyhow::Result<()> {
    let changes = listing::changes(&listing::counters_by_name(before), after);
    for (name, change) in changes
        .iter()
        .filter(|(_, c)| c.restarts() + c.timeouts > 0)
    {
        eprintln!("soak:   {name}: {change}");
    }
    let total = listing::total(changes.values());
    let tally = &soak.tally;
    eprintln!(
        "soak: done after {}: {}; function restarts {} (starts +{}, crashes +{}), timeouts +{}",
        human(Instant::now() - soak.started),
        tally.describe(),
        total.restarts(),
        total.starts,
        total.crashes,
        total.timeouts
    );
    if tally.failed() {
        bail!(
            "soak failed: {} 5xx answers, {} requests without answer, {} failed WebSocket sessions",
            tally.server_errors(),
            tally.no_answer,
            tally.ws_failed
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_durations() {
        let secs = |text| parse_duration(text).map(|d| d.as_secs()).ok();
        assert_eq!(secs("10m"), Some(600));
        assert_eq!(secs("600s"), Some(600));
        assert_eq!(secs("1h"), Some(3600));
        assert_eq!(secs(" 90 "), Some(90));
        assert_eq!(secs("24h"), Some(86_400));
        for bad in [
            "",
            "0s",
            "25h",
            "1.5h",
            "10x",
            "m",
            "-5s",
            "1h30m",
            "99999999999999999999h",
        ] {
            assert_eq!(secs(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn parses_options() {
        let args: Vec<String> = ["--duration", "1h", "--seed=7"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        let options = Options::parse(&args).unwrap();
        assert_eq!(options.duration, Duration::from_secs(3600));
        assert_eq!(options.seed, Some(7));
        assert_eq!(options.gateway, stack::DEFAULT_GATEWAY);
        assert!(Options::parse(&["--seed".into(), "x".into()]).is_err());
        assert!(Options::parse(&["--idle".into(), "5".into()]).is_err());
    }

    #[test]
    fn takes_a_patient_id_from_a_page() {
        let page = r#"{"items":[{"id":"a"},{"id":"b"}],"next_cursor":null}"#;
        assert_eq!(patient_id(page, 0).as_deref(), Some("a"));
        assert_eq!(patient_id(page, 3).as_deref(), Some("b"));
        assert_eq!(patient_id(r#"{"items":[]}"#, 0), None);
        assert_eq!(patient_id("not json", 0), None);
    }
}
